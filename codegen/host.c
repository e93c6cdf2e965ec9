/* host.c - what the CPU driver (driver.c) and the GPU driver's host code
 * (driver_gpu.c) build their functions from:
 *
 *   - the LLVM types of RtExec and DLDataType, checked against rt.h's C
 *     layouts (offsetof) before anything uses them;
 *   - workspace_size(sym): the plan function's total;
 *   - the frame of a forward(ex): RtExec's fields read in the entry
 *     block, the plan function called, the base address of every buffer
 *     (inputs, outputs and parameters from RtExec's lists, temporaries in
 *     the workspace), profile marks, `return SLAPO_OK`;
 *   - a GEMM step's outer batch dims as loops moving its operands, and
 *     the test whether a group's weights (and biases) lie side by side.
 *
 * Each driver keeps what is its own: the runtime calls, their argument
 * blocks, the descriptor constant.
 */
#include <stddef.h>

#include "codegen/codegen.h"
#include "runtime/rt.h"

#define B (L->b)

LLVMValueRef cg_i32c(CgLlvm *L, int64_t v)
{
	return LLVMConstInt(L->t_i32, (unsigned long long)v, 1);
}

LLVMValueRef cg_i64c(CgLlvm *L, int64_t v)
{
	return LLVMConstInt(L->t_i64, (unsigned long long)v, 1);
}

/* ---- types -------------------------------------------------------------------------------- */

LLVMTypeRef cg_host_exec_type(CgLlvm *L)
{
	LLVMTypeRef p = L->t_i8p, i64 = L->t_i64, i32 = L->t_i32;
	LLVMTypeRef ex[13] = {p, L->t_i64p,          p, p, p, p, i64, i32, i32, p, p,
	                      p, LLVMArrayType(p, 3)};
	LLVMTypeRef t = LLVMStructTypeInContext(L->ctx, ex, 13, 0);
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
	return cg_llvm_check_layout(L, t, o_ex, 13, sizeof(RtExec), "RtExec") ? t : NULL;
}

LLVMTypeRef cg_host_dl_type(CgLlvm *L)
{
	LLVMTypeRef dl[3] = {L->t_i8, L->t_i8, LLVMInt16TypeInContext(L->ctx)};
	LLVMTypeRef t = LLVMStructTypeInContext(L->ctx, dl, 3, 0);
	static const size_t o_dl[] = {offsetof(DLDataType, code),
	                              offsetof(DLDataType, bits),
	                              offsetof(DLDataType, lanes)};
	return cg_llvm_check_layout(L, t, o_dl, 3, sizeof(DLDataType), "DLDataType")
	               ? t
	               : NULL;
}

LLVMValueRef cg_host_dl(CgLlvm *L, LLVMTypeRef dl, IrDType t)
{
	int code = kDLFloat, bits = 32;
	switch (t) {
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
	case IR_BF16:
		code = kDLBfloat;
		bits = 16;
		break;
	case IR_F16:
		bits = 16;
		break;
	default:
		break;
	}
	LLVMValueRef f[3] = {LLVMConstInt(L->t_i8, (unsigned)code, 0),
	                     LLVMConstInt(L->t_i8, (unsigned)bits, 0),
	                     LLVMConstInt(LLVMInt16TypeInContext(L->ctx), 1, 0)};
	return LLVMConstNamedStruct(dl, f, 3);
}

/* ---- workspace_size ----------------------------------------------------------------------- */

LLVMValueRef cg_host_workspace_size(CgLlvm *L, const char *name, const CgPlan *pl,
                                    LLVMValueRef plan)
{
	LLVMValueRef fn = LLVMAddFunction(L->mod, name,
	                                  LLVMFunctionType(L->t_i64, &L->t_i64p, 1, 0));
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(L->ctx, fn, "entry");
	LLVMPositionBuilderAtEnd(B, bb);
	LLVMValueRef offs =
	        LLVMBuildArrayAlloca(B, L->t_i64, cg_i64c(L, pl->nregions + 1), "offs");
	LLVMValueRef args[2] = {LLVMGetParam(fn, 0), offs};
	LLVMBuildRet(B, cg_llvm_call(L, plan, args, 2));
	return fn;
}

/* ---- forward ------------------------------------------------------------------------------ */

