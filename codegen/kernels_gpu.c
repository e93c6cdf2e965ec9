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
 *   ATTENTION   attention_gpu.c, on this file's kernel builder (gpu.h's
 *               cg_gk_ section: CgGkOps, loops, cg_gk_eval, shuffles)
 * Storage types follow the GPU plan (bf16/f16 widened to f32 on load,
 * rounded to nearest even on store).
 */
#include <math.h>
#include <string.h>

#include "codegen/gpu.h"

#define B (f->L->b)

enum {
	VEC = 8,   /* most lanes of a MAP thread: 16 bytes of a 16-bit type */
	ROWK = 16, /* elements a row kernel's thread keeps in registers (vector slots) */
	ROWK1 = 8  /* the same in scalar slots (the fallback: registers capped) */
};

int cg_gpu_kernel_nargs(const CgProgram *prog, const CgStep *st)
{
	return st->nview + prog->nsyms + 2;
}

/* ---- small helpers ------------------------------------------------------------------- */

LLVMValueRef cg_gk_sreg(CgFn *f, const char *name)
{
	char full[96];
	snprintf(full, sizeof full, "llvm.nvvm.read.ptx.sreg.%s", name);
	LLVMValueRef fn =
	        cg_llvm_decl(f->L, full, LLVMFunctionType(f->L->t_i32, NULL, 0, 0));
	return LLVMBuildZExt(B, cg_llvm_call(f->L, fn, NULL, 0), f->L->t_i64, "");
}

LLVMValueRef cg_gk_ld(CgFn *f, LLVMTypeRef t, LLVMValueRef p)
{
	return LLVMBuildLoad2(B, t, p, "");
}

/* if (cond) { ...: returns the block after; the builder is in the then-block */
LLVMBasicBlockRef cg_gk_if_begin(CgFn *f, LLVMValueRef cond)
{
	LLVMContextRef c = f->L->ctx;
	LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c, f->fn, "then");
	LLVMBasicBlockRef after = LLVMAppendBasicBlockInContext(c, f->fn, "endif");
	LLVMBuildCondBr(B, cond, then, after);
	LLVMPositionBuilderAtEnd(B, then);
	return after;
}

void cg_gk_if_end(CgFn *f, LLVMBasicBlockRef after)
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

static LLVMValueRef splat_int(LLVMTypeRef t, uint64_t v, int lanes)
{
	return cg_splat_const(LLVMConstInt(t, v, 0), lanes);
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
		r.v = LLVMBuildICmp(B, LLVMIntNE, x, splat_int(L->t_i8, 0, lanes), "");
		break;
	case IR_BF16: {
		LLVMValueRef w = LLVMBuildZExt(B, x, vec_of(L->t_i32, lanes), "");
		w = LLVMBuildShl(B, w, splat_int(L->t_i32, 16, lanes), "");
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
	LLVMValueRef hi = cg_splat(f, LLVMConstReal(f->L->t_f32, max), lanes);
	LLVMValueRef lo = cg_splat(f, LLVMConstReal(f->L->t_f32, -max), lanes);
	LLVMValueRef inf = cg_splat(f, LLVMConstReal(f->L->t_f32, INFINITY), lanes);
	/* clamped (NVPTX: min.NaN, max.NaN), then infinities put back */
	LLVMValueRef c = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, x, hi, ""), hi, x, "");
	c = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, c, lo, ""), lo, c, "");
	LLVMValueRef fn = cg_llvm_intrinsic(f->L, "llvm.fabs", LLVMTypeOf(x), NULL, 1);
	LLVMValueRef isinf = LLVMBuildFCmp(B, LLVMRealOEQ, cg_llvm_call(f->L, fn, &x, 1), inf, "");
	return LLVMBuildSelect(B, isinf, x, c, "");
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
		        LLVMBuildLShr(B, u, splat_int(L->t_i32, 16, lanes), "");
		LLVMValueRef odd =
		        LLVMBuildAnd(B, hi, splat_int(L->t_i32, 1, lanes), "");
		LLVMValueRef r =
		        LLVMBuildAdd(B, u, splat_int(L->t_i32, 0x7fff, lanes), "");
		r = LLVMBuildLShr(B, LLVMBuildAdd(B, r, odd, ""),
		                  splat_int(L->t_i32, 16, lanes), "");
		LLVMValueRef nan = LLVMBuildFCmp(B, LLVMRealUNO, x, x, "");
		LLVMValueRef q =
		        LLVMBuildOr(B, hi, splat_int(L->t_i32, 0x40, lanes), "");
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

/* Contiguous bf16 vectors on NVPTX move as 32-bit words, two elements a
 * word: eight are one 16-byte ld/st.v4.b32 (LLVM splits an <8 x i16>
 * access into two 8-byte ones), a word widens by a shift and a mask, and
 * two elements round into one by cvt.rn.bf16x2.f32. */
static bool bf16_words(CgFn *f, IrDType st, int cls, int lanes)
{
	return f->L->nvptx && st == IR_BF16 && cls == 1 && lanes > 1 && lanes % 2 == 0;
}

static LLVMValueRef word_ptr(CgFn *f, LLVMValueRef base, LLVMValueRef off, int lanes)
{
	CgLlvm *L = f->L;
	LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx);
	LLVMValueRef p = LLVMBuildBitCast(B, base, LLVMPointerType(i16, 0), "");
	p = LLVMBuildInBoundsGEP2(B, i16, p, &off, 1, "");
	return LLVMBuildBitCast(
	        B, p, LLVMPointerType(LLVMVectorType(L->t_i32, (unsigned)lanes / 2), 0), "");
}

