/* test_model.c - the public ABI on the fake model library (argv[1]):
 * introspection, weight loading (legacy names, prefixes, ties, extras,
 * missing/shape/dtype errors, F16/BF16), numerics against the double
 * reference, input/output checking, strided and misaligned tensors,
 * reference counting, and an out-of-memory sweep over every allocation.
 */
#include <dlfcn.h>
#include <stdlib.h>

#include "testlib.h"

static const SlapoApi *api;

/* Log messages collected by the callback. */
static char log_text[16384];

static void collect(int32_t level, const char *msg, void *ud)
{
	size_t n = strlen(log_text);
	(void)ud;
	snprintf(log_text + n, sizeof log_text - n, "%d %s\n", (int)level, msg);
}

/* Model + weights loaded from a file written with flags. */
static SlapoStatus open_loaded(int flags, uint32_t load_flags, FakeParams *p,
                               SlapoModel **m, SlapoWeights **w)
{
	SlapoWeightsParams wp = SLAPO_WEIGHTS_PARAMS_INIT;
	const char *path = t_path("w.safetensors");
	const char *paths[1];
	SlapoStatus st;
	paths[0] = path;
	wp.log = collect;
	log_text[0] = '\0';
	CHECK_ST(api, api->model_open(m), SLAPO_OK);
	CHECK_ST(api, api->weights_create(*m, &wp, w), SLAPO_OK);
	fake_init_for(p, api, *m, 42);
	if (flags & (FW_F16 | FW_BF16))
		fake_round(p, flags & FW_BF16);
	CHECK_ST(NULL, fake_write(p, path, flags), SLAPO_OK);
	st = api->weights_load_safetensors(*w, paths, 1, load_flags);
	return st;
}

static void close_all(SlapoModel *m, SlapoWeights *w, SlapoSession *s)
{
	api->session_free(s);
	api->weights_free(w);
	api->model_close(m);
}

/* Runs (B, S) and checks all outputs against the reference. */
static void run_and_compare(SlapoSession *s, const FakeParams *p, int64_t B, int64_t S,
                            uint64_t seed)
{
	TTensor ids, types, mask, out[3];
	int64_t sl[3] = {B, S, p->V}, sh[3] = {B, S, p->H}, ss[3] = {B, S, S};
	double *rl = malloc((size_t)(B * S * p->V) * sizeof *rl);
	double *rh = malloc((size_t)(B * S * p->H) * sizeof *rh);
	double *rs = malloc((size_t)(B * S * S) * sizeof *rs);
	const DLTensor *in[3];
	DLTensor *o[3];
	int i;
	fake_inputs(B, S, p->V, seed, &ids, &types, &mask);
	tt_init(&out[0], RT_F32, 3, sl);
	tt_init(&out[1], RT_F32, 3, sh);
	tt_init(&out[2], RT_F32, 3, ss);
	in[0] = &ids.t;
	in[1] = &types.t;
	in[2] = &mask.t;
	for (i = 0; i < 3; i++) {
		memset(out[i].t.data, 0xff, (size_t)tt_numel(&out[i]) * 4); /* NaN */
		o[i] = &out[i].t;
	}
	CHECK_ST(api, api->session_run(s, in, 3, o, 3), SLAPO_OK);
	fake_reference(p, B, S, ids.t.data, types.t.data, mask.t.data, rl, rh, rs);
	CHECK(t_err_ratio(out[0].t.data, rl, tt_numel(&out[0]), 1e-4, 1e-4) <= 1);
	CHECK(t_err_ratio(out[1].t.data, rh, tt_numel(&out[1]), 1e-4, 1e-5) <= 1);
	CHECK(t_err_ratio(out[2].t.data, rs, tt_numel(&out[2]), 1e-4, 1e-4) <= 1);
	for (i = 0; i < 3; i++)
		tt_free(&out[i]);
	tt_free(&ids);
	tt_free(&types);
	tt_free(&mask);
	free(rl);
	free(rh);
	free(rs);
}

