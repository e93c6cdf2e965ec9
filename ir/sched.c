/* sched.c - the schedule: handles on the module tree and the primitives
 * that rewrite it (Slapo's names and meaning).
 *
 * A schedule handle is a module of the tree. Primitives that need a graph
 * (find, fuse, subgraph replace) work on the graph `trace` made; every
 * primitive ends by verifying the graphs it touched and calling the
 * --verify hook, so a broken rewrite is caught at the primitive's line.
 */
#include "ir/ir.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>


#define PRIM(fn) \
	static Value *fn(Eval *ev, Value *self, Value **args, int nargs, \
	                 const char **kwn, Value **kw, int nkw, Span sp)
#define ARG(name, pos, kwname, req) \
	arg_get(ev, name, pos, kwname, args, nargs, kwn, kw, nkw, sp, req)

static Value *sched_value(Eval *ev, Module *m)
{
	Value *v = val_new(ev, V_SCHEDULE);
	v->mod = m;
	return v;
}

Value *sched_create(Eval *ev, Module *root, Span sp)
{
	ptrvec_push(ev->arena, &ev->schedules, root);
	if (ev->after_primitive)
		ev->after_primitive(ev, "create_schedule", sp, ev->after_user);
	return sched_value(ev, root);
}

static const char *path_or_root(Eval *ev, const Module *m)
{
	const char *p = mod_path(ev, m);
	return p[0] ? p : "(root)";
}

/* The first ancestor whose traced graph already holds m's ops. */
static Module *traced_ancestor(Module *m)
{
	for (Module *a = m->parent; a; a = a->parent)
		if (a->graph)
			return a;
	return NULL;
}

/* --explain: one line per primitive, naming its source line. */
static void explain(Eval *ev, Span sp, const char *fmt, ...) SUP_PRINTF(3, 4);
static void explain(Eval *ev, Span sp, const char *fmt, ...)
{
	if (!ev->explain)
		return;
	va_list ap;
	va_start(ap, fmt);
	sb_printf(ev->explain, "  line %d: ", sp.first_line);
	sb_vprintf(ev->explain, fmt, ap);
	sb_putc(ev->explain, '\n');
	va_end(ap);
}

/* "[add, gelu]" */
static const char *node_names(Eval *ev, IrNode **nodes, int n)
{
	StrBuf b = {0};
	sb_putc(&b, '[');
	for (int i = 0; i < n; i++)
		sb_printf(&b, "%s%s", i ? ", " : "", nodes[i]->name);
	sb_putc(&b, ']');
	const char *r = arena_strdup(ev->arena, b.data);
	sb_free(&b);
	return r;
}

static int graph_size(const IrGraph *g)
{
	int n = 0;
	for (const IrNode *x = g->first; x; x = x->next)
		n++;
	return n;
}

static void after(Eval *ev, Module *m, const char *prim, Span sp)
{
	if (m->graph && !ir_verify(m->graph, prim))
		diag_bail(ev->diag);
	if (ev->after_primitive)
		ev->after_primitive(ev, prim, sp, ev->after_user);
}

/* ---- path indexing ---- */

static void list_children(Eval *ev, StrBuf *b, const Module *m)
{
	if (m->children.len == 0) {
		sb_puts(b, "it has no children");
		return;
	}
	sb_puts(b, "its children are: ");
	for (int i = 0; i < m->children.len; i++) {
		const Module *c = m->children.items[i];
		sb_printf(b, "%s%s", i ? ", " : "", c->name);
		if (i == 11 && m->children.len > 13) {
			sb_printf(b, ", ... (%d in all)", m->children.len);
			break;
		}
	}
	(void)ev;
}

