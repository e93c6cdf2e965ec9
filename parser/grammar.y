/* grammar.y - the .slapo grammar (a pure bison parser with locations).
 *
 * Each action is one call into the constructors of ast.c (or parse.c,
 * for those that also check a rule); no semantics here. docs/language.md
 * carries the same grammar in EBNF: change both together.
 *
 * Statements end at a NEWLINE token, which the lexer inserts Go-style
 * (see lexer.l), or at ';'. The last statement before '}' or the end of
 * the file needs no terminator, and a compound statement (one that ends
 * with '}') needs none either. Errors are recovered at statement level:
 * `items: items error sep` skips to the end of the statement (or past the
 * block that follows it: `items error skipped_block`), and
 * `stmt_list: items error` lets a '}' end a block after an error.
 */

%code requires {
#include "parser/parser.h"
}

%code provides {
/* lexer.l: the token function the parser calls. */
int slapo_yylex(SLAPO_YYSTYPE *lval, Span *lloc, Parser *p);
}

%code {
#include <string.h>

/* Left-recursive lists keep the stack shallow; only nesting deepens it.
 * Brackets stop at SUP_MAX_NESTING in the lexer, so this is reached only
 * by absurd chains of prefix operators, reported as too deep. */
#define YYMAXDEPTH 10000
#define YYLLOC_DEFAULT(cur, rhs, n) parse_span_default(&(cur), (rhs), (n))
static void slapo_yyerror(Span *loc, Parser *p, const char *msg);
}

%define api.pure full
%define api.prefix {slapo_yy}
%define api.token.prefix {TK_}
%define api.location.type {Span}
%define parse.error custom
%define parse.lac full
%locations
%param {Parser *p}
%expect 0

%initial-action {
	@$ = parse_span_start(p);
}

%union {
	Ast *node;
	PtrVec vec;
	const char *str;
	int64_t ival;
	double fval;
}

%token <str>  IDENT     "identifier"
%token <ival> INT       "integer"
%token <fval> FLOAT     "float"
%token <str>  STRING    "string"
%token        FSTR_BEGIN "start of a string"
%token <str>  STR_PIECE "string text"
%token        INTERP_BEGIN "'{'"
%token        INTERP_END "'}'"
%token        FSTR_END  "end of string"
%token        NEWLINE   "end of line"

%token IMPORT  "'import'"
%token CONFIG  "'config'"
%token MODULE  "'module'"
%token PATTERN "'pattern'"
%token FN      "'fn'"
%token FORWARD "'forward'"
%token FOR     "'for'"
%token IN      "'in'"
%token IF      "'if'"
%token ELSE    "'else'"
%token RETURN  "'return'"
%token TRUE    "'true'"
%token FALSE   "'false'"
%token NONE    "'none'"
%token AND     "'and'"
%token OR      "'or'"
%token NOT     "'not'"

%token EQ       "'=='"
%token NE       "'!='"
%token LE       "'<='"
%token GE       "'>='"
%token FLOORDIV "'//'"
%token POW      "'**'"
%token DOTDOT   "'..'"

/* Lowest first. Comparisons and ranges do not chain. */
%left OR
%left AND
%precedence NOT
%nonassoc EQ NE '<' LE '>' GE
%nonassoc DOTDOT
%left '+' '-'
%left '*' '/' FLOORDIV '%' '@'
%precedence UNARY
%right POW

%type <node> simple_stmt compound_stmt if_stmt block module_body
%type <node> expr postfix primary string fpart arg subscript slice opt_expr
%type <node> param type
%type <vec> stmt_list items fparts list_items expr_list args arg_list
%type <vec> subscripts subscript_list params param_list dims

%%

program
	: stmt_list                     { parse_program(p, @$, &$1); }
	;

/* ---- statements ---- */

stmt_list
	: items
	| items simple_stmt             { $$ = ast_vec_push(p->arena, $1, $2); }
	| items error                   { $$ = $1; }
	;

items
	: %empty                        { $$ = ast_vec_new(); }
	| items sep                     { $$ = $1; }
	| items simple_stmt sep         { $$ = ast_vec_push(p->arena, $1, $2); }
	| items compound_stmt           { $$ = ast_vec_push(p->arena, $1, $2); }
	| items error sep               { $$ = $1; }
	| items error skipped_block     { $$ = $1; }
	;

/* The block of a statement whose head had an error: parsed (its syntax
 * errors count) and dropped, so that its statements are not taken for
 * statements of the enclosing block. */
skipped_block
	: '{' stmt_list '}'
	| '{' stmt_list '}' ELSE block
	| '{' stmt_list '}' ELSE if_stmt
	;

sep
	: NEWLINE
	| ';'
	;