static void test_introspection(void)
{
	SlapoModel *m;
	const SlapoModelInfo *info;
	const SlapoTensorSpec *sp;
	int32_t idx = -1;
	CHECK_ST(api, api->model_open(&m), SLAPO_OK);
	CHECK_ST(api, api->model_info(m, &info), SLAPO_OK);
	CHECK(!strcmp(info->name, "FakeMLP"));
	CHECK(info->n_inputs == 3 && info->n_outputs == 3 && info->n_params == 11);
	CHECK(info->n_symbols == 2 && !strcmp(info->symbol_names[1], "S"));
	CHECK(info->symbol_max[1] == 64 && info->symbol_max[0] == -1);
	CHECK(info->n_param_elements ==
	      50 * 16 + 2 * 16 + 16 + 16 + 32 * 16 + 32 + 16 * 32 + 16 + 50);
	CHECK(info->devices == SLAPO_DEVICE_BIT_CPU);
	CHECK_ST(api, api->model_tensor(m, SLAPO_INPUT, 0, &sp), SLAPO_OK);
	CHECK(!strcmp(sp->name, "input_ids") && sp->ndim == 2);
	CHECK(sp->shape[0] == -1 && sp->shape[1] == -1);
	CHECK(!strcmp(sp->dim_names[0], "B") && sp->dim_symbols[1] == 1);
	CHECK(sp->value_max == 50 && sp->default_fill == SLAPO_FILL_NONE);
	CHECK_ST(api, api->model_tensor(m, SLAPO_INPUT, 2, &sp), SLAPO_OK);
	CHECK(sp->default_fill == SLAPO_FILL_ONES);
	CHECK_ST(api, api->model_tensor(m, SLAPO_OUTPUT, 0, &sp), SLAPO_OK);
	CHECK(sp->shape[2] == 50 && sp->dim_names[2] == NULL);
	CHECK_ST(api, api->model_tensor(m, SLAPO_PARAM, 9, &sp), SLAPO_OK);
	CHECK(sp->tied_to && !strcmp(sp->tied_to, "emb.word_embeddings.weight"));
	CHECK_ST(api, api->model_tensor(m, SLAPO_PARAM, 0, &sp), SLAPO_OK);
	CHECK(sp->tied_to == NULL);
	CHECK_ST(api, api->model_tensor(m, SLAPO_PARAM, 11, &sp), SLAPO_INVALID_ARGUMENT);
	CHECK_ST(api, api->model_tensor(m, (SlapoTensorKind)7, 0, &sp),
	         SLAPO_INVALID_ARGUMENT);
	CHECK_ST(api, api->model_find(m, SLAPO_PARAM, "emb.LayerNorm.gamma", &idx),
	         SLAPO_OK);
	CHECK(idx == 2);
	CHECK_ST(api, api->model_find(m, SLAPO_PARAM, "fake.fc1.weight", &idx), SLAPO_OK);
	CHECK(idx == 4);
	CHECK_ST(api, api->model_find(m, SLAPO_OUTPUT, "scores", &idx), SLAPO_OK);
	CHECK(idx == 2);
	CHECK_ST(api, api->model_find(m, SLAPO_INPUT, "nope", &idx), SLAPO_NOT_FOUND);
	CHECK_ERR(api, "no input named 'nope'", "nope");
	api->model_close(m);
}

static void test_load_and_run(void)
{
	SlapoModel *m;
	SlapoWeights *w;
	SlapoSession *s;
	FakeParams p;
	DLManagedTensorVersioned *v;
	CHECK_ST(api, open_loaded(FW_LEGACY | FW_PREFIX | FW_EXTRAS, 0, &p, &m, &w),
	         SLAPO_OK);
	CHECK(strstr(log_text, "w.safetensors: ignoring unexpected tensor "
	                       "'mystery.weight': FakeMLP has no such parameter"));
	CHECK(strstr(log_text, "\n2 /") || !strncmp(log_text, "2 /", 3));
	CHECK(!strstr(log_text, "unexpected tensor 'fake.pooler"));
	CHECK(!strstr(log_text, "unexpected tensor 'fake.layer.0.attn.bias'"));
	CHECK(!strstr(log_text, "unexpected tensor 'layer.1.attn.bias'"));
	CHECK(strstr(log_text, "unexpected tensor 'fake.layer.1.x.attn.bias'"));
	CHECK(strstr(log_text, "3 loaded 9 parameters of FakeMLP from 1 file(s): "
	                       "2 legacy names renamed, 2 tied, 4 expected extras "
	                       "and 2 unexpected tensors ignored"));
	CHECK(strstr(log_text, "4 ") && strstr(log_text, "legacy name"));
	/* the tied decoder is a view of the word embeddings */
	CHECK_ST(api, api->weights_get(w, "head.decoder.weight", &v), SLAPO_OK);
	CHECK(v->flags & DLPACK_FLAG_BITMASK_READ_ONLY);
	CHECK(v->dl_tensor.ndim == 2 && v->dl_tensor.shape[0] == 50);
	CHECK(!memcmp(v->dl_tensor.data, p.word, 50 * 16 * sizeof(float)));
	CHECK(v->version.major == 1);
	v->deleter(v);
	CHECK_ST(api, api->weights_check(w), SLAPO_OK);
	CHECK_ST(api, api->session_create(w, NULL, &s), SLAPO_OK);
	run_and_compare(s, &p, 2, 5, 1);
	run_and_compare(s, &p, 3, 64, 2); /* bigger: the workspace grows */
	run_and_compare(s, &p, 1, 1, 3);
	/* frozen while a session exists */
	{
		const char *paths[] = {t_path("w.safetensors")};
		CHECK_ST(api, api->weights_load_safetensors(w, paths, 1, 0), SLAPO_BUSY);
		CHECK_ST(api, api->weights_init_random(w, 1), SLAPO_BUSY);
	}
	/* handles freed in any order */
	api->model_close(m);
	api->weights_free(w);
	run_and_compare(s, &p, 2, 3, 4);
	api->session_free(s);
	fake_free(&p);
}

