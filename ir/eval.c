/* eval.c - runs a .slapo program at compile time.
 *
 * A small tree-walking evaluator with Python-like semantics: function
 * scopes (no block scopes), names resolved in the current frame, then
 * the members of the module whose forward runs, then the enclosing
 * (global) scope. Module bodies run at instantiation and register their
 * members; configs are records with defaults; `import` evaluates another
 * file into the global scope once. Errors are fatal: eval_error reports
 * and unwinds to the driver.
 */
#include "ir/ir.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where names are looked up while a body runs. */
typedef struct Frame {
	Env *locals;        /* this call's (or the module body's) scope */
	Module *self;       /* forward: the module; its members are visible */
	Env *outer;         /* enclosing scope chain (globals) */
	Module *members_of; /* module body: assignments register members */
} Frame;

static Value *eval_expr(Eval *ev, Frame *f, const Ast *e);
static void count_step(Eval *ev, Span sp);
static void exec_block(Eval *ev, Frame *f, const Ast *blk);

void eval_error(Eval *ev, Span sp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vreport(ev->diag, DIAG_ERROR, sp, fmt, ap);
	va_end(ap);
	diag_bail(ev->diag);
}

void eval_init(Eval *ev, Arena *a, Diag *d, IrCtx *ir, FILE *out)
{
	memset(ev, 0, sizeof *ev);
	ev->arena = a;
	ev->diag = d;
	ev->ir = ir;
	ev->out = out;
	ev->globals = env_new(ev, NULL);
	ev->max_steps = 4 * 1000 * 1000;
	builtins_install(ev, ev->globals);
}

/* ---- argument helpers ---- */

Value *arg_get(Eval *ev, const char *fname, int pos, const char *kw, Value **args,
               int nargs, const char **kwnames, Value **kwargs, int nkw, Span sp,
               bool required)
{
	Value *v = NULL;
	if (pos >= 0 && pos < nargs)
		v = args[pos];
	for (int i = 0; kw && i < nkw; i++)
		if (strcmp(kwnames[i], kw) == 0) {
			if (v)
				eval_error(ev, sp, "%s() got multiple values for argument '%s'",
				           fname, kw);
			v = kwargs[i];
		}
	if (!v && required)
		eval_error(ev, sp, "%s() missing required argument '%s'", fname,
		           kw ? kw : "?");
	return v;
}

void arg_check_kwargs(Eval *ev, const char *fname, const char *const *allowed,
                      const char **kwn, int nkw, Span sp)
{
	for (int i = 0; i < nkw; i++) {
		bool ok = false;
		for (int j = 0; allowed && allowed[j]; j++)
			ok |= strcmp(allowed[j], kwn[i]) == 0;
		if (!ok)
			eval_error(ev, sp, "%s() got an unexpected keyword argument '%s'", fname,
			           kwn[i]);
	}
}

int64_t val_as_int(Eval *ev, Value *v, const char *what, Span sp)
{
	if (v->k == V_INT)
		return v->i;
	if (v->k == V_BOOL)
		return v->b;
	if (v->k == V_DIM)
		eval_error(ev, sp, "%s must be a constant, but it depends on a symbolic dimension",
		           what);
	eval_error(ev, sp, "%s must be an int, got %s", what, val_type_name(v));
}

double val_as_float(Eval *ev, Value *v, const char *what, Span sp)
{
	if (v->k == V_FLOAT)
		return v->f;
	if (v->k == V_INT)
		return (double)v->i;
	eval_error(ev, sp, "%s must be a number, got %s", what, val_type_name(v));
}

IrDim val_as_dim(Eval *ev, Value *v, const char *what, Span sp)
{
	if (v->k == V_INT)
		return ir_dim_const(v->i);
	if (v->k == V_DIM)
		return v->dim;
	eval_error(ev, sp, "%s must be a dimension (int or symbol), got %s", what,
	           val_type_name(v));
}

/* ---- names ---- */

static Value *member_value(Eval *ev, Module *m, const char *name, Span sp)
{
	Module *c = mod_child(m, name);
	if (c) {
		Value *v = val_new(ev, V_MODULE);
		v->mod = c;
		return v;
	}
	if (mod_param(m, name)) {
		if (!ev->trace)
			eval_error(ev, sp, "parameter '%s' of %s is only a value inside forward",
			           name, m->cls);
		return trace_param(ev, m, name, sp);
	}
	return env_get_local(m->attrs, name);
}

static Value *lookup(Eval *ev, Frame *f, const char *name, Span sp)
{
	Value *v = env_get_local(f->locals, name);
	if (v)
		return v;
	if (f->self) {
		/* members first: HF names a child `self` (BertAttention.self) */
		v = member_value(ev, f->self, name, sp);
		if (v)
			return v;
		if (strcmp(name, "self") == 0) {
			v = val_new(ev, V_MODULE);
			v->mod = f->self;
			return v;
		}
	}
	v = env_get(f->outer, name);
	if (v)
		return v;
	if (ev->trace && ev->trace->pattern)
		eval_error(ev, sp, "unknown op '%s' in a pattern (patterns use tensor ops such as "
		           "gelu, add, matmul, softmax, layer_norm)", name);
	eval_error(ev, sp, "name '%s' is not defined", name);
}

