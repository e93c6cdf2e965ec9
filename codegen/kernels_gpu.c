/* kernels_gpu.c - NVPTX kernels, one per non-GEMM step of the GPU program,
 * from the same steps (views, expressions) as the CPU kernels and with the
 * same elementwise emitters (cg_cpu_ops) and float math (kernels_math.c).
 *
 * Parameters (cg_gpu_kernel_nargs): the address of element 0 of each view
 * (i8*, device memory; NULL for index views), the value of each symbol
 * (i64), the run's error word (i8*) and the object index (i64) a gather
 * stores (+ 1) there on a bad index.
 *
 *   MAP         threads over the flattened index space, grid-stride; four
 *               elements per thread with 16-byte vector loads and stores
 *               when the row length, every contiguous view's address and
 *               its outer strides allow it (checked in the kernel, once),
 *               else one element per thread
 *   SOFTMAX     one block per row (grid-stride over rows): each thread
 *   LAYER_NORM  evaluates its elements j = tid + c * ntid (c < 8) of the
 *               prologue expression into registers, the block reduces
 *               (warp shuffles, then one value per warp through shared
 *               memory): max, exp and sum, scale (softmax); mean, sum of
 *               squared deviations, normalise (layer_norm, two-pass as on
 *               the CPU). The input is read once; elements past 8 * ntid
 *               (rows longer than the launch covers) go through the
 *               output instead of registers. Statistics are f32.
 *   REDUCE      one thread per row
 *   GATHER      threads over (index, column): a bad index stores 1 +
 *               object into the error word and writes nothing
 * Storage types follow the GPU plan (bf16/f16 widened to f32 on load,
 * rounded to nearest even on store).
 */
#include <math.h>
#include <string.h>

#include "codegen/gpu.h"

#define B (f->L->b)

enum {
	MAXV = CG_MAX_VIEWS,
	VEC = 8, /* most lanes of a MAP thread: 16 bytes of a 16-bit type */
	ROWK = 8
};

typedef struct GOps {
	const CgGpu *g;
	const CgStep *st;
	LLVMValueRef ptr[MAXV]; /* i8*: element 0; NULL for index views */
	IrDType sty[MAXV];
	LLVMValueRef stride[MAXV][IR_MAX_DIMS];
	int cls[MAXV]; /* last-dim stride: 0, 1 or 2 (other) */
	LLVMValueRef off[MAXV];
	LLVMValueRef j;
	int lanes;
	int nmemo;
	const IrNode *memo_n[128];
	CgVal memo_v[128];
	bool bad;
	LLVMValueRef errword, object;
} GOps;

int cg_gpu_kernel_nargs(const CgProgram *prog, const CgStep *st)
{
	return st->nview + prog->nsyms + 2;
}

/* ---- small helpers ------------------------------------------------------------------- */

static LLVMValueRef i64c(CgFn *f, int64_t v)
{
	return LLVMConstInt(f->L->t_i64, (unsigned long long)v, 1);
}

static LLVMValueRef sreg(CgFn *f, const char *name)
{
	char full[96];
	snprintf(full, sizeof full, "llvm.nvvm.read.ptx.sreg.%s", name);
	LLVMValueRef fn =
	        cg_llvm_decl(f->L, full, LLVMFunctionType(f->L->t_i32, NULL, 0, 0));
	return LLVMBuildZExt(B, cg_llvm_call(f->L, fn, NULL, 0), f->L->t_i64, "");
}

static LLVMValueRef var_of(CgFn *f, LLVMTypeRef t, const char *name)
{
	LLVMBasicBlockRef here = LLVMGetInsertBlock(B);
	LLVMPositionBuilderAtEnd(B, f->entry);
	LLVMValueRef v = LLVMBuildAlloca(B, t, name);
	LLVMPositionBuilderAtEnd(B, here);
	return v;
}

static LLVMValueRef ld(CgFn *f, LLVMTypeRef t, LLVMValueRef p)
{
	return LLVMBuildLoad2(B, t, p, "");
}

typedef struct Loop {
	LLVMValueRef var;
	LLVMBasicBlockRef head, exit;
} Loop;

/* for (i = init; i < limit; i += step) */
static LLVMValueRef loop_begin(CgFn *f, Loop *lp, LLVMValueRef init, LLVMValueRef limit)
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

static void loop_end(CgFn *f, Loop *lp, LLVMValueRef i, LLVMValueRef step)
{
	LLVMBuildStore(B, LLVMBuildAdd(B, i, step, ""), lp->var);
	LLVMBuildBr(B, lp->head);
	LLVMPositionBuilderAtEnd(B, lp->exit);
}

/* if (cond) { ...: returns the block after; the builder is in the then-block */
static LLVMBasicBlockRef if_begin(CgFn *f, LLVMValueRef cond)
{
	LLVMContextRef c = f->L->ctx;
	LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c, f->fn, "then");
	LLVMBasicBlockRef after = LLVMAppendBasicBlockInContext(c, f->fn, "endif");
	LLVMBuildCondBr(B, cond, then, after);
	LLVMPositionBuilderAtEnd(B, then);
	return after;
}

static void if_end(CgFn *f, LLVMBasicBlockRef after)
{
	LLVMBuildBr(B, after);
	LLVMPositionBuilderAtEnd(B, after);
}

/* ---- storage --------------------------------------------------------------------------- */

static LLVMTypeRef elem_type(CgLlvm *L, IrDType st)
{
	switch (st) {
	case IR_I64:
		return L->t_i64;
	case IR_I32:
		return L->t_i32;
	case IR_BOOL:
		return L->t_i8;
	case IR_BF16:
		return LLVMInt16TypeInContext(L->ctx);
	case IR_F16: /* NVPTX: raw bits, converted by cvt (LLVM 14 mis-lowers
	              * some half vectors) */
		return L->nvptx ? LLVMInt16TypeInContext(L->ctx) : LLVMHalfTypeInContext(L->ctx);
	default:
		return L->t_f32;
	}
}

static LLVMTypeRef vec_of(LLVMTypeRef e, int lanes)
{
	return lanes > 1 ? LLVMVectorType(e, (unsigned)lanes) : e;
}

static LLVMValueRef splat(CgFn *f, LLVMValueRef x, int lanes)
{
	if (lanes == 1)
		return x;
	LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(x), (unsigned)lanes);
	LLVMValueRef v = LLVMBuildInsertElement(B, LLVMGetUndef(vt), x,
	                                        LLVMConstInt(f->L->t_i32, 0, 0), "");
	LLVMValueRef mask = LLVMConstNull(LLVMVectorType(f->L->t_i32, (unsigned)lanes));
	return LLVMBuildShuffleVector(B, v, LLVMGetUndef(vt), mask, "");
}

static LLVMValueRef splat_int(CgFn *f, LLVMTypeRef t, uint64_t v, int lanes)
{
	LLVMValueRef c = LLVMConstInt(t, v, 0);
	if (lanes == 1)
		return c;
	LLVMValueRef e[VEC];
	for (int i = 0; i < lanes; i++)
		e[i] = c;
	return LLVMConstVector(e, (unsigned)lanes);
}

static CgVal widen(CgFn *f, IrDType st, LLVMValueRef x, int lanes)
{
	CgLlvm *L = f->L;
	CgVal r = {.v = x, .t = cg_compute_type(st)};
	switch (st) {
	case IR_I32:
		r.v = LLVMBuildSExt(B, x, vec_of(L->t_i64, lanes), "");
		break;
	case IR_BOOL:
		r.v = LLVMBuildICmp(B, LLVMIntNE, x, splat_int(f, L->t_i8, 0, lanes), "");
		break;
	case IR_BF16: {
		LLVMValueRef w = LLVMBuildZExt(B, x, vec_of(L->t_i32, lanes), "");
		w = LLVMBuildShl(B, w, splat_int(f, L->t_i32, 16, lanes), "");
		r.v = LLVMBuildBitCast(B, w, vec_of(L->t_f32, lanes), "");
		r.t = IR_F32;
		break;
	}
	case IR_F16:
		r.v = L->nvptx ? cg_ptx(f, "cvt.f32.f16 $0, $1;", "=f,h", L->t_f32, &x, 1, lanes)
		               : LLVMBuildFPExt(B, x, vec_of(L->t_f32, lanes), "");
		r.t = IR_F32;
		break;
	default:
		break;
	}
	return r;
}

/* The largest finite bf16, 0x7f7f. */
#define BF16_MAX 3.3895313892515355e38

/* Finite values beyond +-max become +-max (infinities and NaN stay): the
 * additive masks of HF models hold f32's lowest value, which would round
 * to -inf in 16 bits and make a fully masked row NaN where HF's own 16-bit
 * models (finfo(dtype).min) stay finite. */
static LLVMValueRef saturate(CgFn *f, LLVMValueRef x, double max, int lanes)
{
	LLVMValueRef hi = splat(f, LLVMConstReal(f->L->t_f32, max), lanes);
	LLVMValueRef lo = splat(f, LLVMConstReal(f->L->t_f32, -max), lanes);
	LLVMValueRef inf = splat(f, LLVMConstReal(f->L->t_f32, INFINITY), lanes);
	LLVMValueRef ninf = splat(f, LLVMConstReal(f->L->t_f32, -INFINITY), lanes);
	LLVMValueRef big = LLVMBuildAnd(B, LLVMBuildFCmp(B, LLVMRealOGT, x, hi, ""),
	                                LLVMBuildFCmp(B, LLVMRealONE, x, inf, ""), "");
	x = LLVMBuildSelect(B, big, hi, x, "");
	LLVMValueRef small = LLVMBuildAnd(B, LLVMBuildFCmp(B, LLVMRealOLT, x, lo, ""),
	                                  LLVMBuildFCmp(B, LLVMRealONE, x, ninf, ""), "");
	return LLVMBuildSelect(B, small, lo, x, "");
}

