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
	if (!(T->exec = cg_host_exec_type(L)) || !(T->dl = cg_host_dl_type(L)))
		return false;
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
	return cg_llvm_check_layout(L, T->gemm, o_gm, 27, sizeof(RtGemm), "RtGemm") &&
	       cg_llvm_check_layout(L, T->desc, o_ds, 19, sizeof(RtGpuDesc),
	                            "RtGpuDesc");
}

/* A private constant array, as i8* (NULL when n is 0). */
static LLVMValueRef const_array(CgLlvm *L, LLVMTypeRef et, LLVMValueRef *v, int n,
                                const char *name)
{
	return LLVMConstBitCast(cg_llvm_const_array(L, et, v, n, name), L->t_i8p);
}

/* ---- forward ------------------------------------------------------------------------------ */

typedef struct Fwd {
	CgHost h;
	const CgGpu *g;
	const GTypes *T;
	LLVMValueRef args, gemm, errword;
	LLVMValueRef launch, rt_gemm, small_grid, has_kernel;
} Fwd;

/* a view's device address, in buffer buf instead of its own when buf >= 0 */
static LLVMValueRef view_addr(Fwd *w, const CgView *v, int buf)
{
	return cg_host_elem_addr(&w->h, buf >= 0 ? buf : v->buf, cg_poly(&w->h.f, &v->off));
}

static LLVMValueRef cdiv(Fwd *w, LLVMValueRef a, int64_t d)
{
	CgLlvm *L = w->h.L;
	return LLVMBuildSDiv(B, LLVMBuildAdd(B, a, cg_i64c(L, d - 1), ""), cg_i64c(L, d), "");
}

static void set_arg(Fwd *w, int i, LLVMValueRef v)
{
	CgLlvm *L = w->h.L;
	LLVMValueRef idx = cg_i64c(L, i);
	if (LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMPointerTypeKind)
		v = LLVMBuildPtrToInt(B, v, L->t_i64, "");
	LLVMBuildStore(B, v, LLVMBuildInBoundsGEP2(B, L->t_i64, w->args, &idx, 1, ""));
}