Value *sched_index(Eval *ev, Module *m, Value *key, Span sp)
{
	if (key->k != V_STR)
		eval_error(ev, sp, "a schedule is indexed by a path string such as \"encoder.layer.0\", "
		           "not a %s", val_type_name(key));
	const char *p = key->s;
	if (!p[0])
		return sched_value(ev, m);
	Module *cur = m;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		const char *seg = arena_strndup(ev->arena, p, n);
		if (cur->graph && cur->flattened)
			eval_error(ev, sp, "'%s' was flattened into the graph of '%s' by trace(flatten=true); "
			           "its children cannot be scheduled any more", seg, path_or_root(ev, cur));
		Module *c = n ? mod_child(cur, seg) : NULL;
		if (!c) {
			StrBuf b = {0};
			list_children(ev, &b, cur);
			diag_error(ev->diag, sp, "no child '%s' in '%s' (%s); %s", seg,
			           path_or_root(ev, cur), cur->cls, b.data);
			sb_free(&b);
			diag_bail(ev->diag);
		}
		cur = c;
		p = dot ? dot + 1 : p + n;
		if (dot && !*p)
			eval_error(ev, sp, "path ends with '.'");
	}
	return sched_value(ev, cur);
}

/* ---- primitives ---- */

PRIM(p_decompose)
{
	Module *m = self->mod;
	arg_check_kwargs(ev, "decompose", NULL, kwn, nkw, sp);
	if (nargs)
		eval_error(ev, sp, "decompose() takes no arguments");
	if (m->builtin == BM_LINEAR_SEP_BIAS)
		eval_error(ev, sp, "decompose: '%s' is already decomposed", path_or_root(ev, m));
	if (m->builtin != BM_LINEAR)
		eval_error(ev, sp, "decompose: '%s' is a %s, not a Linear", path_or_root(ev, m),
		           m->cls);
	Module *a = traced_ancestor(m);
	if (a)
		eval_error(ev, sp, "decompose: '%s' is already part of the traced graph of '%s'; "
		           "decompose before trace", path_or_root(ev, m), path_or_root(ev, a));
	m->builtin = BM_LINEAR_SEP_BIAS;
	m->cls = mod_builtin_name(BM_LINEAR_SEP_BIAS);
	explain(ev, sp, "decompose '%s': Linear -> LinearWithSeparateBias (linear, then + bias)",
	        path_or_root(ev, m));
	after(ev, m, "decompose", sp);
	return val_none(ev);
}

PRIM(p_trace)
{
	static const char *kws[] = {"flatten", "leaves", "recursive", NULL};
	Module *m = self->mod;
	arg_check_kwargs(ev, "trace", kws, kwn, nkw, sp);
	if (nargs)
		eval_error(ev, sp, "trace() takes keyword arguments only (flatten=, leaves=)");
	Value *fl = ARG("trace", -1, "flatten", false);
	Value *lv = ARG("trace", -1, "leaves", false);
	PtrVec leaves = {0};
	if (lv) {
		if (lv->k != V_LIST)
			eval_error(ev, sp, "trace: leaves= expects a list of class names or paths");
		for (int i = 0; i < lv->list.len; i++) {
			Value *x = lv->list.items[i];
			if (x->k == V_STR)
				ptrvec_push(ev->arena, &leaves, (void *)x->s);
			else if (x->k == V_MODULE_CLASS)
				ptrvec_push(ev->arena, &leaves, (void *)(x->builtin_module
				                                             ? mod_builtin_name(x->builtin_module)
				                                             : x->decl->name));
			else
				eval_error(ev, sp, "trace: leaves= item %d is a %s, not a class name or path",
				           i, val_type_name(x));
		}
	}
	if (m->graph)
		return val_bool(ev, true); /* already traced: nothing to do */
	Module *a = traced_ancestor(m);
	if (a)
		eval_error(ev, sp, "trace: '%s' is already part of the traced graph of '%s'",
		           path_or_root(ev, m), path_or_root(ev, a));
	bool flatten = fl && val_truthy(fl);
	diag_push(ev->diag, sp, "while tracing '%s' (%s) for trace()", path_or_root(ev, m), m->cls);
	m->graph = trace_module(ev, m, flatten, &leaves, sp);
	diag_pop(ev->diag);
	m->flattened = flatten;
	int calls = 0;
	for (IrNode *n = m->graph->first; n; n = n->next)
		calls += n->op == OP_CALL;
	explain(ev, sp, "trace '%s' (%s%s): a graph of %d nodes, %d of them calls of child modules",
	        path_or_root(ev, m), m->cls, flatten ? ", flattened" : "", graph_size(m->graph), calls);
	after(ev, m, "trace", sp);
	return val_bool(ev, true);
}

