/* slapoc.c - the compiler driver.
 *
 *   slapoc FILE.slapo              run the schedule script (prints what it prints)
 *   slapoc --check FILE            parse and check the syntax only
 *   slapoc --dump-ast FILE         print the syntax tree
 *   slapoc --verify FILE           run the model through the interpreter after
 *                                  every primitive and report the error of each
 *   slapoc --dump-after=trace FILE print each graph a primitive produces
 *
 * Exit status: 0 on success, 1 on errors in the input, 2 on bad usage.
 */
#include "ir/sched.h"
#include "slapo_config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int verify_run(Eval *ev, const Ast *prog, int batch, int seq, double tol);

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
			ptrvec_push(ev->arena, &ev->import_dirs, arena_strdup(ev->arena, canon));
			free(canon);
			return;
		}
	}
}

/* What the command line asked for. */
typedef struct Options {
	const char *file;
	bool check, dump_ast, verify;
	int verify_batch, verify_seq;
	double verify_tol;
	PtrVec incdirs; /* const char*: -I directories */
} Options;

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
	eval_program(ev, prog);
	return diag.nerrors ? 1 : 0;
}

int main(int argc, char **argv)
{
	Arena arena = {0};
	Options o = {.verify_batch = 2, .verify_seq = 8, .verify_tol = 1e-9};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
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
	int status = run(&o, &arena);
	fflush(stdout);
	arena_free(&arena);
	return status;
}
