/* driver_gpu.c - the host side of the GPU code, in the model library's
 * host module (runtime/README.md has the contract):
 *
 *   slapo_gpu_plan(sym, offs)    device workspace slots for these symbol
 *                                values (sizes in the device storage types)
 *   slapo_gpu_workspace_size     their total, UINT64_MAX on overflow
 *   slapo_gpu_forward(ex)        every step of the GPU program in order:
 *                                rt_gpu_launch with the views' device
 *                                addresses, the symbols and a grid sized
 *                                from the run-time shapes; rt_gpu_gemm with
 *                                an RtGemm (outer batch dims as loops, a
 *                                group as one call when its weights, and
 *                                biases, lie side by side); each step
 *                                marked with rt_prof_step when ex->prof is
 *                                set (profiles)
 *   slapo_gpu_desc               the RtGpuDesc constant: PTX text (and the
 *                                sm_90a module's), kernel
 *                                names, gather objects, parameter types and
 *                                offsets in the device block, the step table
 *                                (steps.c)
 * Every LLVM struct type is checked against the C layout (offsetof).
 */
#include <stddef.h>
#include <string.h>

#include "codegen/gpu.h"
#include "runtime/rt.h"

#define B (L->b)

typedef struct GTypes {
	LLVMTypeRef exec, gemm, desc, dl;
} GTypes;

static bool make_types(CgLlvm *L, GTypes *T)
{
	LLVMContextRef c = L->ctx;
	LLVMTypeRef p = L->t_i8p, i64 = L->t_i64, i32 = L->t_i32;
	LLVMTypeRef dbl = LLVMDoubleTypeInContext(c);
	LLVMTypeRef ex[13] = {p, L->t_i64p,          p, p, p, p, i64, i32, i32, p, p,
	                      p, LLVMArrayType(p, 3)};
	T->exec = LLVMStructTypeInContext(c, ex, 13, 0);
	LLVMTypeRef gm[27];
	for (int i = 0; i < 16; i++)
		gm[i] = i64;
	gm[16] = gm[17] = dbl;
	gm[18] = gm[19] = gm[20] = gm[21] = p;
	gm[22] = gm[23] = gm[24] = gm[25] = i64;
	gm[26] = p;
	T->gemm = LLVMStructTypeInContext(c, gm, 27, 0);
	LLVMTypeRef ds[19] = {i32, i32, p, p,   i32, i32, p, p,   p,  p,
	                      i64, p,   p, i32, p,   p,   p, i32, i32};
	T->desc = LLVMStructTypeInContext(c, ds, 19, 0);
	LLVMTypeRef dl[3] = {L->t_i8, L->t_i8, LLVMInt16TypeInContext(c)};
	T->dl = LLVMStructTypeInContext(c, dl, 3, 0);
	static const size_t o_ex[] = {offsetof(RtExec, desc),
	                              offsetof(RtExec, sym),
	                              offsetof(RtExec, inputs),
	                              offsetof(RtExec, outputs),
	                              offsetof(RtExec, params),
	                              offsetof(RtExec, workspace),
	                              offsetof(RtExec, workspace_size),
	                              offsetof(RtExec, n_threads),
	                              offsetof(RtExec, reserved0),
	                              offsetof(RtExec, pool),
	                              offsetof(RtExec, err),
	                              offsetof(RtExec, prof),
	                              offsetof(RtExec, packs)};
	static const size_t o_gm[] = {
	        offsetof(RtGemm, ta),        offsetof(RtGemm, tb),
	        offsetof(RtGemm, m),         offsetof(RtGemm, n),
	        offsetof(RtGemm, k),         offsetof(RtGemm, lda),
	        offsetof(RtGemm, ldb),       offsetof(RtGemm, ldc),
	        offsetof(RtGemm, stride_a),  offsetof(RtGemm, stride_b),
	        offsetof(RtGemm, stride_c),  offsetof(RtGemm, batch),
	        offsetof(RtGemm, a_type),    offsetof(RtGemm, b_type),
	        offsetof(RtGemm, c_type),    offsetof(RtGemm, epilogue),
	        offsetof(RtGemm, alpha),     offsetof(RtGemm, beta),
	        offsetof(RtGemm, a),         offsetof(RtGemm, b),
	        offsetof(RtGemm, c),         offsetof(RtGemm, bias),
	        offsetof(RtGemm, batch2),    offsetof(RtGemm, stride2_a),
	        offsetof(RtGemm, stride2_b), offsetof(RtGemm, stride2_c),
	        offsetof(RtGemm, r)};
	static const size_t o_ds[] = {
	        offsetof(RtGpuDesc, version),      offsetof(RtGpuDesc, precision),
	        offsetof(RtGpuDesc, ptx),          offsetof(RtGpuDesc, target),
	        offsetof(RtGpuDesc, n_kernels),    offsetof(RtGpuDesc, n_objects),
	        offsetof(RtGpuDesc, kernel_names), offsetof(RtGpuDesc, objects),
	        offsetof(RtGpuDesc, param_dtypes), offsetof(RtGpuDesc, param_offsets),
	        offsetof(RtGpuDesc, params_size),  offsetof(RtGpuDesc, workspace_size),
	        offsetof(RtGpuDesc, forward),      offsetof(RtGpuDesc, n_steps),
	        offsetof(RtGpuDesc, steps),        offsetof(RtGpuDesc, step_costs),
	        offsetof(RtGpuDesc, ptx_sm90a),    offsetof(RtGpuDesc, n_kernels_sm90a),
	        offsetof(RtGpuDesc, reserved1)};
	static const size_t o_dl[] = {offsetof(DLDataType, code),
	                              offsetof(DLDataType, bits),
	                              offsetof(DLDataType, lanes)};
	return cg_llvm_check_layout(L, T->exec, o_ex, 13, sizeof(RtExec), "RtExec") &&
	       cg_llvm_check_layout(L, T->gemm, o_gm, 27, sizeof(RtGemm), "RtGemm") &&
	       cg_llvm_check_layout(L, T->desc, o_ds, 19, sizeof(RtGpuDesc),
	                            "RtGpuDesc") &&
	       cg_llvm_check_layout(L, T->dl, o_dl, 3, sizeof(DLDataType), "DLDataType");
}