static void test_load_errors(void)
{
	SlapoModel *m;
	SlapoWeights *w;
	SlapoSession *s = NULL;
	FakeParams p;
	TTensor b;
	int64_t shape[1] = {16};
	const char *lfs = "version https://git-lfs.github.com/spec/v1\n"
	                  "oid sha256:abc\nsize 1234\n";
	const char *paths[2];

	CHECK_ST(api, open_loaded(FW_NO_FC2_BIAS, 0, &p, &m, &w), SLAPO_MISSING_PARAMS);
	CHECK_ERR(api, "1 of 9 parameters of FakeMLP are missing", "fc2.bias");
	CHECK(strstr(log_text, "1 SLAPO_MISSING_PARAMS"));
	CHECK_ST(api, api->weights_check(w), SLAPO_MISSING_PARAMS);
	CHECK_ERR(api, "has not been loaded (9 of 9", NULL); /* unchanged */
	CHECK_ST(api, api->session_create(w, NULL, &s), SLAPO_MISSING_PARAMS);
	CHECK(s == NULL);
	paths[0] = t_path("w.safetensors");
	CHECK_ST(api,
	         api->weights_load_safetensors(w, paths, 1, SLAPO_LOAD_ALLOW_MISSING),
	         SLAPO_OK);
	CHECK_ST(api, api->weights_check(w), SLAPO_MISSING_PARAMS);
	CHECK_ERR(api, NULL, "fc2.bias");
	tt_init(&b, RT_F32, 1, shape);
	memcpy(b.t.data, p.fc2_b, 16 * sizeof(float));
	CHECK_ST(api, api->weights_set(w, "fc2.bias", &b.t), SLAPO_OK);
	CHECK_ST(api, api->weights_check(w), SLAPO_OK);
	CHECK_ST(api, api->session_create(w, NULL, &s), SLAPO_OK);
	run_and_compare(s, &p, 2, 4, 5);
	tt_free(&b);
	close_all(m, w, s);
	fake_free(&p);

	/* only the tied alias in the file: the target comes from it */
	CHECK_ST(api, open_loaded(FW_ALIAS_ONLY, 0, &p, &m, &w), SLAPO_OK);
	CHECK(strstr(log_text, "'emb.word_embeddings.weight' loaded from its tied "
	                       "copy 'head.decoder.weight'"));
	CHECK_ST(api, api->session_create(w, NULL, &s), SLAPO_OK);
	run_and_compare(s, &p, 2, 4, 6);
	close_all(m, w, s);
	fake_free(&p);

	CHECK_ST(api, open_loaded(FW_BAD_SHAPE, 0, &p, &m, &w), SLAPO_SHAPE_MISMATCH);
	CHECK_ERR(api, "has shape [32, 17], the model expects [32, 16]", "fc1.weight");
	close_all(m, w, NULL);
	fake_free(&p);

	CHECK_ST(api, open_loaded(FW_I32_FC1, 0, &p, &m, &w), SLAPO_DTYPE_MISMATCH);
	CHECK_ERR(api, "holds I32 data", "fc1.weight");
	close_all(m, w, NULL);
	fake_free(&p);

	CHECK_ST(api, open_loaded(FW_LEGACY | FW_BOTH_NAMES, 0, &p, &m, &w),
	         SLAPO_FORMAT);
	CHECK_ERR(api, "is given twice", "emb.LayerNorm.weight");
	close_all(m, w, NULL);
	fake_free(&p);

	CHECK_ST(api, open_loaded(FW_EXTRAS, SLAPO_LOAD_STRICT, &p, &m, &w),
	         SLAPO_NOT_FOUND);
	CHECK_ERR(api, "matches no parameter", "fake.layer.1.x.attn.bias");
	close_all(m, w, NULL);
	fake_free(&p);

	CHECK_ST(api, open_loaded(0, 0x80, &p, &m, &w), SLAPO_INVALID_ARGUMENT);
	paths[0] = t_write_file("lfs.safetensors", lfs, strlen(lfs));
	CHECK_ST(api, api->weights_load_safetensors(w, paths, 1, 0), SLAPO_FORMAT);
	CHECK_ERR(api, "git-lfs pointer", paths[0]);
	paths[0] = t_path("does-not-exist.safetensors");
	CHECK_ST(api, api->weights_load_safetensors(w, paths, 1, 0), SLAPO_IO);
	CHECK_ERR(api, "No such file", paths[0]);
	paths[0] = t_path("w.safetensors");
	paths[1] = NULL;
	CHECK_ST(api, api->weights_load_safetensors(w, paths, 2, 0),
	         SLAPO_INVALID_ARGUMENT);
	CHECK_ST(api, api->weights_load_safetensors(w, paths, 0, 0),
	         SLAPO_INVALID_ARGUMENT);
	/* the same file twice is loaded once */
	paths[1] = paths[0];
	CHECK_ST(api, api->weights_load_safetensors(w, paths, 2, 0), SLAPO_OK);
	/* two files that both hold every parameter */
	paths[1] = t_path("w2.safetensors");
	CHECK_ST(NULL, fake_write(&p, paths[1], FW_LEGACY), SLAPO_OK);
	CHECK_ST(api, api->weights_load_safetensors(w, paths, 2, 0), SLAPO_FORMAT);
	CHECK_ERR(api,
	          "parameter 'emb.LayerNorm.bias' is given twice: as "
	          "'emb.LayerNorm.bias' in",
	          "emb.LayerNorm.bias");
	close_all(m, w, NULL);
	fake_free(&p);
}

static const char *t_write_str(const char *name, const char *text)
{
	return t_write_file(name, text, strlen(text));
}

