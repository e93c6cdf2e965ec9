/* emit_dot.c - slapoc --emit=dot / --emit=svg: pictures of the model's
 * graph. `dot` (or `dot:final`) draws the model as compiled, every
 * primitive applied, fused kernels as labelled clusters; `dot:source`
 * draws it as declared, before the schedule ran; `dot:after=N` as it was
 * right after the N-th primitive (create_schedule not counted). `svg`
 * pipes the DOT text through Graphviz's `dot -Tsvg` when it is installed. */
#include "ir/ir.h"

#include <stdlib.h>
#include <string.h>

typedef struct DotSnap {
	long after;      /* 0: the source; N: after the N-th primitive */
	long seen;       /* primitives so far */
	IrGraph *source; /* the model when create_schedule (or primitive N) ran */
} DotSnap;

static void snapshot(Eval *ev, const char *prim, Span sp, void *user)
{
	DotSnap *s = user;
	bool create = strcmp(prim, "create_schedule") == 0;
	if (!create)
		s->seen++;
	if (!s->source && (s->after ? !create && s->seen == s->after : create))
		s->source = trace_model(ev, ev->schedules.items[ev->schedules.len - 1], sp);
}

/* N of "after=N" (N >= 1), or 0 when pass is not of that form. */
long emit_dot_after(const char *pass)
{
	if (!pass || strncmp(pass, "after=", 6) != 0)
		return 0;
	char *end;
	long n = strtol(pass + 6, &end, 10);
	return *end || end == pass + 6 || n < 1 ? 0 : n;
}

/* Call before eval_program when the source picture is wanted. */
void *emit_dot_prepare(Eval *ev, const char *pass)
{
	DotSnap *s = ARENA_NEW(ev->arena, DotSnap);
	s->after = emit_dot_after(pass);
	if (s->after || (pass && strcmp(pass, "source") == 0)) {
		ev->after_primitive = snapshot;
		ev->after_user = s;
	}
	return s;
}

static int write_out(Eval *ev, const char *text, size_t len, const char *output, bool svg)
{
	if (svg) {
		if (system("command -v dot >/dev/null 2>&1") != 0) {
			diag_plain(ev->diag, DIAG_ERROR, "--emit=svg needs Graphviz's `dot`, which is "
			           "not installed (apt-get install graphviz), or use --emit=dot");
			return 1;
		}
		const char *cmd = output ? arena_printf(ev->arena, "dot -Tsvg -o '%s'", output)
		                         : "dot -Tsvg";
		if (output && strchr(output, '\'')) {
			diag_plain(ev->diag, DIAG_ERROR, "--emit=svg: output path must not contain a quote");
			return 1;
		}
		FILE *p = popen(cmd, "w");
		if (!p) {
			diag_plain(ev->diag, DIAG_ERROR, "cannot run Graphviz's dot");
			return 1;
		}
		fwrite(text, 1, len, p);
		return pclose(p) == 0 ? 0 : 1;
	}
	FILE *f = output ? fopen(output, "w") : stdout;
	if (!f) {
		diag_plain(ev->diag, DIAG_ERROR, "cannot write '%s'", output);
		return 1;
	}
	fwrite(text, 1, len, f);
	if (output)
		fclose(f);
	return 0;
}

int emit_dot(Eval *ev, void *prepared, const char *pass, const char *output, bool svg)
{
	DotSnap *s = prepared;
	IrGraph *g;
	if (pass && strcmp(pass, "source") == 0) {
		g = s->source;
		if (!g) {
			diag_plain(ev->diag, DIAG_ERROR, "--emit=dot:source: the script never calls "
			           "create_schedule()");
			return 1;
		}
	} else if (s->after) {
		g = s->source;
		if (!g) {
			diag_plain(ev->diag, DIAG_ERROR,
			           "--emit=dot:after=%ld: the script applies %ld schedule primitive%s",
			           s->after, s->seen, s->seen == 1 ? "" : "s");
			return 1;
		}
	} else {
		Module *root = eval_model_root(ev, "--emit=dot");
		if (!root)
			return 1;
		g = trace_model(ev, root, root->made_at);
	}
	StrBuf b = {0};
	ir_graph_dot(&b, g);
	int r = write_out(ev, b.data, b.len, output, svg);
	sb_free(&b);
	return r;
}
