/* module.c - the module tree: built-in nn modules with PyTorch's
 * parameter names, shapes and defaults, paths, and PyTorch's repr. */
#include "ir/ir.h"

#include <string.h>

static const char *builtin_names[BM_COUNT] = {
	[BM_LINEAR] = "Linear",
	[BM_LINEAR_SEP_BIAS] = "LinearWithSeparateBias",
	[BM_LAYER_NORM] = "LayerNorm",
	[BM_EMBEDDING] = "Embedding",
	[BM_DROPOUT] = "Dropout",
	[BM_GELU] = "GELUActivation",
	[BM_NEW_GELU] = "NewGELUActivation",
	[BM_RELU] = "ReLU",
	[BM_TANH] = "Tanh",
	[BM_SOFTMAX] = "Softmax",
	[BM_CONV1D] = "Conv1D",
	[BM_MODULE_LIST] = "ModuleList",
	[BM_SEQUENTIAL] = "Sequential",
	[BM_IDENTITY] = "Identity",
};

const char *mod_builtin_name(BuiltinKind k)
{
	return builtin_names[k];
}

bool mod_builtin_lookup(const char *name, BuiltinKind *k)
{
	for (int i = 1; i < BM_COUNT; i++)
		if (strcmp(builtin_names[i], name) == 0) {
			*k = (BuiltinKind)i;
			return true;
		}
	return false;
}

Module *mod_new(Eval *ev, const char *cls, Span sp)
{
	Module *m = ARENA_NEW(ev->arena, Module);
	m->cls = cls;
	m->attrs = env_new(ev, NULL);
	m->made_at = sp;
	return m;
}

void mod_add_child(Eval *ev, Module *m, const char *name, Module *child)
{
	for (int i = 0; i < m->children.len; i++) {
		Module *c = m->children.items[i];
		if (strcmp(c->name, name) == 0) {
			child->parent = m;
			child->name = c->name;
			m->children.items[i] = child;
			return;
		}
	}
	child->parent = m;
	child->name = name;
	ptrvec_push(ev->arena, &m->children, child);
}

