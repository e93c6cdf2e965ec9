/* llvm.c - the LLVM context of one compilation: module, builder, the
 * target machine for the host (LLVMGetHostCPUName/Features) or a named
 * CPU (--cpu=x86-64-v3), the O3 pipeline (on the host after mergefunc), and
 * writing LLVM IR, assembly or an object file. Also small helpers to
 * declare functions and intrinsics by name.
 */
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "codegen/codegen.h"

/* Whether a comma-separated feature list holds exactly `f` ("+fma"). */
static bool has_feature(const char *list, const char *f)
{
	size_t n = strlen(f);
	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == n && strncmp(p, f, n) == 0)
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

/* f32 lanes in a vector register for a CPU: from the host's features,
 * or, for a named CPU, from what LLVM knows it has. */
static int lanes_for(const char *cpu, const char *features)
{
	if (features && *features) {
		if (has_feature(features, "+avx512f"))
			return 16;
		if (has_feature(features, "+avx"))
			return 8;
		return 4;
	}
	static const char *const v16[] = {"x86-64-v4", "skylake-avx512", "cascadelake",
	                                  "cooperlake", "icelake", "tigerlake", "sapphirerapids",
	                                  "rocketlake", "alderlake-avx512", "znver4", "znver5",
	                                  "knl", "knm", NULL};
	static const char *const v8[] = {"x86-64-v3", "haswell", "broadwell", "skylake",
	                                 "alderlake", "znver1", "znver2", "znver3",
	                                 "bdver4", "core-avx2", "sandybridge", "ivybridge",
	                                 "btver2", "bdver1", "bdver2", "bdver3", NULL};
	for (int i = 0; v16[i]; i++)
		if (strncmp(cpu, v16[i], strlen(v16[i])) == 0)
			return 16;
	for (int i = 0; v8[i]; i++)
		if (strncmp(cpu, v8[i], strlen(v8[i])) == 0)
			return 8;
	return 4;
}

void cg_llvm_module(CgLlvm *L, const char *module_name)
{
	L->ctx = LLVMContextCreate();
	L->mod = LLVMModuleCreateWithNameInContext(module_name, L->ctx);
	LLVMSetTarget(L->mod, L->triple);
	L->td = LLVMCreateTargetDataLayout(L->tm);
	LLVMSetModuleDataLayout(L->mod, L->td);
	L->b = LLVMCreateBuilderInContext(L->ctx);
	L->t_void = LLVMVoidTypeInContext(L->ctx);
	L->t_i1 = LLVMInt1TypeInContext(L->ctx);
	L->t_i8 = LLVMInt8TypeInContext(L->ctx);
	L->t_i32 = LLVMInt32TypeInContext(L->ctx);
	L->t_i64 = LLVMInt64TypeInContext(L->ctx);
	L->t_f32 = LLVMFloatTypeInContext(L->ctx);
	L->t_i8p = LLVMPointerType(L->t_i8, 0);
	L->t_i64p = LLVMPointerType(L->t_i64, 0);
	L->t_f32p = LLVMPointerType(L->t_f32, 0);
	LLVMTypeRef kp[3] = {L->t_i8p, L->t_i64, L->t_i64};
	L->t_kernel = LLVMFunctionType(L->t_void, kp, 3, 0);
}

bool cg_llvm_init(CgLlvm *L, Diag *d, const char *module_name, const char *cpu)
{
	memset(L, 0, sizeof *L);
	L->diag = d;
	if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter()) {
		diag_plain(d, DIAG_ERROR, "LLVM has no code generator for this host");
		return false;
	}
	L->triple = LLVMGetDefaultTargetTriple();
	LLVMTargetRef target;
	char *err = NULL;
	if (LLVMGetTargetFromTriple(L->triple, &target, &err)) {
		diag_plain(d, DIAG_ERROR, "LLVM target %s: %s", L->triple, err ? err : "?");
		LLVMDisposeMessage(err);
		return false;
	}
	if (!cpu || !*cpu || strcmp(cpu, "native") == 0) {
		L->cpu = LLVMGetHostCPUName();
		L->features = LLVMGetHostCPUFeatures();
	} else {
		L->cpu = LLVMCreateMessage(cpu);
		L->features = LLVMCreateMessage("");
	}
	L->vw = lanes_for(L->cpu, L->features);
	L->avx512 = L->vw == 16;
	if (*L->features)
		L->has_fma = has_feature(L->features, "+fma");
	else
		L->has_fma = L->vw >= 8 && !strstr(L->cpu, "sandybridge") &&
		             !strstr(L->cpu, "ivybridge") && !strstr(L->cpu, "btver2");
	L->tm = LLVMCreateTargetMachine(target, L->triple, L->cpu, L->features,
	                                LLVMCodeGenLevelAggressive, LLVMRelocPIC,
	                                LLVMCodeModelDefault);
	if (!L->tm) {
		diag_plain(d, DIAG_ERROR, "LLVM cannot make a target machine for cpu '%s'", L->cpu);
		return false;
	}
	cg_llvm_module(L, module_name);
	return true;
}