static CgVal load_bf16_words(CgFn *f, LLVMValueRef base, LLVMValueRef off, int lanes)
{
	CgLlvm *L = f->L;
	int n = lanes / 2;
	LLVMTypeRef wt = LLVMVectorType(L->t_i32, (unsigned)n);
	LLVMValueRef w = LLVMBuildLoad2(B, wt, word_ptr(f, base, off, lanes), "");
	LLVMSetAlignment(w, 2u * (unsigned)lanes);
	LLVMTypeRef ft = LLVMVectorType(L->t_f32, (unsigned)n);
	LLVMValueRef lo = LLVMBuildBitCast(B, LLVMBuildShl(B, w, splat_int(L->t_i32, 16, n), ""),
	                                   ft, "");
	LLVMValueRef hi = LLVMBuildBitCast(
	        B, LLVMBuildAnd(B, w, splat_int(L->t_i32, 0xffff0000u, n), ""), ft, "");
	LLVMValueRef idx[VEC];
	for (int i = 0; i < lanes; i++) /* element 2i is word i's low half */
		idx[i] = LLVMConstInt(L->t_i32, (unsigned)(i / 2 + (i % 2) * n), 0);
	CgVal r = {LLVMBuildShuffleVector(B, lo, hi, LLVMConstVector(idx, (unsigned)lanes), ""),
	           IR_F32};
	return r;
}

static void store_bf16_words(CgFn *f, LLVMValueRef base, LLVMValueRef off, CgVal v,
                             int lanes)
{
	CgLlvm *L = f->L;
	int n = lanes / 2;
	LLVMValueRef x = saturate(f, cg_convert(f, v, IR_F32, lanes).v, BF16_MAX, lanes);
	LLVMValueRef w = LLVMGetUndef(LLVMVectorType(L->t_i32, (unsigned)n));
	for (int i = 0; i < n; i++) {
		/* cvt.rn.bf16x2.f32 d, a, b: a into the high half, b the low */
		LLVMValueRef ab[2] = {
		        LLVMBuildExtractElement(B, x, LLVMConstInt(L->t_i32, 2u * i + 1, 0), ""),
		        LLVMBuildExtractElement(B, x, LLVMConstInt(L->t_i32, 2u * i, 0), "")};
		w = LLVMBuildInsertElement(
		        B, w, cg_ptx(f, "cvt.rn.bf16x2.f32 $0, $1, $2;", "=r,f,f", L->t_i32, ab, 2, 1),
		        LLVMConstInt(L->t_i32, (unsigned)i, 0), "");
	}
	LLVMSetAlignment(LLVMBuildStore(B, w, word_ptr(f, base, off, lanes)), 2u * (unsigned)lanes);
}

/* lanes elements at base[off + i * stride] (cls 0: one, splatted; 1:
 * contiguous, one aligned vector access; 2: `stride` apart) */
static CgVal gload(CgFn *f, IrDType st, LLVMValueRef base, LLVMValueRef off,
                   LLVMValueRef stride, int cls, int lanes)
{
	LLVMTypeRef et = elem_type(f->L, st);
	unsigned esz = (unsigned)cg_gpu_elem_size(st);
	if (bf16_words(f, st, cls, lanes))
		return load_bf16_words(f, base, off, lanes);
	LLVMValueRef p = LLVMBuildBitCast(B, base, LLVMPointerType(et, 0), "");
	return widen(f, st, cg_load_lanes(f, et, p, off, stride, cls, lanes, esz, esz * (unsigned)lanes),
	             lanes);
}

static void gstore(CgFn *f, IrDType st, LLVMValueRef base, LLVMValueRef off, CgVal v,
                   LLVMValueRef stride, int cls, int lanes)
{
	LLVMTypeRef et = elem_type(f->L, st);
	unsigned esz = (unsigned)cg_gpu_elem_size(st);
	if (bf16_words(f, st, cls, lanes)) {
		store_bf16_words(f, base, off, v, lanes);
		return;
	}
	LLVMValueRef p = LLVMBuildBitCast(B, base, LLVMPointerType(et, 0), "");
	cg_store_lanes(f, narrow(f, st, v, lanes), et, p, off, stride, cls, lanes, esz,
	               esz * (unsigned)lanes);
}

/* ---- operands ------------------------------------------------------------------------------ */

static int stride_class(IrDim s)
{
	return cg_dim_is(s, 0) ? 0 : cg_dim_is(s, 1) ? 1 : 2;
}

