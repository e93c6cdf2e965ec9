/* shape.c - shape rules: one function per `shape` column of ops.def.
 *
 * Each rule reads the node's inputs and attributes, sets n->dtype and
 * n->shape, or reports an error at n->span naming the op and the shapes
 * involved and returns false. Shapes are symbolic (dim.c); broadcasting
 * is numpy's (right-aligned; equal dims, or one of them 1); dtypes
 * promote the way torch does (float over int over bool; a rank-0 operand
 * does not widen a tensor of its own category).
 *
 * Rules may run more than once on a node (the verifier re-infers shapes
 * on a copy), so they never change attributes: a dim written -1 stays -1
 * and users normalise it with ir_axis.
 */
#include <stdarg.h>
#include <string.h>

#include "ir/ir.h"

/* ---- helpers ------------------------------------------------------------- */

int ir_axis(int64_t dim, int ndim)
{
	if (dim < 0)
		dim += ndim;
	if (dim < 0 || dim >= ndim)
		return -1;
	return (int)dim;
}

SUP_PRINTF(3, 4)
static bool fail(IrCtx *c, const IrNode *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vreport(c->diag, DIAG_ERROR, n->span, fmt, ap);
	va_end(ap);
	return false;
}

/* Strings for messages, carved from the arena (errors are rare). */
static const char *shp(IrCtx *c, const IrShape *s)
{
	StrBuf b = {0};
	ir_shape_print(&b, c, s);
	const char *r = arena_strdup(c->arena, b.data);
	sb_free(&b);
	return r;
}

static const char *dimstr(IrCtx *c, IrDim d)
{
	StrBuf b = {0};
	ir_dim_print(&b, c, d);
	const char *r = arena_strdup(c->arena, b.data);
	sb_free(&b);
	return r;
}

static const char *ty(IrCtx *c, const IrNode *n)
{
	StrBuf b = {0};
	ir_type_print(&b, c, n->dtype, &n->shape);
	const char *r = arena_strdup(c->arena, b.data);
	sb_free(&b);
	return r;
}

/* The element count of s written as its dims multiplied: B*S*768, or a
 * number when it is one. */
static const char *numel_str(IrCtx *c, const IrShape *s)
{
	IrDim n = ir_shape_numel(s);
	if (ir_dim_is_const(n))
		return dimstr(c, n);
	StrBuf b = {0};
	for (int i = 0; i < s->ndim; i++) {
		if (ir_dim_is_const(s->d[i]) && s->d[i].coef == 1)
			continue;
		if (b.len)
			sb_putc(&b, '*');
		ir_dim_print(&b, c, s->d[i]);
	}
	const char *r = arena_strdup(c->arena, b.data);
	sb_free(&b);
	return r;
}

static const char *opname(const IrNode *n)
{
	if ((n->op == OP_FUSED || n->op == OP_CALL) && n->sattr)
		return n->sattr;
	return ir_ops[n->op].name;
}

static bool is_one(IrDim d)
{
	return ir_dim_is_const(d) && d.coef == 1;
}

static bool is_infer(IrDim d) /* -1 in view/expand */
{
	return ir_dim_is_const(d) && d.coef == -1;
}

static bool is_int(IrDType t)
{
	return t == IR_I64 || t == IR_I32;
}

/* numpy broadcasting of a and b into out; false if they do not broadcast */
static bool bcast(const IrShape *a, const IrShape *b, IrShape *out)
{
	IrShape r;
	memset(&r, 0, sizeof r);
	r.ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
	for (int i = 0; i < r.ndim; i++) {
		int ia = a->ndim - r.ndim + i, ib = b->ndim - r.ndim + i;
		IrDim da = ia >= 0 ? a->d[ia] : ir_dim_const(1);
		IrDim db = ib >= 0 ? b->d[ib] : ir_dim_const(1);
		if (ir_dim_eq(da, db) || is_one(db))
			r.d[i] = da;
		else if (is_one(da))
			r.d[i] = db;
		else
			return false;
	}
	*out = r;
	return true;
}

