/* gpu_fuse.c - the fusions cg_gpu_plan (gpu_plan.c) applies to the kernel
 * graph's steps: attention's GEMM, softmax and GEMM as one kernel (at
 * 16 bits, and at tf32 through f16 copies), a GEMM with the GELU after it
 * as its cuBLASLt epilogue, and (opt-in) a GEMM adding the bias and the
 * residual of the LayerNorm after it. Each matcher takes step s of the
 * program and returns the step(s) to run instead, or NULL.
 */
#include <string.h>

#include "codegen/gpu.h"

/* Whether every term of p is a multiple of m (offsets and strides of
 * 32-bit or 16-byte loads of 16-bit elements: m = 2 or 8). */
static bool poly_mult(const CgPoly *p, int m)
{
	for (int i = 0; i < p->n; i++)
		if (p->t[i].coef % m != 0)
			return false;
	return true;
}

static bool dim_mult(IrDim d, int m)
{
	return d.coef % m == 0;
}

static bool dim_const(IrDim d, int64_t *v)
{
	for (int i = 0; i < IR_MAX_SYMS; i++)
		if (d.pow[i])
			return false;
	*v = d.coef;
	return true;
}

/* Steps s, s + 1, s + 2 as one attention kernel on the device, or NULL:
 * an attention of cg_find_attention with Q, K, V and O of type t (16-bit
 * for the kernel; f32 at tf32, which fuse_attention_f16 converts), the
 * head size a multiple of 16 up to 128, Q and O in 32-bit element pairs, K
 * and V in 16-byte chunks (counted in 16-bit elements). */
CgStep *cg_gpu_fuse_attention(const CgGpu *g, const CgProgram *p, int s, IrDType t)
{
	CgStep *at = cg_find_attention(p, s);
	if (!at)
		return NULL;
	const CgStep *g1 = p->steps.items[s], *g2 = p->steps.items[s + 2];
	int q = g1->views[1].buf, k = g1->views[2].buf, v = g2->views[2].buf,
	    o = g2->views[0].buf;
	if (g->btype[q] != t || g->btype[k] != t || g->btype[v] != t || g->btype[o] != t)
		return NULL;
	int64_t d = 0;
	if (!dim_const(g1->k, &d) || d % 16 != 0 || d > 128)
		return NULL;
	if (!dim_mult(g1->lda, 2) || !dim_mult(g1->ldb, 8) || !dim_mult(g2->ldb, 8) ||
	    !dim_mult(g2->ldc, 2) || !poly_mult(&g1->views[1].off, 2) ||
	    !poly_mult(&g1->views[2].off, 8) || !poly_mult(&g2->views[2].off, 8) ||
	    !poly_mult(&g2->views[0].off, 2))
		return NULL;
	for (int i = 0; i < g1->nbatch; i++)
		if (!dim_mult(g1->bsa[i], 2) || !dim_mult(g1->bsb[i], 8) ||
		    !dim_mult(g2->bsb[i], 8) || !dim_mult(g2->bsc[i], 2))
			return NULL;
	at->mt = 2;
	return at;
}

/* At tf32, steps s, s + 1, s + 2 as the f16 attention kernel (f16 keeps
 * TF32's 10-bit mantissa; products accumulate and the softmax runs in f32
 * as at 16 bits), or NULL: Q, K and V read from f16 copies of their f32
 * buffers, O written into an f16 temp converted into its f32 buffer,
 * which the attention must fill (no other data in it). The conversion
 * MAPs go into g's steps before the attention, *back is the MAP after it. */
CgStep *cg_gpu_fuse_attention_f16(CgGpu *g, const CgProgram *p, int s, CgStep **back)
{
	CgStep *at = cg_gpu_fuse_attention(g, p, s, IR_F32);
	if (!at)
		return NULL;
	const CgStep *g1 = p->steps.items[s], *g2 = p->steps.items[s + 2];
	int o = g2->views[0].buf;
	IrDim written = ir_dim_mul(g2->m, g2->n);
	for (int i = 0; i < g2->nbatch; i++)
		written = ir_dim_mul(written, g2->bdim[i]);
	if (!ir_dim_eq(written, g->bufs[o]->numel) || !cg_poly_eq(&g2->views[0].off,
	                                                          &(CgPoly){0}))
		return NULL;
	at->views = memcpy(ARENA_ARRAY(p->arena, CgView, at->nview), at->views,
	                   sizeof *at->views * (size_t)at->nview);
	static const char *const which[3] = {"q", "k", "v"};
	int src[3] = {g1->views[1].buf, g1->views[2].buf, g2->views[2].buf}, copy[3];
	for (int i = 0; i < 3; i++) {
		copy[i] = -1;
		for (int j = 0; j < i; j++)
			if (src[j] == src[i])
				copy[i] = copy[j];
		if (copy[i] < 0)
			copy[i] = cg_gpu_convert(g, -1, src[i], IR_F16, at, which[i]);
		at->views[1 + i].buf = copy[i];
	}
	int oc = cg_gpu_temp(g, g->bufs[o]->numel, IR_F16, o);
	at->views[0].buf = oc;
	*back = cg_gpu_convert_map(g, o, oc, at, "o");
	return at;
}

