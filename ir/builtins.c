/* builtins.c - the prelude: functions, tensor ops and tensor methods
 * visible to every .slapo program, and operators on tensors and dims. */
#include "ir/ir.h"

#include <math.h>
#include <string.h>

#define BUILTIN(fn) \
	static Value *fn(Eval *ev, Value *self, Value **args, int nargs, \
	                 const char **kwn, Value **kw, int nkw, Span sp)
#define ARG(name, pos, kwname, req) \
	arg_get(ev, name, pos, kwname, args, nargs, kwn, kw, nkw, sp, req)

static Value *tensor_of(Eval *ev, IrNode *n)
{
	Value *v = val_new(ev, V_TENSOR);
	v->node = n;
	return v;
}

static void no_kwargs(Eval *ev, const char *fname, int nkw, const char **kwn, Span sp)
{
	if (nkw)
		eval_error(ev, sp, "%s() got an unexpected keyword argument '%s'", fname, kwn[0]);
}

/* ---- general functions ---- */

BUILTIN(b_print)
{
	/* check before the (malloc'd) buffer exists: the error unwinds and
	 * would leak it (found by fuzz/) */
	no_kwargs(ev, "print", nkw, kwn, sp);
	StrBuf b = {0};
	for (int i = 0; i < nargs; i++) {
		if (i)
			sb_putc(&b, ' ');
		val_str_into(ev, &b, args[i], false);
	}
	sb_putc(&b, '\n');
	fwrite(b.data, 1, b.len, ev->out);
	sb_free(&b);
	return val_none(ev);
}

BUILTIN(b_len)
{
	Value *v = ARG("len", 0, NULL, true);
	if (v->k == V_LIST)
		return val_int(ev, v->list.len);
	if (v->k == V_STR)
		return val_int(ev, (int64_t)strlen(v->s));
	if (v->k == V_MODULE)
		return val_int(ev, v->mod->children.len);
	eval_error(ev, sp, "len() of a %s", val_type_name(v));
}

BUILTIN(b_str)
{
	StrBuf b = {0};
	val_str_into(ev, &b, ARG("str", 0, NULL, true), false);
	Value *r = val_str(ev, arena_strdup(ev->arena, b.data ? b.data : ""));
	sb_free(&b);
	return r;
}

BUILTIN(b_int)
{
	Value *v = ARG("int", 0, NULL, true);
	if (v->k == V_FLOAT) {
		/* out of int64's range (or NaN) the cast is undefined: an error
		 * (found by fuzz/ under UBSan) */
		if (!(v->f > -9223372036854775808.0 && v->f < 9223372036854775808.0))
			eval_error(ev, sp, "int() of %g: out of the 64-bit integer range", v->f);
		return val_int(ev, (int64_t)v->f);
	}
	return val_int(ev, val_as_int(ev, v, "int()'s argument", sp));
}

BUILTIN(b_float)
{
	return val_float(ev, val_as_float(ev, ARG("float", 0, NULL, true), "float()'s argument", sp));
}

BUILTIN(b_create_schedule)
{
	Value *m = ARG("create_schedule", 0, "model", true);
	if (m->k != V_MODULE)
		eval_error(ev, sp, "create_schedule() expects a module, got %s", val_type_name(m));
	if (m->mod->parent)
		eval_error(ev, sp, "create_schedule() expects a top-level model, but this %s is "
		           "'%s' of another module", m->mod->cls, m->mod->name);
	return sched_create(ev, m->mod, sp);
}

