/* model.c - runs a scheduled model in the reference interpreter on the
 * fixed parameters and inputs `slapoc --verify` uses (ir/fixed.c):
 * parameter values depend only on the parameter's path, so a rewrite that
 * keeps the paths must keep the outputs.
 *
 * Every tensor made here is remembered in the FuzzModel and freed by
 * fuzz_model_free, even when an error unwound through diag_bail in the
 * middle of a run (the targets call it after their setjmp returns).
 */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void keep(FuzzModel *fm, IrTensor *t)
{
	if (t)
		ptrvec_push(fm->ev->arena, &fm->owned, t);
}

void fuzz_model_free(FuzzModel *fm)
{
	for (int i = 0; i < fm->owned.len; i++)
		ir_tensor_free(fm->owned.items[i]);
	fm->owned.len = 0;
	fm->cache_paths.len = fm->cache_vals.len = 0;
}

static void sym_values(const FuzzModel *fm, int64_t *vals)
{
	for (int i = 0; i < fm->ev->ir->nsyms; i++)
		vals[i] = strcmp(fm->ev->ir->sym_names[i], "B") == 0 ? fm->batch : fm->seq;
}

static IrTensor *param_value(void *user, const IrNode *n)
{
	FuzzModel *fm = user;
	int64_t vals[IR_MAX_SYMS], shape[IR_MAX_DIMS];
	sym_values(fm, vals);
	for (int i = 0; i < n->shape.ndim; i++)
		shape[i] = ir_dim_eval(n->shape.d[i], vals);
	for (int i = 0; i < fm->cache_paths.len; i++) {
		IrTensor *c = fm->cache_vals.items[i];
		if (strcmp(fm->cache_paths.items[i], n->sattr) == 0 && c->ndim == n->shape.ndim &&
		    memcmp(c->shape, shape, sizeof(int64_t) * (size_t)c->ndim) == 0)
			return c;
	}
	IrTensor *t = ir_fixed_param(n, vals);
	if (!t)
		return NULL;
	keep(fm, t);
	ptrvec_push(fm->ev->arena, &fm->cache_paths, arena_strdup(fm->ev->arena, n->sattr));
	ptrvec_push(fm->ev->arena, &fm->cache_vals, t);
	return t;
}

/* Whether every tensor of g (and of the bodies it calls) is small. */
static bool small_enough(const FuzzModel *fm, const IrGraph *g, int depth)
{
	int64_t vals[IR_MAX_SYMS];
	sym_values(fm, vals);
	if (depth > 8)
		return false;
	for (IrNode *n = g->first; n; n = n->next) {
		int64_t numel = 1;
		for (int i = 0; i < n->shape.ndim; i++) {
			int64_t d = ir_dim_eval(n->shape.d[i], vals);
			if (d < 0 || d > fm->max_numel)
				return false;
			numel *= d ? d : 1;
			if (numel > fm->max_numel)
				return false;
		}
		if (n->sub && !small_enough(fm, n->sub, depth + 1))
			return false;
	}
	return true;
}

/* ---- a graph's structure, hashed ---- */

static uint64_t hmix(uint64_t h, uint64_t x)
{
	h ^= x + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
	h *= 0xFF51AFD7ED558CCDull;
	return h ^ (h >> 33);
}

static uint64_t hstr(uint64_t h, const char *s)
{
	return hmix(h, s ? ir_hash_str(s) : 0);
}

/* Everything the interpreter's result depends on, with dimensions
 * evaluated: per node (in list order) its op, type, attributes, inputs
 * (by position) and body; the graph's inputs and outputs. Not the
 * names: graphs that differ only in node names hash the same. */
