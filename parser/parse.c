/* parse.c - the driver around lexer.l and grammar.y, and the checking
 * constructors the grammar actions call.
 *
 * parse_file runs the scanner and the parser over one SrcFile and
 * returns the AST_PROGRAM, or NULL after errors. The parser recovers
 * from syntax errors at statement level, so one run reports several.
 * Nothing here unwinds through bison: d->bail is switched off while the
 * parser runs (after SUP_MAX_ERRORS the lexer just returns end of file),
 * and only flex's fatal errors jump back here through p->fatal.
 *
 * The checks below are the syntax rules the grammar leaves open, so
 * that they can say more than "unexpected token": assignment targets,
 * argument order, parameter lists, and where declarations may stand.
 */
#include "parser/parser.h"
#include "grammar.h"

#include <string.h>

/* ---- spans ---- */

static bool span_empty(Span s)
{
	return s.first_line > s.last_line ||
	       (s.first_line == s.last_line && s.first_column > s.last_column);
}

void parse_span_default(Span *cur, const Span *rhs, int n)
{
	int first = 1, last = n;
	while (first <= n && span_empty(rhs[first]))
		first++;
	while (last >= 1 && span_empty(rhs[last]))
		last--;
	if (first > last) {
		/* empty: just after the previous symbol */
		Span prev = rhs[0];
		cur->file = prev.file;
		cur->first_line = cur->last_line = prev.last_line;
		cur->first_column = prev.last_column + 1;
		cur->last_column = prev.last_column;
		return;
	}
	cur->file = rhs[first].file;
	cur->first_line = rhs[first].first_line;
	cur->first_column = rhs[first].first_column;
	cur->last_line = rhs[last].last_line;
	cur->last_column = rhs[last].last_column;
}

/* ---- checks ---- */

/* "a call", "an index", ... for "cannot assign to ...". */
static const char *what(const Ast *n)
{
	switch (n->kind) {
	case AST_INT:
	case AST_FLOAT:
	case AST_STRING:
	case AST_FSTRING:
	case AST_BOOL:
	case AST_NONE:
		return "a literal";
	case AST_LIST:
		return "a list";
	case AST_LISTCOMP:
		return "a list comprehension";
	case AST_RANGE:
		return "a range";
	case AST_UNARY:
	case AST_BINARY:
		return "an operator expression";
	case AST_CALL:
		return "a function call";
	case AST_INDEX:
		return "an index expression";
	default:
		return "this expression";
	}
}

Ast *parse_assign(Parser *p, Span sp, Ast *target, Ast *value)
{
	if (target->kind != AST_NAME && target->kind != AST_ATTR)
		diag_error(p->diag, target->span,
		           "cannot assign to %s; the left side of '=' must be a name "
		           "or an attribute (a.b)",
		           what(target));
	return ast_assign(p->arena, sp, target, value);
}

Ast *parse_call(Parser *p, Span sp, Ast *callee, PtrVec *args)
{
	Ast *first_kw = NULL;
	for (int i = 0; i < args->len; i++) {
		Ast *a = args->items[i];
		if (a->kind != AST_KWARG) {
			if (first_kw) {
				diag_error(
				        p->diag, a->span,
				        "positional argument after keyword argument '%s'",
				        first_kw->name);
				first_kw = NULL; /* once per call is enough */
				break;
			}
			continue;
		}
		if (!first_kw)
			first_kw = a;
		for (int j = 0; j < i; j++) {
			Ast *b = args->items[j];
			if (b->kind == AST_KWARG && strcmp(a->name, b->name) == 0) {
				diag_error(p->diag, a->name_span,
				           "keyword argument '%s' repeated", a->name);
				break;
			}
		}
	}
	return ast_call(p->arena, sp, callee, args);
}

static const char *decl_word(AstKind k)
{
	switch (k) {
	case AST_IMPORT:
		return "import";
	case AST_CONFIG:
		return "config";
	case AST_MODULE:
		return "module";
	case AST_PATTERN:
		return "pattern";
	case AST_FN:
		return "fn";
	case AST_FORWARD:
		return "forward";
	default:
		return NULL;
	}
}

/* Statements in a block: no declarations; `forward` only where
 * forward_ok (a module body), once. */
static void check_stmts(Parser *p, PtrVec *stmts, bool forward_ok)
{
	Ast *forward = NULL;
	for (int i = 0; i < stmts->len; i++) {
		Ast *s = stmts->items[i];
		const char *w = decl_word(s->kind);
		if (!w)
			continue;
		if (s->kind != AST_FORWARD) {
			diag_error(p->diag, s->span,
			           "'%s' is allowed only at the top level of a file", w);
		} else if (!forward_ok) {
			diag_error(p->diag, s->name_span,
			           "'forward' is allowed only in the body of a module");
		} else if (forward) {
			diag_error(p->diag, s->name_span,
			           "a module has only one 'forward'");
			diag_note(p->diag, forward->name_span,
			          "the first 'forward' is here");
		} else {
			forward = s;
		}
	}
}