static void emit_launch(Fwd *w, const CgGpuStep *gs)
{
	CgLlvm *L = w->h.L;
	CgFn *f = &w->h.f;
	const CgStep *st = gs->st;
	const CgProgram *p = w->g->prog;
	int nd = st->ndim;
	for (int k = 0; k < st->nview; k++)
		set_arg(w, k,
		        st->views[k].buf >= 0 ? view_addr(w, &st->views[k], -1)
		                              : cg_i64c(L, 0));
	for (int s = 0; s < p->nsyms; s++) {
		LLVMValueRef idx = cg_i64c(L, s);
		set_arg(w, st->nview + s,
		        LLVMBuildLoad2(
		                B, L->t_i64,
		                LLVMBuildInBoundsGEP2(B, L->t_i64, f->sym, &idx, 1, ""),
		                ""));
	}
	set_arg(w, st->nview + p->nsyms, w->errword);
	set_arg(w, st->nview + p->nsyms + 1, cg_i64c(L, gs->object > 0 ? gs->object : 0));
	/* work items and grid */
	LLVMValueRef work, gx, gy = cg_i64c(L, 1), bx, kernel = cg_i32c(L, gs->kernel);
	if (st->kind == CG_ATTENTION) {
		/* blocks of 4 warps over ATT_QUERIES queries each, one row of
		 * blocks per batch (attention_gpu.c) */
		LLVMValueRef seq = cg_dim(f, st->m);
		gy = cg_i64c(L, 1);
		for (int i = 0; i < st->nbatch; i++)
			gy = LLVMBuildMul(B, gy, cg_dim(f, st->bdim[i]), "");
		work = LLVMBuildMul(B, gy, seq, "");
		gx = cdiv(w, seq, ATT_QUERIES);
		/* few blocks: the kernel of 64-query blocks, twice as many */
		LLVMValueRef sa[2] = {w->h.ex, cg_i64c(L, ATT_SMALL_GRID)};
		LLVMValueRef small =
		        LLVMBuildICmp(B, LLVMIntSLT, LLVMBuildMul(B, gx, gy, ""),
		                      cg_llvm_call(L, w->small_grid, sa, 2), "");
		kernel = LLVMBuildSelect(B, small, cg_i32c(L, gs->kernel_small), kernel, "");
		gx = LLVMBuildSelect(B, small, cdiv(w, seq, 64), gx, "");
		/* on Hopper, the wgmma kernel (64-query blocks) when loaded */
		if (gs->kernel_h >= 0) {
			LLVMValueRef ha[2] = {w->h.ex, cg_i32c(L, gs->kernel_h)};
			LLVMValueRef h = LLVMBuildICmp(
			        B, LLVMIntNE, cg_llvm_call(L, w->has_kernel, ha, 2),
			        cg_i32c(L, 0), "");
			kernel = LLVMBuildSelect(B, h, cg_i32c(L, gs->kernel_h), kernel, "");
			gx = LLVMBuildSelect(B, h, cdiv(w, seq, 64), gx, "");
		}
		gy = cg_host_imin(&w->h, gy, cg_i64c(L, 65535));
		bx = cg_i64c(L, 128);
	} else if (st->kind == CG_SOFTMAX || st->kind == CG_LAYER_NORM) {
		LLVMValueRef rows = cg_i64c(L, 1), len = cg_dim(f, st->dim[nd - 1]);
		for (int i = 0; i + 1 < nd; i++)
			rows = LLVMBuildMul(B, rows, cg_dim(f, st->dim[i]), "");
		work = LLVMBuildMul(B, rows, len, "");
		LLVMValueRef t =
		        LLVMBuildMul(B, cdiv(w, cdiv(w, len, 16), 32), cg_i64c(L, 32), "");
		bx = cg_host_imin(&w->h, cg_host_imax(&w->h, t, cg_i64c(L, 32)),
		                  cg_i64c(L, 1024));
		gx = cg_host_imin(&w->h, rows, cg_i64c(L, 1 << 30));
	} else if (st->kind == CG_REDUCE) {
		LLVMValueRef rows = cg_i64c(L, 1);
		for (int i = 0; i + 1 < nd; i++)
			rows = LLVMBuildMul(B, rows, cg_dim(f, st->dim[i]), "");
		work = rows;
		bx = cg_i64c(L, 128);
		gx = cg_host_imin(&w->h, cdiv(w, rows, 128), cg_i64c(L, 1 << 20));
	} else {
		LLVMValueRef n = cg_i64c(L, 1);
		for (int i = 0; i < nd; i++)
			n = LLVMBuildMul(B, n, cg_dim(f, st->dim[i]), "");
		if (st->kind == CG_GATHER)
			n = LLVMBuildMul(B, n, cg_dim(f, st->views[2].dim[1]), "");
		work = n;
		bx = cg_i64c(L, 256);
		/* a MAP thread takes two 16-byte vectors of output (four f32 or
		 * eight 16-bit elements each, kernels_gpu.c), one after the other:
		 * its setup is paid once for both; a GATHER thread one */
		int es = cg_gpu_elem_size(w->g->btype[st->views[0].buf]);
		int per = st->kind == CG_MAP      ? (es == 2 ? 16 : 8)
		          : st->kind == CG_GATHER ? (es == 2 ? 8 : 4)
		                                  : 1;
		gx = cg_host_imin(&w->h, cdiv(w, n, 256 * per), cg_i64c(L, 1 << 20));
	}
	LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "launch");
	LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "next");
	LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSGT, work, cg_i64c(L, 0), ""), run, next);
	LLVMPositionBuilderAtEnd(B, run);
	LLVMValueRef a[7] = {w->h.ex,
	                     kernel,
	                     cg_host_imax(&w->h, gx, cg_i64c(L, 1)),
	                     gy,
	                     bx,
	                     LLVMBuildBitCast(B, w->args, L->t_i64p, ""),
	                     cg_i32c(L, cg_gpu_kernel_nargs(p, st))};
	cg_llvm_call(L, w->launch, a, 7);
	LLVMBuildBr(B, next);
	LLVMPositionBuilderAtEnd(B, next);
}

static void gset(Fwd *w, int i, LLVMValueRef v)
{
	CgLlvm *L = w->h.L;
	LLVMValueRef p = LLVMBuildStructGEP2(B, w->T->gemm, w->gemm, (unsigned)i, "");
	LLVMBuildStore(B, v, p);
}

/* One GEMM call (with its outer batch loops): n columns, B at b, C at c,
 * bias at bias (or NULL). The last batch dim is the call's batch, the one
 * before it its outer batch (batch2); any before those are loops here. */
