/* bert_fixtures.c - test data for a compiled model library, and a check of
 * it through the public C API.
 *
 *   bert_fixtures make MODEL.so WEIGHTS INPUTS B S SEED
 *       writes random weights for every parameter the model declares
 *       (normal(0, 1/sqrt(fan-in)) for matrices, small values for biases,
 *       1 + small values for LayerNorm weights)
 *       and inputs of batch B and sequence S (ids within each input's
 *       value_max, an attention mask with the tail of each row masked,
 *       token types 0/1), as safetensors files
 *   bert_fixtures check MODEL.so WEIGHTS INPUTS REFERENCE RTOL ATOL
 *       loads the weights through weights_load_safetensors, runs the
 *       inputs (outputs poisoned with NaN first) and compares every
 *       output with REFERENCE (written by slapoc --interp): fails unless
 *       |got - want| <= atol + rtol |want| everywhere
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "rt.h"

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static double unit(uint64_t *s)
{
	return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(uint64_t *s)
{
	return sqrt(-2 * log(unit(s))) * cos(6.283185307179586 * unit(s));
}

static const SlapoApi *open_api(const char *path, void **lib)
{
	*lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!*lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return NULL;
	}
	SlapoGetApiFn get;
	*(void **)&get = dlsym(*lib, SLAPO_GET_API_SYMBOL);
	return get ? get(SLAPO_ABI_MAJOR) : NULL;
}

static int make(const char *so, const char *wpath, const char *ipath, int64_t b, int64_t s,
                uint64_t seed)
{
	void *lib;
	const SlapoApi *api = open_api(so, &lib);
	SlapoModel *m;
	if (!api || api->model_open(&m))
		return 1;
	const SlapoModelInfo *info;
	api->model_info(m, &info);
	RtStWriteTensor *wt = calloc((size_t)info->n_params + 1, sizeof *wt);
	float **bufs = calloc((size_t)info->n_params + 1, sizeof *bufs);
	int nw = 0;
	uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
	for (int32_t i = 0; i < info->n_params; i++) {
		const SlapoTensorSpec *t;
		api->model_tensor(m, SLAPO_PARAM, i, &t);
		if (t->tied_to)
			continue; /* stored once, under its target's name */
		int64_t n = 1;
		for (int k = 0; k < t->ndim; k++)
			n *= t->shape[k];
		float *f = malloc(sizeof(float) * (size_t)(n + 1));
		size_t len = strlen(t->name);
		bool norm_w = len > 16 && strcmp(t->name + len - 16, "LayerNorm.weight") == 0;
		/* weights scaled by fan-in (activations stay O(1) at any width) */
		double std = t->ndim == 2 ? 1.0 / sqrt((double)t->shape[1]) : 0.2;
		for (int64_t e = 0; e < n; e++) {
			double v = std * normal(&rng);
			if (norm_w)
				v = 1 + 0.1 * normal(&rng);
			else if (t->ndim == 1)
				v = 0.05 * normal(&rng);
			f[e] = (float)v;
		}
		bufs[nw] = f;
		wt[nw] = (RtStWriteTensor){t->name, RT_F32, t->ndim, t->shape, f};
		nw++;
	}
	int rc = rt_st_write(wpath, nw, wt, 0, NULL) != SLAPO_OK;
	/* inputs */
	RtStWriteTensor it[16];
	int64_t *ibuf[16] = {0};
	int64_t shp[2] = {b, s};
	int ni = info->n_inputs < 16 ? info->n_inputs : 16;
	for (int i = 0; i < ni; i++) {
		const SlapoTensorSpec *t;
		api->model_tensor(m, SLAPO_INPUT, i, &t);
		ibuf[i] = malloc(sizeof(int64_t) * (size_t)(b * s));
		for (int64_t e = 0; e < b * s; e++) {
			int64_t row = e / s, col = e % s, v;
			if (strcmp(t->name, "attention_mask") == 0)
				v = col < s - row % 3 || s == 1; /* mask the last row % 3 tokens */
			else
				v = (int64_t)(unit(&rng) * (double)(t->value_max ? t->value_max : 2));
			ibuf[i][e] = v;
		}
		it[i] = (RtStWriteTensor){t->name, RT_I64, 2, shp, ibuf[i]};
	}
	rc |= rt_st_write(ipath, ni, it, 0, NULL) != SLAPO_OK;
	for (int i = 0; i < nw; i++)
		free(bufs[i]);
	for (int i = 0; i < ni; i++)
		free(ibuf[i]);
	free(bufs);
	free(wt);
	api->model_close(m);
	dlclose(lib);
	if (rc)
		fprintf(stderr, "bert_fixtures: cannot write the files\n");
	return rc;
}

