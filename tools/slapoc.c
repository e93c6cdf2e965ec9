/* slapoc.c - the compiler driver.
 *
 *   slapoc FILE.slapo              run the schedule script (prints what it prints)
 *   slapoc --check FILE            parse and check the syntax only
 *   slapoc --dump-ast FILE         print the syntax tree
 *   slapoc --verify FILE           run the model through the interpreter after
 *                                  every primitive and report the error of each
 *   slapoc --dump-after=trace FILE print each graph a primitive produces
 *   slapoc FILE -o model.so        compile the model given to build() into a
 *                                  model library (codegen/)
 *   slapoc --dump-after=lower FILE print the kernel graph and memory plan
 *   slapoc --dump-after=gpu FILE   print the GPU program and its memory plan
 *
 * Exit status: 0 on success, 1 on errors in the input, 2 on bad usage.
 */
#include "ir/ir.h"
#include "slapo_config.h"
#ifdef SLAPO_HAVE_CODEGEN
#include "codegen/codegen.h"
#include "codegen/gpu.h"
#endif

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int verify_run(Eval *ev, const Ast *prog, int batch, int seq, double tol);
int interp_files(Eval *ev, const char *weights, const char *inputs, const char *outputs);
void *emit_dot_prepare(Eval *ev, const char *pass);
long emit_dot_after(const char *pass);
int explain_model(Eval *ev, int batch, int seq);
int emit_dot(Eval *ev, void *prepared, const char *pass, const char *output, bool svg);

static void usage(FILE *out)
{
	fputs("usage: slapoc [options] FILE.slapo\n"
	      "\n"
	      "Compile a .slapo model and its schedule.\n"
	      "\n"
	      "options:\n"
	      "  --check             parse FILE and check its syntax; print nothing on success\n"
	      "  --dump-ast          print FILE's syntax tree\n"
	      "  --verify            run the model in the reference interpreter (double\n"
	      "                      precision, seeded random weights and inputs) before the\n"
	      "                      schedule and after every primitive; report max abs/rel\n"
	      "                      error per primitive and fail at the first one out of\n"
	      "                      tolerance\n"
	      "  --verify-shape=B,S  batch and sequence length for --verify (default 2,8)\n"
	      "  --verify-tol=T      relative tolerance for --verify (default 1e-9)\n"
	      "  --interp            run the model in the reference interpreter on --weights\n"
	      "                      and --inputs (safetensors files); write --outputs\n"
	      "  --weights FILE      HuggingFace model.safetensors for --interp\n"
	      "  --inputs FILE       inputs (safetensors) for --interp; attention_mask and\n"
	      "                      token_type_ids default to ones and zeros\n"
	      "  --outputs FILE      where --interp writes the outputs (safetensors, f32)\n"
	      "  -o FILE             compile the model (the root given to build(), else the\n"
	      "                      last create_schedule root) into FILE, a model library\n"
	      "  --emit=KIND         what -o writes: so (default), obj, asm or llvm; or a\n"
	      "                      picture of the model's graph: dot (as compiled, fused\n"
	      "                      kernels as clusters), dot:source (before the schedule),\n"
	      "                      dot:after=N (after the N-th primitive), svg, svg:source,\n"
	      "                      svg:after=N (through Graphviz); to stdout without -o\n"
	      "  --cpu=NAME          target CPU for -o (x86-64-v3, znver3, ...; default: this\n"
	      "                      machine, with all its features)\n"
	      "  --gpu=WHEN          CUDA code in the library too: auto (default: when this\n"
	      "                      LLVM has NVPTX; the library runs on CPU and GPU), on, off\n"
	      "  --no-gpu            the same as --gpu=off\n",
	      out);
	fputs("  --precision=P       precision of the GPU code: fp32 (default), tf32 (GEMMs\n"
	      "                      on tensor cores), bf16 or fp16 (weights and activations\n"
	      "                      in 16 bits, f32 arithmetic); the CPU code stays fp32\n"
	      "  --gpu-attention=HOW fused (default: with bf16/fp16, attention's two matrix\n"
	      "                      products and softmax as one tensor-core kernel; with\n"
	      "                      tf32 the f16 kernel on f16 copies of Q, K, V) or\n"
	      "                      unfused (cuBLAS, a softmax kernel, cuBLAS)\n"
	      "  --cpu-attention=HOW fused (default: attention's two matrix products and\n"
	      "                      softmax one (batch, head) at a time, the scores in a\n"
	      "                      thread's cache) or unfused (batched GEMMs, a softmax\n"
	      "                      kernel, batched GEMMs)\n"
	      "  --gpu-gelu=HOW      epilogue (default: with bf16/fp16, a GEMM and the\n"
	      "                      gelu(x + bias) after it as one cuBLASLt call, GELU in\n"
	      "                      its tanh form, within 4.8e-4 of erf) or exact (erf\n"
	      "                      GELU in a kernel of its own)\n"
	      "  --gpu-residual=HOW  layernorm (default: the layer_norm kernel adds a bias and\n"
	      "                      residual to the matrix product before it) or epilogue\n"
	      "                      (the product adds them itself, as cuBLASLt's bias\n"
	      "                      epilogue and C input; measured slower on an H200)\n"
	      "  --output-dtype=T    f32 (default) or the 16-bit type of --precision bf16 or\n"
	      "                      fp16 (bf16, f16): the model's float outputs in that\n"
	      "                      type, written so by the GPU code (the CPU code's are\n"
	      "                      converted)\n"
	      "  --ptx=FILE          also write the GPU code's PTX to FILE (Hopper's\n"
	      "                      module, if any, to FILE.sm90a)\n"
	      "  --dump-after=lower  print the kernel graph and its memory plan\n"
	      "  --dump-after=gpu    print the GPU program (at --precision) and its memory\n"
	      "                      plan\n"
	      "  --explain           say what each primitive matched and did (with its line),\n"
	      "                      then list the final graph's kernels and library calls\n"
	      "                      with their FLOPs, bytes and the .slapo line that made\n"
	      "                      them (evaluated at --verify-shape, default B=2, S=8)\n"
	      "  -I DIR              look for imports in DIR too (before the library)\n"
	      "  --version           print the version and exit\n"
	      "  --help              print this help and exit\n",
	      out);
}