/* The kernel's function and its parameters; f->sym set up. */
static LLVMValueRef begin_kernel(CgFn *f, CgLlvm *L, const CgGpu *g, const CgStep *st,
                                 const char *name, CgGkOps *o)
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
		        LLVMBuildArrayAlloca(B, L->t_i64, cg_i64(f, p->nsyms), "sym");
		for (int s = 0; s < p->nsyms; s++) {
			LLVMValueRef idx = cg_i64(f, s);
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
void cg_gk_row_offsets(CgFn *f, CgGkOps *o, const IrDim *dim, int nouter, LLVMValueRef r,
                       int k0, int k1)
{
	for (int k = k0; k < k1; k++)
		o->off[k] = cg_i64(f, 0);
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

static LLVMValueRef at(CgFn *f, CgGkOps *o, int k, LLVMValueRef j)
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

static CgVal load_view(CgFn *f, CgGkOps *o, int k, LLVMValueRef j, int lanes)
{
	int last = o->st->views[k].ndim - 1;
	return gload(f, o->sty[k], o->ptr[k], at(f, o, k, j),
	             last >= 0 ? o->stride[k][last] : NULL, o->cls[k], lanes);
}

static void store_view(CgFn *f, CgGkOps *o, int k, LLVMValueRef j, CgVal v, int lanes)
{
	int last = o->st->views[k].ndim - 1;
	gstore(f, o->sty[k], o->ptr[k], at(f, o, k, j), v,
	       last >= 0 ? o->stride[k][last] : NULL, o->cls[k], lanes);
}

/* ---- expressions (as kernels.c) ------------------------------------------------------------ */

/* a leaf of the expression: view k at o->x.j (an index view: the index) */
static CgVal leaf(CgFn *f, CgEval *x, int k, const IrNode *n)
{
	CgGkOps *o = (CgGkOps *)((char *)x - offsetof(CgGkOps, x));
	return o->ptr[k] ? load_view(f, o, k, x->j, x->lanes)
	                 : cg_eval_index(f, at(f, o, k, x->j), o->cls[k],
	                                 o->stride[k][o->st->views[k].ndim - 1], n->dtype, x->lanes);
}

CgVal cg_gk_eval(CgFn *f, CgGkOps *o, const IrNode *n)
{
	o->x.expr = &o->st->expr;
	o->x.leaf = leaf;
	return cg_eval(f, &o->x, n);
}

static CgVal eval_at(CgFn *f, CgGkOps *o, LLVMValueRef j, int lanes)
{
	o->x.j = j;
	o->x.lanes = lanes;
	o->x.nmemo = 0;
	return cg_gk_eval(f, o, o->st->expr.root);
}

/* ---- MAP ----------------------------------------------------------------------------------- */

static LLVMValueRef global_id(CgFn *f, LLVMValueRef *stride)
{
	LLVMValueRef nt = cg_gk_sreg(f, "ntid.x");
	*stride = LLVMBuildMul(B, cg_gk_sreg(f, "nctaid.x"), nt, "");
	return LLVMBuildAdd(B, LLVMBuildMul(B, cg_gk_sreg(f, "ctaid.x"), nt, ""),
	                    cg_gk_sreg(f, "tid.x"), "");
}

static void map_elems(CgFn *f, CgGkOps *o, LLVMValueRef limit, LLVMValueRef len,
                      int lanes)
{
	const CgStep *st = o->st;
	LLVMValueRef gstride, u0 = global_id(f, &gstride);
	CgLoop lp;
	LLVMValueRef u = cg_loop_begin(f, &lp, u0, limit);
	LLVMValueRef lin = lanes > 1 ? LLVMBuildMul(B, u, cg_i64(f, lanes), "") : u;
	LLVMValueRef row = LLVMBuildUDiv(B, lin, len, "");
	LLVMValueRef j = LLVMBuildSub(B, lin, LLVMBuildMul(B, row, len, ""), "");
	cg_gk_row_offsets(f, o, st->dim, st->ndim - 1, row, 0, st->nview);
	CgVal v = eval_at(f, o, j, lanes);
	store_view(f, o, 0, j, v, lanes);
	cg_loop_end(f, &lp, u, gstride);
}

/* Lanes of a 16-byte vector of the output: four f32 or eight 16-bit. */
static int vec_lanes(const CgGkOps *o)
{
	return cg_gpu_elem_size(o->sty[0]) == 2 ? VEC : VEC / 2;
}

/* The run-time test that `lanes` consecutive elements of every view can be
 * one vector access: the row length, and each contiguous view's address
 * and outer strides, multiples of the vector. Views along another stride
 * are read lane by lane when `strided` (MAP), else make it impossible (row
 * slots). NULL: never possible. */
static LLVMValueRef vector_ok(CgFn *f, CgGkOps *o, LLVMValueRef len, int lanes, bool strided)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	if (o->cls[0] == 0 || (!strided && o->cls[0] != 1))
		return NULL;
	LLVMValueRef bits = LLVMBuildURem(B, len, cg_i64(f, lanes), "");
	for (int k = 0; k < st->nview; k++) {
		if (o->cls[k] == 2 && !strided)
			return NULL;
		if (!o->ptr[k] || o->cls[k] != 1)
			continue;
		LLVMValueRef a = LLVMBuildPtrToInt(B, o->ptr[k], L->t_i64, "");
		a = LLVMBuildURem(B, a,
		                  cg_i64(f, lanes * cg_gpu_elem_size(o->sty[k])), "");
		bits = LLVMBuildOr(B, bits, a, "");
		for (int d = 0; d + 1 < st->views[k].ndim; d++)
			bits = LLVMBuildOr(B, bits,
			                   LLVMBuildURem(B, o->stride[k][d],
			                                 cg_i64(f, lanes), ""),
			                   "");
	}
	return LLVMBuildICmp(B, LLVMIntEQ, bits, cg_i64(f, 0), "");
}

/* body(lanes) when ok (uniform over the block) holds, else body(1); only
 * body(1) when ok is NULL. */
typedef void (*LanesFn)(CgFn *f, CgGkOps *o, void *ctx, int lanes);

static void by_lanes(CgFn *f, CgGkOps *o, LLVMValueRef ok, int lanes, LanesFn body,
                     void *ctx)
{
	CgLlvm *L = f->L;
	if (!ok) {
		body(f, o, ctx, 1);
		return;
	}
	LLVMBasicBlockRef vb = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "vector");
	LLVMBasicBlockRef sb = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "scalar");
	LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "lanes_done");
	LLVMBuildCondBr(B, ok, vb, sb);
	LLVMPositionBuilderAtEnd(B, vb);
	body(f, o, ctx, lanes);
	LLVMBuildBr(B, done);
	LLVMPositionBuilderAtEnd(B, sb);
	body(f, o, ctx, 1);
	LLVMBuildBr(B, done);
	LLVMPositionBuilderAtEnd(B, done);
}

typedef struct MapCtx {
	LLVMValueRef total, len;
} MapCtx;

static void map_body(CgFn *f, CgGkOps *o, void *ctx, int lanes)
{
	MapCtx *m = ctx;
	LLVMValueRef n =
	        lanes > 1 ? LLVMBuildUDiv(B, m->total, cg_i64(f, lanes), "") : m->total;
	map_elems(f, o, n, m->len, lanes);
}

static void emit_map(CgFn *f, CgGkOps *o)
{
	const CgStep *st = o->st;
	int nd = st->ndim;
	MapCtx m = {.total = cg_i64(f, 1), .len = cg_dim(f, st->dim[nd - 1])};
	for (int i = 0; i < nd; i++)
		m.total = LLVMBuildMul(B, m.total, cg_dim(f, st->dim[i]), "");
	/* 16 bytes of the output at a time when every contiguous view allows it */
	int lanes = vec_lanes(o);
	by_lanes(f, o, vector_ok(f, o, m.len, lanes, true), lanes, map_body, &m);
}