static LLVMValueRef i64c(CgLlvm *L, int64_t v)
{
	return LLVMConstInt(L->t_i64, (unsigned long long)v, 1);
}

static LLVMValueRef i32c(CgLlvm *L, int64_t v)
{
	return LLVMConstInt(L->t_i32, (unsigned long long)v, 1);
}

/* A private constant array, as i8* (NULL when n is 0). */
static LLVMValueRef const_array(CgLlvm *L, LLVMTypeRef et, LLVMValueRef *v, int n,
                                const char *name)
{
	return LLVMConstBitCast(cg_llvm_const_array(L, et, v, n, name), L->t_i8p);
}

/* ---- plan ------------------------------------------------------------------------------- */

static LLVMValueRef emit_workspace_size(CgLlvm *L, const CgGpu *g, LLVMValueRef plan)
{
	LLVMValueRef fn = LLVMAddFunction(L->mod, "slapo_gpu_workspace_size",
	                                  LLVMFunctionType(L->t_i64, &L->t_i64p, 1, 0));
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(L->ctx, fn, "entry");
	LLVMPositionBuilderAtEnd(B, bb);
	LLVMValueRef offs =
	        LLVMBuildArrayAlloca(B, L->t_i64, i64c(L, g->plan.nregions + 1), "offs");
	LLVMValueRef args[2] = {LLVMGetParam(fn, 0), offs};
	LLVMBuildRet(B, cg_llvm_call(L, plan, args, 2));
	return fn;
}

/* ---- forward ------------------------------------------------------------------------------ */

typedef struct Fwd {
	CgLlvm *L;
	CgFn f;
	const CgGpu *g;
	const GTypes *T;
	LLVMValueRef ex, *base, args, gemm, errword;
	LLVMValueRef launch, rt_gemm, rt_prof_step, small_grid, has_kernel;
} Fwd;

static LLVMValueRef field(Fwd *w, int i, LLVMTypeRef t)
{
	CgLlvm *L = w->L;
	LLVMValueRef p = LLVMBuildStructGEP2(
	        B, w->T->exec,
	        LLVMBuildBitCast(B, w->ex, LLVMPointerType(w->T->exec, 0), ""),
	        (unsigned)i, "");
	return LLVMBuildLoad2(B, t, p, "");
}

/* if (ex->prof) rt_prof_step(ex, step); -- step `step` starts here */
static void prof_mark(Fwd *w, int step)
{
	LLVMValueRef prof = field(w, 11, w->L->t_i8p); /* RtExec.prof */
	cg_emit_prof_mark(w->L, w->f.fn, w->ex, prof, w->rt_prof_step, step);
}