static LLVMValueRef narrow(CgFn *f, IrDType st, CgVal v, int lanes)
{
	CgLlvm *L = f->L;
	switch (st) {
	case IR_I32:
		return LLVMBuildTrunc(B, cg_convert(f, v, IR_I64, lanes).v,
		                      vec_of(L->t_i32, lanes), "");
	case IR_BOOL:
		return LLVMBuildZExt(B, cg_convert(f, v, IR_BOOL, lanes).v,
		                     vec_of(L->t_i8, lanes), "");
	case IR_I64:
		return cg_convert(f, v, IR_I64, lanes).v;
	case IR_BF16: { /* round to nearest even; NaN stays a quiet NaN (as rt_f32_to_bf16) */
		LLVMValueRef x = saturate(f, cg_convert(f, v, IR_F32, lanes).v, BF16_MAX, lanes);
		LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx);
		if (L->nvptx) /* sm_80 has the conversion */
			return cg_ptx(f, "cvt.rn.bf16.f32 $0, $1;", "=h,f", i16, &x, 1, lanes);
		LLVMTypeRef it = vec_of(L->t_i32, lanes);
		LLVMValueRef u = LLVMBuildBitCast(B, x, it, "");
		LLVMValueRef hi =
		        LLVMBuildLShr(B, u, splat_int(f, L->t_i32, 16, lanes), "");
		LLVMValueRef odd =
		        LLVMBuildAnd(B, hi, splat_int(f, L->t_i32, 1, lanes), "");
		LLVMValueRef r =
		        LLVMBuildAdd(B, u, splat_int(f, L->t_i32, 0x7fff, lanes), "");
		r = LLVMBuildLShr(B, LLVMBuildAdd(B, r, odd, ""),
		                  splat_int(f, L->t_i32, 16, lanes), "");
		LLVMValueRef nan = LLVMBuildFCmp(B, LLVMRealUNO, x, x, "");
		LLVMValueRef q =
		        LLVMBuildOr(B, hi, splat_int(f, L->t_i32, 0x40, lanes), "");
		r = LLVMBuildSelect(B, nan, q, r, "");
		return LLVMBuildTrunc(B, r, vec_of(i16, lanes), "");
	}
	case IR_F16: {
		LLVMValueRef x = saturate(f, cg_convert(f, v, IR_F32, lanes).v, 65504.0, lanes);
		if (L->nvptx)
			return cg_ptx(f, "cvt.rn.f16.f32 $0, $1;", "=h,f",
			              LLVMInt16TypeInContext(L->ctx), &x, 1, lanes);
		return LLVMBuildFPTrunc(B, x, vec_of(LLVMHalfTypeInContext(L->ctx), lanes), "");
	}
	default:
		return cg_convert(f, v, IR_F32, lanes).v;
	}
}

static LLVMValueRef elem_ptr(CgFn *f, IrDType st, LLVMValueRef base, LLVMValueRef off)
{
	LLVMTypeRef et = elem_type(f->L, st);
	LLVMValueRef p = LLVMBuildBitCast(B, base, LLVMPointerType(et, 0), "");
	return LLVMBuildInBoundsGEP2(B, et, p, &off, 1, "");
}

/* lanes elements at base[off + i * stride] (cls 0: one, splatted; 1:
 * contiguous, one aligned vector access; 2: `stride` apart) */
static CgVal gload(CgFn *f, IrDType st, LLVMValueRef base, LLVMValueRef off,
                   LLVMValueRef stride, int cls, int lanes)
{
	LLVMTypeRef et = elem_type(f->L, st);
	unsigned esz = (unsigned)cg_gpu_elem_size(st);
	if (lanes == 1 || cls == 0) {
		LLVMValueRef x = LLVMBuildLoad2(B, et, elem_ptr(f, st, base, off), "");
		LLVMSetAlignment(x, esz);
		return widen(f, st, splat(f, x, lanes), lanes);
	}
	LLVMTypeRef vt = LLVMVectorType(et, (unsigned)lanes);
	if (cls == 1) {
		LLVMValueRef vp = LLVMBuildBitCast(B, elem_ptr(f, st, base, off),
		                                   LLVMPointerType(vt, 0), "");
		LLVMValueRef x = LLVMBuildLoad2(B, vt, vp, "");
		LLVMSetAlignment(x, esz * (unsigned)lanes);
		return widen(f, st, x, lanes);
	}
	LLVMValueRef v = LLVMGetUndef(vt);
	for (int i = 0; i < lanes; i++) {
		LLVMValueRef o =
		        LLVMBuildAdd(B, off, LLVMBuildMul(B, stride, i64c(f, i), ""), "");
		LLVMValueRef x = LLVMBuildLoad2(B, et, elem_ptr(f, st, base, o), "");
		LLVMSetAlignment(x, esz);
		v = LLVMBuildInsertElement(B, v, x,
		                           LLVMConstInt(f->L->t_i32, (unsigned)i, 0), "");
	}
	return widen(f, st, v, lanes);
}

static void gstore(CgFn *f, IrDType st, LLVMValueRef base, LLVMValueRef off, CgVal v,
                   LLVMValueRef stride, int cls, int lanes)
{
	LLVMValueRef x = narrow(f, st, v, lanes);
	unsigned esz = (unsigned)cg_gpu_elem_size(st);
	if (lanes == 1) {
		LLVMValueRef s = LLVMBuildStore(B, x, elem_ptr(f, st, base, off));
		LLVMSetAlignment(s, esz);
		return;
	}
	if (cls == 1) {
		LLVMValueRef vp = LLVMBuildBitCast(B, elem_ptr(f, st, base, off),
		                                   LLVMPointerType(LLVMTypeOf(x), 0), "");
		LLVMValueRef s = LLVMBuildStore(B, x, vp);
		LLVMSetAlignment(s, esz * (unsigned)lanes);
		return;
	}
	for (int i = 0; i < lanes; i++) {
		LLVMValueRef o =
		        LLVMBuildAdd(B, off, LLVMBuildMul(B, stride, i64c(f, i), ""), "");
		LLVMValueRef e = LLVMBuildExtractElement(
		        B, x, LLVMConstInt(f->L->t_i32, (unsigned)i, 0), "");
		LLVMValueRef s = LLVMBuildStore(B, e, elem_ptr(f, st, base, o));
		LLVMSetAlignment(s, esz);
	}
}

/* ---- operands ------------------------------------------------------------------------------ */

static int stride_class(IrDim s)
{
	return cg_dim_is(s, 0) ? 0 : cg_dim_is(s, 1) ? 1 : 2;
}

/* The kernel's function and its parameters; f->sym set up. */
static LLVMValueRef begin_kernel(CgFn *f, CgLlvm *L, const CgGpu *g, const CgStep *st,
                                 const char *name, GOps *o)
{
	const CgProgram *p = g->prog;
	int nargs = cg_gpu_kernel_nargs(p, st);
	LLVMTypeRef *pt = ARENA_ARRAY(p->arena, LLVMTypeRef, nargs + 1);
	for (int i = 0; i < nargs; i++)
		pt[i] = i < st->nview || i == nargs - 2 ? L->t_i8p : L->t_i64;
	LLVMValueRef fn = LLVMAddFunction(
	        L->mod, name, LLVMFunctionType(L->t_void, pt, (unsigned)nargs, 0));
	cg_fn_begin(f, L, p, fn);
	memset(o, 0, sizeof *o);
	o->g = g;
	o->st = st;
	LLVMPositionBuilderAtEnd(B, f->entry);
	if (p->nsyms > 0) {
		LLVMValueRef arr =
		        LLVMBuildArrayAlloca(B, L->t_i64, i64c(f, p->nsyms), "sym");
		for (int s = 0; s < p->nsyms; s++) {
			LLVMValueRef idx = i64c(f, s);
			LLVMBuildStore(
			        B, LLVMGetParam(fn, (unsigned)(st->nview + s)),
			        LLVMBuildInBoundsGEP2(B, L->t_i64, arr, &idx, 1, ""));
		}
		f->sym = arr;
	} else {
		f->sym = LLVMConstNull(L->t_i64p);
	}
	o->errword = LLVMGetParam(fn, (unsigned)(nargs - 2));
	o->object = LLVMGetParam(fn, (unsigned)(nargs - 1));
	LLVMPositionBuilderAtEnd(B, f->body);
	for (int k = 0; k < st->nview; k++) {
		const CgView *v = &st->views[k];
		if (v->buf >= 0) {
			o->ptr[k] = LLVMGetParam(fn, (unsigned)k);
			o->sty[k] = g->btype[v->buf];
		}
		for (int i = 0; i < v->ndim; i++)
			o->stride[k][i] = cg_dim(f, v->stride[i]);
		o->cls[k] = v->ndim ? stride_class(v->stride[v->ndim - 1]) : 0;
	}
	return fn;
}

/* offsets of views [k0, k1) for row r of dims [0, nouter) */
static void row_offsets(CgFn *f, GOps *o, const IrDim *dim, int nouter, LLVMValueRef r,
                        int k0, int k1)
{
	for (int k = k0; k < k1; k++)
		o->off[k] = i64c(f, 0);
	for (int i = nouter - 1; i >= 0; i--) {
		LLVMValueRef idx = r;
		if (i > 0) {
			LLVMValueRef d = cg_dim(f, dim[i]);
			LLVMValueRef q = LLVMBuildUDiv(B, r, d, "");
			idx = LLVMBuildSub(B, r, LLVMBuildMul(B, q, d, ""), "");
			r = q;
		}
		for (int k = k0; k < k1; k++)
			if (i < o->st->views[k].ndim &&
			    !cg_dim_is(o->st->views[k].stride[i], 0))
				o->off[k] = LLVMBuildAdd(
				        B, o->off[k],
				        LLVMBuildMul(B, idx, o->stride[k][i], ""), "");
	}
}

static LLVMValueRef at(CgFn *f, GOps *o, int k, LLVMValueRef j)
{
	int last = o->st->views[k].ndim - 1;
	switch (o->cls[k]) {
	case 0:
		return o->off[k];
	case 1:
		return LLVMBuildAdd(B, o->off[k], j, "");
	default:
		return LLVMBuildAdd(B, o->off[k],
		                    LLVMBuildMul(B, j, o->stride[k][last], ""), "");
	}
}

static CgVal load_view(CgFn *f, GOps *o, int k, LLVMValueRef j, int lanes)
{
	int last = o->st->views[k].ndim - 1;
	return gload(f, o->sty[k], o->ptr[k], at(f, o, k, j),
	             last >= 0 ? o->stride[k][last] : NULL, o->cls[k], lanes);
}

static void store_view(CgFn *f, GOps *o, int k, LLVMValueRef j, CgVal v, int lanes)
{
	int last = o->st->views[k].ndim - 1;
	gstore(f, o->sty[k], o->ptr[k], at(f, o, k, j), v,
	       last >= 0 ? o->stride[k][last] : NULL, o->cls[k], lanes);
}

/* ---- expressions (as kernels.c) ------------------------------------------------------------ */