static int category(IrDType t)
{
	return t == IR_BOOL ? 0 : is_int(t) ? 1 : 2;
}

/* Promotion within one category. */
static IrDType promote_same(IrDType a, IrDType b)
{
	if (a == b)
		return a;
	switch (category(a)) {
	case 2:
		if (a == IR_F64 || b == IR_F64)
			return IR_F64;
		return IR_F32; /* f16 with bf16, or either with f32 */
	case 1:
		return IR_I64;
	default:
		return IR_BOOL;
	}
}

/* torch.result_type for two operands of ranks ra and rb. */
static IrDType promote(IrDType a, int ra, IrDType b, int rb)
{
	int ca = category(a), cb = category(b);
	if ((ra > 0) != (rb > 0)) {
		/* a dimensioned tensor decides unless the scalar is of a higher
		 * category */
		IrDType dt = ra > 0 ? a : b, st = ra > 0 ? b : a;
		return category(st) > category(dt) ? st : dt;
	}
	if (ca != cb)
		return ca > cb ? a : b;
	return promote_same(a, b);
}

static void set_shape(IrNode *n, IrDType t, const IrShape *s)
{
	n->dtype = t;
	n->shape = *s;
}

/* ---- sources --------------------------------------------------------------- */

bool shape_source(IrCtx *c, IrNode *n)
{
	if (n->shape.ndim < 0 || n->shape.ndim > IR_MAX_DIMS)
		return fail(c, n, "%s: rank %d is out of range (at most %d dims)",
		            opname(n), n->shape.ndim, IR_MAX_DIMS);
	if ((unsigned)n->dtype >= IR_DTYPE_COUNT)
		return fail(c, n, "%s: invalid dtype %d", opname(n), (int)n->dtype);
	for (int i = 0; i < n->shape.ndim; i++)
		if (n->shape.d[i].coef < 0)
			return fail(c, n, "%s: negative size in %s", opname(n),
			            shp(c, &n->shape));
	return true;
}

bool shape_arange(IrCtx *c, IrNode *n)
{
	if (n->ndattr < 1 || n->dattr[0].coef < 0)
		return fail(c, n, "arange: needs a non-negative length");
	IrShape s = {.ndim = 1};
	s.d[0] = n->dattr[0];
	set_shape(n, IR_I64, &s);
	return true;
}

/* ---- library calls ------------------------------------------------------------ */

bool shape_linear(IrCtx *c, IrNode *n)
{
	if (n->nin != 2 && n->nin != 3)
		return fail(c, n,
		            "linear: expects 2 or 3 inputs (x, weight[, bias]), got %d",
		            n->nin);
	const IrNode *x = n->in[0], *w = n->in[1];
	if (w->shape.ndim != 2)
		return fail(c, n, "linear: the weight must be 2-D, got %s", ty(c, w));
	if (x->shape.ndim < 1)
		return fail(c, n, "linear: the input must have at least one dim, got %s",
		            ty(c, x));
	IrDim in = x->shape.d[x->shape.ndim - 1];
	if (!ir_dim_eq(in, w->shape.d[1]))
		return fail(
		        c, n,
		        "linear: input has %s features but the weight expects %s (weight %s)",
		        dimstr(c, in), dimstr(c, w->shape.d[1]), ty(c, w));
	if (x->dtype != w->dtype)
		return fail(c, n, "linear: the input is %s but the weight is %s",
		            ir_dtype_name(x->dtype), ir_dtype_name(w->dtype));
	if (n->nin == 3) {
		const IrNode *b = n->in[2];
		if (b->shape.ndim != 1 || !ir_dim_eq(b->shape.d[0], w->shape.d[0]))
			return fail(
			        c, n,
			        "linear: bias %s does not match the weight's %s outputs (weight %s)",
			        ty(c, b), dimstr(c, w->shape.d[0]), ty(c, w));
	}
	IrShape s = x->shape;
	s.d[s.ndim - 1] = w->shape.d[0];
	set_shape(n, x->dtype, &s);
	return true;
}