/* A forward parameter's type annotation; unbound names become symbols. */
static Value *eval_tensor_type(Eval *ev, Frame *f, const Ast *t)
{
	Value *v = val_new(ev, V_TENSOR_TYPE);
	if (!ir_dtype_parse(t->name, &v->ttype.dt))
		eval_error(ev, t->span, "unknown dtype '%s' (expected f32, f16, bf16, f64, i64, i32 or bool)",
		           t->name);
	if (t->list.len > IR_MAX_DIMS)
		eval_error(ev, t->span, "tensor rank %d exceeds the limit of %d", t->list.len,
		           IR_MAX_DIMS);
	v->ttype.shape.ndim = t->list.len;
	for (int i = 0; i < t->list.len; i++) {
		const Ast *d = t->list.items[i];
		IrDim dim;
		if (d->kind == AST_NAME && !env_get_local(f->locals, d->name) &&
		    !env_get(f->outer, d->name) &&
		    !(f->self && member_value(ev, f->self, d->name, d->span))) {
			int s = ir_sym(ev->ir, d->name, d->span);
			if (s < 0)
				diag_bail(ev->diag);
			dim = ir_dim_sym(s);
		} else {
			dim = val_as_dim(ev, eval_expr(ev, f, d), "a tensor dimension", d->span);
		}
		v->ttype.shape.d[i] = dim;
	}
	return v;
}

/* ---- calls ---- */

typedef struct Args {
	Value **pos;
	int npos;
	const char **kwn;
	Value **kw;
	int nkw;
} Args;

static Args eval_args(Eval *ev, Frame *f, const AstList *l)
{
	Args a = {0};
	a.pos = ARENA_ARRAY(ev->arena, Value *, l->len + 1);
	a.kw = ARENA_ARRAY(ev->arena, Value *, l->len + 1);
	a.kwn = ARENA_ARRAY(ev->arena, const char *, l->len + 1);
	for (int i = 0; i < l->len; i++) {
		const Ast *x = l->items[i];
		if (x->kind == AST_KWARG) {
			for (int j = 0; j < a.nkw; j++)
				if (strcmp(a.kwn[j], x->name) == 0)
					eval_error(ev, x->name_span, "keyword argument '%s' repeated",
					           x->name);
			a.kwn[a.nkw] = x->name;
			a.kw[a.nkw++] = eval_expr(ev, f, x->rhs);
		} else {
			a.pos[a.npos++] = eval_expr(ev, f, x);
		}
	}
	return a;
}

/* Bind arguments to a declaration's parameters in a new scope. */
static void bind_params(Eval *ev, Frame *f, const char *what, const AstList *params,
                        Value **args, int nargs, const char **kwn, Value **kw, int nkw,
                        Span sp)
{
	if (nargs > params->len)
		eval_error(ev, sp, "%s takes %d argument%s but %d were given", what,
		           params->len, params->len == 1 ? "" : "s", nargs);
	for (int i = 0; i < nkw; i++) {
		bool found = false;
		for (int j = 0; j < params->len; j++)
			found |= strcmp(params->items[j]->name, kwn[i]) == 0;
		if (!found)
			eval_error(ev, sp, "%s got an unexpected keyword argument '%s'", what, kwn[i]);
	}
	for (int j = 0; j < params->len; j++) {
		const Ast *p = params->items[j];
		Value *v = j < nargs ? args[j] : NULL;
		for (int i = 0; i < nkw; i++)
			if (strcmp(kwn[i], p->name) == 0) {
				if (v)
					eval_error(ev, sp, "%s got multiple values for argument '%s'",
					           what, p->name);
				v = kw[i];
			}
		if (!v && p->rhs)
			v = eval_expr(ev, f, p->rhs);
		if (!v)
			eval_error(ev, sp, "%s missing required argument '%s'", what, p->name);
		env_set(ev, f->locals, p->name, v);
	}
}

static Value *call_func(Eval *ev, Value *fn, Value **args, int nargs, const char **kwn,
                        Value **kw, int nkw, Span sp)
{
	const Ast *d = fn->decl;
	Frame f = {.locals = env_new(ev, NULL), .outer = fn->closure};
	Frame df = {.locals = f.locals, .outer = fn->closure};
	bind_params(ev, &df, arena_printf(ev->arena, "%s()", d->name), &d->params, args,
	            nargs, kwn, kw, nkw, sp);
	Module *saved_self = ev->self;
	exec_block(ev, &f, d->body);
	ev->self = saved_self;
	Value *r = ev->returning ? ev->ret : val_none(ev);
	ev->returning = false;
	ev->ret = NULL;
	return r;
}