/* ---- block reductions ------------------------------------------------------------------------ */

LLVMValueRef cg_gk_combine(CgFn *f, int op, LLVMValueRef a, LLVMValueRef b)
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
	LLVMValueRef idx[2] = {cg_i64(f, 0), i};
	return LLVMBuildInBoundsGEP2(B, LLVMArrayType(L->t_f32, 32), shared_red(f), idx,
	                             2, "");
}

void cg_gk_barrier(CgFn *f)
{
	LLVMValueRef fn = cg_llvm_decl(f->L, "llvm.nvvm.barrier0",
	                               LLVMFunctionType(f->L->t_void, NULL, 0, 0));
	cg_llvm_call(f->L, fn, NULL, 0);
}

/* v of the lane whose index differs from this one's by the bits of d */
LLVMValueRef cg_gk_shfl_xor(CgFn *f, LLVMValueRef v, int d)
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
		v = cg_gk_combine(f, op, v, cg_gk_shfl_xor(f, v, d));
	return v;
}

/* The op over the block's values of v, in every thread (ntid a multiple
 * of 32; every thread of the block calls it). */
static LLVMValueRef block_reduce(CgFn *f, int op, LLVMValueRef v)
{
	CgLlvm *L = f->L;
	double ident = op == 0 ? 0.0 : -INFINITY;
	v = warp_reduce(f, op, v);
	LLVMValueRef tid = cg_gk_sreg(f, "tid.x"), nt = cg_gk_sreg(f, "ntid.x");
	LLVMValueRef res = cg_var_of(f, L->t_f32, "red");
	LLVMBuildStore(B, v, res);
	LLVMValueRef many = LLVMBuildICmp(B, LLVMIntUGT, nt, cg_i64(f, 32), "");
	LLVMBasicBlockRef after = cg_gk_if_begin(f, many);
	LLVMValueRef lane = LLVMBuildAnd(B, tid, cg_i64(f, 31), "");
	LLVMValueRef warp = LLVMBuildLShr(B, tid, cg_i64(f, 5), "");
	LLVMValueRef nw = LLVMBuildLShr(B, LLVMBuildAdd(B, nt, cg_i64(f, 31), ""),
	                                cg_i64(f, 5), "");
	LLVMBasicBlockRef a2 = cg_gk_if_begin(
	        f, LLVMBuildICmp(B, LLVMIntEQ, lane, cg_i64(f, 0), ""));
	LLVMBuildStore(B, v, shared_at(f, warp));
	cg_gk_if_end(f, a2);
	cg_gk_barrier(f);
	LLVMValueRef x = cg_var_of(f, L->t_f32, "x");
	LLVMBuildStore(B, LLVMConstReal(L->t_f32, ident), x);
	LLVMBasicBlockRef a3 =
	        cg_gk_if_begin(f, LLVMBuildICmp(B, LLVMIntULT, lane, nw, ""));
	LLVMBuildStore(B, cg_gk_ld(f, L->t_f32, shared_at(f, lane)), x);
	cg_gk_if_end(f, a3);
	LLVMValueRef w = warp_reduce(f, op, cg_gk_ld(f, L->t_f32, x));
	cg_gk_barrier(f); /* the shared array is reused by the next reduction */
	LLVMBuildStore(B, w, res);
	cg_gk_if_end(f, after);
	return cg_gk_ld(f, L->t_f32, res);
}

/* ---- row kernels ------------------------------------------------------------------------------- */