static LLVMValueRef ptr_at(Fwd *w, LLVMValueRef arr, int i)
{
	CgLlvm *L = w->L;
	LLVMValueRef idx = i64c(L, i);
	return LLVMBuildLoad2(B, L->t_i8p,
	                      LLVMBuildInBoundsGEP2(B, L->t_i8p, arr, &idx, 1, ""), "");
}

/* device address of element `off` of buffer `buf` */
static LLVMValueRef elem_addr(Fwd *w, int buf, LLVMValueRef off)
{
	CgLlvm *L = w->L;
	if (buf < 0)
		return LLVMConstNull(L->t_i8p);
	LLVMValueRef bytes =
	        LLVMBuildMul(B, off, i64c(L, cg_gpu_elem_size(w->g->btype[buf])), "");
	return LLVMBuildInBoundsGEP2(B, L->t_i8, w->base[buf], &bytes, 1, "");
}

static LLVMValueRef view_addr(Fwd *w, const CgView *v, int buf)
{
	return elem_addr(w, buf >= 0 ? buf : v->buf, cg_poly(&w->f, &v->off));
}

static LLVMValueRef imax(Fwd *w, LLVMValueRef a, LLVMValueRef b)
{
	CgLlvm *L = w->L;
	return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, a, b, ""), a, b, "");
}

static LLVMValueRef imin(Fwd *w, LLVMValueRef a, LLVMValueRef b)
{
	CgLlvm *L = w->L;
	return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMValueRef cdiv(Fwd *w, LLVMValueRef a, int64_t d)
{
	CgLlvm *L = w->L;
	return LLVMBuildSDiv(B, LLVMBuildAdd(B, a, i64c(L, d - 1), ""), i64c(L, d), "");
}

static void set_arg(Fwd *w, int i, LLVMValueRef v)
{
	CgLlvm *L = w->L;
	LLVMValueRef idx = i64c(L, i);
	if (LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMPointerTypeKind)
		v = LLVMBuildPtrToInt(B, v, L->t_i64, "");
	LLVMBuildStore(B, v, LLVMBuildInBoundsGEP2(B, L->t_i64, w->args, &idx, 1, ""));
}

static void emit_launch(Fwd *w, const CgGpuStep *gs)
{
	CgLlvm *L = w->L;
	CgFn *f = &w->f;
	const CgStep *st = gs->st;
	const CgProgram *p = w->g->prog;
	int nd = st->ndim;
	for (int k = 0; k < st->nview; k++)
		set_arg(w, k,
		        st->views[k].buf >= 0 ? view_addr(w, &st->views[k], -1)
		                              : i64c(L, 0));
	for (int s = 0; s < p->nsyms; s++) {
		LLVMValueRef idx = i64c(L, s);
		set_arg(w, st->nview + s,
		        LLVMBuildLoad2(
		                B, L->t_i64,
		                LLVMBuildInBoundsGEP2(B, L->t_i64, f->sym, &idx, 1, ""),
		                ""));
	}
	set_arg(w, st->nview + p->nsyms, w->errword);
	set_arg(w, st->nview + p->nsyms + 1, i64c(L, gs->object > 0 ? gs->object : 0));
	/* work items and grid */
	LLVMValueRef work, gx, gy = i64c(L, 1), bx, kernel = i32c(L, gs->kernel);
	if (st->kind == CG_ATTENTION) {
		/* blocks of 4 warps over ATT_QUERIES queries each, one row of
		 * blocks per batch (attention_gpu.c) */
		LLVMValueRef seq = cg_dim(f, st->m);
		gy = i64c(L, 1);
		for (int i = 0; i < st->nbatch; i++)
			gy = LLVMBuildMul(B, gy, cg_dim(f, st->bdim[i]), "");
		work = LLVMBuildMul(B, gy, seq, "");
		gx = cdiv(w, seq, ATT_QUERIES);
		/* few blocks: the kernel of 64-query blocks, twice as many */
		LLVMValueRef sa[2] = {w->ex, i64c(L, ATT_SMALL_GRID)};
		LLVMValueRef small =
		        LLVMBuildICmp(B, LLVMIntSLT, LLVMBuildMul(B, gx, gy, ""),
		                      cg_llvm_call(L, w->small_grid, sa, 2), "");
		kernel = LLVMBuildSelect(B, small, i32c(L, gs->kernel_small), kernel, "");
		gx = LLVMBuildSelect(B, small, cdiv(w, seq, 64), gx, "");
		/* on Hopper, the wgmma kernel (64-query blocks) when loaded */
		if (gs->kernel_h >= 0) {
			LLVMValueRef ha[2] = {w->ex, i32c(L, gs->kernel_h)};
			LLVMValueRef h = LLVMBuildICmp(
			        B, LLVMIntNE, cg_llvm_call(L, w->has_kernel, ha, 2),
			        i32c(L, 0), "");
			kernel = LLVMBuildSelect(B, h, i32c(L, gs->kernel_h), kernel, "");
			gx = LLVMBuildSelect(B, h, cdiv(w, seq, 64), gx, "");
		}
		gy = imin(w, gy, i64c(L, 65535));
		bx = i64c(L, 128);
	} else if (st->kind == CG_SOFTMAX || st->kind == CG_LAYER_NORM) {
		LLVMValueRef rows = i64c(L, 1), len = cg_dim(f, st->dim[nd - 1]);
		for (int i = 0; i + 1 < nd; i++)
			rows = LLVMBuildMul(B, rows, cg_dim(f, st->dim[i]), "");
		work = LLVMBuildMul(B, rows, len, "");
		LLVMValueRef t =
		        LLVMBuildMul(B, cdiv(w, cdiv(w, len, 16), 32), i64c(L, 32), "");
		bx = imin(w, imax(w, t, i64c(L, 32)), i64c(L, 1024));
		gx = imin(w, rows, i64c(L, 1 << 30));
	} else if (st->kind == CG_REDUCE) {
		LLVMValueRef rows = i64c(L, 1);
		for (int i = 0; i + 1 < nd; i++)
			rows = LLVMBuildMul(B, rows, cg_dim(f, st->dim[i]), "");
		work = rows;
		bx = i64c(L, 128);
		gx = imin(w, cdiv(w, rows, 128), i64c(L, 1 << 20));
	} else {
		LLVMValueRef n = i64c(L, 1);
		for (int i = 0; i < nd; i++)
			n = LLVMBuildMul(B, n, cg_dim(f, st->dim[i]), "");
		if (st->kind == CG_GATHER)
			n = LLVMBuildMul(B, n, cg_dim(f, st->views[2].dim[1]), "");
		work = n;
		bx = i64c(L, 256);
		/* a MAP thread takes two 16-byte vectors of output (four f32 or
		 * eight 16-bit elements each, kernels_gpu.c), one after the other:
		 * its setup is paid once for both; a GATHER thread one */
		int es = cg_gpu_elem_size(w->g->btype[st->views[0].buf]);
		int per = st->kind == CG_MAP      ? (es == 2 ? 16 : 8)
		          : st->kind == CG_GATHER ? (es == 2 ? 8 : 4)
		                                  : 1;
		gx = imin(w, cdiv(w, n, 256 * per), i64c(L, 1 << 20));
	}
	LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "launch");
	LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "next");
	LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSGT, work, i64c(L, 0), ""), run, next);
	LLVMPositionBuilderAtEnd(B, run);
	LLVMValueRef a[7] = {w->ex,
	                     kernel,
	                     imax(w, gx, i64c(L, 1)),
	                     gy,
	                     bx,
	                     LLVMBuildBitCast(B, w->args, L->t_i64p, ""),
	                     i32c(L, cg_gpu_kernel_nargs(p, st))};
	cg_llvm_call(L, w->launch, a, 7);
	LLVMBuildBr(B, next);
	LLVMPositionBuilderAtEnd(B, next);
}

