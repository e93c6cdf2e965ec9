/* rel.c - the helpers declared in rel.h. */
#include <stdlib.h>

#include "rel.h"

static uint64_t next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void fill(TTensor *x, const SlapoTensorSpec *sp, uint64_t *s)
{
	int64_t n = tt_numel(x);
	DLDataType t = x->t.dtype;
	for (int64_t i = 0; i < n; i++) {
		double v;
		if (t.code == kDLFloat || t.code == kDLBfloat)
			v = (double)(next(s) >> 11) / 9007199254740992.0 * 2 - 1;
		else if (sp->value_max > 0)
			v = (double)(next(s) % (uint64_t)sp->value_max);
		else if (sp->default_fill == SLAPO_FILL_ONES)
			v = i >= n - (n > 4 ? 2 : 0) ? 0 : 1;
		else if (sp->default_fill == SLAPO_FILL_ZEROS)
			v = 0;
		else
			v = (double)(next(s) % 2);
		if (t.code == kDLFloat && t.bits == 32)
			((float *)x->t.data)[i] = (float)v;
		else if (t.code == kDLFloat && t.bits == 64)
			((double *)x->t.data)[i] = v;
		else if (t.code == kDLInt && t.bits == 64)
			((int64_t *)x->t.data)[i] = (int64_t)v;
		else if (t.code == kDLInt && t.bits == 32)
			((int32_t *)x->t.data)[i] = (int32_t)v;
		else if ((t.code == kDLBool || t.code == kDLUInt || t.code == kDLInt) && t.bits == 8)
			((uint8_t *)x->t.data)[i] = (uint8_t)v;
	}
}

int rel_io_init(const SlapoApi *api, const SlapoModel *m, int64_t B, int64_t S,
                uint64_t seed, RelIo *io)
{
	const SlapoModelInfo *info;
	memset(io, 0, sizeof *io);
	if (api->model_info(m, &info) != SLAPO_OK)
		return fprintf(stderr, "model_info failed\n"), 1;
	io->n_in = info->n_inputs;
	io->n_out = info->n_outputs;
	io->in = calloc((size_t)io->n_in + 1, sizeof *io->in);
	io->out = calloc((size_t)io->n_out + 1, sizeof *io->out);
	io->pin = calloc((size_t)io->n_in + 1, sizeof *io->pin);
	io->pout = calloc((size_t)io->n_out + 1, sizeof *io->pout);
	for (int i = 0; i < io->n_in; i++) {
		const SlapoTensorSpec *sp;
		int64_t shape[RT_MAX_NDIM];
		if (api->model_tensor(m, SLAPO_INPUT, i, &sp) != SLAPO_OK)
			return fprintf(stderr, "model_tensor(input %d) failed\n", i), 1;
		for (int d = 0; d < sp->ndim; d++) {
			int k = sp->dim_symbols[d];
			if (k < 0) {
				shape[d] = sp->shape[d];
				continue;
			}
			int64_t v = strcmp(info->symbol_names[k], "B") == 0 ? B : S;
			if (v < info->symbol_min[k])
				v = info->symbol_min[k];
			if (info->symbol_max[k] >= 0 && v > info->symbol_max[k])
				v = info->symbol_max[k];
			shape[d] = v;
		}
		tt_init(&io->in[i], sp->dtype, sp->ndim, shape);
		uint64_t s = seed * 1000003u + (uint64_t)i;
		fill(&io->in[i], sp, &s);
		io->pin[i] = &io->in[i].t;
	}
	for (int j = 0; j < io->n_out; j++) {
		const SlapoTensorSpec *sp;
		int64_t shape[RT_MAX_NDIM];
		if (api->model_tensor(m, SLAPO_OUTPUT, j, &sp) != SLAPO_OK ||
		    api->model_output_shape(m, io->pin, io->n_in, j, shape) != SLAPO_OK)
			return fprintf(stderr, "output %d: %s\n", j, api->last_error()->message), 1;
		tt_init(&io->out[j], sp->dtype, sp->ndim, shape);
		io->pout[j] = &io->out[j].t;
	}
	return 0;
}

void rel_io_free(RelIo *io)
{
	for (int i = 0; i < io->n_in; i++)
		tt_free(&io->in[i]);
	for (int j = 0; j < io->n_out; j++)
		tt_free(&io->out[j]);
	free(io->in);
	free(io->out);
	free(io->pin);
	free(io->pout);
	memset(io, 0, sizeof *io);
}

static size_t nbytes(const TTensor *x)
{
	return (size_t)tt_numel(x) * rt_dtype_size(x->t.dtype);
}

void rel_io_poison(RelIo *io)
{
	for (int j = 0; j < io->n_out; j++)
		memset(io->out[j].t.data, 0xff, nbytes(&io->out[j]));
}

int rel_io_same(const RelIo *a, const RelIo *b)
{
	if (a->n_out != b->n_out)
		return 0;
	for (int j = 0; j < a->n_out; j++)
		if (nbytes(&a->out[j]) != nbytes(&b->out[j]) ||
		    memcmp(a->out[j].t.data, b->out[j].t.data, nbytes(&a->out[j])) != 0)
			return 0;
	return 1;
}

void rel_io_copy_out(RelIo *dst, const RelIo *src)
{
	for (int j = 0; j < src->n_out && j < dst->n_out; j++)
		memcpy(dst->out[j].t.data, src->out[j].t.data, nbytes(&src->out[j]));
}

SlapoStatus rel_write_checkpoint(const SlapoApi *api, SlapoModel *m, uint64_t seed,
                                 const char *path)
{
	const SlapoModelInfo *info;
	SlapoWeights *w = NULL;
	SlapoStatus st;
	if ((st = api->model_info(m, &info)) != SLAPO_OK ||
	    (st = api->weights_create(m, NULL, &w)) != SLAPO_OK ||
	    (st = api->weights_init_random(w, seed)) != SLAPO_OK) {
		api->weights_free(w);
		return st;
	}
	int n = info->n_params, k = 0;
	RtStWriteTensor *ts = calloc((size_t)n + 1, sizeof *ts);
	DLManagedTensorVersioned **views = calloc((size_t)n + 1, sizeof *views);
	for (int i = 0; i < n && st == SLAPO_OK; i++) {
		const SlapoTensorSpec *sp;
		if ((st = api->model_tensor(m, SLAPO_PARAM, i, &sp)) != SLAPO_OK)
			break;
		if (sp->tied_to)
			continue;
		if ((st = api->weights_get(w, sp->name, &views[k])) != SLAPO_OK)
			break;
		DLTensor *t = &views[k]->dl_tensor;
		ts[k] = (RtStWriteTensor){sp->name, t->dtype, t->ndim, t->shape,
		                          (const char *)t->data + t->byte_offset};
		k++;
	}
	if (st == SLAPO_OK)
		st = rt_st_write(path, k, ts, 0, NULL);
	for (int i = 0; i < k; i++)
		views[i]->deleter(views[i]);
	free(views);
	free(ts);
	api->weights_free(w);
	return st;
}

const SlapoApi *rel_open(const char *lib, SlapoModel **m)
{
	const SlapoApi *api = t_load(lib, NULL);
	if (!api) {
		fprintf(stderr, "cannot load %s\n", lib);
		exit(1);
	}
	if (api->model_open(m) != SLAPO_OK) {
		fprintf(stderr, "model_open: %s\n", api->last_error()->message);
		exit(1);
	}
	return api;
}
