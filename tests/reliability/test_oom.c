/* test_oom.c - the library's out-of-memory contract, at every allocation.
 *
 *   test_rel_oom MODEL.so
 *
 * For N = 1, 2, ...: arm testing_fail_alloc(N) and run a scenario that
 * uses every API entry (model, introspection, weights created with a log
 * callback, loaded from a file and from a sharded index, init_random,
 * weights_get/set/check, two sessions with 1 and 2 threads, output shapes,
 * two runs each). The allocation that fails makes one call fail; that
 * call must return SLAPO_OUT_OF_MEMORY with the last error saying so (or
 * succeed, when the runtime recovers by itself), and every handle must
 * stay valid: the failed call is retried with failures disarmed and must
 * succeed, and the scenario goes on to the end. Every run's outputs must
 * equal, bit for bit, those of a clean run. The sweep ends after
 * CLEAN_RUNS consecutive values of N where nothing failed. Leaks are for
 * LeakSanitizer (scripts/sanitize.sh); a crash or a hang fails the test.
 */
#include <stdlib.h>

#include "rel.h"

enum {
	CLEAN_RUNS = 25,   /* consecutive clean runs that end the sweep */
	MAX_N = 100000,    /* a bound, in case the sweep never ends */
};

static const SlapoApi *api;
static const char *ckpt, *index_path;
static int n_oom;      /* calls that returned OUT_OF_MEMORY in this run */
static int n_other;    /* unexpected statuses, all runs */
static int n_logged;   /* log lines, this run */

static void on_log(int32_t level, const char *msg, void *ud)
{
	(void)level;
	(void)ud;
	if (!msg || !*msg) {
		fprintf(stderr, "log callback got an empty message\n");
		t_failures++;
	}
	n_logged++;
}

/* RETRY(call): the call must return OK, or OUT_OF_MEMORY after which it
 * is retried with failures disarmed and must return OK. */
