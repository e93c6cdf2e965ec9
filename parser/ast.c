/* ast.c - AST nodes: constructors (one per grammar action), kind and
 * operator names, and the --dump-ast printer.
 *
 * Every node comes from the parse's arena, zeroed, and carries the span of
 * the whole construct. The constructors do no checking; the checks that
 * need a diagnostic live in parse.c.
 */
#include "parser/parser.h"

#include <string.h>

/* ---- names ---- */

/* clang-format off */
static const char *const kind_names[AST_KIND_COUNT] = {
	[AST_INT] = "int",
	[AST_FLOAT] = "float",
	[AST_STRING] = "string",
	[AST_FSTRING] = "fstring",
	[AST_BOOL] = "bool",
	[AST_NONE] = "none",
	[AST_NAME] = "name",
	[AST_LIST] = "list",
	[AST_LISTCOMP] = "listcomp",
	[AST_RANGE] = "range",
	[AST_UNARY] = "unary",
	[AST_BINARY] = "binary",
	[AST_CALL] = "call",
	[AST_KWARG] = "kwarg",
	[AST_ATTR] = "attr",
	[AST_INDEX] = "index",
	[AST_SLICE] = "slice",
	[AST_TENSOR_TYPE] = "tensor_type",
	[AST_EXPR_STMT] = "expr_stmt",
	[AST_ASSIGN] = "assign",
	[AST_FOR] = "for",
	[AST_IF] = "if",
	[AST_RETURN] = "return",
	[AST_BLOCK] = "block",
	[AST_IMPORT] = "import",
	[AST_CONFIG] = "config",
	[AST_MODULE] = "module",
	[AST_FORWARD] = "forward",
	[AST_PATTERN] = "pattern",
	[AST_FN] = "fn",
	[AST_PARAM] = "param",
	[AST_PROGRAM] = "program",
};
/* clang-format on */

const char *ast_kind_name(AstKind k)
{
	if ((unsigned)k >= AST_KIND_COUNT || !kind_names[k])
		return "?";
	return kind_names[k];
}

/* clang-format off */
static const char *const op_names[OPR_COUNT] = {
	[OPR_ADD] = "+",  [OPR_SUB] = "-",  [OPR_MUL] = "*",   [OPR_DIV] = "/",
	[OPR_FLOORDIV] = "//", [OPR_MOD] = "%", [OPR_POW] = "**", [OPR_MATMUL] = "@",
	[OPR_EQ] = "==", [OPR_NE] = "!=", [OPR_LT] = "<",   [OPR_LE] = "<=",
	[OPR_GT] = ">",  [OPR_GE] = ">=", [OPR_AND] = "and", [OPR_OR] = "or",
	[OPR_NOT] = "not", [OPR_NEG] = "-", [OPR_POS] = "+",
};
/* clang-format on */

const char *ast_op_name(AstOp op)
{
	if ((unsigned)op >= OPR_COUNT || !op_names[op])
		return "?";
	return op_names[op];
}

/* ---- lists ---- */

AstList ast_list(Arena *a, PtrVec *v)
{
	AstList l = {0};
	if (!v || v->len == 0)
		return l;
	l.items = ARENA_ARRAY(a, Ast *, v->len);
	memcpy(l.items, v->items, sizeof(Ast *) * (size_t)v->len);
	l.len = v->len;
	return l;
}

PtrVec ast_vec_new(void)
{
	PtrVec v = {0};
	return v;
}

PtrVec ast_vec_one(Arena *a, void *x)
{
	PtrVec v = {0};
	ptrvec_push(a, &v, x);
	return v;
}

PtrVec ast_vec_push(Arena *a, PtrVec v, void *x)
{
	ptrvec_push(a, &v, x);
	return v;
}

/* ---- constructors ---- */

Ast *ast_new(Arena *a, AstKind k, Span sp)
{
	Ast *n = ARENA_NEW(a, Ast);
	n->kind = k;
	n->span = sp;
	return n;
}

Ast *ast_int(Arena *a, Span sp, int64_t v)
{
	Ast *n = ast_new(a, AST_INT, sp);
	n->ival = v;
	return n;
}

