/* test_threads.c - weights shared by sessions on several threads: two
 * threads, each with its own session, running repeatedly, give results
 * bit-identical to one session on one thread; sessions with different
 * thread counts agree (to the last bits: GEMM splits depend on the
 * thread count, see runtime/blas.c); and a session used by two threads
 * at once answers SLAPO_BUSY instead of corrupting itself. Run with and
 * without OPENBLAS_NUM_THREADS=1 (GEMMs split by the pool, or not).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "testlib.h"

#define B    4
#define S    32
#define V    50
#define RUNS 20

static const SlapoApi *api;
static SlapoWeights *weights;

typedef struct Job {
	SlapoSession *s;
	TTensor ids, types, mask, out[3];
	int failures;    /* runs that differ from the reference */
	int busy, other; /* BUSY / unexpected statuses (busy test) */
	atomic_int *stop;
} Job;

static void job_init(Job *j, SlapoSession *s)
{
	int64_t sl[3] = {B, S, V}, sh[3] = {B, S, 16}, ss[3] = {B, S, S};
	memset(j, 0, sizeof *j);
	j->s = s;
	fake_inputs(B, S, V, 77, &j->ids, &j->types, &j->mask);
	tt_init(&j->out[0], RT_F32, 3, sl);
	tt_init(&j->out[1], RT_F32, 3, sh);
	tt_init(&j->out[2], RT_F32, 3, ss);
}

static void job_free(Job *j)
{
	int i;
	tt_free(&j->ids);
	tt_free(&j->types);
	tt_free(&j->mask);
	for (i = 0; i < 3; i++)
		tt_free(&j->out[i]);
}

static SlapoStatus job_run(Job *j)
{
	const DLTensor *in[3] = {&j->ids.t, &j->types.t, &j->mask.t};
	DLTensor *o[3] = {&j->out[0].t, &j->out[1].t, &j->out[2].t};
	return api->session_run(j->s, in, 3, o, 3);
}

static Job ref;

static int same_as_ref(const Job *j)
{
	int i;
	for (i = 0; i < 3; i++)
		if (memcmp(j->out[i].t.data, ref.out[i].t.data,
		           (size_t)tt_numel(&ref.out[i]) * 4))
			return 0;
	return 1;
}

static int close_to_ref(const Job *j)
{
	int64_t i, n;
	int k;
	for (k = 0; k < 3; k++) {
		const float *a = j->out[k].t.data, *b = ref.out[k].t.data;
		n = tt_numel(&ref.out[k]);
		for (i = 0; i < n; i++)
			if (!(fabsf(a[i] - b[i]) <= 1e-4f * (1 + fabsf(b[i]))))
				return 0;
	}
	return 1;
}

static void *repeat(void *arg)
{
	Job *j = arg;
	int k;
	for (k = 0; k < RUNS; k++) {
		memset(j->out[0].t.data, 0, (size_t)tt_numel(&j->out[0]) * 4);
		if (job_run(j) != SLAPO_OK || !same_as_ref(j))
			j->failures++;
	}
	return NULL;
}

static void *hammer(void *arg)
{
	Job *j = arg;
	while (!atomic_load(j->stop)) {
		SlapoStatus st = job_run(j);
		if (st == SLAPO_BUSY)
			j->busy++;
		else if (st != SLAPO_OK)
			j->other++;
	}
	return NULL;
}

static SlapoSession *new_session(int n_threads)
{
	SlapoSessionParams p = SLAPO_SESSION_PARAMS_INIT;
	SlapoSession *s = NULL;
	p.n_threads = n_threads;
	CHECK_ST(api, api->session_create(weights, &p, &s), SLAPO_OK);
	return s;
}

int main(int argc, char **argv)
{
	SlapoModel *m;
	Job a, b, c;
	pthread_t ta, tb;
	atomic_int stop;
	int k;
	if (argc < 2) {
		fprintf(stderr, "usage: test_threads FAKE_MODEL.so\n");
		return 99;
	}
	api = t_load(argv[1], NULL);
	if (!api)
		return 1;
	CHECK_ST(api, api->model_open(&m), SLAPO_OK);
	CHECK_ST(api, api->weights_create(m, NULL, &weights), SLAPO_OK);
	CHECK_ST(api, api->weights_init_random(weights, 99), SLAPO_OK);

	job_init(&ref, new_session(2));
	CHECK_ST(api, job_run(&ref), SLAPO_OK);

	/* two threads, two sessions, shared weights */
	job_init(&a, new_session(2));
	job_init(&b, new_session(2));
	pthread_create(&ta, NULL, repeat, &a);
	pthread_create(&tb, NULL, repeat, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK(a.failures == 0 && b.failures == 0);

	/* other thread counts: the same results, up to the last bits */
	for (k = 1; k <= 4; k += 3) {
		job_init(&c, new_session(k));
		CHECK_ST(api, job_run(&c), SLAPO_OK);
		CHECK(close_to_ref(&c));
		api->session_free(c.s);
		job_free(&c);
	}

	/* one session, two threads at once: BUSY, never a crash */
	atomic_init(&stop, 0);
	a.stop = b.stop = &stop;
	api->session_free(b.s);
	b.s = a.s;
	pthread_create(&ta, NULL, hammer, &a);
	pthread_create(&tb, NULL, hammer, &b);
	for (k = 0; k < 200 && a.busy + b.busy == 0; k++) {
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
	atomic_store(&stop, 1);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK(a.other == 0 && b.other == 0);
	printf("busy answers seen: %d\n", a.busy + b.busy);
	CHECK(same_as_ref(&a));

	api->session_free(a.s);
	api->session_free(ref.s);
	job_free(&a);
	job_free(&b);
	job_free(&ref);
	api->weights_free(weights);
	api->model_close(m);
	return t_done("test_threads");
}