static CgVal eval(CgFn *f, GOps *o, const IrNode *n)
{
	for (int i = 0; i < o->nmemo; i++)
		if (o->memo_n[i] == n)
			return o->memo_v[i];
	const CgExpr *e = &o->st->expr;
	CgVal r = {0};
	for (int i = 0; i < e->nconst; i++)
		if (e->cnode[i] == n) {
			r = cg_const(f, e->cval[i]->dtype, e->cval[i]->fattr, o->lanes);
			return cg_convert(f, r, n->dtype, o->lanes);
		}
	int leaf = -1;
	for (int i = 0; i < e->nleaf && leaf < 0; i++)
		if (e->leaf[i] == n)
			leaf = i;
	if (leaf >= 0) {
		int k = e->leaf_view[leaf];
		if (!o->ptr[k]) { /* arange: the index itself */
			int last = o->st->views[k].ndim - 1;
			r.t = IR_I64;
			r.v = at(f, o, k, o->j);
			if (o->lanes > 1) {
				LLVMValueRef iota[VEC];
				for (int i = 0; i < o->lanes; i++)
					iota[i] =
					        LLVMConstInt(f->L->t_i64, (unsigned)i, 0);
				LLVMValueRef step =
				        LLVMConstVector(iota, (unsigned)o->lanes);
				if (o->cls[k] == 0)
					step = cg_consti(f, 0, o->lanes);
				else if (o->cls[k] == 2)
					step = LLVMBuildMul(
					        B, step,
					        splat(f, o->stride[k][last], o->lanes),
					        "");
				r.v = LLVMBuildAdd(B, splat(f, r.v, o->lanes), step, "");
			}
			r = cg_convert(f, r, n->dtype, o->lanes);
		} else {
			r = load_view(f, o, k, o->j, o->lanes);
		}
	} else if (n->op == OP_CONST) {
		r = cg_const(f, n->dtype, n->fattr, o->lanes);
	} else if (cg_cpu_ops[n->op].elem && n->nin <= 8) {
		CgVal in[8];
		for (int i = 0; i < n->nin; i++)
			in[i] = eval(f, o, n->in[i]);
		r = cg_cpu_ops[n->op].elem(f, n, in, o->lanes);
	} else {
		o->bad = true;
		r = cg_const(f, n->dtype, 0, o->lanes);
	}
	if (o->nmemo < 128) {
		o->memo_n[o->nmemo] = n;
		o->memo_v[o->nmemo++] = r;
	}
	return r;
}

static CgVal eval_at(CgFn *f, GOps *o, LLVMValueRef j, int lanes)
{
	o->j = j;
	o->lanes = lanes;
	o->nmemo = 0;
	return eval(f, o, o->st->expr.root);
}

/* ---- MAP ----------------------------------------------------------------------------------- */

static LLVMValueRef global_id(CgFn *f, LLVMValueRef *stride)
{
	LLVMValueRef nt = sreg(f, "ntid.x");
	*stride = LLVMBuildMul(B, sreg(f, "nctaid.x"), nt, "");
	return LLVMBuildAdd(B, LLVMBuildMul(B, sreg(f, "ctaid.x"), nt, ""),
	                    sreg(f, "tid.x"), "");
}

static void map_elems(CgFn *f, GOps *o, LLVMValueRef limit, LLVMValueRef len, int lanes)
{
	const CgStep *st = o->st;
	LLVMValueRef gstride, u0 = global_id(f, &gstride);
	Loop lp;
	LLVMValueRef u = loop_begin(f, &lp, u0, limit);
	LLVMValueRef lin = lanes > 1 ? LLVMBuildMul(B, u, i64c(f, lanes), "") : u;
	LLVMValueRef row = LLVMBuildUDiv(B, lin, len, "");
	LLVMValueRef j = LLVMBuildSub(B, lin, LLVMBuildMul(B, row, len, ""), "");
	row_offsets(f, o, st->dim, st->ndim - 1, row, 0, st->nview);
	CgVal v = eval_at(f, o, j, lanes);
	store_view(f, o, 0, j, v, lanes);
	loop_end(f, &lp, u, gstride);
}

static void emit_map(CgFn *f, GOps *o)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	int nd = st->ndim;
	LLVMValueRef len = cg_dim(f, st->dim[nd - 1]);
	LLVMValueRef total = i64c(f, 1);
	for (int i = 0; i < nd; i++)
		total = LLVMBuildMul(B, total, cg_dim(f, st->dim[i]), "");
	/* 16 bytes of the output at a time (four f32 or eight 16-bit
	 * elements) when every contiguous view allows it */
	int vec = cg_gpu_elem_size(o->sty[0]) == 2 ? VEC : VEC / 2;
	LLVMValueRef bits = LLVMBuildURem(B, len, i64c(f, vec), "");
	bool possible = o->cls[0] != 0;
	for (int k = 0; k < st->nview && possible; k++) {
		if (!o->ptr[k] || o->cls[k] != 1)
			continue;
		LLVMValueRef a = LLVMBuildPtrToInt(B, o->ptr[k], L->t_i64, "");
		a = LLVMBuildURem(B, a, i64c(f, vec * cg_gpu_elem_size(o->sty[k])), "");
		bits = LLVMBuildOr(B, bits, a, "");
		for (int d = 0; d + 1 < st->views[k].ndim; d++)
			bits = LLVMBuildOr(
			        B, bits,
			        LLVMBuildURem(B, o->stride[k][d], i64c(f, vec), ""), "");
	}
	if (possible) {
		LLVMValueRef ok = LLVMBuildICmp(B, LLVMIntEQ, bits, i64c(f, 0), "");
		LLVMBasicBlockRef vb =
		        LLVMAppendBasicBlockInContext(L->ctx, f->fn, "vector");
		LLVMBasicBlockRef sb =
		        LLVMAppendBasicBlockInContext(L->ctx, f->fn, "scalar");
		LLVMBasicBlockRef done =
		        LLVMAppendBasicBlockInContext(L->ctx, f->fn, "mapped");
		LLVMBuildCondBr(B, ok, vb, sb);
		LLVMPositionBuilderAtEnd(B, vb);
		map_elems(f, o, LLVMBuildUDiv(B, total, i64c(f, vec), ""), len, vec);
		LLVMBuildBr(B, done);
		LLVMPositionBuilderAtEnd(B, sb);
		map_elems(f, o, total, len, 1);
		LLVMBuildBr(B, done);
		LLVMPositionBuilderAtEnd(B, done);
	} else {
		map_elems(f, o, total, len, 1);
	}
}

/* ---- block reductions ------------------------------------------------------------------------ */

static LLVMValueRef combine(CgFn *f, int op, LLVMValueRef a, LLVMValueRef b)
{
	return op == 0 ? LLVMBuildFAdd(B, a, b, "") : cg_fmax_nan(f, a, b);
}

static LLVMValueRef shared_red(CgFn *f)
{
	CgLlvm *L = f->L;
	LLVMValueRef g = LLVMGetNamedGlobal(L->mod, "slapo_red");
	if (!g) {
		/* shared memory on NVPTX; plain memory where the kernels are
		 * compiled for the host (gpu_emu.c) */
		unsigned as = strncmp(LLVMGetTarget(L->mod), "nvptx", 5) == 0 ? 3 : 0;
		LLVMTypeRef t = LLVMArrayType(L->t_f32, 32);
		g = LLVMAddGlobalInAddressSpace(L->mod, t, "slapo_red", as);
		LLVMSetInitializer(g, LLVMGetUndef(t));
		LLVMSetLinkage(g, LLVMInternalLinkage);
		LLVMSetAlignment(g, 16);
	}
	return g;
}

static LLVMValueRef shared_at(CgFn *f, LLVMValueRef i)
{
	CgLlvm *L = f->L;
	LLVMValueRef idx[2] = {i64c(f, 0), i};
	return LLVMBuildInBoundsGEP2(B, LLVMArrayType(L->t_f32, 32), shared_red(f), idx,
	                             2, "");
}

static void barrier(CgFn *f)
{
	LLVMValueRef fn = cg_llvm_decl(f->L, "llvm.nvvm.barrier0",
	                               LLVMFunctionType(f->L->t_void, NULL, 0, 0));
	cg_llvm_call(f->L, fn, NULL, 0);
}

/* v of the lane whose index differs from this one's by the bits of d */
static LLVMValueRef shfl_xor(CgFn *f, LLVMValueRef v, int d)
{
	CgLlvm *L = f->L;
	LLVMTypeRef pt[4] = {L->t_i32, L->t_f32, L->t_i32, L->t_i32};
	LLVMValueRef fn = cg_llvm_decl(L, "llvm.nvvm.shfl.sync.bfly.f32",
	                               LLVMFunctionType(L->t_f32, pt, 4, 0));
	LLVMValueRef args[4] = {LLVMConstInt(L->t_i32, 0xffffffffu, 0), v,
	                        LLVMConstInt(L->t_i32, (unsigned)d, 0),
	                        LLVMConstInt(L->t_i32, 0x1f, 0)};
	return cg_llvm_call(L, fn, args, 4);
}

static LLVMValueRef warp_reduce(CgFn *f, int op, LLVMValueRef v)
{
	for (int d = 16; d >= 1; d /= 2)
		v = combine(f, op, v, shfl_xor(f, v, d));
	return v;
}

/* The op over the block's values of v, in every thread (ntid a multiple
 * of 32; every thread of the block calls it). */
static LLVMValueRef block_reduce(CgFn *f, int op, LLVMValueRef v)
{
	CgLlvm *L = f->L;
	double ident = op == 0 ? 0.0 : -INFINITY;
	v = warp_reduce(f, op, v);
	LLVMValueRef tid = sreg(f, "tid.x"), nt = sreg(f, "ntid.x");
	LLVMValueRef res = var_of(f, L->t_f32, "red");
	LLVMBuildStore(B, v, res);
	LLVMValueRef many = LLVMBuildICmp(B, LLVMIntUGT, nt, i64c(f, 32), "");
	LLVMBasicBlockRef after = if_begin(f, many);
	LLVMValueRef lane = LLVMBuildAnd(B, tid, i64c(f, 31), "");
	LLVMValueRef warp = LLVMBuildLShr(B, tid, i64c(f, 5), "");
	LLVMValueRef nw =
	        LLVMBuildLShr(B, LLVMBuildAdd(B, nt, i64c(f, 31), ""), i64c(f, 5), "");
	LLVMBasicBlockRef a2 =
	        if_begin(f, LLVMBuildICmp(B, LLVMIntEQ, lane, i64c(f, 0), ""));
	LLVMBuildStore(B, v, shared_at(f, warp));
	if_end(f, a2);
	barrier(f);
	LLVMValueRef x = var_of(f, L->t_f32, "x");
	LLVMBuildStore(B, LLVMConstReal(L->t_f32, ident), x);
	LLVMBasicBlockRef a3 = if_begin(f, LLVMBuildICmp(B, LLVMIntULT, lane, nw, ""));
	LLVMBuildStore(B, ld(f, L->t_f32, shared_at(f, lane)), x);
	if_end(f, a3);
	LLVMValueRef w = warp_reduce(f, op, ld(f, L->t_f32, x));
	barrier(f); /* the shared array is reused by the next reduction */
	LLVMBuildStore(B, w, res);
	if_end(f, after);
	return ld(f, L->t_f32, res);
}