Ast *ast_float(Arena *a, Span sp, double v)
{
	Ast *n = ast_new(a, AST_FLOAT, sp);
	n->fval = v;
	return n;
}

Ast *ast_string(Arena *a, Span sp, const char *s)
{
	Ast *n = ast_new(a, AST_STRING, sp);
	n->str = s;
	return n;
}

Ast *ast_name(Arena *a, Span sp, const char *name)
{
	Ast *n = ast_new(a, AST_NAME, sp);
	n->name = name;
	n->name_span = sp;
	return n;
}

Ast *ast_bool(Arena *a, Span sp, bool v)
{
	Ast *n = ast_new(a, AST_BOOL, sp);
	n->ival = v;
	return n;
}

Ast *ast_none(Arena *a, Span sp)
{
	return ast_new(a, AST_NONE, sp);
}

Ast *ast_unary(Arena *a, Span sp, AstOp op, Ast *x)
{
	Ast *n = ast_new(a, AST_UNARY, sp);
	n->op = op;
	n->lhs = x;
	return n;
}

Ast *ast_binary(Arena *a, Span sp, AstOp op, Ast *x, Ast *y)
{
	Ast *n = ast_new(a, AST_BINARY, sp);
	n->op = op;
	n->lhs = x;
	n->rhs = y;
	return n;
}

Ast *ast_fstring(Arena *a, Span sp, PtrVec *parts)
{
	bool interpolated = false;
	for (int i = 0; i < parts->len; i++)
		if (((Ast *)parts->items[i])->kind != AST_STRING)
			interpolated = true;
	if (!interpolated) {
		/* only text: join it into one plain string */
		StrBuf b = {0};
		for (int i = 0; i < parts->len; i++)
			sb_puts(&b, ((Ast *)parts->items[i])->str);
		Ast *n = ast_string(a, sp, arena_strndup(a, b.data ? b.data : "", b.len));
		sb_free(&b);
		return n;
	}
	Ast *n = ast_new(a, AST_FSTRING, sp);
	n->list = ast_list(a, parts);
	return n;
}

Ast *ast_list_lit(Arena *a, Span sp, PtrVec *elems)
{
	Ast *n = ast_new(a, AST_LIST, sp);
	n->list = ast_list(a, elems);
	return n;
}

Ast *ast_listcomp(Arena *a, Span sp, Ast *elem, const char *var, Span var_sp, Ast *iter)
{
	Ast *n = ast_new(a, AST_LISTCOMP, sp);
	n->lhs = elem;
	n->name = var;
	n->name_span = var_sp;
	n->rhs = iter;
	return n;
}

Ast *ast_range(Arena *a, Span sp, Ast *lo, Ast *hi)
{
	Ast *n = ast_new(a, AST_RANGE, sp);
	n->lhs = lo;
	n->rhs = hi;
	return n;
}

Ast *ast_call(Arena *a, Span sp, Ast *callee, PtrVec *args)
{
	Ast *n = ast_new(a, AST_CALL, sp);
	n->lhs = callee;
	n->list = ast_list(a, args);
	return n;
}

Ast *ast_kwarg(Arena *a, Span sp, const char *name, Span name_sp, Ast *value)
{
	Ast *n = ast_new(a, AST_KWARG, sp);
	n->name = name;
	n->name_span = name_sp;
	n->rhs = value;
	return n;
}

Ast *ast_attr(Arena *a, Span sp, Ast *obj, const char *name, Span name_sp)
{
	Ast *n = ast_new(a, AST_ATTR, sp);
	n->lhs = obj;
	n->name = name;
	n->name_span = name_sp;
	return n;
}

Ast *ast_index(Arena *a, Span sp, Ast *obj, PtrVec *keys)
{
	Ast *n = ast_new(a, AST_INDEX, sp);
	n->lhs = obj;
	n->list = ast_list(a, keys);
	return n;
}

Ast *ast_slice(Arena *a, Span sp, Ast *lo, Ast *hi, Ast *step)
{
	Ast *n = ast_new(a, AST_SLICE, sp);
	n->lhs = lo;
	n->rhs = hi;
	n->third = step;
	return n;
}

