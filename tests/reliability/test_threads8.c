/* test_threads8.c - one CPU session per thread on shared weights.
 *
 *   test_rel_threads8 MODEL.so [CALLS]
 *
 * Eight threads, each with its own session (1 or 2 pool threads,
 * alternating) on one set of weights, make CALLS session_run calls in all
 * (default 10,000), cycling through four input sets of different shapes
 * (so workspaces grow and are reused). Every output must be bit-identical
 * to what one session on the main thread computed for the same inputs
 * before the threads started.
 */
#include <pthread.h>
#include <stdlib.h>

#include "rel.h"

enum {
	THREADS = 8,
	SETS = 4,
};

static const SlapoApi *api;
static SlapoWeights *weights;
static RelIo ref[SETS];
static const int64_t shapes[SETS][2] = {{1, 3}, {2, 8}, {3, 5}, {1, 16}};
static int calls_per_thread;

typedef struct Job {
	int id;
	SlapoSession *s;
	RelIo io[SETS];
	int runs, bad_status, mismatches;
	char first_error[256];
} Job;

static void *worker(void *arg)
{
	Job *j = arg;
	for (int k = 0; k < calls_per_thread; k++) {
		int set = (k + j->id) % SETS;
		RelIo *io = &j->io[set];
		rel_io_poison(io);
		SlapoStatus st = api->session_run(j->s, io->pin, io->n_in, io->pout, io->n_out);
		j->runs++;
		if (st != SLAPO_OK) {
			if (!j->bad_status++)
				snprintf(j->first_error, sizeof j->first_error, "%s: %s",
				         api->status_name(st), api->last_error()->message);
			continue;
		}
		if (!rel_io_same(io, &ref[set]))
			j->mismatches++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	SlapoModel *m;
	SlapoSession *s0;
	Job jobs[THREADS];
	pthread_t th[THREADS];
	int total = argc > 2 ? atoi(argv[2]) : 10000;
	if (argc < 2 || total < THREADS) {
		fprintf(stderr, "usage: test_rel_threads8 MODEL.so [CALLS]\n");
		return 99;
	}
	calls_per_thread = total / THREADS;
	api = rel_open(argv[1], &m);
	CHECK_ST(api, api->weights_create(m, NULL, &weights), SLAPO_OK);
	CHECK_ST(api, api->weights_init_random(weights, 99), SLAPO_OK);

	/* the references: one session, the main thread */
	SlapoSessionParams p1 = SLAPO_SESSION_PARAMS_INIT;
	p1.n_threads = 1;
	CHECK_ST(api, api->session_create(weights, &p1, &s0), SLAPO_OK);
	for (int k = 0; k < SETS; k++) {
		if (rel_io_init(api, m, shapes[k][0], shapes[k][1], 10 + (uint64_t)k, &ref[k]))
			return 1;
		CHECK_ST(api, api->session_run(s0, ref[k].pin, ref[k].n_in, ref[k].pout, ref[k].n_out),
		         SLAPO_OK);
	}
	api->session_free(s0);
	if (t_failures)
		return t_done("test_rel_threads8");

	for (int t = 0; t < THREADS; t++) {
		Job *j = &jobs[t];
		memset(j, 0, sizeof *j);
		j->id = t;
		SlapoSessionParams p = SLAPO_SESSION_PARAMS_INIT;
		p.n_threads = 1 + t % 2;
		CHECK_ST(api, api->session_create(weights, &p, &j->s), SLAPO_OK);
		for (int k = 0; k < SETS; k++)
			if (rel_io_init(api, m, shapes[k][0], shapes[k][1], 10 + (uint64_t)k, &j->io[k]))
				return 1;
	}
	/* the weights are shared and frozen while sessions exist */
	const char *none[1] = {"/nonexistent.safetensors"};
	CHECK_ST(api, api->weights_load_safetensors(weights, none, 1, 0), SLAPO_BUSY);
	for (int t = 0; t < THREADS; t++)
		if (pthread_create(&th[t], NULL, worker, &jobs[t])) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	int runs = 0;
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		Job *j = &jobs[t];
		runs += j->runs;
		if (j->bad_status) {
			fprintf(stderr, "thread %d: %d runs failed, first: %s\n", t, j->bad_status,
			        j->first_error);
			t_failures++;
		}
		if (j->mismatches) {
			fprintf(stderr, "thread %d: %d of %d runs differ from the single-thread result\n",
			        t, j->mismatches, j->runs);
			t_failures++;
		}
		api->session_free(j->s);
		for (int k = 0; k < SETS; k++)
			rel_io_free(&j->io[k]);
	}
	printf("test_rel_threads8: %d threads, %d session_run calls, all bit-identical\n",
	       THREADS, runs);
	for (int k = 0; k < SETS; k++)
		rel_io_free(&ref[k]);
	api->weights_free(weights);
	api->model_close(m);
	return t_done("test_rel_threads8");
}