BUILTIN(b_build)
{
	Value *s = ARG("build", 0, "sch", true);
	if (s->k != V_SCHEDULE)
		eval_error(ev, sp, "build() expects a schedule, got %s", val_type_name(s));
	if (s->mod->parent)
		eval_error(ev, sp, "build() expects the top-level schedule, not '%s'",
		           mod_path(ev, s->mod));
	Value *p = ARG("build", 1, "precision", false);
	if (p && p->k != V_NONE) {
		static const char *known[] = {"fp32", "tf32", "bf16", "fp16", NULL};
		bool ok = p->k == V_STR;
		for (int i = 0; ok && known[i]; i++)
			if (strcmp(known[i], p->s) == 0)
				break;
			else if (!known[i + 1])
				ok = false;
		if (!ok)
			eval_error(ev, sp, "build(): precision must be \"fp32\", \"tf32\", \"bf16\" or \"fp16\"");
		ev->build_precision = p->s;
	}
	Value *o = ARG("build", 2, "output_dtype", false);
	if (o && o->k != V_NONE) {
		if (o->k != V_STR || (strcmp(o->s, "f32") && strcmp(o->s, "bf16") && strcmp(o->s, "f16")))
			eval_error(ev, sp, "build(): output_dtype must be \"f32\", \"bf16\" or \"f16\"");
		ev->build_output_dtype = o->s;
	}
	for (int i = 0; i < nkw; i++)
		if (strcmp(kwn[i], "sch") != 0 && strcmp(kwn[i], "precision") != 0 &&
		    strcmp(kwn[i], "output_dtype") != 0)
			eval_error(ev, sp, "build() got an unexpected keyword argument '%s'", kwn[i]);
	ptrvec_push(ev->arena, &ev->builds, s->mod);
	return val_none(ev);
}

BUILTIN(b_parameter)
{
	Value *t = ARG("Parameter", 0, "type", true);
	if (t->k != V_TENSOR_TYPE)
		eval_error(ev, sp, "Parameter() expects a tensor type such as f32[768], got %s",
		           val_type_name(t));
	return t;
}

BUILTIN(b_tie)
{
	Value *a = ARG("tie", 0, "param", true), *b = ARG("tie", 1, "to", true);
	if (a->k != V_STR || b->k != V_STR)
		eval_error(ev, sp, "tie() expects two parameter paths as strings");
	ptrvec_push(ev->arena, &ev->ties, (void *)a->s);
	ptrvec_push(ev->arena, &ev->ties, (void *)b->s);
	return val_none(ev);
}

static Value *minmax(Eval *ev, Value **args, int nargs, bool want_max, Span sp)
{
	if (nargs == 1 && args[0]->k == V_LIST) {
		nargs = args[0]->list.len;
		args = args[0]->list.items;
	}
	if (nargs == 0)
		eval_error(ev, sp, "%s() of nothing", want_max ? "max" : "min");
	Value *best = args[0];
	for (int i = 1; i < nargs; i++) {
		double x = val_as_float(ev, args[i], "an argument", sp);
		double y = val_as_float(ev, best, "an argument", sp);
		if (want_max ? x > y : x < y)
			best = args[i];
	}
	return best;
}

BUILTIN(b_min)
{
	return minmax(ev, args, nargs, false, sp);
}

BUILTIN(b_max_scalar)
{
	return minmax(ev, args, nargs, true, sp);
}

/* ---- tensor ops ---- */

static Value *unary(Eval *ev, IrOp op, double (*scalar)(double), Value **args, int nargs,
                    const char **kwn, int nkw, Span sp)
{
	const char *name = ir_ops[op].name;
	no_kwargs(ev, name, nkw, kwn, sp);
	if (nargs != 1)
		eval_error(ev, sp, "%s() takes 1 argument, got %d", name, nargs);
	if (scalar && (args[0]->k == V_INT || args[0]->k == V_FLOAT))
		return val_float(ev, scalar(val_as_float(ev, args[0], name, sp)));
	return trace_op(ev, op, args, 1, NULL, sp, NULL);
}

static double relu_d(double x) { return x > 0 ? x : 0; }
static double rsqrt_d(double x) { return 1 / sqrt(x); }

#define UNARY(fn, op, scalar) \
	BUILTIN(fn) { (void)self; (void)kw; return unary(ev, op, scalar, args, nargs, kwn, nkw, sp); }
