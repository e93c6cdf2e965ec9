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

int main(int argc, char **argv)
{
	const char *file = NULL;
	bool check = false, dump_ast = false, verify = false;
	int vb = 2, vs = 8;
	double vtol = 1e-9;
	PtrVec incdirs = {0};
	Arena arena = {0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--version") == 0) {
			printf("slapoc %s\n", SLAPO_VERSION);
			return 0;
		} else if (strcmp(a, "--check") == 0) {
			check = true;
		} else if (strcmp(a, "--dump-ast") == 0) {
			dump_ast = true;
		} else if (strcmp(a, "--verify") == 0) {
			verify = true;
		} else if (strncmp(a, "--verify-shape=", 15) == 0) {
			if (sscanf(a + 15, "%d,%d", &vb, &vs) != 2 || vb < 1 || vs < 1 || vb > 64 ||
			    vs > 512) {
				fprintf(stderr, "slapoc: error: --verify-shape expects B,S (1..64, 1..512)\n");
				return 2;
			}
		} else if (strncmp(a, "--verify-tol=", 13) == 0) {
			vtol = atof(a + 13);
		} else if (strcmp(a, "-I") == 0 && i + 1 < argc) {
			ptrvec_push(&arena, &incdirs, argv[++i]);
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "slapoc: error: unknown option '%s' (see --help)\n", a);
			return 2;
		} else if (file) {
			fprintf(stderr, "slapoc: error: more than one input file ('%s' and '%s')\n",
			        file, a);
			return 2;
		} else {
			file = a;
		}
	}
	if (!file) {
		usage(stderr);
		return 2;
	}

	Diag diag;
	diag_init(&diag, stderr, &arena);
	jmp_buf bail;
	diag.bail = &bail;
	int status = 0;
	if (setjmp(bail)) {
		status = 1;
		goto done;
	}
	Span none = {0};
	SrcFile *src = diag_load(&diag, file, none);
	if (!src) {
		status = 1;
		goto done;
	}
	Ast *prog = parse_file(&arena, &diag, src);
	if (!prog || diag.nerrors) {
		status = 1;
		goto done;
	}
	if (dump_ast) {
		ast_dump(stdout, prog);
		goto done;
	}
	if (check)
		goto done;

	IrCtx ir = {.arena = &arena, .diag = &diag};
	Eval ev;
	eval_init(&ev, &arena, &diag, &ir, stdout);
	for (int i = 0; i < incdirs.len; i++)
		ptrvec_push(&arena, &ev.import_dirs, incdirs.items[i]);
	add_library_dirs(&ev);
	if (verify) {
		status = verify_run(&ev, prog, vb, vs, vtol);
		goto done;
	}
	eval_program(&ev, prog);
	if (diag.nerrors)
		status = 1;
done:
	fflush(stdout);
	arena_free(&arena);
	return status;
}