/* A sharded checkpoint: the index names two shards. */
static void test_shards(void)
{
	SlapoModel *m;
	SlapoWeights *w;
	SlapoSession *s;
	FakeParams p;
	RtStFile f;
	RtStWriteTensor shard[2][12];
	int counts[2] = {0, 0}, i, k;
	char index[4096];
	size_t at = 0;
	const char *paths[1];
	/* split a full checkpoint's tensors over two shard files */
	CHECK_ST(api, open_loaded(FW_LEGACY, 0, &p, &m, &w), SLAPO_OK);
	CHECK_ST(NULL, rt_st_open(t_path("w.safetensors"), &f), SLAPO_OK);
	at += (size_t)snprintf(index, sizeof index,
	                       "{\"metadata\":{\"total_size\":1},\"weight_map\":{");
	for (k = 0; k < f.n_tensors; k++) {
		const RtStTensor *t = &f.tensors[k];
		RtStWriteTensor *o = &shard[k % 2][counts[k % 2]++];
		o->name = t->name;
		o->dtype = t->dtype;
		o->ndim = t->ndim;
		o->shape = t->shape;
		o->data = t->data;
		at += (size_t)snprintf(index + at, sizeof index - at,
		                       "%s\"%s\":\"model-0000%d-of-00002.safetensors\"",
		                       k ? "," : "", t->name, k % 2 + 1);
	}
	snprintf(index + at, sizeof index - at, "}}");
	for (i = 0; i < 2; i++) {
		char name[64];
		snprintf(name, sizeof name, "model-0000%d-of-00002.safetensors", i + 1);
		CHECK_ST(NULL, rt_st_write(t_path(name), counts[i], shard[i], 0, NULL),
		         SLAPO_OK);
	}
	rt_st_close(&f);
	api->weights_free(w);
	CHECK_ST(api, api->weights_create(m, NULL, &w), SLAPO_OK);
	paths[0] = t_write_file("model.safetensors.index.json", index, strlen(index));
	CHECK_ST(api, api->weights_load_safetensors(w, paths, 1, 0), SLAPO_OK);
	CHECK_ST(api, api->session_create(w, NULL, &s), SLAPO_OK);
	run_and_compare(s, &p, 2, 3, 8);
	api->session_free(s);
	/* an index may not point outside its directory, nor at nothing */
	paths[0] = t_write_str("bad.index.json",
	                       "{\"weight_map\":{\"a\":\"../x.safetensors\"}}");
	CHECK_ST(api, api->weights_load_safetensors(w, paths, 1, 0), SLAPO_FORMAT);
	CHECK_ERR(api, "weight_map entry \"a\" is not a file name", paths[0]);
	paths[0] = t_write_str("empty.index.json", "{\"weight_map\":{}}");
	CHECK_ST(api, api->weights_load_safetensors(w, paths, 1, 0), SLAPO_FORMAT);
	CHECK_ERR(api, "lists no shard files", NULL);
	paths[0] = t_write_str("dup.index.json",
	                       "{\"weight_map\":{\"a\":\"x\",\"a\":\"y\"}}");
	CHECK_ST(api, api->weights_load_safetensors(w, paths, 1, 0), SLAPO_FORMAT);
	CHECK_ERR(api, "duplicate key", NULL);
	paths[0] = t_path("none.index.json");
	CHECK_ST(api, api->weights_load_safetensors(w, paths, 1, 0), SLAPO_IO);
	close_all(m, w, NULL);
	fake_free(&p);
}

static void test_half_precision(void)
{
	int bf;
	for (bf = 0; bf < 2; bf++) {
		SlapoModel *m;
		SlapoWeights *w;
		SlapoSession *s;
		FakeParams p;
		DLManagedTensorVersioned *v;
		CHECK_ST(api, open_loaded(bf ? FW_BF16 : FW_F16, 0, &p, &m, &w),
		         SLAPO_OK);
		CHECK_ST(api, api->weights_get(w, "fc2.weight", &v), SLAPO_OK);
		CHECK(!memcmp(v->dl_tensor.data, p.fc2_w, 16 * 32 * sizeof(float)));
		CHECK(v->dl_tensor.dtype.code == kDLFloat &&
		      v->dl_tensor.dtype.bits == 32);
		v->deleter(v);
		CHECK_ST(api, api->session_create(w, NULL, &s), SLAPO_OK);
		run_and_compare(s, &p, 2, 6, 7);
		close_all(m, w, s);
		fake_free(&p);
	}
}

static void test_random_init(void)
{
	SlapoModel *m;
	SlapoWeights *w1, *w2, *w3;
	DLManagedTensorVersioned *a, *b, *c, *ln;
	CHECK_ST(api, api->model_open(&m), SLAPO_OK);
	CHECK_ST(api, api->weights_create(m, NULL, &w1), SLAPO_OK);
	CHECK_ST(api, api->weights_create(m, NULL, &w2), SLAPO_OK);
	CHECK_ST(api, api->weights_create(m, NULL, &w3), SLAPO_OK);
	CHECK_ST(api, api->weights_get(w1, "fc1.weight", &a), SLAPO_MISSING_PARAMS);
	CHECK_ST(api, api->weights_init_random(w1, 7), SLAPO_OK);
	CHECK_ST(api, api->weights_init_random(w2, 7), SLAPO_OK);
	CHECK_ST(api, api->weights_init_random(w3, 8), SLAPO_OK);
	CHECK_ST(api, api->weights_check(w1), SLAPO_OK);
	CHECK_ST(api, api->weights_get(w1, "fc1.weight", &a), SLAPO_OK);
	CHECK_ST(api, api->weights_get(w2, "fc1.weight", &b), SLAPO_OK);
	CHECK_ST(api, api->weights_get(w3, "fc1.weight", &c), SLAPO_OK);
	CHECK_ST(api, api->weights_get(w1, "emb.LayerNorm.gamma", &ln), SLAPO_OK);
	CHECK(!memcmp(a->dl_tensor.data, b->dl_tensor.data, 32 * 16 * 4));
	CHECK(memcmp(a->dl_tensor.data, c->dl_tensor.data, 32 * 16 * 4));
	CHECK(((float *)ln->dl_tensor.data)[5] == 1.0f);
	/* the view outlives the handle that made it */
	api->weights_free(w1);
	api->model_close(m);
	CHECK(((float *)ln->dl_tensor.data)[0] == 1.0f);
	a->deleter(a);
	b->deleter(b);
	c->deleter(c);
	ln->deleter(ln);
	api->weights_free(w2);
	api->weights_free(w3);
}