static int check(const char *so, const char *wpath, const char *ipath, const char *rpath,
                 double rtol, double atol)
{
	void *lib;
	const SlapoApi *api = open_api(so, &lib);
	SlapoModel *m;
	SlapoWeights *w;
	SlapoSession *s;
	if (!api || api->model_open(&m) || api->weights_create(m, NULL, &w))
		return 1;
	if (api->weights_load_safetensors(w, &wpath, 1, 0) || api->session_create(w, NULL, &s)) {
		fprintf(stderr, "bert_fixtures: %s\n", api->last_error()->message);
		return 1;
	}
	RtStFile in, ref;
	if (rt_st_open(ipath, &in) || rt_st_open(rpath, &ref)) {
		fprintf(stderr, "bert_fixtures: cannot read %s or %s\n", ipath, rpath);
		return 1;
	}
	const SlapoModelInfo *info;
	api->model_info(m, &info);
	DLTensor din[16], dout[16];
	const DLTensor *pin[16];
	DLTensor *pout[16];
	float *obuf[16] = {0};
	int64_t oshape[16][8];
	for (int32_t i = 0; i < info->n_inputs && i < 16; i++) {
		const SlapoTensorSpec *t;
		api->model_tensor(m, SLAPO_INPUT, i, &t);
		const RtStTensor *x = rt_st_find(&in, t->name);
		if (!x) {
			fprintf(stderr, "bert_fixtures: no input %s\n", t->name);
			return 1;
		}
		din[i] = (DLTensor){(void *)x->data, {kDLCPU, 0}, x->ndim, x->dtype,
		                    (int64_t *)x->shape, NULL, 0};
		pin[i] = &din[i];
	}
	int bad = 0;
	for (int32_t j = 0; j < info->n_outputs && j < 16; j++) {
		const SlapoTensorSpec *t;
		api->model_tensor(m, SLAPO_OUTPUT, j, &t);
		api->model_output_shape(m, pin, info->n_inputs, j, oshape[j]);
		int64_t n = 1;
		for (int k = 0; k < t->ndim; k++)
			n *= oshape[j][k];
		obuf[j] = malloc(sizeof(float) * (size_t)(n + 1));
		for (int64_t e = 0; e < n; e++)
			obuf[j][e] = NAN;
		dout[j] = (DLTensor){obuf[j], {kDLCPU, 0}, t->ndim, RT_F32, oshape[j], NULL, 0};
		pout[j] = &dout[j];
	}
	if (api->session_run(s, pin, info->n_inputs, pout, info->n_outputs)) {
		fprintf(stderr, "bert_fixtures: session_run: %s\n", api->last_error()->message);
		return 1;
	}
	for (int32_t j = 0; j < info->n_outputs && j < 16; j++) {
		const SlapoTensorSpec *t;
		api->model_tensor(m, SLAPO_OUTPUT, j, &t);
		const RtStTensor *r = rt_st_find(&ref, t->name);
		if (!r || strcmp(r->dtype_name, "F32") != 0) {
			fprintf(stderr, "bert_fixtures: no f32 reference for %s\n", t->name);
			return 1;
		}
		int64_t n = (int64_t)((r->end - r->begin) / 4);
		double worst = 0, maxabs = 0;
		int64_t at = 0;
		for (int64_t e = 0; e < n; e++) {
			float want;
			memcpy(&want, r->data + 4 * e, 4);
			double got = obuf[j][e];
			double err = isnan(got) ? INFINITY : fabs(got - want) / (atol + rtol * fabs(want));
			if (fabs(got - want) > maxabs)
				maxabs = fabs(got - want);
			if (!(err <= worst)) {
				worst = err;
				at = e;
			}
		}
		float want;
		memcpy(&want, r->data + 4 * at, 4);
		printf("%s: %lld values, max abs err %.3g, worst %.3g x tolerance (got %.8g, want "
		       "%.8g)\n",
		       t->name, (long long)n, maxabs, worst, obuf[j][at], want);
		bad |= worst > 1;
	}
	for (int j = 0; j < 16; j++)
		free(obuf[j]);
	rt_st_close(&in);
	rt_st_close(&ref);
	api->session_free(s);
	api->weights_free(w);
	api->model_close(m);
	dlclose(lib);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc == 8 && strcmp(argv[1], "make") == 0)
		return make(argv[2], argv[3], argv[4], atoll(argv[5]), atoll(argv[6]),
		            (uint64_t)atoll(argv[7]));
	if (argc == 8 && strcmp(argv[1], "check") == 0)
		return check(argv[2], argv[3], argv[4], argv[5], atof(argv[6]), atof(argv[7]));
	fprintf(stderr, "usage: bert_fixtures make MODEL.so WEIGHTS INPUTS B S SEED\n"
	                "       bert_fixtures check MODEL.so WEIGHTS INPUTS REF RTOL ATOL\n");
	return 2;
}