UNARY(b_exp, OP_EXP, exp)
UNARY(b_log, OP_LOG, log)
UNARY(b_tanh, OP_TANH, tanh)
UNARY(b_erf, OP_ERF, erf)
UNARY(b_sqrt, OP_SQRT, sqrt)
UNARY(b_rsqrt, OP_RSQRT, rsqrt_d)
UNARY(b_relu, OP_RELU, relu_d)
UNARY(b_sigmoid, OP_SIGMOID, NULL)
UNARY(b_gelu, OP_GELU, NULL)
UNARY(b_gelu_tanh, OP_GELU_TANH, NULL)
UNARY(b_neg, OP_NEG, NULL)
UNARY(b_contiguous, OP_CONTIGUOUS, NULL)

static Value *nary(Eval *ev, IrOp op, Value **args, int nargs, int lo, int hi,
                   const char **kwn, int nkw, Span sp)
{
	const char *name = ir_ops[op].name;
	no_kwargs(ev, name, nkw, kwn, sp);
	if (nargs < lo || nargs > hi)
		eval_error(ev, sp, "%s() takes %d%s argument%s, got %d", name, lo,
		           hi > lo ? " or more" : "", lo == 1 ? "" : "s", nargs);
	return trace_op(ev, op, args, nargs, NULL, sp, NULL);
}

BUILTIN(b_linear) { (void)self; (void)kw; return nary(ev, OP_LINEAR, args, nargs, 2, 3, kwn, nkw, sp); }
BUILTIN(b_matmul) { (void)self; (void)kw; return nary(ev, OP_MATMUL, args, nargs, 2, 2, kwn, nkw, sp); }
BUILTIN(b_embedding) { (void)self; (void)kw; return nary(ev, OP_EMBEDDING, args, nargs, 2, 2, kwn, nkw, sp); }
BUILTIN(b_where) { (void)self; (void)kw; return nary(ev, OP_WHERE, args, nargs, 3, 3, kwn, nkw, sp); }
BUILTIN(b_maximum) { (void)self; (void)kw; return nary(ev, OP_MAXIMUM, args, nargs, 2, 2, kwn, nkw, sp); }
BUILTIN(b_minimum) { (void)self; (void)kw; return nary(ev, OP_MINIMUM, args, nargs, 2, 2, kwn, nkw, sp); }

static int64_t dim_arg(Eval *ev, Value *v, const char *what, Span sp)
{
	return v ? val_as_int(ev, v, what, sp) : -1;
}

BUILTIN(b_softmax)
{
	Value *x = self ? self : ARG("softmax", 0, "input", true);
	Value *d = ARG("softmax", self ? 0 : 1, "dim", false);
	IrAttrs at = {0};
	at.iattr[0] = dim_arg(ev, d, "dim", sp);
	at.niattr = 1;
	return trace_op(ev, OP_SOFTMAX, &x, 1, &at, sp, NULL);
}

/* scaled_dot_product_attention's operands: rank, the dims that must agree,
 * the mask's type; the scale (1 / sqrt(head size) unless given). In a
 * pattern nothing has a shape: only a given scale. */