/* Builds the three inputs and outputs of a run on random weights. */
typedef struct Io {
	TTensor ids, types, mask, out[3];
	const DLTensor *in[3];
	DLTensor *o[3];
} Io;

static void io_init(Io *io, int64_t B, int64_t S)
{
	int64_t sl[3] = {B, S, 50}, sh[3] = {B, S, 16}, ss[3] = {B, S, S};
	int i;
	fake_inputs(B, S, 50, 9, &io->ids, &io->types, &io->mask);
	tt_init(&io->out[0], RT_F32, 3, sl);
	tt_init(&io->out[1], RT_F32, 3, sh);
	tt_init(&io->out[2], RT_F32, 3, ss);
	io->in[0] = &io->ids.t;
	io->in[1] = &io->types.t;
	io->in[2] = &io->mask.t;
	for (i = 0; i < 3; i++)
		io->o[i] = &io->out[i].t;
}

static void io_free(Io *io)
{
	int i;
	tt_free(&io->ids);
	tt_free(&io->types);
	tt_free(&io->mask);
	for (i = 0; i < 3; i++)
		tt_free(&io->out[i]);
}

/* session_profile: per-step records of the fake model's nine steps, its
 * timeline, stopping, resetting, failed runs left out, and outputs
 * bit-identical with and without profiling. */
static void test_profile(void)
{
	SlapoModel *m;
	SlapoWeights *w;
	SlapoSession *s;
	const SlapoProfile *pr;
	Io io, io2;
	TTensor bad;
	int64_t bshape[2] = {1, 3};
	int32_t i;

	CHECK(api->abi_minor >= 2);
	CHECK_ST(api, api->model_open(&m), SLAPO_OK);
	CHECK_ST(api, api->weights_create(m, NULL, &w), SLAPO_OK);
	CHECK_ST(api, api->weights_init_random(w, 7), SLAPO_OK);
	CHECK_ST(api, api->session_create(w, NULL, &s), SLAPO_OK);
	CHECK_ST(api, api->session_profile_read(s, &pr), SLAPO_INVALID_ARGUMENT);
	CHECK_ERR(api, "never profiled", NULL);
	CHECK_ST(api, api->session_profile(s, SLAPO_PROFILE_EVENTS), SLAPO_INVALID_ARGUMENT);
	CHECK_ST(api, api->session_profile(s, SLAPO_PROFILE_ON | 0x100),
	         SLAPO_INVALID_ARGUMENT);
	CHECK_ST(api, api->session_profile(NULL, SLAPO_PROFILE_ON), SLAPO_INVALID_ARGUMENT);

	/* a run without, then two with profiling: the same bits */
	io_init(&io, 2, 5);
	io_init(&io2, 2, 5);
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_OK);
	CHECK_ST(api, api->session_profile(s, SLAPO_PROFILE_ON | SLAPO_PROFILE_EVENTS),
	         SLAPO_OK);
	CHECK_ST(api, api->session_run(s, io2.in, 3, io2.o, 3), SLAPO_OK);
	for (i = 0; i < 3; i++)
		CHECK(!memcmp(io.out[i].t.data, io2.out[i].t.data,
		              (size_t)tt_numel(&io.out[i]) * 4));
	io_free(&io2);
	io_init(&io2, 1, 3);
	CHECK_ST(api, api->session_run(s, io2.in, 3, io2.o, 3), SLAPO_OK);
	/* a failed run is not recorded */
	tt_init(&bad, RT_I64, 2, bshape);
	io2.in[0] = &bad.t;
	memset(bad.t.data, 0, 3 * 8);
	((int64_t *)bad.t.data)[1] = 50; /* outside the vocabulary */
	CHECK_ST(api, api->session_run(s, io2.in, 3, io2.o, 3), SLAPO_INVALID_ARGUMENT);
	CHECK_ST(api, api->session_profile_read(s, &pr), SLAPO_OK);
	CHECK(pr->device == SLAPO_DEVICE_BIT_CPU && pr->n_steps == 9 && pr->n_runs == 2);
	CHECK(!strcmp(pr->steps[0].name, "embed_ln") && !strcmp(pr->steps[0].kind, "map"));
	CHECK(!strcmp(pr->steps[0].source, "fake.slapo:3") &&
	      !strcmp(pr->steps[0].module, "emb"));
	CHECK(!strcmp(pr->steps[8].source, "") && !strcmp(pr->steps[8].module, ""));
	for (i = 0; i < pr->n_steps; i++) {
		const SlapoProfileStep *st = &pr->steps[i];
		CHECK(st->calls == 2);
		CHECK(st->min_ns <= st->max_ns && st->total_ns >= st->min_ns + st->max_ns);
		CHECK(st->total_ns <= st->min_ns + st->max_ns);
	}
	/* costs at the last run's shapes: B = 1, S = 3 */
	CHECK(pr->steps[1].flops == 2.0 * 3 * 16 * 32);
	CHECK(pr->steps[8].flops == 2.0 * 3 * 3 * 16 && pr->steps[8].bytes > 0);
	CHECK(pr->n_events == 18 && pr->dropped_events == 0);
	for (i = 0; i < pr->n_events; i++) {
		const SlapoProfileEvent *e = &pr->events[i];
		CHECK(e->step == i % 9 && e->run == i / 9);
		if (i > 0)
			CHECK(e->start_ns >= pr->events[i - 1].start_ns + pr->events[i - 1].dur_ns);
	}
	/* stopped: the records stay, runs are not added */
	CHECK_ST(api, api->session_profile(s, SLAPO_PROFILE_OFF), SLAPO_OK);
	io2.in[0] = &io2.ids.t;
	CHECK_ST(api, api->session_run(s, io2.in, 3, io2.o, 3), SLAPO_OK);
	CHECK_ST(api, api->session_profile_read(s, &pr), SLAPO_OK);
	CHECK(pr->n_runs == 2 && pr->steps[0].calls == 2);
	/* started again: from zero, totals only */
	CHECK_ST(api, api->session_profile(s, SLAPO_PROFILE_ON), SLAPO_OK);
	CHECK_ST(api, api->session_run(s, io2.in, 3, io2.o, 3), SLAPO_OK);
	CHECK_ST(api, api->session_profile_read(s, &pr), SLAPO_OK);
	CHECK(pr->n_runs == 1 && pr->steps[4].calls == 1 && pr->n_events == 0);
	tt_free(&bad);
	io_free(&io);
	io_free(&io2);
	close_all(m, w, s);
}