/* ---- row kernels ------------------------------------------------------------------------------- */

typedef struct Row {
	LLVMValueRef tid, nt, len;
	int lanes;              /* elements of a slot: 1, or a vector of them */
	int nslot;              /* ROWK / lanes */
	LLVMValueRef reg[ROWK]; /* allocas: the thread's cached slots */
	LLVMValueRef jj[ROWK];  /* their first positions (0 where past the row's end) */
	LLVMValueRef in[ROWK];  /* inside the row; NULL where known to be */
} Row;

/* What a pass does with the value fn returns for each slot. */
enum { ROW_NONE, ROW_KEEP, ROW_STORE };

/* fn(f, o, j, x, in, lanes, user): the lanes elements from j, their cached
 * values x (NULL in the first pass), in (NULL or whether they are inside
 * the row: accumulations must ignore them when false; j is then a valid
 * position of other elements). */
typedef LLVMValueRef (*RowFn)(CgFn *f, GOps *o, LLVMValueRef j, LLVMValueRef x,
                              LLVMValueRef in, int lanes, void *user);

/* A pass over the thread's elements: the cached slots without branches (so
 * that every load is issued before the first result is needed), stores
 * last and guarded; then elements past ROWK * ntid one by one, through the
 * output (the slots cover [0, ROWK * ntid) with either slot width). */
static void row_pass(CgFn *f, GOps *o, Row *r, bool first, RowFn fn, void *user,
                     int mode)
{
	LLVMTypeRef vt = vec_of(f->L->t_f32, r->lanes);
	LLVMValueRef y[ROWK];
	for (int c = 0; c < r->nslot; c++) {
		LLVMValueRef x = first ? NULL : ld(f, vt, r->reg[c]);
		y[c] = fn(f, o, r->jj[c], x, r->in[c], r->lanes, user);
		if (mode == ROW_KEEP && y[c])
			LLVMBuildStore(B, y[c], r->reg[c]);
	}
	for (int c = 0; c < r->nslot && mode == ROW_STORE; c++) {
		LLVMBasicBlockRef after = r->in[c] ? if_begin(f, r->in[c]) : NULL;
		store_view(f, o, 0, r->jj[c], (CgVal){y[c], IR_F32}, r->lanes);
		if (after)
			if_end(f, after);
	}
	Loop lp;
	LLVMValueRef j0 =
	        LLVMBuildAdd(B, r->tid, LLVMBuildMul(B, r->nt, i64c(f, ROWK), ""), "");
	LLVMValueRef j = loop_begin(f, &lp, j0, r->len);
	LLVMValueRef x =
	        first ? NULL : cg_convert(f, load_view(f, o, 0, j, 1), IR_F32, 1).v;
	LLVMValueRef v = fn(f, o, j, x, NULL, 1, user);
	if (mode != ROW_NONE && v)
		store_view(f, o, 0, j, (CgVal){v, IR_F32}, 1);
	loop_end(f, &lp, j, r->nt);
}

typedef struct Acc {
	LLVMValueRef var;
	int op;
	LLVMValueRef a, b; /* constants of the pass (max / mean, rstd) */
} Acc;

/* acc = acc (op) each lane of v, leaving acc as it is where in is false */
static void accumulate(CgFn *f, Acc *a, LLVMValueRef v, LLVMValueRef in, int lanes)
{
	LLVMValueRef cur = ld(f, f->L->t_f32, a->var), nv = cur;
	for (int l = 0; l < lanes; l++)
		nv = combine(f, a->op, nv,
		             lanes == 1 ? v
		                        : LLVMBuildExtractElement(
		                                  B, v, LLVMConstInt(f->L->t_i32, (unsigned)l, 0),
		                                  ""));
	LLVMBuildStore(B, in ? LLVMBuildSelect(B, in, nv, cur, "") : nv, a->var);
}

static LLVMValueRef p_eval(CgFn *f, GOps *o, LLVMValueRef j, LLVMValueRef x,
                           LLVMValueRef in, int lanes, void *user)
{
	LLVMValueRef v = cg_convert(f, eval_at(f, o, j, lanes), IR_F32, lanes).v;
	accumulate(f, user, v, in, lanes);
	return v;
}

static LLVMValueRef p_exp(CgFn *f, GOps *o, LLVMValueRef j, LLVMValueRef x,
                          LLVMValueRef in, int lanes, void *user)
{
	Acc *a = user;
	LLVMValueRef e = cg_math_exp(f, LLVMBuildFSub(B, x, splat(f, a->a, lanes), ""), lanes);
	accumulate(f, a, e, in, lanes);
	return e;
}

static LLVMValueRef p_scale(CgFn *f, GOps *o, LLVMValueRef j, LLVMValueRef x,
                            LLVMValueRef in, int lanes, void *user)
{
	Acc *a = user;
	return LLVMBuildFMul(B, x, splat(f, a->a, lanes), "");
}

static LLVMValueRef p_var(CgFn *f, GOps *o, LLVMValueRef j, LLVMValueRef x,
                          LLVMValueRef in, int lanes, void *user)
{
	Acc *a = user;
	LLVMValueRef d = LLVMBuildFSub(B, x, splat(f, a->a, lanes), "");
	accumulate(f, a, LLVMBuildFMul(B, d, d, ""), in, lanes);
	return NULL;
}

static LLVMValueRef p_norm(CgFn *f, GOps *o, LLVMValueRef j, LLVMValueRef x,
                           LLVMValueRef in, int lanes, void *user)
{
	Acc *a = user;
	LLVMValueRef y = LLVMBuildFMul(B, LLVMBuildFSub(B, x, splat(f, a->a, lanes), ""),
	                               splat(f, a->b, lanes), "");
	CgVal w = cg_convert(f, load_view(f, o, 1, j, lanes), IR_F32, lanes);
	CgVal b = cg_convert(f, load_view(f, o, 2, j, lanes), IR_F32, lanes);
	return cg_fma(f, y, w.v, b.v, lanes);
}

static void acc_init(CgFn *f, Acc *a, int op)
{
	a->op = op;
	if (!a->var)
		a->var = var_of(f, f->L->t_f32, "acc");
	LLVMBuildStore(B, LLVMConstReal(f->L->t_f32, op == 0 ? 0.0 : -INFINITY), a->var);
}

/* The loop over the block's rows, slots of `lanes` elements. guarded:
 * some of a thread's slots may lie past the row's end (the block is wider
 * than len / ROWK). */
static void row_loop(CgFn *f, GOps *o, Row *r, LLVMValueRef rows, bool guarded, int lanes)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	int nd = st->ndim;
	r->lanes = lanes;
	r->nslot = ROWK / lanes;
	for (int c = 0; c < r->nslot; c++) {
		r->reg[c] = var_of(f, vec_of(L->t_f32, lanes), "v");
		LLVMValueRef j =
		        LLVMBuildAdd(B, r->tid, LLVMBuildMul(B, r->nt, i64c(f, c), ""), "");
		j = LLVMBuildMul(B, j, i64c(f, lanes), "");
		r->in[c] = guarded ? LLVMBuildICmp(B, LLVMIntSLT, j, r->len, "") : NULL;
		r->jj[c] = guarded ? LLVMBuildSelect(B, r->in[c], j, i64c(f, 0), "") : j;
	}
	Loop lp;
	LLVMValueRef row = loop_begin(f, &lp, sreg(f, "ctaid.x"), rows);
	row_offsets(f, o, st->dim, nd - 1, row, 0, st->nview);
	Acc a = {0};
	LLVMValueRef one = LLVMConstReal(L->t_f32, 1.0);
	if (st->kind == CG_SOFTMAX) {
		acc_init(f, &a, 1);
		row_pass(f, o, r, true, p_eval, &a, ROW_KEEP);
		a.a = block_reduce(f, 1, ld(f, L->t_f32, a.var));
		acc_init(f, &a, 0);
		row_pass(f, o, r, false, p_exp, &a, ROW_KEEP);
		a.a = LLVMBuildFDiv(B, one, block_reduce(f, 0, ld(f, L->t_f32, a.var)),
		                    "");
		row_pass(f, o, r, false, p_scale, &a, ROW_STORE);
	} else {
		LLVMValueRef lenf = LLVMBuildSIToFP(B, r->len, L->t_f32, "");
		acc_init(f, &a, 0);
		row_pass(f, o, r, true, p_eval, &a, ROW_KEEP);
		a.a = LLVMBuildFDiv(B, block_reduce(f, 0, ld(f, L->t_f32, a.var)), lenf,
		                    "");
		acc_init(f, &a, 0);
		row_pass(f, o, r, false, p_var, &a, ROW_NONE);
		LLVMValueRef var = LLVMBuildFDiv(
		        B, block_reduce(f, 0, ld(f, L->t_f32, a.var)), lenf, "");
		var = LLVMBuildFAdd(B, var, LLVMConstReal(L->t_f32, st->eps), "");
		LLVMValueRef sq = cg_llvm_intrinsic(L, "llvm.sqrt", L->t_f32, NULL, 1);
		a.b = LLVMBuildFDiv(B, one, cg_llvm_call(L, sq, &var, 1), "");
		row_pass(f, o, r, false, p_norm, &a, ROW_STORE);
	}
	loop_end(f, &lp, row, sreg(f, "nctaid.x"));
}