Ast *parse_block(Parser *p, Span sp, PtrVec *stmts)
{
	check_stmts(p, stmts, false);
	return ast_block(p->arena, sp, stmts);
}

Ast *parse_module_body(Parser *p, Span sp, PtrVec *stmts)
{
	check_stmts(p, stmts, true);
	return ast_block(p->arena, sp, stmts);
}

Ast *parse_config(Parser *p, Span sp, const char *name, Span name_sp, Ast *body)
{
	for (int i = 0; i < body->list.len; i++) {
		Ast *s = body->list.items[i];
		if (s->kind != AST_ASSIGN || s->lhs->kind != AST_NAME) {
			if (s->kind != AST_ASSIGN || s->lhs->kind == AST_ATTR)
				diag_error(
				        p->diag, s->span,
				        "a config holds only fields: 'name = default value'");
			continue;
		}
		for (int j = 0; j < i; j++) {
			Ast *t = body->list.items[j];
			if (t->kind == AST_ASSIGN && t->lhs->kind == AST_NAME &&
			    strcmp(t->lhs->name, s->lhs->name) == 0) {
				diag_error(p->diag, s->lhs->span,
				           "field '%s' defined twice", s->lhs->name);
				break;
			}
		}
	}
	PtrVec none = {0};
	return ast_decl(p->arena, AST_CONFIG, sp, name, name_sp, &none, body);
}

/* Parameters: distinct names, and none without a default after one with. */
static void check_params(Parser *p, PtrVec *params)
{
	Ast *with_default = NULL;
	for (int i = 0; i < params->len; i++) {
		Ast *a = params->items[i];
		for (int j = 0; j < i; j++) {
			Ast *b = params->items[j];
			if (strcmp(a->name, b->name) == 0) {
				diag_error(p->diag, a->name_span,
				           "parameter '%s' declared twice", a->name);
				break;
			}
		}
		if (a->rhs) {
			with_default = a;
		} else if (with_default) {
			diag_error(
			        p->diag, a->name_span,
			        "parameter '%s' without a default follows parameter '%s' "
			        "with a default",
			        a->name, with_default->name);
			with_default = NULL;
		}
	}
}

Ast *parse_decl(Parser *p, AstKind k, Span sp, const char *name, Span name_sp,
                PtrVec *params, Ast *body)
{
	check_params(p, params);
	return ast_decl(p->arena, k, sp, name, name_sp, params, body);
}

Ast *parse_import(Parser *p, Span sp, Ast *path)
{
	if (path->kind != AST_STRING) {
		diag_error(
		        p->diag, path->span,
		        "the path of an import is a plain string, without interpolation");
		return ast_import(p->arena, sp, "");
	}
	return ast_import(p->arena, sp, path->str);
}

Ast *parse_program(Parser *p, Span sp, PtrVec *items)
{
	for (int i = 0; i < items->len; i++) {
		Ast *s = items->items[i];
		if (s->kind == AST_FORWARD)
			diag_error(p->diag, s->name_span,
			           "'forward' is allowed only in the body of a module");
	}
	if (items->len > 0) /* from the first item to the last, not the blank lines */
		sp = span_join(((Ast *)items->items[0])->span,
		               ((Ast *)items->items[items->len - 1])->span);
	p->program = ast_program(p->arena, sp, items);
	return p->program;
}

/* ---- depth ---- */

/* The first node deeper than PARSE_MAX_DEPTH, or NULL. Recursion stops
 * at that depth, so the C stack stays bounded. */
static const Ast *too_deep(const Ast *n, int depth)
{
	if (!n)
		return NULL;
	if (depth > PARSE_MAX_DEPTH)
		return n;
	const Ast *kids[] = {n->lhs, n->rhs, n->third, n->cond, n->body, n->els, n->type};
	for (size_t i = 0; i < sizeof kids / sizeof kids[0]; i++) {
		const Ast *r = too_deep(kids[i], depth + 1);
		if (r)
			return r;
	}
	for (int i = 0; i < n->list.len; i++) {
		const Ast *r = too_deep(n->list.items[i], depth + 1);
		if (r)
			return r;
	}
	for (int i = 0; i < n->params.len; i++) {
		const Ast *r = too_deep(n->params.items[i], depth + 1);
		if (r)
			return r;
	}
	return NULL;
}

/* ---- the driver ---- */

Ast *parse_file(Arena *a, Diag *d, SrcFile *f)
{
	Parser *p = ARENA_NEW(a, Parser);
	p->arena = a;
	p->diag = d;
	p->file = f;
	int errors = d->nerrors;
	jmp_buf fatal;
	jmp_buf *saved_bail = d->bail;
	d->bail = NULL;
	p->fatal = &fatal;
	if (setjmp(fatal) == 0) {
		if (lex_open(p))
			slapo_yyparse(p);
	}
	lex_close(p);
	d->bail = saved_bail;
	if (d->nerrors > errors || !p->program)
		return NULL;
	const Ast *deep = too_deep(p->program, 0);
	if (deep) {
		diag_error(d, deep->span, "expression nested too deeply (limit %d)",
		           PARSE_MAX_DEPTH);
		return NULL;
	}
	return p->program;
}