static void test_run_errors(void)
{
	SlapoModel *m;
	SlapoWeights *w;
	SlapoSession *s;
	SlapoWeightsParams wp = SLAPO_WEIGHTS_PARAMS_INIT;
	SlapoSessionParams sp = SLAPO_SESSION_PARAMS_INIT;
	Io io;
	TTensor bad;
	int64_t shape2[2] = {2, 6}, shape1[1] = {12}, out_shape[3];
	void *data;

	CHECK(api->abi_major == SLAPO_ABI_MAJOR);
	CHECK(api->struct_size == sizeof(SlapoApi));
	CHECK(!strcmp(api->status_name(SLAPO_FORMAT), "SLAPO_FORMAT"));
	CHECK(!strcmp(api->status_name(999), "SLAPO_UNKNOWN"));
	CHECK_ST(api, api->model_open(NULL), SLAPO_INVALID_ARGUMENT);
	CHECK(api->last_error()->code == SLAPO_INVALID_ARGUMENT);
	CHECK_ST(api, api->model_info(NULL, NULL), SLAPO_INVALID_ARGUMENT);
	CHECK_ST(api, api->model_open(&m), SLAPO_OK);
	CHECK(api->last_error()->code == SLAPO_OK); /* reset by each call */
	CHECK(api->last_error()->message[0] == '\0');
	CHECK_ST(api, api->weights_create(NULL, NULL, &w), SLAPO_INVALID_ARGUMENT);
	wp.device.device_type = kDLCUDA;
	CHECK_ST(api, api->weights_create(m, &wp, &w), SLAPO_UNSUPPORTED);
	CHECK_ERR(api, "compiled without CUDA code", NULL);
	wp.device.device_type = kDLCPU;
	wp.device.device_id = 1;
	CHECK_ST(api, api->weights_create(m, &wp, &w), SLAPO_INVALID_ARGUMENT);
	wp.device.device_id = 0;
	wp.struct_size = 4;
	CHECK_ST(api, api->weights_create(m, &wp, &w), SLAPO_INVALID_ARGUMENT);
	wp.struct_size = offsetof(SlapoWeightsParams, n_threads); /* old caller */
	CHECK_ST(api, api->weights_create(m, &wp, &w), SLAPO_OK);
	CHECK_ST(api, api->session_create(w, NULL, &s), SLAPO_MISSING_PARAMS);
	CHECK_ERR(api, "'emb.word_embeddings.weight' has not been loaded",
	          "emb.word_embeddings.weight");
	CHECK_ST(api, api->weights_init_random(w, 3), SLAPO_OK);
	sp.n_threads = -1;
	CHECK_ST(api, api->session_create(w, &sp, &s), SLAPO_INVALID_ARGUMENT);
	sp.n_threads = 2;
	CHECK_ST(api, api->session_create(w, &sp, &s), SLAPO_OK);

	io_init(&io, 2, 6);
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_OK);
	CHECK_ST(api, api->session_run(NULL, io.in, 3, io.o, 3), SLAPO_INVALID_ARGUMENT);
	CHECK_ST(api, api->session_run(s, io.in, 2, io.o, 3), SLAPO_INVALID_ARGUMENT);
	CHECK_ERR(api, "takes 3 inputs, got 2", NULL);
	CHECK_ST(api, api->session_run(s, NULL, 3, io.o, 3), SLAPO_INVALID_ARGUMENT);
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 2), SLAPO_INVALID_ARGUMENT);
	io.in[1] = NULL;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_INVALID_ARGUMENT);
	CHECK_ERR(api, "input 'token_type_ids' (index 1) is NULL", "token_type_ids");
	/* wrong dtype */
	tt_init(&bad, (DLDataType){kDLInt, 32, 1}, 2, shape2);
	io.in[1] = &bad.t;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_DTYPE_MISMATCH);
	CHECK_ERR(api, "input 'token_type_ids' has dtype i32, the model takes i64",
	          "token_type_ids");
	tt_free(&bad);
	/* wrong rank */
	tt_init(&bad, RT_I64, 1, shape1);
	io.in[1] = &bad.t;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_SHAPE_MISMATCH);
	CHECK_ERR(api, "has shape [12], the model takes [B, S]", "token_type_ids");
	tt_free(&bad);
	/* S disagrees between inputs */
	shape2[1] = 7;
	tt_init(&bad, RT_I64, 2, shape2);
	io.in[1] = &bad.t;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_SHAPE_MISMATCH);
	CHECK_ERR(api, "has shape [2, 7], but S = 6 from input 'input_ids'",
	          "token_type_ids");
	tt_free(&bad);
	io.in[1] = &io.types.t;
	/* symbol out of range */
	io.ids.shape[1] = 65;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_SHAPE_MISMATCH);
	CHECK_ERR(api, "S = 65 is outside the model's range [1, 64]", "input_ids");
	io.ids.shape[1] = 6;
	io.ids.shape[0] = 0;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_SHAPE_MISMATCH);
	CHECK_ERR(api, "B = 0 is outside the model's range [1, unbounded]", NULL);
	io.ids.shape[0] = 2;
	/* device */
	io.mask.t.device.device_type = kDLCUDA;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_DEVICE_MISMATCH);
	CHECK_ERR(api, "input 'attention_mask' is on device type 2", "attention_mask");
	io.mask.t.device.device_type = kDLCPU;
	/* NULL data */
	data = io.ids.t.data;
	io.ids.t.data = NULL;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_INVALID_ARGUMENT);
	CHECK_ERR(api, "input 'input_ids' has NULL data", "input_ids");
	io.ids.t.data = data;
	/* ids out of the vocabulary */
	((int64_t *)io.ids.t.data)[7] = 50;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_INVALID_ARGUMENT);
	CHECK_ERR(api,
	          "holds 50 at flat index 7, outside the model's range "
	          "[0, 50)",
	          "input_ids");
	((int64_t *)io.ids.t.data)[7] = -1;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_INVALID_ARGUMENT);
	((int64_t *)io.ids.t.data)[7] = 3;
	/* outputs */
	io.out[0].shape[2] = 51;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_SHAPE_MISMATCH);
	CHECK_ERR(api,
	          "output 'logits' has shape [2, 6, 51]; for these inputs "
	          "the model makes [2, 6, 50]",
	          "logits");
	io.out[0].shape[2] = 50;
	io.out[2].t.dtype.bits = 64;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_DTYPE_MISMATCH);
	CHECK_ERR(api, "output 'scores' has dtype f64, the model makes f32", "scores");
	io.out[2].t.dtype.bits = 32;
	io.o[1] = NULL;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_INVALID_ARGUMENT);
	io.o[1] = &io.out[1].t;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_OK);
	CHECK(api->last_error()->code == SLAPO_OK);
	/* output shapes without running */
	io.ids.t.data = NULL;
	CHECK_ST(api, api->model_output_shape(m, io.in, 3, 2, out_shape), SLAPO_OK);
	CHECK(out_shape[0] == 2 && out_shape[1] == 6 && out_shape[2] == 6);
	CHECK_ST(api, api->model_output_shape(m, io.in, 3, 3, out_shape),
	         SLAPO_INVALID_ARGUMENT);
	io.ids.t.data = data;
	/* weights_set errors */
	{
		TTensor t;
		int64_t sh[2] = {32, 16};
		tt_init(&t, RT_F32, 2, sh);
		CHECK_ST(api, api->weights_set(w, "fc1.weight", &t.t), SLAPO_BUSY);
		api->session_free(s);
		s = NULL;
		CHECK_ST(api, api->weights_set(w, "nope", &t.t), SLAPO_NOT_FOUND);
		CHECK_ERR(api, "has no parameter 'nope'", "nope");
		CHECK_ST(api, api->weights_set(w, "fc2.weight", &t.t),
		         SLAPO_SHAPE_MISMATCH);
		CHECK_ERR(api,
		          "the tensor has shape [32, 16], the model expects "
		          "[16, 32]",
		          "fc2.weight");
		t.t.dtype = RT_I64;
		CHECK_ST(api, api->weights_set(w, "fc1.weight", &t.t),
		         SLAPO_DTYPE_MISMATCH);
		t.t.dtype = RT_F32;
		t.t.device.device_type = kDLCUDA;
		CHECK_ST(api, api->weights_set(w, "fc1.weight", &t.t),
		         SLAPO_DEVICE_MISMATCH);
		t.t.device.device_type = kDLCPU;
		CHECK_ST(api, api->weights_set(w, "fake.fc1.weight", &t.t), SLAPO_OK);
		CHECK_ST(api, api->weights_set(NULL, "fc1.weight", &t.t),
		         SLAPO_INVALID_ARGUMENT);
		tt_free(&t);
	}
	/* NULL-safe frees */
	api->session_free(NULL);
	api->weights_free(NULL);
	api->model_close(NULL);
	io_free(&io);
	close_all(m, w, s);
}

