/* interp.c - the reference interpreter: runs any graph naively, op by op
 * in list order, in double precision. It is the oracle every numerical
 * test compares against, so it favours plain loops over speed.
 *
 * interp_run binds the symbolic dims (given, or read off the inputs'
 * shapes), gives each node an output tensor of its shape under that
 * binding and calls the op's `interp` function from the table (the ops
 * themselves are in interp_ops.c). Tensors are freed after their last
 * use. Values of integer and bool tensors are kept exact (truncated,
 * or 0/1) after every op; float dtypes are all computed in double.
 *
 * Nothing here trusts sizes: shapes are checked against what the graph
 * says, indices against their range, and a failure sets it->error.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* ---- tensors ---------------------------------------------------------------- */

enum {
	MAX_NUMEL_LOG2 = 36
};

IrTensor *ir_tensor_new(IrDType t, int ndim, const int64_t *shape)
{
	if (ndim < 0 || ndim > IR_MAX_DIMS || (ndim > 0 && !shape))
		return NULL;
	int64_t n = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return NULL;
		if (shape[i] > 0 && n > ((int64_t)1 << MAX_NUMEL_LOG2) / shape[i])
			return NULL;
		n *= shape[i];
	}
	IrTensor *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->data = calloc((size_t)(n ? n : 1), sizeof(double));
	if (!r->data) {
		free(r);
		return NULL;
	}
	r->dtype = t;
	r->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		r->shape[i] = shape[i];
	r->numel = n;
	return r;
}

IrTensor *ir_tensor_copy(const IrTensor *t)
{
	IrTensor *r = ir_tensor_new(t->dtype, t->ndim, t->shape);
	if (r && t->numel == r->numel)
		memcpy(r->data, t->data, sizeof(double) * (size_t)r->numel);
	return r;
}

void ir_tensor_free(IrTensor *t)
{
	if (!t)
		return;
	free(t->data);
	free(t);
}

double ir_tensor_max_rel_diff(const IrTensor *a, const IrTensor *b)
{
	if (!a || !b || a->ndim != b->ndim || a->numel != b->numel)
		return INFINITY;
	for (int i = 0; i < a->ndim; i++)
		if (a->shape[i] != b->shape[i])
			return INFINITY;
	double worst = 0;
	for (int64_t i = 0; i < a->numel; i++) {
		double x = a->data[i], y = b->data[i], d;
		if (isnan(x) || isnan(y))
			d = isnan(x) && isnan(y) ? 0 : INFINITY;
		else if (x == y)
			d = 0;
		else
			d = fabs(x - y) / fmax(fabs(x), fabs(y));
		if (!(d <= worst))
			worst = d;
	}
	return worst;
}

/* ---- errors and dims ------------------------------------------------------------ */

bool interp_fail(IrInterp *it, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(it->error, sizeof it->error, fmt, ap);
	va_end(ap);
	return false;
}

/* d under the run's binding; a symbol without a value is an error. */
bool interp_dim(IrInterp *it, const IrNode *n, IrDim d, int64_t *out)
{
	for (int i = 0; i < IR_MAX_SYMS; i++) {
		if (!d.pow[i])
			continue;
		if (!it->sym_values || it->sym_values[i] < 0)
			return interp_fail(it, "%s: no value for symbolic dim %d",
			                   n->name, i);
	}
	*out = ir_dim_eval(d, it->sym_values);
	return true;
}

static bool eval_shape(IrInterp *it, const IrCtx *c, const IrNode *n, int64_t *shape)
{
	for (int i = 0; i < n->shape.ndim; i++) {
		IrDim d = n->shape.d[i];
		for (int s = 0; s < IR_MAX_SYMS; s++)
			if (d.pow[s] && (!it->sym_values || it->sym_values[s] < 0))
				return interp_fail(
				        it, "%s: no value for the symbolic dim %s",
				        n->name, s < c->nsyms ? c->sym_names[s] : "?");
		if (!interp_dim(it, n, d, &shape[i]))
			return false;
		if (shape[i] < 0)
			return interp_fail(it, "%s: dim %d has negative size %lld",
			                   n->name, i, (long long)shape[i]);
	}
	return true;
}

static void shape_text(char *buf, size_t size, int nd, const int64_t *s)
{
	size_t k = 0;
	k += (size_t)snprintf(buf + k, size - k, "[");
	for (int i = 0; i < nd && k < size; i++)
		k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? ", " : "",
		                      (long long)s[i]);
	if (k < size)
		snprintf(buf + k, size - k, "]");
}