void cg_llvm_dispose(CgLlvm *L)
{
	if (L->b)
		LLVMDisposeBuilder(L->b);
	if (L->mod)
		LLVMDisposeModule(L->mod);
	if (L->td)
		LLVMDisposeTargetData(L->td);
	if (L->ctx)
		LLVMContextDispose(L->ctx);
	if (L->tm)
		LLVMDisposeTargetMachine(L->tm);
	LLVMDisposeMessage(L->triple);
	LLVMDisposeMessage(L->cpu);
	LLVMDisposeMessage(L->features);
	memset(L, 0, sizeof *L);
}

bool cg_llvm_optimize(CgLlvm *L, bool verify_only)
{
	char *msg = NULL;
	if (LLVMVerifyModule(L->mod, LLVMReturnStatusAction, &msg)) {
		diag_plain(L->diag, DIAG_ERROR, "internal error: generated LLVM IR is invalid: %s",
		           msg ? msg : "?");
		LLVMDisposeMessage(msg);
		return false;
	}
	LLVMDisposeMessage(msg);
	if (verify_only)
		return true;
	LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
	LLVMPassBuilderOptionsSetLoopVectorization(opts, 1);
	LLVMPassBuilderOptionsSetSLPVectorization(opts, 1);
	LLVMPassBuilderOptionsSetLoopUnrolling(opts, 1);
	LLVMPassBuilderOptionsSetLoopInterleaving(opts, 1);
	/* the host module: identical functions merged first (a model's layers
	 * make the same kernels again and again: 190 -> 17 functions for
	 * bert-large, O3's time with them); NVPTX kernels are merged as they
	 * are made (nvptx.c) */
	const char *pipeline = L->nvptx ? "default<O3>" : "mergefunc,default<O3>";
	LLVMErrorRef e = LLVMRunPasses(L->mod, pipeline, L->tm, opts);
	LLVMDisposePassBuilderOptions(opts);
	if (e) {
		char *m = LLVMGetErrorMessage(e);
		diag_plain(L->diag, DIAG_ERROR, "LLVM optimisation failed: %s", m);
		LLVMDisposeErrorMessage(m);
		return false;
	}
	return true;
}

bool cg_llvm_write(CgLlvm *L, CgEmit what, const char *path)
{
	char *err = NULL;
	bool bad;
	if (what == CG_EMIT_LLVM)
		bad = LLVMPrintModuleToFile(L->mod, path, &err);
	else
		bad = LLVMTargetMachineEmitToFile(L->tm, L->mod, (char *)path,
		                                  what == CG_EMIT_ASM ? LLVMAssemblyFile
		                                                      : LLVMObjectFile,
		                                  &err);
	if (bad) {
		diag_plain(L->diag, DIAG_ERROR, "cannot write %s: %s", path, err ? err : "?");
		LLVMDisposeMessage(err);
		return false;
	}
	return true;
}

LLVMValueRef cg_llvm_decl(CgLlvm *L, const char *name, LLVMTypeRef fnty)
{
	LLVMValueRef f = LLVMGetNamedFunction(L->mod, name);
	if (f)
		return f;
	f = LLVMAddFunction(L->mod, name, fnty);
	if (strncmp(name, "llvm.", 5) != 0)
		LLVMSetVisibility(f, LLVMHiddenVisibility);
	return f;
}