bool shape_matmul(IrCtx *c, IrNode *n)
{
	const IrNode *a = n->in[0], *b = n->in[1];
	const IrShape *sa = &a->shape, *sb = &b->shape;
	if (sa->ndim < 2 || sb->ndim < 2)
		return fail(c, n,
		            "matmul: operands must have at least 2 dims, got %s and %s",
		            shp(c, sa), shp(c, sb));
	if (!ir_dim_eq(sa->d[sa->ndim - 1], sb->d[sb->ndim - 2]))
		return fail(
		        c, n,
		        "matmul: cannot multiply %s by %s: inner dims %s and %s differ",
		        shp(c, sa), shp(c, sb), dimstr(c, sa->d[sa->ndim - 1]),
		        dimstr(c, sb->d[sb->ndim - 2]));
	IrShape ba = *sa, bb = *sb, out;
	ba.ndim -= 2;
	bb.ndim -= 2;
	if (!bcast(&ba, &bb, &out))
		return fail(c, n, "matmul: batch dims of %s and %s do not broadcast",
		            shp(c, sa), shp(c, sb));
	if (a->dtype != b->dtype)
		return fail(c, n, "matmul: operands are %s and %s",
		            ir_dtype_name(a->dtype), ir_dtype_name(b->dtype));
	if (out.ndim + 2 > IR_MAX_DIMS)
		return fail(c, n, "matmul: result would have more than %d dims",
		            IR_MAX_DIMS);
	out.d[out.ndim++] = sa->d[sa->ndim - 2];
	out.d[out.ndim++] = sb->d[sb->ndim - 1];
	set_shape(n, a->dtype, &out);
	return true;
}

/* ---- elementwise ---------------------------------------------------------------- */

bool shape_broadcast(IrCtx *c, IrNode *n)
{
	const IrNode *a = n->in[0], *b = n->in[1];
	IrShape s;
	if (!bcast(&a->shape, &b->shape, &s))
		return fail(c, n, "%s: shapes %s and %s do not broadcast", opname(n),
		            shp(c, &a->shape), shp(c, &b->shape));
	IrDType t = promote(a->dtype, a->shape.ndim, b->dtype, b->shape.ndim);
	if (n->op == OP_DIV && !ir_dtype_is_float(t))
		t = IR_F32; /* true division */
	set_shape(n, t, &s);
	return true;
}

bool shape_compare(IrCtx *c, IrNode *n)
{
	const IrNode *a = n->in[0], *b = n->in[1];
	IrShape s;
	if (!bcast(&a->shape, &b->shape, &s))
		return fail(c, n, "%s: shapes %s and %s do not broadcast", opname(n),
		            shp(c, &a->shape), shp(c, &b->shape));
	set_shape(n, IR_BOOL, &s);
	return true;
}

bool shape_where(IrCtx *c, IrNode *n)
{
	const IrNode *k = n->in[0], *a = n->in[1], *b = n->in[2];
	if (k->dtype != IR_BOOL)
		return fail(c, n, "where: the condition must be bool, got %s", ty(c, k));
	IrShape s, s2;
	if (!bcast(&k->shape, &a->shape, &s) || !bcast(&s, &b->shape, &s2))
		return fail(c, n, "where: shapes %s, %s and %s do not broadcast",
		            shp(c, &k->shape), shp(c, &a->shape), shp(c, &b->shape));
	set_shape(n, promote(a->dtype, a->shape.ndim, b->dtype, b->shape.ndim), &s2);
	return true;
}

bool shape_masked(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0], *m = n->in[1];
	if (m->dtype != IR_BOOL)
		return fail(c, n, "masked_fill: the mask must be bool, got %s", ty(c, m));
	IrShape s;
	if (!bcast(&x->shape, &m->shape, &s) || !ir_shape_eq(&s, &x->shape))
		return fail(c, n, "masked_fill: mask %s does not broadcast to %s",
		            shp(c, &m->shape), shp(c, &x->shape));
	set_shape(n, x->dtype, &x->shape);
	return true;
}