static bool check_tensor(IrInterp *it, const IrCtx *c, const IrNode *n, const IrTensor *t,
                         const char *what)
{
	int64_t want[IR_MAX_DIMS];
	if (!eval_shape(it, c, n, want))
		return false;
	bool ok = t->ndim == n->shape.ndim && t->data;
	for (int i = 0; ok && i < t->ndim; i++)
		ok = t->shape[i] == want[i];
	int64_t numel = 1;
	for (int i = 0; ok && i < t->ndim; i++)
		numel *= t->shape[i];
	if (ok && numel != t->numel)
		ok = false;
	if (!ok) {
		char a[96], b[96];
		shape_text(a, sizeof a, n->shape.ndim, want);
		shape_text(b, sizeof b, t->ndim, t->shape);
		return interp_fail(it, "%s %s: expected shape %s, got %s", what,
		                   n->sattr ? n->sattr : n->name, a, b);
	}
	return true;
}

/* Bind symbols that appear alone as a dim of an input (B, S) to the
 * input's size there. */
static bool bind_inputs(IrInterp *it, const IrGraph *g, IrTensor **inputs, int64_t *vals)
{
	for (int i = 0; i < g->inputs.len; i++) {
		const IrNode *p = g->inputs.items[i];
		const IrTensor *t = inputs[i];
		if (!t || t->ndim != p->shape.ndim)
			continue; /* reported by check_tensor */
		for (int k = 0; k < t->ndim; k++) {
			IrDim d = p->shape.d[k];
			int sym = -1, nsym = 0;
			for (int s = 0; s < IR_MAX_SYMS; s++)
				if (d.pow[s]) {
					sym = s;
					nsym++;
				}
			if (nsym != 1 || d.coef != 1 || d.pow[sym] != 1 || vals[sym] >= 0)
				continue;
			vals[sym] = t->shape[k];
		}
	}
	(void)it;
	return true;
}

/* ---- running a graph ----------------------------------------------------------------- */

/* Make output values exact for integer and bool dtypes. */
static void fix_dtype(IrTensor *t)
{
	if (t->dtype == IR_BOOL) {
		for (int64_t i = 0; i < t->numel; i++)
			t->data[i] = t->data[i] != 0;
	} else if (!ir_dtype_is_float(t->dtype)) {
		for (int64_t i = 0; i < t->numel; i++)
			t->data[i] = isnan(t->data[i]) ? 0 : trunc(t->data[i]);
	}
}