static IrGraph *need_graph(Eval *ev, Module *m, const char *prim, Span sp)
{
	if (!m->graph)
		eval_error(ev, sp, "%s: '%s' is not traced; call .trace() on it first", prim,
		           path_or_root(ev, m));
	return m->graph;
}

/* The module whose traced graph copied m's ops, so that m's own graph no
 * longer reaches the model; NULL if it still does. The model is built as
 * trace_model does: from the root down, a module with a graph replays
 * it and reaches a module below only through a call node of that graph
 * (an ancestor traced after m inlined m's ops unless m, or a module
 * between them, stayed a call); one without a graph calls its children. */
static Module *graph_copied_by(Eval *ev, Module *m)
{
	Module *chain[64]; /* chain[0] = m, up to the root */
	int depth = 0;
	for (Module *a = m; a; a = a->parent) {
		if (depth == (int)(sizeof chain / sizeof chain[0]))
			return NULL; /* deeper than any model: not checked */
		chain[depth++] = a;
	}
	int i = depth - 1; /* chain[i]: where the model's trace is now */
	while (i > 0) {
		Module *cur = chain[i];
		if (!cur->graph) {
			i--;
			continue;
		}
		int next = -1;
		for (IrNode *n = cur->graph->first; n && next < 0; n = n->next) {
			if (n->op != OP_CALL || !n->sattr)
				continue;
			for (int j = i - 1; j >= 0 && next < 0; j--)
				if (strcmp(n->sattr, mod_relpath(ev, chain[j], cur)) == 0)
					next = j;
		}
		if (next < 0)
			return cur;
		i = next;
	}
	return NULL;
}

/* m's graph, for a primitive that rewrites it: it must be traced and its
 * graph must still be the one the model runs. */
static IrGraph *need_own_graph(Eval *ev, Module *m, const char *prim, Span sp)
{
	IrGraph *g = need_graph(ev, m, prim, sp);
	Module *a = graph_copied_by(ev, m);
	if (a) {
		const char *pa = path_or_root(ev, a);
		eval_error(ev, sp, "%s: the ops of '%s' were copied into the traced graph of "
		           "'%s' (traced after it), so its own graph no longer reaches the "
		           "model; %s before tracing '%s'", prim, path_or_root(ev, m), pa,
		           prim, pa);
	}
	return g;
}

static Value *noderef(Eval *ev, IrGraph *g, IrNode *n)
{
	Value *r = val_new(ev, V_NODEREF);
	r->ref.path = "";
	r->ref.node = n;
	r->ref.graph = g;
	return r;
}

PRIM(p_find)
{
	Module *m = self->mod;
	arg_check_kwargs(ev, "find", NULL, kwn, nkw, sp);
	Value *what = ARG("find", 0, "pattern", true);
	if (what->k == V_STR) {
		regex_t re;
		int rc = regcomp(&re, what->s, REG_EXTENDED | REG_NOSUB);
		if (rc) {
			char msg[128];
			regerror(rc, &re, msg, sizeof msg);
			eval_error(ev, sp, "find: bad regular expression \"%s\": %s", what->s, msg);
		}
		PtrVec found = {0};
		if (m->graph) {
			for (IrNode *n = m->graph->first; n; n = n->next)
				if (n->op == OP_CALL && regexec(&re, n->sattr, 0, NULL, 0) == 0)
					ptrvec_push(ev->arena, &found, noderef(ev, m->graph, n));
		} else {
			/* untraced: sub-schedules whose relative path matches */
			PtrVec stack = {0};
			ptrvec_push(ev->arena, &stack, m);
			for (int i = 0; i < stack.len; i++) {
				Module *c = stack.items[i];
				for (int j = 0; j < c->children.len; j++)
					ptrvec_push(ev->arena, &stack, c->children.items[j]);
				const char *rel = mod_relpath(ev, c, m);
				if (c != m && regexec(&re, rel, 0, NULL, 0) == 0)
					ptrvec_push(ev->arena, &found, sched_value(ev, c));
			}
		}
		regfree(&re);
		return val_list(ev, (Value **)found.items, found.len);
	}
	if (what->k != V_FUNC || what->decl->kind != AST_PATTERN)
		eval_error(ev, sp, "find: expects a pattern or a regular expression string, got %s",
		           val_type_name(what));
	IrGraph *g = need_graph(ev, m, "find", sp);
	diag_push(ev->diag, sp, "in pattern %s, used by find()", what->decl->name);
	IrGraph *pat = trace_pattern(ev, what->decl, what->closure, sp);
	diag_pop(ev->diag);
	IrMatch *ms = NULL;
	int n = ir_match(ev->ir, g, pat, &ms);
	if (n == 0)
		diag_warning(ev->diag, what->decl->name_span.file ? what->decl->name_span
		                                                   : what->decl->span,
		             "pattern %s matches nothing in the graph of '%s'", what->decl->name,
		             path_or_root(ev, m));
	Value **subs = ARENA_ARRAY(ev->arena, Value *, n + 1);
	for (int i = 0; i < n; i++) {
		Value **refs = ARENA_ARRAY(ev->arena, Value *, ms[i].nnodes + 1);
		for (int j = 0; j < ms[i].nnodes; j++)
			refs[j] = noderef(ev, g, ms[i].nodes[j]);
		subs[i] = val_list(ev, refs, ms[i].nnodes);
		explain(ev, sp, "find %s in '%s': match %d = %s", what->decl->name, path_or_root(ev, m),
		        i, node_names(ev, ms[i].nodes, ms[i].nnodes));
	}
	if (n == 0)
		explain(ev, sp, "find %s in '%s': no match", what->decl->name, path_or_root(ev, m));
	after(ev, m, "find", sp);
	return val_list(ev, subs, n);
}