static double sdpa_check(Eval *ev, Value **a, bool pattern, Span sp)
{
	static const char *const names[] = {"query", "key", "value"};
	const char *fname = "scaled_dot_product_attention";
	bool scaled = a[4] && a[4]->k != V_NONE;
	if (pattern) {
		if (!scaled)
			eval_error(ev, sp, "%s() in a pattern needs scale= (no head size to take it from)",
			           fname);
		return val_as_float(ev, a[4], "scale", sp);
	}
	for (int k = 0; k < 3; k++)
		if (a[k]->k != V_TENSOR || a[k]->node->shape.ndim < 2)
			eval_error(ev, sp, "%s(): %s must be a tensor of at least 2 dims, got %s",
			           fname, names[k],
			           a[k]->k == V_TENSOR ? "a tensor of fewer" : val_type_name(a[k]));
	/* queries and keys of one head size, as many values as keys */
	const IrShape *qs = &a[0]->node->shape, *ks = &a[1]->node->shape,
	              *vs = &a[2]->node->shape;
	static const char *const what[2] = {"the head size (last dim) of query and key",
	                                    "the number of keys (dim -2) of key and value"};
	IrDim x[2][2] = {{qs->d[qs->ndim - 1], ks->d[ks->ndim - 1]},
	                 {ks->d[ks->ndim - 2], vs->d[vs->ndim - 2]}};
	for (int c = 0; c < 2; c++) {
		if (ir_dim_eq(x[c][0], x[c][1]))
			continue;
		StrBuf b = {0};
		ir_dim_print(&b, ev->ir, x[c][0]);
		sb_puts(&b, " and ");
		ir_dim_print(&b, ev->ir, x[c][1]);
		const char *dims = arena_strdup(ev->arena, b.data);
		sb_free(&b);
		eval_error(ev, sp, "%s(): %s differ: %s", fname, what[c], dims);
	}
	Value *m = a[3];
	if (m && m->k == V_TENSOR && m->node->dtype != IR_BOOL &&
	    !ir_dtype_is_float(m->node->dtype))
		eval_error(ev, sp,
		           "%s(): attn_mask must be a float tensor (added to the scores) or a "
		           "bool one (true: attend), got %s",
		           fname, ir_dtype_name(m->node->dtype));
	if (scaled)
		return val_as_float(ev, a[4], "scale", sp);
	IrDim e = qs->d[qs->ndim - 1];
	for (int i = 0; i < IR_MAX_SYMS; i++)
		if (e.pow[i])
			eval_error(ev, sp,
			           "%s(): the head size (query's last dim) must be a number for "
			           "the default scale; give scale=",
			           fname);
	return 1.0 / sqrt((double)e.coef);
}

/* scaled_dot_product_attention(query, key, value, attn_mask=None,
 * scale=None): softmax(query @ key^T * scale (+ mask), dim=-1) @ value
 * over the last two dims (PyTorch's function, without dropout or causal
 * flag): scale defaults to 1 / sqrt(E), E the head size (query's last
 * dim); a float attn_mask is added to the scores, a bool one keeps the
 * scores where it is true (-inf elsewhere), broadcast either way. The
 * scale, mask and softmax are one fused kernel node (AttentionSoftmax_N),
 * so that the code generators run the two products and the softmax as one
 * attention step (docs/codegen.md). */
BUILTIN(b_sdpa)
{
	static const char *const names[] = {"query", "key", "value", "attn_mask", "scale", NULL};
	const char *fname = "scaled_dot_product_attention";
	arg_check_kwargs(ev, fname, names, kwn, nkw, sp);
	if (nargs > 5)
		eval_error(ev, sp, "%s() takes at most 5 arguments, got %d", fname, nargs);
	Value *a[5];
	for (int k = 0; k < 5; k++)
		a[k] = ARG(fname, k, names[k], k < 3);
	bool pattern = ev->trace && ev->trace->pattern;
	double scale = sdpa_check(ev, a, pattern, sp);
	IrAttrs ta = {0};
	ta.iattr[0] = -1;
	ta.iattr[1] = -2;
	ta.niattr = 2;
	Value *mm[2] = {a[0], trace_op(ev, OP_TRANSPOSE, &a[1], 1, &ta, sp, NULL)};
	Value *s = trace_op(ev, OP_MATMUL, mm, 2, NULL, sp, NULL);
	Value *f[3];
	int n = 0;
	f[n++] = builtins_binop(ev, OPR_MUL, s, val_float(ev, scale), sp);
	Value *m = a[3];
	if (m && m->k == V_TENSOR && m->node->dtype == IR_BOOL) {
		Value *w[3] = {m, f[n - 1], val_float(ev, -INFINITY)};
		f[n] = trace_op(ev, OP_WHERE, w, 3, NULL, sp, NULL);
		n++;
	} else if (m && m->k != V_NONE) {
		f[n] = builtins_binop(ev, OPR_ADD, f[n - 1], m, sp);
		n++;
	}
	IrAttrs sa = {0};
	sa.iattr[0] = -1;
	sa.niattr = 1;
	f[n] = trace_op(ev, OP_SOFTMAX, &f[n - 1], 1, &sa, sp, NULL);
	mm[0] = f[n++];
	mm[1] = a[2];
	Value *out = trace_op(ev, OP_MATMUL, mm, 2, NULL, sp, NULL);
	trace_fuse(ev, f, n, "AttentionSoftmax", sp); /* once used: the region's output */
	return out;
}

