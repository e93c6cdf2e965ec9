/* nvptx.c - the PTX of a model: an LLVM context for NVPTX (triple
 * nvptx64-nvidia-cuda, sm_80, PTX ISA 7.0: LLVM 14's newest that the
 * driver JIT-compiles for any newer GPU, H100/H200 included), one kernel
 * per GPU step with identical kernels merged (layers of a model make the
 * same kernels), the runtime's utility kernels, libdevice for the few
 * math intrinsics NVPTX cannot lower (log, pow, ...: linked, internalised,
 * then only what is used survives O3), and the PTX text.
 *
 * GPU code is optional: when LLVM has no NVPTX target, or a kernel needs
 * libdevice and no CUDA installation provides it, cg_gpu_build says so
 * (*unavailable) and the library is made for the CPU only.
 */
#include <stdlib.h>
#include <string.h>

#include <llvm-c/BitReader.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Target.h>

#include "codegen/gpu.h"

static const char *const TRIPLE = "nvptx64-nvidia-cuda";
static const char *const SM = "sm_80";
static const char *const PTX_FEATURES = "+ptx70";

static bool nvptx_init(CgLlvm *L, Diag *d, char *why, size_t whylen)
{
	memset(L, 0, sizeof *L);
	L->diag = d;
	LLVMInitializeAllTargetInfos();
	LLVMInitializeAllTargets();
	LLVMInitializeAllTargetMCs();
	LLVMInitializeAllAsmPrinters();
	LLVMTargetRef target;
	char *err = NULL;
	if (LLVMGetTargetFromTriple(TRIPLE, &target, &err)) {
		snprintf(why, whylen, "this LLVM has no NVPTX target (%s)",
		         err ? err : "?");
		LLVMDisposeMessage(err);
		return false;
	}
	L->triple = LLVMCreateMessage(TRIPLE);
	L->cpu = LLVMCreateMessage(SM);
	L->features = LLVMCreateMessage(PTX_FEATURES);
	L->vw = 1;
	L->has_fma = true;
	L->nvptx = true;
	L->tm = LLVMCreateTargetMachine(target, TRIPLE, SM, PTX_FEATURES,
	                                LLVMCodeGenLevelAggressive, LLVMRelocDefault,
	                                LLVMCodeModelDefault);
	if (!L->tm) {
		snprintf(why, whylen, "LLVM cannot make an NVPTX target machine for %s",
		         SM);
		return false;
	}
	cg_llvm_module(L, "slapo_gpu"); /* L->triple is TRIPLE */
	return true;
}