bool shape_same(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0];
	IrDType t = x->dtype;
	switch (n->op) {
	case OP_NOT:
		t = IR_BOOL;
		break;
	case OP_EXP:
	case OP_LOG:
	case OP_TANH:
	case OP_ERF:
	case OP_SQRT:
	case OP_RSQRT:
	case OP_SIGMOID:
	case OP_GELU:
	case OP_GELU_TANH:
		if (!ir_dtype_is_float(t))
			t = IR_F32;
		break;
	case OP_SOFTMAX:
		if (n->niattr < 1 || ir_axis(n->iattr[0], x->shape.ndim) < 0)
			return fail(c, n, "softmax: dim %lld is out of range for %s",
			            n->niattr ? (long long)n->iattr[0] : 0LL,
			            shp(c, &x->shape));
		if (!ir_dtype_is_float(t))
			t = IR_F32;
		break;
	default:
		break;
	}
	set_shape(n, t, &x->shape);
	return true;
}

bool shape_cast(IrCtx *c, IrNode *n)
{
	if (n->niattr < 1 || n->iattr[0] < 0 || n->iattr[0] >= IR_DTYPE_COUNT)
		return fail(c, n, "cast: invalid target dtype %lld",
		            n->niattr ? (long long)n->iattr[0] : -1LL);
	set_shape(n, (IrDType)n->iattr[0], &n->in[0]->shape);
	return true;
}

/* ---- reductions and normalisations ---------------------------------------------- */

bool shape_layer_norm(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0];
	if (x->shape.ndim < 1)
		return fail(c, n,
		            "layer_norm: the input must have at least one dim, got %s",
		            ty(c, x));
	IrDim last = x->shape.d[x->shape.ndim - 1];
	for (int i = 1; i < 3; i++) {
		const IrNode *p = n->in[i];
		if (p->shape.ndim != 1 || !ir_dim_eq(p->shape.d[0], last))
			return fail(c, n,
			            "layer_norm: %s %s does not match the last dim of %s",
			            i == 1 ? "weight" : "bias", ty(c, p),
			            shp(c, &x->shape));
	}
	set_shape(n, ir_dtype_is_float(x->dtype) ? x->dtype : IR_F32, &x->shape);
	return true;
}

bool shape_reduce(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0];
	int nd = x->shape.ndim;
	bool red[IR_MAX_DIMS] = {0};
	for (int i = 0; i < n->niattr; i++) {
		int a = ir_axis(n->iattr[i], nd);
		if (a < 0)
			return fail(c, n, "%s: dim %lld is out of range for %s",
			            opname(n), (long long)n->iattr[i], shp(c, &x->shape));
		if (red[a])
			return fail(c, n, "%s: dim %lld is given twice", opname(n),
			            (long long)n->iattr[i]);
		red[a] = true;
	}
	if (n->niattr == 0) /* no dims: all of them */
		for (int i = 0; i < nd; i++)
			red[i] = true;
	bool keep = n->flags & 1;
	IrShape s = {0};
	for (int i = 0; i < nd; i++) {
		if (!red[i])
			s.d[s.ndim++] = x->shape.d[i];
		else if (keep)
			s.d[s.ndim++] = ir_dim_const(1);
	}
	IrDType t = x->dtype;
	if (n->op == OP_SUM && !ir_dtype_is_float(t))
		t = IR_I64;
	if (n->op == OP_MEAN && !ir_dtype_is_float(t))
		t = IR_F32;
	set_shape(n, t, &s);
	return true;
}

/* ---- data movement ----------------------------------------------------------------- */

bool shape_embedding(IrCtx *c, IrNode *n)
{
	const IrNode *ids = n->in[0], *tab = n->in[1];
	if (!is_int(ids->dtype))
		return fail(c, n, "embedding: ids must be integers, got %s", ty(c, ids));
	if (tab->shape.ndim != 2)
		return fail(c, n, "embedding: the table must be 2-D, got %s", ty(c, tab));
	if (ids->shape.ndim + 1 > IR_MAX_DIMS)
		return fail(c, n, "embedding: result would have more than %d dims",
		            IR_MAX_DIMS);
	IrShape s = ids->shape;
	s.d[s.ndim++] = tab->shape.d[1];
	set_shape(n, tab->dtype, &s);
	return true;
}

