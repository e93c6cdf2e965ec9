/* value.c - the evaluator's values and scopes, and how print() shows them. */
#include "ir/ir.h"

#include <string.h>

Value *val_new(Eval *ev, ValueKind k)
{
	Value *v = ARENA_NEW(ev->arena, Value);
	v->k = k;
	return v;
}

Value *val_int(Eval *ev, int64_t i)
{
	Value *v = val_new(ev, V_INT);
	v->i = i;
	return v;
}

Value *val_float(Eval *ev, double f)
{
	Value *v = val_new(ev, V_FLOAT);
	v->f = f;
	return v;
}

Value *val_bool(Eval *ev, bool b)
{
	Value *v = val_new(ev, V_BOOL);
	v->b = b;
	return v;
}

Value *val_str(Eval *ev, const char *s)
{
	Value *v = val_new(ev, V_STR);
	v->s = s;
	return v;
}

Value *val_none(Eval *ev)
{
	return val_new(ev, V_NONE);
}

Value *val_list(Eval *ev, Value **items, int n)
{
	Value *v = val_new(ev, V_LIST);
	v->list.items = ARENA_ARRAY(ev->arena, Value *, n ? n : 1);
	if (n)
		memcpy(v->list.items, items, sizeof(Value *) * (size_t)n);
	v->list.len = n;
	return v;
}

Value *val_dim(Eval *ev, IrDim d)
{
	if (ir_dim_is_const(d))
		return val_int(ev, d.coef);
	Value *v = val_new(ev, V_DIM);
	v->dim = d;
	return v;
}

const char *val_kind_name(ValueKind k)
{
	static const char *names[] = {
		[V_NONE] = "none", [V_INT] = "int", [V_FLOAT] = "float",
		[V_BOOL] = "bool", [V_STR] = "string", [V_LIST] = "list",
		[V_DIM] = "dim", [V_DTYPE] = "dtype",
		[V_CONFIG_CLASS] = "config class", [V_CONFIG] = "config",
		[V_MODULE_CLASS] = "module class", [V_MODULE] = "module",
		[V_SCHEDULE] = "schedule", [V_TENSOR] = "tensor",
		[V_TENSOR_TYPE] = "tensor type", [V_FUNC] = "function",
		[V_BUILTIN] = "builtin function", [V_NODEREF] = "node",
		[V_GRAPH] = "graph",
	};
	return names[k];
}

const char *val_type_name(const Value *v)
{
	return val_kind_name(v->k);
}

bool val_truthy(const Value *v)
{
	switch (v->k) {
	case V_NONE:
		return false;
	case V_BOOL:
		return v->b;
	case V_INT:
		return v->i != 0;
	case V_FLOAT:
		return v->f != 0;
	case V_STR:
		return v->s[0] != 0;
	case V_LIST:
		return v->list.len != 0;
	default:
		return true;
	}
}

/* Python's repr of a string: single quotes unless the text has one. */
static void str_repr(StrBuf *b, const char *s)
{
	char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
	sb_putc(b, q);
	for (; *s; s++) {
		if (*s == q || *s == '\\')
			sb_putc(b, '\\');
		if (*s == '\n')
			sb_puts(b, "\\n");
		else
			sb_putc(b, *s);
	}
	sb_putc(b, q);
}

/* Lists and configs can nest without bound (`for i in 0 .. n { x = [x] }`);
 * printing them recursed as deep and overflowed the C stack (found by
 * fuzz/). Deeper than this, a value prints as "..." (as Python's reprlib
 * does for recursive lists). */
enum { VAL_MAX_PRINT_DEPTH = 200 };

static void str_into(Eval *ev, StrBuf *b, const Value *v, bool repr, int depth);

void val_str_into(Eval *ev, StrBuf *b, const Value *v, bool repr)
{
	str_into(ev, b, v, repr, 0);
}