/* cond ? then(lanes a) : then(lanes b), each arm a row loop pair */
static void row_loops(CgFn *f, GOps *o, Row *r, LLVMValueRef rows, int lanes)
{
	CgLlvm *L = f->L;
	/* the launch makes ROWK * ntid >= len where it can: then no slot
	 * needs a guard (the test is the same for the whole block, so both
	 * arms keep their barriers uniform) */
	LLVMValueRef full = LLVMBuildICmp(
	        B, LLVMIntULE, LLVMBuildMul(B, r->nt, i64c(f, ROWK), ""), r->len, "");
	LLVMBasicBlockRef fb = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "full");
	LLVMBasicBlockRef gb = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "guarded");
	LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "rows_done");
	LLVMBuildCondBr(B, full, fb, gb);
	LLVMPositionBuilderAtEnd(B, fb);
	row_loop(f, o, r, rows, false, lanes);
	LLVMBuildBr(B, done);
	LLVMPositionBuilderAtEnd(B, gb);
	row_loop(f, o, r, rows, true, lanes);
	LLVMBuildBr(B, done);
	LLVMPositionBuilderAtEnd(B, done);
}

/* Whether slots of `lanes` elements can be whole vectors: every view read
 * or written along the row contiguous or broadcast (checked here), and at
 * run time (the returned condition) the row length, their addresses and
 * outer strides multiples of the vector. NULL: never. */
static LLVMValueRef vector_rows(CgFn *f, GOps *o, LLVMValueRef len, int lanes)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	if (o->cls[0] != 1)
		return NULL;
	LLVMValueRef bits = LLVMBuildURem(B, len, i64c(f, lanes), "");
	for (int k = 0; k < st->nview; k++) {
		if (!o->ptr[k] && o->cls[k] == 2)
			return NULL;
		if (!o->ptr[k] || o->cls[k] == 0)
			continue;
		if (o->cls[k] != 1)
			return NULL;
		LLVMValueRef a = LLVMBuildPtrToInt(B, o->ptr[k], L->t_i64, "");
		a = LLVMBuildURem(B, a, i64c(f, lanes * cg_gpu_elem_size(o->sty[k])), "");
		bits = LLVMBuildOr(B, bits, a, "");
		for (int d = 0; d + 1 < st->views[k].ndim; d++)
			bits = LLVMBuildOr(
			        B, bits, LLVMBuildURem(B, o->stride[k][d], i64c(f, lanes), ""),
			        "");
	}
	return LLVMBuildICmp(B, LLVMIntEQ, bits, i64c(f, 0), "");
}

static void emit_rows(CgFn *f, GOps *o)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	int nd = st->ndim;
	Row r;
	r.len = cg_dim(f, st->dim[nd - 1]);
	LLVMValueRef rows = i64c(f, 1);
	for (int i = 0; i + 1 < nd; i++)
		rows = LLVMBuildMul(B, rows, cg_dim(f, st->dim[i]), "");
	r.tid = sreg(f, "tid.x");
	r.nt = sreg(f, "ntid.x");
	/* 16-byte slots: eight 16-bit or four f32 elements */
	int lanes = cg_gpu_elem_size(o->sty[0]) == 2 ? 8 : 4;
	LLVMValueRef vec = vector_rows(f, o, r.len, lanes);
	if (!vec) {
		row_loops(f, o, &r, rows, 1);
		return;
	}
	LLVMBasicBlockRef vb = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "vector");
	LLVMBasicBlockRef sb = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "scalar");
	LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "kernel_done");
	LLVMBuildCondBr(B, vec, vb, sb);
	LLVMPositionBuilderAtEnd(B, vb);
	row_loops(f, o, &r, rows, lanes);
	LLVMBuildBr(B, done);
	LLVMPositionBuilderAtEnd(B, sb);
	row_loops(f, o, &r, rows, 1);
	LLVMBuildBr(B, done);
	LLVMPositionBuilderAtEnd(B, done);
}

/* ---- REDUCE: one thread per row ------------------------------------------------------------------- */

static void emit_reduce(CgFn *f, GOps *o)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	int nd = st->ndim;
	LLVMValueRef len = cg_dim(f, st->dim[nd - 1]);
	LLVMValueRef rows = i64c(f, 1);
	for (int i = 0; i + 1 < nd; i++)
		rows = LLVMBuildMul(B, rows, cg_dim(f, st->dim[i]), "");
	IrDType t = st->type == IR_F32 ? IR_F32 : IR_I64;
	int op = st->rop == OP_MAX ? 1 : 0;
	LLVMTypeRef ct = t == IR_F32 ? L->t_f32 : L->t_i64;
	LLVMValueRef acc = var_of(f, ct, "acc");
	LLVMValueRef gstride, r0 = global_id(f, &gstride);
	Loop lp;
	LLVMValueRef row = loop_begin(f, &lp, r0, rows);
	row_offsets(f, o, st->dim, nd - 1, row, 0, st->nview);
	if (t == IR_F32)
		LLVMBuildStore(B, LLVMConstReal(ct, op ? -INFINITY : 0.0), acc);
	else
		LLVMBuildStore(
		        B, LLVMConstInt(ct, op ? (unsigned long long)INT64_MIN : 0, 1),
		        acc);
	Loop jl;
	LLVMValueRef j = loop_begin(f, &jl, i64c(f, 0), len);
	LLVMValueRef v = cg_convert(f, load_view(f, o, 1, j, 1), t, 1).v;
	LLVMValueRef cur = ld(f, ct, acc), nv;
	if (t == IR_F32)
		nv = op ? cg_fmax_nan(f, cur, v) : LLVMBuildFAdd(B, cur, v, "");
	else
		nv = op ? LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, cur, v, ""),
		                          cur, v, "")
		        : LLVMBuildAdd(B, cur, v, "");
	LLVMBuildStore(B, nv, acc);
	loop_end(f, &jl, j, i64c(f, 1));
	CgVal res = {ld(f, ct, acc), t};
	if (st->rop == OP_MEAN) {
		res.v = LLVMBuildFDiv(B, cg_convert(f, res, IR_F32, 1).v,
		                      LLVMBuildSIToFP(B, len, L->t_f32, ""), "");
		res.t = IR_F32;
	}
	gstore(f, o->sty[0], o->ptr[0], o->off[0], res, NULL, 0, 1);
	loop_end(f, &lp, row, gstride);
}

/* ---- GATHER ------------------------------------------------------------------------------------ */

static void emit_gather(CgFn *f, GOps *o)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	const CgView *tv = &st->views[2];
	LLVMValueRef rows = cg_dim(f, st->rows);
	LLVMValueRef d = cg_dim(f, tv->dim[1]);
	LLVMValueRef n = i64c(f, 1);
	for (int i = 0; i < st->ndim; i++)
		n = LLVMBuildMul(B, n, cg_dim(f, st->dim[i]), "");
	LLVMValueRef total = LLVMBuildMul(B, n, d, "");
	LLVMValueRef gstride, e0 = global_id(f, &gstride);
	Loop lp;
	LLVMValueRef e = loop_begin(f, &lp, e0, total);
	LLVMValueRef r = LLVMBuildUDiv(B, e, d, "");
	LLVMValueRef j = LLVMBuildSub(B, e, LLVMBuildMul(B, r, d, ""), "");
	row_offsets(f, o, st->dim, st->ndim, r, 1, 2);
	CgVal id = gload(f, o->sty[1], o->ptr[1], o->off[1], NULL, 0, 1);
	id = cg_convert(f, id, IR_I64, 1);
	LLVMValueRef bad = LLVMBuildICmp(B, LLVMIntUGE, id.v, rows, "");
	LLVMBasicBlockRef fail =
	        LLVMAppendBasicBlockInContext(L->ctx, f->fn, "bad_index");
	LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "copy");
	LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "next");
	LLVMBuildCondBr(B, bad, fail, ok);
	LLVMPositionBuilderAtEnd(B, fail);
	LLVMValueRef wp =
	        LLVMBuildBitCast(B, o->errword, LLVMPointerType(L->t_i32, 0), "");
	LLVMValueRef code = LLVMBuildTrunc(B, LLVMBuildAdd(B, o->object, i64c(f, 1), ""),
	                                   L->t_i32, "");
	LLVMValueRef s = LLVMBuildStore(B, code, wp);
	LLVMSetVolatile(s, 1);
	LLVMBuildBr(B, next);
	LLVMPositionBuilderAtEnd(B, ok);
	o->off[0] = LLVMBuildMul(B, r, d, "");
	o->off[2] = LLVMBuildMul(B, id.v, o->stride[2][0], "");
	CgVal v = load_view(f, o, 2, j, 1);
	store_view(f, o, 0, j, v, 1);
	LLVMBuildBr(B, next);
	LLVMPositionBuilderAtEnd(B, next);
	loop_end(f, &lp, e, gstride);
}

/* ---- entry points -------------------------------------------------------------------------------- */

void cg_gpu_mark_kernel(CgLlvm *L, LLVMValueRef fn)
{
	LLVMValueRef md[3] = {fn, LLVMMDStringInContext(L->ctx, "kernel", 6),
	                      LLVMConstInt(L->t_i32, 1, 0)};
	LLVMAddNamedMetadataOperand(L->mod, "nvvm.annotations",
	                            LLVMMDNodeInContext(L->ctx, md, 3));
}

/* ---- ATTENTION: softmax(expr(Q K^T)) V on the tensor cores ------------------------
 *
 * Flash attention: a block of 4 warps takes 64 queries of one batch (16
 * per warp, one m16n8k16 row tile) and walks the keys 64 at a time. Per
 * key tile: scores by mma.sync from Q fragments (kept in registers) and
 * K pairs loaded straight from memory; the softmax's prologue expression
 * (scale, mask, ...) evaluated on each score as the SOFTMAX kernel would;
 * the online softmax (running max and sum per row, the accumulator
 * rescaled when the max grows); P rounded to 16 bits and multiplied with V
 * by mma.sync. Scores and probabilities never touch memory. Keys past S
 * score -inf (their V rows clamped to S - 1, weight 0); queries past S
 * compute on clamped rows and store nothing. f32 statistics and
 * accumulators; Q, K, V, O bf16 or f16 (gpu_plan.c checks). */

enum { ATT_KEYS = 64, ATT_NT = ATT_KEYS / 8, ATT_MAXD8 = 16 };

typedef struct Att {
	CgFn *f;
	bool f16;
	LLVMValueRef q, k, v, out;     /* i16*: this batch's element 0 */
	LLVMValueRef ldq, ldk, ldv, ldo; /* row strides (elements) */
} Att;

static LLVMTypeRef t_i16(CgFn *f)
{
	return LLVMInt16TypeInContext(f->L->ctx);
}