simple_stmt
	: expr                          { $$ = ast_expr_stmt(p->arena, @$, $1); }
	| expr '=' expr                 { $$ = parse_assign(p, @$, $1, $3); }
	| RETURN                        { $$ = ast_return(p->arena, @$, NULL); }
	| RETURN expr                   { $$ = ast_return(p->arena, @$, $2); }
	| IMPORT string                 { $$ = parse_import(p, @$, $2); }
	;

compound_stmt
	: FOR IDENT IN expr block       { $$ = ast_for(p->arena, @$, $2, @2, $4, $5); }
	| if_stmt
	| CONFIG IDENT block            { $$ = parse_config(p, @$, $2, @2, $3); }
	| MODULE IDENT '(' params ')' module_body
	                                { $$ = parse_decl(p, AST_MODULE, @$, $2, @2, &$4, $6); }
	| FORWARD '(' params ')' block  { $$ = parse_decl(p, AST_FORWARD, @$, NULL, @1, &$3, $5); }
	| PATTERN IDENT '(' params ')' block
	                                { $$ = parse_decl(p, AST_PATTERN, @$, $2, @2, &$4, $6); }
	| FN IDENT '(' params ')' block { $$ = parse_decl(p, AST_FN, @$, $2, @2, &$4, $6); }
	;

if_stmt
	: IF expr block                 { $$ = ast_if(p->arena, @$, $2, $3, NULL); }
	| IF expr block ELSE block      { $$ = ast_if(p->arena, @$, $2, $3, $5); }
	| IF expr block ELSE if_stmt    { $$ = ast_if(p->arena, @$, $2, $3, $5); }
	;

block
	: '{' stmt_list '}'             { $$ = parse_block(p, @$, &$2); }
	;

module_body
	: '{' stmt_list '}'             { $$ = parse_module_body(p, @$, &$2); }
	;

/* ---- parameters and types ---- */

params
	: %empty                        { $$ = ast_vec_new(); }
	| param_list
	| param_list ','
	;

param_list
	: param                         { $$ = ast_vec_one(p->arena, $1); }
	| param_list ',' param          { $$ = ast_vec_push(p->arena, $1, $3); }
	;

param
	: IDENT                         { $$ = ast_param(p->arena, @$, $1, @1, NULL, NULL); }
	| IDENT ':' type                { $$ = ast_param(p->arena, @$, $1, @1, $3, NULL); }
	| IDENT '=' expr                { $$ = ast_param(p->arena, @$, $1, @1, NULL, $3); }
	| IDENT ':' type '=' expr       { $$ = ast_param(p->arena, @$, $1, @1, $3, $5); }
	;

type
	: IDENT                         { $$ = ast_name(p->arena, @$, $1); }
	| IDENT '[' dims ']'            { $$ = ast_tensor_type(p->arena, @$, $1, @1, &$3); }
	;

dims
	: %empty                        { $$ = ast_vec_new(); }
	| expr_list
	| expr_list ','
	;

/* ---- expressions ---- */

expr
	: postfix
	| expr OR expr                  { $$ = ast_binary(p->arena, @$, OPR_OR, $1, $3); }
	| expr AND expr                 { $$ = ast_binary(p->arena, @$, OPR_AND, $1, $3); }
	| NOT expr                      { $$ = ast_unary(p->arena, @$, OPR_NOT, $2); }
	| expr EQ expr                  { $$ = ast_binary(p->arena, @$, OPR_EQ, $1, $3); }
	| expr NE expr                  { $$ = ast_binary(p->arena, @$, OPR_NE, $1, $3); }
	| expr '<' expr                 { $$ = ast_binary(p->arena, @$, OPR_LT, $1, $3); }
	| expr LE expr                  { $$ = ast_binary(p->arena, @$, OPR_LE, $1, $3); }
	| expr '>' expr                 { $$ = ast_binary(p->arena, @$, OPR_GT, $1, $3); }
	| expr GE expr                  { $$ = ast_binary(p->arena, @$, OPR_GE, $1, $3); }
	| expr DOTDOT expr              { $$ = ast_range(p->arena, @$, $1, $3); }
	| expr '+' expr                 { $$ = ast_binary(p->arena, @$, OPR_ADD, $1, $3); }
	| expr '-' expr                 { $$ = ast_binary(p->arena, @$, OPR_SUB, $1, $3); }
	| expr '*' expr                 { $$ = ast_binary(p->arena, @$, OPR_MUL, $1, $3); }
	| expr '/' expr                 { $$ = ast_binary(p->arena, @$, OPR_DIV, $1, $3); }
	| expr FLOORDIV expr            { $$ = ast_binary(p->arena, @$, OPR_FLOORDIV, $1, $3); }
	| expr '%' expr                 { $$ = ast_binary(p->arena, @$, OPR_MOD, $1, $3); }
	| expr '@' expr                 { $$ = ast_binary(p->arena, @$, OPR_MATMUL, $1, $3); }
	| '-' expr %prec UNARY          { $$ = ast_unary(p->arena, @$, OPR_NEG, $2); }
	| '+' expr %prec UNARY          { $$ = ast_unary(p->arena, @$, OPR_POS, $2); }
	| expr POW expr                 { $$ = ast_binary(p->arena, @$, OPR_POW, $1, $3); }
	;