static void gset(Fwd *w, int i, LLVMValueRef v)
{
	CgLlvm *L = w->L;
	LLVMValueRef p = LLVMBuildStructGEP2(B, w->T->gemm, w->gemm, (unsigned)i, "");
	LLVMBuildStore(B, v, p);
}

static LLVMValueRef gep_bytes(Fwd *w, LLVMValueRef p, LLVMValueRef elems, int esize)
{
	CgLlvm *L = w->L;
	LLVMValueRef b = LLVMBuildMul(B, elems, i64c(L, esize), "");
	return LLVMBuildInBoundsGEP2(B, L->t_i8, p, &b, 1, "");
}

/* One GEMM call (with its outer batch loops): n columns, B at b, C at c,
 * bias at bias (or NULL). The last batch dim is the call's batch, the one
 * before it its outer batch (batch2); any before those are loops here. */
static void gemm_call(Fwd *w, const CgGpuStep *gs, LLVMValueRef n, LLVMValueRef b,
                      LLVMValueRef c, LLVMValueRef bias, LLVMValueRef res)
{
	CgLlvm *L = w->L;
	CgFn *f = &w->f;
	const CgStep *st = gs->st;
	const CgGpu *g = w->g;
	int abuf = gs->a_buf >= 0 ? gs->a_buf : st->views[1].buf;
	int bbuf = gs->b_buf >= 0 ? gs->b_buf : st->views[2].buf;
	int cbuf = st->views[0].buf;
	int ea = cg_gpu_elem_size(g->btype[abuf]), eb = cg_gpu_elem_size(g->btype[bbuf]);
	int ec = cg_gpu_elem_size(g->btype[cbuf]);
	LLVMValueRef a = view_addr(w, &st->views[1], gs->a_buf);
	int nloop = st->nbatch > 2 ? st->nbatch - 2 : 0;
	LLVMValueRef var[IR_MAX_DIMS];
	LLVMBasicBlockRef head[IR_MAX_DIMS], exit[IR_MAX_DIMS];
	LLVMValueRef offa = i64c(L, 0), offb = i64c(L, 0), offc = i64c(L, 0);
	for (int i = 0; i < nloop; i++) {
		var[i] = cg_var(f, "b");
		LLVMBuildStore(B, i64c(L, 0), var[i]);
		head[i] = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "batch");
		LLVMBasicBlockRef body =
		        LLVMAppendBasicBlockInContext(L->ctx, f->fn, "batch_body");
		exit[i] = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "batch_done");
		LLVMBuildBr(B, head[i]);
		LLVMPositionBuilderAtEnd(B, head[i]);
		LLVMValueRef iv = LLVMBuildLoad2(B, L->t_i64, var[i], "");
		LLVMBuildCondBr(
		        B, LLVMBuildICmp(B, LLVMIntSLT, iv, cg_dim(f, st->bdim[i]), ""),
		        body, exit[i]);
		LLVMPositionBuilderAtEnd(B, body);
		offa = LLVMBuildAdd(B, offa,
		                    LLVMBuildMul(B, iv, cg_dim(f, st->bsa[i]), ""), "");
		offb = LLVMBuildAdd(B, offb,
		                    LLVMBuildMul(B, iv, cg_dim(f, st->bsb[i]), ""), "");
		offc = LLVMBuildAdd(B, offc,
		                    LLVMBuildMul(B, iv, cg_dim(f, st->bsc[i]), ""), "");
	}
	gset(w, 0, i64c(L, st->ta));
	gset(w, 1, i64c(L, st->tb));
	gset(w, 2, cg_dim(f, st->m));
	gset(w, 3, n);
	gset(w, 4, cg_dim(f, st->k));
	gset(w, 5, cg_dim(f, st->lda));
	gset(w, 6, cg_dim(f, st->ldb));
	gset(w, 7, cg_dim(f, st->ldc));
	if (st->nbatch > 0) {
		int q = st->nbatch - 1;
		gset(w, 8, cg_dim(f, st->bsa[q]));
		gset(w, 9, cg_dim(f, st->bsb[q]));
		gset(w, 10, cg_dim(f, st->bsc[q]));
		gset(w, 11, cg_dim(f, st->bdim[q]));
	} else {
		gset(w, 8, i64c(L, 0));
		gset(w, 9, i64c(L, 0));
		gset(w, 10, i64c(L, 0));
		gset(w, 11, i64c(L, 1));
	}
	gset(w, 12, i64c(L, cg_gpu_gemm_type(g->btype[abuf])));
	gset(w, 13, i64c(L, cg_gpu_gemm_type(g->btype[bbuf])));
	gset(w, 14, i64c(L, cg_gpu_gemm_type(g->btype[cbuf])));
	gset(w, 15,
	     i64c(L, !bias      ? RT_EPI_NONE
	             : gs->gelu ? RT_EPI_GELU_BIAS
	                        : RT_EPI_BIAS));
	LLVMTypeRef dt = LLVMDoubleTypeInContext(L->ctx);
	gset(w, 16, LLVMConstReal(dt, st->alpha));
	gset(w, 17, LLVMConstReal(dt, res ? 1.0 : bias ? 0.0 : st->beta));
	gset(w, 18, gep_bytes(w, a, offa, ea));
	gset(w, 19, gep_bytes(w, b, offb, eb));
	gset(w, 20, gep_bytes(w, c, offc, ec));
	gset(w, 21, bias ? bias : LLVMConstNull(L->t_i8p));
	if (st->nbatch >= 2) {
		int q = st->nbatch - 2;
		gset(w, 22, cg_dim(f, st->bdim[q]));
		gset(w, 23, cg_dim(f, st->bsa[q]));
		gset(w, 24, cg_dim(f, st->bsb[q]));
		gset(w, 25, cg_dim(f, st->bsc[q]));
	} else {
		gset(w, 22, i64c(L, 1));
		gset(w, 23, i64c(L, 0));
		gset(w, 24, i64c(L, 0));
		gset(w, 25, i64c(L, 0));
	}
	gset(w, 26, res ? gep_bytes(w, res, offc, ec) : LLVMConstNull(L->t_i8p));
	LLVMValueRef args[2] = {w->ex, LLVMBuildBitCast(B, w->gemm, L->t_i8p, "")};
	cg_llvm_call(L, w->rt_gemm, args, 2);
	for (int i = nloop - 1; i >= 0; i--) {
		LLVMValueRef iv = LLVMBuildLoad2(B, L->t_i64, var[i], "");
		LLVMBuildStore(B, LLVMBuildAdd(B, iv, i64c(L, 1), ""), var[i]);
		LLVMBuildBr(B, head[i]);
		LLVMPositionBuilderAtEnd(B, exit[i]);
	}
}

