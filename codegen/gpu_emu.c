/* gpu_emu.c - the GPU kernels of a model compiled for the host, so the
 * CUDA backend can be tested where there is no GPU: tests/gpu/fake_cuda.c
 * (a stand-in for libcuda, cuBLAS and cuBLASLt) loads this library instead
 * of the PTX and runs each kernel's threads as coroutines.
 *
 * The kernels are emitted exactly as for NVPTX (same steps, same merged
 * names); the NVVM intrinsics they use (thread and block indices,
 * barrier0, shfl.sync.bfly.f32) become calls through the exported table
 * slapo_emu_hooks[6] (tid.x, ntid.x, ctaid.x, nctaid.x, barrier, shfl),
 * which the fake fills after dlopen. Test support only: slapoc --gpu-emu=F.
 */
#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/gpu.h"

extern char **environ;

static const char *const HOOKS[6] = {
        "llvm.nvvm.read.ptx.sreg.tid.x",
        "llvm.nvvm.read.ptx.sreg.ntid.x",
        "llvm.nvvm.read.ptx.sreg.ctaid.x",
        "llvm.nvvm.read.ptx.sreg.nctaid.x",
        "llvm.nvvm.barrier0",
        "llvm.nvvm.shfl.sync.bfly.f32",
};

/* intrinsic -> a function calling slapo_emu_hooks[i] */
static void hook(CgLlvm *L, LLVMValueRef table, int i)
{
	LLVMValueRef intr = LLVMGetNamedFunction(L->mod, HOOKS[i]);
	if (!intr)
		return;
	LLVMTypeRef fty = LLVMGlobalGetValueType(intr);
	char name[32];
	snprintf(name, sizeof name, "slapo_emu_hook%d", i);
	LLVMValueRef fn = LLVMAddFunction(L->mod, name, fty);
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(L->ctx, fn, "entry");
	LLVMPositionBuilderAtEnd(L->b, bb);
	LLVMValueRef idx[2] = {LLVMConstInt(L->t_i64, 0, 0),
	                       LLVMConstInt(L->t_i64, (unsigned)i, 0)};
	LLVMValueRef slot = LLVMBuildInBoundsGEP2(L->b, LLVMArrayType(L->t_i8p, 6), table,
	                                          idx, 2, "");
	LLVMValueRef p = LLVMBuildLoad2(L->b, L->t_i8p, slot, "");
	LLVMValueRef f = LLVMBuildBitCast(L->b, p, LLVMPointerType(fty, 0), "");
	unsigned n = LLVMCountParams(fn);
	LLVMValueRef args[4];
	for (unsigned k = 0; k < n && k < 4; k++)
		args[k] = LLVMGetParam(fn, k);
	LLVMValueRef r = LLVMBuildCall2(L->b, fty, f, args, n, "");
	if (LLVMGetTypeKind(LLVMGetReturnType(fty)) == LLVMVoidTypeKind)
		LLVMBuildRetVoid(L->b);
	else
		LLVMBuildRet(L->b, r);
	LLVMReplaceAllUsesWith(intr, fn);
}

static bool run(Diag *d, char **argv)
{
	pid_t pid;
	int st = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
	if (st != 0) {
		diag_plain(d, DIAG_ERROR, "cannot run '%s': %s", argv[0], strerror(st));
		return false;
	}
	int ws = 0;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
		diag_plain(d, DIAG_ERROR, "'%s' failed", argv[0]);
		return false;
	}
	return true;
}

bool cg_gpu_build_emu(const CgGpu *g, Diag *d, const char *out, const char *cc)
{
	CgLlvm L;
	bool ok = cg_llvm_init(&L, d, "slapo_gpu_emu", NULL);
	L.math16 = g->prec == CG_PREC_BF16 || g->prec == CG_PREC_FP16;
	for (int k = 0; ok && k < g->nkernels; k++)
		for (int s = 0; s < g->nsteps; s++)
			if (g->steps[s].kernel == k || g->steps[s].kernel_small == k) {
				CgGpuStep v = g->steps[s];
				if (v.kernel_small == k)
					v.st = v.small;
				ok = cg_gpu_emit_kernel(&L, g, &v, g->kernel_names[k]);
				break;
			}
	if (ok) {
		cg_gpu_emit_utils(&L);
		LLVMTypeRef tt = LLVMArrayType(L.t_i8p, 6);
		LLVMValueRef table = LLVMAddGlobal(L.mod, tt, "slapo_emu_hooks");
		LLVMSetInitializer(table, LLVMConstNull(tt));
		for (int i = 0; i < 6; i++)
			hook(&L, table, i);
		ok = cg_llvm_optimize(&L, false);
	}
	char obj[512];
	snprintf(obj, sizeof obj, "%s.o", out);
	ok = ok && cg_llvm_write(&L, CG_EMIT_OBJ, obj);
	cg_llvm_dispose(&L);
	if (!ok)
		return false;
	if (!cc || !*cc)
		cc = getenv("CC");
	char *argv[] = {(char *)(cc && *cc ? cc : "cc"),
	                "-shared",
	                "-o",
	                (char *)out,
	                obj,
	                "-lm",
	                NULL};
	ok = run(d, argv);
	unlink(obj);
	return ok;
}