/* Strided, transposed and misaligned inputs and outputs give the same
 * results as compact ones. */
static void test_layouts(void)
{
	SlapoModel *m;
	SlapoWeights *w;
	SlapoSession *s;
	Io ref, io;
	int64_t B = 3, S = 5, b, k, stride_t[2] = {1, 3}, out_strides[3];
	int64_t *tbuf;
	void *orig_ids;
	char *mis;
	float *padded;
	int i;
	CHECK_ST(api, api->model_open(&m), SLAPO_OK);
	CHECK_ST(api, api->weights_create(m, NULL, &w), SLAPO_OK);
	CHECK_ST(api, api->weights_init_random(w, 11), SLAPO_OK);
	CHECK_ST(api, api->session_create(w, NULL, &s), SLAPO_OK);
	io_init(&ref, B, S);
	io_init(&io, B, S);
	CHECK_ST(api, api->session_run(s, ref.in, 3, ref.o, 3), SLAPO_OK);
	/* input_ids stored transposed: [S][B] memory viewed as [B, S] */
	tbuf = malloc((size_t)(B * S) * sizeof *tbuf);
	for (b = 0; b < B; b++)
		for (k = 0; k < S; k++)
			tbuf[k * B + b] = ((int64_t *)ref.ids.t.data)[b * S + k];
	orig_ids = io.ids.t.data;
	io.ids.t.data = tbuf;
	io.ids.t.strides = stride_t;
	/* token types misaligned by one byte via byte_offset */
	mis = malloc((size_t)(B * S) * 8 + 1);
	memcpy(mis + 1, ref.types.t.data, (size_t)(B * S) * 8);
	free(io.types.t.data);
	io.types.t.data = mis;
	io.types.t.byte_offset = 1;
	/* hidden written into rows padded to 20 floats */
	padded = malloc((size_t)(B * S * 20) * sizeof *padded);
	out_strides[0] = S * 20;
	out_strides[1] = 20;
	out_strides[2] = 1;
	io.out[1].t.strides = out_strides;
	free(io.out[1].t.data);
	io.out[1].t.data = padded;
	CHECK_ST(api, api->session_run(s, io.in, 3, io.o, 3), SLAPO_OK);
	for (i = 0; i < 3; i += 2)
		CHECK(!memcmp(io.out[i].t.data, ref.out[i].t.data,
		              (size_t)tt_numel(&ref.out[i]) * 4));
	for (k = 0; k < B * S; k++)
		CHECK(!memcmp(padded + k * 20, (float *)ref.out[1].t.data + k * 16,
		              16 * 4));
	io.ids.t.data = orig_ids;
	io.ids.t.strides = NULL;
	io.out[1].t.strides = NULL;
	free(tbuf);
	io_free(&io);
	io_free(&ref);
	close_all(m, w, s);
}