BUILTIN(b_layer_norm)
{
	Value *in[3] = {ARG("layer_norm", 0, "input", true), ARG("layer_norm", 1, "weight", true),
	                ARG("layer_norm", 2, "bias", true)};
	Value *eps = ARG("layer_norm", 3, "eps", false);
	IrAttrs at = {0};
	at.fattr = eps ? val_as_float(ev, eps, "eps", sp) : 1e-5;
	return trace_op(ev, OP_LAYER_NORM, in, 3, &at, sp, NULL);
}

BUILTIN(b_dropout)
{
	Value *x = ARG("dropout", 0, "input", true);
	Value *p = ARG("dropout", 1, "p", false);
	IrAttrs at = {0};
	at.fattr = p ? val_as_float(ev, p, "p", sp) : 0.5;
	return trace_op(ev, OP_DROPOUT, &x, 1, &at, sp, NULL);
}

BUILTIN(b_masked_fill)
{
	Value *in[2] = {self ? self : ARG("masked_fill", 0, "input", true),
	                ARG("masked_fill", self ? 0 : 1, "mask", true)};
	Value *v = ARG("masked_fill", self ? 1 : 2, "value", true);
	IrAttrs at = {0};
	at.fattr = val_as_float(ev, v, "value", sp);
	return trace_op(ev, OP_MASKED_FILL, in, 2, &at, sp, NULL);
}

BUILTIN(b_arange)
{
	Value *n = ARG("arange", 0, "end", true);
	IrAttrs at = {0};
	at.dattr[0] = val_as_dim(ev, n, "arange's end", sp);
	at.ndattr = 1;
	return trace_op(ev, OP_ARANGE, NULL, 0, &at, sp, NULL);
}

BUILTIN(b_cat)
{
	Value *l = ARG("cat", 0, "tensors", true);
	Value *d = ARG("cat", 1, "dim", false);
	if (l->k != V_LIST || l->list.len == 0)
		eval_error(ev, sp, "cat() expects a non-empty list of tensors");
	IrAttrs at = {0};
	at.iattr[0] = d ? val_as_int(ev, d, "dim", sp) : 0;
	at.niattr = 1;
	return trace_op(ev, OP_CAT, l->list.items, l->list.len, &at, sp, NULL);
}

static Value *reduce(Eval *ev, IrOp op, Value *self, Value **args, int nargs,
                     const char **kwn, Value **kw, int nkw, Span sp)
{
	const char *name = ir_ops[op].name;
	Value *x = self ? self : ARG(name, 0, "input", true);
	Value *d = ARG(name, self ? 0 : 1, "dim", false);
	Value *keep = ARG(name, self ? 1 : 2, "keepdim", false);
	IrAttrs at = {0};
	if (!d) {
		at.niattr = x->k == V_TENSOR ? x->node->shape.ndim : 0;
		for (int i = 0; i < at.niattr; i++)
			at.iattr[i] = i;
	} else if (d->k == V_LIST) {
		at.niattr = d->list.len;
		for (int i = 0; i < d->list.len && i < IR_MAX_DIMS; i++)
			at.iattr[i] = val_as_int(ev, d->list.items[i], "dim", sp);
	} else {
		at.iattr[0] = val_as_int(ev, d, "dim", sp);
		at.niattr = 1;
	}
	at.flags = keep && val_truthy(keep);
	return trace_op(ev, op, &x, 1, &at, sp, NULL);
}

