/* gpu_plan.c - the GPU program made from the kernel graph: what each
 * buffer holds on the device, which GEMMs take their bias as a cuBLASLt
 * epilogue, which operands need converting, the workspace slots and the
 * layout of the device parameter block.
 *
 * Storage types by precision (fp32/tf32: everything as on the CPU):
 *   bf16 / fp16  float temps and parameters in the low type; inputs keep
 *                the model's declared types, float outputs are f32 or,
 *                with --output-dtype, the low type too; a parameter
 *                that only ever serves as the bias of a GEMM writing an f32
 *                output stays f32 (the epilogue wants the bias in the
 *                output's type)
 * Arithmetic is f32 in every kernel (loads widen, stores round to
 * nearest even); GEMMs take both operands in the low type and accumulate
 * in f32, so an f32 input or output read by a GEMM is first converted
 * into a temp of its own (a "convert" MAP over the whole buffer).
 *
 * Bias epilogues: lower.c pre-fills a linear's bias into C with a MAP
 * ("bias") and runs the GEMM with beta = 1. When the bias is a parameter
 * read along C's columns, the GEMM has no outer batch loop, and the bias
 * has C's type, the MAP is dropped and the GEMM adds the bias itself
 * (beta = 0). For a group (Q, K, V) each member's bias map is folded.
 */
#include <string.h>

#include "codegen/gpu.h"
#include "runtime/rt.h"

bool cg_precision_parse(const char *s, CgPrecision *out)
{
	static const struct {
		const char *name;
		CgPrecision p;
	} names[] = {{"fp32", CG_PREC_FP32},    {"f32", CG_PREC_FP32},
	             {"float32", CG_PREC_FP32}, {"tf32", CG_PREC_TF32},
	             {"bf16", CG_PREC_BF16},    {"bfloat16", CG_PREC_BF16},
	             {"fp16", CG_PREC_FP16},    {"f16", CG_PREC_FP16},
	             {"float16", CG_PREC_FP16}, {"half", CG_PREC_FP16}};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].p;
			return true;
		}
	return false;
}

const char *cg_precision_name(CgPrecision p)
{
	switch (p) {
	case CG_PREC_TF32:
		return "tf32";
	case CG_PREC_BF16:
		return "bf16";
	case CG_PREC_FP16:
		return "fp16";
	default:
		return "fp32";
	}
}

int cg_gpu_elem_size(IrDType t)
{
	switch (t) {
	case IR_BF16:
	case IR_F16:
		return 2;
	case IR_I64:
	case IR_F64:
		return 8;
	case IR_BOOL:
		return 1;
	default:
		return 4;
	}
}

int cg_gpu_gemm_type(IrDType t)
{
	return t == IR_BF16 ? RT_GPU_BF16 : t == IR_F16 ? RT_GPU_F16 : RT_GPU_F32;
}

/* Whether buffer b (not a parameter) is stored in the low type: f32
 * temps, and f32 outputs declared in it (CgProgram.out_dtype). */
static bool stored_low(const CgProgram *p, const CgBuf *b, IrDType low)
{
	return low != IR_F32 && b->dtype == IR_F32 &&
	       (b->kind == CG_BUF_TEMP || (b->kind == CG_BUF_OUTPUT && p->out_dtype == low));
}

/* The owner of param index i (itself or its tie target). */
static int owner_of(const CgProgram *p, int i)
{
	const CgTensor *t = p->params.items[i];
	return t->tied_to >= 0 ? t->tied_to : i;
}

static int add_buf(CgGpu *g, CgBuf *b, IrDType t)
{
	b->id = g->nbufs;
	g->bufs[g->nbufs] = b;
	g->btype[g->nbufs] = t;
	return g->nbufs++;
}

/* A new temp of n elements of device type t, named after buffer `like`. */
static int new_temp(CgGpu *g, IrDim n, IrDType t, int like)
{
	Arena *a = g->prog->arena;
	const CgBuf *lb = g->bufs[like];
	CgBuf *nb = ARENA_NEW(a, CgBuf);
	nb->kind = CG_BUF_TEMP;
	nb->index = -1; /* its place: g->plan */
	nb->dtype = IR_F32;
	nb->numel = n;
	nb->name = arena_printf(a, "%s_%s", lb->name ? lb->name : "buf",
	                        t == IR_BF16 ? "bf16" : t == IR_F16 ? "f16" : "f32");
	return add_buf(g, nb, t);
}