/* The nn prelude and model zoo: lang/ beside the build tree or install. */
static void add_library_dirs(Eval *ev)
{
	const char *env = getenv("SLAPO_LIB");
	if (env && *env)
		ptrvec_push(ev->arena, &ev->import_dirs, (void *)env);
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	static const char *rel[] = {"/../../lang", "/../lang", "/../share/slapoc/lang", NULL};
	for (int i = 0; rel[i]; i++) {
		const char *d = arena_printf(ev->arena, "%s%s", exe, rel[i]);
		char *canon = realpath(d, NULL);
		if (canon) {
			/* shown in diagnostics: relative to the working directory
			 * when it is below it, so messages name lang/models/... */
			char cwd[PATH_MAX];
			const char *shown = canon;
			size_t n = getcwd(cwd, sizeof cwd) ? strlen(cwd) : 0;
			if (n && strncmp(canon, cwd, n) == 0 && canon[n] == '/')
				shown = canon + n + 1;
			ptrvec_push(ev->arena, &ev->import_dirs, arena_strdup(ev->arena, shown));
			free(canon);
			return;
		}
	}
}

/* What the command line asked for. */
typedef struct Options {
	const char *file;
	bool check, dump_ast, verify, interp, explain;
	const char *weights, *inputs, *outputs; /* --interp files */
	int verify_batch, verify_seq;
	double verify_tol;
	PtrVec incdirs; /* const char*: -I directories */
	const char *output;   /* -o: where the compiled model goes */
	const char *emit;     /* --emit: so, obj, asm, llvm */
	const char *cpu;      /* --cpu */
	bool dump_lower;      /* --dump-after=lower */
	bool dump_gpu;        /* --dump-after=gpu */
	const char *precision; /* --precision: of the GPU code */
	int gpu;              /* --gpu=auto|on|off (CG_GPU_*) */
	const char *ptx;      /* --ptx=FILE */
	const char *gpu_emu;  /* --gpu-emu=FILE (tests) */
	bool unfused_attention; /* --gpu-attention=unfused */
	bool cpu_unfused_attention; /* --cpu-attention=unfused */
	bool exact_gelu;            /* --gpu-gelu=exact */
	bool residual_epilogue;     /* --gpu-residual=epilogue */
	const char *output_dtype;   /* --output-dtype=f32|bf16|f16 */
} Options;

