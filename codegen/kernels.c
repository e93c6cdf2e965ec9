/* kernels.c - kernel functions: `void k(void *ctx, int64_t begin, int64_t
 * end)`, run by rt_parallel_for over [0, n) split into chunks.
 *
 * ctx is an array of pointers filled by forward(): ctx[0] the RtExec,
 * ctx[1] the symbol values (int64_t[n_syms]), ctx[2 + k] the address of
 * element 0 of the step's view k. Sizes and strides are computed from
 * the symbols once, in the entry block.
 *
 *   MAP            [begin, end) are elements of the index space; walked
 *                  row by row (the last, contiguous-most dim), each row as
 *                  vectors of vw lanes then a scalar tail
 *   SOFTMAX        [begin, end) are rows: max, exp and sum, scale (three
 *                  passes over the row, the first evaluating the prologue
 *                  expression into the output), SOFTMAX_ROWS rows at once
 *   LAYER_NORM     rows: mean, then the variance of the deviations (two
 *                  passes, numerically sound), then normalise
 *   REDUCE         rows: one sum / mean / max per row
 *   GATHER         rows are indices: range check (rt_fail naming the
 *                  input), then a row copy
 * Row kernels and copies walk a row two vectors a step; reductions keep a
 * vector accumulator for each of the two and a scalar one for the tail,
 * and at the end add the two, then the lanes as a tree, then the tail (a
 * fixed order, so a row's result does not depend on the thread that
 * computes it). A MAP walks one vector a step (with GELU's ~50
 * instructions, two a step spilled its constants: 6 % slower). Loop
 * variables live in allocas that SROA turns into registers.
 */
#include <math.h>
#include <string.h>

#include "codegen/codegen.h"
#include "slapo/slapo.h"

#define B (f->L->b)

/* ---- function scaffolding ------------------------------------------------------- */

void cg_fn_begin(CgFn *f, CgLlvm *L, const CgProgram *prog, LLVMValueRef fn)
{
	memset(f, 0, sizeof *f);
	f->L = L;
	f->prog = prog;
	f->fn = fn;
	f->entry = LLVMAppendBasicBlockInContext(L->ctx, fn, "entry");
	f->body = LLVMAppendBasicBlockInContext(L->ctx, fn, "body");
	LLVMPositionBuilderAtEnd(L->b, f->body);
}

void cg_fn_end(CgFn *f)
{
	LLVMBasicBlockRef here = LLVMGetInsertBlock(B);
	LLVMPositionBuilderAtEnd(B, f->entry);
	LLVMBuildBr(B, f->body);
	LLVMPositionBuilderAtEnd(B, here);
}

LLVMValueRef cg_i64(CgFn *f, int64_t v)
{
	return cg_i64c(f->L, v);
}

LLVMValueRef cg_dim(CgFn *f, IrDim d)
{
	if (ir_dim_is_const(d))
		return cg_i64(f, d.coef);
	for (int i = 0; i < f->ndim_cache; i++)
		if (ir_dim_eq(f->dcache[i], d))
			return f->vcache[i];
	LLVMBasicBlockRef here = LLVMGetInsertBlock(B);
	LLVMPositionBuilderAtEnd(B, f->entry);
	LLVMValueRef v = NULL;
	for (int s = 0; s < IR_MAX_SYMS; s++) {
		if (!d.pow[s])
			continue;
		int k = f->prog->sym_index[s];
		LLVMValueRef idx = cg_i64(f, k < 0 ? 0 : k);
		LLVMValueRef x =
		        LLVMBuildLoad2(B, f->L->t_i64,
		                       LLVMBuildInBoundsGEP2(B, f->L->t_i64, f->sym, &idx, 1, ""), "");
		for (int p = 0; p < d.pow[s]; p++)
			v = v ? LLVMBuildMul(B, v, x, "") : x;
	}
	if (d.coef != 1)
		v = LLVMBuildMul(B, v, cg_i64(f, d.coef), "");
	LLVMPositionBuilderAtEnd(B, here);
	if (f->ndim_cache < (int)(sizeof f->dcache / sizeof f->dcache[0])) {
		f->dcache[f->ndim_cache] = d;
		f->vcache[f->ndim_cache++] = v;
	}
	return v;
}

LLVMValueRef cg_poly(CgFn *f, const CgPoly *p)
{
	LLVMValueRef v = cg_i64(f, 0);
	for (int i = 0; i < p->n; i++)
		v = LLVMBuildAdd(B, v, cg_dim(f, p->t[i]), "");
	return v;
}