/* ".f32", ".v16f32", ".i64", ".v8i32" */
static void type_suffix(char *buf, size_t n, LLVMTypeRef t)
{
	char inner[16];
	LLVMTypeRef e = t;
	unsigned lanes = 0;
	if (LLVMGetTypeKind(t) == LLVMVectorTypeKind) {
		lanes = LLVMGetVectorSize(t);
		e = LLVMGetElementType(t);
	}
	if (LLVMGetTypeKind(e) == LLVMFloatTypeKind)
		snprintf(inner, sizeof inner, "f32");
	else if (LLVMGetTypeKind(e) == LLVMDoubleTypeKind)
		snprintf(inner, sizeof inner, "f64");
	else
		snprintf(inner, sizeof inner, "i%u", LLVMGetIntTypeWidth(e));
	if (lanes)
		snprintf(buf, n, ".v%u%s", lanes, inner);
	else
		snprintf(buf, n, ".%s", inner);
}

LLVMValueRef cg_llvm_intrinsic(CgLlvm *L, const char *base, LLVMTypeRef ty,
                               LLVMTypeRef ty2, int nargs)
{
	char name[160], s1[40], s2[40] = "";
	type_suffix(s1, sizeof s1, ty);
	if (ty2)
		type_suffix(s2, sizeof s2, ty2);
	snprintf(name, sizeof name, "%s%s%s", base, s1, s2);
	LLVMValueRef f = LLVMGetNamedFunction(L->mod, name);
	if (f)
		return f;
	/* the result type is ty; the arguments are ty, or ty2 when given
	 * (conversions: llvm.fptosi.sat.<ret>.<arg>) */
	LLVMTypeRef args[4];
	for (int i = 0; i < nargs && i < 4; i++)
		args[i] = ty2 ? ty2 : ty;
	return LLVMAddFunction(L->mod, name, LLVMFunctionType(ty, args, (unsigned)nargs, 0));
}

LLVMValueRef cg_llvm_call(CgLlvm *L, LLVMValueRef fn, LLVMValueRef *args, int n)
{
	LLVMTypeRef fty = LLVMGlobalGetValueType(fn);
	return LLVMBuildCall2(L->b, fty, fn, args, (unsigned)n, "");
}

LLVMValueRef cg_llvm_cstr(CgLlvm *L, const char *s)
{
	LLVMValueRef str = LLVMConstStringInContext(L->ctx, s, (unsigned)strlen(s), 0);
	LLVMValueRef g = LLVMAddGlobal(L->mod, LLVMTypeOf(str), ".str");
	LLVMSetInitializer(g, str);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetLinkage(g, LLVMPrivateLinkage);
	LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
	LLVMValueRef zero = LLVMConstInt(L->t_i64, 0, 0);
	LLVMValueRef idx[2] = {zero, zero};
	return LLVMConstInBoundsGEP2(LLVMTypeOf(str), g, idx, 2);
}

bool cg_llvm_check_layout(CgLlvm *L, LLVMTypeRef t, const size_t *offs, int n, size_t size,
                          const char *what)
{
	for (int i = 0; i < n; i++)
		if (LLVMOffsetOfElement(L->td, t, (unsigned)i) != offs[i]) {
			diag_plain(L->diag, DIAG_ERROR,
			           "internal error: %s field %d is at %llu in LLVM, %zu in C", what, i,
			           (unsigned long long)LLVMOffsetOfElement(L->td, t, (unsigned)i),
			           offs[i]);
			return false;
		}
	if (LLVMABISizeOfType(L->td, t) != size) {
		diag_plain(L->diag, DIAG_ERROR, "internal error: %s is %llu bytes in LLVM, %zu in C",
		           what, (unsigned long long)LLVMABISizeOfType(L->td, t), size);
		return false;
	}
	return true;
}

LLVMValueRef cg_llvm_const_array(CgLlvm *L, LLVMTypeRef et, LLVMValueRef *v, int n,
                                 const char *name)
{
	if (n == 0)
		return LLVMConstNull(LLVMPointerType(et, 0));
	LLVMValueRef init = LLVMConstArray(et, v, (unsigned)n);
	LLVMValueRef g = LLVMAddGlobal(L->mod, LLVMTypeOf(init), name);
	LLVMSetInitializer(g, init);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetLinkage(g, LLVMPrivateLinkage);
	LLVMValueRef zero = LLVMConstInt(L->t_i64, 0, 0);
	LLVMValueRef idx[2] = {zero, zero};
	return LLVMConstInBoundsGEP2(LLVMTypeOf(init), g, idx, 2);
}
