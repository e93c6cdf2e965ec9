/* wgmma.c - Hopper's warpgroup matrix products (wgmma.mma_async, PTX ISA
 * 8.0, sm_90a) as inline PTX, for kernels of the sm_90a module (nvptx.c):
 * operand descriptors of 128-byte-swizzled shared tiles, a product of k16
 * steps started as one commit group, and the wait for it. The attention
 * kernel's Hopper form uses them (attention_gpu.c).
 *
 * A warpgroup (4 warps, 128 threads) computes a 64 x 64 tile of D in f32:
 * m64n64k16 per step, A K-major from shared memory by descriptor or from
 * registers in the m16n8k16 fragment layout (warp w holds rows 16 w ..),
 * B from shared memory by descriptor, K-major or (trans) MN-major; D, 32
 * f32 a thread, in the layout of eight m16n8 C fragments. wgmma runs
 * asynchronously: the registers it reads or writes pass through the fence
 * before it and the wait after it (asm statements that give the values
 * back), so no other instruction touches them in between.
 */
#include <stdio.h>
#include <string.h>

#include "codegen/gpu.h"

#define B (f->L->b)

void cg_wg_through(CgFn *f, const char *text, LLVMValueRef *v, int n)
{
	CgLlvm *L = f->L;
	if (n == 0) {
		LLVMTypeRef fty = LLVMFunctionType(L->t_void, NULL, 0, 0);
		LLVMBuildCall2(B, fty,
		               LLVMGetInlineAsm(fty, (char *)text, strlen(text),
		                                "~{memory}", 9, 1, 0,
		                                LLVMInlineAsmDialectATT, 0),
		               NULL, 0, "");
		return;
	}
	LLVMTypeRef t[48];
	char cons[48 * 8], *p = cons;
	for (int i = 0; i < n; i++) {
		t[i] = LLVMTypeOf(v[i]);
		p += sprintf(p, "%s=%c", i ? "," : "", t[i] == L->t_f32 ? 'f' : 'r');
	}
	for (int i = 0; i < n; i++)
		p += sprintf(p, ",%d", i);
	p += sprintf(p, ",~{memory}");
	LLVMTypeRef rt = LLVMStructTypeInContext(L->ctx, t, (unsigned)n, 0);
	LLVMTypeRef fty = LLVMFunctionType(rt, t, (unsigned)n, 0);
	LLVMValueRef fn =
	        LLVMGetInlineAsm(fty, (char *)text, strlen(text), cons, strlen(cons), 1,
	                         0, LLVMInlineAsmDialectATT, 0);
	LLVMValueRef r = LLVMBuildCall2(B, fty, fn, v, (unsigned)n, "");
	for (int i = 0; i < n; i++)
		v[i] = LLVMBuildExtractValue(B, r, (unsigned)i, "");
}

/* d = A B (+ d when acc): A from the four registers A, or when A is NULL
 * from shared memory at descriptor adesc (K-major); B at descriptor
 * bdesc, MN-major (transposed) when trans */