LLVMValueRef cg_var_of(CgFn *f, LLVMTypeRef t, const char *name)
{
	LLVMBasicBlockRef here = LLVMGetInsertBlock(B);
	LLVMPositionBuilderAtEnd(B, f->entry);
	LLVMValueRef v = LLVMBuildAlloca(B, t, name);
	LLVMPositionBuilderAtEnd(B, here);
	return v;
}

LLVMValueRef cg_var(CgFn *f, const char *name)
{
	return cg_var_of(f, f->L->t_i64, name);
}

static LLVMValueRef ld(CgFn *f, LLVMTypeRef t, LLVMValueRef p)
{
	return LLVMBuildLoad2(B, t, p, "");
}

static LLVMValueRef min64(CgFn *f, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, b, ""), a, b, "");
}

LLVMValueRef cg_loop_begin(CgFn *f, CgLoop *lp, LLVMValueRef init, LLVMValueRef limit)
{
	LLVMContextRef c = f->L->ctx;
	lp->var = cg_var(f, "i");
	LLVMBuildStore(B, init, lp->var);
	lp->head = LLVMAppendBasicBlockInContext(c, f->fn, "loop");
	LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c, f->fn, "body");
	lp->exit = LLVMAppendBasicBlockInContext(c, f->fn, "done");
	LLVMBuildBr(B, lp->head);
	LLVMPositionBuilderAtEnd(B, lp->head);
	LLVMValueRef i = ld(f, f->L->t_i64, lp->var);
	LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, i, limit, ""), body, lp->exit);
	LLVMPositionBuilderAtEnd(B, body);
	return i;
}

void cg_loop_end(CgFn *f, CgLoop *lp, LLVMValueRef i, LLVMValueRef step)
{
	LLVMBuildStore(B, LLVMBuildAdd(B, i, step, ""), lp->var);
	LLVMBuildBr(B, lp->head);
	LLVMPositionBuilderAtEnd(B, lp->exit);
}

/* ---- operands ------------------------------------------------------------------------ */

enum { MAXV = CG_MAX_VIEWS };

/* What one kernel knows of its views. */
typedef struct Ops {
	const CgStep *st;
	LLVMValueRef ptr[MAXV];             /* element 0 (typed), NULL: index view */
	IrDType sty[MAXV];                  /* storage types */
	LLVMValueRef stride[MAXV][IR_MAX_DIMS];
	int cls[MAXV];                      /* last-dim stride: 0, 1 or 2 (other) */
	LLVMValueRef off[MAXV];             /* offset of the current row */
	CgEval x;                           /* expression evaluation */
	int part;                           /* row_loop: which of the two vectors of
	                                     * an unrolled step the body is at */
	/* cg_emit_softmax_rows: the result and view `rows_view` at rows +
	 * (r - begin) * len, NULL otherwise */
	LLVMValueRef rows, rows_begin;
	int rows_view;
} Ops;

static int stride_class(IrDim s)
{
	return cg_dim_is(s, 0) ? 0 : cg_dim_is(s, 1) ? 1 : 2;
}

static LLVMTypeRef storage_ptr(CgLlvm *L, IrDType st)
{
	switch (st) {
	case IR_I64: return L->t_i64p;
	case IR_I32: return LLVMPointerType(L->t_i32, 0);
	case IR_BOOL: return L->t_i8p;
	default: return L->t_f32p;
	}
}

static void ops_init(CgFn *f, Ops *o, const CgStep *st, LLVMValueRef ctx)
{
	memset(o, 0, sizeof *o);
	o->st = st;
	LLVMBasicBlockRef here = LLVMGetInsertBlock(B);
	LLVMPositionBuilderAtEnd(B, f->entry);
	LLVMTypeRef pp = LLVMPointerType(f->L->t_i8p, 0);
	LLVMValueRef slots = LLVMBuildBitCast(B, ctx, pp, "");
	for (int k = -2; k < st->nview; k++) {
		LLVMValueRef idx = cg_i64(f, k + 2);
		LLVMValueRef p = ld(f, f->L->t_i8p, LLVMBuildInBoundsGEP2(B, f->L->t_i8p, slots, &idx, 1, ""));
		if (k == -2) {
			f->ex = p;
			continue;
		}
		if (k == -1) {
			f->sym = LLVMBuildBitCast(B, p, f->L->t_i64p, "sym");
			continue;
		}
		const CgView *v = &st->views[k];
		if (v->buf < 0)
			continue;
		const CgBuf *b = f->prog->bufs.items[v->buf];
		o->sty[k] = b->dtype;
		o->ptr[k] = LLVMBuildBitCast(B, p, storage_ptr(f->L, b->dtype), "");
	}
	LLVMPositionBuilderAtEnd(B, here);
	for (int k = 0; k < st->nview; k++) {
		const CgView *v = &st->views[k];
		for (int i = 0; i < v->ndim; i++)
			o->stride[k][i] = cg_dim(f, v->stride[i]);
		o->cls[k] = v->ndim ? stride_class(v->stride[v->ndim - 1]) : 0;
	}
}

