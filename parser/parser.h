/* parser.h - the .slapo front end: tokens, the AST, the lexer and parser.
 *
 * The lexer (lexer.l) is a reentrant flex scanner; the parser (grammar.y)
 * a pure bison parser with locations. Grammar actions make one call each
 * into the AST constructors of ast.c; all nodes come from an arena and
 * carry the Span they were parsed from. docs/language.md is the spec.
 */
#ifndef SLAPO_PARSER_H
#define SLAPO_PARSER_H

#include "support/support.h"

/* ---- ast.c ------------------------------------------------------------- */

typedef enum {
	/* expressions */
	AST_INT,        /* ival */
	AST_FLOAT,      /* fval */
	AST_STRING,     /* str: contents with escapes resolved */
	AST_FSTRING,    /* list: AST_STRING pieces and expressions, in order */
	AST_BOOL,       /* ival: 0 or 1 */
	AST_NONE,       /* none */
	AST_NAME,       /* name */
	AST_LIST,       /* list: elements                      [a, b, c] */
	AST_LISTCOMP,   /* lhs: element, name: variable, rhs: iterable
	                                          [f(i) for i in 0 .. n] */
	AST_RANGE,      /* lhs .. rhs (half-open)                  0 .. n */
	AST_UNARY,      /* op, lhs */
	AST_BINARY,     /* op, lhs, rhs */
	AST_CALL,       /* lhs: callee, list: arguments (AST_KWARG for k=v) */
	AST_KWARG,      /* name = rhs, only inside a call's argument list */
	AST_ATTR,       /* lhs . name */
	AST_INDEX,      /* lhs [ list ]; list items may be AST_SLICE */
	AST_SLICE,      /* lhs : rhs : third; any may be NULL       a:b:c */
	AST_TENSOR_TYPE,/* name: dtype (f32, i64, ...), list: dims
	                                                 f32[B, S, 768] */
	/* statements */
	AST_EXPR_STMT,  /* lhs */
	AST_ASSIGN,     /* lhs: target (AST_NAME or AST_ATTR), rhs: value */
	AST_FOR,        /* name: variable, rhs: iterable, body */
	AST_IF,         /* cond, body, els (AST_BLOCK, AST_IF or NULL) */
	AST_RETURN,     /* lhs (may be NULL) */
	AST_BLOCK,      /* list: statements */
	/* declarations (top level; AST_FORWARD inside a module body) */
	AST_IMPORT,     /* str: the path as written */
	AST_CONFIG,     /* name, body: AST_BLOCK of field assignments */
	AST_MODULE,     /* name, params, body: AST_BLOCK of member
	                   statements and at most one AST_FORWARD */
	AST_FORWARD,    /* params, body */
	AST_PATTERN,    /* name, params, body */
	AST_FN,         /* name, params, body */
	AST_PARAM,      /* name, type (AST_TENSOR_TYPE, AST_NAME for a bare
	                   type name such as `int`, or NULL),
	                   rhs: default value or NULL */
	AST_PROGRAM,    /* list: top-level items (declarations, statements) */
	AST_KIND_COUNT
} AstKind;

/* Operators of AST_UNARY and AST_BINARY. */
typedef enum {
	OPR_ADD, OPR_SUB, OPR_MUL, OPR_DIV, OPR_FLOORDIV, OPR_MOD, OPR_POW,
	OPR_MATMUL, OPR_EQ, OPR_NE, OPR_LT, OPR_LE, OPR_GT, OPR_GE,
	OPR_AND, OPR_OR, OPR_NOT, OPR_NEG, OPR_POS,
	OPR_COUNT
} AstOp;

typedef struct Ast Ast;

typedef struct AstList {
	Ast **items;
	int len;
} AstList;

/* One node. Which fields a kind uses is listed with AstKind above;
 * the others are zero. */
struct Ast {
	AstKind kind;
	Span span;       /* the whole construct */
	AstOp op;        /* AST_UNARY, AST_BINARY */
	const char *name;/* identifiers: names, attributes, declarations */
	const char *str; /* AST_STRING, AST_IMPORT */
	int64_t ival;    /* AST_INT, AST_BOOL */
	double fval;     /* AST_FLOAT */
	Ast *lhs, *rhs, *third;
	Ast *cond, *body, *els;
	Ast *type;       /* AST_PARAM's annotation */
	AstList list;    /* elements, arguments, statements, pieces */
	AstList params;  /* AST_MODULE, AST_FORWARD, AST_PATTERN, AST_FN */
	Span name_span;  /* where `name` was written, for diagnostics */
};