typedef struct Row {
	LLVMValueRef tid, nt, len;
	int lanes;              /* elements of a slot: 1, or a vector of them */
	int nslot;              /* ROWK / lanes, or ROWK1 scalar slots */
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
typedef LLVMValueRef (*RowFn)(CgFn *f, CgGkOps *o, LLVMValueRef j, LLVMValueRef x,
                              LLVMValueRef in, int lanes, void *user);

/* A pass over the thread's elements: the cached slots without branches (so
 * that every load is issued before the first result is needed), stores
 * last and guarded; then elements past nslot * lanes * ntid one by one,
 * through the output (the slots cover [0, nslot * lanes * ntid)). */
static void row_pass(CgFn *f, CgGkOps *o, Row *r, bool first, RowFn fn, void *user,
                     int mode)
{
	LLVMTypeRef vt = vec_of(f->L->t_f32, r->lanes);
	LLVMValueRef y[ROWK];
	for (int c = 0; c < r->nslot; c++) {
		LLVMValueRef x = first ? NULL : cg_gk_ld(f, vt, r->reg[c]);
		y[c] = fn(f, o, r->jj[c], x, r->in[c], r->lanes, user);
		if (mode == ROW_KEEP && y[c])
			LLVMBuildStore(B, y[c], r->reg[c]);
	}
	for (int c = 0; c < r->nslot && mode == ROW_STORE; c++) {
		LLVMBasicBlockRef after = r->in[c] ? cg_gk_if_begin(f, r->in[c]) : NULL;
		store_view(f, o, 0, r->jj[c], (CgVal){y[c], IR_F32}, r->lanes);
		if (after)
			cg_gk_if_end(f, after);
	}
	CgLoop lp;
	LLVMValueRef j0 = LLVMBuildAdd(
	        B, r->tid, LLVMBuildMul(B, r->nt, cg_i64(f, r->nslot * r->lanes), ""), "");
	LLVMValueRef j = cg_loop_begin(f, &lp, j0, r->len);
	LLVMValueRef x =
	        first ? NULL : cg_convert(f, load_view(f, o, 0, j, 1), IR_F32, 1).v;
	LLVMValueRef v = fn(f, o, j, x, NULL, 1, user);
	if (mode != ROW_NONE && v)
		store_view(f, o, 0, j, (CgVal){v, IR_F32}, 1);
	cg_loop_end(f, &lp, j, r->nt);
}

typedef struct Acc {
	LLVMValueRef var;
	int op;
	LLVMValueRef a, b; /* constants of the pass (max / mean, rstd) */
} Acc;

/* acc = acc (op) each lane of v, leaving acc as it is where in is false */
static void accumulate(CgFn *f, Acc *a, LLVMValueRef v, LLVMValueRef in, int lanes)
{
	LLVMValueRef cur = cg_gk_ld(f, f->L->t_f32, a->var), nv = cur;
	for (int l = 0; l < lanes; l++)
		nv = cg_gk_combine(
		        f, a->op, nv,
		        lanes == 1
		                ? v
		                : LLVMBuildExtractElement(
		                          B, v, LLVMConstInt(f->L->t_i32, (unsigned)l, 0),
		                          ""));
	LLVMBuildStore(B, in ? LLVMBuildSelect(B, in, nv, cur, "") : nv, a->var);
}

static LLVMValueRef p_eval(CgFn *f, CgGkOps *o, LLVMValueRef j, LLVMValueRef x,
                           LLVMValueRef in, int lanes, void *user)
{
	LLVMValueRef v = cg_convert(f, eval_at(f, o, j, lanes), IR_F32, lanes).v;
	accumulate(f, user, v, in, lanes);
	return v;
}

static LLVMValueRef p_exp(CgFn *f, CgGkOps *o, LLVMValueRef j, LLVMValueRef x,
                          LLVMValueRef in, int lanes, void *user)
{
	Acc *a = user;
	LLVMValueRef e = cg_math_exp(f, LLVMBuildFSub(B, x, cg_splat(f, a->a, lanes), ""), lanes);
	accumulate(f, a, e, in, lanes);
	return e;
}

static LLVMValueRef p_scale(CgFn *f, CgGkOps *o, LLVMValueRef j, LLVMValueRef x,
                            LLVMValueRef in, int lanes, void *user)
{
	Acc *a = user;
	return LLVMBuildFMul(B, x, cg_splat(f, a->a, lanes), "");
}

static LLVMValueRef p_var(CgFn *f, CgGkOps *o, LLVMValueRef j, LLVMValueRef x,
                          LLVMValueRef in, int lanes, void *user)
{
	Acc *a = user;
	LLVMValueRef d = LLVMBuildFSub(B, x, cg_splat(f, a->a, lanes), "");
	accumulate(f, a, LLVMBuildFMul(B, d, d, ""), in, lanes);
	return NULL;
}

static LLVMValueRef p_norm(CgFn *f, CgGkOps *o, LLVMValueRef j, LLVMValueRef x,
                           LLVMValueRef in, int lanes, void *user)
{
	Acc *a = user;
	LLVMValueRef y = LLVMBuildFMul(B, LLVMBuildFSub(B, x, cg_splat(f, a->a, lanes), ""),
	                               cg_splat(f, a->b, lanes), "");
	CgVal w = cg_convert(f, load_view(f, o, 1, j, lanes), IR_F32, lanes);
	CgVal b = cg_convert(f, load_view(f, o, 2, j, lanes), IR_F32, lanes);
	return cg_fma(f, y, w.v, b.v, lanes);
}

static void acc_init(CgFn *f, Acc *a, int op)
{
	a->op = op;
	if (!a->var)
		a->var = cg_var_of(f, f->L->t_f32, "acc");
	LLVMBuildStore(B, LLVMConstReal(f->L->t_f32, op == 0 ? 0.0 : -INFINITY), a->var);
}

/* The loop over the block's rows, slots of `lanes` elements. guarded:
 * some of a thread's slots may lie past the row's end (the block is wider
 * than len / ROWK). */
static void row_loop(CgFn *f, CgGkOps *o, Row *r, LLVMValueRef rows, bool guarded,
                     int lanes)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	int nd = st->ndim;
	r->lanes = lanes;
	r->nslot = lanes == 1 ? ROWK1 : ROWK / lanes;
	for (int c = 0; c < r->nslot; c++) {
		r->reg[c] = cg_var_of(f, vec_of(L->t_f32, lanes), "v");
		LLVMValueRef j = LLVMBuildAdd(
		        B, r->tid, LLVMBuildMul(B, r->nt, cg_i64(f, c), ""), "");
		j = LLVMBuildMul(B, j, cg_i64(f, lanes), "");
		r->in[c] = guarded ? LLVMBuildICmp(B, LLVMIntSLT, j, r->len, "") : NULL;
		r->jj[c] = guarded ? LLVMBuildSelect(B, r->in[c], j, cg_i64(f, 0), "")
		                   : j;
	}
	CgLoop lp;
	LLVMValueRef row = cg_loop_begin(f, &lp, cg_gk_sreg(f, "ctaid.x"), rows);
	cg_gk_row_offsets(f, o, st->dim, nd - 1, row, 0, st->nview);
	Acc a = {0};
	LLVMValueRef one = LLVMConstReal(L->t_f32, 1.0);
	if (st->kind == CG_SOFTMAX) {
		acc_init(f, &a, 1);
		row_pass(f, o, r, true, p_eval, &a, ROW_KEEP);
		a.a = block_reduce(f, 1, cg_gk_ld(f, L->t_f32, a.var));
		acc_init(f, &a, 0);
		row_pass(f, o, r, false, p_exp, &a, ROW_KEEP);
		a.a = LLVMBuildFDiv(B, one,
		                    block_reduce(f, 0, cg_gk_ld(f, L->t_f32, a.var)), "");
		row_pass(f, o, r, false, p_scale, &a, ROW_STORE);
	} else {
		LLVMValueRef lenf = LLVMBuildSIToFP(B, r->len, L->t_f32, "");
		acc_init(f, &a, 0);
		row_pass(f, o, r, true, p_eval, &a, ROW_KEEP);
		a.a = LLVMBuildFDiv(B, block_reduce(f, 0, cg_gk_ld(f, L->t_f32, a.var)),
		                    lenf, "");
		acc_init(f, &a, 0);
		row_pass(f, o, r, false, p_var, &a, ROW_NONE);
		LLVMValueRef var = LLVMBuildFDiv(
		        B, block_reduce(f, 0, cg_gk_ld(f, L->t_f32, a.var)), lenf, "");
		var = LLVMBuildFAdd(B, var, LLVMConstReal(L->t_f32, st->eps), "");
		LLVMValueRef sq = cg_llvm_intrinsic(L, "llvm.sqrt", L->t_f32, NULL, 1);
		a.b = LLVMBuildFDiv(B, one, cg_llvm_call(L, sq, &var, 1), "");
		row_pass(f, o, r, false, p_norm, &a, ROW_STORE);
	}
	cg_loop_end(f, &lp, row, cg_gk_sreg(f, "nctaid.x"));
}