/* Offsets of views [k0, k1) for row r of the dims [0, nouter). */
static void row_offsets(CgFn *f, Ops *o, const IrDim *dim, int nouter, LLVMValueRef r, int k0,
                        int k1)
{
	for (int k = k0; k < k1; k++)
		o->off[k] = cg_i64(f, 0);
	for (int i = nouter - 1; i >= 0; i--) {
		LLVMValueRef idx = r;
		if (i > 0) {
			LLVMValueRef d = cg_dim(f, dim[i]);
			idx = LLVMBuildURem(B, r, d, "");
			r = LLVMBuildUDiv(B, r, d, "");
		}
		for (int k = k0; k < k1; k++)
			if (!cg_dim_is(o->st->views[k].stride[i], 0))
				o->off[k] = LLVMBuildAdd(B, o->off[k],
				                         LLVMBuildMul(B, idx, o->stride[k][i], ""), "");
	}
}

/* element offset of view k at position j of the row */
static LLVMValueRef at(CgFn *f, Ops *o, int k, LLVMValueRef j)
{
	int last = o->st->views[k].ndim - 1;
	switch (o->cls[k]) {
	case 0: return o->off[k];
	case 1: return LLVMBuildAdd(B, o->off[k], j, "");
	default: return LLVMBuildAdd(B, o->off[k], LLVMBuildMul(B, j, o->stride[k][last], ""), "");
	}
}

static CgVal load_view(CgFn *f, Ops *o, int k, LLVMValueRef j, int lanes)
{
	int last = o->st->views[k].ndim - 1;
	return cg_load(f, o->sty[k], o->ptr[k], at(f, o, k, j), o->stride[k][last], o->cls[k],
	               lanes);
}

static void store_view(CgFn *f, Ops *o, int k, LLVMValueRef j, CgVal v, int lanes)
{
	int last = o->st->views[k].ndim - 1;
	cg_store(f, o->sty[k], o->ptr[k], at(f, o, k, j), v, o->stride[k][last], o->cls[k],
	         lanes);
}

/* ---- expressions ------------------------------------------------------------------------ */

/* a leaf of the expression: view k at o->x.j (an index view: the index) */
static CgVal leaf(CgFn *f, CgEval *x, int k, const IrNode *n)
{
	Ops *o = (Ops *)((char *)x - offsetof(Ops, x));
	return o->ptr[k] ? load_view(f, o, k, x->j, x->lanes)
	                 : cg_eval_index(f, at(f, o, k, x->j), o->cls[k],
	                                 o->stride[k][o->st->views[k].ndim - 1], n->dtype, x->lanes);
}

static CgVal eval_at(CgFn *f, Ops *o, LLVMValueRef j, int lanes)
{
	o->x.expr = &o->st->expr;
	o->x.leaf = leaf;
	o->x.j = j;
	o->x.lanes = lanes;
	o->x.nmemo = 0;
	return cg_eval(f, &o->x, o->st->expr.root);
}

/* Run body(j, lanes) over [j0, j1): `vecs` vectors a step first (0, 1
 * or 2), then one, then the scalar tail. */
typedef void (*RowBody)(CgFn *f, Ops *o, LLVMValueRef j, int lanes, void *user);

enum { ROW_SCALAR = 0, ROW_VEC = 1, ROW_VEC2 = 2 };