const char *ast_kind_name(AstKind k);
const char *ast_op_name(AstOp op); /* "+", "-", "and", ... */

/* Constructors used by the grammar actions: one call per action. */
Ast *ast_new(Arena *a, AstKind k, Span sp);
Ast *ast_int(Arena *a, Span sp, int64_t v);
Ast *ast_float(Arena *a, Span sp, double v);
Ast *ast_string(Arena *a, Span sp, const char *s);
Ast *ast_name(Arena *a, Span sp, const char *name);
Ast *ast_unary(Arena *a, Span sp, AstOp op, Ast *x);
Ast *ast_binary(Arena *a, Span sp, AstOp op, Ast *x, Ast *y);
/* Lists are built while parsing with PtrVec and frozen into AstList. */
AstList ast_list(Arena *a, PtrVec *v);
/* PtrVec by value, so that a grammar action is one call:
 * `$$ = ast_vec_push(p->arena, $1, $3)`. */
PtrVec ast_vec_new(void);
PtrVec ast_vec_one(Arena *a, void *x);
PtrVec ast_vec_push(Arena *a, PtrVec v, void *x);

Ast *ast_bool(Arena *a, Span sp, bool v);
Ast *ast_none(Arena *a, Span sp);
/* A string with interpolation: AST_FSTRING over `parts` (AST_STRING pieces
 * and expressions); an AST_STRING when `parts` holds no expression. */
Ast *ast_fstring(Arena *a, Span sp, PtrVec *parts);
Ast *ast_list_lit(Arena *a, Span sp, PtrVec *elems);
Ast *ast_listcomp(Arena *a, Span sp, Ast *elem, const char *var, Span var_sp, Ast *iter);
Ast *ast_range(Arena *a, Span sp, Ast *lo, Ast *hi);
Ast *ast_call(Arena *a, Span sp, Ast *callee, PtrVec *args);
Ast *ast_kwarg(Arena *a, Span sp, const char *name, Span name_sp, Ast *value);
Ast *ast_attr(Arena *a, Span sp, Ast *obj, const char *name, Span name_sp);
Ast *ast_index(Arena *a, Span sp, Ast *obj, PtrVec *keys);
Ast *ast_slice(Arena *a, Span sp, Ast *lo, Ast *hi, Ast *step);
Ast *ast_tensor_type(Arena *a, Span sp, const char *dtype, Span dtype_sp, PtrVec *dims);
Ast *ast_expr_stmt(Arena *a, Span sp, Ast *e);
Ast *ast_assign(Arena *a, Span sp, Ast *target, Ast *value);
Ast *ast_for(Arena *a, Span sp, const char *var, Span var_sp, Ast *iter, Ast *body);
Ast *ast_if(Arena *a, Span sp, Ast *cond, Ast *then, Ast *els);
Ast *ast_return(Arena *a, Span sp, Ast *value);
Ast *ast_block(Arena *a, Span sp, PtrVec *stmts);
Ast *ast_import(Arena *a, Span sp, const char *path);
/* AST_CONFIG, AST_MODULE, AST_FORWARD, AST_PATTERN, AST_FN. A forward has
 * no name (NULL); its name_span is the `forward` keyword. */
Ast *ast_decl(Arena *a, AstKind k, Span sp, const char *name, Span name_sp,
              PtrVec *params, Ast *body);
Ast *ast_param(Arena *a, Span sp, const char *name, Span name_sp, Ast *type, Ast *def);
Ast *ast_program(Arena *a, Span sp, PtrVec *items);

/* --dump-ast: an indented tree, one node a line, each with its kind, its
 * scalar fields and its span (line:col-line:col); children indented two
 * spaces, labelled where their role is not obvious. parser/README.md
 * describes the format. */
void ast_dump(FILE *out, const Ast *root);

/* ---- parse.c (the driver around lexer.l and grammar.y) ------------------ */