bool interp_graph(IrInterp *it, const IrGraph *g, IrTensor **inputs, IrTensor **outputs,
                  const int64_t *parent_vals)
{
	int n = g->next_id;
	int64_t vals[IR_MAX_SYMS];
	for (int i = 0; i < IR_MAX_SYMS; i++)
		vals[i] = -1;
	if (!parent_vals && it->sym_values) {
		for (int i = 0; i < g->ctx->nsyms && i < IR_MAX_SYMS; i++)
			vals[i] = it->sym_values[i];
	} else {
		bind_inputs(it, g, inputs, vals);
		if (parent_vals)
			for (int i = 0; i < IR_MAX_SYMS; i++)
				if (vals[i] < 0)
					vals[i] = parent_vals[i];
	}
	IrInterp run = *it;
	run.sym_values = vals;
	run.error[0] = 0;

	for (int i = 0; i < g->outputs.len; i++)
		outputs[i] = NULL;
	IrTensor **val = calloc((size_t)n + 1, sizeof *val);
	char *borrowed = calloc((size_t)n + 1, 1);
	int *last = calloc((size_t)n + 1, sizeof *last);
	int *input_of = calloc((size_t)n + 1, sizeof *input_of);
	IrTensor **args = NULL;
	bool ok = false;
	if (!val || !borrowed || !last || !input_of) {
		interp_fail(&run, "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++)
		input_of[i] = -1;
	for (int i = 0; i < g->inputs.len; i++) {
		const IrNode *p = g->inputs.items[i];
		if (p->id >= 0 && p->id < n)
			input_of[p->id] = i;
	}
	/* the position of each node's last use; outputs live to the end */
	int idx = 0;
	for (const IrNode *x = g->first; x; x = x->next, idx++) {
		if (x->id < 0 || x->id >= n) {
			interp_fail(&run, "graph %s: node %s has a bad id", g->name,
			            x->name);
			goto out;
		}
		last[x->id] = idx;
		for (int i = 0; i < x->nin; i++)
			if (x->in[i]->id >= 0 && x->in[i]->id < n)
				last[x->in[i]->id] = idx;
	}
	for (int i = 0; i < g->outputs.len; i++) {
		const IrNode *o = g->outputs.items[i];
		if (o->id >= 0 && o->id < n)
			last[o->id] = INT_MAX;
	}

	idx = 0;
	for (const IrNode *x = g->first; x; x = x->next, idx++) {
		IrTensor *t = NULL;
		if (x->op == OP_INPUT) {
			int k = input_of[x->id];
			if (k < 0) {
				interp_fail(&run,
				            "%s: an input node that is not a graph input",
				            x->name);
				goto out;
			}
			t = inputs[k];
			if (!t) {
				interp_fail(&run, "input %s: no tensor given", x->name);
				goto out;
			}
			if (!check_tensor(&run, g->ctx, x, t, "input"))
				goto out;
			borrowed[x->id] = 1;
		} else if (x->op == OP_PARAM) {
			t = run.param ? run.param(run.param_user, x) : NULL;
			if (!t) {
				interp_fail(&run, "no value for parameter %s",
				            x->sattr ? x->sattr : x->name);
				goto out;
			}
			if (!check_tensor(&run, g->ctx, x, t, "parameter"))
				goto out;
			borrowed[x->id] = 1;
		} else {
			int64_t shape[IR_MAX_DIMS];
			if (!eval_shape(&run, g->ctx, x, shape))
				goto out;
			IrTensor **a = realloc(args, sizeof *args * (size_t)(x->nin + 1));
			if (!a) {
				interp_fail(&run, "out of memory");
				goto out;
			}
			args = a;
			for (int i = 0; i < x->nin; i++) {
				int id = x->in[i]->id;
				args[i] = id >= 0 && id < n ? val[id] : NULL;
				if (!args[i]) {
					interp_fail(&run, "%s: input %s has no value",
					            x->name, x->in[i]->name);
					goto out;
				}
			}
			t = ir_tensor_new(x->dtype, x->shape.ndim, shape);
			if (!t) {
				char s[96];
				shape_text(s, sizeof s, x->shape.ndim, shape);
				interp_fail(&run,
				            "%s: cannot allocate a tensor of shape %s",
				            x->name, s);
				goto out;
			}
			if (!ir_ops[x->op].interp(&run, x, args, t)) {
				ir_tensor_free(t);
				goto out;
			}
			fix_dtype(t);
		}
		val[x->id] = t;
		/* free what is dead now */
		for (int i = -1; i < x->nin; i++) {
			int id = i < 0 ? x->id : x->in[i]->id;
			if (id >= 0 && id < n && val[id] && last[id] <= idx) {
				if (!borrowed[id])
					ir_tensor_free(val[id]);
				val[id] = NULL;
			}
		}
	}
	for (int i = 0; i < g->outputs.len; i++) {
		const IrNode *o = g->outputs.items[i];
		IrTensor *t = o->id >= 0 && o->id < n ? val[o->id] : NULL;
		if (!t) {
			interp_fail(&run, "output %d (%s) has no value", i, o->name);
			goto out;
		}
		if (borrowed[o->id]) {
			outputs[i] = ir_tensor_copy(t);
			if (!outputs[i]) {
				interp_fail(&run, "out of memory");
				goto out;
			}
		} else {
			outputs[i] = t;
			borrowed[o->id] = 1; /* handed over: a second use copies */
		}
	}
	ok = true;
out:
	if (val)
		for (int i = 0; i < n; i++)
			if (val[i] && !borrowed[i])
				ir_tensor_free(val[i]);
	if (!ok) {
		for (int i = 0; i < g->outputs.len; i++) {
			ir_tensor_free(outputs[i]);
			outputs[i] = NULL;
		}
		memcpy(it->error, run.error, sizeof it->error);
	}
	free(args);
	free(val);
	free(borrowed);
	free(last);
	free(input_of);
	return ok;
}

bool interp_run(IrInterp *it, const IrGraph *g, IrTensor **inputs, IrTensor **outputs)
{
	it->error[0] = 0;
	return interp_graph(it, g, inputs, outputs, NULL);
}