static void row_loop(CgFn *f, Ops *o, LLVMValueRef j0, LLVMValueRef j1, int vecs, RowBody body,
                     void *user)
{
	int w = f->L->vw;
	LLVMValueRef start = j0;
	o->part = 0;
	if (vecs != ROW_SCALAR && w > 1) {
		CgLoop lp;
		if (vecs == ROW_VEC2) {
			/* o->part 0 and 1: a reduction keeps two accumulators, so
			 * consecutive vectors do not wait on each other */
			LLVMValueRef lim = LLVMBuildSub(B, j1, cg_i64(f, 2 * w - 1), "");
			LLVMValueRef j = cg_loop_begin(f, &lp, start, lim);
			body(f, o, j, w, user);
			o->part = 1;
			body(f, o, LLVMBuildAdd(B, j, cg_i64(f, w), ""), w, user);
			o->part = 0;
			cg_loop_end(f, &lp, j, cg_i64(f, 2 * w));
			start = ld(f, f->L->t_i64, lp.var);
		}
		LLVMValueRef lim = LLVMBuildSub(B, j1, cg_i64(f, w - 1), "");
		LLVMValueRef j = cg_loop_begin(f, &lp, start, lim);
		body(f, o, j, w, user);
		cg_loop_end(f, &lp, j, cg_i64(f, w));
		start = ld(f, f->L->t_i64, lp.var);
	}
	CgLoop lp;
	LLVMValueRef j = cg_loop_begin(f, &lp, start, j1);
	body(f, o, j, 1, user);
	cg_loop_end(f, &lp, j, cg_i64(f, 1));
}

/* ---- MAP --------------------------------------------------------------------------------- */

static void map_body(CgFn *f, Ops *o, LLVMValueRef j, int lanes, void *user)
{
	CgVal v = eval_at(f, o, j, lanes);
	store_view(f, o, 0, j, v, lanes);
}

static void emit_map(CgFn *f, Ops *o, LLVMValueRef begin, LLVMValueRef end)
{
	const CgStep *st = o->st;
	int nd = st->ndim;
	LLVMValueRef len = cg_dim(f, st->dim[nd - 1]);
	CgLoop lp;
	/* while pos < end: one (partial) row */
	LLVMValueRef posv = cg_var(f, "pos");
	LLVMBuildStore(B, begin, posv);
	lp.var = posv;
	lp.head = LLVMAppendBasicBlockInContext(f->L->ctx, f->fn, "rows");
	LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(f->L->ctx, f->fn, "row");
	lp.exit = LLVMAppendBasicBlockInContext(f->L->ctx, f->fn, "end");
	LLVMBuildBr(B, lp.head);
	LLVMPositionBuilderAtEnd(B, lp.head);
	LLVMValueRef pos = ld(f, f->L->t_i64, posv);
	LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, pos, end, ""), body, lp.exit);
	LLVMPositionBuilderAtEnd(B, body);
	LLVMValueRef r = LLVMBuildUDiv(B, pos, len, "");
	LLVMValueRef j0 = LLVMBuildSub(B, pos, LLVMBuildMul(B, r, len, ""), "");
	LLVMValueRef j1 = min64(f, len, LLVMBuildAdd(B, j0, LLVMBuildSub(B, end, pos, ""), ""));
	row_offsets(f, o, st->dim, nd - 1, r, 0, st->nview);
	/* one vector a step: no accumulator to split, and a long expression
	 * (GELU: ~50 instructions) twice over spills its constants */
	row_loop(f, o, j0, j1, o->cls[0] == 1 ? ROW_VEC : ROW_SCALAR, map_body, NULL);
	LLVMBuildStore(B, LLVMBuildAdd(B, pos, LLVMBuildSub(B, j1, j0, ""), ""), posv);
	LLVMBuildBr(B, lp.head);
	LLVMPositionBuilderAtEnd(B, lp.exit);
}

/* ---- row kernels ---------------------------------------------------------------------------- */

/* accumulators of one pass: two vectors (row_loop's parts) and a scalar */
typedef struct Acc {
	LLVMValueRef vec[2], sca; /* allocas */
	int op;                /* 0 sum, 1 max (NaN kept), 2 integer max */
	IrDType t;
	LLVMValueRef mean;     /* LN pass 2: the mean to subtract */
	int view;              /* REDUCE: the input view */
} Acc;

static LLVMValueRef combine(CgFn *f, int op, IrDType t, LLVMValueRef a, LLVMValueRef b)
{
	if (op == 0)
		return t == IR_I64 ? LLVMBuildAdd(B, a, b, "") : LLVMBuildFAdd(B, a, b, "");
	if (op == 1)
		return cg_fmax_nan(f, a, b);
	return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, a, b, ""), a, b, "");
}

static double acc_init(int op)
{
	return op == 0 ? 0.0 : -INFINITY;
}