static bool in_graph(const IrGraph *g, const IrNode *n)
{
	for (IrNode *x = g->first; x; x = x->next)
		if (x == n)
			return true;
	return false;
}

/* The node lists of a find() result: [[ref, ...], ...] or [ref, ...]. */
static int subgraph_lists(Eval *ev, Value *v, const char *prim, Module *m, IrNode ****out,
                          int **lens, Span sp)
{
	if (v->k != V_LIST)
		eval_error(ev, sp, "%s: expects the subgraphs find() returned, got %s", prim,
		           val_type_name(v));
	bool flat = v->list.len > 0 && v->list.items[0]->k == V_NODEREF;
	int n = flat ? 1 : v->list.len;
	*out = ARENA_ARRAY(ev->arena, IrNode **, n + 1);
	*lens = ARENA_ARRAY(ev->arena, int, n + 1);
	for (int i = 0; i < n; i++) {
		Value *l = flat ? v : v->list.items[i];
		if (l->k != V_LIST)
			eval_error(ev, sp, "%s: subgraph %d is a %s, not a list of nodes", prim, i,
			           val_type_name(l));
		(*out)[i] = ARENA_ARRAY(ev->arena, IrNode *, l->list.len + 1);
		(*lens)[i] = l->list.len;
		for (int j = 0; j < l->list.len; j++) {
			Value *r = l->list.items[j];
			if (r->k != V_NODEREF)
				eval_error(ev, sp, "%s: subgraph %d item %d is a %s, not a node", prim, i, j,
				           val_type_name(r));
			if (r->ref.graph != m->graph)
				eval_error(ev, sp, "%s: node %s belongs to another graph than the one of '%s'",
				           prim, r->ref.node->name, path_or_root(ev, m));
			if (!in_graph(m->graph, r->ref.node))
				eval_error(ev, sp, "%s: node %s is no longer in the graph of '%s' (it was "
				           "fused or replaced)", prim, r->ref.node->name, path_or_root(ev, m));
			(*out)[i][j] = r->ref.node;
		}
	}
	return n;
}

