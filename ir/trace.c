/* trace.c - turns forward bodies into dataflow graphs.
 *
 * Tracing runs a module's forward on symbolic tensors: every tensor op
 * appends a node to the graph of the innermost Trace. Calls of child
 * modules are inlined (flatten) or kept as call nodes (leaves); built-in
 * modules become their ops directly; a module that was traced before
 * (and maybe rewritten by primitives) is replayed node by node from its
 * graph, so the final model sees every schedule decision.
 */
#include "ir/ir.h"

#include <string.h>


static Value *tensor_value(Eval *ev, IrNode *n)
{
	Value *v = val_new(ev, V_TENSOR);
	v->node = n;
	return v;
}

static Trace *cur_trace(Eval *ev, Span sp)
{
	if (!ev->trace)
		eval_error(ev, sp, "tensor operations are only allowed inside a forward body");
	return ev->trace;
}

IrNode *trace_tensor(Eval *ev, Value *v, Span sp, const char *what)
{
	Trace *t = cur_trace(ev, sp);
	if (v->k == V_TENSOR)
		return v->node;
	if (v->k == V_INT || v->k == V_FLOAT || v->k == V_BOOL) {
		IrAttrs at = {0};
		at.fattr = v->k == V_FLOAT ? v->f : v->k == V_INT ? (double)v->i : v->b;
		at.dtype = v->k == V_FLOAT ? IR_F32 : v->k == V_INT ? IR_I64 : IR_BOOL;
		at.shape.ndim = 0;
		if (t->pattern)
			return trace_raw_node(ev, OP_CONST, NULL, 0, &at, sp, "_tensor_constant");
		IrNode *n = ir_build(t->g, OP_CONST, NULL, 0, &at, sp, "_tensor_constant");
		if (!n)
			diag_bail(ev->diag);
		return n;
	}
	eval_error(ev, sp, "%s must be a tensor, got %s", what, val_type_name(v));
}

Value *trace_fuse(Eval *ev, Value **v, int n, const char *name, Span sp)
{
	Trace *t = cur_trace(ev, sp);
	if (t->pattern)
		return v[n - 1];
	IrNode *nodes[8];
	if (n > 8)
		eval_error(ev, sp, "internal error: fusing %d nodes at once", n);
	for (int i = 0; i < n; i++)
		nodes[i] = v[i]->node;
	const char *kname =
	        arena_printf(ev->arena, "%s_%d", name, ir_next_kernel_index(t->g, name));
	IrNode *f = ir_fuse(t->g, nodes, n, OP_FUSED, kname, sp);
	if (!f)
		diag_bail(ev->diag);
	if (!f->module)
		f->module = t->module;
	return tensor_value(ev, f);
}

/* A node appended without shape inference (pattern graphs). */
IrNode *trace_raw_node(Eval *ev, IrOp op, IrNode **in, int nin, const IrAttrs *at, Span sp,
                       const char *hint)
{
	IrGraph *g = cur_trace(ev, sp)->g;
	IrNode *n = ARENA_NEW(ev->arena, IrNode);
	n->op = op;
	n->id = g->next_id++;
	n->span = sp;
	n->in = ARENA_ARRAY(ev->arena, IrNode *, nin + 1);
	for (int i = 0; i < nin; i++)
		n->in[i] = in[i];
	n->nin = nin;
	if (at) {
		memcpy(n->iattr, at->iattr, sizeof n->iattr);
		n->niattr = at->niattr;
		memcpy(n->dattr, at->dattr, sizeof n->dattr);
		n->ndattr = at->ndattr;
		n->fattr = at->fattr;
		n->flags = at->flags;
		n->sattr = at->sattr;
		n->dtype = at->dtype;
	}
	n->name = ir_unique_name(g, hint ? hint : ir_ops[op].name);
	ir_insert_before(g, NULL, n);
	return n;
}

Value *trace_op(Eval *ev, IrOp op, Value **in, int nin, const IrAttrs *at, Span sp,
                const char *hint)
{
	Trace *t = cur_trace(ev, sp);
	IrNode *nodes[16];
	if (nin > 16)
		eval_error(ev, sp, "%s takes at most 16 tensors", ir_ops[op].name);
	for (int i = 0; i < nin; i++)
		nodes[i] = trace_tensor(ev, in[i], sp, ir_ops[op].name);
	IrAttrs zero = {0};
	if (t->pattern)
		return tensor_value(ev, trace_raw_node(ev, op, nodes, nin, at, sp, hint));
	IrNode *n = ir_build(t->g, op, nodes, nin, at ? at : &zero, sp, hint);
	if (!n)
		diag_bail(ev->diag);
	if (!n->module)
		n->module = t->module;
	return tensor_value(ev, n);
}