static LLVMValueRef imin64(CgFn *f, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMValueRef at_elem(CgFn *f, LLVMValueRef base, LLVMValueRef row, LLVMValueRef ld,
                            LLVMValueRef col)
{
	LLVMValueRef e = LLVMBuildAdd(B, LLVMBuildMul(B, row, ld, ""), col, "");
	return LLVMBuildInBoundsGEP2(B, t_i16(f), base, &e, 1, "");
}

/* elements (row, col) and (row, col + 1) as one i32 (col even) */
static LLVMValueRef att_ld32(CgFn *f, LLVMValueRef base, LLVMValueRef row, LLVMValueRef ld,
                             LLVMValueRef col)
{
	LLVMValueRef p = LLVMBuildBitCast(B, at_elem(f, base, row, ld, col),
	                                  LLVMPointerType(f->L->t_i32, 0), "");
	LLVMValueRef x = LLVMBuildLoad2(B, f->L->t_i32, p, "");
	LLVMSetAlignment(x, 4);
	return x;
}

/* lo and hi rounded to 16 bits, lo in the low half */
static LLVMValueRef att_pack(Att *a, LLVMValueRef lo, LLVMValueRef hi)
{
	LLVMValueRef args[2] = {hi, lo};
	return cg_ptx(a->f,
	              a->f16 ? "cvt.rn.f16x2.f32 $0, $1, $2;" : "cvt.rn.bf16x2.f32 $0, $1, $2;",
	              "=r,f,f", a->f->L->t_i32, args, 2, 1);
}

/* c += A B, one m16n8k16 tile: A four and B two registers of 16-bit
 * pairs, c four f32 (PTX's fragment layouts) */
static void att_mma(Att *a, LLVMValueRef c[4], LLVMValueRef A[4], LLVMValueRef Bf[2])
{
	CgFn *f = a->f;
	CgLlvm *L = f->L;
	LLVMTypeRef ft[4] = {L->t_f32, L->t_f32, L->t_f32, L->t_f32};
	LLVMTypeRef rt = LLVMStructTypeInContext(L->ctx, ft, 4, 0);
	LLVMTypeRef at[10];
	LLVMValueRef args[10];
	for (int i = 0; i < 4; i++) {
		at[i] = L->t_i32;
		args[i] = A[i];
		at[6 + i] = L->t_f32;
		args[6 + i] = c[i];
	}
	at[4] = at[5] = L->t_i32;
	args[4] = Bf[0];
	args[5] = Bf[1];
	const char *text = a->f16 ? "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
	                            "{$0,$1,$2,$3}, {$4,$5,$6,$7}, {$8,$9}, {$10,$11,$12,$13};"
	                          : "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
	                            "{$0,$1,$2,$3}, {$4,$5,$6,$7}, {$8,$9}, {$10,$11,$12,$13};";
	const char *cons = "=f,=f,=f,=f,r,r,r,r,r,r,f,f,f,f";
	LLVMTypeRef fty = LLVMFunctionType(rt, at, 10, 0);
	LLVMValueRef fn = LLVMGetInlineAsm(fty, (char *)text, strlen(text), (char *)cons,
	                                   strlen(cons), 0, 0, LLVMInlineAsmDialectATT, 0);
	LLVMValueRef r = LLVMBuildCall2(B, fty, fn, args, 10, "");
	for (int i = 0; i < 4; i++)
		c[i] = LLVMBuildExtractValue(B, r, (unsigned)i, "");
}

/* The block's K and V tiles in shared memory, two of each (the next tile
 * loads while this one is used): ATT_KEYS rows of d elements each, rows
 * d + 8 apart (so that the 8 rows an ldmatrix reads fall in different
 * banks). Buffer b's K at b * 2 * ATT_TILE(d), its V ATT_TILE(d) after. */
#define ATT_TILE(d) (ATT_KEYS * ((d) + 8))
static LLVMValueRef att_smem(CgFn *f, int d)
{
	CgLlvm *L = f->L;
	char name[32];
	snprintf(name, sizeof name, "slapo_att_kv%d", d);
	LLVMValueRef g = LLVMGetNamedGlobal(L->mod, name);
	if (!g) {
		LLVMTypeRef t = LLVMArrayType(t_i16(f), (unsigned)(4 * ATT_TILE(d)));
		g = LLVMAddGlobalInAddressSpace(L->mod, t, name, 3);
		LLVMSetInitializer(g, LLVMGetUndef(t));
		LLVMSetLinkage(g, LLVMInternalLinkage);
		LLVMSetAlignment(g, 16);
	}
	return LLVMBuildBitCast(B, g, LLVMPointerType(t_i16(f), 3), "");
}

/* ldmatrix .x4 (transposed with trans) at the shared address p (i16
 * addrspace(3)*) of this lane's row: four fragment registers */
static void att_ldmatrix(CgFn *f, LLVMValueRef p, bool trans, LLVMValueRef r[4])
{
	CgLlvm *L = f->L;
	LLVMTypeRef it[4] = {L->t_i32, L->t_i32, L->t_i32, L->t_i32};
	LLVMTypeRef rt = LLVMStructTypeInContext(L->ctx, it, 4, 0);
	LLVMTypeRef at = L->t_i64;
	LLVMValueRef addr = LLVMBuildPtrToInt(B, p, L->t_i64, "");
	const char *text = trans ? "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 "
	                           "{$0,$1,$2,$3}, [$4];"
	                         : "ldmatrix.sync.aligned.m8n8.x4.shared.b16 "
	                           "{$0,$1,$2,$3}, [$4];";
	const char *cons = "=r,=r,=r,=r,l,~{memory}";
	LLVMTypeRef fty = LLVMFunctionType(rt, &at, 1, 0);
	/* side effects: it reads what the block stored before the barrier,
	 * so it may not move across barriers or out of the loop */
	LLVMValueRef fn = LLVMGetInlineAsm(fty, (char *)text, strlen(text), (char *)cons,
	                                   strlen(cons), 1, 0, LLVMInlineAsmDialectATT, 0);
	LLVMValueRef v = LLVMBuildCall2(B, fty, fn, &addr, 1, "");
	for (int i = 0; i < 4; i++)
		r[i] = LLVMBuildExtractValue(B, v, (unsigned)i, "");
}

static void att_asm(CgFn *f, const char *text, const char *cons, LLVMValueRef *args, int n)
{
	CgLlvm *L = f->L;
	LLVMTypeRef at[2] = {L->t_i64, L->t_i64};
	LLVMTypeRef fty = LLVMFunctionType(L->t_void, at, (unsigned)n, 0);
	LLVMValueRef fn = LLVMGetInlineAsm(fty, (char *)text, strlen(text), (char *)cons,
	                                   strlen(cons), 1, 0, LLVMInlineAsmDialectATT, 0);
	LLVMBuildCall2(B, fty, fn, args, (unsigned)n, "");
}

/* Starts copying the key tile from key j0 into shared memory (rows past
 * the last key repeat it) with cp.async: 16-byte chunks, the block's
 * threads side by side; one commit group. */
static void att_fill(CgFn *f, LLVMValueRef smem, LLVMValueRef src, LLVMValueRef ld,
                     LLVMValueRef j0, LLVMValueRef last, LLVMValueRef tid, int d)
{
	CgLlvm *L = f->L;
	int per_row = d / 8;
	for (int i = 0; i < ATT_KEYS * per_row / 128; i++) {
		LLVMValueRef id = LLVMBuildAdd(B, tid, i64c(f, 128 * i), "");
		LLVMValueRef r = LLVMBuildUDiv(B, id, i64c(f, per_row), "");
		LLVMValueRef c = LLVMBuildMul(B, LLVMBuildURem(B, id, i64c(f, per_row), ""),
		                              i64c(f, 8), "");
		LLVMValueRef key = imin64(f, LLVMBuildAdd(B, j0, r, ""), last);
		LLVMValueRef e = LLVMBuildAdd(B, LLVMBuildMul(B, r, i64c(f, d + 8), ""), c, "");
		LLVMValueRef a[2] = {
		        LLVMBuildPtrToInt(B, LLVMBuildInBoundsGEP2(B, t_i16(f), smem, &e, 1, ""),
		                          L->t_i64, ""),
		        LLVMBuildPtrToInt(B, at_elem(f, src, key, ld, c), L->t_i64, "")};
		att_asm(f, "cp.async.cg.shared.global [$0], [$1], 16;", "l,l,~{memory}", a, 2);
	}
}

/* op over the 4 lanes of a quad (the threads holding one row) */
static LLVMValueRef quad_reduce(CgFn *f, int op, LLVMValueRef v)
{
	for (int d = 1; d <= 2; d *= 2)
		v = combine(f, op, v, shfl_xor(f, v, d));
	return v;
}

static LLVMValueRef fconst(CgFn *f, double v)
{
	return LLVMConstReal(f->L->t_f32, v);
}

static void emit_attention(CgFn *f, GOps *o)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	Att a = {.f = f, .f16 = o->sty[1] == IR_F16};
	int nd16 = (int)(st->k.coef / 16), nd8 = (int)(st->k.coef / 8);
	LLVMValueRef seq = cg_dim(f, st->m), last = LLVMBuildSub(B, seq, i64c(f, 1), "");
	LLVMValueRef tid = sreg(f, "tid.x");
	LLVMValueRef lane = LLVMBuildAnd(B, tid, i64c(f, 31), "");
	LLVMValueRef g = LLVMBuildLShr(B, lane, i64c(f, 2), "");
	LLVMValueRef t2 = LLVMBuildMul(B, LLVMBuildAnd(B, lane, i64c(f, 3), ""), i64c(f, 2), "");
	a.ldq = cg_dim(f, st->lda);
	a.ldk = cg_dim(f, st->ldb);
	a.ldo = cg_dim(f, st->ldc);
	a.ldv = cg_dim(f, st->ldv);
	LLVMValueRef q0 = LLVMBuildAdd(
	        B, LLVMBuildMul(B, sreg(f, "ctaid.x"), i64c(f, 64), ""),
	        LLVMBuildMul(B, LLVMBuildLShr(B, tid, i64c(f, 5), ""), i64c(f, 16), ""), "");
	LLVMValueRef row[2], rowc[2];
	for (int h = 0; h < 2; h++) {
		row[h] = LLVMBuildAdd(B, q0, LLVMBuildAdd(B, g, i64c(f, 8 * h), ""), "");
		rowc[h] = imin64(f, row[h], last);
	}
	LLVMValueRef nbat = i64c(f, 1);
	for (int i = 0; i < st->nbatch; i++)
		nbat = LLVMBuildMul(B, nbat, cg_dim(f, st->bdim[i]), "");
	LLVMValueRef ntiles =
	        LLVMBuildSDiv(B, LLVMBuildAdd(B, seq, i64c(f, ATT_KEYS - 1), ""), i64c(f, ATT_KEYS), "");
	/* loop-carried state */
	LLVMValueRef vm[2], vl[2], vacc[ATT_MAXD8][4];
	for (int h = 0; h < 2; h++) {
		vm[h] = var_of(f, L->t_f32, "m");
		vl[h] = var_of(f, L->t_f32, "l");
	}
	for (int dn = 0; dn < nd8; dn++)
		for (int e = 0; e < 4; e++)
			vacc[dn][e] = var_of(f, L->t_f32, "acc");

	Loop bl;
	LLVMValueRef bi = loop_begin(f, &bl, sreg(f, "ctaid.y"), nbat);
	/* this batch's Q, K, V, O */
	LLVMValueRef rem = bi, off[4] = {i64c(f, 0), i64c(f, 0), i64c(f, 0), i64c(f, 0)};
	for (int i = st->nbatch - 1; i >= 0; i--) {
		LLVMValueRef idx = rem;
		if (i > 0) {
			LLVMValueRef dd = cg_dim(f, st->bdim[i]);
			LLVMValueRef qq = LLVMBuildUDiv(B, rem, dd, "");
			idx = LLVMBuildSub(B, rem, LLVMBuildMul(B, qq, dd, ""), "");
			rem = qq;
		}
		const IrDim *bs[4] = {&st->bsc[i], &st->bsa[i], &st->bsb[i], &st->bsv[i]};
		for (int k = 0; k < 4; k++)
			off[k] = LLVMBuildAdd(B, off[k], LLVMBuildMul(B, idx, cg_dim(f, *bs[k]), ""),
			                      "");
	}
	LLVMValueRef base[4];
	for (int k = 0; k < 4; k++) {
		LLVMValueRef p = LLVMBuildBitCast(B, o->ptr[k], LLVMPointerType(t_i16(f), 0), "");
		base[k] = LLVMBuildInBoundsGEP2(B, t_i16(f), p, &off[k], 1, "");
	}
	a.out = base[0];
	a.q = base[1];
	a.k = base[2];
	a.v = base[3];
	/* the prologue's operands at each of the thread's two rows */
	LLVMValueRef roff[2][MAXV];
	for (int h = 0; h < 2; h++) {
		LLVMValueRef r = LLVMBuildAdd(B, LLVMBuildMul(B, bi, seq, ""), rowc[h], "");
		row_offsets(f, o, st->dim, st->ndim - 1, r, 4, st->nview);
		for (int k = 4; k < st->nview; k++)
			roff[h][k] = o->off[k];
	}
	/* Q fragments: rows g, g + 8; columns 2t, 2t + 8 of each 16 */
	LLVMValueRef qa[8][4];
	for (int ks = 0; ks < nd16; ks++)
		for (int r = 0; r < 4; r++) {
			LLVMValueRef col = LLVMBuildAdd(B, t2, i64c(f, ks * 16 + (r >= 2 ? 8 : 0)), "");
			qa[ks][r] = att_ld32(f, a.q, rowc[r & 1], a.ldq, col);
		}
	for (int h = 0; h < 2; h++) {
		LLVMBuildStore(B, fconst(f, -INFINITY), vm[h]);
		LLVMBuildStore(B, fconst(f, 0.0), vl[h]);
	}
	for (int dn = 0; dn < nd8; dn++)
		for (int e = 0; e < 4; e++)
			LLVMBuildStore(B, fconst(f, 0.0), vacc[dn][e]);

	int d = (int)st->k.coef;
	LLVMValueRef smk = att_smem(f, d);
	LLVMValueRef mi = LLVMBuildLShr(B, lane, i64c(f, 3), ""); /* ldmatrix: matrix */
	LLVMValueRef mr = LLVMBuildAnd(B, lane, i64c(f, 7), "");  /* and row */
	/* tile 0 into buffer 0; then each step starts the next tile into the
	 * other buffer (past the end: the last keys again, unused) and waits
	 * for this one */
	att_fill(f, smk, a.k, a.ldk, i64c(f, 0), last, tid, d);
	att_fill(f, LLVMBuildInBoundsGEP2(B, t_i16(f), smk, (LLVMValueRef[]){i64c(f, ATT_TILE(d))}, 1, ""),
	         a.v, a.ldv, i64c(f, 0), last, tid, d);
	att_asm(f, "cp.async.commit_group;", "~{memory}", NULL, 0);
	Loop kl;
	LLVMValueRef kt = loop_begin(f, &kl, i64c(f, 0), ntiles);
	LLVMValueRef j0 = LLVMBuildMul(B, kt, i64c(f, ATT_KEYS), "");
	LLVMValueRef cur = LLVMBuildMul(B, LLVMBuildAnd(B, kt, i64c(f, 1), ""),
	                                i64c(f, 2 * ATT_TILE(d)), "");
	LLVMValueRef nxt = LLVMBuildSub(B, i64c(f, 2 * ATT_TILE(d)), cur, "");
	LLVMValueRef nk = LLVMBuildInBoundsGEP2(B, t_i16(f), smk, &nxt, 1, "");
	LLVMValueRef j1 = LLVMBuildAdd(B, j0, i64c(f, ATT_KEYS), "");
	att_fill(f, nk, a.k, a.ldk, j1, last, tid, d);
	att_fill(f, LLVMBuildInBoundsGEP2(B, t_i16(f), nk, (LLVMValueRef[]){i64c(f, ATT_TILE(d))}, 1, ""),
	         a.v, a.ldv, j1, last, tid, d);
	att_asm(f, "cp.async.commit_group;", "~{memory}", NULL, 0);
	att_asm(f, "cp.async.wait_group 1;", "~{memory}", NULL, 0);
	barrier(f); /* every thread's part of this tile is in */
	LLVMValueRef tk = LLVMBuildInBoundsGEP2(B, t_i16(f), smk, &cur, 1, "");
	LLVMValueRef tv = LLVMBuildInBoundsGEP2(B, t_i16(f), tk, (LLVMValueRef[]){i64c(f, ATT_TILE(d))}, 1, "");
	/* scores: s[nt] is the 16 x 8 tile of keys j0 + 8 nt ..; one
	 * ldmatrix.x4 gives the K fragments of tiles nt and nt + 1 */
	LLVMValueRef s[ATT_NT][4];
	for (int nt = 0; nt < ATT_NT; nt++)
		for (int e = 0; e < 4; e++)
			s[nt][e] = fconst(f, 0.0);
	for (int nt = 0; nt < ATT_NT; nt += 2) {
		LLVMValueRef krow = LLVMBuildAdd(
		        B, LLVMBuildMul(B, LLVMBuildLShr(B, mi, i64c(f, 1), ""), i64c(f, 8), ""),
		        LLVMBuildAdd(B, mr, i64c(f, nt * 8), ""), "");
		for (int ks = 0; ks < nd16; ks++) {
			LLVMValueRef col = LLVMBuildAdd(
			        B, LLVMBuildMul(B, LLVMBuildAnd(B, mi, i64c(f, 1), ""), i64c(f, 8), ""),
			        i64c(f, ks * 16), "");
			LLVMValueRef e = LLVMBuildAdd(B, LLVMBuildMul(B, krow, i64c(f, d + 8), ""),
			                              col, "");
			LLVMValueRef fr[4];
			att_ldmatrix(f, LLVMBuildInBoundsGEP2(B, t_i16(f), tk, &e, 1, ""), false, fr);
			att_mma(&a, s[nt], qa[ks], (LLVMValueRef[]){fr[0], fr[1]});
			att_mma(&a, s[nt + 1], qa[ks], (LLVMValueRef[]){fr[2], fr[3]});
		}
	}
	/* the prologue on each score; -inf past the last key */
	const IrNode *sleaf = st->expr.leaf[st->sleaf];
	for (int nt = 0; nt < ATT_NT; nt++)
		for (int e = 0; e < 4; e++) {
			int h = e >> 1;
			LLVMValueRef col = LLVMBuildAdd(
			        B, j0, LLVMBuildAdd(B, t2, i64c(f, nt * 8 + (e & 1)), ""), "");
			for (int k = 4; k < st->nview; k++)
				o->off[k] = roff[h][k];
			o->j = imin64(f, col, last);
			o->lanes = 1;
			o->nmemo = 1;
			o->memo_n[0] = sleaf;
			o->memo_v[0] = (CgVal){s[nt][e], IR_F32};
			LLVMValueRef x = cg_convert(f, eval(f, o, st->expr.root), IR_F32, 1).v;
			s[nt][e] = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, col, seq, ""), x,
			                           fconst(f, -INFINITY), "");
		}
	/* online softmax per row */
	for (int h = 0; h < 2; h++) {
		LLVMValueRef mx = fconst(f, -INFINITY);
		for (int nt = 0; nt < ATT_NT; nt++)
			for (int e = 2 * h; e < 2 * h + 2; e++)
				mx = combine(f, 1, mx, s[nt][e]);
		LLVMValueRef mold = ld(f, L->t_f32, vm[h]);
		LLVMValueRef mnew = combine(f, 1, mold, quad_reduce(f, 1, mx));
		LLVMValueRef inf = LLVMBuildFCmp(B, LLVMRealOEQ, mnew, fconst(f, -INFINITY), "");
		LLVMValueRef bse = LLVMBuildSelect(B, inf, fconst(f, 0.0), mnew, "");
		LLVMValueRef corr = cg_math_exp(f, LLVMBuildFSub(B, mold, bse, ""), 1);
		LLVMValueRef sum = fconst(f, 0.0);
		for (int nt = 0; nt < ATT_NT; nt++)
			for (int e = 2 * h; e < 2 * h + 2; e++) {
				s[nt][e] = cg_math_exp(f, LLVMBuildFSub(B, s[nt][e], bse, ""), 1);
				sum = LLVMBuildFAdd(B, sum, s[nt][e], "");
			}
		LLVMBuildStore(B, cg_fma(f, ld(f, L->t_f32, vl[h]), corr, sum, 1), vl[h]);
		LLVMBuildStore(B, mnew, vm[h]);
		for (int dn = 0; dn < nd8; dn++)
			for (int e = 2 * h; e < 2 * h + 2; e++)
				LLVMBuildStore(B, LLVMBuildFMul(B, ld(f, L->t_f32, vacc[dn][e]), corr, ""),
				               vacc[dn][e]);
	}
	/* O += P V, 16 keys at a time */
	LLVMValueRef acc[ATT_MAXD8][4];
	for (int dn = 0; dn < nd8; dn++)
		for (int e = 0; e < 4; e++)
			acc[dn][e] = ld(f, L->t_f32, vacc[dn][e]);
	for (int kk = 0; kk < ATT_KEYS / 16; kk++) {
		LLVMValueRef pa[4] = {att_pack(&a, s[2 * kk][0], s[2 * kk][1]),
		                      att_pack(&a, s[2 * kk][2], s[2 * kk][3]),
		                      att_pack(&a, s[2 * kk + 1][0], s[2 * kk + 1][1]),
		                      att_pack(&a, s[2 * kk + 1][2], s[2 * kk + 1][3])};
		/* one ldmatrix.x4.trans: the V fragments of dims dn and dn + 1 */
		LLVMValueRef vrow = LLVMBuildAdd(
		        B, LLVMBuildMul(B, LLVMBuildAnd(B, mi, i64c(f, 1), ""), i64c(f, 8), ""),
		        LLVMBuildAdd(B, mr, i64c(f, kk * 16), ""), "");
		for (int dn = 0; dn < nd8; dn += 2) {
			LLVMValueRef col = LLVMBuildMul(
			        B, LLVMBuildAdd(B, LLVMBuildLShr(B, mi, i64c(f, 1), ""), i64c(f, dn), ""),
			        i64c(f, 8), "");
			LLVMValueRef e = LLVMBuildAdd(B, LLVMBuildMul(B, vrow, i64c(f, d + 8), ""),
			                              col, "");
			LLVMValueRef fr[4];
			att_ldmatrix(f, LLVMBuildInBoundsGEP2(B, t_i16(f), tv, &e, 1, ""), true, fr);
			att_mma(&a, acc[dn], pa, (LLVMValueRef[]){fr[0], fr[1]});
			att_mma(&a, acc[dn + 1], pa, (LLVMValueRef[]){fr[2], fr[3]});
		}
	}
	for (int dn = 0; dn < nd8; dn++)
		for (int e = 0; e < 4; e++)
			LLVMBuildStore(B, acc[dn][e], vacc[dn][e]);
	barrier(f); /* this buffer is free for the tile after next */
	loop_end(f, &kl, kt, i64c(f, 1));
	att_asm(f, "cp.async.wait_group 0;", "~{memory}", NULL, 0);

	/* O = acc / sum, rows inside the sequence */
	for (int h = 0; h < 2; h++) {
		LLVMValueRef inv = LLVMBuildFDiv(
		        B, fconst(f, 1.0), quad_reduce(f, 0, ld(f, L->t_f32, vl[h])), "");
		LLVMBasicBlockRef after =
		        if_begin(f, LLVMBuildICmp(B, LLVMIntSLT, row[h], seq, ""));
		for (int dn = 0; dn < nd8; dn++) {
			LLVMValueRef y = att_pack(
			        &a, LLVMBuildFMul(B, ld(f, L->t_f32, vacc[dn][2 * h]), inv, ""),
			        LLVMBuildFMul(B, ld(f, L->t_f32, vacc[dn][2 * h + 1]), inv, ""));
			LLVMValueRef p = LLVMBuildBitCast(
			        B, at_elem(f, a.out, row[h], a.ldo, LLVMBuildAdd(B, t2, i64c(f, dn * 8), "")),
			        LLVMPointerType(L->t_i32, 0), "");
			LLVMSetAlignment(LLVMBuildStore(B, y, p), 4);
		}
		if_end(f, after);
	}
	loop_end(f, &bl, bi, sreg(f, "nctaid.y"));
}