static void acc_begin(CgFn *f, Acc *a, int op, IrDType t)
{
	int w = f->L->vw;
	a->op = op;
	a->t = t;
	a->vec[0] = cg_var_of(f, cg_type(f->L, t, w), "vacc");
	a->vec[1] = cg_var_of(f, cg_type(f->L, t, w), "vacc1");
	a->sca = cg_var_of(f, cg_type(f->L, t, 1), "acc");
	for (int k = 0; k < 3; k++) {
		LLVMValueRef p = k < 2 ? a->vec[k] : a->sca;
		int n = k < 2 ? w : 1;
		LLVMBuildStore(B,
		               t == IR_I64 ? cg_consti(f, op == 0 ? 0 : INT64_MIN, n)
		                           : cg_constf(f, acc_init(op), n),
		               p);
	}
}

/* part: row_loop's o->part */
static void acc_add(CgFn *f, Acc *a, LLVMValueRef v, int lanes, int part)
{
	LLVMValueRef p = lanes > 1 ? a->vec[part] : a->sca;
	LLVMValueRef cur = ld(f, cg_type(f->L, a->t, lanes), p);
	LLVMBuildStore(B, combine(f, a->op, a->t, cur, v), p);
}

/* The two vectors lane by lane, their lanes as a tree (halves, then
 * quarters, ...), then the scalar tail: a fixed order. */
static LLVMValueRef acc_end(CgFn *f, Acc *a)
{
	int w = f->L->vw;
	LLVMTypeRef vt = cg_type(f->L, a->t, w);
	LLVMValueRef v = combine(f, a->op, a->t, ld(f, vt, a->vec[0]), ld(f, vt, a->vec[1]));
	for (int h = w / 2; h >= 1; h /= 2) {
		LLVMValueRef lo[32], hi[32];
		for (int i = 0; i < h; i++) {
			lo[i] = LLVMConstInt(f->L->t_i32, (unsigned)i, 0);
			hi[i] = LLVMConstInt(f->L->t_i32, (unsigned)(h + i), 0);
		}
		LLVMValueRef und = LLVMGetUndef(LLVMTypeOf(v));
		LLVMValueRef x = LLVMBuildShuffleVector(B, v, und, LLVMConstVector(lo, (unsigned)h), "");
		LLVMValueRef y = LLVMBuildShuffleVector(B, v, und, LLVMConstVector(hi, (unsigned)h), "");
		v = combine(f, a->op, a->t, x, y);
	}
	if (w > 1)
		v = LLVMBuildExtractElement(B, v, LLVMConstInt(f->L->t_i32, 0, 0), "");
	return combine(f, a->op, a->t, v, ld(f, cg_type(f->L, a->t, 1), a->sca));
}

/* pass 1 of softmax and layer_norm: out = expr, accumulate */
static void pass_eval(CgFn *f, Ops *o, LLVMValueRef j, int lanes, void *user)
{
	Acc *a = user;
	CgVal v = cg_convert(f, eval_at(f, o, j, lanes), IR_F32, lanes);
	store_view(f, o, 0, j, v, lanes);
	acc_add(f, a, v.v, lanes, o->part);
}

/* softmax pass 2: out = exp(out - max), sum */
static void pass_exp(CgFn *f, Ops *o, LLVMValueRef j, int lanes, void *user)
{
	Acc *a = user;
	CgVal v = load_view(f, o, 0, j, lanes);
	v.v = cg_math_exp(f, LLVMBuildFSub(B, v.v, cg_splat(f, a->mean, lanes), ""), lanes);
	store_view(f, o, 0, j, v, lanes);
	acc_add(f, a, v.v, lanes, o->part);
}

/* softmax pass 3 / scaling: out *= s */
static void pass_scale(CgFn *f, Ops *o, LLVMValueRef j, int lanes, void *user)
{
	LLVMValueRef s = user;
	CgVal v = load_view(f, o, 0, j, lanes);
	v.v = LLVMBuildFMul(B, v.v, cg_splat(f, s, lanes), "");
	store_view(f, o, 0, j, v, lanes);
}

/* layer_norm pass 2: sum of squared deviations */
static void pass_var(CgFn *f, Ops *o, LLVMValueRef j, int lanes, void *user)
{
	Acc *a = user;
	CgVal v = load_view(f, o, 0, j, lanes);
	LLVMValueRef d = LLVMBuildFSub(B, v.v, cg_splat(f, a->mean, lanes), "");
	acc_add(f, a, LLVMBuildFMul(B, d, d, ""), lanes, o->part);
}