/* A MAP converting all of buffer `src` into buffer dst, or (dst < 0) into
 * a new temp of type t, for operand `which` ("a", "b", ...) of step
 * `owner`; returns dst. */
static int convert_step(CgGpu *g, int dst, int src, IrDType t, const CgStep *owner,
                        const char *which)
{
	const CgProgram *p = g->prog;
	Arena *a = p->arena;
	const CgBuf *sb = g->bufs[src];
	int id = dst >= 0 ? dst : new_temp(g, sb->numel, t, src);
	CgStep *st = ARENA_NEW(a, CgStep);
	st->kind = CG_MAP;
	st->id = -1;
	st->name = arena_printf(a, "%s.convert_%s",
	                        owner->members ? owner->members : owner->name, which);
	st->what = "convert";
	st->span = owner->span;
	st->module = owner->module;
	st->ndim = 1;
	st->dim[0] = sb->numel;
	st->nview = 2;
	st->views = ARENA_ARRAY(a, CgView, 2);
	for (int k = 0; k < 2; k++) {
		st->views[k].buf = k ? src : id;
		st->views[k].ndim = 1;
		st->views[k].dim[0] = sb->numel;
		st->views[k].stride[0] = ir_dim_const(1);
	}
	IrNode *leaf = ARENA_NEW(a, IrNode);
	leaf->op = OP_INPUT;
	leaf->dtype = IR_F32;
	leaf->name = "x";
	st->expr.root = leaf;
	st->expr.nleaf = 1;
	st->expr.leaf = ARENA_ARRAY(a, IrNode *, 1);
	st->expr.leaf[0] = leaf;
	st->expr.leaf_view = ARENA_ARRAY(a, int, 1);
	st->expr.leaf_view[0] = 1;
	st->type = IR_F32;
	CgGpuStep *gs = &g->steps[g->nsteps++];
	memset(gs, 0, sizeof *gs);
	gs->st = st;
	gs->kernel = -1;
	gs->a_buf = gs->b_buf = -1;
	return id;
}