/* "k12_FusedBiasGeLU_0" */
static const char *kernel_name(Arena *a, int idx, const CgStep *st)
{
	char buf[48];
	const char *w = st->what ? st->what : "kernel";
	int n = 0;
	for (const char *p = w; *p && n < (int)sizeof buf - 1; p++) {
		char c = *p;
		buf[n++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		                           (c >= '0' && c <= '9')
		                   ? c
		                   : '_';
	}
	buf[n] = '\0';
	return arena_printf(a, "k%d_%s", idx, buf);
}

/* The function's IR with its own name replaced: equal texts are equal
 * kernels. */
static char *canonical(Arena *a, LLVMValueRef fn, const char *name)
{
	char *txt = LLVMPrintValueToString(fn);
	char pat[160];
	snprintf(pat, sizeof pat, "@%s(", name);
	char *hit = strstr(txt, pat);
	char *r;
	if (hit)
		r = arena_printf(a, "%.*s@K(%s", (int)(hit - txt), txt,
		                 hit + strlen(pat));
	else
		r = arena_printf(a, "%s", txt);
	LLVMDisposeMessage(txt);
	return r;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* ---- libdevice ------------------------------------------------------------------------ */

static const struct {
	const char *intr; /* llvm.<intr>.f32 / .vNf32 */
	const char *nv;   /* libdevice function */
	int nargs;
} MATH[] = {
        {"llvm.log", "__nv_logf", 1},     {"llvm.log2", "__nv_log2f", 1},
        {"llvm.log10", "__nv_log10f", 1}, {"llvm.exp", "__nv_expf", 1},
        {"llvm.exp2", "__nv_exp2f", 1},   {"llvm.pow", "__nv_powf", 2},
        {"llvm.sin", "__nv_sinf", 1},     {"llvm.cos", "__nv_cosf", 1},
};

/* Calls of math intrinsics NVPTX cannot select become calls of their
 * libdevice functions (vectors lane by lane). Returns how many kinds. */
static int replace_math(CgLlvm *L)
{
	int used = 0;
	LLVMValueRef next;
	for (LLVMValueRef fn = LLVMGetFirstFunction(L->mod); fn; fn = next) {
		next = LLVMGetNextFunction(fn);
		size_t len;
		const char *name = LLVMGetValueName2(fn, &len);
		int m = -1;
		for (size_t i = 0; i < sizeof MATH / sizeof MATH[0] && m < 0; i++) {
			size_t k = strlen(MATH[i].intr);
			if (strncmp(name, MATH[i].intr, k) == 0 && name[k] == '.' &&
			    strstr(name + k, "f32") && !strchr(name + k + 1, '.'))
				m = (int)i;
		}
		if (m < 0 || !LLVMGetFirstUse(fn))
			continue;
		LLVMTypeRef args[2] = {L->t_f32, L->t_f32};
		LLVMValueRef nv = cg_llvm_decl(
		        L, MATH[m].nv,
		        LLVMFunctionType(L->t_f32, args, (unsigned)MATH[m].nargs, 0));
		used++;
		LLVMTypeRef rt = LLVMGetReturnType(LLVMGlobalGetValueType(fn));
		if (LLVMGetTypeKind(rt) != LLVMVectorTypeKind) {
			LLVMReplaceAllUsesWith(fn, nv);
			continue;
		}
		unsigned lanes = LLVMGetVectorSize(rt);
		LLVMUseRef u;
		while ((u = LLVMGetFirstUse(fn))) {
			LLVMValueRef call = LLVMGetUser(u);
			LLVMPositionBuilderBefore(L->b, call);
			LLVMValueRef v = LLVMGetUndef(rt);
			for (unsigned i = 0; i < lanes; i++) {
				LLVMValueRef idx = LLVMConstInt(L->t_i32, i, 0), a[2];
				for (int k = 0; k < MATH[m].nargs; k++)
					a[k] = LLVMBuildExtractElement(
					        L->b, LLVMGetOperand(call, (unsigned)k),
					        idx, "");
				LLVMValueRef r = cg_llvm_call(L, nv, a, MATH[m].nargs);
				v = LLVMBuildInsertElement(L->b, v, r, idx, "");
			}
			LLVMReplaceAllUsesWith(call, v);
			LLVMInstructionEraseFromParent(call);
		}
	}
	return used;
}

static char *find_libdevice(Arena *a)
{
	const char *env[] = {getenv("SLAPO_LIBDEVICE"), NULL};
	if (env[0] && *env[0])
		return arena_printf(a, "%s", env[0]);
	const char *roots[] = {getenv("CUDA_HOME"), getenv("CUDA_PATH"),
	                       "/usr/local/cuda", "/usr/lib/cuda"};
	for (int i = 0; i < 4; i++) {
		if (!roots[i] || !*roots[i])
			continue;
		char *p = arena_printf(a, "%s/nvvm/libdevice/libdevice.10.bc", roots[i]);
		FILE *f = fopen(p, "rb");
		if (f) {
			fclose(f);
			return p;
		}
	}
	FILE *f = fopen("/usr/lib/nvidia-cuda-toolkit/libdevice/libdevice.10.bc", "rb");
	if (f) {
		fclose(f);
		return "/usr/lib/nvidia-cuda-toolkit/libdevice/libdevice.10.bc";
	}
	return NULL;
}

static bool link_libdevice(CgLlvm *L, const char *path)
{
	LLVMMemoryBufferRef buf;
	LLVMModuleRef lib;
	char *err = NULL;
	if (LLVMCreateMemoryBufferWithContentsOfFile(path, &buf, &err)) {
		diag_plain(L->diag, DIAG_ERROR, "cannot read %s: %s", path,
		           err ? err : "?");
		LLVMDisposeMessage(err);
		return false;
	}
	bool bad = LLVMParseBitcodeInContext2(L->ctx, buf, &lib);
	LLVMDisposeMemoryBuffer(buf);
	if (bad) {
		diag_plain(L->diag, DIAG_ERROR, "%s is not LLVM bitcode", path);
		return false;
	}
	LLVMSetTarget(lib, TRIPLE);
	LLVMSetModuleDataLayout(lib, L->td);
	if (LLVMLinkModules2(L->mod, lib)) {
		diag_plain(L->diag, DIAG_ERROR, "cannot link %s into the GPU module",
		           path);
		return false;
	}
	return true;
}

/* Everything but the kernels gets internal linkage, so O3 keeps only what
 * they use. */
static void internalize(CgLlvm *L, const CgGpu *g)
{
	for (LLVMValueRef fn = LLVMGetFirstFunction(L->mod); fn;
	     fn = LLVMGetNextFunction(fn)) {
		if (LLVMIsDeclaration(fn))
			continue;
		const char *name = LLVMGetValueName2(fn, &(size_t){0});
		bool keep = strncmp(name, "slapo_util_", 11) == 0;
		for (int k = 0; k < g->nkernels && !keep; k++)
			keep = strcmp(name, g->kernel_names[k]) == 0;
		if (!keep)
			LLVMSetLinkage(fn, LLVMInternalLinkage);
	}
	for (LLVMValueRef v = LLVMGetFirstGlobal(L->mod); v; v = LLVMGetNextGlobal(v))
		if (!LLVMIsDeclaration(v))
			LLVMSetLinkage(v, LLVMInternalLinkage);
}

/* The kernels of the module so far, each once (identical ones merged). */
typedef struct Kernels {
	int n;
	const char **names;
	char **canon;
	uint64_t *hash;
} Kernels;

/* Emits step gs's kernel, or finds an identical one: its index, -1 when
 * the step computes an op that cannot be emitted. Kernels are named
 * "k<i>_..." ("h<i>_..." in the sm_90a module). */
static int add_kernel(CgLlvm *L, const CgGpu *g, Kernels *ks, const CgGpuStep *gs)
{
	Arena *a = g->prog->arena;
	const char *tmp = "slapo_kernel_new";
	if (!cg_gpu_emit_kernel(L, g, gs, tmp))
		return -1;
	LLVMValueRef fn = LLVMGetNamedFunction(L->mod, tmp);
	char *c = canonical(a, fn, tmp);
	uint64_t h = hash_str(c);
	for (int k = 0; k < ks->n; k++)
		if (ks->hash[k] == h && strcmp(ks->canon[k], c) == 0) {
			LLVMDeleteFunction(fn);
			return k;
		}
	const char *name = kernel_name(a, ks->n, gs->st);
	if (L->sm90a)
		name = arena_printf(a, "h%s", name + 1);
	LLVMSetValueName2(fn, name, strlen(name));
	cg_gpu_mark_kernel(L, fn);
	if (gs->st->kind == CG_SOFTMAX || gs->st->kind == CG_LAYER_NORM)
		cg_gpu_limit_regs(L, fn, ROW_MAX_REGS);
	if (gs->st->kind == CG_ATTENTION)
		cg_gpu_limit_regs(L, fn, L->sm90a ? ATT_H_MAX_REGS : ATT_MAX_REGS);
	ks->canon[ks->n] = c;
	ks->hash[ks->n] = h;
	ks->names[ks->n] = name;
	return ks->n++;
}

/* The module's PTX text (arena), or NULL after a diagnostic. LLVM 14
 * writes PTX ISA 7.0 for sm_80; the sm_90a module's inline PTX (wgmma)
 * needs ISA 8.0 and target sm_90a, which its header is changed to say. */
static char *emit_ptx(CgLlvm *L, Arena *a, Diag *diag)
{
	LLVMMemoryBufferRef mb = NULL;
	char *err = NULL;
	if (LLVMTargetMachineEmitToMemoryBuffer(L->tm, L->mod, LLVMAssemblyFile, &err,
	                                        &mb)) {
		diag_plain(diag, DIAG_ERROR, "LLVM cannot emit PTX: %s", err ? err : "?");
		LLVMDisposeMessage(err);
		return NULL;
	}
	size_t n = LLVMGetBufferSize(mb);
	char *ptx = arena_alloc(a, n + 1);
	memcpy(ptx, LLVMGetBufferStart(mb), n);
	ptx[n] = '\0';
	LLVMDisposeMemoryBuffer(mb);
	if (!L->sm90a)
		return ptx;
	char *v = strstr(ptx, "\n.version "), *t = strstr(ptx, "\n.target sm_80");
	if (!v || !t || t < v) {
		diag_plain(diag, DIAG_ERROR,
		           "unexpected PTX header from LLVM (sm_90a module)");
		return NULL;
	}
	const char *ve = strchr(v + 1, '\n'), *te = strchr(t + 1, '\n');
	return arena_printf(a, "%.*s\n.version 8.0%.*s\n.target sm_90a%s", (int)(v - ptx),
	                    ptx, (int)(t - ve), ve, te);
}

/* Steps with a Hopper form: the fused attention at head size 64 (one
 * 128-byte row of K or V a key: the 128-byte swizzle of wgmma's shared
 * operands, attention_gpu.c). */
static bool wants_sm90a(const CgGpuStep *gs)
{
	return gs->st->kind == CG_ATTENTION && gs->small && cg_dim_is(gs->st->k, 64);
}

/* The sm_90a module: step kernels of Hopper's own (index base + i in
 * kernel_names). Optional: false (after a diagnostic) only when LLVM
 * fails. */
static bool build_sm90a(CgGpu *g, Kernels *ks, int base, bool math16, char *why,
                        size_t whylen)
{
	Arena *a = g->prog->arena;
	int want = 0;
	for (int s = 0; s < g->nsteps; s++)
		want += wants_sm90a(&g->steps[s]);
	if (!want)
		return true;
	CgLlvm L;
	if (!nvptx_init(&L, g->prog->diag, why, whylen)) {
		cg_llvm_dispose(&L);
		return true;
	}
	L.math16 = math16;
	L.sm90a = true;
	Kernels kh = {.names = ks->names + base,
	              .canon = ARENA_ARRAY(a, char *, want + 1),
	              .hash = ARENA_ARRAY(a, uint64_t, want + 1)};
	bool ok = true;
	for (int s = 0; ok && s < g->nsteps; s++) {
		CgGpuStep *gs = &g->steps[s];
		if (!wants_sm90a(gs))
			continue;
		CgGpuStep v = *gs;
		v.st = gs->small;
		int k = add_kernel(&L, g, &kh, &v);
		ok = k >= 0;
		gs->kernel_h = base + k;
	}
	g->nkernels = base + kh.n;
	g->nkernels_h = kh.n;
	if (ok) {
		internalize(&L, g);
		ok = cg_llvm_optimize(&L, false) &&
		     (g->ptx_h = emit_ptx(&L, a, g->prog->diag));
	}
	cg_llvm_dispose(&L);
	return ok;
}

bool cg_gpu_build(CgGpu *g, const CgProgram *prog, CgPrecision prec, unsigned fuse,
                  bool *unavailable, char *why, size_t whylen)
{
	Arena *a = prog->arena;
	CgLlvm L;
	*unavailable = false;
	why[0] = '\0';
	if (!cg_gpu_plan(g, prog, prec, fuse))
		return false;
	if (!nvptx_init(&L, prog->diag, why, whylen)) {
		cg_llvm_dispose(&L);
		*unavailable = true;
		return false;
	}
	L.math16 = prec == CG_PREC_BF16 || prec == CG_PREC_FP16;
	Kernels ks = {.names = ARENA_ARRAY(a, const char *, 3 * g->nsteps + 1),
	              .canon = ARENA_ARRAY(a, char *, 2 * g->nsteps + 1),
	              .hash = ARENA_ARRAY(a, uint64_t, 2 * g->nsteps + 1)};
	g->kernel_names = ks.names;
	bool ok = true;
	for (int s = 0; ok && s < g->nsteps; s++) {
		CgGpuStep *gs = &g->steps[s];
		gs->kernel = gs->kernel_small = gs->kernel_h = -1;
		if (gs->st->kind == CG_GEMM)
			continue;
		ok = (gs->kernel = add_kernel(&L, g, &ks, gs)) >= 0;
		if (ok && gs->small) {
			CgGpuStep v = *gs;
			v.st = gs->small;
			ok = (gs->kernel_small = add_kernel(&L, g, &ks, &v)) >= 0;
		}
	}
	g->nkernels = ks.n;
	if (ok)
		cg_gpu_emit_utils(&L);
	if (ok && replace_math(&L) > 0) {
		char *lib = find_libdevice(a);
		if (!lib) {
			snprintf(
			        why, whylen,
			        "a GPU kernel needs libdevice (log/pow/...) and no CUDA installation "
			        "has nvvm/libdevice/libdevice.10.bc (set CUDA_HOME or SLAPO_LIBDEVICE)");
			*unavailable = true;
			ok = false;
		} else {
			ok = link_libdevice(&L, lib);
		}
	}
	if (ok) {
		internalize(&L, g);
		ok = cg_llvm_optimize(&L, false) &&
		     (g->ptx = emit_ptx(&L, a, prog->diag));
	}
	if (ok)
		g->ptx_len = strlen(g->ptx);
	bool math16 = L.math16;
	cg_llvm_dispose(&L);
	return ok && build_sm90a(g, &ks, g->nkernels, math16, why, whylen);
}