static Value *make_config(Eval *ev, Value *cls, Args *a, Span sp)
{
	const Ast *d = cls->cfg.decl;
	if (a->npos)
		eval_error(ev, sp, "%s() takes keyword arguments only", d->name);
	Value *v = val_new(ev, V_CONFIG);
	v->cfg.decl = d;
	v->cfg.fields = env_new(ev, cls->closure);
	Frame f = {.locals = v->cfg.fields, .outer = cls->closure};
	for (int i = 0; i < a->nkw; i++) {
		bool found = false;
		for (int j = 0; j < d->body->list.len; j++) {
			const Ast *s = d->body->list.items[j];
			found |= s->kind == AST_ASSIGN && s->lhs->kind == AST_NAME &&
			         strcmp(s->lhs->name, a->kwn[i]) == 0;
		}
		if (!found)
			eval_error(ev, sp, "%s has no field '%s'", d->name, a->kwn[i]);
		env_set(ev, v->cfg.fields, a->kwn[i], a->kw[i]);
	}
	for (int j = 0; j < d->body->list.len; j++) {
		const Ast *s = d->body->list.items[j];
		if (s->kind != AST_ASSIGN || s->lhs->kind != AST_NAME)
			eval_error(ev, s->span, "a config body holds only `field = value` lines");
		if (!env_get_local(v->cfg.fields, s->lhs->name))
			env_set(ev, v->cfg.fields, s->lhs->name, eval_expr(ev, &f, s->rhs));
	}
	return v;
}

static Value *make_module(Eval *ev, Value *cls, Args *a, Span sp)
{
	if (cls->builtin_module) {
		Value *v = val_new(ev, V_MODULE);
		v->mod = mod_builtin(ev, cls->builtin_module, a->pos, a->npos, a->kwn, a->kw,
		                     a->nkw, sp);
		return v;
	}
	const Ast *d = cls->decl;
	Module *m = mod_new(ev, d->name, sp);
	m->decl = d;
	m->closure = cls->closure;
	Frame f = {.locals = m->attrs, .outer = cls->closure, .members_of = m};
	bind_params(ev, &f, arena_printf(ev->arena, "%s()", d->name), &d->params, a->pos,
	            a->npos, a->kwn, a->kw, a->nkw, sp);
	if (++ev->depth > 200)
		eval_error(ev, sp, "modules nested deeper than 200 levels");
	Trace *saved = ev->trace;
	ev->trace = NULL;
	exec_block(ev, &f, d->body);
	ev->trace = saved;
	ev->depth--;
	if (ev->returning)
		eval_error(ev, sp, "`return` in the body of module %s", d->name);
	Value *v = val_new(ev, V_MODULE);
	v->mod = m;
	return v;
}

Value *eval_call_value(Eval *ev, Value *fn, Value **args, int nargs, const char **kwn,
                       Value **kw, int nkw, Span sp)
{
	Args a = {args, nargs, kwn, kw, nkw};
	if (++ev->depth > 200)
		eval_error(ev, sp, "call depth limit (200) exceeded");
	Value *r;
	switch (fn->k) {
	case V_BUILTIN:
		ev->cur_builtin = fn->builtin.name;
		r = fn->builtin.fn(ev, fn->builtin.self, args, nargs, kwn, kw, nkw, sp);
		break;
	case V_FUNC:
		if (fn->decl->kind == AST_PATTERN && !ev->trace)
			eval_error(ev, sp, "pattern %s can only be passed to find(), not called",
			           fn->decl->name);
		r = call_func(ev, fn, args, nargs, kwn, kw, nkw, sp);
		break;
	case V_CONFIG_CLASS:
		r = make_config(ev, fn, &a, sp);
		break;
	case V_MODULE_CLASS:
		r = make_module(ev, fn, &a, sp);
		break;
	case V_MODULE:
		if (!ev->trace)
			eval_error(ev, sp,
			           "module %s can only be called inside a forward body (use trace())",
			           fn->mod->cls);
		r = trace_call_module(ev, fn->mod, args, nargs, kwn, kw, nkw, sp);
		break;
	default:
		eval_error(ev, sp, "a %s is not callable", val_type_name(fn));
	}
	ev->depth--;
	return r;
}

/* ---- expressions ---- */