LLVMValueRef cg_host_field(CgHost *h, int i, LLVMTypeRef t)
{
	CgLlvm *L = h->L;
	LLVMValueRef ex = LLVMBuildBitCast(B, h->ex, LLVMPointerType(h->exec, 0), "");
	return LLVMBuildLoad2(B, t, LLVMBuildStructGEP2(B, h->exec, ex, (unsigned)i, ""),
	                      "");
}

/* ((i8 **)arr)[i] */
static LLVMValueRef ptr_at(CgLlvm *L, LLVMValueRef arr, int i)
{
	LLVMValueRef idx = cg_i64c(L, i);
	return LLVMBuildLoad2(B, L->t_i8p,
	                      LLVMBuildInBoundsGEP2(B, L->t_i8p, arr, &idx, 1, ""), "");
}

void cg_host_begin(CgHost *h, CgLlvm *L, const CgProgram *p, const char *name,
                   LLVMTypeRef exec, const CgHostBufs *bufs)
{
	LLVMValueRef fn = LLVMAddFunction(L->mod, name,
	                                  LLVMFunctionType(L->t_i32, &L->t_i8p, 1, 0));
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	*h = (CgHost){.L = L, .exec = exec, .bufs = *bufs};
	cg_fn_begin(&h->f, L, p, fn);
	h->ex = LLVMGetParam(fn, 0);
	LLVMTypeRef ps[2] = {L->t_i8p, L->t_i32};
	h->rt_prof_step =
	        cg_llvm_decl(L, "rt_prof_step", LLVMFunctionType(L->t_void, ps, 2, 0));

	/* entry: RtExec's fields and the plan's offsets */
	LLVMPositionBuilderAtEnd(B, h->f.entry);
	h->f.sym = cg_host_field(h, 1, L->t_i64p);
	LLVMTypeRef ppt = LLVMPointerType(L->t_i8p, 0);
	LLVMValueRef ins = LLVMBuildBitCast(B, cg_host_field(h, 2, L->t_i8p), ppt, "");
	LLVMValueRef outs = LLVMBuildBitCast(B, cg_host_field(h, 3, L->t_i8p), ppt, "");
	LLVMValueRef prm = LLVMBuildBitCast(B, cg_host_field(h, 4, L->t_i8p), ppt, "");
	LLVMValueRef ws = cg_host_field(h, 5, L->t_i8p);
	const CgPlan *pl = bufs->plan;
	LLVMValueRef offs =
	        LLVMBuildArrayAlloca(B, L->t_i64, cg_i64c(L, pl->nregions + 1), "offs");
	LLVMPositionBuilderAtEnd(B, h->f.body);
	if (pl->nregions) {
		LLVMValueRef args[2] = {h->f.sym, offs};
		cg_llvm_call(L, bufs->plan_fn, args, 2);
	}
	h->base = ARENA_ARRAY(p->arena, LLVMValueRef, bufs->n + 1);
	for (int i = 0; i < bufs->n; i++) {
		const CgBuf *b = bufs->bufs[i];
		switch (b->kind) {
		case CG_BUF_INPUT:
			h->base[i] = ptr_at(L, ins, b->index);
			break;
		case CG_BUF_OUTPUT:
			h->base[i] = ptr_at(L, outs, b->index);
			break;
		case CG_BUF_PARAM:
			h->base[i] = ptr_at(L, prm, b->index);
			break;
		case CG_BUF_TEMP:
			h->base[i] = cg_plan_addr(&h->f, ws, offs, pl, bufs->align, i);
			break;
		}
	}
}

LLVMValueRef cg_host_end(CgHost *h, int nsteps)
{
	cg_host_prof_mark(h, nsteps);
	LLVMBuildRet(h->L->b, cg_i32c(h->L, SLAPO_OK));
	cg_fn_end(&h->f);
	return h->f.fn;
}

void cg_host_prof_mark(CgHost *h, int step)
{
	CgLlvm *L = h->L;
	LLVMValueRef prof = cg_host_field(h, 11, L->t_i8p); /* RtExec.prof */
	LLVMBasicBlockRef on = LLVMAppendBasicBlockInContext(L->ctx, h->f.fn, "prof");
	LLVMBasicBlockRef next =
	        LLVMAppendBasicBlockInContext(L->ctx, h->f.fn, "prof_done");
	LLVMBuildCondBr(B, LLVMBuildIsNotNull(B, prof, ""), on, next);
	LLVMPositionBuilderAtEnd(B, on);
	LLVMValueRef args[2] = {h->ex, cg_i32c(L, step)};
	cg_llvm_call(L, h->rt_prof_step, args, 2);
	LLVMBuildBr(B, next);
	LLVMPositionBuilderAtEnd(B, next);
}