static void gemm_call(Fwd *w, const CgGpuStep *gs, LLVMValueRef n, LLVMValueRef b,
                      LLVMValueRef c, LLVMValueRef bias, LLVMValueRef res)
{
	CgLlvm *L = w->h.L;
	CgFn *f = &w->h.f;
	const CgStep *st = gs->st;
	const CgGpu *g = w->g;
	int abuf = gs->a_buf >= 0 ? gs->a_buf : st->views[1].buf;
	int bbuf = gs->b_buf >= 0 ? gs->b_buf : st->views[2].buf;
	int cbuf = st->views[0].buf;
	int ea = cg_gpu_elem_size(g->btype[abuf]), eb = cg_gpu_elem_size(g->btype[bbuf]);
	int ec = cg_gpu_elem_size(g->btype[cbuf]);
	LLVMValueRef a = view_addr(w, &st->views[1], gs->a_buf);
	CgBatchLoops bl;
	cg_host_batch_open(&w->h, st, st->nbatch > 2 ? st->nbatch - 2 : 0, &bl);
	gset(w, 0, cg_i64c(L, st->ta));
	gset(w, 1, cg_i64c(L, st->tb));
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
		gset(w, 8, cg_i64c(L, 0));
		gset(w, 9, cg_i64c(L, 0));
		gset(w, 10, cg_i64c(L, 0));
		gset(w, 11, cg_i64c(L, 1));
	}
	gset(w, 12, cg_i64c(L, cg_gpu_gemm_type(g->btype[abuf])));
	gset(w, 13, cg_i64c(L, cg_gpu_gemm_type(g->btype[bbuf])));
	gset(w, 14, cg_i64c(L, cg_gpu_gemm_type(g->btype[cbuf])));
	gset(w, 15,
	     cg_i64c(L, !bias      ? RT_EPI_NONE
	                : gs->gelu ? RT_EPI_GELU_BIAS
	                           : RT_EPI_BIAS));
	LLVMTypeRef dt = LLVMDoubleTypeInContext(L->ctx);
	gset(w, 16, LLVMConstReal(dt, st->alpha));
	gset(w, 17, LLVMConstReal(dt, res ? 1.0 : bias ? 0.0 : st->beta));
	gset(w, 18, cg_host_offset(&w->h, a, bl.offa, ea));
	gset(w, 19, cg_host_offset(&w->h, b, bl.offb, eb));
	gset(w, 20, cg_host_offset(&w->h, c, bl.offc, ec));
	gset(w, 21, bias ? bias : LLVMConstNull(L->t_i8p));
	if (st->nbatch >= 2) {
		int q = st->nbatch - 2;
		gset(w, 22, cg_dim(f, st->bdim[q]));
		gset(w, 23, cg_dim(f, st->bsa[q]));
		gset(w, 24, cg_dim(f, st->bsb[q]));
		gset(w, 25, cg_dim(f, st->bsc[q]));
	} else {
		gset(w, 22, cg_i64c(L, 1));
		gset(w, 23, cg_i64c(L, 0));
		gset(w, 24, cg_i64c(L, 0));
		gset(w, 25, cg_i64c(L, 0));
	}
	gset(w, 26, res ? cg_host_offset(&w->h, res, bl.offc, ec) : LLVMConstNull(L->t_i8p));
	LLVMValueRef args[2] = {w->h.ex, LLVMBuildBitCast(B, w->gemm, L->t_i8p, "")};
	cg_llvm_call(L, w->rt_gemm, args, 2);
	cg_host_batch_close(&w->h, &bl);
}

static void emit_gemm(Fwd *w, const CgGpuStep *gs)
{
	CgLlvm *L = w->h.L;
	CgFn *f = &w->h.f;
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
	int ec = cg_gpu_elem_size(g->btype[st->views[0].buf]);
	const CgView *bias[CG_MAX_GROUP];
	for (int i = 0; i < st->ngroup; i++)
		bias[i] = &gs->bias_view[i];
	LLVMValueRef b0 = view_addr(w, &st->gb[0], -1);
	LLVMValueRef bias0 = gs->bias ? view_addr(w, &gs->bias_view[0], -1) : NULL;
	LLVMValueRef adj = cg_host_group_adjacent(&w->h, st, b0, gs->bias ? bias : NULL, bias0);
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
		          cg_host_offset(&w->h, c, cg_dim(f, st->gc[i]), ec),
		          gs->bias ? view_addr(w, &gs->bias_view[i], -1) : NULL, NULL);
	LLVMBuildBr(B, done);
	LLVMPositionBuilderAtEnd(B, done);
}