static Value *eval_index(Eval *ev, Frame *f, const Ast *e)
{
	Value *obj = eval_expr(ev, f, e->lhs);
	if (obj->k == V_TENSOR) {
		Value **idx = ARENA_ARRAY(ev->arena, Value *, e->list.len + 1);
		for (int i = 0; i < e->list.len; i++) {
			const Ast *x = e->list.items[i];
			if (x->kind == AST_SLICE) {
				Value *s = val_new(ev, V_LIST);
				Value **parts = ARENA_ARRAY(ev->arena, Value *, 3);
				const Ast *p[3] = {x->lhs, x->rhs, x->third};
				for (int j = 0; j < 3; j++)
					parts[j] = p[j] ? eval_expr(ev, f, p[j]) : val_none(ev);
				s->list.items = parts;
				s->list.len = 3;
				s->builtin_module = 1; /* marks a slice triple */
				idx[i] = s;
			} else {
				idx[i] = eval_expr(ev, f, x);
			}
		}
		return trace_index(ev, obj, idx, e->list.len, e->span);
	}
	if (obj->k == V_DTYPE) { /* f32[vocab]: a tensor type as a value */
		Value *ty = val_new(ev, V_TENSOR_TYPE);
		ty->ttype.dt = obj->dtype;
		if (e->list.len > IR_MAX_DIMS)
			eval_error(ev, e->span, "tensor rank %d exceeds the limit of %d",
			           e->list.len, IR_MAX_DIMS);
		ty->ttype.shape.ndim = e->list.len;
		for (int i = 0; i < e->list.len; i++)
			ty->ttype.shape.d[i] = val_as_dim(ev, eval_expr(ev, f, e->list.items[i]),
			                                  "a tensor dimension", e->list.items[i]->span);
		return ty;
	}
	if (e->list.len != 1 || e->list.items[0]->kind == AST_SLICE)
		eval_error(ev, e->span, "a %s takes one index", val_type_name(obj));
	const Ast *ix = e->list.items[0];
	Value *key = eval_expr(ev, f, ix);
	switch (obj->k) {
	case V_SCHEDULE:
		return sched_index(ev, obj->mod, key, ix->span);
	case V_LIST: {
		int64_t i = val_as_int(ev, key, "a list index", ix->span);
		if (i < 0)
			i += obj->list.len;
		if (i < 0 || i >= obj->list.len)
			eval_error(ev, ix->span, "list index %lld out of range (length %d)",
			           (long long)val_as_int(ev, key, "", ix->span), obj->list.len);
		return obj->list.items[i];
	}
	case V_MODULE: {
		int64_t i = val_as_int(ev, key, "a module index", ix->span);
		int n = obj->mod->children.len;
		if (i < 0)
			i += n;
		if (i < 0 || i >= n)
			eval_error(ev, ix->span, "index %lld out of range for %s of %d modules",
			           (long long)val_as_int(ev, key, "", ix->span), obj->mod->cls, n);
		Value *v = val_new(ev, V_MODULE);
		v->mod = obj->mod->children.items[i];
		return v;
	}
	default:
		eval_error(ev, e->span, "a %s cannot be indexed", val_type_name(obj));
	}
}

static Value *eval_attr(Eval *ev, Frame *f, const Ast *e)
{
	Value *obj = eval_expr(ev, f, e->lhs);
	const char *name = e->name;
	Span sp = e->name_span.file ? e->name_span : e->span;
	switch (obj->k) {
	case V_CONFIG: {
		Value *v = env_get_local(obj->cfg.fields, name);
		if (!v)
			eval_error(ev, sp, "%s has no field '%s'", obj->cfg.decl->name, name);
		return v;
	}
	case V_MODULE: {
		Value *v = member_value(ev, obj->mod, name, sp);
		if (!v)
			eval_error(ev, sp, "%s has no member '%s'", obj->mod->cls, name);
		return v;
	}
	case V_SCHEDULE:
		return sched_method(ev, obj->mod, name, sp);
	default:
		return builtins_attr(ev, obj, name, sp);
	}
}

/* Lists nest without bound (`x = [x]` in a loop): comparing two deep ones
 * recursed as deep and overflowed the C stack (found by fuzz/), so the
 * depth is bounded and exceeding it is an error. */
enum { VAL_MAX_COMPARE_DEPTH = 1000 };

static bool values_equal(Eval *ev, const Value *a, const Value *b, int depth, Span sp)
{
	if (depth > VAL_MAX_COMPARE_DEPTH)
		eval_error(ev, sp, "== on lists nested more than %d deep", VAL_MAX_COMPARE_DEPTH);
	if ((a->k == V_INT || a->k == V_FLOAT || a->k == V_BOOL) &&
	    (b->k == V_INT || b->k == V_FLOAT || b->k == V_BOOL)) {
		double x = a->k == V_INT ? (double)a->i : a->k == V_BOOL ? a->b : a->f;
		double y = b->k == V_INT ? (double)b->i : b->k == V_BOOL ? b->b : b->f;
		return x == y;
	}
	if (a->k != b->k)
		return false;
	switch (a->k) {
	case V_NONE:
		return true;
	case V_STR:
		return strcmp(a->s, b->s) == 0;
	case V_DIM:
		return ir_dim_eq(a->dim, b->dim);
	case V_MODULE:
		return a->mod == b->mod;
	case V_LIST:
		if (a->list.len != b->list.len)
			return false;
		for (int i = 0; i < a->list.len; i++)
			if (!values_equal(ev, a->list.items[i], b->list.items[i], depth + 1, sp))
				return false;
		return true;
	default:
		return a == b;
	}
}

/* .slapo integers are int64 and their arithmetic is checked: an overflow
 * is an error, not undefined behaviour (found by fuzz/ under UBSan:
 * 92233720**854775807; also + - * // % and unary minus). */
static Value *int_result(Eval *ev, bool overflow, int64_t r, AstOp op, Span sp)
{
	if (overflow)
		eval_error(ev, sp, "integer overflow in %s (integers are 64-bit)", ast_op_name(op));
	return val_int(ev, r);
}

static Value *int_pow(Eval *ev, int64_t x, int64_t y, Span sp)
{
	int64_t r = 1;
	bool over = false;
	while (y > 0 && !over) { /* by squaring: any y, no wrap */
		if (y & 1)
			over = __builtin_mul_overflow(r, x, &r);
		y >>= 1;
		if (y && !over)
			over = __builtin_mul_overflow(x, x, &x);
	}
	return int_result(ev, over, r, OPR_POW, sp);
}

