/* codegen.c - the code generator's entry point: lower the model graph,
 * print the kernel graph if asked, emit every kernel and the driver into
 * one LLVM module, optimise it for the target, and write it out (LLVM IR,
 * assembly, an object file, or an object linked into a model library).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "codegen/gpu.h"

/* A temporary object file path (created empty, 0600). */
static char *temp_object(Diag *d)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	size_t n = strlen(dir) + 32;
	char *path = malloc(n);
	if (!path)
		return NULL;
	snprintf(path, n, "%s/slapoc-XXXXXX.o", dir);
	int fd = mkstemps(path, 2);
	if (fd < 0) {
		diag_plain(d, DIAG_ERROR, "cannot create a temporary file in %s", dir);
		free(path);
		return NULL;
	}
	close(fd);
	return path;
}

/* text into path + suffix; false after a diagnostic */
static bool write_text(Diag *d, const char *path, const char *suffix, const char *text)
{
	char name[4096];
	snprintf(name, sizeof name, "%s%s", path, suffix);
	FILE *f = fopen(name, "w");
	bool ok = f && fputs(text, f) >= 0;
	if (f && fclose(f) != 0)
		ok = false;
	if (!ok)
		diag_plain(d, DIAG_ERROR, "cannot write %s", name);
	return ok;
}

bool cg_compile(const CgModel *m, const CgOptions *o)
{
	IrCtx *ir = m->graph->ctx;
	Diag *d = ir->diag;
	CgProgram p;
	memset(&p, 0, sizeof p);
	p.ir = ir;
	p.arena = ir->arena;
	p.diag = d;
	if (!cg_lower(&p, m))
		return false;
	p.out_dtype = (IrDType)o->output_dtype;
	IrDType low = o->precision == CG_PREC_BF16   ? IR_BF16
	              : o->precision == CG_PREC_FP16 ? IR_F16
	                                             : IR_F32;
	if (p.out_dtype != IR_F32 && p.out_dtype != low) {
		diag_plain(d, DIAG_ERROR,
		           "outputs in %s need the GPU code in that precision (--precision=%s)",
		           ir_dtype_name(p.out_dtype), p.out_dtype == IR_BF16 ? "bf16" : "fp16");
		return false;
	}
	if (o->dump_lower) {
		StrBuf b = {0};
		cg_print(&b, &p);
		fputs(b.data ? b.data : "", o->dump_lower);
		sb_free(&b);
	}
	/* the host stand-in of the kernels cannot run tensor-core PTX */
	unsigned fuse = (!o->emu_out && !o->unfused_attention ? CG_FUSE_ATTENTION : 0) |
	                (o->exact_gelu ? 0 : CG_FUSE_GELU) |
	                (o->residual_epilogue ? CG_FUSE_RESIDUAL : 0);
	CgGpu gpu;
	if (o->dump_gpu) {
		if (!cg_gpu_plan(&gpu, &p, (CgPrecision)o->precision, fuse))
			return false;
		StrBuf b = {0};
		cg_gpu_print(&b, &gpu);
		fputs(b.data ? b.data : "", o->dump_gpu);
		sb_free(&b);
	}
	if (!o->output)
		return true;

	/* the CUDA code first: its PTX goes into the host module */
	bool have_gpu = false;
	if (o->gpu != CG_GPU_OFF) {
		bool unavailable = false;
		char why[512];
		have_gpu = cg_gpu_build(&gpu, &p, (CgPrecision)o->precision, fuse,
		                        &unavailable, why, sizeof why);
		if (!have_gpu && !unavailable)
			return false;
		if (have_gpu && o->emu_out && !cg_gpu_build_emu(&gpu, d, o->emu_out, o->cc))
			return false;
		if (have_gpu && o->ptx_out &&
		    (!write_text(d, o->ptx_out, "", gpu.ptx) ||
		     (gpu.ptx_h && !write_text(d, o->ptx_out, ".sm90a", gpu.ptx_h))))
			return false;
		if (!have_gpu) {
			diag_plain(d, o->gpu == CG_GPU_ON ? DIAG_ERROR : DIAG_WARNING,
			           "no GPU code in %s: %s", o->output ? o->output : "the library", why);
			if (o->gpu == CG_GPU_ON)
				return false;
		}
	}

	CgLlvm L;
	bool ok = cg_llvm_init(&L, d, m->name ? m->name : "model", o->cpu);
	for (int i = 0; ok && i < p.steps.len; i++) {
		const CgStep *st = p.steps.items[i];
		if (st->kind != CG_GEMM)
			ok = cg_emit_kernel(&L, &p, st);
	}
	if (have_gpu)
		ok = ok && cg_gpu_emit_host(&L, &gpu);
	ok = ok && cg_emit_driver(&L, &p, !o->cpu_unfused_attention);
	ok = ok && cg_llvm_optimize(&L, o->no_opt);
	if (ok && o->emit != CG_EMIT_SO) {
		ok = cg_llvm_write(&L, o->emit, o->output);
	} else if (ok) {
		char *obj = temp_object(d);
		ok = obj && cg_llvm_write(&L, CG_EMIT_OBJ, obj);
		if (ok) {
			const char *rt = cg_find_rt_lib(p.arena, o->rt_lib);
			if (!rt) {
				diag_plain(d, DIAG_ERROR,
				           "cannot find libslapo_rt.a (looked beside the slapoc executable; "
				           "set SLAPO_RT_LIB to its path)");
				ok = false;
			} else {
				ok = cg_link(d, obj, o->output, rt, o->cc);
			}
		}
		if (obj) {
			unlink(obj);
			free(obj);
		}
	}
	cg_llvm_dispose(&L);
	return ok;
}