/* -o / --dump-after=lower: lower and compile the model the script built. */
static int compile_model(Eval *ev, const Options *o)
{
#ifdef SLAPO_HAVE_CODEGEN
	Module *root = eval_model_root(ev, o->file);
	if (!root)
		return 1;
	CgModel m;
	Span none = {0};
	if (!cg_model_from_eval(ev, root, none, &m))
		return 1;
	CgOptions co = {.output = o->output,
	                .cpu = o->cpu,
	                .dump_lower = o->dump_lower ? stdout : NULL,
	                .dump_gpu = o->dump_gpu ? stdout : NULL,
	                .gpu = o->gpu,
	                .ptx_out = o->ptx,
	                .emu_out = o->gpu_emu,
	                .unfused_attention = o->unfused_attention,
	                .cpu_unfused_attention = o->cpu_unfused_attention,
	                .exact_gelu = o->exact_gelu,
	                .residual_epilogue = o->residual_epilogue};
	CgPrecision prec = CG_PREC_FP32;
	/* the command line wins over build(sch, precision=...) */
	const char *want = o->precision ? o->precision : ev->build_precision;
	if (want && !cg_precision_parse(want, &prec)) {
		diag_plain(ev->diag, DIAG_ERROR,
		           "--precision expects fp32, tf32, bf16 or fp16, not '%s'", want);
		return 1;
	}
	co.precision = prec;
	const char *od = o->output_dtype ? o->output_dtype : ev->build_output_dtype;
	if (od) {
		IrDType t = strcmp(od, "bf16") == 0 ? IR_BF16 : strcmp(od, "f16") == 0 ? IR_F16 : IR_F32;
		if (t == IR_F32 && strcmp(od, "f32") != 0) {
			diag_plain(ev->diag, DIAG_ERROR,
			           "--output-dtype expects f32, bf16 or f16, not '%s'", od);
			return 1;
		}
		co.output_dtype = t;
	}
	const char *e = o->emit ? o->emit : "so";
	co.emit = strcmp(e, "obj") == 0 ? CG_EMIT_OBJ
	          : strcmp(e, "asm") == 0 ? CG_EMIT_ASM
	          : strcmp(e, "llvm") == 0 ? CG_EMIT_LLVM : CG_EMIT_SO;
	return cg_compile(&m, &co) && !ev->diag->nerrors ? 0 : 1;
#else
	diag_plain(ev->diag, DIAG_ERROR, "this slapoc was built without the code generator");
	return 1;
#endif
}