Module *mod_child(const Module *m, const char *name)
{
	for (int i = 0; i < m->children.len; i++) {
		Module *c = m->children.items[i];
		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

void mod_add_param(Eval *ev, Module *m, const char *name, IrDType dt, IrShape shape)
{
	Param *p = mod_param(m, name);
	if (!p) {
		p = ARENA_NEW(ev->arena, Param);
		p->name = name;
		ptrvec_push(ev->arena, &m->params, p);
	}
	p->dtype = dt;
	p->shape = shape;
}

Param *mod_param(const Module *m, const char *name)
{
	for (int i = 0; i < m->params.len; i++) {
		Param *p = m->params.items[i];
		if (strcmp(p->name, name) == 0)
			return p;
	}
	return NULL;
}

const char *mod_relpath(Eval *ev, const Module *m, const Module *anc)
{
	if (m == anc || !m->parent)
		return "";
	const char *up = mod_relpath(ev, m->parent, anc);
	return up[0] ? arena_printf(ev->arena, "%s.%s", up, m->name) : m->name;
}

const char *mod_path(Eval *ev, const Module *m)
{
	return mod_relpath(ev, m, NULL);
}

void mod_each_param(Eval *ev, const Module *m, const char *prefix, ParamVisit fn, void *user)
{
	for (int i = 0; i < m->params.len; i++) {
		const Param *p = m->params.items[i];
		const char *path = prefix[0] ? arena_printf(ev->arena, "%s.%s", prefix, p->name)
		                             : p->name;
		fn(user, path, p, m);
	}
	for (int i = 0; i < m->children.len; i++) {
		const Module *c = m->children.items[i];
		const char *path = prefix[0] ? arena_printf(ev->arena, "%s.%s", prefix, c->name)
		                             : c->name;
		mod_each_param(ev, c, path, fn, user);
	}
}

/* ---- built-in modules ---- */

static IrShape shape1(int64_t a)
{
	IrShape s = {.ndim = 1};
	s.d[0] = ir_dim_const(a);
	return s;
}

static IrShape shape2(int64_t a, int64_t b)
{
	IrShape s = {.ndim = 2};
	s.d[0] = ir_dim_const(a);
	s.d[1] = ir_dim_const(b);
	return s;
}

static int64_t posint(Eval *ev, Value *v, const char *what, Span sp)
{
	int64_t n = val_as_int(ev, v, what, sp);
	if (n <= 0)
		eval_error(ev, sp, "%s must be positive, got %lld", what, (long long)n);
	return n;
}

#define ARG(pos, kw, req) \
	arg_get(ev, name, pos, kw, args, nargs, kwnames, kwargs, nkw, sp, req)

Module *mod_builtin(Eval *ev, BuiltinKind k, Value **args, int nargs,
                    const char **kwnames, Value **kwargs, int nkw, Span sp)
{
	const char *name = builtin_names[k];
	Module *m = mod_new(ev, name, sp);
	m->builtin = k;
	Value *v;
	switch (k) {
	case BM_LINEAR:
	case BM_LINEAR_SEP_BIAS:
		m->in_features = posint(ev, ARG(0, "in_features", true), "in_features", sp);
		m->out_features = posint(ev, ARG(1, "out_features", true), "out_features", sp);
		v = ARG(2, "bias", false);
		m->bias = v ? val_truthy(v) : true;
		mod_add_param(ev, m, "weight", IR_F32, shape2(m->out_features, m->in_features));
		if (m->bias)
			mod_add_param(ev, m, "bias", IR_F32, shape1(m->out_features));
		break;
	case BM_CONV1D: /* GPT-2's: weight [nx, nf], y = x @ W + b */
		m->out_features = posint(ev, ARG(0, "nf", true), "nf", sp);
		m->in_features = posint(ev, ARG(1, "nx", true), "nx", sp);
		m->bias = true;
		mod_add_param(ev, m, "weight", IR_F32, shape2(m->in_features, m->out_features));
		mod_add_param(ev, m, "bias", IR_F32, shape1(m->out_features));
		break;
	case BM_LAYER_NORM:
		v = ARG(0, "normalized_shape", true);
		if (v->k == V_LIST && v->list.len == 1)
			v = v->list.items[0];
		m->in_features = posint(ev, v, "normalized_shape", sp);
		v = ARG(1, "eps", false);
		m->eps = v ? val_as_float(ev, v, "eps", sp) : 1e-5;
		v = ARG(2, "elementwise_affine", false);
		m->bias = v ? val_truthy(v) : true;
		if (m->bias) {
			mod_add_param(ev, m, "weight", IR_F32, shape1(m->in_features));
			mod_add_param(ev, m, "bias", IR_F32, shape1(m->in_features));
		}
		break;
	case BM_EMBEDDING:
		m->num_embeddings = posint(ev, ARG(0, "num_embeddings", true), "num_embeddings", sp);
		m->out_features = posint(ev, ARG(1, "embedding_dim", true), "embedding_dim", sp);
		v = ARG(2, "padding_idx", false);
		if (v && v->k != V_NONE) {
			m->has_padding_idx = true;
			m->padding_idx = val_as_int(ev, v, "padding_idx", sp);
			if (m->padding_idx < 0)
				m->padding_idx += m->num_embeddings;
			if (m->padding_idx < 0 || m->padding_idx >= m->num_embeddings)
				eval_error(ev, sp, "padding_idx must be within num_embeddings");
		}
		mod_add_param(ev, m, "weight", IR_F32, shape2(m->num_embeddings, m->out_features));
		break;
	case BM_DROPOUT:
		v = ARG(0, "p", false);
		m->p = v ? val_as_float(ev, v, "p", sp) : 0.5;
		if (m->p < 0 || m->p > 1)
			eval_error(ev, sp, "dropout probability has to be between 0 and 1, but got %g", m->p);
		ARG(1, "inplace", false);
		break;
	case BM_SOFTMAX:
		v = ARG(0, "dim", false);
		m->softmax_dim = v && v->k != V_NONE ? val_as_int(ev, v, "dim", sp) : -1;
		break;
	case BM_MODULE_LIST:
	case BM_SEQUENTIAL: {
		Value **items = args;
		int n = nargs;
		if (k == BM_MODULE_LIST) {
			v = ARG(0, "modules", false);
			if (v && v->k != V_LIST)
				eval_error(ev, sp, "ModuleList expects a list of modules, got %s",
				           val_type_name(v));
			items = v ? v->list.items : NULL;
			n = v ? v->list.len : 0;
		}
		for (int i = 0; i < n; i++) {
			if (items[i]->k != V_MODULE)
				eval_error(ev, sp, "%s item %d is a %s, not a module", name, i,
				           val_type_name(items[i]));
			mod_add_child(ev, m, arena_printf(ev->arena, "%d", i), items[i]->mod);
		}
		break;
	}
	default:
		break;
	}
	/* unknown keyword arguments are errors */
	for (int i = 0; i < nkw; i++) {
		static const char *known[] = {"in_features", "out_features", "bias", "nf", "nx",
			"normalized_shape", "eps", "elementwise_affine", "num_embeddings",
			"embedding_dim", "padding_idx", "p", "inplace", "dim", "modules", NULL};
		bool ok = false;
		for (int j = 0; known[j]; j++)
			ok |= strcmp(known[j], kwnames[i]) == 0;
		if (!ok)
			eval_error(ev, sp, "%s() got an unexpected keyword argument '%s'", name,
			           kwnames[i]);
	}
	return m;
}

/* ---- repr ---- */

static void extra_repr(Eval *ev, StrBuf *b, const Module *m)
{
	switch (m->builtin) {
	case BM_LINEAR:
	case BM_LINEAR_SEP_BIAS:
		sb_printf(b, "in_features=%lld, out_features=%lld, bias=%s",
		          (long long)m->in_features, (long long)m->out_features,
		          m->bias ? "True" : "False");
		break;
	case BM_CONV1D:
		sb_printf(b, "nf=%lld, nx=%lld", (long long)m->out_features,
		          (long long)m->in_features);
		break;
	case BM_LAYER_NORM:
		sb_printf(b, "(%lld,), eps=", (long long)m->in_features);
		sb_pyfloat(b, m->eps);
		sb_printf(b, ", elementwise_affine=%s", m->bias ? "True" : "False");
		break;
	case BM_EMBEDDING:
		sb_printf(b, "%lld, %lld", (long long)m->num_embeddings,
		          (long long)m->out_features);
		if (m->has_padding_idx)
			sb_printf(b, ", padding_idx=%lld", (long long)m->padding_idx);
		break;
	case BM_DROPOUT:
		sb_puts(b, "p=");
		sb_pyfloat(b, m->p);
		sb_puts(b, ", inplace=False");
		break;
	case BM_SOFTMAX:
		sb_printf(b, "dim=%lld", (long long)m->softmax_dim);
		break;
	case BM_NONE: {
		/* a user module's `extra_repr = "..."` member, as PyTorch's
		 * extra_repr() (OPTLearnedPositionalEmbedding(2050, 768)) */
		Value *v = env_get_local(m->attrs, "extra_repr");
		if (v && v->k == V_STR)
			sb_puts(b, v->s);
		break;
	}
	default:
		break;
	}
}

/* Append s to b with every line after the first indented by n spaces. */
static void put_indented(StrBuf *b, const char *s, int n)
{
	for (; *s; s++) {
		sb_putc(b, *s);
		if (*s == '\n')
			for (int i = 0; i < n; i++)
				sb_putc(b, ' ');
	}
}

void mod_repr(Eval *ev, StrBuf *b, const Module *m, int indent)
{
	(void)indent;
	StrBuf extra = {0};
	extra_repr(ev, &extra, m);
	sb_printf(b, "%s(", m->cls);
	if (m->children.len == 0) {
		if (extra.len)
			sb_puts(b, extra.data);
	} else {
		if (extra.len) {
			sb_puts(b, "\n  ");
			sb_puts(b, extra.data);
		}
		for (int i = 0; i < m->children.len; i++) {
			const Module *c = m->children.items[i];
			StrBuf cs = {0};
			if (c->graph)
				sb_printf(&cs, "GraphModule<%s>()", c->cls);
			else
				mod_repr(ev, &cs, c, 0);
			sb_printf(b, "\n  (%s): ", c->name);
			put_indented(b, cs.data, 2);
			sb_free(&cs);
		}
		sb_putc(b, '\n');
	}
	sb_putc(b, ')');
	sb_free(&extra);
}