LLVMValueRef cg_host_elem_addr(CgHost *h, int buf, LLVMValueRef off)
{
	CgLlvm *L = h->L;
	if (buf < 0)
		return LLVMConstNull(L->t_i8p);
	return cg_host_offset(h, h->base[buf], off, h->bufs.esize(h->bufs.ctx, buf));
}

LLVMValueRef cg_host_view_addr(CgHost *h, const CgView *v)
{
	return cg_host_elem_addr(h, v->buf, cg_poly(&h->f, &v->off));
}

LLVMValueRef cg_host_offset(CgHost *h, LLVMValueRef p, LLVMValueRef elems, int esize)
{
	CgLlvm *L = h->L;
	LLVMValueRef bytes = LLVMBuildMul(B, elems, cg_i64c(L, esize), "");
	return LLVMBuildInBoundsGEP2(B, L->t_i8, p, &bytes, 1, "");
}

LLVMValueRef cg_host_imax(CgHost *h, LLVMValueRef a, LLVMValueRef b)
{
	CgLlvm *L = h->L;
	return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, a, b, ""), a, b, "");
}

LLVMValueRef cg_host_imin(CgHost *h, LLVMValueRef a, LLVMValueRef b)
{
	CgLlvm *L = h->L;
	return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, b, ""), a, b, "");
}

/* ---- GEMM steps --------------------------------------------------------------------------- */

void cg_host_batch_open(CgHost *h, const CgStep *st, int nloop, CgBatchLoops *bl)
{
	CgLlvm *L = h->L;
	CgFn *f = &h->f;
	bl->n = nloop;
	bl->offa = bl->offb = bl->offc = cg_i64c(L, 0);
	for (int i = 0; i < nloop; i++) {
		LLVMValueRef iv = cg_loop_begin(f, &bl->loop[i], cg_i64c(L, 0),
		                                cg_dim(f, st->bdim[i]));
		bl->iv[i] = iv;
		bl->offa = LLVMBuildAdd(
		        B, bl->offa, LLVMBuildMul(B, iv, cg_dim(f, st->bsa[i]), ""), "");
		bl->offb = LLVMBuildAdd(
		        B, bl->offb, LLVMBuildMul(B, iv, cg_dim(f, st->bsb[i]), ""), "");
		bl->offc = LLVMBuildAdd(
		        B, bl->offc, LLVMBuildMul(B, iv, cg_dim(f, st->bsc[i]), ""), "");
	}
}

void cg_host_batch_close(CgHost *h, CgBatchLoops *bl)
{
	for (int i = bl->n - 1; i >= 0; i--)
		cg_loop_end(&h->f, &bl->loop[i], bl->iv[i], cg_i64c(h->L, 1));
}

LLVMValueRef cg_host_group_adjacent(CgHost *h, const CgStep *st, LLVMValueRef b0,
                                    const CgView *const *bias, LLVMValueRef bias0)
{
	CgLlvm *L = h->L;
	CgFn *f = &h->f;
	LLVMValueRef kb =
	        LLVMBuildMul(B, cg_dim(f, st->k),
	                     cg_i64c(L, h->bufs.esize(h->bufs.ctx, st->gb[0].buf)), "");
	LLVMValueRef adj = LLVMConstInt(L->t_i1, 1, 0);
	for (int i = 1; i < st->ngroup; i++) {
		LLVMValueRef off = LLVMBuildMul(B, cg_dim(f, st->gc[i]), kb, "");
		LLVMValueRef want = LLVMBuildInBoundsGEP2(B, L->t_i8, b0, &off, 1, "");
		adj = LLVMBuildAnd(B, adj,
		                   LLVMBuildICmp(B, LLVMIntEQ, want,
		                                 cg_host_view_addr(h, &st->gb[i]), ""),
		                   "");
		if (!bias)
			continue;
		want = cg_host_offset(h, bias0, cg_dim(f, st->gc[i]),
		                      h->bufs.esize(h->bufs.ctx, bias[i]->buf));
		adj = LLVMBuildAnd(B, adj,
		                   LLVMBuildICmp(B, LLVMIntEQ, want,
		                                 cg_host_view_addr(h, bias[i]), ""),
		                   "");
	}
	return adj;
}