Ast *ast_tensor_type(Arena *a, Span sp, const char *dtype, Span dtype_sp, PtrVec *dims)
{
	Ast *n = ast_new(a, AST_TENSOR_TYPE, sp);
	n->name = dtype;
	n->name_span = dtype_sp;
	n->list = ast_list(a, dims);
	return n;
}

Ast *ast_expr_stmt(Arena *a, Span sp, Ast *e)
{
	Ast *n = ast_new(a, AST_EXPR_STMT, sp);
	n->lhs = e;
	return n;
}

Ast *ast_assign(Arena *a, Span sp, Ast *target, Ast *value)
{
	Ast *n = ast_new(a, AST_ASSIGN, sp);
	n->lhs = target;
	n->rhs = value;
	return n;
}

Ast *ast_for(Arena *a, Span sp, const char *var, Span var_sp, Ast *iter, Ast *body)
{
	Ast *n = ast_new(a, AST_FOR, sp);
	n->name = var;
	n->name_span = var_sp;
	n->rhs = iter;
	n->body = body;
	return n;
}

Ast *ast_if(Arena *a, Span sp, Ast *cond, Ast *then, Ast *els)
{
	Ast *n = ast_new(a, AST_IF, sp);
	n->cond = cond;
	n->body = then;
	n->els = els;
	return n;
}

Ast *ast_return(Arena *a, Span sp, Ast *value)
{
	Ast *n = ast_new(a, AST_RETURN, sp);
	n->lhs = value;
	return n;
}

Ast *ast_block(Arena *a, Span sp, PtrVec *stmts)
{
	Ast *n = ast_new(a, AST_BLOCK, sp);
	n->list = ast_list(a, stmts);
	return n;
}

Ast *ast_import(Arena *a, Span sp, const char *path)
{
	Ast *n = ast_new(a, AST_IMPORT, sp);
	n->str = path;
	return n;
}

Ast *ast_decl(Arena *a, AstKind k, Span sp, const char *name, Span name_sp,
              PtrVec *params, Ast *body)
{
	Ast *n = ast_new(a, k, sp);
	n->name = name;
	n->name_span = name_sp;
	n->params = ast_list(a, params);
	n->body = body;
	return n;
}

Ast *ast_param(Arena *a, Span sp, const char *name, Span name_sp, Ast *type, Ast *def)
{
	Ast *n = ast_new(a, AST_PARAM, sp);
	n->name = name;
	n->name_span = name_sp;
	n->type = type;
	n->rhs = def;
	return n;
}

Ast *ast_program(Arena *a, Span sp, PtrVec *items)
{
	Ast *n = ast_new(a, AST_PROGRAM, sp);
	n->list = ast_list(a, items);
	return n;
}

/* ---- dump ----
 *
 *   KIND [fields] @line:col-line:col
 *
 * one node a line, children two spaces deeper, some behind a label
 * ("callee: ", "value: ") where the role is not plain from the order.
 * Names print as "name"@line:col-line:col (where the name was written).
 */

/* The printer refuses to go deeper than this (the parser never builds
 * such trees; see PARSE_MAX_DEPTH). */
enum {
	DUMP_MAX_DEPTH = 4 * PARSE_MAX_DEPTH
};

static void dump_span(FILE *out, Span sp)
{
	fprintf(out, "@%d:%d-%d:%d", sp.first_line, sp.first_column, sp.last_line,
	        sp.last_column);
}

/* A string in double quotes, with \" \\ \n \t \r and \xHH for other
 * control bytes; UTF-8 text is printed as it is. */
static void dump_quoted(FILE *out, const char *s)
{
	fputc('"', out);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(out, "\\x%02x", c);
			else
				fputc(c, out);
		}
	}
	fputc('"', out);
}

static void dump_name(FILE *out, const Ast *n)
{
	fputc(' ', out);
	dump_quoted(out, n->name);
	dump_span(out, n->name_span);
}

static void dump_node(FILE *out, const Ast *n, int depth, const char *label);

static void dump_list(FILE *out, AstList l, int depth, const char *label)
{
	for (int i = 0; i < l.len; i++)
		dump_node(out, l.items[i], depth, label);
}