void cg_gpu_limit_regs(CgLlvm *L, LLVMValueRef fn, int regs)
{
	LLVMValueRef md[3] = {fn, LLVMMDStringInContext(L->ctx, "maxnreg", 7),
	                      LLVMConstInt(L->t_i32, (unsigned)regs, 0)};
	LLVMAddNamedMetadataOperand(L->mod, "nvvm.annotations",
	                            LLVMMDNodeInContext(L->ctx, md, 3));
}

bool cg_gpu_emit_kernel(CgLlvm *L, const CgGpu *g, const CgGpuStep *gs, const char *name)
{
	const CgStep *st = gs->st;
	CgFn f;
	GOps *o = ARENA_NEW(g->prog->arena, GOps);
	LLVMValueRef fn = begin_kernel(&f, L, g, st, name, o);
	switch (st->kind) {
	case CG_MAP:
		emit_map(&f, o);
		break;
	case CG_SOFTMAX:
	case CG_LAYER_NORM:
		emit_rows(&f, o);
		break;
	case CG_REDUCE:
		emit_reduce(&f, o);
		break;
	case CG_GATHER:
		emit_gather(&f, o);
		break;
	case CG_ATTENTION:
		emit_attention(&f, o);
		break;
	case CG_GEMM:
		break;
	}
	LLVMBuildRetVoid(L->b);
	cg_fn_end(&f);
	(void)fn;
	if (o->bad) {
		diag_plain(L->diag, DIAG_ERROR,
		           "internal error: GPU kernel %s computes an op it cannot emit",
		           name);
		return false;
	}
	return true;
}