/* Every allocation the runtime makes, failed in turn: each call returns
 * OK or OUT_OF_MEMORY, handles stay freeable, nothing leaks (ASan). */
static void test_oom(void)
{
	FakeParams p;
	const char *index = "{\"weight_map\":{\"a\":\"oom.safetensors\"}}";
	int64_t n, left = 0;
	int done = 0;
	fake_init(&p, 50, 16, 32, 5);
	CHECK_ST(NULL, fake_write(&p, t_path("oom.safetensors"), FW_LEGACY | FW_EXTRAS),
	         SLAPO_OK);
	t_write_str("oom.index.json", index);
	for (n = 1; n < 2000 && !done; n++) {
		SlapoModel *m = NULL;
		SlapoWeights *w = NULL;
		SlapoSession *s = NULL;
		Io io;
		SlapoStatus st;
		const char *paths[1];
		void *types = NULL;
		paths[0] = t_path("oom.index.json");
		io_init(&io, 2, 4);
		/* a misaligned input, so that it is staged */
		types = malloc((size_t)tt_numel(&io.types) * 8 + 1);
		memcpy((char *)types + 1, io.types.t.data,
		       (size_t)tt_numel(&io.types) * 8);
		free(io.types.t.data);
		io.types.t.data = types;
		io.types.t.byte_offset = 1;
		api->testing_fail_alloc(n);
		st = api->model_open(&m);
		if (st == SLAPO_OK)
			st = api->weights_create(m, NULL, &w);
		if (st == SLAPO_OK)
			st = api->weights_load_safetensors(w, paths, 1, 0);
		if (st == SLAPO_OK)
			st = api->session_create(w, NULL, &s);
		if (st == SLAPO_OK)
			st = api->session_run(s, io.in, 3, io.o, 3);
		if (st == SLAPO_OK)
			st = api->session_run(s, io.in, 3, io.o, 3);
		left = api->testing_fail_alloc(0);
		if (st != SLAPO_OK && st != SLAPO_OUT_OF_MEMORY) {
			fprintf(stderr, "oom at allocation %lld: %s: %s\n", (long long)n,
			        api->status_name(st), api->last_error()->message);
			t_failures++;
		}
		if (st == SLAPO_OUT_OF_MEMORY)
			CHECK(strstr(api->last_error()->message, "out of memory") ||
			      strstr(api->last_error()->message, "too large") ||
			      strstr(api->last_error()->message, "thread"));
		/* a failed allocation always shows as OUT_OF_MEMORY */
		CHECK(st == SLAPO_OUT_OF_MEMORY || left > 0);
		done = left > 0;
		close_all(m, w, s);
		io_free(&io);
	}
	CHECK(done);
	printf("oom sweep: %lld allocations failed in turn\n", (long long)(n - 2));
	fake_free(&p);
}

int main(int argc, char **argv)
{
	void *lib;
	SlapoGetApiFn get;
	if (argc < 2) {
		fprintf(stderr, "usage: test_model FAKE_MODEL.so\n");
		return 99;
	}
	api = t_load(argv[1], &lib);
	if (!api)
		return 1;
	*(void **)&get = dlsym(lib, SLAPO_GET_API_SYMBOL);
	CHECK(get(SLAPO_ABI_MAJOR) == api);
	CHECK(get(SLAPO_ABI_MAJOR + 1) == NULL); /* another ABI: no table */
	CHECK(get(0) == NULL);
	test_introspection();
	test_load_and_run();
	test_load_errors();
	test_shards();
	test_half_precision();
	test_random_init();
	test_run_errors();
	test_profile();
	test_layouts();
	test_oom();
	return t_done("test_model");
}