/* Everything after option parsing; errors unwind to here. */
static int run(const Options *o, Arena *arena)
{
	Diag diag;
	diag_init(&diag, stderr, arena);
	jmp_buf bail;
	diag.bail = &bail;
	if (setjmp(bail))
		return 1;
	Span none = {0};
	SrcFile *src = diag_load(&diag, o->file, none);
	if (!src)
		return 1;
	Ast *prog = parse_file(arena, &diag, src);
	if (!prog || diag.nerrors)
		return 1;
	if (o->dump_ast) {
		ast_dump(stdout, prog);
		return 0;
	}
	if (o->check)
		return 0;

	IrCtx *ir = ARENA_NEW(arena, IrCtx);
	ir->arena = arena;
	ir->diag = &diag;
	Eval *ev = ARENA_NEW(arena, Eval);
	eval_init(ev, arena, &diag, ir, stdout);
	for (int i = 0; i < o->incdirs.len; i++)
		ptrvec_push(arena, &ev->import_dirs, o->incdirs.items[i]);
	add_library_dirs(ev);
	if (o->verify)
		return verify_run(ev, prog, o->verify_batch, o->verify_seq, o->verify_tol);
	bool picture = o->emit && (strncmp(o->emit, "dot", 3) == 0 || strncmp(o->emit, "svg", 3) == 0);
	const char *pass = picture && o->emit[3] == ':' ? o->emit + 4 : NULL;
	void *snap = picture ? emit_dot_prepare(ev, pass) : NULL;
	if (o->explain)
		ev->explain = ARENA_NEW(arena, StrBuf);
	eval_program(ev, prog);
	if (o->explain) {
		int r = explain_model(ev, o->verify_batch, o->verify_seq);
		sb_free(ev->explain);
		return r;
	}
	if (picture)
		return diag.nerrors ? 1 : emit_dot(ev, snap, pass, o->output, o->emit[0] == 's');
	if (o->interp)
		return interp_files(ev, o->weights, o->inputs, o->outputs);
	if (!diag.nerrors && (o->output || o->dump_lower || o->dump_gpu))
		return compile_model(ev, o);
	return diag.nerrors ? 1 : 0;
}

/* The two-valued options --NAME=FIRST|SECOND (FIRST the default): the
 * Options flag set when SECOND is given. */
static const struct {
	const char *name, *first, *second;
	size_t flag; /* offsetof(Options, ...) */
} two_way_opts[] = {
        {"gpu-attention", "fused", "unfused", offsetof(Options, unfused_attention)},
        {"cpu-attention", "fused", "unfused", offsetof(Options, cpu_unfused_attention)},
        {"gpu-gelu", "epilogue", "exact", offsetof(Options, exact_gelu)},
        {"gpu-residual", "layernorm", "epilogue", offsetof(Options, residual_epilogue)},
};

/* arg as one of two_way_opts: 1 taken, 0 not such an option, -1 a bad
 * value (said so). */