enum {
	WANT_LOW = 1,
	WANT_F32 = 2
};

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
static CgStep *fuse_attention(const CgGpu *g, const CgProgram *p, int s, IrDType t)
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
static CgStep *fuse_attention_f16(CgGpu *g, const CgProgram *p, int s, CgStep **back)
{
	CgStep *at = fuse_attention(g, p, s, IR_F32);
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
			copy[i] = convert_step(g, -1, src[i], IR_F16, at, which[i]);
		at->views[1 + i].buf = copy[i];
	}
	int oc = new_temp(g, g->bufs[o]->numel, IR_F16, o);
	at->views[0].buf = oc;
	int n = g->nsteps;
	convert_step(g, o, oc, IR_F32, at, "o");
	*back = (CgStep *)g->steps[n].st;
	g->nsteps = n; /* the caller adds it after the attention */
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
static CgStep *fuse_gelu(const CgGpu *g, const CgProgram *p, int s, bool erf,
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
static CgStep *fuse_residual(const CgGpu *g, const CgProgram *p, int s, CgView *bias,
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

/* The buffers step gs reads or writes, into out; returns how many. A
 * fused attention step keeps the softmax's view of the scores (its
 * prologue's leaf) but never reads it: the scores are in registers. */
static int step_bufs(const CgGpuStep *gs, int *out)
{
	const CgStep *st = gs->st;
	int n = 0;
	for (int k = 0; k < st->nview; k++)
		if (st->kind != CG_ATTENTION || k != st->expr.leaf_view[st->sleaf])
			out[n++] = st->views[k].buf;
	for (int k = 0; st->kind == CG_GEMM && k < st->ngroup; k++)
		out[n++] = st->gb[k].buf;
	for (int k = 0; gs->bias && k < (st->ngroup > 1 ? st->ngroup : 1); k++)
		out[n++] = gs->bias_view[k].buf;
	if (gs->res)
		out[n++] = gs->res_view.buf;
	out[n++] = gs->a_buf;
	out[n++] = gs->b_buf;
	return n;
}

enum {
	STEP_BUFS = CG_MAX_VIEWS + 2 * CG_MAX_GROUP + 3
};

/* The workspace slots of the GPU program: the lifetimes of its own steps
 * (a GEMM writing its GELU's output, attention's scores and probabilities
 * never in memory once fused, conversion temps) and its storage sizes;
 * temps no GPU step touches take no memory. */
static void plan_slots(CgGpu *g)
{
	Arena *a = g->prog->arena;
	int *def = ARENA_ARRAY(a, int, g->nbufs + 1), *last = ARENA_ARRAY(a, int, g->nbufs + 1);
	IrDim *bytes = ARENA_ARRAY(a, IrDim, g->nbufs + 1);
	for (int i = 0; i < g->nbufs; i++) {
		def[i] = last[i] = -1;
		bytes[i] = ir_dim_mul(g->bufs[i]->numel,
		                      ir_dim_const(cg_gpu_elem_size(g->btype[i])));
	}
	int bufs[STEP_BUFS];
	for (int s = 0; s < g->nsteps; s++)
		for (int n = step_bufs(&g->steps[s], bufs), k = 0; k < n; k++)
			if (bufs[k] >= 0) {
				if (def[bufs[k]] < 0)
					def[bufs[k]] = s;
				last[bufs[k]] = s;
			}
	cg_plan_make(a, g->bufs, bytes, g->nbufs, def, last, CG_GPU_ALIGN, &g->plan);
}

bool cg_gpu_plan(CgGpu *g, const CgProgram *p, CgPrecision prec, unsigned fuse)
{
	Arena *a = p->arena;
	int nb = p->bufs.len, ns = p->steps.len, np = p->params.len;
	IrDType low = prec == CG_PREC_BF16   ? IR_BF16
	              : prec == CG_PREC_FP16 ? IR_F16
	                                     : IR_F32;
	memset(g, 0, sizeof *g);
	g->prog = p;
	g->prec = prec;
	g->target = "sm_80";
	g->bufs = ARENA_ARRAY(a, CgBuf *, nb + 2 * ns + 1);
	g->btype = ARENA_ARRAY(a, IrDType, nb + 2 * ns + 1);
	g->steps = ARENA_ARRAY(a, CgGpuStep, 3 * ns + 1);
	g->ptype = ARENA_ARRAY(a, IrDType, np + 1);
	g->poff = ARENA_ARRAY(a, uint64_t, np + 1);
	g->objects = ARENA_ARRAY(a, const char *, ns + 1);

	/* epilogue candidates, and what each parameter is wanted as */
	const CgView **bias =
	        ARENA_ARRAY(a, const CgView *, (size_t)ns *CG_MAX_GROUP + 1);
	int *bias_steps = ARENA_ARRAY(a, int, (size_t)ns *CG_MAX_GROUP + 1);
	bool *cand = ARENA_ARRAY(a, bool, ns + 1);
	int *want = ARENA_ARRAY(a, int, np + 1);
	for (int s = 0; s < ns; s++) {
		const CgStep *st = p->steps.items[s];
		if (st->kind != CG_GEMM)
			continue;
		for (int k = 1; k <= 2; k++) { /* operands want the low type */
			const CgBuf *b = p->bufs.items[st->views[k].buf];
			if (b->kind == CG_BUF_PARAM)
				want[owner_of(p, b->index)] |= WANT_LOW;
		}
		for (int k = 0; k < st->ngroup && st->ngroup > 1; k++) {
			const CgBuf *b = p->bufs.items[st->gb[k].buf];
			if (b->kind == CG_BUF_PARAM)
				want[owner_of(p, b->index)] |= WANT_LOW;
		}
		cand[s] = cg_find_bias(p, s, &bias[s * CG_MAX_GROUP],
		                    &bias_steps[s * CG_MAX_GROUP]);
		if (!cand[s])
			continue;
		int w = stored_low(p, p->bufs.items[st->views[0].buf], low) ? WANT_LOW
		                                                            : WANT_F32;
		for (int k = 0; k < (st->ngroup > 1 ? st->ngroup : 1); k++) {
			const CgBuf *bb = p->bufs.items[bias[s * CG_MAX_GROUP + k]->buf];
			want[owner_of(p, bb->index)] |= w;
		}
	}
	/* parameter types and the device block */
	uint64_t at = 0;
	for (int i = 0; i < np; i++) {
		const CgTensor *t = p->params.items[i];
		g->ptype[i] = IR_F32;
		if (low != IR_F32 && ir_dtype_is_float(t->dtype) && want[i] != WANT_F32)
			g->ptype[i] = low;
	}
	for (int i = 0; i < np; i++) {
		const CgTensor *t = p->params.items[i];
		int o = owner_of(p, i);
		g->ptype[i] = g->ptype[o];
		if (o != i)
			continue;
		int64_t n = 1;
		for (int d = 0; d < t->shape.ndim; d++)
			n *= t->shape.d[d].coef;
		g->poff[i] = at;
		at = (at + (uint64_t)n * (uint64_t)cg_gpu_elem_size(g->ptype[i]) + 255) /
		     256 * 256;
	}
	for (int i = 0; i < np; i++)
		g->poff[i] = g->poff[owner_of(p, i)];
	g->params_size = at;
	/* buffer types */
	for (int i = 0; i < nb; i++) {
		CgBuf *b = p->bufs.items[i];
		IrDType t = b->dtype;
		if (b->kind == CG_BUF_PARAM)
			t = g->ptype[b->index];
		else if (stored_low(p, b, low))
			t = low;
		g->bufs[i] = b;
		g->btype[i] = t;
	}
	g->nbufs = nb;
	/* steps */
	bool *skip = ARENA_ARRAY(a, bool, ns + 1);
	for (int s = 0; s < ns; s++) {
		const CgStep *st = p->steps.items[s];
		if (!cand[s])
			continue;
		IrDType ct = g->btype[st->views[0].buf];
		bool ok = ct == IR_F32 || ct == low;
		for (int k = 0; ok && k < (st->ngroup > 1 ? st->ngroup : 1); k++)
			ok = g->btype[bias[s * CG_MAX_GROUP + k]->buf] == ct;
		cand[s] = ok;
		for (int k = 0; ok && k < (st->ngroup > 1 ? st->ngroup : 1); k++)
			skip[bias_steps[s * CG_MAX_GROUP + k]] = true;
	}
	for (int s = 0; s < ns; s++) {
		const CgStep *st = p->steps.items[s];
		if (skip[s])
			continue;
		CgStep *back = NULL;
		CgStep *at = !(fuse & CG_FUSE_ATTENTION) ? NULL
		             : low != IR_F32           ? fuse_attention(g, p, s, low)
		             : prec == CG_PREC_TF32    ? fuse_attention_f16(g, p, s, &back)
		                                       : NULL;
		if (at) {
			CgGpuStep *gs = &g->steps[g->nsteps++];
			memset(gs, 0, sizeof *gs);
			gs->st = at;
			CgStep *small = ARENA_NEW(a, CgStep);
			*small = *at;
			small->mt = 1;
			gs->small = small;
			gs->kernel = -1;
			gs->a_buf = gs->b_buf = gs->object = -1;
			if (back) {
				gs = &g->steps[g->nsteps++];
				memset(gs, 0, sizeof *gs);
				gs->st = back;
				gs->kernel = -1;
				gs->a_buf = gs->b_buf = gs->object = -1;
			}
			s += 2;
			continue;
		}
		if (st->kind != CG_GEMM) {
			CgGpuStep *gs = &g->steps[g->nsteps++];
			gs->st = st;
			gs->kernel = -1;
			gs->a_buf = gs->b_buf = -1;
			gs->object = -1;
			if (st->kind == CG_GATHER) {
				int o = -1;
				for (int k = 0; k < g->nobjects && o < 0; k++)
					if (strcmp(g->objects[k],
					           st->object ? st->object : "") == 0)
						o = k;
				if (o < 0) {
					o = g->nobjects;
					g->objects[g->nobjects++] =
					        st->object ? st->object : "";
				}
				gs->object = o;
			}
			continue;
		}
		CgView gelu_bias, res_bias, res_view;
		CgStep *res_ln = NULL;
		const CgStep *gelu = fuse_gelu(g, p, s, fuse & CG_FUSE_GELU,
		                               cand[s] ? bias[s * CG_MAX_GROUP] : NULL, &gelu_bias);
		const CgStep *resg =
		        cand[s] || gelu || !(fuse & CG_FUSE_RESIDUAL)
		                ? NULL
		                : fuse_residual(g, p, s, &res_bias, &res_view, &res_ln);
		if (gelu)
			st = gelu;
		else if (resg)
			st = resg;
		int abuf = -1, bbuf = -1;
		if (low != IR_F32) {
			if (g->btype[st->views[1].buf] != low)
				abuf = convert_step(g, -1, st->views[1].buf, low, st, "a");
			if (g->btype[st->views[2].buf] != low && st->ngroup < 2)
				bbuf = convert_step(g, -1, st->views[2].buf, low, st, "b");
			for (int k = 0; st->ngroup > 1 && k < st->ngroup; k++)
				if (g->btype[st->gb[k].buf] != low) {
					diag_plain(
					        p->diag, DIAG_ERROR,
					        "internal error: GPU: grouped GEMM %s has a weight "
					        "that is not %s",
					        st->name, cg_precision_name(prec));
					return false;
				}
		}
		CgGpuStep *gs = &g->steps[g->nsteps++];
		gs->st = st;
		gs->kernel = -1;
		gs->object = -1;
		gs->a_buf = abuf;
		gs->b_buf = bbuf;
		gs->bias = cand[s];
		for (int k = 0; cand[s] && k < (st->ngroup > 1 ? st->ngroup : 1); k++)
			gs->bias_view[k] = *bias[s * CG_MAX_GROUP + k];
		if (gelu) {
			gs->bias = gs->gelu = true;
			gs->bias_view[0] = gelu_bias;
			s++; /* the MAP is the epilogue */
		}
		if (resg) {
			gs->bias = gs->res = true;
			gs->bias_view[0] = res_bias;
			gs->res_view = res_view;
			CgGpuStep *ln = &g->steps[g->nsteps++];
			memset(ln, 0, sizeof *ln);
			ln->st = res_ln;
			ln->kernel = -1;
			ln->a_buf = ln->b_buf = ln->object = -1;
			s++; /* the layer_norm, now of the GEMM's output alone */
		}
	}
	for (int s = 0; s < g->nsteps; s++)
		if (g->steps[s].st->kind != CG_GEMM &&
		    g->steps[s].st->nview > g->max_views)
			g->max_views = g->steps[s].st->nview;
	plan_slots(g);
	return true;
}

void cg_gpu_print(StrBuf *b, const CgGpu *g)
{
	const CgProgram *p = g->prog;
	const IrCtx *c = p->ir;
	const CgStep **steps = ARENA_ARRAY(p->arena, const CgStep *, g->nsteps + 1);
	for (int s = 0; s < g->nsteps; s++)
		steps[s] = g->steps[s].st;
	const char **names = cg_step_names(p->arena, steps, g->nsteps);
	sb_printf(b, "gpu %s {\n  steps: %d\n", cg_precision_name(g->prec), g->nsteps);
	for (int s = 0; s < g->nsteps; s++) {
		const CgGpuStep *gs = &g->steps[s];
		sb_printf(b, "    s%d %s %s", s, cg_kind_name(gs->st->kind), names[s]);
		if (gs->bias)
			sb_printf(b, " (epilogue: bias%s%s)", gs->gelu ? ", gelu" : "",
			          gs->res ? ", residual" : "");
		if (gs->a_buf >= 0 || gs->b_buf >= 0)
			sb_printf(b, " (converted:%s%s)", gs->a_buf >= 0 ? " a" : "",
			          gs->b_buf >= 0 ? " b" : "");
		sb_putc(b, '\n');
	}
	cg_plan_print(b, c, &g->plan, g->btype, 's');
	sb_puts(b, "}\n");
}