typedef struct Norm {
	LLVMValueRef mean, rstd;
} Norm;

/* layer_norm pass 3: out = (out - mean) * rstd * w + b */
static void pass_norm(CgFn *f, Ops *o, LLVMValueRef j, int lanes, void *user)
{
	Norm *nm = user;
	CgVal v = load_view(f, o, 0, j, lanes);
	CgVal w = load_view(f, o, 1, j, lanes), b = load_view(f, o, 2, j, lanes);
	LLVMValueRef x = LLVMBuildFSub(B, v.v, cg_splat(f, nm->mean, lanes), "");
	x = LLVMBuildFMul(B, x, cg_splat(f, nm->rstd, lanes), "");
	v.v = cg_fma(f, x, cg_convert(f, w, IR_F32, lanes).v, cg_convert(f, b, IR_F32, lanes).v,
	             lanes);
	store_view(f, o, 0, j, v, lanes);
}

/* REDUCE: accumulate the input */
static void pass_reduce(CgFn *f, Ops *o, LLVMValueRef j, int lanes, void *user)
{
	Acc *a = user;
	CgVal v = load_view(f, o, 1, j, lanes);
	acc_add(f, a, cg_convert(f, v, a->t, lanes).v, lanes, o->part);
}

/* Rows a softmax kernel runs at once: one row's passes are a chain of
 * dependent steps (the max, then the exponentials and their sum, then the
 * scaling), short at a row of 128, so a core waits on it; the passes of
 * SOFTMAX_ROWS rows go in one loop, their chains side by side. Each row's
 * arithmetic is unchanged. */
#define SOFTMAX_ROWS 4

/* body over the rows of a group: view offsets off[i], accumulator user[i] */
typedef struct Group {
	int n;
	LLVMValueRef (*off)[MAXV];
	RowBody body;
	void *user[SOFTMAX_ROWS];
} Group;

static void group_body(CgFn *f, Ops *o, LLVMValueRef j, int lanes, void *user)
{
	Group *g = user;
	for (int i = 0; i < g->n; i++) {
		memcpy(o->off, g->off[i], sizeof o->off);
		g->body(f, o, j, lanes, g->user[i]);
	}
}

/* The offsets of row r's views (o->off). */
static void row_start(CgFn *f, Ops *o, LLVMValueRef r, LLVMValueRef len)
{
	const CgStep *st = o->st;
	row_offsets(f, o, st->dim, st->ndim - 1, r, 0, st->nview);
	if (o->rows) /* compact rows in the caller's memory */
		o->off[0] = o->off[o->rows_view] =
		        LLVMBuildMul(B, LLVMBuildSub(B, r, o->rows_begin, ""), len, "");
}

/* softmax over n rows from r at once */
static void softmax_group(CgFn *f, Ops *o, LLVMValueRef r, int n, LLVMValueRef len)
{
	LLVMValueRef off[SOFTMAX_ROWS][MAXV], inv[SOFTMAX_ROWS];
	Acc a[SOFTMAX_ROWS];
	Group g = {.n = n, .off = off};
	int vec = o->cls[0] == 1 ? ROW_VEC2 : ROW_SCALAR;
	for (int i = 0; i < n; i++) {
		row_start(f, o, i ? LLVMBuildAdd(B, r, cg_i64(f, i), "") : r, len);
		memcpy(off[i], o->off, sizeof o->off);
		acc_begin(f, &a[i], 1, IR_F32);
		g.user[i] = &a[i];
	}
	g.body = pass_eval;
	row_loop(f, o, cg_i64(f, 0), len, vec, group_body, &g);
	for (int i = 0; i < n; i++) {
		LLVMValueRef max = acc_end(f, &a[i]);
		acc_begin(f, &a[i], 0, IR_F32);
		a[i].mean = max;
	}
	g.body = pass_exp;
	row_loop(f, o, cg_i64(f, 0), len, vec, group_body, &g);
	for (int i = 0; i < n; i++) {
		inv[i] = LLVMBuildFDiv(B, cg_constf(f, 1, 1), acc_end(f, &a[i]), "");
		g.user[i] = inv[i];
	}
	g.body = pass_scale;
	row_loop(f, o, cg_i64(f, 0), len, vec, group_body, &g);
}