/* The view of step st's expression leaf x, or -1. */
static int leaf_view(const CgStep *st, const IrNode *x)
{
	for (int i = 0; i < st->expr.nleaf; i++)
		if (st->expr.leaf[i] == x)
			return st->expr.leaf_view[i];
	return -1;
}

/* GEMM s and the MAP after it as one cuBLASLt call with its bias + GELU
 * epilogue, or NULL: the MAP computes gelu(C + bias) (erf, or its tanh
 * form) of the GEMM's output C, which nothing else reads, with a bias
 * along C's columns, into a compact m x n matrix; all three of one 16-bit
 * type. With `folded` (the bias the GEMM already takes from its bias
 * MAPs) the MAP is gelu(C), perhaps over the m * n elements flat. The
 * epilogue computes GELU's tanh form (rt.h RT_EPI_GELU_BIAS), within
 * 4.8e-4 of the erf form everywhere: only where `erf` allows it for an
 * erf GELU. Returns a copy of the GEMM writing the MAP's output;
 * the bias's view in *bias. */
CgStep *cg_gpu_fuse_gelu(const CgGpu *g, const CgProgram *p, int s, bool erf,
                         const CgView *folded, CgView *bias)
{
	if (s + 1 >= p->steps.len)
		return NULL;
	const CgStep *gm = p->steps.items[s], *m = p->steps.items[s + 1];
	if (gm->kind != CG_GEMM || m->kind != CG_MAP || gm->ngroup > 1 ||
	    gm->nbatch != 0 || gm->alpha != 1.0 || gm->beta != (folded ? 1.0 : 0.0) ||
	    m->expr.nleaf != (folded ? 1 : 2) || m->expr.nconst != 0 ||
	    (m->ndim != 2 && !(folded && m->ndim == 1)))
		return NULL;
	const IrNode *r = m->expr.root;
	if (!(r->op == OP_GELU_TANH || (r->op == OP_GELU && erf)) || r->nin != 1)
		return NULL;
	int cv = -1, bv = -1;
	if (folded) /* gelu(C), the bias already C's */
		cv = leaf_view(m, r->in[0]);
	else if (r->in[0]->op != OP_ADD || r->in[0]->nin != 2)
		return NULL;
	for (int i = 0; !folded && i < 2; i++) {
		const IrNode *x = r->in[0]->in[i];
		int v = x == m->expr.leaf[0]   ? m->expr.leaf_view[0]
		        : x == m->expr.leaf[1] ? m->expr.leaf_view[1]
		                               : -1;
		if (v < 0)
			return NULL;
		if (m->views[v].buf == gm->views[0].buf)
			cv = v;
		else
			bv = v;
	}
	if (cv < 0 || (bv < 0 && !folded) || m->views[cv].buf != gm->views[0].buf)
		return NULL;
	const CgBuf *cb = p->bufs.items[gm->views[0].buf];
	const CgView *c = &m->views[cv], *b = folded ? folded : &m->views[bv], *o = &m->views[0];
	if (cb->kind != CG_BUF_TEMP || cb->last != s + 1 || b->buf < 0 ||
	    ((const CgBuf *)p->bufs.items[b->buf])->kind != CG_BUF_PARAM)
		return NULL;
	/* C read as the GEMM wrote it, the bias along its columns, O compact
	 * (a gelu(C) may run over the m * n elements as one dim) */
	bool rows = m->ndim == 2;
	if (!ir_dim_eq(gm->ldc, gm->n) || !cg_poly_eq(&c->off, &gm->views[0].off) ||
	    !cg_dim_is(b->stride[0], 0) || !cg_dim_is(b->stride[1], 1) ||
	    !cg_dim_is(c->stride[m->ndim - 1], 1) || !cg_dim_is(o->stride[m->ndim - 1], 1))
		return NULL;
	if (rows ? !ir_dim_eq(m->dim[0], gm->m) || !ir_dim_eq(m->dim[1], gm->n) ||
	                   !ir_dim_eq(c->stride[0], gm->n) || !ir_dim_eq(o->stride[0], gm->n)
	         : !ir_dim_eq(m->dim[0], ir_dim_mul(gm->m, gm->n)))
		return NULL;
	IrDType t = g->btype[cb->id];
	if ((t != IR_BF16 && t != IR_F16) || g->btype[o->buf] != t ||
	    g->btype[b->buf] != t)
		return NULL;
	CgStep *st = ARENA_NEW(p->arena, CgStep);
	*st = *gm;
	st->views = ARENA_ARRAY(p->arena, CgView, gm->nview);
	memcpy(st->views, gm->views, sizeof *gm->views * (size_t)gm->nview);
	st->views[0].buf = o->buf;
	st->views[0].off = o->off;
	st->members = arena_printf(p->arena, "%s+%s", cg_step_node(gm), cg_step_node(m));
	*bias = *b;
	return st;
}