static void emit_gemm(Fwd *w, const CgGpuStep *gs)
{
	CgLlvm *L = w->L;
	CgFn *f = &w->f;
	const CgStep *st = gs->st;
	const CgGpu *g = w->g;
	LLVMValueRef c = view_addr(w, &st->views[0], -1);
	if (st->ngroup < 2) {
		LLVMValueRef bias = gs->bias ? view_addr(w, &gs->bias_view[0], -1) : NULL;
		LLVMValueRef res = gs->res ? view_addr(w, &gs->res_view, -1) : NULL;
		gemm_call(w, gs, cg_dim(f, st->n), view_addr(w, &st->views[2], gs->b_buf),
		          c, bias, res);
		return;
	}
	/* a group: one call when the weights (and biases) lie side by side */
	int wb = st->gb[0].buf, ec = cg_gpu_elem_size(g->btype[st->views[0].buf]);
	LLVMValueRef b0 = view_addr(w, &st->gb[0], -1);
	LLVMValueRef kb = LLVMBuildMul(B, cg_dim(f, st->k),
	                               i64c(L, cg_gpu_elem_size(g->btype[wb])), "");
	LLVMValueRef adj = LLVMConstInt(L->t_i1, 1, 0);
	LLVMValueRef bias0 = gs->bias ? view_addr(w, &gs->bias_view[0], -1) : NULL;
	for (int i = 1; i < st->ngroup; i++) {
		LLVMValueRef off = LLVMBuildMul(B, cg_dim(f, st->gc[i]), kb, "");
		LLVMValueRef want = LLVMBuildInBoundsGEP2(B, L->t_i8, b0, &off, 1, "");
		adj = LLVMBuildAnd(B, adj,
		                   LLVMBuildICmp(B, LLVMIntEQ, want,
		                                 view_addr(w, &st->gb[i], -1), ""),
		                   "");
		if (gs->bias) {
			int bb = gs->bias_view[i].buf;
			LLVMValueRef bw = gep_bytes(w, bias0, cg_dim(f, st->gc[i]),
			                            cg_gpu_elem_size(g->btype[bb]));
			adj = LLVMBuildAnd(
			        B, adj,
			        LLVMBuildICmp(B, LLVMIntEQ, bw,
			                      view_addr(w, &gs->bias_view[i], -1), ""),
			        "");
		}
	}
	LLVMBasicBlockRef one = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "gemm_one");
	LLVMBasicBlockRef each =
	        LLVMAppendBasicBlockInContext(L->ctx, f->fn, "gemm_each");
	LLVMBasicBlockRef done =
	        LLVMAppendBasicBlockInContext(L->ctx, f->fn, "gemm_done");
	LLVMBuildCondBr(B, adj, one, each);
	LLVMPositionBuilderAtEnd(B, one);
	gemm_call(w, gs, cg_dim(f, st->n), b0, c, bias0, NULL);
	LLVMBuildBr(B, done);
	LLVMPositionBuilderAtEnd(B, each);
	for (int i = 0; i < st->ngroup; i++)
		gemm_call(w, gs, cg_dim(f, st->gn[i]), view_addr(w, &st->gb[i], -1),
		          gep_bytes(w, c, cg_dim(f, st->gc[i]), ec),
		          gs->bias ? view_addr(w, &gs->bias_view[i], -1) : NULL, NULL);
	LLVMBuildBr(B, done);
	LLVMPositionBuilderAtEnd(B, done);
}