static int two_way(const char *arg, Options *o)
{
	for (size_t k = 0; k < sizeof two_way_opts / sizeof *two_way_opts; k++) {
		const char *name = two_way_opts[k].name, *first = two_way_opts[k].first,
		           *second = two_way_opts[k].second;
		size_t n = strlen(name);
		if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, n) != 0 || arg[2 + n] != '=')
			continue;
		const char *v = arg + 3 + n;
		if (strcmp(v, first) && strcmp(v, second)) {
			fprintf(stderr, "slapoc: error: --%s expects %s or %s\n", name, first, second);
			return -1;
		}
		*(bool *)((char *)o + two_way_opts[k].flag) = strcmp(v, second) == 0;
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	Arena arena = {0};
	Options o = {.verify_batch = 2, .verify_seq = 8, .verify_tol = 1e-9};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int taken;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--version") == 0) {
			printf("slapoc %s\n", SLAPO_VERSION);
			return 0;
		} else if (strcmp(a, "--check") == 0) {
			o.check = true;
		} else if (strcmp(a, "--dump-ast") == 0) {
			o.dump_ast = true;
		} else if (strcmp(a, "--verify") == 0) {
			o.verify = true;
		} else if (strncmp(a, "--verify-shape=", 15) == 0) {
			if (sscanf(a + 15, "%d,%d", &o.verify_batch, &o.verify_seq) != 2 ||
			    o.verify_batch < 1 || o.verify_seq < 1 || o.verify_batch > 64 ||
			    o.verify_seq > 512) {
				fprintf(stderr, "slapoc: error: --verify-shape expects B,S (1..64, 1..512)\n");
				return 2;
			}
		} else if (strncmp(a, "--verify-tol=", 13) == 0) {
			o.verify_tol = atof(a + 13);
		} else if (strcmp(a, "--explain") == 0) {
			o.explain = true;
		} else if (strcmp(a, "--interp") == 0) {
			o.interp = true;
		} else if ((strcmp(a, "--weights") == 0 || strcmp(a, "--inputs") == 0 ||
		            strcmp(a, "--outputs") == 0) && i + 1 < argc) {
			const char **slot = a[2] == 'w' ? &o.weights : a[2] == 'i' ? &o.inputs : &o.outputs;
			*slot = argv[++i];
		} else if (strcmp(a, "-o") == 0 && i + 1 < argc) {
			o.output = argv[++i];
		} else if (strncmp(a, "--emit=", 7) == 0) {
			o.emit = a + 7;
			if (strcmp(o.emit, "so") && strcmp(o.emit, "obj") && strcmp(o.emit, "asm") &&
			    strcmp(o.emit, "llvm") && strcmp(o.emit, "dot") && strcmp(o.emit, "svg") &&
			    strcmp(o.emit, "dot:source") && strcmp(o.emit, "svg:source") &&
			    strcmp(o.emit, "dot:final") && strcmp(o.emit, "svg:final") &&
			    !((!strncmp(o.emit, "dot:", 4) || !strncmp(o.emit, "svg:", 4)) &&
			      emit_dot_after(o.emit + 4))) {
				fprintf(stderr, "slapoc: error: --emit expects so, obj, asm, llvm, "
				                "dot[:source|:after=N|:final] or svg[:...]\n");
				return 2;
			}
		} else if (strncmp(a, "--cpu=", 6) == 0) {
			o.cpu = a + 6;
		} else if (strncmp(a, "--precision=", 12) == 0) {
			o.precision = a + 12;
		} else if (strcmp(a, "--precision") == 0 && i + 1 < argc) {
			o.precision = argv[++i];
		} else if (strncmp(a, "--gpu=", 6) == 0) {
			const char *g = a + 6;
			if (strcmp(g, "auto") && strcmp(g, "on") && strcmp(g, "off")) {
				fprintf(stderr, "slapoc: error: --gpu expects auto, on or off\n");
				return 2;
			}
			o.gpu = !strcmp(g, "off") ? 1 : !strcmp(g, "on") ? 2 : 0;
		} else if (strcmp(a, "--no-gpu") == 0) {
			o.gpu = 1;
		} else if (strncmp(a, "--ptx=", 6) == 0) {
			o.ptx = a + 6;
		} else if ((taken = two_way(a, &o)) != 0) {
			if (taken < 0)
				return 2;
		} else if (strncmp(a, "--output-dtype=", 15) == 0) {
			o.output_dtype = a + 15;
		} else if (strcmp(a, "--output-dtype") == 0 && i + 1 < argc) {
			o.output_dtype = argv[++i];
		} else if (strncmp(a, "--gpu-emu=", 10) == 0) {
			o.gpu_emu = a + 10;
		} else if (strcmp(a, "--dump-after=lower") == 0) {
			o.dump_lower = true;
		} else if (strcmp(a, "--dump-after=gpu") == 0) {
			o.dump_gpu = true;
		} else if (strcmp(a, "-I") == 0 && i + 1 < argc) {
			ptrvec_push(&arena, &o.incdirs, argv[++i]);
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "slapoc: error: unknown option '%s' (see --help)\n", a);
			return 2;
		} else if (o.file) {
			fprintf(stderr, "slapoc: error: more than one input file ('%s' and '%s')\n",
			        o.file, a);
			return 2;
		} else {
			o.file = a;
		}
	}
	if (!o.file) {
		usage(stderr);
		return 2;
	}
	if (o.interp && (!o.weights || !o.inputs || !o.outputs)) {
		fprintf(stderr, "slapoc: error: --interp needs --weights, --inputs and --outputs\n");
		return 2;
	}
	int status = run(&o, &arena);
	fflush(stdout);
	arena_free(&arena);
	return status;
}