/* The views of the leaves summed by x, a tree of two-operand adds (and
 * dropouts, the identity at inference), after the n in v already; -1 when
 * x has another op or more than 3 leaves. */
static int add_terms(const CgStep *st, const IrNode *x, int *v, int n)
{
	if (x->op == OP_DROPOUT && x->nin == 1)
		return add_terms(st, x->in[0], v, n);
	if (x->op == OP_ADD && x->nin == 2) {
		for (int i = 0; i < 2 && n >= 0; i++)
			n = add_terms(st, x->in[i], v, n);
		return n;
	}
	int k = leaf_view(st, x);
	if (k < 0 || n < 0 || n >= 3)
		return -1;
	v[n] = k;
	return n + 1;
}

/* GEMM s and the layer_norm after it as a GEMM with a bias epilogue and
 * a residual, or NULL: the layer_norm's input is C + bias + R (any order),
 * C the GEMM's output, which nothing else reads, the bias a parameter
 * along C's columns, R another buffer laid out as C (compact m x n), all
 * three of one type. Returns a copy of the GEMM (*bias and *res its
 * views) and in *ln the layer_norm reading C alone. */
CgStep *cg_gpu_fuse_residual(const CgGpu *g, const CgProgram *p, int s, CgView *bias,
                             CgView *res, CgStep **ln)
{
	if (s + 1 >= p->steps.len)
		return NULL;
	const CgStep *gm = p->steps.items[s], *m = p->steps.items[s + 1];
	int v[3], cv = -1, bv = -1, rv = -1;
	if (gm->kind != CG_GEMM || m->kind != CG_LAYER_NORM || gm->ngroup > 1 ||
	    gm->nbatch != 0 || gm->alpha != 1.0 || gm->beta != 0.0 || m->expr.nconst != 0 ||
	    m->ndim != 2 || add_terms(m, m->expr.root, v, 0) != 3)
		return NULL;
	for (int i = 0; i < 3; i++) {
		const CgView *x = &m->views[v[i]];
		if (x->buf < 0)
			return NULL;
		const CgBuf *xb = p->bufs.items[x->buf];
		if (x->buf == gm->views[0].buf && cv < 0)
			cv = v[i];
		else if (xb->kind == CG_BUF_PARAM && cg_dim_is(x->stride[0], 0) && bv < 0)
			bv = v[i];
		else if (x->buf != gm->views[0].buf && rv < 0)
			rv = v[i];
	}
	if (cv < 0 || bv < 0 || rv < 0)
		return NULL;
	const CgBuf *cb = p->bufs.items[gm->views[0].buf];
	const CgView *c = &m->views[cv], *b = &m->views[bv], *r = &m->views[rv];
	if (cb->kind != CG_BUF_TEMP || cb->last != s + 1 || !ir_dim_eq(m->dim[0], gm->m) ||
	    !ir_dim_eq(m->dim[1], gm->n) || !ir_dim_eq(gm->ldc, gm->n) ||
	    !cg_poly_eq(&c->off, &gm->views[0].off) || !ir_dim_eq(c->stride[0], gm->n) ||
	    !cg_dim_is(c->stride[1], 1) || !cg_dim_is(b->stride[1], 1) ||
	    !ir_dim_eq(r->stride[0], gm->n) || !cg_dim_is(r->stride[1], 1))
		return NULL;
	IrDType t = g->btype[cb->id];
	if (g->btype[b->buf] != t || g->btype[r->buf] != t)
		return NULL;
	CgStep *st = ARENA_NEW(p->arena, CgStep);
	*st = *gm;
	*bias = *b;
	*res = *r;
	CgStep *l = ARENA_NEW(p->arena, CgStep);
	*l = *m;
	l->nview = 4;
	l->views = ARENA_ARRAY(p->arena, CgView, 4);
	memcpy(l->views, m->views, 3 * sizeof *m->views);
	l->views[3] = *c;
	l->expr.nleaf = 1;
	l->expr.leaf = ARENA_ARRAY(p->arena, IrNode *, 1);
	l->expr.leaf_view = ARENA_ARRAY(p->arena, int, 1);
	for (int i = 0; i < m->expr.nleaf; i++)
		if (m->expr.leaf_view[i] == cv)
			l->expr.root = l->expr.leaf[0] = m->expr.leaf[i];
	l->expr.leaf_view[0] = 3;
	*ln = l;
	return st;
}