#define RETRY(expr)                                                   \
	do {                                                          \
		SlapoStatus st_ = (expr);                             \
		if (st_ == SLAPO_OUT_OF_MEMORY) {                     \
			note_oom(#expr, __LINE__);                    \
			api->testing_fail_alloc(0);                   \
			st_ = (expr);                                 \
		}                                                     \
		call_checked(st_, #expr, __LINE__, 1);                \
	} while (0)

static long long cur_n;

static void note_oom(const char *what, int line)
{
	const SlapoError *e = api->last_error();
	n_oom++;
	if (e->code != SLAPO_OUT_OF_MEMORY || !e->message[0]) {
		fprintf(stderr, "N=%lld line %d: %s returned OUT_OF_MEMORY but the last error is %s '%s'\n",
		        cur_n, line, what, api->status_name(e->code), e->message);
		t_failures++;
	}
}

static SlapoStatus call_checked(SlapoStatus st, const char *what, int line, int retried)
{
	if (st == SLAPO_OK)
		return st;
	if (st == SLAPO_OUT_OF_MEMORY && !retried) {
		note_oom(what, line);
		return st;
	}
	fprintf(stderr, "N=%lld line %d: %s returned %s%s: %s\n", cur_n, line, what,
	        api->status_name(st), retried ? " (after disarming)" : "",
	        api->last_error()->message);
	n_other++;
	t_failures++;
	return st;
}

static const char *first_param(SlapoModel *m, int untied)
{
	const SlapoModelInfo *info;
	api->model_info(m, &info);
	for (int i = 0; i < info->n_params; i++) {
		const SlapoTensorSpec *sp;
		api->model_tensor(m, SLAPO_PARAM, i, &sp);
		if (!untied || !sp->tied_to)
			return sp->name;
	}
	return NULL;
}

/* One pass over the API. out1/out2 receive the outputs of the two
 * sessions. */
static void scenario(RelIo *io1, RelIo *io2)
{
	SlapoModel *m = NULL;
	SlapoWeights *w = NULL, *w2 = NULL;
	SlapoSession *s1 = NULL, *s2 = NULL;
	const SlapoModelInfo *info;
	const SlapoTensorSpec *sp;
	DLManagedTensorVersioned *view = NULL;
	int32_t idx;
	int64_t shape[RT_MAX_NDIM];

	RETRY(api->model_open(&m));
	RETRY(api->model_info(m, &info));
	for (int k = 0; k < 3; k++) {
		int32_t n = k == 0 ? info->n_inputs : k == 1 ? info->n_outputs : info->n_params;
		for (int32_t i = 0; i < n; i++) {
			RETRY(api->model_tensor(m, (SlapoTensorKind)k, i, &sp));
			RETRY(api->model_find(m, (SlapoTensorKind)k, sp->name, &idx));
		}
	}
	for (int j = 0; j < info->n_outputs; j++)
		RETRY(api->model_output_shape(m, io1->pin, io1->n_in, j, shape));

	SlapoWeightsParams wp = SLAPO_WEIGHTS_PARAMS_INIT;
	wp.log = on_log;
	wp.n_threads = 2;
	RETRY(api->weights_create(m, &wp, &w));
	const char *paths[1] = {ckpt};
	RETRY(api->weights_load_safetensors(w, paths, 1, 0));
	RETRY(api->weights_check(w));
	/* set one parameter to the value it already has */
	const char *name = first_param(m, 1);
	RETRY(api->weights_get(w, name, &view));
	if (view) {
		DLTensor copy = view->dl_tensor;
		RETRY(api->weights_set(w, name, &copy));
		view->deleter(view);
		view = NULL;
	}
	/* second weights: random init, then the sharded index */
	RETRY(api->weights_create(m, NULL, &w2));
	RETRY(api->weights_init_random(w2, 7));
	const char *ipaths[1] = {index_path};
	RETRY(api->weights_load_safetensors(w2, ipaths, 1, 0));

	SlapoSessionParams sp1 = SLAPO_SESSION_PARAMS_INIT, sp2 = SLAPO_SESSION_PARAMS_INIT;
	sp1.n_threads = 1;
	sp2.n_threads = 2;
	RETRY(api->session_create(w, &sp1, &s1));
	RETRY(api->session_create(w2, &sp2, &s2));
	rel_io_poison(io1);
	rel_io_poison(io2);
	for (int r = 0; r < 2; r++) {
		RETRY(api->session_run(s1, io1->pin, io1->n_in, io1->pout, io1->n_out));
		RETRY(api->session_run(s2, io2->pin, io2->n_in, io2->pout, io2->n_out));
	}
	/* free in an unusual order: the handles are reference counted */
	api->weights_free(w);
	api->model_close(m);
	api->session_free(s1);
	api->weights_free(w2);
	api->session_free(s2);
}

int main(int argc, char **argv)
{
	SlapoModel *m;
	RelIo ref1, ref2, io1, io2;
	if (argc < 2) {
		fprintf(stderr, "usage: test_rel_oom MODEL.so\n");
		return 99;
	}
	api = rel_open(argv[1], &m);
	ckpt = t_path("model.safetensors");
	CHECK_ST(api, rel_write_checkpoint(api, m, 1234, ckpt), SLAPO_OK);
	char index[512];
	snprintf(index, sizeof index, "{\"metadata\": {}, \"weight_map\": {\"%s\": \"model.safetensors\"}}",
	         first_param(m, 1));
	index_path = t_write_file("model.safetensors.index.json", index, strlen(index));
	if (rel_io_init(api, m, 2, 5, 1, &ref1) || rel_io_init(api, m, 2, 5, 1, &ref2) ||
	    rel_io_init(api, m, 2, 5, 1, &io1) || rel_io_init(api, m, 2, 5, 1, &io2))
		return 1;

	/* the clean run gives the reference outputs */
	cur_n = 0;
	scenario(&ref1, &ref2);
	if (t_failures)
		return t_done("test_rel_oom");

	long long n, clean = 0, failed_calls = 0;
	for (n = 1; n < MAX_N && clean < CLEAN_RUNS; n++) {
		cur_n = n;
		n_oom = n_logged = 0;
		api->testing_fail_alloc(n);
		scenario(&io1, &io2);
		api->testing_fail_alloc(0);
		failed_calls += n_oom;
		clean = n_oom ? 0 : clean + 1;
		if (!rel_io_same(&io1, &ref1) || !rel_io_same(&io2, &ref2)) {
			fprintf(stderr, "N=%lld: outputs differ from the clean run\n", n);
			t_failures++;
		}
		if (t_failures > 20)
			break;
	}
	printf("test_rel_oom: %lld allocation sites failed in turn, %lld calls returned "
	       "OUT_OF_MEMORY and recovered\n",
	       n - CLEAN_RUNS - 1, failed_calls);
	CHECK(clean >= CLEAN_RUNS);
	CHECK(n_other == 0);
	rel_io_free(&ref1);
	rel_io_free(&ref2);
	rel_io_free(&io1);
	rel_io_free(&io2);
	api->model_close(m);
	return t_done("test_rel_oom");
}