static void emit_softmax(CgFn *f, Ops *o, LLVMValueRef begin, LLVMValueRef end,
                         LLVMValueRef len)
{
	CgLoop lp;
	LLVMValueRef r = cg_loop_begin(f, &lp, begin,
	                            LLVMBuildSub(B, end, cg_i64(f, SOFTMAX_ROWS - 1), ""));
	softmax_group(f, o, r, SOFTMAX_ROWS, len);
	cg_loop_end(f, &lp, r, cg_i64(f, SOFTMAX_ROWS));
	LLVMValueRef rest = ld(f, f->L->t_i64, lp.var);
	r = cg_loop_begin(f, &lp, rest, end);
	softmax_group(f, o, r, 1, len);
	cg_loop_end(f, &lp, r, cg_i64(f, 1));
}

static void emit_rows(CgFn *f, Ops *o, LLVMValueRef begin, LLVMValueRef end)
{
	const CgStep *st = o->st;
	int nd = st->ndim;
	LLVMValueRef len = cg_dim(f, st->dim[nd - 1]);
	if (st->kind == CG_SOFTMAX) {
		emit_softmax(f, o, begin, end, len);
		return;
	}
	CgLoop lp;
	LLVMValueRef r = cg_loop_begin(f, &lp, begin, end);
	row_start(f, o, r, len);
	LLVMValueRef zero = cg_i64(f, 0);
	LLVMValueRef lenf = LLVMBuildSIToFP(B, len, f->L->t_f32, "");
	LLVMValueRef one = cg_constf(f, 1, 1);
	int vec = o->cls[0] == 1 ? ROW_VEC2 : ROW_SCALAR;
	Acc a;
	switch (st->kind) {
	case CG_LAYER_NORM: {
		acc_begin(f, &a, 0, IR_F32);
		row_loop(f, o, zero, len, vec, pass_eval, &a);
		Norm nm;
		nm.mean = LLVMBuildFDiv(B, acc_end(f, &a), lenf, "");
		acc_begin(f, &a, 0, IR_F32);
		a.mean = nm.mean;
		row_loop(f, o, zero, len, vec, pass_var, &a);
		LLVMValueRef var = LLVMBuildFDiv(B, acc_end(f, &a), lenf, "");
		var = LLVMBuildFAdd(B, var, cg_constf(f, st->eps, 1), "");
		LLVMValueRef sq = cg_llvm_intrinsic(f->L, "llvm.sqrt", f->L->t_f32, NULL, 1);
		nm.rstd = LLVMBuildFDiv(B, one, cg_llvm_call(f->L, sq, &var, 1), "");
		row_loop(f, o, zero, len, vec, pass_norm, &nm);
		break;
	}
	default: { /* REDUCE */
		IrDType t = st->type == IR_F32 ? IR_F32 : IR_I64;
		int op = st->rop == OP_MAX ? (t == IR_F32 ? 1 : 2) : 0;
		acc_begin(f, &a, op, t);
		row_loop(f, o, zero, len, o->cls[1] <= 1 ? ROW_VEC2 : ROW_SCALAR, pass_reduce, &a);
		CgVal res = {acc_end(f, &a), t};
		if (st->rop == OP_MEAN)
			res.v = LLVMBuildFDiv(B, cg_convert(f, res, IR_F32, 1).v, lenf, "");
		if (st->rop == OP_MEAN)
			res.t = IR_F32;
		cg_store(f, o->sty[0], o->ptr[0], o->off[0], res, NULL, 0, 1);
		break;
	}
	}
	cg_loop_end(f, &lp, r, cg_i64(f, 1));
}

/* ---- GATHER -------------------------------------------------------------------------------- */

static void copy_body(CgFn *f, Ops *o, LLVMValueRef j, int lanes, void *user)
{
	CgVal v = load_view(f, o, 2, j, lanes);
	store_view(f, o, 0, j, v, lanes);
}