/* Next free NAME_i among the fused kernels of g. */
PRIM(p_fuse)
{
	static const char *kws[] = {"compiler", "name", "subgraph", NULL};
	Module *m = self->mod;
	arg_check_kwargs(ev, "fuse", kws, kwn, nkw, sp);
	IrGraph *g = need_own_graph(ev, m, "fuse", sp);
	Value *subs = ARG("fuse", 0, "subgraph", true);
	Value *comp = ARG("fuse", 1, "compiler", false);
	Value *nm = ARG("fuse", 2, "name", false);
	if (comp && comp->k != V_NONE && (comp->k != V_STR || strcmp(comp->s, "llvm") != 0)) {
		StrBuf b = {0};
		val_str_into(ev, &b, comp, true);
		diag_error(ev->diag, sp, "fuse: unknown compiler %s; slapoc fuses with \"llvm\"", b.data);
		sb_free(&b);
		diag_bail(ev->diag);
	}
	const char *name = "FusedModule";
	if (nm) {
		if (nm->k != V_STR || !nm->s[0])
			eval_error(ev, sp, "fuse: name= expects a non-empty string");
		name = nm->s;
	}
	IrNode ***lists;
	int *lens;
	int n = subgraph_lists(ev, subs, "fuse", m, &lists, &lens, sp);
	if (n == 0)
		eval_error(ev, sp, "fuse: no subgraph to fuse (find() matched nothing)");
	for (int i = 0; i < n; i++) {
		if (lens[i] < 2)
			eval_error(ev, sp, "fuse: subgraph %d has %d node%s; vertical fusion needs at least two",
			           i, lens[i], lens[i] == 1 ? "" : "s");
		const char *kname = arena_printf(ev->arena, "%s_%d", name,
		                                 ir_next_kernel_index(g, name));
		const char *names = node_names(ev, lists[i], lens[i]);
		if (!ir_fuse(g, lists[i], lens[i], OP_FUSED, kname, sp))
			diag_bail(ev->diag);
		explain(ev, sp, "fuse in '%s': %s = one kernel of %s", path_or_root(ev, m), kname, names);
	}
	after(ev, m, "fuse", sp);
	return val_none(ev);
}

/* ---- replace ---- */


static const char *shape_str(Eval *ev, IrDType dt, const IrShape *s)
{
	StrBuf b = {0};
	sb_puts(&b, ir_dtype_name(dt));
	ir_shape_print(&b, ev->ir, s);
	const char *r = arena_strdup(ev->arena, b.data);
	sb_free(&b);
	return r;
}

/* Parameters of m's forward that are named in both modules must sit at
 * the same position. */
static void check_names_bind(Eval *ev, Module *old, Module *nw, Span sp)
{
	const Ast *fo = eval_forward_decl(old), *fn = eval_forward_decl(nw);
	if (!fo || !fn)
		return;
	for (int i = 0; i < fo->params.len; i++)
		for (int j = 0; j < fn->params.len; j++)
			if (i != j && strcmp(fo->params.items[i]->name, fn->params.items[j]->name) == 0)
				eval_error(ev, sp, "replace: argument '%s' is at position %d in %s but at "
				           "position %d in %s", fo->params.items[i]->name, i, old->cls, j,
				           nw->cls);
}

static Module *new_module_arg(Eval *ev, Value *v, Span sp)
{
	if (v->k != V_MODULE)
		eval_error(ev, sp, "replace: expects a module instance, got %s", val_type_name(v));
	if (v->mod->parent)
		eval_error(ev, sp, "replace: the new %s is already '%s' of another module", v->mod->cls,
		           mod_path(ev, v->mod));
	return v->mod;
}

/* Trace `nw` on the given input types and check it returns `want`. */
static IrGraph *check_binds(Eval *ev, Module *nw, IrDType *dt, IrShape *shapes, int n,
                            IrDType want_dt, const IrShape *want, const char *what, Span sp)
{
	const Ast *fwd = eval_forward_decl(nw);
	int need = 0;
	if (nw->builtin) {
		if (n != 1)
			eval_error(ev, sp, "replace: %s has %d inputs but %s takes one",
			           what, n, nw->cls);
	} else if (fwd) {
		for (int i = 0; i < fwd->params.len; i++)
			need += fwd->params.items[i]->rhs == NULL;
		if (n > fwd->params.len || n < need)
			eval_error(ev, sp, "replace: %s has %d input%s but %s.forward takes %d", what, n,
			           n == 1 ? "" : "s", nw->cls, fwd->params.len);
	} else {
		eval_error(ev, sp, "replace: %s has no forward", nw->cls);
	}
	diag_push(ev->diag, sp, "while tracing the new %s on the inputs of %s for replace()", nw->cls, what);
	IrGraph *g = trace_with_types(ev, nw, dt, shapes, n, sp);
	diag_pop(ev->diag);
	IrNode *o = g->outputs.items[0];
	if (o->dtype != want_dt || !ir_shape_eq(&o->shape, want))
		eval_error(ev, sp, "replace: %s returns %s but %s gives %s", nw->cls,
		           shape_str(ev, o->dtype, &o->shape), what, shape_str(ev, want_dt, want));
	return g;
}

