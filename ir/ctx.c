/* ctx.c - the IR context: the arena and diagnostics one compilation's IR
 * hangs from, and the table of symbolic dimension names (B, S, ...). */
#include <string.h>

#include "ir/ir.h"

void ir_ctx_init(IrCtx *c, Arena *a, Diag *d)
{
	memset(c, 0, sizeof *c);
	c->arena = a;
	c->diag = d;
}

int ir_sym(IrCtx *c, const char *name, Span sp)
{
	for (int i = 0; i < c->nsyms; i++)
		if (strcmp(c->sym_names[i], name) == 0)
			return i;
	if (c->nsyms == IR_MAX_SYMS) {
		diag_error(
		        c->diag, sp,
		        "too many symbolic dimensions: '%s' would be the %dth (at most %d)",
		        name, IR_MAX_SYMS + 1, IR_MAX_SYMS);
		return -1;
	}
	c->sym_names[c->nsyms] = arena_strdup(c->arena, name);
	return c->nsyms++;
}