static void emit_gather(CgFn *f, Ops *o, LLVMValueRef begin, LLVMValueRef end)
{
	const CgStep *st = o->st;
	const CgView *tv = &st->views[2];
	LLVMValueRef rows = cg_dim(f, st->rows);
	LLVMValueRef d = cg_dim(f, tv->dim[1]);
	LLVMValueRef rs = o->stride[2][0];
	CgLoop lp;
	LLVMValueRef r = cg_loop_begin(f, &lp, begin, end);
	row_offsets(f, o, st->dim, st->ndim, r, 1, 2);
	CgVal id = cg_load(f, o->sty[1], o->ptr[1], o->off[1], NULL, 0, 1);
	id = cg_convert(f, id, IR_I64, 1);
	LLVMValueRef bad = LLVMBuildICmp(B, LLVMIntUGE, id.v, rows, "");
	LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(f->L->ctx, f->fn, "bad_index");
	LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(f->L->ctx, f->fn, "copy");
	LLVMBuildCondBr(B, bad, fail, ok);
	LLVMPositionBuilderAtEnd(B, fail);
	{
		CgLlvm *L = f->L;
		LLVMTypeRef pt[4] = {L->t_i8p, L->t_i32, L->t_i8p, L->t_i8p};
		LLVMValueRef rt_fail = cg_llvm_decl(L, "rt_fail", LLVMFunctionType(L->t_i32, pt, 4, 1));
		LLVMValueRef args[6] = {
		        f->ex, LLVMConstInt(L->t_i32, SLAPO_INVALID_ARGUMENT, 0),
		        cg_llvm_cstr(L, st->object),
		        cg_llvm_cstr(L, arena_printf(f->prog->arena,
		                                     "value %%lld is out of range [0, %%lld) "
		                                     "(embedding %%%%%s)", st->name)),
		        id.v, rows};
		cg_llvm_call(L, rt_fail, args, 6);
		LLVMBuildRetVoid(B);
	}
	LLVMPositionBuilderAtEnd(B, ok);
	o->off[0] = LLVMBuildMul(B, r, d, "");
	o->off[2] = LLVMBuildMul(B, id.v, rs, "");
	row_loop(f, o, cg_i64(f, 0), d, ROW_VEC2, copy_body, NULL);
	cg_loop_end(f, &lp, r, cg_i64(f, 1));
}

/* ---- entry ---------------------------------------------------------------------------------- */

/* A kernel function: internal, and with an address nothing compares, so
 * that LLVM's mergefunc (cg_llvm_optimize) folds the identical kernels of
 * a model's layers into one before O3 compiles them. */
static LLVMValueRef kernel_fn(CgLlvm *L, const char *name, LLVMTypeRef type)
{
	LLVMValueRef fn = LLVMAddFunction(L->mod, name, type);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	LLVMSetUnnamedAddress(fn, LLVMGlobalUnnamedAddr);
	return fn;
}

bool cg_emit_softmax_rows(CgLlvm *L, const CgProgram *prog, const CgStep *st, int view,
                          const char *name)
{
	LLVMTypeRef args[4] = {L->t_i8p, L->t_i64, L->t_i64, L->t_f32p};
	LLVMValueRef fn = kernel_fn(L, name, LLVMFunctionType(L->t_void, args, 4, 0));
	CgFn f;
	cg_fn_begin(&f, L, prog, fn);
	Ops *o = ARENA_NEW(prog->arena, Ops);
	ops_init(&f, o, st, LLVMGetParam(fn, 0));
	o->rows = o->ptr[0] = o->ptr[view] = LLVMGetParam(fn, 3);
	o->rows_begin = LLVMGetParam(fn, 1);
	o->rows_view = view;
	o->sty[0] = o->sty[view] = IR_F32;
	emit_rows(&f, o, LLVMGetParam(fn, 1), LLVMGetParam(fn, 2));
	LLVMBuildRetVoid(L->b);
	cg_fn_end(&f);
	return !o->x.bad;
}

bool cg_emit_kernel(CgLlvm *L, const CgProgram *prog, const CgStep *st)
{
	LLVMValueRef fn = kernel_fn(L, st->fn, L->t_kernel);
	CgFn f;
	cg_fn_begin(&f, L, prog, fn);
	Ops *o = ARENA_NEW(prog->arena, Ops);
	ops_init(&f, o, st, LLVMGetParam(fn, 0));
	LLVMValueRef begin = LLVMGetParam(fn, 1), end = LLVMGetParam(fn, 2);
	switch (st->kind) {
	case CG_MAP:
		emit_map(&f, o, begin, end);
		break;
	case CG_SOFTMAX:
	case CG_LAYER_NORM:
	case CG_REDUCE:
		emit_rows(&f, o, begin, end);
		break;
	case CG_GATHER:
		emit_gather(&f, o, begin, end);
		break;
	case CG_GEMM:
	case CG_ATTENTION: /* never on the CPU */
		break;
	}
	LLVMBuildRetVoid(L->b);
	cg_fn_end(&f);
	if (o->x.bad) {
		diag_plain(L->diag, DIAG_ERROR,
		           "internal error: kernel %s computes an op it cannot emit", st->fn);
		return false;
	}
	return true;
}