static IrShape attr_shape(const IrNode *n)
{
	IrShape s = {0};
	s.ndim = n->ndattr;
	for (int i = 0; i < n->ndattr; i++)
		s.d[i] = n->dattr[i];
	return s;
}

bool shape_view(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0];
	IrShape want = attr_shape(n), out = want;
	int infer = -1;
	IrDim known = ir_dim_const(1);
	for (int i = 0; i < want.ndim; i++) {
		if (is_infer(want.d[i])) {
			if (infer >= 0)
				return fail(c, n, "view: only one dim can be -1 in %s",
				            shp(c, &want));
			infer = i;
			continue;
		}
		if (want.d[i].coef < 0)
			return fail(c, n, "view: invalid size %s in %s",
			            dimstr(c, want.d[i]), shp(c, &want));
		known = ir_dim_mul(known, want.d[i]);
	}
	IrDim total = ir_shape_numel(&x->shape);
	bool ok;
	if (infer >= 0)
		ok = ir_dim_div(total, known, &out.d[infer]);
	else
		ok = ir_dim_eq(total, known);
	if (!ok)
		return fail(c, n, "view: cannot view %s (%s elements) as %s",
		            shp(c, &x->shape), numel_str(c, &x->shape), shp(c, &want));
	set_shape(n, x->dtype, &out);
	return true;
}

bool shape_permute(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0];
	int nd = x->shape.ndim;
	bool seen[IR_MAX_DIMS] = {0};
	bool ok = n->niattr == nd;
	IrShape s = {.ndim = nd};
	for (int i = 0; ok && i < nd; i++) {
		int a = ir_axis(n->iattr[i], nd);
		if (a < 0 || seen[a])
			ok = false;
		else {
			seen[a] = true;
			s.d[i] = x->shape.d[a];
		}
	}
	if (!ok) {
		StrBuf b = {0};
		sb_putc(&b, '[');
		for (int i = 0; i < n->niattr; i++)
			sb_printf(&b, "%s%lld", i ? ", " : "", (long long)n->iattr[i]);
		sb_putc(&b, ']');
		fail(c, n, "permute: %s is not a permutation of the dims of %s", b.data,
		     shp(c, &x->shape));
		sb_free(&b);
		return false;
	}
	set_shape(n, x->dtype, &s);
	return true;
}

bool shape_transpose(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0];
	int nd = x->shape.ndim;
	int a = n->niattr >= 2 ? ir_axis(n->iattr[0], nd) : -1;
	int b = n->niattr >= 2 ? ir_axis(n->iattr[1], nd) : -1;
	if (a < 0 || b < 0)
		return fail(c, n, "transpose: dims %lld and %lld are out of range for %s",
		            n->niattr > 0 ? (long long)n->iattr[0] : 0LL,
		            n->niattr > 1 ? (long long)n->iattr[1] : 0LL,
		            shp(c, &x->shape));
	IrShape s = x->shape;
	s.d[a] = x->shape.d[b];
	s.d[b] = x->shape.d[a];
	set_shape(n, x->dtype, &s);
	return true;
}

bool shape_expand(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0];
	IrShape want = attr_shape(n), out = want;
	int off = want.ndim - x->shape.ndim;
	bool ok = off >= 0;
	for (int i = 0; ok && i < want.ndim; i++) {
		IrDim w = want.d[i];
		if (i < off) {
			ok = w.coef >= 0;
			continue;
		}
		IrDim d = x->shape.d[i - off];
		if (is_infer(w))
			out.d[i] = d;
		else if (!ir_dim_eq(w, d) && !is_one(d))
			ok = false;
		else if (w.coef < 0)
			ok = false;
	}
	if (!ok)
		return fail(c, n, "expand: cannot expand %s to %s", shp(c, &x->shape),
		            shp(c, &want));
	set_shape(n, x->dtype, &out);
	return true;
}