static Value *scalar_binop(Eval *ev, AstOp op, Value *a, Value *b, Span sp)
{
	if (op == OPR_EQ || op == OPR_NE) {
		bool eq = values_equal(ev, a, b, 0, sp);
		return val_bool(ev, op == OPR_EQ ? eq : !eq);
	}
	if (a->k == V_STR && b->k == V_STR && op == OPR_ADD)
		return val_str(ev, arena_printf(ev->arena, "%s%s", a->s, b->s));
	if (a->k == V_LIST && b->k == V_LIST && op == OPR_ADD) {
		int n = a->list.len + b->list.len;
		Value **items = ARENA_ARRAY(ev->arena, Value *, n + 1);
		memcpy(items, a->list.items, sizeof(Value *) * (size_t)a->list.len);
		memcpy(items + a->list.len, b->list.items, sizeof(Value *) * (size_t)b->list.len);
		return val_list(ev, items, n);
	}
	bool num_a = a->k == V_INT || a->k == V_FLOAT || a->k == V_BOOL;
	bool num_b = b->k == V_INT || b->k == V_FLOAT || b->k == V_BOOL;
	if (!num_a || !num_b)
		eval_error(ev, sp, "unsupported operand types for %s: %s and %s", ast_op_name(op),
		           val_type_name(a), val_type_name(b));
	bool ints = a->k != V_FLOAT && b->k != V_FLOAT;
	int64_t x = a->k == V_BOOL ? a->b : a->i, y = b->k == V_BOOL ? b->b : b->i;
	double fx = a->k == V_FLOAT ? a->f : (double)x, fy = b->k == V_FLOAT ? b->f : (double)y;
	switch (op) {
	case OPR_ADD:
	case OPR_SUB:
	case OPR_MUL: {
		if (!ints)
			return val_float(ev, op == OPR_ADD ? fx + fy : op == OPR_SUB ? fx - fy : fx * fy);
		int64_t r;
		bool over = op == OPR_ADD   ? __builtin_add_overflow(x, y, &r)
		            : op == OPR_SUB ? __builtin_sub_overflow(x, y, &r)
		                            : __builtin_mul_overflow(x, y, &r);
		return int_result(ev, over, r, op, sp);
	}
	case OPR_DIV:
		if (fy == 0)
			eval_error(ev, sp, "division by zero");
		return val_float(ev, fx / fy);
	case OPR_FLOORDIV:
	case OPR_MOD:
		if (fy == 0)
			eval_error(ev, sp, "division by zero");
		if (ints) {
			if (x == INT64_MIN && y == -1) /* x / y overflows; x % y is 0 */
				return op == OPR_MOD ? val_int(ev, 0) : int_result(ev, true, 0, op, sp);
			int64_t q = x / y, r = x % y;
			if (r && ((r < 0) != (y < 0))) {
				q--;
				r += y;
			}
			return val_int(ev, op == OPR_FLOORDIV ? q : r);
		}
		return val_float(ev, op == OPR_FLOORDIV ? floor(fx / fy) : fx - floor(fx / fy) * fy);
	case OPR_POW:
		if (ints && y >= 0)
			return int_pow(ev, x, y, sp);
		return val_float(ev, pow(fx, fy));
	case OPR_LT:
		return val_bool(ev, fx < fy);
	case OPR_LE:
		return val_bool(ev, fx <= fy);
	case OPR_GT:
		return val_bool(ev, fx > fy);
	case OPR_GE:
		return val_bool(ev, fx >= fy);
	default:
		eval_error(ev, sp, "unsupported operand types for %s: %s and %s", ast_op_name(op),
		           val_type_name(a), val_type_name(b));
	}
}

static Value *range_list(Eval *ev, Value *lo, Value *hi, Span sp)
{
	int64_t a = val_as_int(ev, lo, "a range bound", sp);
	int64_t b = val_as_int(ev, hi, "a range bound", sp);
	int64_t len;
	if (__builtin_sub_overflow(b, a, &len) || len > 1000000) /* b - a may overflow */
		eval_error(ev, sp, "range of %s items is too long",
		           arena_printf(ev->arena, "%.0f", (double)b - (double)a));
	int n = b > a ? (int)(b - a) : 0;
	ev->steps += n; /* building the list costs a step per item */
	count_step(ev, sp);
	Value **items = ARENA_ARRAY(ev->arena, Value *, n + 1);
	for (int i = 0; i < n; i++)
		items[i] = val_int(ev, a + i);
	return val_list(ev, items, n);
}

static Value *iterable(Eval *ev, Value *v, Span sp)
{
	if (v->k == V_LIST)
		return v;
	if (v->k == V_MODULE && (v->mod->builtin == BM_MODULE_LIST ||
	                         v->mod->builtin == BM_SEQUENTIAL)) {
		int n = v->mod->children.len;
		Value **items = ARENA_ARRAY(ev->arena, Value *, n + 1);
		for (int i = 0; i < n; i++) {
			items[i] = val_new(ev, V_MODULE);
			items[i]->mod = v->mod->children.items[i];
		}
		return val_list(ev, items, n);
	}
	eval_error(ev, sp, "cannot iterate over a %s", val_type_name(v));
}