static void dump_node(FILE *out, const Ast *n, int depth, const char *label)
{
	fprintf(out, "%*s", 2 * depth, "");
	if (label)
		fprintf(out, "%s: ", label);
	if (!n) {
		fputs("(null)\n", out);
		return;
	}
	if (depth > DUMP_MAX_DEPTH) {
		fputs("...\n", out);
		return;
	}
	fputs(ast_kind_name(n->kind), out);
	int d = depth + 1;
	switch (n->kind) {
	case AST_INT:
		fprintf(out, " %lld ", (long long)n->ival);
		break;
	case AST_FLOAT: {
		StrBuf b = {0};
		sb_pyfloat(&b, n->fval);
		fprintf(out, " %s ", b.data);
		sb_free(&b);
		break;
	}
	case AST_STRING:
	case AST_IMPORT:
		fputc(' ', out);
		dump_quoted(out, n->str);
		fputc(' ', out);
		break;
	case AST_BOOL:
		fputs(n->ival ? " true " : " false ", out);
		break;
	case AST_NAME:
		fputc(' ', out);
		dump_quoted(out, n->name);
		fputc(' ', out);
		break;
	case AST_UNARY:
	case AST_BINARY:
		fprintf(out, " \"%s\" ", ast_op_name(n->op));
		break;
	case AST_LISTCOMP:
	case AST_KWARG:
	case AST_ATTR:
	case AST_TENSOR_TYPE:
	case AST_FOR:
	case AST_CONFIG:
	case AST_MODULE:
	case AST_PATTERN:
	case AST_FN:
	case AST_PARAM:
		dump_name(out, n);
		fputc(' ', out);
		break;
	default:
		fputc(' ', out);
		break;
	}
	dump_span(out, n->span);
	fputc('\n', out);

	switch (n->kind) {
	case AST_FSTRING:
	case AST_LIST:
	case AST_BLOCK:
	case AST_PROGRAM:
	case AST_TENSOR_TYPE:
		dump_list(out, n->list, d, NULL);
		break;
	case AST_LISTCOMP:
		dump_node(out, n->lhs, d, "elem");
		dump_node(out, n->rhs, d, "iter");
		break;
	case AST_RANGE:
	case AST_BINARY:
		dump_node(out, n->lhs, d, NULL);
		dump_node(out, n->rhs, d, NULL);
		break;
	case AST_UNARY:
	case AST_ATTR:
	case AST_EXPR_STMT:
		dump_node(out, n->lhs, d, NULL);
		break;
	case AST_RETURN:
		if (n->lhs)
			dump_node(out, n->lhs, d, NULL);
		break;
	case AST_CALL:
		dump_node(out, n->lhs, d, "callee");
		dump_list(out, n->list, d, "arg");
		break;
	case AST_KWARG:
		dump_node(out, n->rhs, d, NULL);
		break;
	case AST_INDEX:
		dump_node(out, n->lhs, d, NULL);
		dump_list(out, n->list, d, "key");
		break;
	case AST_SLICE:
		if (n->lhs)
			dump_node(out, n->lhs, d, "lo");
		if (n->rhs)
			dump_node(out, n->rhs, d, "hi");
		if (n->third)
			dump_node(out, n->third, d, "step");
		break;
	case AST_ASSIGN:
		dump_node(out, n->lhs, d, "target");
		dump_node(out, n->rhs, d, "value");
		break;
	case AST_FOR:
		dump_node(out, n->rhs, d, "iter");
		dump_node(out, n->body, d, "body");
		break;
	case AST_IF:
		dump_node(out, n->cond, d, "cond");
		dump_node(out, n->body, d, "then");
		if (n->els)
			dump_node(out, n->els, d, "else");
		break;
	case AST_CONFIG:
	case AST_MODULE:
	case AST_FORWARD:
	case AST_PATTERN:
	case AST_FN:
		dump_list(out, n->params, d, NULL);
		dump_node(out, n->body, d, "body");
		break;
	case AST_PARAM:
		if (n->type)
			dump_node(out, n->type, d, "type");
		if (n->rhs)
			dump_node(out, n->rhs, d, "default");
		break;
	default:
		break;
	}
}

void ast_dump(FILE *out, const Ast *root)
{
	dump_node(out, root, 0, NULL);
}