static void str_into(Eval *ev, StrBuf *b, const Value *v, bool repr, int depth)
{
	if (depth > VAL_MAX_PRINT_DEPTH && (v->k == V_LIST || v->k == V_CONFIG)) {
		sb_puts(b, "...");
		return;
	}
	switch (v->k) {
	case V_NONE:
		sb_puts(b, "None");
		break;
	case V_INT:
		sb_printf(b, "%lld", (long long)v->i);
		break;
	case V_FLOAT:
		sb_pyfloat(b, v->f);
		break;
	case V_BOOL:
		sb_puts(b, v->b ? "True" : "False");
		break;
	case V_STR:
		if (repr)
			str_repr(b, v->s);
		else
			sb_puts(b, v->s);
		break;
	case V_LIST:
		sb_putc(b, '[');
		for (int i = 0; i < v->list.len; i++) {
			if (i)
				sb_puts(b, ", ");
			str_into(ev, b, v->list.items[i], true, depth + 1);
		}
		sb_putc(b, ']');
		break;
	case V_DIM:
		ir_dim_print(b, ev->ir, v->dim);
		break;
	case V_DTYPE:
		sb_puts(b, ir_dtype_name(v->dtype));
		break;
	case V_TENSOR_TYPE:
		sb_puts(b, ir_dtype_name(v->ttype.dt));
		ir_shape_print(b, ev->ir, &v->ttype.shape);
		break;
	case V_CONFIG_CLASS:
		sb_printf(b, "<config %s>", v->cfg.decl->name);
		break;
	case V_CONFIG: {
		sb_printf(b, "%s(", v->cfg.decl->name);
		/* fields in declaration order */
		const AstList *fl = &v->cfg.decl->body->list;
		bool first = true;
		for (int i = 0; i < fl->len; i++) {
			const Ast *s = fl->items[i];
			if (s->kind != AST_ASSIGN || s->lhs->kind != AST_NAME)
				continue;
			Value *f = env_get_local(v->cfg.fields, s->lhs->name);
			if (!f)
				continue;
			sb_printf(b, "%s%s=", first ? "" : ", ", s->lhs->name);
			str_into(ev, b, f, true, depth + 1);
			first = false;
		}
		sb_putc(b, ')');
		break;
	}
	case V_MODULE_CLASS:
		sb_printf(b, "<module class %s>",
		          v->builtin_module ? mod_builtin_name(v->builtin_module)
		                            : v->decl->name);
		break;
	case V_MODULE:
	case V_GRAPH: {
		const IrGraph *g = v->k == V_GRAPH ? v->graph : v->mod->graph;
		if (!g) {
			mod_repr(ev, b, v->mod, 0);
			break;
		}
		size_t start = b->len;
		ir_graph_print(b, g);
		while (b->len > start && b->data[b->len - 1] == '\n')
			b->data[--b->len] = 0; /* print() adds the newline */
		break;
	}
	case V_SCHEDULE: {
		const char *p = mod_path(ev, v->mod);
		sb_printf(b, "<schedule '%s' of %s>", p, v->mod->cls);
		break;
	}
	case V_TENSOR:
		sb_printf(b, "%%%s: %s", v->node->name, ir_dtype_name(v->node->dtype));
		ir_shape_print(b, ev->ir, &v->node->shape);
		break;
	case V_FUNC:
		sb_printf(b, "<%s %s>", v->decl->kind == AST_PATTERN ? "pattern" : "fn",
		          v->decl->name);
		break;
	case V_BUILTIN:
		sb_printf(b, "<builtin %s>", v->builtin.name);
		break;
	case V_NODEREF:
		sb_putc(b, '(');
		str_repr(b, v->ref.path);
		sb_printf(b, ", %s)", v->ref.node->name);
		break;
	}
}

/* ---- scopes ---- */

struct Binding {
	const char *name;
	Value *v;
	struct Binding *next;
};

Env *env_new(Eval *ev, Env *parent)
{
	Env *e = ARENA_NEW(ev->arena, Env);
	e->parent = parent;
	return e;
}

Value *env_get_local(Env *e, const char *name)
{
	for (struct Binding *b = e->head; b; b = b->next)
		if (strcmp(b->name, name) == 0)
			return b->v;
	return NULL;
}

Value *env_get(Env *e, const char *name)
{
	for (; e; e = e->parent) {
		Value *v = env_get_local(e, name);
		if (v)
			return v;
	}
	return NULL;
}

void env_set(Eval *ev, Env *e, const char *name, Value *v)
{
	for (struct Binding *b = e->head; b; b = b->next)
		if (strcmp(b->name, name) == 0) {
			b->v = v;
			return;
		}
	struct Binding *b = ARENA_NEW(ev->arena, struct Binding);
	b->name = name;
	b->v = v;
	/* append, so iteration follows definition order */
	struct Binding **pp = &e->head;
	while (*pp)
		pp = &(*pp)->next;
	*pp = b;
}