static void count_step(Eval *ev, Span sp)
{
	if (++ev->steps > ev->max_steps)
		eval_error(ev, sp, "the program ran for more than %lld evaluation steps; is there a "
		           "runaway loop?", (long long)ev->max_steps);
}

static Value *eval_expr_at(Eval *ev, Frame *f, const Ast *e);

/* Nesting of expressions and statements counted across calls: the parser
 * bounds one expression's depth and ev->depth the calls, but their
 * product (200 calls of a function whose body nests ~1000 deep)
 * overflowed the C stack (found by fuzz/; a crash in the plain build, a
 * stack-overflow report under ASan). The limit leaves ASan's larger
 * frames room in 8 MB. */
enum { EVAL_MAX_EXPR_DEPTH = 5000 };

static Value *eval_expr(Eval *ev, Frame *f, const Ast *e)
{
	if (++ev->expr_depth > EVAL_MAX_EXPR_DEPTH)
		eval_error(ev, e->span, "statements and expressions nested too deeply (more than "
		           "%d levels, counting those of the calls in progress)",
		           EVAL_MAX_EXPR_DEPTH);
	Value *v = eval_expr_at(ev, f, e);
	ev->expr_depth--;
	return v;
}

static Value *eval_expr_at(Eval *ev, Frame *f, const Ast *e)
{
	count_step(ev, e->span);
	switch (e->kind) {
	case AST_INT:
		return val_int(ev, e->ival);
	case AST_FLOAT:
		return val_float(ev, e->fval);
	case AST_STRING:
		return val_str(ev, e->str);
	case AST_BOOL:
		return val_bool(ev, e->ival != 0);
	case AST_NONE:
		return val_none(ev);
	case AST_FSTRING: {
		/* Evaluate every piece before the (malloc'd) buffer exists: an
		 * error in a piece unwinds, and would leak it (found by fuzz/). */
		Value **vals = ARENA_ARRAY(ev->arena, Value *, e->list.len + 1);
		for (int i = 0; i < e->list.len; i++) {
			const Ast *p = e->list.items[i];
			if (p->kind != AST_STRING)
				vals[i] = eval_expr(ev, f, p);
		}
		StrBuf b = {0};
		for (int i = 0; i < e->list.len; i++) {
			const Ast *p = e->list.items[i];
			if (p->kind == AST_STRING)
				sb_puts(&b, p->str);
			else
				val_str_into(ev, &b, vals[i], false);
		}
		Value *v = val_str(ev, arena_strdup(ev->arena, b.data ? b.data : ""));
		sb_free(&b);
		return v;
	}
	case AST_NAME:
		return lookup(ev, f, e->name, e->span);
	case AST_LIST: {
		Value **items = ARENA_ARRAY(ev->arena, Value *, e->list.len + 1);
		for (int i = 0; i < e->list.len; i++)
			items[i] = eval_expr(ev, f, e->list.items[i]);
		return val_list(ev, items, e->list.len);
	}
	case AST_LISTCOMP: {
		Value *it = iterable(ev, eval_expr(ev, f, e->rhs), e->rhs->span);
		Value **items = ARENA_ARRAY(ev->arena, Value *, it->list.len + 1);
		for (int i = 0; i < it->list.len; i++) {
			env_set(ev, f->locals, e->name, it->list.items[i]);
			items[i] = eval_expr(ev, f, e->lhs);
		}
		return val_list(ev, items, it->list.len);
	}
	case AST_RANGE:
		return range_list(ev, eval_expr(ev, f, e->lhs), eval_expr(ev, f, e->rhs), e->span);
	case AST_UNARY: {
		Value *x = eval_expr(ev, f, e->lhs);
		if (e->op == OPR_NOT)
			return val_bool(ev, !val_truthy(x));
		if (x->k == V_INT)
			return e->op != OPR_NEG ? x
			       : int_result(ev, x->i == INT64_MIN, x->i == INT64_MIN ? 0 : -x->i, OPR_NEG,
			                    e->span);
		if (x->k == V_FLOAT)
			return val_float(ev, e->op == OPR_NEG ? -x->f : x->f);
		if (e->op == OPR_POS)
			return x;
		return builtins_binop(ev, OPR_MUL, x, val_int(ev, -1), e->span);
	}
	case AST_BINARY: {
		if (e->op == OPR_AND || e->op == OPR_OR) {
			Value *x = eval_expr(ev, f, e->lhs);
			if (val_truthy(x) == (e->op == OPR_OR))
				return x;
			return eval_expr(ev, f, e->rhs);
		}
		Value *x = eval_expr(ev, f, e->lhs);
		Value *y = eval_expr(ev, f, e->rhs);
		if (x->k == V_TENSOR || y->k == V_TENSOR || x->k == V_DIM || y->k == V_DIM)
			return builtins_binop(ev, e->op, x, y, e->span);
		return scalar_binop(ev, e->op, x, y, e->span);
	}
	case AST_CALL: {
		Value *fn = eval_expr(ev, f, e->lhs);
		Args a = eval_args(ev, f, &e->list);
		Span saved = ev->cur_span;
		ev->cur_span = e->span;
		Value *r = eval_call_value(ev, fn, a.pos, a.npos, a.kwn, a.kw, a.nkw, e->span);
		ev->cur_span = saved;
		return r;
	}
	case AST_ATTR:
		return eval_attr(ev, f, e);
	case AST_INDEX:
		return eval_index(ev, f, e);
	case AST_TENSOR_TYPE:
		return eval_tensor_type(ev, f, e);
	case AST_KWARG:
	case AST_SLICE:
	default:
		eval_error(ev, e->span, "%s is not allowed here", ast_kind_name(e->kind));
	}
}

