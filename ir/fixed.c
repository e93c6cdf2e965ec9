/* fixed.c - values for a traced model's parameters and inputs that are the
 * same in every run and on every machine: what `slapoc --verify`
 * (tools/verify.c) and the fuzz targets (fuzz/model.c) run the reference
 * interpreter on, so that a model before and after a schedule primitive
 * sees the same numbers.
 *
 *   a parameter  uniform in [-0.05 sqrt 3, 0.05 sqrt 3) (standard
 *                deviation 0.05), drawn from a generator seeded by its
 *                path; a 1-D `*.weight` (a LayerNorm's) 1 + 0.1 u instead
 *   an input     float: uniform in [-1, 1); the indices of an embedding:
 *                uniform over the table's rows; other integers (an
 *                attention mask): ones, the last two zero (padding) when
 *                there are more than four
 *
 * The generator is splitmix64; paths are hashed by FNV-1a.
 */
#include "ir/ir.h"

#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static double uniform(uint64_t *s)
{
	return (double)(splitmix64(s) >> 11) / 9007199254740992.0 * 2 - 1;
}

uint64_t ir_hash_str(const char *p)
{
	uint64_t h = 1469598103934665603ull;
	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h;
}

static IrTensor *tensor_for(const IrNode *n, const int64_t *sym_values)
{
	int64_t shape[IR_MAX_DIMS];
	for (int i = 0; i < n->shape.ndim; i++)
		shape[i] = ir_dim_eval(n->shape.d[i], sym_values);
	return ir_tensor_new(n->dtype, n->shape.ndim, shape);
}

IrTensor *ir_fixed_param(const IrNode *n, const int64_t *sym_values)
{
	IrTensor *t = tensor_for(n, sym_values);
	if (!t)
		return NULL;
	uint64_t s = ir_hash_str(n->sattr) ^ 2023;
	const char *last = strrchr(n->sattr, '.');
	bool norm_weight = last && strcmp(last, ".weight") == 0 && n->shape.ndim == 1;
	for (int64_t i = 0; i < t->numel; i++) {
		double u = uniform(&s);
		t->data[i] = norm_weight ? 1 + 0.1 * u : 0.05 * u * sqrt(3.0);
	}
	return t;
}

/* Rows of the embedding table an integer input indexes, or 0. */
static int64_t index_range(const IrGraph *g, const IrNode *in)
{
	for (IrNode *n = g->first; n; n = n->next)
		if (n->op == OP_EMBEDDING && n->nin >= 2 && n->in[0] == in &&
		    n->in[1]->shape.ndim >= 1 && ir_dim_is_const(n->in[1]->shape.d[0]))
			return n->in[1]->shape.d[0].coef;
	return 0;
}

IrTensor *ir_fixed_input(const IrGraph *g, const IrNode *in, int idx,
                         const int64_t *sym_values)
{
	IrTensor *t = tensor_for(in, sym_values);
	if (!t)
		return NULL;
	uint64_t s = 1234 + (uint64_t)idx;
	int64_t rows = index_range(g, in);
	for (int64_t i = 0; i < t->numel; i++) {
		if (ir_dtype_is_float(in->dtype))
			t->data[i] = uniform(&s);
		else if (rows > 0)
			t->data[i] = (double)(splitmix64(&s) % (uint64_t)rows);
		else
			t->data[i] = i >= t->numel - (t->numel > 4 ? 2 : 0) ? 0 : 1;
	}
	return t;
}