static LLVMValueRef emit_forward(CgLlvm *L, const CgGpu *g, const GTypes *T,
                                 LLVMValueRef plan)
{
	const CgProgram *p = g->prog;
	LLVMValueRef fn = LLVMAddFunction(L->mod, "slapo_gpu_forward",
	                                  LLVMFunctionType(L->t_i32, &L->t_i8p, 1, 0));
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	Fwd w = {.L = L, .g = g, .T = T};
	cg_fn_begin(&w.f, L, p, fn);
	w.ex = LLVMGetParam(fn, 0);
	LLVMTypeRef la[7] = {L->t_i8p, L->t_i32,  L->t_i64, L->t_i64,
	                     L->t_i64, L->t_i64p, L->t_i32};
	w.launch =
	        cg_llvm_decl(L, "rt_gpu_launch", LLVMFunctionType(L->t_void, la, 7, 0));
	LLVMTypeRef ga[2] = {L->t_i8p, L->t_i8p};
	w.rt_gemm = cg_llvm_decl(L, "rt_gpu_gemm", LLVMFunctionType(L->t_void, ga, 2, 0));
	LLVMTypeRef sg[2] = {L->t_i8p, L->t_i64};
	w.small_grid = cg_llvm_decl(L, "rt_gpu_att_small_grid",
	                            LLVMFunctionType(L->t_i64, sg, 2, 0));
	LLVMTypeRef hk[2] = {L->t_i8p, L->t_i32};
	w.has_kernel = cg_llvm_decl(L, "rt_gpu_has_kernel",
	                            LLVMFunctionType(L->t_i32, hk, 2, 0));
	LLVMValueRef ew = cg_llvm_decl(L, "rt_gpu_error_word",
	                               LLVMFunctionType(L->t_i8p, &L->t_i8p, 1, 0));
	LLVMTypeRef ps[2] = {L->t_i8p, L->t_i32};
	w.rt_prof_step =
	        cg_llvm_decl(L, "rt_prof_step", LLVMFunctionType(L->t_void, ps, 2, 0));

	LLVMPositionBuilderAtEnd(L->b, w.f.entry);
	w.f.sym = field(&w, 1, L->t_i64p);
	LLVMTypeRef ppt = LLVMPointerType(L->t_i8p, 0);
	LLVMValueRef ins = LLVMBuildBitCast(L->b, field(&w, 2, L->t_i8p), ppt, "");
	LLVMValueRef outs = LLVMBuildBitCast(L->b, field(&w, 3, L->t_i8p), ppt, "");
	LLVMValueRef prm = LLVMBuildBitCast(L->b, field(&w, 4, L->t_i8p), ppt, "");
	LLVMValueRef ws = field(&w, 5, L->t_i8p);
	LLVMValueRef offs = LLVMBuildArrayAlloca(L->b, L->t_i64,
	                                         i64c(L, g->plan.nregions + 1), "offs");
	int maxargs = g->max_views + p->nsyms + 2;
	w.args = LLVMBuildArrayAlloca(L->b, L->t_i64, i64c(L, maxargs + 1), "args");
	w.gemm = LLVMBuildAlloca(L->b, T->gemm, "gemm");
	LLVMPositionBuilderAtEnd(L->b, w.f.body);
	if (g->plan.nregions) {
		LLVMValueRef args[2] = {w.f.sym, offs};
		cg_llvm_call(L, plan, args, 2);
	}
	w.errword = cg_llvm_call(L, ew, &w.ex, 1);
	w.base = ARENA_ARRAY(p->arena, LLVMValueRef, g->nbufs + 1);
	for (int i = 0; i < g->nbufs; i++) {
		const CgBuf *b = g->bufs[i];
		switch (b->kind) {
		case CG_BUF_INPUT:
			w.base[i] = ptr_at(&w, ins, b->index);
			break;
		case CG_BUF_OUTPUT:
			w.base[i] = ptr_at(&w, outs, b->index);
			break;
		case CG_BUF_PARAM:
			w.base[i] = ptr_at(&w, prm, b->index);
			break;
		case CG_BUF_TEMP:
			w.base[i] =
			        cg_plan_addr(&w.f, ws, offs, &g->plan, CG_GPU_ALIGN, i);
			break;
		}
	}
	for (int s = 0; s < g->nsteps; s++) {
		const CgGpuStep *gs = &g->steps[s];
		prof_mark(&w, s);
		if (gs->st->kind == CG_GEMM)
			emit_gemm(&w, gs);
		else
			emit_launch(&w, gs);
	}
	prof_mark(&w, g->nsteps);
	LLVMBuildRet(L->b, i32c(L, SLAPO_OK));
	cg_fn_end(&w.f);
	return fn;
}