/* The OP_PARAM nodes a trace made, by path: an open-addressing table
 * (a scan of the graph for every parameter use made tracing quadratic). */
typedef struct TraceParams {
	IrNode **slots;
	int cap, len;
} TraceParams;

static uint64_t hash_path(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static IrNode **param_slot(IrNode **slots, int cap, const char *path)
{
	uint64_t i = hash_path(path) & (uint64_t)(cap - 1);
	while (slots[i] && strcmp(slots[i]->sattr, path) != 0)
		i = (i + 1) & (uint64_t)(cap - 1);
	return &slots[i];
}

static void param_add(Eval *ev, Trace *t, IrNode *n)
{
	TraceParams *p = t->params;
	if (!p) {
		p = t->params = ARENA_NEW(ev->arena, TraceParams);
		p->cap = 64;
		p->slots = ARENA_ARRAY(ev->arena, IrNode *, p->cap);
	}
	if (2 * (p->len + 1) > p->cap) {
		int cap = 2 * p->cap;
		IrNode **slots = ARENA_ARRAY(ev->arena, IrNode *, cap);
		for (int i = 0; i < p->cap; i++)
			if (p->slots[i])
				*param_slot(slots, cap, p->slots[i]->sattr) = p->slots[i];
		p->slots = slots;
		p->cap = cap;
	}
	*param_slot(p->slots, p->cap, n->sattr) = n;
	p->len++;
}

/* The node for parameter `name` of m, made once per graph. */
Value *trace_param(Eval *ev, Module *m, const char *name, Span sp)
{
	Trace *t = cur_trace(ev, sp);
	const char *rel = mod_relpath(ev, m, t->root);
	const char *path = rel[0] ? arena_printf(ev->arena, "%s.%s", rel, name) : name;
	if (t->params) {
		IrNode *n = *param_slot(t->params->slots, t->params->cap, path);
		if (n)
			return tensor_value(ev, n);
	}
	Param *p = mod_param(m, name);
	IrAttrs at = {0};
	at.sattr = path;
	at.dtype = p->dtype;
	at.shape = p->shape;
	char *hint = arena_strdup(ev->arena, path);
	for (char *c = hint; *c; c++)
		if (*c == '.')
			*c = '_';
	IrNode *n = ir_build(t->g, OP_PARAM, NULL, 0, &at, sp, hint);
	if (!n)
		diag_bail(ev->diag);
	param_add(ev, t, n);
	return tensor_value(ev, n);
}

/* ---- built-in modules ---- */

static Value *one_arg(Eval *ev, Module *m, Value **args, int nargs, int nkw, Span sp)
{
	if (nargs != 1 || nkw)
		eval_error(ev, sp, "%s takes one tensor argument, got %d", m->cls, nargs + nkw);
	return args[0];
}

static Value *call_builtin(Eval *ev, Module *m, Value **args, int nargs, int nkw, Span sp)
{
	IrAttrs at = {0};
	Value *in[3];
	switch (m->builtin) {
	case BM_LINEAR:
		in[0] = one_arg(ev, m, args, nargs, nkw, sp);
		in[1] = trace_param(ev, m, "weight", sp);
		if (m->bias)
			in[2] = trace_param(ev, m, "bias", sp);
		return trace_op(ev, OP_LINEAR, in, m->bias ? 3 : 2, &at, sp, NULL);
	case BM_LINEAR_SEP_BIAS: {
		in[0] = one_arg(ev, m, args, nargs, nkw, sp);
		in[1] = trace_param(ev, m, "weight", sp);
		Value *y = trace_op(ev, OP_LINEAR, in, 2, &at, sp, NULL);
		if (!m->bias)
			return y;
		in[0] = y;
		in[1] = trace_param(ev, m, "bias", sp);
		return trace_op(ev, OP_ADD, in, 2, &at, sp, NULL);
	}
	case BM_CONV1D: {
		in[0] = one_arg(ev, m, args, nargs, nkw, sp);
		in[1] = trace_param(ev, m, "weight", sp);
		Value *y = trace_op(ev, OP_MATMUL, in, 2, &at, sp, NULL);
		in[0] = y;
		in[1] = trace_param(ev, m, "bias", sp);
		return trace_op(ev, OP_ADD, in, 2, &at, sp, NULL);
	}
	case BM_LAYER_NORM:
		in[0] = one_arg(ev, m, args, nargs, nkw, sp);
		if (!m->bias)
			eval_error(ev, sp, "LayerNorm without elementwise_affine is not supported yet");
		in[1] = trace_param(ev, m, "weight", sp);
		in[2] = trace_param(ev, m, "bias", sp);
		at.fattr = m->eps;
		return trace_op(ev, OP_LAYER_NORM, in, 3, &at, sp, NULL);
	case BM_EMBEDDING:
		in[0] = one_arg(ev, m, args, nargs, nkw, sp);
		in[1] = trace_param(ev, m, "weight", sp);
		return trace_op(ev, OP_EMBEDDING, in, 2, &at, sp, NULL);
	case BM_DROPOUT:
		in[0] = one_arg(ev, m, args, nargs, nkw, sp);
		at.fattr = m->p;
		return trace_op(ev, OP_DROPOUT, in, 1, &at, sp, NULL);
	case BM_GELU:
	case BM_NEW_GELU:
	case BM_RELU:
	case BM_TANH: {
		static const IrOp ops[BM_COUNT] = {[BM_GELU] = OP_GELU, [BM_NEW_GELU] = OP_GELU_TANH,
		                                   [BM_RELU] = OP_RELU, [BM_TANH] = OP_TANH};
		in[0] = one_arg(ev, m, args, nargs, nkw, sp);
		return trace_op(ev, ops[m->builtin], in, 1, &at, sp, NULL);
	}
	case BM_SOFTMAX:
		in[0] = one_arg(ev, m, args, nargs, nkw, sp);
		at.iattr[0] = m->softmax_dim;
		at.niattr = 1;
		return trace_op(ev, OP_SOFTMAX, in, 1, &at, sp, NULL);
	case BM_IDENTITY:
		return one_arg(ev, m, args, nargs, nkw, sp);
	case BM_SEQUENTIAL: {
		Value *x = one_arg(ev, m, args, nargs, nkw, sp);
		for (int i = 0; i < m->children.len; i++)
			x = trace_call_module(ev, m->children.items[i], &x, 1, NULL, NULL, 0, sp);
		return x;
	}
	default:
		eval_error(ev, sp, "%s is not callable", m->cls);
	}
}

/* ---- replaying a traced graph ---- */

static Module *find_by_relpath(Eval *ev, Module *m, const char *path)
{
	if (!path[0])
		return m;
	const char *dot = strchr(path, '.');
	const char *seg = dot ? arena_strndup(ev->arena, path, (size_t)(dot - path)) : path;
	Module *c = mod_child(m, seg);
	if (!c)
		return NULL;
	return dot ? find_by_relpath(ev, c, dot + 1) : c;
}

/* Copy m's graph into the current trace with its inputs bound to args.
 * Parameters become parameters of the trace root; call nodes are
 * resolved again against the module tree as it is now. */
static Value *replay_graph(Eval *ev, Module *m, Value **args, int nargs, Span sp)
{
	IrGraph *src = m->graph;
	Trace *t = cur_trace(ev, sp);
	if (nargs != src->inputs.len)
		eval_error(ev, sp, "traced module %s takes %d tensors, got %d", m->cls,
		           src->inputs.len, nargs);
	int i = 0;
	for (IrNode *n = src->first; n; n = n->next)
		n->aux = NULL;
	for (i = 0; i < src->inputs.len; i++)
		((IrNode *)src->inputs.items[i])->aux = trace_tensor(ev, args[i], sp, "argument");
	for (IrNode *n = src->first; n; n = n->next) {
		if (n->op == OP_INPUT)
			continue;
		if (n->op == OP_PARAM) {
			const char *p = n->sattr;
			const char *dot = strrchr(p, '.');
			Module *owner = dot ? find_by_relpath(ev, m, arena_strndup(ev->arena, p,
			                                                          (size_t)(dot - p)))
			                    : m;
			if (!owner)
				eval_error(ev, sp, "internal error: parameter %s of %s not found", p, m->cls);
			n->aux = trace_param(ev, owner, dot ? dot + 1 : p, n->span)->node;
			continue;
		}
		IrNode *in[64];
		for (int j = 0; j < n->nin && j < 64; j++)
			in[j] = n->in[j]->aux;
		if (n->op == OP_CALL) {
			Module *c = find_by_relpath(ev, m, n->sattr);
			if (!c)
				eval_error(ev, n->span, "internal error: module %s not found", n->sattr);
			Value **av = ARENA_ARRAY(ev->arena, Value *, n->nin + 1);
			for (int j = 0; j < n->nin; j++)
				av[j] = tensor_value(ev, in[j]);
			n->aux = trace_tensor(ev, trace_call_module(ev, c, av, n->nin, NULL, NULL, 0,
			                                            n->span), n->span, "result");
			continue;
		}
		IrAttrs at = ir_node_attrs(n);
		IrNode *c = ir_build(t->g, n->op, in, n->nin, &at, n->span,
		                     n->op == OP_FUSED ? n->sattr : n->name);
		if (!c)
			diag_bail(ev->diag);
		n->aux = c;
	}
	if (src->outputs.len != 1)
		eval_error(ev, sp, "traced module %s has %d outputs; one is supported", m->cls,
		           src->outputs.len);
	return tensor_value(ev, ((IrNode *)src->outputs.items[0])->aux);
}

/* ---- module calls ---- */

static bool is_leaf(Eval *ev, Trace *t, Module *m)
{
	const char *rel = mod_relpath(ev, m, t->root);
	for (int i = 0; i < t->leaves.len; i++) {
		const char *l = t->leaves.items[i];
		if (strcmp(l, m->cls) == 0 || strcmp(l, rel) == 0)
			return true;
	}
	return !t->flatten && m->parent == t->root;
}

static void record_probe(Module *m, Value **args, int nargs)
{
	if (m->probed)
		return;
	m->probed = true;
	m->nprobe = nargs < IR_MAX_DIMS ? nargs : IR_MAX_DIMS;
	for (int i = 0; i < m->nprobe; i++) {
		if (args[i]->k == V_TENSOR) {
			m->probe_dt[i] = args[i]->node->dtype;
			m->probe_shape[i] = args[i]->node->shape;
		} else {
			m->probe_shape[i].ndim = -1; /* not a tensor */
		}
	}
}

static Value *call_module(Eval *ev, Trace *t, Module *m, Value **args, int nargs,
                          const char **kwn, Value **kw, int nkw, Span sp)
{
	if (t->probe && nkw == 0)
		record_probe(m, args, nargs);
	if (m->builtin)
		return call_builtin(ev, m, args, nargs, nkw, sp);
	bool all_tensors = nkw == 0;
	for (int i = 0; i < nargs; i++)
		all_tensors &= args[i]->k == V_TENSOR;
	if (m != t->root && all_tensors && is_leaf(ev, t, m)) {
		/* keep it as one call node with the module's own graph */
		IrGraph *body = m->graph;
		if (!body) {
			record_probe(m, args, nargs);
			body = trace_module(ev, m, true, NULL, sp);
		}
		IrNode **in = ARENA_ARRAY(ev->arena, IrNode *, nargs + 1);
		for (int i = 0; i < nargs; i++)
			in[i] = args[i]->node;
		IrAttrs at = {0};
		at.sattr = mod_relpath(ev, m, t->root);
		at.sub = body;
		at.module = t->module;
		IrNode *n = ir_build(t->g, OP_CALL, in, nargs, &at, sp, at.sattr);
		if (!n)
			diag_bail(ev->diag);
		return tensor_value(ev, n);
	}
	if (m->graph && m != t->root) {
		if (!all_tensors)
			eval_error(ev, sp, "traced module %s takes tensor arguments only", m->cls);
		return replay_graph(ev, m, args, nargs, sp);
	}
	return eval_forward(ev, m, args, nargs, kwn, kw, nkw, sp);
}

/* Calls m with the nodes it makes marked as m's (IrNode.module); nodes
 * replayed from a traced graph keep the module that made them. */
Value *trace_call_module(Eval *ev, Module *m, Value **args, int nargs, const char **kwn,
                         Value **kw, int nkw, Span sp)
{
	Trace *t = cur_trace(ev, sp);
	const char *saved = t->module;
	t->module = mod_path(ev, m);
	Value *r = call_module(ev, t, m, args, nargs, kwn, kw, nkw, sp);
	t->module = saved;
	return r;
}

/* ---- whole-module tracing ---- */

static Module *tree_root(Module *m)
{
	while (m->parent)
		m = m->parent;
	return m;
}

static IrGraph *trace_with(Eval *ev, Module *m, bool flatten, PtrVec *leaves, bool probe,
                           Value **types, int n, Span sp);

static Value **input_types(Eval *ev, Module *m, int *n, Span sp);

/* Record the arguments m is first called with (m->probe_*) by tracing
 * the whole model once, unless m is the root or was probed already. */
static void probe_from_root(Eval *ev, Module *m, Span sp)
{
	Module *root = tree_root(m);
	if (m->probed || root == m)
		return;
	Trace *saved = ev->trace;
	ev->trace = NULL;
	int rn;
	Value **rt = input_types(ev, root, &rn, sp);
	trace_with(ev, root, true, NULL, true, rt, rn, sp);
	ev->trace = saved;
}

/* Input types of m's forward: annotations, else the shapes it was
 * called with when the whole model was traced. */
static Value **input_types(Eval *ev, Module *m, int *n, Span sp)
{
	Value **types = eval_forward_types(ev, m, n);
	bool complete = true;
	for (int i = 0; i < *n; i++)
		complete &= types[i] != NULL;
	if (complete)
		return types;
	probe_from_root(ev, m, sp);
	const Ast *fwd = eval_forward_decl(m);
	for (int i = 0; i < *n; i++) {
		if (types[i])
			continue;
		const Ast *p = fwd->params.items[i];
		if (m->probed && i < m->nprobe && m->probe_shape[i].ndim >= 0) {
			types[i] = val_new(ev, V_TENSOR_TYPE);
			types[i]->ttype.dt = m->probe_dt[i];
			types[i]->ttype.shape = m->probe_shape[i];
		} else if (!p->rhs) {
			diag_error(ev->diag, sp,
			           "cannot trace %s: forward parameter '%s' has no tensor type, and "
			           "the model's forward never calls this module",
			           m->cls, p->name);
			diag_note(ev->diag, p->span, "give it a type such as f32[B, S, 768]");
			diag_bail(ev->diag);
		}
	}
	return types;
}

static const char *output_name(const Module *m)
{
	const Ast *fwd = eval_forward_decl(m);
	if (!fwd || !fwd->body || fwd->body->list.len == 0)
		return "output";
	const Ast *last = fwd->body->list.items[fwd->body->list.len - 1];
	if (last->kind == AST_RETURN && last->lhs && last->lhs->kind == AST_NAME)
		return last->lhs->name;
	return "output";
}

static IrGraph *trace_with(Eval *ev, Module *m, bool flatten, PtrVec *leaves, bool probe,
                           Value **types, int n, Span sp)
{
	const Ast *fwd = eval_forward_decl(m);
	IrGraph *g = ir_graph_new(ev->ir, m->cls);
	Trace t = {.g = g, .root = m, .flatten = flatten, .probe = probe, .outer = ev->trace};
	if (leaves)
		t.leaves = *leaves;
	ev->trace = &t;
	Value **args = ARENA_ARRAY(ev->arena, Value *, n + 1);
	int nargs = 0;
	for (int i = 0; i < n; i++) {
		const Ast *p = fwd->params.items[i];
		if (!types[i])
			break; /* defaults from here on */
		IrAttrs at = {0};
		at.sattr = p->name;
		at.dtype = types[i]->ttype.dt;
		at.shape = types[i]->ttype.shape;
		IrNode *in = ir_build(g, OP_INPUT, NULL, 0, &at, p->span, p->name);
		if (!in)
			diag_bail(ev->diag);
		ptrvec_push(ev->arena, &g->inputs, in);
		args[nargs++] = tensor_value(ev, in);
	}
	Value *r = trace_call_module(ev, m, args, nargs, NULL, NULL, 0, sp);
	ev->trace = t.outer;
	if (r->k == V_LIST) {
		for (int i = 0; i < r->list.len; i++) {
			ptrvec_push(ev->arena, &g->outputs, trace_tensor(ev, r->list.items[i], sp, "output"));
			ptrvec_push(ev->arena, &g->output_names, arena_printf(ev->arena, "output%d", i));
		}
	} else {
		Trace tmp = {.g = g, .root = m};
		ev->trace = &tmp;
		IrNode *o = trace_tensor(ev, r, sp, "the value forward returns");
		ev->trace = t.outer;
		ptrvec_push(ev->arena, &g->outputs, o);
		ptrvec_push(ev->arena, &g->output_names, (void *)output_name(m));
	}
	ir_dce(g);
	if (!ir_verify(g, "trace"))
		diag_bail(ev->diag);
	return g;
}

IrGraph *trace_module(Eval *ev, Module *m, bool flatten, PtrVec *leaves, Span sp)
{
	if (m->builtin)
		eval_error(ev, sp, "cannot trace built-in module %s on its own", m->cls);
	if (!eval_forward_decl(m))
		eval_error(ev, sp, "module %s has no forward to trace", m->cls);
	int n;
	Value **types = input_types(ev, m, &n, sp);
	return trace_with(ev, m, flatten, leaves, false, types, n, sp);
}

/* The input types of m's forward as arrays; false if it has none. A
 * built-in module has no forward: the types the model calls it with
 * (false if the model never calls it). */
bool trace_module_types(Eval *ev, Module *m, IrDType *dt, IrShape *shapes, int *n, Span sp)
{
	if (m->builtin) {
		probe_from_root(ev, m, sp);
		if (!m->probed)
			return false;
		int k = 0;
		for (; k < m->nprobe && m->probe_shape[k].ndim >= 0; k++) {
			dt[k] = m->probe_dt[k];
			shapes[k] = m->probe_shape[k];
		}
		*n = k;
		return true;
	}
	if (!eval_forward_decl(m))
		return false;
	Value **types = input_types(ev, m, n, sp);
	int k = 0;
	for (int i = 0; i < *n && i < IR_MAX_DIMS && types[i]; i++, k++) {
		dt[i] = types[i]->ttype.dt;
		shapes[i] = types[i]->ttype.shape;
	}
	*n = k;
	return true;
}

/* Trace m (flattened) on inputs of the given types. */
IrGraph *trace_with_types(Eval *ev, Module *m, IrDType *dt, IrShape *shapes, int n, Span sp)
{
	if (m->builtin) {
		/* a built-in module: a one-input graph of its ops */
		IrGraph *g = ir_graph_new(ev->ir, m->cls);
		Trace t = {.g = g, .root = m, .flatten = true, .outer = ev->trace};
		ev->trace = &t;
		IrAttrs at = {0};
		at.sattr = "input";
		at.dtype = dt[0];
		at.shape = shapes[0];
		IrNode *in = ir_build(g, OP_INPUT, NULL, 0, &at, sp, "input");
		if (!in)
			diag_bail(ev->diag);
		ptrvec_push(ev->arena, &g->inputs, in);
		Value *a = tensor_value(ev, in);
		Value *r = trace_call_module(ev, m, &a, 1, NULL, NULL, 0, sp);
		ev->trace = t.outer;
		ptrvec_push(ev->arena, &g->outputs, r->node);
		ptrvec_push(ev->arena, &g->output_names, "output");
		return g;
	}
	Value **types = ARENA_ARRAY(ev->arena, Value *, n + 1);
	for (int i = 0; i < n; i++) {
		types[i] = val_new(ev, V_TENSOR_TYPE);
		types[i]->ttype.dt = dt[i];
		types[i]->ttype.shape = shapes[i];
	}
	return trace_with(ev, m, true, NULL, false, types, n, sp);
}

/* A pattern's body as a graph: its parameters are wildcard inputs, and
 * nodes are made without shape inference (patterns have no shapes). */
IrGraph *trace_pattern(Eval *ev, const Ast *decl, Env *closure, Span sp)
{
	IrGraph *g = ir_graph_new(ev->ir, decl->name);
	Trace t = {.g = g, .pattern = true, .outer = ev->trace};
	ev->trace = &t;
	int n = decl->params.len;
	Value **args = ARENA_ARRAY(ev->arena, Value *, n + 1);
	for (int i = 0; i < n; i++) {
		IrNode *in = trace_raw_node(ev, OP_INPUT, NULL, 0, NULL, decl->params.items[i]->span,
		                            decl->params.items[i]->name);
		in->sattr = decl->params.items[i]->name;
		ptrvec_push(ev->arena, &g->inputs, in);
		args[i] = tensor_value(ev, in);
	}
	Value fn = {.k = V_FUNC, .decl = decl, .closure = closure};
	Value *r = eval_call_value(ev, &fn, args, n, NULL, NULL, 0, sp);
	ev->trace = t.outer;
	if (r->k != V_TENSOR)
		eval_error(ev, decl->span, "pattern %s must return a tensor expression", decl->name);
	ptrvec_push(ev->arena, &g->outputs, r->node);
	ptrvec_push(ev->arena, &g->output_names, "output");
	ir_dce(g);
	return g;
}

/* ---- tensor indexing: x[:, None, 0, 1:3] ---- */

Value *trace_index(Eval *ev, Value *t, Value **idx, int n, Span sp)
{
	Value *x = t;
	int dim = 0;
	for (int i = 0; i < n; i++) {
		Value *ix = idx[i];
		IrAttrs at = {0};
		int rank = x->node->shape.ndim;
		if (ix->k == V_NONE) {
			at.iattr[0] = dim;
			at.niattr = 1;
			x = trace_op(ev, OP_UNSQUEEZE, &x, 1, &at, sp, NULL);
			dim++;
			continue;
		}
		if (dim >= rank)
			eval_error(ev, sp, "too many indices for a tensor of rank %d", rank);
		if (ix->k == V_LIST && ix->builtin_module == 1) { /* slice */
			Value *lo = ix->list.items[0], *hi = ix->list.items[1], *st = ix->list.items[2];
			if (lo->k == V_NONE && hi->k == V_NONE && st->k == V_NONE) {
				dim++;
				continue;
			}
			at.iattr[0] = dim;
			at.iattr[1] = st->k == V_NONE ? 1 : val_as_int(ev, st, "a slice step", sp);
			at.niattr = 2;
			at.dattr[0] = lo->k == V_NONE ? ir_dim_const(0) : val_as_dim(ev, lo, "a slice start", sp);
			at.dattr[1] = hi->k == V_NONE ? x->node->shape.d[dim]
			                              : val_as_dim(ev, hi, "a slice end", sp);
			at.ndattr = 2;
			x = trace_op(ev, OP_SLICE, &x, 1, &at, sp, NULL);
			dim++;
			continue;
		}
		at.iattr[0] = dim;
		at.iattr[1] = val_as_int(ev, ix, "a tensor index", sp);
		at.niattr = 2;
		x = trace_op(ev, OP_SELECT, &x, 1, &at, sp, NULL);
	}
	return x;
}

/* The whole model as one flat graph, every schedule decision applied:
 * what --verify runs and what code generation lowers. */
IrGraph *trace_model(Eval *ev, Module *root, Span sp)
{
	if (!root->graph)
		return trace_module(ev, root, true, NULL, sp);
	IrGraph *src = root->graph;
	IrGraph *g = ir_graph_new(ev->ir, root->cls);
	Trace t = {.g = g, .root = root, .flatten = true, .outer = ev->trace};
	ev->trace = &t;
	Value **args = ARENA_ARRAY(ev->arena, Value *, src->inputs.len + 1);
	for (int i = 0; i < src->inputs.len; i++) {
		IrNode *old = src->inputs.items[i];
		IrAttrs at = {0};
		at.sattr = old->sattr;
		at.dtype = old->dtype;
		at.shape = old->shape;
		IrNode *in = ir_build(g, OP_INPUT, NULL, 0, &at, old->span, old->name);
		if (!in)
			diag_bail(ev->diag);
		ptrvec_push(ev->arena, &g->inputs, in);
		args[i] = tensor_value(ev, in);
	}
	Value *r = replay_graph(ev, root, args, src->inputs.len, sp);
	ev->trace = t.outer;
	ptrvec_push(ev->arena, &g->outputs, r->node);
	ptrvec_push(ev->arena, &g->output_names, src->output_names.items[0]);
	ir_dce(g);
	if (!ir_verify(g, "trace"))
		diag_bail(ev->diag);
	return g;
}