/* Parse one source file. Syntax errors are reported through d (several
 * per run where the parser recovers). Returns the AST_PROGRAM, or NULL
 * when errors were reported. */
Ast *parse_file(Arena *a, Diag *d, SrcFile *f);

/* An AST deeper than this is rejected after parsing ("expression nested too
 * deeply"), so that the recursive passes after the parser stay within a
 * bounded C stack. Brackets are limited separately (SUP_MAX_NESTING). */
enum { PARSE_MAX_DEPTH = 1000 };

/* ---- internals shared by lexer.l, grammar.y and parse.c ---------------- */

/* An open bracket, brace or string interpolation, innermost last. */
typedef struct LexOpen {
	char kind; /* '(', '[', '{', or 'i' for the '{' of an interpolation */
	Span span; /* where it was opened */
} LexOpen;

/* The state of one parse: the parser's context and the lexer's extra data. */
typedef struct Parser {
	Arena *arena;       /* AST nodes and token text */
	Diag *diag;
	SrcFile *file;
	Ast *program;       /* set by the top rule */
	jmp_buf *fatal;     /* where YY_FATAL_ERROR (flex internals) unwinds to */
	bool stop;          /* a fatal error: the lexer returns end of file */
	int err_line;       /* line of the last error; more lexer errors on it
	                       are not reported (they are usually follow-ups) */
	/* lexer */
	void *scanner;      /* the flex yyscan_t */
	const char *base;   /* flex's copy of the text; token offsets from it */
	const char *text;   /* the text itself (flex writes NULs into its copy),
	                       for looking ahead; same offsets */
	long line_off;      /* offset of the current line's first byte */
	int line;           /* current line, 1-based */
	int last;           /* the last token handed to the parser */
	Span last_span;
	bool line_start;    /* no token yet on the current line */
	bool last_first;    /* the last token was the first on its line */
	bool force_newline; /* after an error: end the statement at the next
	                       line end even after an operator */
	bool eof_done;      /* end-of-file checks already made */
	long end_off;       /* offset of the end of the text */
	int nopen;
	LexOpen open[SUP_MAX_NESTING];
	int ninterp;        /* 'i' entries in open[] */
	int nstr;           /* interpolated strings being lexed, innermost last */
	Span str_quote[SUP_MAX_NESTING + 1]; /* their opening quotes */
	int str_nopen[SUP_MAX_NESTING + 1];  /* nopen when each was opened */
	StrBuf piece;       /* text of the current string piece, escapes resolved */
	long piece_off;     /* offset where that piece starts */
} Parser;

/* ---- lexer.l (internal) ---- */

bool lex_open(Parser *p);  /* start the scanner over p->file */
void lex_close(Parser *p);
/* After a syntax error: forget brackets that were probably left unclosed
 * and end the statement at the next line end. `unclosed`: the error token
 * starts a line, so the innermost '(' or '[' was likely never closed. */
void lex_recover(Parser *p, bool unclosed);
/* The location before the first token: an empty span at 1:1. */
Span parse_span_start(Parser *p);

/* ---- parse.c (internal) ---- */

/* The constructors that also check syntax rules the grammar
 * leaves open (assignment targets, argument order, where declarations may
 * stand); they report through p->diag and still return a node. */
Ast *parse_assign(Parser *p, Span sp, Ast *target, Ast *value);
Ast *parse_call(Parser *p, Span sp, Ast *callee, PtrVec *args);
Ast *parse_block(Parser *p, Span sp, PtrVec *stmts);
Ast *parse_module_body(Parser *p, Span sp, PtrVec *stmts);
Ast *parse_config(Parser *p, Span sp, const char *name, Span name_sp, Ast *body);
Ast *parse_decl(Parser *p, AstKind k, Span sp, const char *name, Span name_sp,
                PtrVec *params, Ast *body);
Ast *parse_import(Parser *p, Span sp, Ast *path);
Ast *parse_program(Parser *p, Span sp, PtrVec *items);
/* Bison's YYLLOC_DEFAULT: a rule's span runs from its first non-empty
 * part to its last; an empty rule gets an empty span (first > last)
 * just after the previous token. */
void parse_span_default(Span *cur, const Span *rhs, int n);

#endif