BUILTIN(b_sum) { return reduce(ev, OP_SUM, self, args, nargs, kwn, kw, nkw, sp); }
BUILTIN(b_mean) { return reduce(ev, OP_MEAN, self, args, nargs, kwn, kw, nkw, sp); }
BUILTIN(b_max)
{
	if (!self && (nargs == 0 || args[0]->k != V_TENSOR))
		return b_max_scalar(ev, self, args, nargs, kwn, kw, nkw, sp);
	return reduce(ev, OP_MAX, self, args, nargs, kwn, kw, nkw, sp);
}

/* ---- tensor methods ---- */

/* Dims given as f(a, b, c) or f([a, b, c]). */
static int dims_of(Eval *ev, Value **args, int nargs, IrDim *out, bool allow_neg, Span sp)
{
	if (nargs == 1 && args[0]->k == V_LIST) {
		nargs = args[0]->list.len;
		args = args[0]->list.items;
	}
	if (nargs > IR_MAX_DIMS)
		eval_error(ev, sp, "rank %d exceeds the limit of %d", nargs, IR_MAX_DIMS);
	for (int i = 0; i < nargs; i++) {
		if (allow_neg && args[i]->k == V_INT && args[i]->i == -1)
			out[i] = ir_dim_const(-1);
		else
			out[i] = val_as_dim(ev, args[i], "a dimension", sp);
	}
	return nargs;
}

static int ints_of(Eval *ev, Value **args, int nargs, int64_t *out, Span sp)
{
	if (nargs == 1 && args[0]->k == V_LIST) {
		nargs = args[0]->list.len;
		args = args[0]->list.items;
	}
	if (nargs > IR_MAX_DIMS)
		eval_error(ev, sp, "rank %d exceeds the limit of %d", nargs, IR_MAX_DIMS);
	for (int i = 0; i < nargs; i++)
		out[i] = val_as_int(ev, args[i], "a dimension index", sp);
	return nargs;
}

BUILTIN(m_view)
{
	no_kwargs(ev, "view", nkw, kwn, sp);
	IrAttrs at = {0};
	at.ndattr = dims_of(ev, args, nargs, at.dattr, true, sp);
	return trace_op(ev, OP_VIEW, &self, 1, &at, sp, NULL);
}

BUILTIN(m_expand)
{
	no_kwargs(ev, "expand", nkw, kwn, sp);
	IrAttrs at = {0};
	at.ndattr = dims_of(ev, args, nargs, at.dattr, true, sp);
	return trace_op(ev, OP_EXPAND, &self, 1, &at, sp, NULL);
}

BUILTIN(m_permute)
{
	no_kwargs(ev, "permute", nkw, kwn, sp);
	IrAttrs at = {0};
	at.niattr = ints_of(ev, args, nargs, at.iattr, sp);
	return trace_op(ev, OP_PERMUTE, &self, 1, &at, sp, NULL);
}

BUILTIN(m_transpose)
{
	IrAttrs at = {0};
	at.iattr[0] = val_as_int(ev, ARG("transpose", 0, "dim0", true), "dim0", sp);
	at.iattr[1] = val_as_int(ev, ARG("transpose", 1, "dim1", true), "dim1", sp);
	at.niattr = 2;
	return trace_op(ev, OP_TRANSPOSE, &self, 1, &at, sp, NULL);
}

BUILTIN(m_unsqueeze)
{
	IrAttrs at = {0};
	at.iattr[0] = val_as_int(ev, ARG("unsqueeze", 0, "dim", true), "dim", sp);
	at.niattr = 1;
	return trace_op(ev, OP_UNSQUEEZE, &self, 1, &at, sp, NULL);
}

static Value *cast_to(Eval *ev, Value *x, IrDType t, Span sp)
{
	if (x->node->dtype == t)
		return x;
	IrAttrs at = {0};
	at.iattr[0] = t;
	at.niattr = 1;
	return trace_op(ev, OP_CAST, &x, 1, &at, sp, NULL);
}

BUILTIN(m_to)
{
	Value *t = ARG("to", 0, "dtype", true);
	if (t->k != V_DTYPE)
		eval_error(ev, sp, "to() expects a dtype such as f32, got %s", val_type_name(t));
	return cast_to(ev, self, t->dtype, sp);
}