/* slapo_util_ptrs(out, a, sa, sa2, b, sb, sb2, c, sc, sc2, n, total): the
 * matrix addresses of a GEMM with two batch dims, out[i] = a + (i % n) sa +
 * (i / n) sa2, then b's, then c's (strides in bytes), for the runtime's
 * pointer-array GEMM. */
static void emit_ptrs(CgLlvm *L)
{
	LLVMTypeRef pt[12];
	for (int i = 0; i < 12; i++)
		pt[i] = L->t_i64;
	LLVMValueRef fn = LLVMAddFunction(L->mod, "slapo_util_ptrs",
	                                  LLVMFunctionType(L->t_void, pt, 12, 0));
	CgFn fs, *f = &fs;
	memset(f, 0, sizeof *f);
	f->L = L;
	f->fn = fn;
	f->entry = LLVMAppendBasicBlockInContext(L->ctx, fn, "entry");
	LLVMPositionBuilderAtEnd(B, f->entry);
	LLVMValueRef out = LLVMBuildIntToPtr(B, LLVMGetParam(fn, 0), L->t_i64p, "");
	LLVMValueRef n = LLVMGetParam(fn, 10), total = LLVMGetParam(fn, 11);
	LLVMValueRef gstride, e0 = global_id(f, &gstride);
	Loop lp;
	LLVMValueRef e = loop_begin(f, &lp, e0, total);
	LLVMValueRef hi = LLVMBuildUDiv(B, e, n, "");
	LLVMValueRef lo = LLVMBuildSub(B, e, LLVMBuildMul(B, hi, n, ""), "");
	for (int k = 0; k < 3; k++) {
		LLVMValueRef base = LLVMGetParam(fn, (unsigned)(1 + 3 * k));
		LLVMValueRef v = LLVMBuildAdd(
		        B, base,
		        LLVMBuildAdd(
		                B,
		                LLVMBuildMul(B, lo,
		                             LLVMGetParam(fn, (unsigned)(2 + 3 * k)), ""),
		                LLVMBuildMul(B, hi,
		                             LLVMGetParam(fn, (unsigned)(3 + 3 * k)), ""),
		                ""),
		        "");
		LLVMValueRef at =
		        LLVMBuildAdd(B, e, LLVMBuildMul(B, total, i64c(f, k), ""), "");
		LLVMBuildStore(B, v, LLVMBuildInBoundsGEP2(B, L->t_i64, out, &at, 1, ""));
	}
	loop_end(f, &lp, e, gstride);
	LLVMBuildRetVoid(B);
	cg_gpu_mark_kernel(L, fn);
}

/* slapo_util_bias_<t>(c, bias, m, n, ldc): c[i * ldc + j] = bias[j], the
 * runtime's fallback when cuBLASLt has no bias epilogue for a GEMM. */
void cg_gpu_emit_utils(CgLlvm *L)
{
	emit_ptrs(L);
	static const struct {
		const char *name;
		IrDType t;
	} u[3] = {{"slapo_util_bias_f32", IR_F32},
	          {"slapo_util_bias_bf16", IR_BF16},
	          {"slapo_util_bias_f16", IR_F16}};
	for (int k = 0; k < 3; k++) {
		LLVMTypeRef pt[5] = {L->t_i8p, L->t_i8p, L->t_i64, L->t_i64, L->t_i64};
		LLVMValueRef fn = LLVMAddFunction(L->mod, u[k].name,
		                                  LLVMFunctionType(L->t_void, pt, 5, 0));
		CgFn fs, *f = &fs;
		memset(f, 0, sizeof *f);
		f->L = L;
		f->fn = fn;
		f->entry = LLVMAppendBasicBlockInContext(L->ctx, fn, "entry");
		LLVMPositionBuilderAtEnd(B, f->entry);
		LLVMValueRef c = LLVMGetParam(fn, 0), bias = LLVMGetParam(fn, 1);
		LLVMValueRef m = LLVMGetParam(fn, 2), n = LLVMGetParam(fn, 3),
		             ldc = LLVMGetParam(fn, 4);
		LLVMValueRef gstride, e0 = global_id(f, &gstride);
		Loop lp;
		LLVMValueRef e = loop_begin(f, &lp, e0, LLVMBuildMul(B, m, n, ""));
		LLVMValueRef i = LLVMBuildUDiv(B, e, n, "");
		LLVMValueRef j = LLVMBuildSub(B, e, LLVMBuildMul(B, i, n, ""), "");
		LLVMTypeRef et = elem_type(L, u[k].t);
		LLVMValueRef x = LLVMBuildLoad2(B, et, elem_ptr(f, u[k].t, bias, j), "");
		LLVMBuildStore(
		        B, x,
		        elem_ptr(f, u[k].t, c,
		                 LLVMBuildAdd(B, LLVMBuildMul(B, i, ldc, ""), j, "")));
		loop_end(f, &lp, e, gstride);
		LLVMBuildRetVoid(B);
		cg_gpu_mark_kernel(L, fn);
	}
}