bool shape_unsqueeze(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0];
	int nd = x->shape.ndim;
	int a = n->niattr >= 1 ? ir_axis(n->iattr[0], nd + 1) : -1;
	if (a < 0)
		return fail(c, n, "unsqueeze: dim %lld is out of range for %s",
		            n->niattr ? (long long)n->iattr[0] : 0LL, shp(c, &x->shape));
	if (nd + 1 > IR_MAX_DIMS)
		return fail(c, n, "unsqueeze: result would have more than %d dims",
		            IR_MAX_DIMS);
	IrShape s = {.ndim = nd + 1};
	for (int i = 0, j = 0; i < nd + 1; i++)
		s.d[i] = i == a ? ir_dim_const(1) : x->shape.d[j++];
	set_shape(n, x->dtype, &s);
	return true;
}

bool ir_slice_bound(IrDim v, IrDim size, IrDim *out)
{
	if (ir_dim_is_const(v) && v.coef == INT64_MAX) {
		*out = size;
		return true;
	}
	if (ir_dim_is_const(v) && ir_dim_is_const(size)) {
		int64_t x = v.coef, s = size.coef;
		if (x < 0)
			x += s;
		if (x < 0)
			x = 0;
		if (x > s)
			x = s;
		*out = ir_dim_const(x);
		return true;
	}
	if (v.coef < 0)
		return false;
	*out = v;
	return true;
}

bool shape_slice(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0];
	int nd = x->shape.ndim;
	int a = n->niattr >= 1 ? ir_axis(n->iattr[0], nd) : -1;
	if (a < 0)
		return fail(c, n, "slice: dim %lld is out of range for %s",
		            n->niattr ? (long long)n->iattr[0] : 0LL, shp(c, &x->shape));
	if (n->ndattr < 2)
		return fail(c, n, "slice: needs a start and an end");
	int64_t step = n->niattr >= 2 ? n->iattr[1] : 1;
	if (step < 1)
		return fail(c, n, "slice: step %lld must be positive", (long long)step);
	IrDim size = x->shape.d[a], lo, hi, len;
	if (!ir_slice_bound(n->dattr[0], size, &lo) ||
	    !ir_slice_bound(n->dattr[1], size, &hi))
		return fail(c, n,
		            "slice: bounds %s:%s of a dim of size %s cannot be resolved",
		            dimstr(c, n->dattr[0]), dimstr(c, n->dattr[1]),
		            dimstr(c, size));
	IrDim neg = ir_dim_mul(lo, ir_dim_const(-1));
	if (!ir_dim_add(hi, neg, &len))
		return fail(c, n, "slice: length %s - %s is not a single term",
		            dimstr(c, hi), dimstr(c, lo));
	if (ir_dim_is_const(len)) {
		int64_t l = len.coef < 0 ? 0 : len.coef;
		len = ir_dim_const((l + step - 1) / step);
	} else if (step != 1 && !ir_dim_div(len, ir_dim_const(step), &len)) {
		return fail(c, n, "slice: length %s is not divisible by the step %lld",
		            dimstr(c, len), (long long)step);
	} else if (len.coef < 0) {
		return fail(c, n, "slice: bounds %s:%s give a negative length",
		            dimstr(c, lo), dimstr(c, hi));
	}
	IrShape s = x->shape;
	s.d[a] = len;
	set_shape(n, x->dtype, &s);
	return true;
}

bool shape_select(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0];
	int nd = x->shape.ndim;
	int a = n->niattr >= 2 ? ir_axis(n->iattr[0], nd) : -1;
	if (a < 0)
		return fail(c, n, "select: dim %lld is out of range for %s",
		            n->niattr ? (long long)n->iattr[0] : 0LL, shp(c, &x->shape));
	int64_t idx = n->iattr[1];
	IrDim size = x->shape.d[a];
	/* a symbolic dim is checked at run time (x[:, -1] is common) */
	bool ok = !ir_dim_is_const(size) || (idx >= -size.coef && idx < size.coef);
	if (!ok)
		return fail(c, n, "select: index %lld is out of range for dim %d of %s",
		            (long long)idx, a, shp(c, &x->shape));
	IrShape s = {.ndim = nd - 1};
	for (int i = 0, j = 0; i < nd; i++)
		if (i != a)
			s.d[j++] = x->shape.d[i];
	set_shape(n, x->dtype, &s);
	return true;
}