/* cond ? then(lanes a) : then(lanes b), each arm a row loop pair */
static void row_loops(CgFn *f, CgGkOps *o, Row *r, LLVMValueRef rows, int lanes)
{
	CgLlvm *L = f->L;
	/* the launch makes ROWK * ntid >= len where it can: then no slot
	 * needs a guard (the test is the same for the whole block, so both
	 * arms keep their barriers uniform) */
	LLVMValueRef full = LLVMBuildICmp(B, LLVMIntULE,
	                                  LLVMBuildMul(B, r->nt, cg_i64(f, ROWK), ""),
	                                  r->len, "");
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

typedef struct RowsCtx {
	Row *r;
	LLVMValueRef rows;
} RowsCtx;

static void rows_body(CgFn *f, CgGkOps *o, void *ctx, int lanes)
{
	RowsCtx *c = ctx;
	row_loops(f, o, c->r, c->rows, lanes);
}

static void emit_rows(CgFn *f, CgGkOps *o)
{
	const CgStep *st = o->st;
	int nd = st->ndim;
	Row r;
	r.len = cg_dim(f, st->dim[nd - 1]);
	LLVMValueRef rows = cg_i64(f, 1);
	for (int i = 0; i + 1 < nd; i++)
		rows = LLVMBuildMul(B, rows, cg_dim(f, st->dim[i]), "");
	r.tid = cg_gk_sreg(f, "tid.x");
	r.nt = cg_gk_sreg(f, "ntid.x");
	/* 16-byte slots when every view allows them */
	int lanes = vec_lanes(o);
	RowsCtx c = {&r, rows};
	by_lanes(f, o, vector_ok(f, o, r.len, lanes, false), lanes, rows_body, &c);
}

/* ---- REDUCE: one thread per row ------------------------------------------------------------------- */

static void emit_reduce(CgFn *f, CgGkOps *o)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	int nd = st->ndim;
	LLVMValueRef len = cg_dim(f, st->dim[nd - 1]);
	LLVMValueRef rows = cg_i64(f, 1);
	for (int i = 0; i + 1 < nd; i++)
		rows = LLVMBuildMul(B, rows, cg_dim(f, st->dim[i]), "");
	IrDType t = st->type == IR_F32 ? IR_F32 : IR_I64;
	int op = st->rop == OP_MAX ? 1 : 0;
	LLVMTypeRef ct = t == IR_F32 ? L->t_f32 : L->t_i64;
	LLVMValueRef acc = cg_var_of(f, ct, "acc");
	LLVMValueRef gstride, r0 = global_id(f, &gstride);
	CgLoop lp;
	LLVMValueRef row = cg_loop_begin(f, &lp, r0, rows);
	cg_gk_row_offsets(f, o, st->dim, nd - 1, row, 0, st->nview);
	if (t == IR_F32)
		LLVMBuildStore(B, LLVMConstReal(ct, op ? -INFINITY : 0.0), acc);
	else
		LLVMBuildStore(
		        B, LLVMConstInt(ct, op ? (unsigned long long)INT64_MIN : 0, 1),
		        acc);
	CgLoop jl;
	LLVMValueRef j = cg_loop_begin(f, &jl, cg_i64(f, 0), len);
	LLVMValueRef v = cg_convert(f, load_view(f, o, 1, j, 1), t, 1).v;
	LLVMValueRef cur = cg_gk_ld(f, ct, acc), nv;
	if (t == IR_F32)
		nv = op ? cg_fmax_nan(f, cur, v) : LLVMBuildFAdd(B, cur, v, "");
	else
		nv = op ? LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, cur, v, ""),
		                          cur, v, "")
		        : LLVMBuildAdd(B, cur, v, "");
	LLVMBuildStore(B, nv, acc);
	cg_loop_end(f, &jl, j, cg_i64(f, 1));
	CgVal res = {cg_gk_ld(f, ct, acc), t};
	if (st->rop == OP_MEAN) {
		res.v = LLVMBuildFDiv(B, cg_convert(f, res, IR_F32, 1).v,
		                      LLVMBuildSIToFP(B, len, L->t_f32, ""), "");
		res.t = IR_F32;
	}
	gstore(f, o->sty[0], o->ptr[0], o->off[0], res, NULL, 0, 1);
	cg_loop_end(f, &lp, row, gstride);
}

/* ---- GATHER ------------------------------------------------------------------------------------ */

typedef struct GatherCtx {
	LLVMValueRef n, d; /* rows gathered, row length */
} GatherCtx;

/* Each thread copies `lanes` elements of a row at a time (one vector
 * access where gather_vec allows it), checking the row's index first. */