BUILTIN(m_float) { (void)args; (void)nargs; (void)kwn; (void)kw; (void)nkw; return cast_to(ev, self, IR_F32, sp); }

BUILTIN(m_size)
{
	Value *d = ARG("size", 0, "dim", false);
	const IrShape *s = &self->node->shape;
	if (!d) {
		Value **items = ARENA_ARRAY(ev->arena, Value *, s->ndim + 1);
		for (int i = 0; i < s->ndim; i++)
			items[i] = val_dim(ev, s->d[i]);
		return val_list(ev, items, s->ndim);
	}
	int64_t i = val_as_int(ev, d, "dim", sp);
	if (i < 0)
		i += s->ndim;
	if (i < 0 || i >= s->ndim)
		eval_error(ev, sp, "dimension %lld out of range for a tensor of rank %d",
		           (long long)val_as_int(ev, d, "dim", sp), s->ndim);
	return val_dim(ev, s->d[i]);
}

BUILTIN(m_dim) { (void)args; (void)nargs; (void)kwn; (void)kw; (void)nkw; (void)sp; return val_int(ev, self->node->shape.ndim); }

typedef struct Method {
	const char *name;
	BuiltinFn fn;
} Method;

static const Method tensor_methods[] = {
	{"view", m_view}, {"reshape", m_view}, {"expand", m_expand}, {"permute", m_permute},
	{"transpose", m_transpose}, {"unsqueeze", m_unsqueeze}, {"to", m_to},
	{"float", m_float}, {"size", m_size}, {"dim", m_dim}, {"contiguous", b_contiguous},
	{"softmax", b_softmax}, {"masked_fill", b_masked_fill}, {"sum", b_sum},
	{"mean", b_mean}, {"max", b_max}, {NULL, NULL},
};

static Value *bound(Eval *ev, const char *name, BuiltinFn fn, Value *self)
{
	Value *v = val_new(ev, V_BUILTIN);
	v->builtin.fn = fn;
	v->builtin.name = name;
	v->builtin.self = self;
	return v;
}

Value *builtins_attr(Eval *ev, Value *obj, const char *name, Span sp)
{
	if (obj->k == V_TENSOR) {
		if (strcmp(name, "shape") == 0)
			return m_size(ev, obj, NULL, 0, NULL, NULL, 0, sp);
		if (strcmp(name, "dtype") == 0) {
			Value *v = val_new(ev, V_DTYPE);
			v->dtype = obj->node->dtype;
			return v;
		}
		for (const Method *m = tensor_methods; m->name; m++)
			if (strcmp(m->name, name) == 0) {
				if (m->fn == b_contiguous)
					return tensor_of(ev, obj->node);
				return bound(ev, m->name, m->fn, obj);
			}
		eval_error(ev, sp, "tensor has no attribute '%s'", name);
	}
	eval_error(ev, sp, "a %s has no attribute '%s'", val_type_name(obj), name);
}

/* ---- operators ---- */

static Value *dim_binop(Eval *ev, AstOp op, Value *a, Value *b, Span sp)
{
	IrDim x = val_as_dim(ev, a, "an operand", sp), y = val_as_dim(ev, b, "an operand", sp);
	IrDim r;
	switch (op) {
	case OPR_MUL:
		return val_dim(ev, ir_dim_mul(x, y));
	case OPR_FLOORDIV:
	case OPR_DIV:
		if (!ir_dim_div(x, y, &r))
			eval_error(ev, sp, "dimension does not divide exactly");
		return val_dim(ev, r);
	case OPR_ADD:
		if (!ir_dim_add(x, y, &r))
			eval_error(ev, sp, "cannot add these dimensions symbolically");
		return val_dim(ev, r);
	case OPR_EQ:
		return val_bool(ev, ir_dim_eq(x, y));
	case OPR_NE:
		return val_bool(ev, !ir_dim_eq(x, y));
	default:
		eval_error(ev, sp, "operator %s is not supported on symbolic dimensions",
		           ast_op_name(op));
	}
}