static int gpu_elem_size(const void *ctx, int buf)
{
	const CgGpu *g = ctx;
	return cg_gpu_elem_size(g->btype[buf]);
}

static LLVMValueRef emit_forward(CgLlvm *L, const CgGpu *g, const GTypes *T,
                                 LLVMValueRef plan)
{
	const CgProgram *p = g->prog;
	Fwd w = {.g = g, .T = T};
	CgHostBufs bufs = {g->bufs, g->nbufs, &g->plan, plan, CG_GPU_ALIGN, gpu_elem_size, g};
	cg_host_begin(&w.h, L, p, "slapo_gpu_forward", T->exec, &bufs);
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

	/* the launches' argument block and rt_gpu_gemm's RtGemm */
	LLVMBasicBlockRef body = LLVMGetInsertBlock(L->b);
	LLVMPositionBuilderAtEnd(L->b, w.h.f.entry);
	int maxargs = g->max_views + p->nsyms + 2;
	w.args = LLVMBuildArrayAlloca(L->b, L->t_i64, cg_i64c(L, maxargs + 1), "args");
	w.gemm = LLVMBuildAlloca(L->b, T->gemm, "gemm");
	LLVMPositionBuilderAtEnd(L->b, body);
	w.errword = cg_llvm_call(L, ew, &w.h.ex, 1);
	for (int s = 0; s < g->nsteps; s++) {
		const CgGpuStep *gs = &g->steps[s];
		cg_host_prof_mark(&w.h, s);
		if (gs->st->kind == CG_GEMM)
			emit_gemm(&w, gs);
		else
			emit_launch(&w, gs);
	}
	return cg_host_end(&w.h, g->nsteps);
}

/* ---- the descriptor -------------------------------------------------------------------------- */

bool cg_gpu_emit_host(CgLlvm *L, const CgGpu *g)
{
	const CgProgram *p = g->prog;
	GTypes T;
	if (!make_types(L, &T))
		return false;
	LLVMValueRef plan =
	        cg_emit_plan(L, g->prog, &g->plan, CG_GPU_ALIGN, "slapo_gpu_plan");
	LLVMValueRef wsz = cg_host_workspace_size(L, "slapo_gpu_workspace_size", &g->plan, plan);
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
		dts[i] = cg_host_dl(L, T.dl, g->ptype[i]);
		offs[i] = cg_i64c(L, (int64_t)g->poff[i]);
	}
	const CgStep **steps = ARENA_ARRAY(p->arena, const CgStep *, g->nsteps + 1);
	for (int i = 0; i < g->nsteps; i++)
		steps[i] = g->steps[i].st;
	LLVMValueRef step_table =
	        cg_emit_step_table(L, p->arena, steps, g->nsteps, ".gpu_steps");
	if (!step_table)
		return false;
	LLVMValueRef f[19] = {
	        cg_i32c(L, RT_GPU_VERSION),
	        cg_i32c(L, g->prec),
	        cg_llvm_cstr(L, g->ptx ? g->ptx : ""),
	        cg_llvm_cstr(L, g->target),
	        cg_i32c(L, g->nkernels),
	        cg_i32c(L, g->nobjects),
	        const_array(L, L->t_i8p, names, g->nkernels, ".kernel_names"),
	        const_array(L, L->t_i8p, objs, g->nobjects, ".objects"),
	        const_array(L, T.dl, dts, np, ".param_dtypes"),
	        const_array(L, L->t_i64, offs, np, ".param_offsets"),
	        cg_i64c(L, (int64_t)g->params_size),
	        LLVMConstBitCast(wsz, L->t_i8p),
	        LLVMConstBitCast(fwd, L->t_i8p),
	        cg_i32c(L, g->nsteps),
	        step_table,
	        cg_emit_step_costs(L, p, steps, g->nsteps, gpu_elem_size, g,
	                           "slapo_gpu_step_costs"),
	        cg_llvm_cstr(L, g->ptx_h ? g->ptx_h : ""),
	        cg_i32c(L, g->nkernels_h),
	        cg_i32c(L, 0),
	};
	LLVMValueRef init = LLVMConstNamedStruct(T.desc, f, 19);
	LLVMValueRef gd = LLVMAddGlobal(L->mod, T.desc, "slapo_gpu_desc");
	LLVMSetInitializer(gd, init);
	LLVMSetGlobalConstant(gd, 1);
	LLVMSetVisibility(gd, LLVMHiddenVisibility);
	return true;
}