static void gather_body(CgFn *f, CgGkOps *o, void *ctx, int lanes)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	GatherCtx *c = ctx;
	LLVMValueRef rows = cg_dim(f, st->rows);
	LLVMValueRef dv =
	        lanes > 1 ? LLVMBuildUDiv(B, c->d, cg_i64(f, lanes), "") : c->d;
	LLVMValueRef total = LLVMBuildMul(B, c->n, dv, "");
	LLVMValueRef gstride, e0 = global_id(f, &gstride);
	CgLoop lp;
	LLVMValueRef e = cg_loop_begin(f, &lp, e0, total);
	LLVMValueRef r = LLVMBuildUDiv(B, e, dv, "");
	LLVMValueRef j = LLVMBuildSub(B, e, LLVMBuildMul(B, r, dv, ""), "");
	if (lanes > 1)
		j = LLVMBuildMul(B, j, cg_i64(f, lanes), "");
	cg_gk_row_offsets(f, o, st->dim, st->ndim, r, 1, 2);
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
	LLVMValueRef code = LLVMBuildTrunc(
	        B, LLVMBuildAdd(B, o->object, cg_i64(f, 1), ""), L->t_i32, "");
	LLVMValueRef s = LLVMBuildStore(B, code, wp);
	LLVMSetVolatile(s, 1);
	LLVMBuildBr(B, next);
	LLVMPositionBuilderAtEnd(B, ok);
	o->off[0] = LLVMBuildMul(B, r, c->d, "");
	o->off[2] = LLVMBuildMul(B, id.v, o->stride[2][0], "");
	CgVal v = load_view(f, o, 2, j, lanes);
	store_view(f, o, 0, j, v, lanes);
	LLVMBuildBr(B, next);
	LLVMPositionBuilderAtEnd(B, next);
	cg_loop_end(f, &lp, e, gstride);
}

/* Whether rows can move `lanes` elements a vector: contiguous output and
 * table rows, the row length, the table's row stride and both addresses
 * multiples of a vector. NULL: never. */
static LLVMValueRef gather_vec(CgFn *f, CgGkOps *o, LLVMValueRef d, int lanes)
{
	CgLlvm *L = f->L;
	if (o->cls[0] != 1 || o->cls[2] != 1)
		return NULL;
	LLVMValueRef bits = LLVMBuildOr(
	        B, LLVMBuildURem(B, d, cg_i64(f, lanes), ""),
	        LLVMBuildURem(B, o->stride[2][0], cg_i64(f, lanes), ""), "");
	for (int k = 0; k <= 2; k += 2) {
		LLVMValueRef a = LLVMBuildPtrToInt(B, o->ptr[k], L->t_i64, "");
		bits = LLVMBuildOr(
		        B, bits,
		        LLVMBuildURem(B, a,
		                      cg_i64(f, lanes * cg_gpu_elem_size(o->sty[k])),
		                      ""),
		        "");
	}
	return LLVMBuildICmp(B, LLVMIntEQ, bits, cg_i64(f, 0), "");
}

static void emit_gather(CgFn *f, CgGkOps *o)
{
	const CgStep *st = o->st;
	GatherCtx c = {cg_i64(f, 1), cg_dim(f, st->views[2].dim[1])};
	for (int i = 0; i < st->ndim; i++)
		c.n = LLVMBuildMul(B, c.n, cg_dim(f, st->dim[i]), "");
	int lanes = vec_lanes(o);
	by_lanes(f, o, gather_vec(f, o, c.d, lanes), lanes, gather_body, &c);
}

/* ---- entry points -------------------------------------------------------------------------------- */

/* !nvvm.annotations += !{fn, key, value} */
static void annotate(CgLlvm *L, LLVMValueRef fn, const char *key, unsigned value)
{
	LLVMValueRef md[3] = {fn, LLVMMDStringInContext(L->ctx, key, (unsigned)strlen(key)),
	                      LLVMConstInt(L->t_i32, value, 0)};
	LLVMAddNamedMetadataOperand(L->mod, "nvvm.annotations",
	                            LLVMMDNodeInContext(L->ctx, md, 3));
}

void cg_gpu_mark_kernel(CgLlvm *L, LLVMValueRef fn)
{
	annotate(L, fn, "kernel", 1);
}

void cg_gpu_limit_regs(CgLlvm *L, LLVMValueRef fn, int regs)
{
	annotate(L, fn, "maxnreg", (unsigned)regs);
}

bool cg_gpu_emit_kernel(CgLlvm *L, const CgGpu *g, const CgGpuStep *gs, const char *name)
{
	const CgStep *st = gs->st;
	CgFn f;
	CgGkOps *o = ARENA_NEW(g->prog->arena, CgGkOps);
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
		cg_gk_emit_attention(&f, o);
		break;
	case CG_GEMM:
		break;
	}
	LLVMBuildRetVoid(L->b);
	cg_fn_end(&f);
	(void)fn;
	if (o->x.bad) {
		diag_plain(L->diag, DIAG_ERROR,
		           "internal error: GPU kernel %s computes an op it cannot emit",
		           name);
		return false;
	}
	return true;
}

/* A utility kernel's function, the builder in its body (variables go to
 * the entry block); util_end finishes it. */
static LLVMValueRef util_fn(CgLlvm *L, CgFn *f, const char *name, LLVMTypeRef *pt, int n)
{
	LLVMValueRef fn = LLVMAddFunction(L->mod, name, LLVMFunctionType(L->t_void, pt, (unsigned)n, 0));
	memset(f, 0, sizeof *f);
	f->L = L;
	f->fn = fn;
	f->entry = LLVMAppendBasicBlockInContext(L->ctx, fn, "entry");
	f->body = LLVMAppendBasicBlockInContext(L->ctx, fn, "body");
	LLVMPositionBuilderAtEnd(B, f->body);
	return fn;
}