static uint64_t graph_hash(const FuzzModel *fm, const IrGraph *g, int depth)
{
	if (depth > 16)
		return 0;
	int64_t vals[IR_MAX_SYMS];
	sym_values(fm, vals);
	int *pos = calloc((size_t)g->next_id + 1, sizeof *pos);
	if (!pos)
		return 0;
	uint64_t h = hmix(0x5ca1ab1e, (uint64_t)g->nnodes);
	int k = 0;
	for (const IrNode *n = g->first; n; n = n->next) {
		if (n->id >= 0 && n->id < g->next_id)
			pos[n->id] = ++k;
		h = hmix(h, (uint64_t)n->op);
		h = hmix(h, (uint64_t)n->dtype);
		h = hmix(h, (uint64_t)n->shape.ndim);
		for (int i = 0; i < n->shape.ndim; i++)
			h = hmix(h, (uint64_t)ir_dim_eval(n->shape.d[i], vals));
		h = hmix(h, (uint64_t)n->nin);
		for (int i = 0; i < n->nin; i++)
			h = hmix(h, n->in[i]->id >= 0 && n->in[i]->id < g->next_id
			                    ? (uint64_t)pos[n->in[i]->id]
			                    : ~0ull);
		h = hmix(h, (uint64_t)n->niattr);
		for (int i = 0; i < n->niattr; i++)
			h = hmix(h, (uint64_t)n->iattr[i]);
		h = hmix(h, (uint64_t)n->ndattr);
		for (int i = 0; i < n->ndattr; i++)
			h = hmix(h, (uint64_t)ir_dim_eval(n->dattr[i], vals));
		uint64_t f;
		memcpy(&f, &n->fattr, sizeof f);
		h = hmix(h, f);
		h = hmix(h, (uint64_t)n->flags);
		h = hstr(h, n->sattr);
		h = hmix(h, n->sub ? graph_hash(fm, n->sub, depth + 1) : 0);
	}
	const PtrVec *io[2] = {&g->inputs, &g->outputs};
	for (int j = 0; j < 2; j++) {
		h = hmix(h, (uint64_t)io[j]->len);
		for (int i = 0; i < io[j]->len; i++) {
			const IrNode *n = io[j]->items[i];
			bool in = n->id >= 0 && n->id < g->next_id;
			h = hmix(h, in ? (uint64_t)pos[n->id] : ~0ull);
		}
	}
	free(pos);
	return h;
}

IrGraph *fuzz_model_trace(FuzzModel *fm, Module *root, Span sp, uint64_t *hash)
{
	/* errors unwind to the caller's setjmp */
	IrGraph *g = trace_model(fm->ev, root, sp);
	if (hash)
		*hash = graph_hash(fm, g, 0);
	return g;
}

FuzzRunStatus fuzz_model_run(FuzzModel *fm, Module *root, Span sp, IrTensor ***outs, int *nout)
{
	return fuzz_model_run_graph(fm, fuzz_model_trace(fm, root, sp, NULL), outs, nout);
}

FuzzRunStatus fuzz_model_run_graph(FuzzModel *fm, IrGraph *g, IrTensor ***outs,
                                   int *nout)
{
	Eval *ev = fm->ev;
	*nout = g->outputs.len;
	*outs = ARENA_ARRAY(ev->arena, IrTensor *, g->outputs.len + 1);
	if (fm->max_numel > 0 && !small_enough(fm, g, 0))
		return FUZZ_RUN_TOO_BIG;
	int64_t vals[IR_MAX_SYMS];
	sym_values(fm, vals);
	IrTensor **ins = ARENA_ARRAY(ev->arena, IrTensor *, g->inputs.len + 1);
	for (int i = 0; i < g->inputs.len; i++) {
		ins[i] = ir_fixed_input(g, g->inputs.items[i], i, vals);
		if (!ins[i]) {
			snprintf(fm->error, sizeof fm->error, "cannot make input %d", i);
			return FUZZ_RUN_FAILED;
		}
		keep(fm, ins[i]);
	}
	IrInterp it = {.sym_values = vals, .param = param_value, .param_user = fm};
	bool ok = interp_run(&it, g, ins, *outs);
	for (int i = 0; i < g->outputs.len; i++)
		keep(fm, (*outs)[i]);
	if (!ok) {
		snprintf(fm->error, sizeof fm->error, "%s", it.error);
		return FUZZ_RUN_FAILED;
	}
	return FUZZ_RUN_OK;
}

double fuzz_max_rel(IrTensor **a, int na, IrTensor **b, int nb)
{
	if (na != nb)
		return INFINITY;
	double worst = 0;
	for (int k = 0; k < na; k++) {
		if (a[k]->ndim != b[k]->ndim || a[k]->numel != b[k]->numel)
			return INFINITY;
		for (int i = 0; i < a[k]->ndim; i++)
			if (a[k]->shape[i] != b[k]->shape[i])
				return INFINITY;
		double maxref = 0, maxdiff = 0;
		for (int64_t i = 0; i < a[k]->numel; i++) {
			if (isnan(a[k]->data[i]) && isnan(b[k]->data[i]))
				continue;
			double d = fabs(a[k]->data[i] - b[k]->data[i]);
			if (!(d <= maxdiff))
				maxdiff = d; /* NaN propagates */
			if (fabs(a[k]->data[i]) > maxref)
				maxref = fabs(a[k]->data[i]);
		}
		double rel = maxdiff / (maxref > 1e-300 ? maxref : 1e-300);
		if (!(rel <= worst))
			worst = rel;
	}
	return worst;
}