/* ---- statements ---- */

static void assign(Eval *ev, Frame *f, const Ast *target, Value *v)
{
	if (target->kind == AST_NAME) {
		env_set(ev, f->locals, target->name, v);
		Module *m = f->members_of;
		if (m) {
			if (v->k == V_MODULE)
				mod_add_child(ev, m, target->name, v->mod);
			else if (v->k == V_TENSOR_TYPE)
				mod_add_param(ev, m, target->name, v->ttype.dt, v->ttype.shape);
		}
		return;
	}
	if (target->kind == AST_ATTR) {
		Value *obj = eval_expr(ev, f, target->lhs);
		if (obj->k == V_MODULE && v->k == V_MODULE && !ev->trace) {
			mod_add_child(ev, obj->mod, target->name, v->mod);
			return;
		}
		if (obj->k == V_CONFIG) {
			if (!env_get_local(obj->cfg.fields, target->name))
				eval_error(ev, target->name_span, "%s has no field '%s'",
				           obj->cfg.decl->name, target->name);
			env_set(ev, obj->cfg.fields, target->name, v);
			return;
		}
		if (obj->k == V_MODULE && !ev->trace) {
			env_set(ev, obj->mod->attrs, target->name, v);
			return;
		}
		eval_error(ev, target->span, "cannot assign to an attribute of a %s",
		           val_type_name(obj));
	}
	eval_error(ev, target->span, "cannot assign to this expression");
}

static void declare(Eval *ev, Frame *f, const Ast *d)
{
	Value *v;
	switch (d->kind) {
	case AST_CONFIG:
		v = val_new(ev, V_CONFIG_CLASS);
		v->cfg.decl = d;
		break;
	case AST_MODULE: {
		BuiltinKind bk;
		if (mod_builtin_lookup(d->name, &bk))
			eval_error(ev, d->name_span, "module %s is built in and cannot be redefined",
			           d->name);
		v = val_new(ev, V_MODULE_CLASS);
		v->decl = d;
		int nfwd = 0;
		for (int i = 0; i < d->body->list.len; i++)
			if (d->body->list.items[i]->kind == AST_FORWARD && ++nfwd > 1)
				eval_error(ev, d->body->list.items[i]->span,
				           "module %s has more than one forward", d->name);
		break;
	}
	default: /* pattern, fn */
		v = val_new(ev, V_FUNC);
		v->decl = d;
		break;
	}
	v->closure = f->outer ? f->outer : f->locals;
	if (f->locals == ev->globals)
		v->closure = ev->globals;
	env_set(ev, f->locals, d->name, v);
}

static void do_import(Eval *ev, const Ast *s);

static void exec_stmt_at(Eval *ev, Frame *f, const Ast *s);

/* Statements nest too (blocks in blocks, in calls): counted with the
 * expressions, see eval_expr. */
static void exec_stmt(Eval *ev, Frame *f, const Ast *s)
{
	if (++ev->expr_depth > EVAL_MAX_EXPR_DEPTH)
		eval_error(ev, s->span, "statements and expressions nested too deeply (more than "
		           "%d levels, counting those of the calls in progress)",
		           EVAL_MAX_EXPR_DEPTH);
	exec_stmt_at(ev, f, s);
	ev->expr_depth--;
}

static void exec_stmt_at(Eval *ev, Frame *f, const Ast *s)
{
	count_step(ev, s->span);
	switch (s->kind) {
	case AST_EXPR_STMT:
		eval_expr(ev, f, s->lhs);
		break;
	case AST_ASSIGN:
		assign(ev, f, s->lhs, eval_expr(ev, f, s->rhs));
		break;
	case AST_FOR: {
		Value *it = iterable(ev, eval_expr(ev, f, s->rhs), s->rhs->span);
		for (int i = 0; i < it->list.len && !ev->returning; i++) {
			env_set(ev, f->locals, s->name, it->list.items[i]);
			exec_block(ev, f, s->body);
		}
		break;
	}
	case AST_IF:
		if (val_truthy(eval_expr(ev, f, s->cond)))
			exec_block(ev, f, s->body);
		else if (s->els && s->els->kind == AST_IF)
			exec_stmt(ev, f, s->els);
		else if (s->els)
			exec_block(ev, f, s->els);
		break;
	case AST_RETURN:
		ev->ret = s->lhs ? eval_expr(ev, f, s->lhs) : val_none(ev);
		ev->returning = true;
		break;
	case AST_BLOCK:
		exec_block(ev, f, s);
		break;
	case AST_FORWARD:
		if (!f->members_of)
			eval_error(ev, s->span, "forward is only allowed in a module body");
		break; /* found again when the module is traced */
	case AST_CONFIG:
	case AST_MODULE:
	case AST_PATTERN:
	case AST_FN:
		declare(ev, f, s);
		break;
	case AST_IMPORT:
		if (f->locals != ev->globals)
			eval_error(ev, s->span, "import is only allowed at the top level");
		do_import(ev, s);
		break;
	default:
		eval_error(ev, s->span, "%s is not a statement", ast_kind_name(s->kind));
	}
}