static void replace_module(Eval *ev, Module *m, Module *nw, Span sp)
{
	if (!m->parent)
		eval_error(ev, sp, "replace: cannot replace the top-level model");
	Module *a = traced_ancestor(m);
	if (a)
		eval_error(ev, sp, "replace: '%s' is part of the traced graph of '%s'",
		           path_or_root(ev, m), path_or_root(ev, a));
	if (m->builtin == BM_MODULE_LIST)
		eval_error(ev, sp, "replace: '%s' is a ModuleList, which the model "
		           "iterates rather than calls; replace its items one by one",
		           mod_path(ev, m));
	/* a built-in module is checked against the arguments the model
	 * calls it with; one the model never calls binds to nothing */
	IrDType dt[IR_MAX_DIMS];
	IrShape shapes[IR_MAX_DIMS];
	int n = 0;
	if (trace_module_types(ev, m, dt, shapes, &n, sp) && (!m->builtin || n == 1)) {
		check_names_bind(ev, m, nw, sp);
		IrGraph *og = trace_with_types(ev, m, dt, shapes, n, sp);
		IrNode *o = og->outputs.items[0];
		const char *what =
		        arena_printf(ev->arena, "'%s' (%s)", mod_path(ev, m), m->cls);
		check_binds(ev, nw, dt, shapes, n, o->dtype, &o->shape, what, sp);
	}
	/* swap in place so every handle on this path sees the new module */
	Module *parent = m->parent;
	const char *name = m->name;
	*m = *nw;
	m->parent = parent;
	m->name = name;
	for (int i = 0; i < m->children.len; i++)
		((Module *)m->children.items[i])->parent = m;
}

PRIM(p_replace)
{
	static const char *kws[] = {"name", NULL};
	Module *m = self->mod;
	arg_check_kwargs(ev, "replace", kws, kwn, nkw, sp);
	Module *nw = new_module_arg(ev, ARG("replace", 0, "new_mod", true), sp);
	Value *subs = ARG("replace", 1, "subgraphs", false);
	if (!subs) {
		explain(ev, sp, "replace '%s': %s -> %s (inputs and output shape checked)",
		        path_or_root(ev, m), m->cls, nw->cls);
		replace_module(ev, m, nw, sp);
		after(ev, m, "replace", sp);
		return val_none(ev);
	}
	IrGraph *g = need_own_graph(ev, m, "replace", sp);
	IrNode ***lists;
	int *lens;
	int n = subgraph_lists(ev, subs, "replace", m, &lists, &lens, sp);
	if (n != 1)
		eval_error(ev, sp, "replace: one subgraph can be replaced by one module; got %d "
		           "(horizontal replacement is not supported yet)", n);
	Value *nm = ARG("replace", -1, "name", false);
	const char *base = nm && nm->k == V_STR ? nm->s : nw->cls;
	const char *child =
	        arena_printf(ev->arena, "%s_%d", base, ir_next_kernel_index(g, base));
	/* the region's external inputs, in order of first use */
	IrNode *out = ir_fuse(g, lists[0], lens[0], OP_CALL, child, sp);
	if (!out)
		diag_bail(ev->diag);
	/* parameters of the region stay behind: the new module owns its own */
	int k = 0;
	for (int i = 0; i < out->nin; i++)
		if (out->in[i]->op != OP_PARAM)
			out->in[k++] = out->in[i];
	out->nin = k;
	IrDType dt[IR_MAX_DIMS];
	IrShape shapes[IR_MAX_DIMS];
	if (out->nin > IR_MAX_DIMS)
		eval_error(ev, sp, "replace: the subgraph has %d inputs (limit %d)", out->nin,
		           IR_MAX_DIMS);
	for (int i = 0; i < out->nin; i++) {
		dt[i] = out->in[i]->dtype;
		shapes[i] = out->in[i]->shape;
	}
	IrGraph *body = check_binds(ev, nw, dt, shapes, out->nin, out->dtype, &out->shape,
	                            "the subgraph", sp);
	mod_add_child(ev, m, child, nw);
	out->sub = body;
	out->sattr = child;
	explain(ev, sp, "replace in '%s': %s -> a call of child %s (%s)", path_or_root(ev, m),
	        node_names(ev, lists[0], lens[0]), child, nw->cls);
	ir_dce(g);
	after(ev, m, "replace", sp);
	return val_none(ev);
}