/* ---- the descriptor -------------------------------------------------------------------------- */

static LLVMValueRef dl_const(CgLlvm *L, const GTypes *T, IrDType t)
{
	int code = kDLFloat, bits = 32;
	switch (t) {
	case IR_BF16:
		code = kDLBfloat;
		bits = 16;
		break;
	case IR_F16:
		bits = 16;
		break;
	case IR_I64:
		code = kDLInt;
		bits = 64;
		break;
	case IR_I32:
		code = kDLInt;
		bits = 32;
		break;
	case IR_BOOL:
		code = kDLBool;
		bits = 8;
		break;
	default:
		break;
	}
	LLVMValueRef f[3] = {LLVMConstInt(L->t_i8, (unsigned)code, 0),
	                     LLVMConstInt(L->t_i8, (unsigned)bits, 0),
	                     LLVMConstInt(LLVMInt16TypeInContext(L->ctx), 1, 0)};
	return LLVMConstNamedStruct(T->dl, f, 3);
}

static int gpu_elem_size(const void *ctx, int buf)
{
	const CgGpu *g = ctx;
	return cg_gpu_elem_size(g->btype[buf]);
}

bool cg_gpu_emit_host(CgLlvm *L, const CgGpu *g)
{
	const CgProgram *p = g->prog;
	GTypes T;
	if (!make_types(L, &T))
		return false;
	LLVMValueRef plan =
	        cg_emit_plan(L, g->prog, &g->plan, CG_GPU_ALIGN, "slapo_gpu_plan");
	LLVMValueRef wsz = emit_workspace_size(L, g, plan);
	LLVMValueRef fwd = emit_forward(L, g, &T, plan);
	int np = p->params.len;
	LLVMValueRef *names = ARENA_ARRAY(p->arena, LLVMValueRef, g->nkernels + 1);
	for (int i = 0; i < g->nkernels; i++)
		names[i] = cg_llvm_cstr(L, g->kernel_names[i]);
	LLVMValueRef *objs = ARENA_ARRAY(p->arena, LLVMValueRef, g->nobjects + 1);
	for (int i = 0; i < g->nobjects; i++)
		objs[i] = cg_llvm_cstr(L, g->objects[i]);
	LLVMValueRef *dts = ARENA_ARRAY(p->arena, LLVMValueRef, np + 1);
	LLVMValueRef *offs = ARENA_ARRAY(p->arena, LLVMValueRef, np + 1);
	for (int i = 0; i < np; i++) {
		dts[i] = dl_const(L, &T, g->ptype[i]);
		offs[i] = i64c(L, (int64_t)g->poff[i]);
	}
	const CgStep **steps = ARENA_ARRAY(p->arena, const CgStep *, g->nsteps + 1);
	for (int i = 0; i < g->nsteps; i++)
		steps[i] = g->steps[i].st;
	LLVMValueRef step_table =
	        cg_emit_step_table(L, p->arena, steps, g->nsteps, ".gpu_steps");
	if (!step_table)
		return false;
	LLVMValueRef f[19] = {
	        i32c(L, RT_GPU_VERSION),
	        i32c(L, g->prec),
	        cg_llvm_cstr(L, g->ptx ? g->ptx : ""),
	        cg_llvm_cstr(L, g->target),
	        i32c(L, g->nkernels),
	        i32c(L, g->nobjects),
	        const_array(L, L->t_i8p, names, g->nkernels, ".kernel_names"),
	        const_array(L, L->t_i8p, objs, g->nobjects, ".objects"),
	        const_array(L, T.dl, dts, np, ".param_dtypes"),
	        const_array(L, L->t_i64, offs, np, ".param_offsets"),
	        i64c(L, (int64_t)g->params_size),
	        LLVMConstBitCast(wsz, L->t_i8p),
	        LLVMConstBitCast(fwd, L->t_i8p),
	        i32c(L, g->nsteps),
	        step_table,
	        cg_emit_step_costs(L, p, steps, g->nsteps, gpu_elem_size, g,
	                           "slapo_gpu_step_costs"),
	        cg_llvm_cstr(L, g->ptx_h ? g->ptx_h : ""),
	        i32c(L, g->nkernels_h),
	        i32c(L, 0),
	};
	LLVMValueRef init = LLVMConstNamedStruct(T.desc, f, 19);
	LLVMValueRef gd = LLVMAddGlobal(L->mod, T.desc, "slapo_gpu_desc");
	LLVMSetInitializer(gd, init);
	LLVMSetGlobalConstant(gd, 1);
	LLVMSetVisibility(gd, LLVMHiddenVisibility);
	return true;
}