postfix
	: primary
	| postfix '(' args ')'          { $$ = parse_call(p, @$, $1, &$3); }
	| postfix '.' IDENT             { $$ = ast_attr(p->arena, @$, $1, $3, @3); }
	| postfix '.' FORWARD           { $$ = ast_attr(p->arena, @$, $1, "forward", @3); }
	| postfix '[' subscripts ']'    { $$ = ast_index(p->arena, @$, $1, &$3); }
	;

primary
	: IDENT                         { $$ = ast_name(p->arena, @$, $1); }
	| INT                           { $$ = ast_int(p->arena, @$, $1); }
	| FLOAT                         { $$ = ast_float(p->arena, @$, $1); }
	| string
	| TRUE                          { $$ = ast_bool(p->arena, @$, true); }
	| FALSE                         { $$ = ast_bool(p->arena, @$, false); }
	| NONE                          { $$ = ast_none(p->arena, @$); }
	| '(' expr ')'                  { $$ = $2; }
	| '[' list_items ']'            { $$ = ast_list_lit(p->arena, @$, &$2); }
	| '[' expr FOR IDENT IN expr ']'
	                                { $$ = ast_listcomp(p->arena, @$, $2, $4, @4, $6); }
	;

string
	: STRING                        { $$ = ast_string(p->arena, @$, $1); }
	| FSTR_BEGIN fparts FSTR_END    { $$ = ast_fstring(p->arena, @$, &$2); }
	;

fparts
	: %empty                        { $$ = ast_vec_new(); }
	| fparts fpart                  { $$ = ast_vec_push(p->arena, $1, $2); }
	;

fpart
	: STR_PIECE                     { $$ = ast_string(p->arena, @$, $1); }
	| INTERP_BEGIN expr INTERP_END  { $$ = $2; }
	;

list_items
	: %empty                        { $$ = ast_vec_new(); }
	| expr_list
	| expr_list ','
	;

expr_list
	: expr                          { $$ = ast_vec_one(p->arena, $1); }
	| expr_list ',' expr            { $$ = ast_vec_push(p->arena, $1, $3); }
	;

args
	: %empty                        { $$ = ast_vec_new(); }
	| arg_list
	| arg_list ','
	;

arg_list
	: arg                           { $$ = ast_vec_one(p->arena, $1); }
	| arg_list ',' arg              { $$ = ast_vec_push(p->arena, $1, $3); }
	;

arg
	: expr
	| IDENT '=' expr                { $$ = ast_kwarg(p->arena, @$, $1, @1, $3); }
	;

subscripts
	: subscript_list
	| subscript_list ','
	;

subscript_list
	: subscript                     { $$ = ast_vec_one(p->arena, $1); }
	| subscript_list ',' subscript  { $$ = ast_vec_push(p->arena, $1, $3); }
	;

subscript
	: expr
	| slice
	;

slice
	: opt_expr ':' opt_expr         { $$ = ast_slice(p->arena, @$, $1, $3, NULL); }
	| opt_expr ':' opt_expr ':' opt_expr
	                                { $$ = ast_slice(p->arena, @$, $1, $3, $5); }
	;

opt_expr
	: %empty                        { $$ = NULL; }
	| expr
	;

%%

/* Bison calls this only when its stack is full (YYMAXDEPTH): syntax
 * errors go through yyreport_syntax_error below. */
static void slapo_yyerror(Span *loc, Parser *p, const char *msg)
{
	(void)msg;
	if (p->stop)
		return;
	diag_error(p->diag, *loc, "expression nested too deeply (limit %d)",
	           PARSE_MAX_DEPTH);
	p->stop = true;
}

/* A token's name in messages: the alias given above ("start of a
 * string" is a string to the user). */
static const char *sym_name(yysymbol_kind_t k)
{
	return k == YYSYMBOL_FSTR_BEGIN ? "string" : yysymbol_name(k);
}

/* How a token is named in "unexpected X": its name, with the text of
 * identifiers and numbers added. */