bool shape_cat(IrCtx *c, IrNode *n)
{
	const IrNode *x = n->in[0];
	int nd = x->shape.ndim;
	int a = n->niattr >= 1 ? ir_axis(n->iattr[0], nd) : -1;
	if (a < 0)
		return fail(c, n, "cat: dim %lld is out of range for %s",
		            n->niattr ? (long long)n->iattr[0] : 0LL, shp(c, &x->shape));
	IrShape s = x->shape;
	IrDType t = x->dtype;
	for (int i = 1; i < n->nin; i++) {
		const IrShape *o = &n->in[i]->shape;
		bool ok = o->ndim == nd;
		for (int k = 0; ok && k < nd; k++)
			if (k != a && !ir_dim_eq(o->d[k], s.d[k]))
				ok = false;
		if (!ok)
			return fail(c, n, "cat: shapes %s and %s differ outside dim %d",
			            shp(c, &x->shape), shp(c, o), a);
		IrDim sum;
		if (!ir_dim_add(s.d[a], o->d[a], &sum))
			return fail(
			        c, n,
			        "cat: sizes %s and %s along dim %d do not add up to a single term",
			        dimstr(c, s.d[a]), dimstr(c, o->d[a]), a);
		s.d[a] = sum;
		IrDType u = n->in[i]->dtype;
		t = category(t) != category(u) ? (category(t) > category(u) ? t : u)
		                               : promote_same(t, u);
	}
	set_shape(n, t, &s);
	return true;
}

/* ---- calls ---------------------------------------------------------------------------- */

/* d with symbols replaced by their bindings (unbound ones stay). */
static IrDim subst(IrDim d, const IrDim *bind, const bool *bound)
{
	IrDim r = ir_dim_const(d.coef);
	for (int i = 0; i < IR_MAX_SYMS; i++)
		for (int p = 0; p < d.pow[i]; p++)
			r = ir_dim_mul(r, bound[i] ? bind[i] : ir_dim_sym(i));
	return r;
}

bool shape_call(IrCtx *c, IrNode *n)
{
	const IrGraph *body = n->sub;
	const char *name = opname(n);
	if (!body)
		return fail(c, n, "%s: has no body graph", name);
	if (body->outputs.len != 1)
		return fail(c, n, "%s: the body returns %d values; a call returns one",
		            name, body->outputs.len);
	if (n->nin != body->inputs.len)
		return fail(c, n, "%s: expects %d inputs, got %d", name, body->inputs.len,
		            n->nin);
	IrDim bind[IR_MAX_SYMS];
	bool bound[IR_MAX_SYMS] = {0};
	/* bind the body's plain symbols to the actual dims, then check all */
	for (int i = 0; i < n->nin; i++) {
		const IrNode *p = body->inputs.items[i];
		const IrShape *a = &n->in[i]->shape;
		if (p->shape.ndim != a->ndim)
			continue;
		for (int k = 0; k < a->ndim; k++) {
			int s;
			if (ir_dim_plain_sym(p->shape.d[k], &s) && !bound[s]) {
				bind[s] = a->d[k];
				bound[s] = true;
			}
		}
	}
	for (int i = 0; i < n->nin; i++) {
		const IrNode *p = body->inputs.items[i];
		const IrNode *a = n->in[i];
		bool ok = p->shape.ndim == a->shape.ndim && p->dtype == a->dtype;
		for (int k = 0; ok && k < a->shape.ndim; k++)
			ok = ir_dim_eq(subst(p->shape.d[k], bind, bound), a->shape.d[k]);
		if (!ok)
			return fail(c, n, "%s: input %d is %s but the body expects %s",
			            name, i + 1, ty(c, a), ty(c, p));
	}
	const IrNode *o = body->outputs.items[0];
	IrShape s = o->shape;
	for (int k = 0; k < s.ndim; k++)
		s.d[k] = subst(s.d[k], bind, bound);
	set_shape(n, o->dtype, &s);
	return true;
}