Value *builtins_binop(Eval *ev, AstOp op, Value *a, Value *b, Span sp)
{
	if (a->k != V_TENSOR && b->k != V_TENSOR)
		return dim_binop(ev, op, a, b, sp);
	static const IrOp ops[OPR_COUNT] = {
		[OPR_ADD] = OP_ADD, [OPR_SUB] = OP_SUB, [OPR_MUL] = OP_MUL, [OPR_DIV] = OP_DIV,
		[OPR_POW] = OP_POW, [OPR_MATMUL] = OP_MATMUL, [OPR_EQ] = OP_EQ, [OPR_NE] = OP_NE,
		[OPR_LT] = OP_LT, [OPR_LE] = OP_LE, [OPR_GT] = OP_GT, [OPR_GE] = OP_GE,
	};
	IrOp o = ops[op];
	if (o == 0 && op != OPR_ADD)
		eval_error(ev, sp, "operator %s is not supported on tensors", ast_op_name(op));
	/* a number beside a float tensor takes the tensor's float type */
	Value *in[2] = {a, b};
	for (int i = 0; i < 2; i++) {
		Value *o2 = in[1 - i];
		if ((in[i]->k == V_INT || in[i]->k == V_FLOAT) && o2->k == V_TENSOR &&
		    ir_dtype_is_float(o2->node->dtype)) {
			IrAttrs at = {0};
			at.fattr = val_as_float(ev, in[i], "a scalar", sp);
			at.dtype = o2->node->dtype;
			in[i] = trace_op(ev, OP_CONST, NULL, 0, &at, sp, "_tensor_constant");
		} else if (in[i]->k == V_DIM) {
			eval_error(ev, sp, "a symbolic dimension cannot be used as a tensor value");
		}
	}
	return trace_op(ev, o, in, 2, NULL, sp, NULL);
}

/* ---- installation ---- */

static const Method functions[] = {
	{"print", b_print}, {"len", b_len}, {"str", b_str}, {"int", b_int},
	{"float", b_float}, {"min", b_min}, {"max", b_max},
	{"create_schedule", b_create_schedule}, {"build", b_build},
	{"Parameter", b_parameter}, {"tie", b_tie},
	{"exp", b_exp}, {"log", b_log}, {"tanh", b_tanh}, {"erf", b_erf},
	{"sqrt", b_sqrt}, {"rsqrt", b_rsqrt}, {"relu", b_relu}, {"sigmoid", b_sigmoid},
	{"gelu", b_gelu}, {"gelu_tanh", b_gelu_tanh}, {"neg", b_neg},
	{"linear", b_linear}, {"matmul", b_matmul}, {"embedding", b_embedding},
	{"where", b_where}, {"maximum", b_maximum}, {"minimum", b_minimum},
	{"softmax", b_softmax}, {"layer_norm", b_layer_norm}, {"dropout", b_dropout},
	{"scaled_dot_product_attention", b_sdpa},
	{"masked_fill", b_masked_fill}, {"arange", b_arange}, {"cat", b_cat},
	{"sum", b_sum}, {"mean", b_mean},
	{NULL, NULL},
};

void builtins_install(Eval *ev, Env *e)
{
	for (const Method *m = functions; m->name; m++)
		env_set(ev, e, m->name, bound(ev, m->name, m->fn, NULL));
	for (int k = 1; k < BM_COUNT; k++) {
		Value *v = val_new(ev, V_MODULE_CLASS);
		v->builtin_module = k;
		env_set(ev, e, mod_builtin_name((BuiltinKind)k), v);
	}
	for (int t = 0; t < IR_DTYPE_COUNT; t++) {
		Value *v = val_new(ev, V_DTYPE);
		v->dtype = (IrDType)t;
		env_set(ev, e, ir_dtype_name((IrDType)t), v);
	}
	env_set(ev, e, "inf", val_float(ev, INFINITY));
	env_set(ev, e, "f32_min", val_float(ev, -3.4028234663852886e+38));
}
