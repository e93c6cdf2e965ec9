/* test_two_libs.c - several model libraries in one process: two copies of
 * the same model in two .so files, and a different model (an older
 * descriptor version). Each has its own table, descriptor, last error
 * and allocation hook; weights load and run in each independently; one
 * can be dlclosed while others run.
 */
#include <dlfcn.h>
#include <stdlib.h>

#include "testlib.h"

typedef struct Lib {
	void *handle;
	const SlapoApi *api;
	SlapoModel *m;
	SlapoWeights *w;
	SlapoSession *s;
} Lib;

/* Runs B=2, S=5 and returns the logits (caller frees). */
static float *run(Lib *l, int V)
{
	TTensor ids, types, mask, out[3];
	int64_t sl[3] = {2, 5, V}, sh[3], ss[3] = {2, 5, 5};
	const SlapoTensorSpec *hid;
	const DLTensor *in[3];
	DLTensor *o[3];
	float *logits;
	int i;
	l->api->model_tensor(l->m, SLAPO_OUTPUT, 1, &hid);
	sh[0] = 2;
	sh[1] = 5;
	sh[2] = hid->shape[2];
	fake_inputs(2, 5, V, 3, &ids, &types, &mask);
	tt_init(&out[0], RT_F32, 3, sl);
	tt_init(&out[1], RT_F32, 3, sh);
	tt_init(&out[2], RT_F32, 3, ss);
	in[0] = &ids.t;
	in[1] = &types.t;
	in[2] = &mask.t;
	for (i = 0; i < 3; i++)
		o[i] = &out[i].t;
	CHECK_ST(l->api, l->api->session_run(l->s, in, 3, o, 3), SLAPO_OK);
	logits = out[0].t.data;
	tt_free(&out[1]);
	tt_free(&out[2]);
	tt_free(&ids);
	tt_free(&types);
	tt_free(&mask);
	return logits;
}

static void close_lib(Lib *l)
{
	l->api->session_free(l->s);
	l->api->weights_free(l->w);
	l->api->model_close(l->m);
	l->s = NULL;
	l->w = NULL;
	l->m = NULL;
}

int main(int argc, char **argv)
{
	Lib a, a2, b;
	const SlapoModelInfo *ia, *ib;
	FakeParams p;
	const char *paths[1];
	float *la, *la2, *lb;
	int32_t idx;
	SlapoModel *tmp;
	if (argc < 4) {
		fprintf(stderr, "usage: test_two_libs A.so A2.so B.so\n");
		return 99;
	}
	memset(&a, 0, sizeof a);
	memset(&a2, 0, sizeof a2);
	memset(&b, 0, sizeof b);
	a.api = t_load(argv[1], &a.handle);
	a2.api = t_load(argv[2], &a2.handle);
	b.api = t_load(argv[3], &b.handle);
	if (!a.api || !a2.api || !b.api)
		return 1;
	CHECK(a.handle != a2.handle && a.api != a2.api && a.api != b.api);
	CHECK_ST(a.api, a.api->model_open(&a.m), SLAPO_OK);
	CHECK_ST(a2.api, a2.api->model_open(&a2.m), SLAPO_OK);
	CHECK_ST(b.api, b.api->model_open(&b.m), SLAPO_OK);
	a.api->model_info(a.m, &ia);
	b.api->model_info(b.m, &ib);
	CHECK(!strcmp(ia->name, "FakeMLP") && !strcmp(ib->name, "FakeMLP2"));

	/* last errors are per library */
	CHECK_ST(a.api, a.api->model_find(a.m, SLAPO_PARAM, "nope", &idx),
	         SLAPO_NOT_FOUND);
	CHECK(b.api->last_error()->code == SLAPO_OK);
	CHECK(a2.api->last_error()->code == SLAPO_OK);
	CHECK_ST(b.api, b.api->model_tensor(b.m, SLAPO_INPUT, 9, NULL),
	         SLAPO_INVALID_ARGUMENT);
	CHECK(a.api->last_error()->code == SLAPO_NOT_FOUND);
	CHECK(!strcmp(a.api->last_error()->object_name, "nope"));
	/* so are the allocation hooks */
	a.api->testing_fail_alloc(1);
	CHECK_ST(b.api, b.api->model_open(&tmp), SLAPO_OK);
	b.api->model_close(tmp);
	CHECK_ST(a.api, a.api->model_open(&tmp), SLAPO_OUT_OF_MEMORY);
	a.api->testing_fail_alloc(0);

	/* the same checkpoint into both copies of model A, not into B */
	fake_init_for(&p, a.api, a.m, 21);
	paths[0] = t_path("a.safetensors");
	CHECK_ST(NULL, fake_write(&p, paths[0], FW_LEGACY), SLAPO_OK);
	CHECK_ST(a.api, a.api->weights_create(a.m, NULL, &a.w), SLAPO_OK);
	CHECK_ST(a2.api, a2.api->weights_create(a2.m, NULL, &a2.w), SLAPO_OK);
	CHECK_ST(b.api, b.api->weights_create(b.m, NULL, &b.w), SLAPO_OK);
	CHECK_ST(a.api, a.api->weights_load_safetensors(a.w, paths, 1, 0), SLAPO_OK);
	CHECK_ST(a2.api, a2.api->weights_load_safetensors(a2.w, paths, 1, 0), SLAPO_OK);
	CHECK_ST(b.api, b.api->weights_load_safetensors(b.w, paths, 1, 0),
	         SLAPO_SHAPE_MISMATCH);
	CHECK_ERR(b.api, "has shape [16], the model expects [8]", "emb.LayerNorm.bias");
	CHECK_ST(b.api, b.api->weights_init_random(b.w, 5), SLAPO_OK);
	CHECK_ST(a.api, a.api->session_create(a.w, NULL, &a.s), SLAPO_OK);
	CHECK_ST(a2.api, a2.api->session_create(a2.w, NULL, &a2.s), SLAPO_OK);
	CHECK_ST(b.api, b.api->session_create(b.w, NULL, &b.s), SLAPO_OK);

	la = run(&a, 50);
	lb = run(&b, 40);
	la2 = run(&a2, 50);
	CHECK(!memcmp(la, la2, 2 * 5 * 50 * sizeof(float)));
	/* B is a version 2 descriptor (as before profiles): it loads and
	 * runs, and has nothing to profile with */
	CHECK_ST(b.api, b.api->session_profile(b.s, SLAPO_PROFILE_ON), SLAPO_UNSUPPORTED);
	CHECK_ERR(b.api, "no step table", NULL);
	CHECK_ST(a.api, a.api->session_profile(a.s, SLAPO_PROFILE_ON), SLAPO_OK);
	free(la2);
	free(lb);

	/* B goes away entirely; A keeps working */
	close_lib(&b);
	CHECK(dlclose(b.handle) == 0);
	la2 = run(&a, 50);
	CHECK(!memcmp(la, la2, 2 * 5 * 50 * sizeof(float)));
	free(la);
	free(la2);
	close_lib(&a);
	close_lib(&a2);
	fake_free(&p);
	return t_done("test_two_libs");
}