static void util_end(CgFn *f)
{
	CgLlvm *L = f->L;
	LLVMBuildRetVoid(B);
	LLVMPositionBuilderAtEnd(B, f->entry);
	LLVMBuildBr(B, f->body);
	cg_gpu_mark_kernel(L, f->fn);
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
	CgFn fs, *f = &fs;
	LLVMValueRef fn = util_fn(L, f, "slapo_util_ptrs", pt, 12);
	LLVMValueRef out = LLVMBuildIntToPtr(B, LLVMGetParam(fn, 0), L->t_i64p, "");
	LLVMValueRef n = LLVMGetParam(fn, 10), total = LLVMGetParam(fn, 11);
	LLVMValueRef gstride, e0 = global_id(f, &gstride);
	CgLoop lp;
	LLVMValueRef e = cg_loop_begin(f, &lp, e0, total);
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
		LLVMValueRef at = LLVMBuildAdd(
		        B, e, LLVMBuildMul(B, total, cg_i64(f, k), ""), "");
		LLVMBuildStore(B, v, LLVMBuildInBoundsGEP2(B, L->t_i64, out, &at, 1, ""));
	}
	cg_loop_end(f, &lp, e, gstride);
	util_end(f);
}

/* slapo_util_gelu_<t>(c, m, n, ldc): c[i * ldc + j] = gelu_tanh(c[...]) in
 * place, the runtime's fallback after a GEMM when cuBLASLt has no GELU
 * epilogue for it (the same tanh form as the epilogue's). */
static void emit_gelu(CgLlvm *L, const char *name, IrDType t)
{
	LLVMTypeRef pt[4] = {L->t_i8p, L->t_i64, L->t_i64, L->t_i64};
	CgFn fs, *f = &fs;
	LLVMValueRef fn = util_fn(L, f, name, pt, 4);
	LLVMValueRef c = LLVMGetParam(fn, 0), m = LLVMGetParam(fn, 1),
	             n = LLVMGetParam(fn, 2), ldc = LLVMGetParam(fn, 3);
	LLVMValueRef gstride, e0 = global_id(f, &gstride);
	CgLoop lp;
	LLVMValueRef e = cg_loop_begin(f, &lp, e0, LLVMBuildMul(B, m, n, ""));
	LLVMValueRef i = LLVMBuildUDiv(B, e, n, "");
	LLVMValueRef j = LLVMBuildSub(B, e, LLVMBuildMul(B, i, n, ""), "");
	LLVMValueRef p =
	        elem_ptr(f, t, c, LLVMBuildAdd(B, LLVMBuildMul(B, i, ldc, ""), j, ""));
	CgVal x = widen(f, t, LLVMBuildLoad2(B, elem_type(L, t), p, ""), 1);
	CgVal y = {cg_math_gelu_tanh(f, x.v, 1), IR_F32};
	LLVMBuildStore(B, narrow(f, t, y, 1), p);
	cg_loop_end(f, &lp, e, gstride);
	util_end(f);
}

/* slapo_util_bias_<t>(c, bias, r, m, n, ldc): c[i * ldc + j] = bias[j]
 * (+ r[i * ldc + j] when r is not null), the runtime's fallback when
 * cuBLASLt has no bias epilogue for a GEMM (which then adds its product
 * with beta = 1); and slapo_util_gelu_<t> (emit_gelu). */
void cg_gpu_emit_utils(CgLlvm *L)
{
	emit_ptrs(L);
	emit_gelu(L, "slapo_util_gelu_f32", IR_F32);
	emit_gelu(L, "slapo_util_gelu_bf16", IR_BF16);
	emit_gelu(L, "slapo_util_gelu_f16", IR_F16);
	static const struct {
		const char *name;
		IrDType t;
	} u[3] = {{"slapo_util_bias_f32", IR_F32},
	          {"slapo_util_bias_bf16", IR_BF16},
	          {"slapo_util_bias_f16", IR_F16}};
	for (int k = 0; k < 3; k++) {
		LLVMTypeRef pt[6] = {L->t_i8p, L->t_i8p, L->t_i8p, L->t_i64, L->t_i64, L->t_i64};
		CgFn fs, *f = &fs;
		LLVMValueRef fn = util_fn(L, f, u[k].name, pt, 6);
		LLVMValueRef c = LLVMGetParam(fn, 0), bias = LLVMGetParam(fn, 1),
		             r = LLVMGetParam(fn, 2);
		LLVMValueRef m = LLVMGetParam(fn, 3), n = LLVMGetParam(fn, 4),
		             ldc = LLVMGetParam(fn, 5);
		LLVMValueRef gstride, e0 = global_id(f, &gstride);
		CgLoop lp;
		LLVMValueRef e = cg_loop_begin(f, &lp, e0, LLVMBuildMul(B, m, n, ""));
		LLVMValueRef i = LLVMBuildUDiv(B, e, n, "");
		LLVMValueRef j = LLVMBuildSub(B, e, LLVMBuildMul(B, i, n, ""), "");
		LLVMTypeRef et = elem_type(L, u[k].t);
		LLVMValueRef ij = LLVMBuildAdd(B, LLVMBuildMul(B, i, ldc, ""), j, "");
		CgVal x = widen(f, u[k].t,
		                LLVMBuildLoad2(B, et, elem_ptr(f, u[k].t, bias, j), ""), 1);
		/* r's element, or (r null) bias's again, not added */
		LLVMValueRef none = LLVMBuildIsNull(B, r, "");
		LLVMValueRef rp = LLVMBuildSelect(B, none, elem_ptr(f, u[k].t, bias, j),
		                                  elem_ptr(f, u[k].t, r, ij), "");
		CgVal y = widen(f, u[k].t, LLVMBuildLoad2(B, et, rp, ""), 1);
		LLVMValueRef sum = LLVMBuildFAdd(B, x.v, y.v, "");
		CgVal z = {LLVMBuildSelect(B, none, x.v, sum, ""), IR_F32};
		LLVMBuildStore(B, narrow(f, u[k].t, z, 1), elem_ptr(f, u[k].t, c, ij));
		cg_loop_end(f, &lp, e, gstride);
		util_end(f);
	}
}