static void wgmma(CgFn *f, bool f16, LLVMValueRef d[32], bool acc, LLVMValueRef A[4],
                  LLVMValueRef adesc, LLVMValueRef bdesc, bool trans)
{
	CgLlvm *L = f->L;
	LLVMTypeRef ft[32], at[38];
	LLVMValueRef args[38];
	int n = 0;
	char text[512], cons[400], *p = text, *c = cons;
	for (int i = 0; i < 4 && A; i++, n++) {
		at[n] = L->t_i32;
		args[n] = A[i];
		c += sprintf(c, "r,");
	}
	if (!A) {
		at[n] = L->t_i64;
		args[n++] = adesc;
		c += sprintf(c, "l,");
	}
	at[n] = L->t_i64;
	args[n++] = bdesc;
	at[n] = L->t_i32;
	args[n++] = LLVMConstInt(L->t_i32, acc ? 1 : 0, 0);
	c += sprintf(c, "l,r");
	/* operands: d $0..$31, then A ($32..$35, or $32), B, the scale flag */
	p += sprintf(p,
	             "{\n.reg .pred p;\nsetp.ne.b32 p, $%d, 0;\n"
	             "wgmma.mma_async.sync.aligned.m64n64k16.f32.%s.%s {",
	             32 + n - 1, f16 ? "f16" : "bf16", f16 ? "f16" : "bf16");
	for (int i = 0; i < 32; i++) {
		ft[i] = L->t_f32;
		p += sprintf(p, "%s$%d", i ? "," : "", i);
	}
	if (A)
		sprintf(p, "}, {$32,$33,$34,$35}, $36, p, 1, 1, %d;\n}", trans ? 1 : 0);
	else
		sprintf(p, "}, $32, $33, p, 1, 1, 0, %d;\n}", trans ? 1 : 0);
	char outs[32 * 3 + 1], *o = outs;
	for (int i = 0; i < 32; i++)
		o += sprintf(o, "=f,");
	for (int i = 0; acc && i < 32; i++, n++) {
		c += sprintf(c, ",%d", i);
		at[n] = L->t_f32;
		args[n] = d[i];
	}
	sprintf(c, ",~{memory}");
	char all[sizeof outs + sizeof cons];
	snprintf(all, sizeof all, "%s%s", outs, cons);
	LLVMTypeRef rt = LLVMStructTypeInContext(L->ctx, ft, 32, 0);
	LLVMTypeRef fty = LLVMFunctionType(rt, at, (unsigned)n, 0);
	LLVMValueRef fn = LLVMGetInlineAsm(fty, text, strlen(text), all, strlen(all), 1,
	                                   0, LLVMInlineAsmDialectATT, 0);
	LLVMValueRef r = LLVMBuildCall2(B, fty, fn, args, (unsigned)n, "");
	for (int i = 0; i < 32; i++)
		d[i] = LLVMBuildExtractValue(B, r, (unsigned)i, "");
}

/* The descriptor of a swizzled tile at shared address p: start address,
 * leading offset 16 bytes, stride 1024 (eight 128-byte rows), 128-byte
 * swizzle; byte offset `off` (a multiple of 16) added to the start. */
LLVMValueRef cg_wg_desc(CgFn *f, LLVMValueRef p, int off)
{
	CgLlvm *L = f->L;
	LLVMValueRef addr = LLVMBuildAdd(B, LLVMBuildPtrToInt(B, p, L->t_i64, ""),
	                                 cg_i64(f, off), "");
	LLVMValueRef lo = LLVMBuildAnd(B, LLVMBuildLShr(B, addr, cg_i64(f, 4), ""),
	                               cg_i64(f, 0x3FFF), "");
	uint64_t hi = (1ull << 16) | (64ull << 32) | (1ull << 62);
	return LLVMBuildOr(B, lo, LLVMConstInt(L->t_i64, hi, 0), "");
}

/* Starts one m64 x 64 product over k16 steps, A K-major from the
 * swizzled tile atile (steps 32 bytes apart) or from the registers A, B
 * from btile (steps step_bytes apart): the fence (the values of acc and
 * of A's registers through it), the wgmmas, one commit group. d is not
 * to be read before att_wg_wait. */
void cg_wg_issue(CgFn *f, bool f16, LLVMValueRef d[32], bool acc, LLVMValueRef A[][4],
                 LLVMValueRef atile, int steps, LLVMValueRef btile, int step_bytes,
                 bool trans)
{
	LLVMValueRef v[32 + 4 * 4], fr[4][4];
	int n = 0;
	for (int i = 0; acc && i < 32; i++)
		v[n++] = d[i];
	for (int k = 0; !atile && k < steps; k++)
		for (int r = 0; r < 4; r++)
			v[n++] = A[k][r];
	cg_wg_through(f, "wgmma.fence.sync.aligned;", v, n);
	n = 0;
	for (int i = 0; acc && i < 32; i++)
		d[i] = v[n++];
	for (int k = 0; !atile && k < steps; k++)
		for (int r = 0; r < 4; r++)
			fr[k][r] = v[n++];
	for (int k = 0; k < steps; k++)
		wgmma(f, f16, d, acc || k > 0, atile ? NULL : fr[k],
		      atile ? cg_wg_desc(f, atile, 32 * k) : NULL,
		      cg_wg_desc(f, btile, k * step_bytes), trans);
	cg_wg_through(f, "wgmma.commit_group.sync.aligned;", NULL, 0);
}

/* Waits until at most `pending` commit groups are in flight; d (32
 * values, of a group that is then done) through the wait. */
void cg_wg_wait(CgFn *f, LLVMValueRef d[32], int pending)
{
	char text[48];
	snprintf(text, sizeof text, "wgmma.wait_group.sync.aligned %d;", pending);
	cg_wg_through(f, text, d, 32);
}
