/* fuzz_slapo.c - libFuzzer target: bytes as a .slapo program through
 * the lexer, the parser, the AST dumper, the evaluator and its schedule
 * primitives, then `build`'s whole-model trace and (when every tensor is
 * small) the reference interpreter on each schedule's model.
 *
 * Any input must end in success or in reported errors: never a crash, a
 * sanitizer report, a leak, a hang, an abort or an "internal error"
 * diagnostic (kept in memory and searched). print() goes to a null
 * stream. Guards:
 *   - inputs over FUZZ_SLAPO_MAX_INPUT bytes are skipped;
 *   - the evaluator's step budget (ev->max_steps) is lowered so runaway
 *     loops end in a compile error quickly;
 *   - `import` is restricted to relative paths ending in ".slapo" without
 *     "..", found in the model zoo (lang/) only: the program's own path
 *     is in a directory that does not exist;
 *   - the interpreter runs only when no tensor exceeds 4096 elements at
 *     B = 2, S = 3.
 */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "model.h"

enum {
	FUZZ_SLAPO_MAX_INPUT = 32 << 10,
	FUZZ_SLAPO_MAX_STEPS = 2000000,
	FUZZ_SLAPO_MAX_NUMEL = 4096,
};

static bool import_allowed(const char *p)
{
	size_t n = strlen(p);
	return n > 6 && p[0] != '/' && !strstr(p, "..") && strcmp(p + n - 6, ".slapo") == 0;
}

/* Top-level imports must all be allowed (imports elsewhere are errors
 * the evaluator reports before doing anything). */
static bool imports_allowed(const Ast *prog)
{
	for (int i = 0; i < prog->list.len; i++) {
		const Ast *s = prog->list.items[i];
		if (s->kind == AST_IMPORT && !import_allowed(s->str))
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_SLAPO_MAX_INPUT)
		return 0;
	FILE *null = fuzz_devnull();
	Arena arena = {0};
	Diag diag;
	/* diagnostics kept in memory: an internal error is a finding */
	char *dbuf = NULL;
	size_t dlen = 0;
	FILE *dout = open_memstream(&dbuf, &dlen);
	diag_init(&diag, dout ? dout : null, &arena);
	jmp_buf bail;
	diag.bail = &bail;
	/* volatile: read after longjmp */
	FuzzModel *volatile fm = NULL;
	if (setjmp(bail) == 0) {
		SrcFile *src = src_from_string(&arena, "/nonexistent-fuzz-dir/input.slapo",
		                               (const char *)data, size);
		if (!src_validate(&diag, src))
			goto done;
		Ast *prog = parse_file(&arena, &diag, src);
		if (!prog || diag.nerrors)
			goto done;
		ast_dump(null, prog);
		if (!imports_allowed(prog))
			goto done;
		IrCtx *ir = ARENA_NEW(&arena, IrCtx);
		ir_ctx_init(ir, &arena, &diag);
		Eval *ev = ARENA_NEW(&arena, Eval);
		eval_init(ev, &arena, &diag, ir, null);
		ev->max_steps = FUZZ_SLAPO_MAX_STEPS;
		ptrvec_push(&arena, &ev->import_dirs, (void *)fuzz_lang_dir());
		eval_program(ev, prog);
		if (diag.nerrors)
			goto done;
		/* what `build` does with each schedule, then run the result */
		fm = ARENA_NEW(&arena, FuzzModel);
		fm->ev = ev;
		fm->batch = 2;
		fm->seq = 3;
		fm->max_numel = FUZZ_SLAPO_MAX_NUMEL;
		for (int i = 0; i < ev->schedules.len; i++) {
			Module *root = ev->schedules.items[i];
			IrTensor **outs;
			int nout;
			fuzz_model_run(fm, root, prog->span, &outs, &nout);
			fuzz_model_free(fm);
		}
	}
done:
	if (fm)
		fuzz_model_free(fm);
	if (dout) {
		fflush(dout);
		if (dbuf && fuzz_internal_error(dbuf)) {
			fprintf(stderr, "fuzz_slapo: an internal error was reported:\n%s", dbuf);
			abort();
		}
		fclose(dout);
		free(dbuf);
	}
	arena_free(&arena);
	return 0;
}