static void token_phrase(StrBuf *b, Parser *p, yysymbol_kind_t k, Span sp)
{
	sb_puts(b, sym_name(k));
	if (k != YYSYMBOL_IDENT && k != YYSYMBOL_INT && k != YYSYMBOL_FLOAT)
		return;
	int len;
	const char *line = src_line(p->file, sp.first_line, &len);
	int from = sp.first_column - 1, to = sp.last_column;
	if (sp.last_line != sp.first_line || from < 0 || to > len || to <= from)
		return;
	if (to - from > 40)
		sb_printf(b, " '%.*s...'", 37, line + from);
	else
		sb_printf(b, " '%.*s'", to - from, line + from);
}

/* Whether symbol k is one of the names in the space-separated list. */
static bool sym_in(yysymbol_kind_t k, const char *list)
{
	const char *name = sym_name(k);
	size_t n = strlen(name);
	for (const char *s = list; (s = strstr(s, name)) != NULL; s += n)
		if ((s == list || s[-1] == ' ') && (s[n] == ' ' || s[n] == 0))
			return true;
	return false;
}

/* Tokens that can start an expression: when all of them are expected,
 * the message says "expression" instead of listing them. */
static const char expr_starts[] =
	"identifier integer float string 'true' 'false' 'none' 'not' "
	"'(' '[' '-' '+'";
/* Operators, calls, attributes and indexing: they could continue what
 * came before, but listing them would say little. */
static const char expr_continues[] =
	"'or' 'and' '==' '!=' '<' '<=' '>' '>=' '..' '+' '-' '*' '/' '//' "
	"'%' '@' '**' '(' '.' '['";

/* "unexpected X, expected A, B or C", at the unexpected token. */
static int yyreport_syntax_error(const yypcontext_t *ctx, Parser *p)
{
	if (p->stop)
		return 0;
	yysymbol_kind_t tok = yypcontext_token(ctx);
	Span sp = *yypcontext_location(ctx);
	yysymbol_kind_t exp[YYNTOKENS];
	int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
	if (n < 0)
		n = 0;

	/* Fold the expected set into a short list. */
	bool all_starts = true, any_start = false;
	for (int i = 0; i < YYNTOKENS; i++) {
		if (!sym_in((yysymbol_kind_t)i, expr_starts))
			continue;
		bool found = false;
		for (int j = 0; j < n; j++)
			found |= exp[j] == (yysymbol_kind_t)i;
		all_starts &= found;
		any_start |= found;
	}
	const char *items[8];
	int nitems = 0;
	bool too_many = false, want_newline = false;
	bool want_ident = false;
	for (int j = 0; j < n; j++) {
		want_newline |= exp[j] == YYSYMBOL_NEWLINE;
		want_ident |= exp[j] == YYSYMBOL_IDENT;
	}
	for (int j = 0; j < n; j++) {
		yysymbol_kind_t k = exp[j];
		if (all_starts && sym_in(k, expr_starts))
			continue;
		if (sym_in(k, expr_continues) || k == YYSYMBOL_FSTR_BEGIN)
			continue;
		if (want_newline && (k == YYSYMBOL_YYEOF || sym_in(k, "';'")))
			continue; /* these go with end of line */
		if (want_ident && k == YYSYMBOL_FORWARD)
			continue; /* a name, as far as the user is concerned */
		if (nitems == 6)
			too_many = true;
		else
			items[nitems++] = sym_name(k);
	}
	if (all_starts && any_start && nitems < 6)
		items[nitems++] = "expression";

	StrBuf b = {0};
	sb_puts(&b, "unexpected ");
	token_phrase(&b, p, tok, sp);
	if (!too_many && nitems > 0 && nitems <= 4) {
		sb_puts(&b, ", expected ");
		for (int i = 0; i < nitems; i++) {
			if (i > 0)
				sb_puts(&b, i == nitems - 1 ? " or " : ", ");
			sb_puts(&b, items[i]);
		}
	}
	diag_error(p->diag, sp, "%s", b.data);
	sb_free(&b);
	p->err_line = sp.first_line;

	/* A note where a likely cause sits elsewhere. */
	bool unclosed = false;
	if (p->nopen > 0) {
		LexOpen *o = &p->open[p->nopen - 1];
		if ((o->kind == '(' || o->kind == '[') && p->last_first &&
		    o->span.first_line < sp.first_line) {
			diag_note(p->diag, o->span, "to match this '%c'", o->kind);
			unclosed = true;
		}
	}
	if (!all_starts && sym_in(tok, "'==' '!=' '<' '<=' '>' '>='"))
		diag_note(p->diag, sp, "comparisons do not chain: write 'a < b and b < c'");
	lex_recover(p, unclosed);
	return 0;
}