static void exec_block(Eval *ev, Frame *f, const Ast *blk)
{
	const AstList *l = blk->kind == AST_BLOCK || blk->kind == AST_PROGRAM ? &blk->list : NULL;
	if (!l) {
		exec_stmt(ev, f, blk);
		return;
	}
	for (int i = 0; i < l->len && !ev->returning; i++)
		exec_stmt(ev, f, l->items[i]);
}

/* ---- imports ---- */

static const char *dir_of(Eval *ev, const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? arena_strndup(ev->arena, path, (size_t)(slash - path)) : ".";
}

static void do_import(Eval *ev, const Ast *s)
{
	const char *rel = s->str;
	const char *found = NULL;
	if (rel[0] == '/') {
		found = rel;
	} else {
		const char *here = dir_of(ev, s->span.file->path);
		const char *cand = arena_printf(ev->arena, "%s/%s", here, rel);
		if (access(cand, R_OK) == 0)
			found = cand;
		for (int i = 0; !found && i < ev->import_dirs.len; i++) {
			cand = arena_printf(ev->arena, "%s/%s", (char *)ev->import_dirs.items[i], rel);
			if (access(cand, R_OK) == 0)
				found = cand;
		}
	}
	if (!found || access(found, R_OK) != 0)
		eval_error(ev, s->span, "cannot find '%s' (looked beside this file%s)", rel,
		           ev->import_dirs.len ? " and in the library directory" : "");
	char *canon = realpath(found, NULL);
	const char *key = canon ? arena_strdup(ev->arena, canon) : found;
	free(canon);
	for (int i = 0; i < ev->imported.len; i++)
		if (strcmp(ev->imported.items[i], key) == 0)
			return;
	ptrvec_push(ev->arena, &ev->imported, (void *)key);
	if (ev->imported.len > 64)
		eval_error(ev, s->span, "too many imports (limit 64)");
	SrcFile *src = diag_load(ev->diag, found, s->span);
	if (!src)
		diag_bail(ev->diag);
	Ast *prog = parse_file(ev->arena, ev->diag, src);
	if (!prog)
		diag_bail(ev->diag);
	eval_program(ev, prog);
}

void eval_program(Eval *ev, const Ast *prog)
{
	Frame f = {.locals = ev->globals};
	exec_block(ev, &f, prog);
	if (ev->returning)
		eval_error(ev, prog->span, "`return` outside a function");
}

Module *eval_model_root(Eval *ev, const char *what)
{
	if (ev->builds.len)
		return ev->builds.items[ev->builds.len - 1];
	if (ev->schedules.len)
		return ev->schedules.items[ev->schedules.len - 1];
	diag_plain(ev->diag, DIAG_ERROR, "%s: the script builds no model (call build(sch) or "
	           "create_schedule)", what);
	return NULL;
}

/* Run a module class's forward declaration (used by trace.c). */
const Ast *eval_forward_decl(const Module *m)
{
	if (!m->decl)
		return NULL;
	for (int i = 0; i < m->decl->body->list.len; i++)
		if (m->decl->body->list.items[i]->kind == AST_FORWARD)
			return m->decl->body->list.items[i];
	return NULL;
}

/* Call m's forward with argument values, in a frame where its members
 * are visible. Returns the returned value. */
Value *eval_forward(Eval *ev, Module *m, Value **args, int nargs, const char **kwn,
                    Value **kw, int nkw, Span sp)
{
	const Ast *fwd = eval_forward_decl(m);
	if (!fwd)
		eval_error(ev, sp, "module %s has no forward", m->cls);
	Frame f = {.locals = env_new(ev, NULL), .self = m, .outer = m->closure};
	bind_params(ev, &f, arena_printf(ev->arena, "%s.forward()", m->cls), &fwd->params,
	            args, nargs, kwn, kw, nkw, sp);
	Module *saved = ev->self;
	ev->self = m;
	exec_block(ev, &f, fwd->body);
	ev->self = saved;
	Value *r = ev->returning ? ev->ret : val_none(ev);
	ev->returning = false;
	ev->ret = NULL;
	return r;
}

/* Evaluate the type annotations of m's forward parameters. Entries are
 * NULL for parameters without one. */
Value **eval_forward_types(Eval *ev, Module *m, int *n)
{
	const Ast *fwd = eval_forward_decl(m);
	*n = fwd ? fwd->params.len : 0;
	Value **out = ARENA_ARRAY(ev->arena, Value *, *n + 1);
	Frame f = {.locals = env_new(ev, NULL), .self = m, .outer = m->closure};
	for (int i = 0; i < *n; i++) {
		const Ast *p = fwd->params.items[i];
		out[i] = p->type && p->type->kind == AST_TENSOR_TYPE
		             ? eval_tensor_type(ev, &f, p->type)
		             : NULL;
	}
	return out;
}