PRIM(p_checkpoint)
{
	arg_check_kwargs(ev, "checkpoint", NULL, kwn, nkw, sp);
	if (nargs)
		eval_error(ev, sp, "checkpoint() of a subgraph is not supported yet; call it on a module");
	if (!self->mod->parent)
		eval_error(ev, sp, "checkpoint: cannot checkpoint the top-level model");
	self->mod->checkpointed = true;
	explain(ev, sp, "checkpoint '%s': recorded (honoured once training is compiled)",
	        path_or_root(ev, self->mod));
	after(ev, self->mod, "checkpoint", sp);
	return val_none(ev);
}

PRIM(p_annotate)
{
	Module *m = self->mod;
	arg_check_kwargs(ev, "annotate", NULL, kwn, nkw, sp);
	Value *p = ARG("annotate", 0, "param_name", true);
	Value *k = ARG("annotate", 1, "key", true);
	Value *v = ARG("annotate", 2, "value", true);
	if (p->k != V_STR || k->k != V_STR)
		eval_error(ev, sp, "annotate(param_name, key, value): names must be strings");
	if (!mod_param(m, p->s))
		eval_error(ev, sp, "annotate: '%s' (%s) has no parameter '%s'", path_or_root(ev, m),
		           m->cls, p->s);
	StrBuf b = {0};
	val_str_into(ev, &b, v, true);
	ptrvec_push(ev->arena, &m->annotations,
	            arena_printf(ev->arena, "%s:%s=%s", p->s, k->s, b.data));
	sb_free(&b);
	after(ev, m, "annotate", sp);
	return val_none(ev);
}

typedef struct Prim {
	const char *name;
	BuiltinFn fn;
} Prim;

static const Prim prims[] = {
	{"decompose", p_decompose}, {"trace", p_trace}, {"find", p_find}, {"fuse", p_fuse},
	{"replace", p_replace}, {"checkpoint", p_checkpoint}, {"annotate", p_annotate},
	{NULL, NULL},
};

static const char *unsupported[] = {"shard", "sync", "cut_pipeline_stage", "fork_rng",
                                    "trace_until", "replace_all", NULL};

static Value *unsupported_prim(Eval *ev, Value *self, Value **args, int nargs,
                               const char **kwn, Value **kw, int nkw, Span sp);

Value *sched_method(Eval *ev, Module *m, const char *name, Span sp)
{
	if (strcmp(name, "mod") == 0) {
		Value *v = val_new(ev, V_MODULE);
		v->mod = m;
		return v;
	}
	if (strcmp(name, "path") == 0)
		return val_str(ev, mod_path(ev, m));
	if (strcmp(name, "name") == 0)
		return val_str(ev, m->name ? m->name : "");
	if (strcmp(name, "parent") == 0)
		return m->parent ? sched_value(ev, m->parent) : val_none(ev);
	Value *self = sched_value(ev, m);
	for (const Prim *p = prims; p->name; p++)
		if (strcmp(p->name, name) == 0) {
			Value *v = val_new(ev, V_BUILTIN);
			v->builtin.fn = p->fn;
			v->builtin.name = p->name;
			v->builtin.self = self;
			return v;
		}
	for (int i = 0; unsupported[i]; i++)
		if (strcmp(unsupported[i], name) == 0) {
			Value *v = val_new(ev, V_BUILTIN);
			v->builtin.fn = unsupported_prim;
			v->builtin.name = unsupported[i];
			v->builtin.self = self;
			return v;
		}
	eval_error(ev, sp, "schedule has no primitive or attribute '%s'", name);
}

static Value *unsupported_prim(Eval *ev, Value *self, Value **args, int nargs,
                               const char **kwn, Value **kw, int nkw, Span sp)
{
	(void)args; (void)nargs; (void)kwn; (void)kw; (void)nkw;
	const char *name = ev->cur_builtin;
	eval_error(ev, sp, "%s: not supported yet (slapoc compiles a model for one device; "
	           "'%s' is unchanged)", name, path_or_root(ev, self->mod));
}
