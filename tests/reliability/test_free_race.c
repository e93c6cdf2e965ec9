/* test_free_race.c - freeing handles while another thread runs.
 *
 *   test_rel_free_race MODEL.so [ROUNDS]
 *
 * A runner thread calls session_run on its session in a loop, checking
 * every output against the single-thread reference. Meanwhile the main
 * thread, on the same weights, ROUNDS times (default 200): creates a
 * session, runs it, frees it (sometimes without running it at all, with
 * 1 or 2 pool threads); then it frees its own weights and model handles
 * while the runner goes on (its session keeps them alive: handles are
 * reference counted). Nothing may crash, fail, or change the runner's results;
 * under ASan/TSan a use-after-free or a race is reported.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "rel.h"

static const SlapoApi *api;
static RelIo ref;
static atomic_int stop;

typedef struct Runner {
	SlapoSession *s;
	RelIo io;
	atomic_int runs; /* read by the main thread while the runner counts */
	int bad_status, mismatches;
	char first_error[256];
} Runner;

static void *runner(void *arg)
{
	Runner *r = arg;
	while (!atomic_load(&stop) || r->runs < 10) {
		rel_io_poison(&r->io);
		SlapoStatus st = api->session_run(r->s, r->io.pin, r->io.n_in, r->io.pout,
		                                  r->io.n_out);
		r->runs++;
		if (st != SLAPO_OK) {
			if (!r->bad_status++)
				snprintf(r->first_error, sizeof r->first_error, "%s: %s",
				         api->status_name(st), api->last_error()->message);
		} else if (!rel_io_same(&r->io, &ref)) {
			r->mismatches++;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	SlapoModel *m;
	SlapoWeights *w;
	Runner r;
	pthread_t th;
	int rounds = argc > 2 ? atoi(argv[2]) : 200;
	if (argc < 2 || rounds < 2) {
		fprintf(stderr, "usage: test_rel_free_race MODEL.so [ROUNDS]\n");
		return 99;
	}
	api = rel_open(argv[1], &m);
	CHECK_ST(api, api->weights_create(m, NULL, &w), SLAPO_OK);
	CHECK_ST(api, api->weights_init_random(w, 5), SLAPO_OK);
	memset(&r, 0, sizeof r);
	if (rel_io_init(api, m, 2, 6, 3, &ref) || rel_io_init(api, m, 2, 6, 3, &r.io))
		return 1;
	SlapoSessionParams p = SLAPO_SESSION_PARAMS_INIT;
	p.n_threads = 2;
	CHECK_ST(api, api->session_create(w, &p, &r.s), SLAPO_OK);
	CHECK_ST(api, api->session_run(r.s, ref.pin, ref.n_in, ref.pout, ref.n_out), SLAPO_OK);
	if (t_failures)
		return t_done("test_rel_free_race");

	if (pthread_create(&th, NULL, runner, &r)) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	RelIo mine;
	if (rel_io_init(api, m, 1, 4, 8, &mine))
		return 1;
	int made = 0;
	for (int k = 0; k < rounds; k++) {
		SlapoSession *s;
		SlapoSessionParams q = SLAPO_SESSION_PARAMS_INIT;
		q.n_threads = 1 + k % 2;
		CHECK_ST(api, api->session_create(w, &q, &s), SLAPO_OK);
		if (k % 3)
			CHECK_ST(api, api->session_run(s, mine.pin, mine.n_in, mine.pout, mine.n_out),
			         SLAPO_OK);
		api->session_free(s);
		made++;
	}
	/* drop the main thread's handles while the runner runs: its session
	 * keeps the weights and the model alive */
	int before = r.runs;
	api->weights_free(w);
	api->model_close(m);
	for (int spin = 0; spin < 100000000 && r.runs < before + 20; spin++)
		sched_yield();
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	if (r.bad_status) {
		fprintf(stderr, "runner: %d runs failed, first: %s\n", r.bad_status, r.first_error);
		t_failures++;
	}
	if (r.mismatches) {
		fprintf(stderr, "runner: %d of %d runs differ from the reference\n", r.mismatches,
		        atomic_load(&r.runs));
		t_failures++;
	}
	/* the last handle: frees the session, then the weights and the model */
	api->session_free(r.s);
	printf("test_rel_free_race: %d sessions created and freed beside %d runs\n", made,
	       atomic_load(&r.runs));
	rel_io_free(&r.io);
	rel_io_free(&mine);
	rel_io_free(&ref);
	return t_done("test_rel_free_race");
}
