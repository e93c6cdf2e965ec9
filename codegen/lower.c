/* lower.c - the kernel graph: the model graph lowered into a list of
 * steps (kernels and BLAS calls) over buffers seen through strided views.
 *
 * Each node of the graph, in order, becomes:
 *   input, param         a buffer of the runtime (ex->inputs / ex->params)
 *   const                nothing: folded into the expressions that use it
 *   view ops, dropout    a new view of the input's buffer (no code), or a
 *                        copy when the strides cannot express it
 *   elementwise op       a MAP kernel (constants folded in)
 *   fused                one kernel: a MAP of its body, or a SOFTMAX /
 *                        LAYER_NORM row kernel with the elementwise body
 *                        below it as its prologue; other bodies are
 *                        lowered node by node
 *   linear, matmul       a GEMM step (bias pre-filled into C, beta = 1;
 *                        transposes and batch strides folded into the
 *                        call; operands copied only when BLAS cannot
 *                        read them)
 *   softmax, layer_norm  row kernels; sum/mean/max: REDUCE rows
 *   embedding            a GATHER kernel that checks every index
 *   cat                  one copy per input into its slice of the output
 *   call                 its body, inlined
 * Graph outputs are written in place where the producing step allows it,
 * else copied. plan.c then assigns workspace slots by liveness.
 */
#include <string.h>

#include "codegen/codegen.h"
#include "slapo/slapo.h"

/* Values of one graph being lowered (the model, or a body). */
typedef struct Group Group;

typedef struct Scope {
	const IrGraph *g;
	CgView **val;   /* [g->next_id]: where each node's value is; NULL for
	                 * constants (not materialised) */
	Group **groups; /* [g->next_id]: linear groups (the model graph only) */
} Scope;

typedef struct Lower {
	CgProgram *p;
	Arena *a;
	IrCtx *ir;
	bool failed;
	const IrNode *at; /* the model-graph node being lowered (CgStep.span) */
} Lower;

static bool fail(Lower *lw, Span sp, const char *fmt, const char *arg)
{
	if (sp.file)
		diag_error(lw->p->diag, sp, fmt, arg);
	else
		diag_plain(lw->p->diag, DIAG_ERROR, fmt, arg);
	lw->failed = true;
	return false;
}

/* ---- buffers and steps ------------------------------------------------------------ */

IrDType cg_storage_type(IrDType t)
{
	switch (t) {
	case IR_I64: return IR_I64;
	case IR_I32: return IR_I32;
	case IR_BOOL: return IR_BOOL;
	default: return IR_F32;
	}
}

int cg_elem_size(IrDType t)
{
	switch (cg_storage_type(t)) {
	case IR_I64: return 8;
	case IR_BOOL: return 1;
	default: return 4;
	}
}

static CgBuf *new_buf(Lower *lw, CgBufKind k, int index, IrDType t, IrDim numel,
                      const char *name)
{
	CgBuf *b = ARENA_NEW(lw->a, CgBuf);
	b->kind = k;
	b->index = index;
	b->dtype = cg_storage_type(t);
	b->numel = numel;
	b->name = name;
	b->def = b->last = -1;
	b->id = lw->p->bufs.len;
	ptrvec_push(lw->a, &lw->p->bufs, b);
	return b;
}

static CgView *view_dup(Lower *lw, const CgView *v)
{
	return arena_dup(lw->a, v, sizeof *v);
}

/* A new temp of n's shape (storage of dtype t), as a contiguous view. */
static CgView *new_temp(Lower *lw, const IrShape *s, IrDType t, const char *name)
{
	CgBuf *b = new_buf(lw, CG_BUF_TEMP, -1, t, ir_shape_numel(s), name);
	CgView v = cg_view_contig(b->id, s);
	return view_dup(lw, &v);
}

static CgStep *new_step(Lower *lw, CgKind k, const char *name, const char *what, int nview)
{
	CgStep *st = ARENA_NEW(lw->a, CgStep);
	st->kind = k;
	st->id = lw->p->steps.len;
	st->name = name;
	st->what = what;
	if (lw->at) {
		st->node = lw->at->name;
		st->span = lw->at->span;
		st->module = lw->at->module;
	}
	st->nview = nview;
	st->views = ARENA_ARRAY(lw->a, CgView, nview > 0 ? nview : 1);
	st->alpha = 1;
	ptrvec_push(lw->a, &lw->p->steps, st);
	return st;
}

static void shape_of_view(const CgView *v, IrShape *s)
{
	memset(s, 0, sizeof *s);
	s->ndim = v->ndim;
	for (int i = 0; i < v->ndim; i++)
		s->d[i] = v->dim[i];
}

/* Where n's value goes: a new contiguous temp, or -- when n's only use
 * permutes it keeping the last dim last (attention's context
 * matmul(p, v).permute(0, 2, 1, 3) before a reshape) -- a temp in the
 * permuted order, seen through the inverse permutation, so that the
 * permute makes it contiguous and the reshape needs no copy. */
static CgView *dest(Lower *lw, Scope *s, IrNode *n)
{
	IrNode **users = NULL;
	bool out = false;
	for (int i = 0; i < s->g->outputs.len; i++)
		out |= s->g->outputs.items[i] == n;
	if (out || ir_node_uses(s->g, n, &users) != 1 ||
	    (users[0]->op != OP_PERMUTE && users[0]->op != OP_TRANSPOSE))
		return new_temp(lw, &n->shape, n->dtype, n->name);
	IrNode *u = users[0];
	int nd = n->shape.ndim, perm[IR_MAX_DIMS];
	CgView probe = cg_view_contig(0, &n->shape);
	for (int i = 0; i < nd; i++)
		probe.stride[i] = ir_dim_const(i); /* tags: where each dim goes */
	if (!cg_view_apply(u, &probe) || nd < 1)
		return new_temp(lw, &n->shape, n->dtype, n->name);
	for (int i = 0; i < nd; i++)
		perm[i] = (int)probe.stride[i].coef; /* u's dim i is n's dim perm[i] */
	if (perm[nd - 1] != nd - 1)
		return new_temp(lw, &n->shape, n->dtype, n->name);
	CgView *t = new_temp(lw, &u->shape, n->dtype, n->name);
	CgView v = *t;
	for (int i = 0; i < nd; i++) {
		v.dim[perm[i]] = t->dim[i];
		v.stride[perm[i]] = t->stride[i];
	}
	*t = v;
	return t;
}

/* ---- expressions and MAP steps ------------------------------------------------------ */

/* Leaves of an expression under construction. */
typedef struct Leaves {
	int n, cap;
	IrNode **node;
	CgView *view; /* over the node's own shape, not yet broadcast */
	int nc;       /* body inputs that are the caller's constants */
	IrNode **cn, **cv;
} Leaves;

static void expr_consts(CgExpr *e, const Leaves *l)
{
	e->nconst = l->nc;
	e->cnode = l->cn;
	e->cval = l->cv;
}

static void leaf_add(Lower *lw, Leaves *l, IrNode *n, const CgView *v)
{
	for (int i = 0; i < l->n; i++)
		if (l->node[i] == n)
			return;
	if (l->n == l->cap) {
		int cap = l->cap ? 2 * l->cap : 8;
		IrNode **nn = ARENA_ARRAY(lw->a, IrNode *, cap);
		CgView *nv = ARENA_ARRAY(lw->a, CgView, cap);
		if (l->n) {
			memcpy(nn, l->node, sizeof *nn * (size_t)l->n);
			memcpy(nv, l->view, sizeof *nv * (size_t)l->n);
		}
		l->node = nn;
		l->view = nv;
		l->cap = cap;
	}
	l->node[l->n] = n;
	l->view[l->n] = *v;
	l->n++;
}

/* The virtual view of an arange node: element i reads the value i. */
static CgView arange_view(const IrNode *n)
{
	return cg_view_contig(-1, &n->shape);
}

/* A MAP step computing `root` over the index space of `out` (a view of
 * the destination) from the leaves. Returns false on an internal error. */
static bool map_step(Lower *lw, const char *name, const char *what, IrNode *root,
                     Leaves *l, const CgView *out)
{
	if (l->n + 1 > CG_MAX_VIEWS)
		return fail(lw, root->span, "%s: too many operands for one kernel", name);
	CgStep *st = new_step(lw, CG_MAP, name, what, l->n + 1);
	st->ndim = out->ndim;
	for (int i = 0; i < out->ndim; i++)
		st->dim[i] = out->dim[i];
	st->views[0] = *out;
	st->expr.root = root;
	st->expr.nleaf = l->n;
	st->expr.leaf = l->node;
	st->expr.leaf_view = ARENA_ARRAY(lw->a, int, l->n + 1);
	st->type = cg_compute_type(root->dtype);
	expr_consts(&st->expr, l);
	for (int i = 0; i < l->n; i++) {
		CgView v = l->view[i];
		if (!cg_view_broadcast(&v, out->ndim, out->dim))
			return fail(lw, root->span,
			            "internal error: %s: an operand does not broadcast to the result",
			            name);
		st->views[i + 1] = v;
		st->expr.leaf_view[i] = i + 1;
	}
	cg_views_collapse(&st->ndim, st->dim, st->views, st->nview, 0);
	return true;
}

/* Copy the value seen through v (of node n's dtype) into a new
 * contiguous temp; returns its view. */
static CgView *materialize(Lower *lw, IrNode *n, const CgView *v, const char *why)
{
	IrShape s;
	shape_of_view(v, &s);
	CgView *out = new_temp(lw, &s, n->dtype, n->name);
	Leaves l = {0};
	leaf_add(lw, &l, n, v);
	if (!map_step(lw, n->name, why, n, &l, out))
		return NULL;
	return out;
}

/* A constant's value as a temp (where memory is needed). */
static CgView *const_value(Lower *lw, IrNode *n)
{
	CgView *out = new_temp(lw, &n->shape, n->dtype, n->name);
	Leaves l = {0};
	if (!map_step(lw, n->name, "const", n, &l, out))
		return NULL;
	return out;
}

static CgView *value(Lower *lw, Scope *s, IrNode *n)
{
	CgView *v = n->id >= 0 && n->id < s->g->next_id ? s->val[n->id] : NULL;
	if (v)
		return v;
	if (n->op == OP_CONST) {
		v = const_value(lw, n);
		if (v)
			s->val[n->id] = v;
		return v;
	}
	fail(lw, n->span, "internal error: %%%s has no value", n->name);
	return NULL;
}

/* ---- elementwise ops and fused bodies --------------------------------------------------- */

static bool lower_elem(Lower *lw, Scope *s, IrNode *n)
{
	Leaves l = {0};
	for (int i = 0; i < n->nin; i++) {
		IrNode *x = n->in[i];
		if (x->op == OP_CONST)
			continue;
		CgView *v = value(lw, s, x);
		if (!v)
			return false;
		leaf_add(lw, &l, x, v);
	}
	CgView *out = new_temp(lw, &n->shape, n->dtype, n->name);
	s->val[n->id] = out;
	return map_step(lw, n->name, ir_ops[n->op].name, n, &l, out);
}

static bool lower_graph(Lower *lw, const IrGraph *g, CgView **args, CgView **result);

/* Nodes of a body that an expression can compute; view ops over inputs
 * become leaves with their own views (in leafv). */
static bool expressible(const IrNode *x, const IrGraph *body, CgView **leafv,
                        IrNode **constv)
{
	if (leafv[x->id] || constv[x->id])
		return true;
	if (x->op == OP_CONST || x->op == OP_ARANGE)
		return true;
	if (cg_cpu_ops[x->op].kind == CGK_ELEM) {
		for (int i = 0; i < x->nin; i++)
			if (!expressible(x->in[i], body, leafv, constv))
				return false;
		return true;
	}
	return false;
}

/* Views of leaves: body inputs from args, view ops over leaves. */
static void body_leaves(Lower *lw, const IrGraph *body, CgView **args, CgView **leafv)
{
	for (int i = 0; i < body->inputs.len; i++) {
		const IrNode *x = body->inputs.items[i];
		leafv[x->id] = args[i];
	}
	for (IrNode *x = body->first; x; x = x->next) {
		if (cg_cpu_ops[x->op].kind != CGK_VIEW || !leafv[x->in[0]->id])
			continue;
		CgView v = *leafv[x->in[0]->id];
		if (cg_view_apply(x, &v))
			leafv[x->id] = view_dup(lw, &v);
	}
}

/* Leaves an expression rooted at x reads (post-order, no repeats). */
static void collect(Lower *lw, IrNode *x, CgView **leafv, IrNode **constv, Leaves *l,
                    char *seen)
{
	if (seen[x->id])
		return;
	seen[x->id] = 1;
	if (constv[x->id]) {
		if (l->nc % 8 == 0) {
			IrNode **cn = ARENA_ARRAY(lw->a, IrNode *, l->nc + 8);
			IrNode **cv = ARENA_ARRAY(lw->a, IrNode *, l->nc + 8);
			if (l->nc) {
				memcpy(cn, l->cn, sizeof *cn * (size_t)l->nc);
				memcpy(cv, l->cv, sizeof *cv * (size_t)l->nc);
			}
			l->cn = cn;
			l->cv = cv;
		}
		l->cn[l->nc] = x;
		l->cv[l->nc++] = constv[x->id];
		return;
	}
	if (leafv[x->id]) {
		leaf_add(lw, l, x, leafv[x->id]);
		return;
	}
	if (x->op == OP_ARANGE) {
		CgView v = arange_view(x);
		leaf_add(lw, l, x, &v);
		return;
	}
	for (int i = 0; i < x->nin; i++)
		collect(lw, x->in[i], leafv, constv, l, seen);
}

/* A body graph whose input shapes are those of n's inputs (the body as
 * is, or a copy re-inferred under them). */
static const IrGraph *body_for(Lower *lw, IrNode *n)
{
	const IrGraph *sub = n->sub;
	bool same = sub->inputs.len == n->nin;
	for (int i = 0; same && i < n->nin; i++) {
		const IrNode *p = sub->inputs.items[i];
		same = p->dtype == n->in[i]->dtype && ir_shape_eq(&p->shape, &n->in[i]->shape);
	}
	if (same)
		return sub;
	IrGraph *g = ir_graph_new(lw->ir, sub->name);
	IrNode **args = ARENA_ARRAY(lw->a, IrNode *, n->nin + 1);
	for (int i = 0; i < n->nin; i++) {
		const IrNode *p = sub->inputs.items[i];
		IrAttrs at;
		memset(&at, 0, sizeof at);
		at.dtype = n->in[i]->dtype;
		at.shape = n->in[i]->shape;
		at.sattr = p->sattr;
		args[i] = ir_build(g, OP_INPUT, NULL, 0, &at, p->span, p->name);
		if (!args[i])
			return NULL;
		bool listed = false;
		for (int k = 0; k < g->inputs.len; k++)
			listed |= g->inputs.items[k] == args[i];
		if (!listed)
			ptrvec_push(lw->a, &g->inputs, args[i]);
	}
	IrNode *out = NULL;
	if (!ir_inline(g, NULL, sub, args, "", &out))
		return NULL;
	ir_add_output(g, out, NULL);
	return g;
}

/* A row kernel (softmax along `axis`, layer_norm along the last dim)
 * whose input is the expression rooted at x. */
static bool row_step(Lower *lw, IrNode *n, IrNode *x, Leaves *l, const CgView *wv,
                     const CgView *bv, CgView *out, const char *what)
{
	int nd = x->shape.ndim;
	int axis = n->op == OP_SOFTMAX ? ir_axis(n->iattr[0], nd) : nd - 1;
	if (axis < 0 || nd < 1)
		return fail(lw, n->span, "internal error: %s: bad axis", n->name);
	int extra = n->op == OP_LAYER_NORM ? 2 : 0;
	int nview = 1 + extra + l->n;
	if (nview > CG_MAX_VIEWS)
		return fail(lw, n->span, "%s: too many operands for one kernel", n->name);
	CgStep *st = new_step(lw, n->op == OP_SOFTMAX ? CG_SOFTMAX : CG_LAYER_NORM, n->name,
	                      what, nview);
	st->eps = n->fattr;
	st->type = IR_F32;
	st->expr.root = x;
	st->expr.nleaf = l->n;
	st->expr.leaf = l->node;
	st->expr.leaf_view = ARENA_ARRAY(lw->a, int, l->n + 1);
	expr_consts(&st->expr, l);
	st->views[0] = *out;
	if (extra) {
		st->views[1] = *wv;
		st->views[2] = *bv;
	}
	for (int i = 0; i < l->n; i++) {
		st->views[1 + extra + i] = l->view[i];
		st->expr.leaf_view[i] = 1 + extra + i;
	}
	for (int k = 0; k < nview; k++)
		if (!cg_view_broadcast(&st->views[k], nd, x->shape.d))
			return fail(lw, n->span,
			            "internal error: %s: an operand does not broadcast", n->name);
	/* the row dim goes last */
	int perm[IR_MAX_DIMS], j = 0;
	for (int i = 0; i < nd; i++)
		if (i != axis)
			perm[j++] = i;
	perm[j] = axis;
	st->ndim = nd;
	for (int i = 0; i < nd; i++)
		st->dim[i] = x->shape.d[perm[i]];
	for (int k = 0; k < nview; k++) {
		CgView v = st->views[k];
		for (int i = 0; i < nd; i++) {
			st->views[k].dim[i] = v.dim[perm[i]];
			st->views[k].stride[i] = v.stride[perm[i]];
		}
	}
	cg_views_collapse(&st->ndim, st->dim, st->views, nview, 1);
	return true;
}

static bool lower_row(Lower *lw, Scope *s, IrNode *n)
{
	IrNode *x = n->in[0];
	CgView *xv = value(lw, s, x);
	if (!xv)
		return false;
	Leaves l = {0};
	leaf_add(lw, &l, x, xv);
	CgView *wv = NULL, *bv = NULL;
	if (n->op == OP_LAYER_NORM) {
		wv = value(lw, s, n->in[1]);
		bv = value(lw, s, n->in[2]);
		if (!wv || !bv)
			return false;
	}
	CgView *out = new_temp(lw, &n->shape, n->dtype, n->name);
	s->val[n->id] = out;
	return row_step(lw, n, x, &l, wv, bv, out, ir_ops[n->op].name);
}

static bool lower_fused(Lower *lw, Scope *s, IrNode *n)
{
	/* the caller's constants stay constants in the body */
	CgView **args = ARENA_ARRAY(lw->a, CgView *, n->nin + 1);
	for (int i = 0; i < n->nin; i++)
		if (n->in[i]->op != OP_CONST && !(args[i] = value(lw, s, n->in[i])))
			return false;
	const IrGraph *body = n->op == OP_FUSED ? body_for(lw, n) : NULL;
	if (n->op == OP_FUSED && !body)
		return fail(lw, n->span, "%s: cannot instantiate the fused body", n->name);
	if (body && body->outputs.len == 1) {
		IrNode *root = body->outputs.items[0];
		CgView **leafv = ARENA_ARRAY(lw->a, CgView *, body->next_id + 1);
		IrNode **constv = ARENA_ARRAY(lw->a, IrNode *, body->next_id + 1);
		body_leaves(lw, body, args, leafv);
		for (int i = 0; i < n->nin; i++)
			if (n->in[i]->op == OP_CONST)
				constv[((IrNode *)body->inputs.items[i])->id] = n->in[i];
		const char *what = n->sattr ? n->sattr : n->name;
		bool row = root->op == OP_SOFTMAX || root->op == OP_LAYER_NORM;
		IrNode *top = row ? root->in[0] : root;
		bool ok = !leafv[root->id] && !constv[root->id] && expressible(top, body, leafv, constv);
		if (ok && root->op == OP_LAYER_NORM)
			ok = leafv[root->in[1]->id] && leafv[root->in[2]->id];
		if (ok) {
			Leaves l = {0};
			char *seen = arena_alloc(lw->a, (size_t)body->next_id + 1);
			collect(lw, top, leafv, constv, &l, seen);
			CgView *out = new_temp(lw, &n->shape, n->dtype, n->name);
			s->val[n->id] = out;
			if (row)
				return row_step(lw, root, top, &l,
				                root->op == OP_LAYER_NORM ? leafv[root->in[1]->id] : NULL,
				                root->op == OP_LAYER_NORM ? leafv[root->in[2]->id] : NULL,
				                out, what);
			return map_step(lw, n->name, what, root, &l, out);
		}
	}
	/* not one kernel: lower the body node by node */
	if (!body && !(body = body_for(lw, n)))
		return fail(lw, n->span, "%s: cannot instantiate the body", n->name);
	for (int i = 0; i < n->nin; i++)
		if (!args[i] && !(args[i] = value(lw, s, n->in[i])))
			return false;
	CgView *res = NULL;
	if (!lower_graph(lw, body, args, &res))
		return false;
	s->val[n->id] = res;
	return true;
}

/* ---- views ---------------------------------------------------------------------------- */

static bool lower_view(Lower *lw, Scope *s, IrNode *n)
{
	CgView *in = value(lw, s, n->in[0]);
	if (!in)
		return false;
	CgView v = *in;
	if (!cg_view_apply(n, &v)) {
		CgView *c = materialize(lw, n->in[0], in, "copy");
		if (!c)
			return false;
		v = *c;
		if (!cg_view_apply(n, &v))
			return fail(lw, n->span, "internal error: %s: cannot view a contiguous tensor",
			            n->name);
	}
	s->val[n->id] = view_dup(lw, &v);
	return true;
}

/* ---- GEMM ----------------------------------------------------------------------------- */

/* C = A . B (+ C when beta = 1) over broadcast batch dims; A, B, C are
 * views [batch..., m, k], [batch..., k, n], [batch..., m, n] with equal
 * batch dims. Operands BLAS cannot read are copied first. */
static CgStep *gemm_step(Lower *lw, IrNode *n, IrNode *an, CgView A, IrNode *bn, CgView B,
                         CgView C, double beta)
{
	int nb = C.ndim - 2;
	IrDim m = C.dim[nb], nn = C.dim[nb + 1], k = A.dim[nb + 1];
	/* orientation of A: rows of k contiguous (N) or columns (T) */
	bool ta = false, tb = false;
	for (int pass = 0; pass < 2; pass++) {
		IrDim sr = A.stride[nb], sc = A.stride[nb + 1];
		if (cg_dim_is(sc, 1) || cg_dim_is(k, 1)) {
			if (!cg_dim_is(sr, 0) || cg_dim_is(m, 1)) {
				ta = false;
				break;
			}
		}
		if (cg_dim_is(sr, 1) || cg_dim_is(m, 1)) {
			if (!cg_dim_is(sc, 0) || cg_dim_is(k, 1)) {
				ta = true;
				break;
			}
		}
		if (pass)
			return fail(lw, n->span, "internal error: %s: cannot lay out A", n->name), NULL;
		CgView *c = materialize(lw, an, &A, "copy");
		if (!c)
			return NULL;
		A = *c;
	}
	for (int pass = 0; pass < 2; pass++) {
		IrDim sr = B.stride[nb], sc = B.stride[nb + 1];
		if (cg_dim_is(sc, 1) || cg_dim_is(nn, 1)) {
			if (!cg_dim_is(sr, 0) || cg_dim_is(k, 1)) {
				tb = false;
				break;
			}
		}
		if (cg_dim_is(sr, 1) || cg_dim_is(k, 1)) {
			if (!cg_dim_is(sc, 0) || cg_dim_is(nn, 1)) {
				tb = true;
				break;
			}
		}
		if (pass)
			return fail(lw, n->span, "internal error: %s: cannot lay out B", n->name), NULL;
		CgView *c = materialize(lw, bn, &B, "copy");
		if (!c)
			return NULL;
		B = *c;
	}
	/* leading dims of an N-laid-out A that B broadcasts over join M */
	while (nb > 0 && !ta) {
		int i = nb - 1;
		IrDim mr = cg_dim_mul(m, A.stride[nb]);
		IrDim mc = cg_dim_mul(m, C.stride[nb]);
		if (!cg_dim_is(B.stride[i], 0) || !ir_dim_eq(A.stride[i], mr) ||
		    !ir_dim_eq(C.stride[i], mc))
			break;
		m = cg_dim_mul(m, A.dim[i]);
		for (int j = i; j + 1 < C.ndim; j++) {
			CgView *vs[3] = {&A, &B, &C};
			for (int q = 0; q < 3; q++) {
				vs[q]->dim[j] = vs[q]->dim[j + 1];
				vs[q]->stride[j] = vs[q]->stride[j + 1];
			}
		}
		A.ndim--;
		B.ndim--;
		C.ndim--;
		nb--;
	}
	CgStep *st = new_step(lw, CG_GEMM, n->name, ir_ops[n->op].name, 3);
	st->ta = ta;
	st->tb = tb;
	st->m = m;
	st->n = nn;
	st->k = k;
	st->lda = ta ? A.stride[nb + 1] : A.stride[nb];
	st->ldb = tb ? B.stride[nb + 1] : B.stride[nb];
	st->ldc = C.stride[nb];
	st->beta = beta;
	/* batch dims, collapsed over the three operands */
	CgView bv[3] = {A, B, C};
	int bnd = nb;
	IrDim bd[IR_MAX_DIMS];
	for (int i = 0; i < nb; i++)
		bd[i] = C.dim[i];
	bool all_one = true;
	for (int i = 0; i < nb; i++)
		all_one &= cg_dim_is(bd[i], 1);
	if (nb > 0 && !all_one) {
		for (int q = 0; q < 3; q++)
			bv[q].ndim = nb;
		cg_views_collapse(&bnd, bd, bv, 3, 0);
	} else {
		bnd = 0;
	}
	st->nbatch = bnd;
	for (int i = 0; i < bnd; i++) {
		st->bdim[i] = bd[i];
		st->bsa[i] = bv[0].stride[i];
		st->bsb[i] = bv[1].stride[i];
		st->bsc[i] = bv[2].stride[i];
	}
	st->ndim = 0;
	st->views[0] = C;
	st->views[1] = A;
	st->views[2] = B;
	return st;
}

static bool lower_gemm(Lower *lw, Scope *s, IrNode *n)
{
	IrNode *an = n->in[0], *bn = n->in[1];
	if (!ir_dtype_is_float(n->dtype))
		return fail(lw, n->span, "%s: products of integer tensors are not supported on the CPU yet",
		            ir_ops[n->op].name);
	CgView *av = value(lw, s, an), *bv = value(lw, s, bn);
	if (!av || !bv)
		return false;
	CgView A = *av, B = *bv;
	CgView *out = dest(lw, s, n);
	s->val[n->id] = out;
	CgView C = *out;
	double beta = 0;
	if (n->op == OP_LINEAR) {
		/* y = x W^T: B is W transposed, broadcast over x's leading dims */
		B.dim[0] = bv->dim[1];
		B.dim[1] = bv->dim[0];
		B.stride[0] = bv->stride[1];
		B.stride[1] = bv->stride[0];
		if (n->nin > 2) {
			CgView *biasv = value(lw, s, n->in[2]);
			if (!biasv)
				return false;
			Leaves l = {0};
			leaf_add(lw, &l, n->in[2], biasv);
			if (!map_step(lw, n->name, "bias", n->in[2], &l, out))
				return false;
			beta = 1;
		}
	}
	/* vectors as matrices: [k] -> [1, k] for A, [k] -> [k, 1] for B */
	if (A.ndim == 1) {
		IrNode u = {.op = OP_UNSQUEEZE, .niattr = 1};
		cg_view_apply(&u, &A);
		IrNode u2 = {.op = OP_UNSQUEEZE, .niattr = 1, .iattr = {C.ndim - 1}};
		cg_view_apply(&u2, &C);
	}
	if (n->op == OP_MATMUL && bv->ndim == 1)
		return fail(lw, n->span, "%s: matmul by a vector is not supported yet", n->name);
	/* common batch dims */
	int nb = C.ndim - 2;
	IrDim bd[IR_MAX_DIMS + 2];
	for (int i = 0; i < C.ndim; i++)
		bd[i] = C.dim[i];
	bd[nb] = A.dim[A.ndim - 2];
	bd[nb + 1] = A.dim[A.ndim - 1];
	if (!cg_view_broadcast(&A, C.ndim, bd))
		return fail(lw, n->span, "internal error: %s: A does not broadcast", n->name);
	bd[nb] = B.dim[B.ndim - 2];
	bd[nb + 1] = B.dim[B.ndim - 1];
	if (!cg_view_broadcast(&B, C.ndim, bd))
		return fail(lw, n->span, "internal error: %s: B does not broadcast", n->name);
	return gemm_step(lw, n, an, A, bn, B, C, beta) != NULL;
}

/* ---- linears sharing their input ------------------------------------------------------- */

/* Linears on one input with their own constant-size f32 parameter
 * weights of equal K (and all with or all without a parameter bias):
 * BERT's Q, K and V projections. One GEMM computes them side by side
 * (wider N runs BLAS faster) into one buffer; each linear's value is its
 * column slice. group[id] is the group of each member. */
struct Group {
	int n;
	IrNode *m[CG_MAX_GROUP];
};

static bool groupable(const IrNode *l)
{
	if (l->op != OP_LINEAR || l->in[0]->shape.ndim < 2 || l->dtype != IR_F32)
		return false;
	const IrNode *w = l->in[1];
	if (w->op != OP_PARAM || w->shape.ndim != 2 || !ir_dim_is_const(w->shape.d[0]) ||
	    !ir_dim_is_const(w->shape.d[1]) || w->dtype != IR_F32)
		return false;
	return l->nin < 3 || l->in[2]->op == OP_PARAM;
}

static Group **find_groups(Lower *lw, const IrGraph *g)
{
	Group **grp = ARENA_ARRAY(lw->a, Group *, g->next_id + 1);
	for (IrNode *x = g->first; x; x = x->next) {
		if (!groupable(x) || grp[x->id])
			continue;
		Group *gr = ARENA_NEW(lw->a, Group);
		gr->m[gr->n++] = x;
		for (IrNode *y = x->next; y && gr->n < CG_MAX_GROUP; y = y->next) {
			if (!groupable(y) || grp[y->id] || y->in[0] != x->in[0] || y->nin != x->nin ||
			    !ir_dim_eq(y->in[1]->shape.d[1], x->in[1]->shape.d[1]))
				continue;
			bool dup = false;
			for (int i = 0; i < gr->n; i++)
				dup |= strcmp(gr->m[i]->in[1]->sattr, y->in[1]->sattr) == 0;
			if (!dup)
				gr->m[gr->n++] = y;
		}
		if (gr->n > 1)
			for (int i = 0; i < gr->n; i++)
				grp[gr->m[i]->id] = gr;
	}
	return grp;
}

static bool lower_linear_group(Lower *lw, Scope *s, const Group *gr)
{
	IrNode *n0 = gr->m[0], *x = n0->in[0];
	CgView *xv = value(lw, s, x);
	if (!xv)
		return false;
	int64_t total = 0, col[CG_MAX_GROUP];
	for (int i = 0; i < gr->n; i++) {
		col[i] = total;
		total += gr->m[i]->in[1]->shape.d[0].coef;
	}
	IrShape cs = n0->shape;
	cs.d[cs.ndim - 1] = ir_dim_const(total);
	const char *name = arena_printf(lw->a, "%s_group", n0->name);
	CgView *C = new_temp(lw, &cs, IR_F32, name);
	double beta = 0;
	for (int i = 0; i < gr->n; i++) {
		IrNode *m = gr->m[i];
		CgView slice = *C;
		bool ok = true;
		slice.dim[slice.ndim - 1] = m->in[1]->shape.d[0];
		cg_poly_add(&slice.off, ir_dim_const(col[i]), &ok);
		s->val[m->id] = view_dup(lw, &slice);
		if (m->nin > 2) {
			CgView *bv = value(lw, s, m->in[2]);
			if (!bv)
				return false;
			Leaves l = {0};
			leaf_add(lw, &l, m->in[2], bv);
			lw->at = m;
			bool made = map_step(lw, m->name, "bias", m->in[2], &l, &slice);
			lw->at = n0;
			if (!made)
				return false;
			beta = 1;
		}
	}
	/* B: the first weight, transposed, as wide as all of them */
	CgView *w0 = value(lw, s, n0->in[1]);
	if (!w0)
		return false;
	IrDim k = w0->dim[1];
	CgView A = *xv, B = *w0;
	B.dim[0] = k;
	B.dim[1] = ir_dim_const(total);
	B.stride[0] = ir_dim_const(1);
	B.stride[1] = k;
	int nb = C->ndim - 2;
	IrDim bd[IR_MAX_DIMS + 2];
	for (int i = 0; i < C->ndim; i++)
		bd[i] = C->dim[i];
	bd[nb] = k;
	if (!cg_view_broadcast(&B, C->ndim, bd))
		return fail(lw, n0->span, "internal error: %s: B does not broadcast", n0->name);
	CgStep *st = gemm_step(lw, n0, x, A, n0->in[1], B, *C, beta);
	if (!st)
		return false;
	st->name = name;
	st->module = ir_common_module(lw->ir, gr->m, gr->n);
	StrBuf mb = {0};
	for (int i = 0; i < gr->n; i++)
		sb_printf(&mb, "%s%s", i ? "+" : "", gr->m[i]->name);
	st->members = arena_strdup(lw->a, mb.data);
	sb_free(&mb);
	st->ngroup = gr->n;
	for (int i = 0; i < gr->n; i++) {
		CgView *wv = value(lw, s, gr->m[i]->in[1]);
		if (!wv)
			return false;
		st->gb[i] = *wv;
		st->gn[i] = gr->m[i]->in[1]->shape.d[0];
		st->gc[i] = ir_dim_const(col[i]);
	}
	return true;
}

/* ---- reductions, gathers, cat ------------------------------------------------------------ */

static bool lower_reduce(Lower *lw, Scope *s, IrNode *n)
{
	IrNode *x = n->in[0];
	CgView *xv = value(lw, s, x);
	if (!xv)
		return false;
	int nd = x->shape.ndim;
	bool red[IR_MAX_DIMS] = {0};
	for (int i = 0; i < n->niattr; i++)
		red[ir_axis(n->iattr[i], nd)] = true;
	if (n->niattr == 0)
		for (int i = 0; i < nd; i++)
			red[i] = true;
	/* kept dims first, reduced dims last */
	CgView P = *xv;
	int j = 0, nkeep = 0;
	for (int i = 0; i < nd; i++)
		if (!red[i]) {
			P.dim[j] = xv->dim[i];
			P.stride[j++] = xv->stride[i];
		}
	nkeep = j;
	for (int i = 0; i < nd; i++)
		if (red[i]) {
			P.dim[j] = xv->dim[i];
			P.stride[j++] = xv->stride[i];
		}
	/* reduced dims (ones aside) must walk as one */
	bool one = true;
	int prev = -1;
	for (int i = nkeep; i < nd; i++) {
		if (cg_dim_is(P.dim[i], 1))
			continue;
		if (prev >= 0)
			one &= ir_dim_eq(P.stride[prev], cg_dim_mul(P.stride[i], P.dim[i]));
		prev = i;
	}
	if (!one) {
		CgView *c = materialize(lw, x, &P, "copy");
		if (!c)
			return false;
		P = *c;
	}
	IrDim len = ir_dim_const(1), lst = ir_dim_const(0);
	for (int i = nkeep; i < nd; i++) {
		len = cg_dim_mul(len, P.dim[i]);
		if (!cg_dim_is(P.dim[i], 1))
			lst = P.stride[i];
	}
	P.ndim = nkeep + 1;
	P.dim[nkeep] = len;
	P.stride[nkeep] = lst;
	CgView *out = new_temp(lw, &n->shape, n->dtype, n->name);
	s->val[n->id] = out;
	CgStep *st = new_step(lw, CG_REDUCE, n->name, ir_ops[n->op].name, 2);
	st->rop = n->op;
	st->type = cg_compute_type(n->dtype);
	st->expr.root = x;
	st->ndim = nkeep + 1;
	for (int i = 0; i <= nkeep; i++)
		st->dim[i] = P.dim[i];
	/* the result over the kept dims, stride 0 along the row */
	IrShape ks = {.ndim = nkeep};
	for (int i = 0; i < nkeep; i++)
		ks.d[i] = P.dim[i];
	CgView o = cg_view_contig(out->buf, &ks);
	o.ndim = nkeep + 1;
	o.dim[nkeep] = len;
	o.stride[nkeep] = ir_dim_const(0);
	st->views[0] = o;
	st->views[1] = P;
	cg_views_collapse(&st->ndim, st->dim, st->views, 2, 1);
	return true;
}

/* The graph input an index tensor comes from (through views), or NULL. */
static const IrNode *source_input(const IrNode *x)
{
	while (x && cg_cpu_ops[x->op].kind == CGK_VIEW)
		x = x->in[0];
	return x && x->op == OP_INPUT ? x : NULL;
}

static bool lower_gather(Lower *lw, Scope *s, IrNode *n)
{
	IrNode *ids = n->in[0], *tab = n->in[1];
	CgView *iv = value(lw, s, ids), *tv = value(lw, s, tab);
	if (!iv || !tv)
		return false;
	CgView T = *tv;
	if (!cg_dim_is(T.stride[1], 1) && !cg_dim_is(T.dim[1], 1)) {
		CgView *c = materialize(lw, tab, tv, "copy");
		if (!c)
			return false;
		T = *c;
	}
	CgView *out = new_temp(lw, &n->shape, n->dtype, n->name);
	s->val[n->id] = out;
	CgStep *st = new_step(lw, CG_GATHER, n->name, "embedding", 3);
	const IrNode *src = source_input(ids);
	st->object = src ? (src->sattr ? src->sattr : src->name) : ids->name;
	st->rows = T.dim[0];
	st->type = IR_F32;
	st->ndim = iv->ndim;
	for (int i = 0; i < iv->ndim; i++)
		st->dim[i] = iv->dim[i];
	/* the result as rows: [ids..., D] */
	st->views[0] = *out;
	st->views[1] = *iv;
	st->views[2] = T;
	int nd = st->ndim;
	cg_views_collapse(&nd, st->dim, &st->views[1], 1, 0);
	st->ndim = nd;
	return true;
}

static bool lower_cat(Lower *lw, Scope *s, IrNode *n)
{
	int a = ir_axis(n->iattr[0], n->shape.ndim);
	CgView *out = new_temp(lw, &n->shape, n->dtype, n->name);
	s->val[n->id] = out;
	CgPoly at = {0};
	for (int i = 0; i < n->nin; i++) {
		IrNode *x = n->in[i];
		CgView dst = *out;
		bool ok = true;
		for (int t = 0; t < at.n; t++)
			cg_poly_add(&dst.off, cg_dim_mul(at.t[t], out->stride[a]), &ok);
		dst.dim[a] = x->shape.d[a];
		cg_poly_add(&at, x->shape.d[a], &ok);
		if (!ok)
			return fail(lw, n->span, "%s: offsets too complex for one kernel", n->name);
		Leaves l = {0};
		if (x->op != OP_CONST) {
			CgView *xv = value(lw, s, x);
			if (!xv)
				return false;
			leaf_add(lw, &l, x, xv);
		}
		if (!map_step(lw, n->name, "cat", x, &l, &dst))
			return false;
	}
	return true;
}

/* ---- graphs ------------------------------------------------------------------------------- */

static bool lower_node(Lower *lw, Scope *s, IrNode *n)
{
	switch (cg_cpu_ops[n->op].kind) {
	case CGK_SOURCE:
		if (n->op == OP_ARANGE) {
			CgView *out = new_temp(lw, &n->shape, n->dtype, n->name);
			s->val[n->id] = out;
			Leaves l = {0};
			CgView v = arange_view(n);
			leaf_add(lw, &l, n, &v);
			return map_step(lw, n->name, "arange", n, &l, out);
		}
		return true; /* const: folded; input, param: bound by the caller */
	case CGK_ELEM:
		if (n->op == OP_DROPOUT) /* identity at inference */
			return lower_view(lw, s, n);
		return lower_elem(lw, s, n);
	case CGK_VIEW:
		return lower_view(lw, s, n);
	case CGK_GEMM:
		if (s->groups && s->groups[n->id]) {
			if (s->groups[n->id]->m[0] == n)
				return lower_linear_group(lw, s, s->groups[n->id]);
			return true; /* computed with the group's first linear */
		}
		return lower_gemm(lw, s, n);
	case CGK_ROW:
		return lower_row(lw, s, n);
	case CGK_REDUCE:
		return lower_reduce(lw, s, n);
	case CGK_GATHER:
		return lower_gather(lw, s, n);
	case CGK_CAT:
		return lower_cat(lw, s, n);
	case CGK_CALL:
		return lower_fused(lw, s, n);
	case CGK_NONE:
		break;
	}
	return fail(lw, n->span, "the CPU code generator does not support op '%s' yet",
	            ir_ops[n->op].name);
}

/* Lower a body with its inputs bound to args; *result: its output. */
static bool lower_graph(Lower *lw, const IrGraph *g, CgView **args, CgView **result)
{
	Scope s = {.g = g, .val = ARENA_ARRAY(lw->a, CgView *, g->next_id + 1)};
	for (int i = 0; i < g->inputs.len; i++) {
		const IrNode *x = g->inputs.items[i];
		s.val[x->id] = args[i];
	}
	for (IrNode *x = g->first; x; x = x->next) {
		if (x->op == OP_INPUT)
			continue;
		if (x->op == OP_PARAM)
			return fail(lw, x->span, "%s: parameters inside a kernel body are not supported",
			            x->name);
		if (!lower_node(lw, &s, x))
			return false;
	}
	if (g->outputs.len != 1)
		return fail(lw, (Span){0}, "internal error: body %s must return one value", g->name);
	*result = value(lw, &s, g->outputs.items[0]);
	return *result != NULL;
}

/* ---- the model ------------------------------------------------------------------------------ */

static CgTensor *tensor(Lower *lw, const char *name, IrDType t, const IrShape *s)
{
	CgTensor *x = ARENA_NEW(lw->a, CgTensor);
	x->name = name;
	x->dtype = cg_storage_type(t);
	x->shape = *s;
	x->tied_to = -1;
	return x;
}

static int param_index(const CgProgram *p, const char *name)
{
	for (int i = 0; i < p->params.len; i++)
		if (strcmp(((CgTensor *)p->params.items[i])->name, name) == 0)
			return i;
	return -1;
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && strcmp(s + n - m, suf) == 0;
}

static int param_init(const CgModel *m, const char *path)
{
	for (int i = 0; i < m->nones; i++)
		if (strcmp(m->ones[i], path) == 0)
			return 2; /* RT_INIT_ONES */
	if (has_suffix(path, "bias") || strcmp(path, "bias") == 0)
		return 1; /* RT_INIT_ZEROS */
	return 0;     /* RT_INIT_NORMAL */
}

/* Symbols from the inputs' dims; every other dim must use only these. */
static bool bind_syms(Lower *lw, const IrGraph *g)
{
	CgProgram *p = lw->p;
	for (int i = 0; i < IR_MAX_SYMS; i++)
		p->sym_index[i] = -1;
	for (int i = 0; i < g->inputs.len; i++) {
		const IrNode *x = g->inputs.items[i];
		for (int k = 0; k < x->shape.ndim; k++) {
			IrDim d = x->shape.d[k];
			int sym;
			if (ir_dim_is_const(d))
				continue;
			if (!ir_dim_plain_sym(d, &sym)) {
				StrBuf b = {0};
				ir_dim_print(&b, lw->ir, d);
				fail(lw, x->span, "input dims must be constants or single symbols, not %s",
				     b.data);
				sb_free(&b);
				return false;
			}
			if (p->sym_index[sym] < 0) {
				p->sym_index[sym] = p->nsyms;
				p->sym_ir[p->nsyms] = sym;
				p->sym_max[p->nsyms] = -1;
				p->nsyms++;
			}
		}
	}
	for (const IrNode *x = g->first; x; x = x->next)
		for (int k = 0; k < x->shape.ndim; k++)
			for (int q = 0; q < IR_MAX_SYMS; q++)
				if (x->shape.d[k].pow[q] && p->sym_index[q] < 0)
					return fail(lw, x->span,
					            "symbolic dim '%s' is not the size of any model input",
					            q < lw->ir->nsyms ? lw->ir->sym_names[q] : "?");
	return true;
}

/* Ranges the runtime checks: ids feeding embeddings, position tables. */
static void derive_limits(Lower *lw, const IrGraph *g)
{
	CgProgram *p = lw->p;
	for (const IrNode *x = g->first; x; x = x->next) {
		if (x->op != OP_EMBEDDING || !ir_dim_is_const(x->in[1]->shape.d[0]))
			continue;
		int64_t rows = x->in[1]->shape.d[0].coef;
		const IrNode *src = x->in[0];
		while (src && cg_cpu_ops[src->op].kind == CGK_VIEW)
			src = src->in[0];
		if (src && src->op == OP_INPUT) {
			for (int i = 0; i < g->inputs.len; i++) {
				CgTensor *t = p->inputs.items[i];
				if (g->inputs.items[i] == src && (t->value_max == 0 || rows < t->value_max))
					t->value_max = rows;
			}
		}
		int sym;
		if (src && src->op == OP_ARANGE && ir_dim_plain_sym(src->dattr[0], &sym) &&
		    p->sym_index[sym] >= 0) {
			int64_t *mx = &p->sym_max[p->sym_index[sym]];
			if (*mx < 0 || rows < *mx)
				*mx = rows;
		}
	}
}

static bool add_ties(Lower *lw, const CgModel *m)
{
	CgProgram *p = lw->p;
	for (int i = 0; i < m->nties; i++) {
		const char *a = m->ties[2 * i], *b = m->ties[2 * i + 1];
		int ia = param_index(p, a), ib = param_index(p, b);
		if (ia < 0 && ib < 0)
			continue; /* neither is used by this graph */
		if (ia < 0) { /* an alias name for loading */
			CgTensor *t = p->params.items[ib];
			CgTensor *x = tensor(lw, a, t->dtype, &t->shape);
			x->init = t->init;
			ia = p->params.len;
			ptrvec_push(lw->a, &p->params, x);
		} else if (ib < 0) { /* a checkpoint name that holds a's storage */
			CgTensor *t = p->params.items[ia];
			CgTensor *x = tensor(lw, b, t->dtype, &t->shape);
			x->init = t->init;
			ib = p->params.len;
			ptrvec_push(lw->a, &p->params, x);
		}
		CgTensor *ta = p->params.items[ia], *tb = p->params.items[ib];
		while (tb->tied_to >= 0) {
			ib = tb->tied_to;
			tb = p->params.items[ib];
		}
		if (ia == ib || ta->tied_to >= 0)
			continue;
		if (!ir_shape_eq(&ta->shape, &tb->shape) || ta->dtype != tb->dtype) {
			diag_plain(lw->p->diag, DIAG_ERROR,
			           "tie(\"%s\", \"%s\"): the parameters differ in shape or dtype", a, b);
			return false;
		}
		ta->tied_to = ib;
		/* whatever was tied to a now follows b */
		for (int k = 0; k < p->params.len; k++) {
			CgTensor *t = p->params.items[k];
			if (t->tied_to == ia)
				t->tied_to = ib;
		}
	}
	return true;
}

static bool lower_outputs(Lower *lw, const IrGraph *g, Scope *s)
{
	CgProgram *p = lw->p;
	for (int i = 0; i < g->outputs.len; i++) {
		IrNode *o = g->outputs.items[i];
		lw->at = o;
		const char *name = i < g->output_names.len && g->output_names.items[i]
		                           ? g->output_names.items[i]
		                           : o->name;
		for (int k = 0; k < o->shape.ndim; k++) {
			int sym;
			if (ir_dim_is_const(o->shape.d[k]) || ir_dim_plain_sym(o->shape.d[k], &sym))
				continue;
			StrBuf b = {0};
			ir_shape_print(&b, lw->ir, &o->shape);
			fail(lw, o->span,
			     "output dims must be constants or single symbols (%s): view the output "
			     "so that each symbol stands alone",
			     b.data);
			sb_free(&b);
			return false;
		}
		ptrvec_push(lw->a, &p->outputs, tensor(lw, name, o->dtype, &o->shape));
		CgView *v = value(lw, s, o);
		if (!v)
			return false;
		CgBuf *b = v->buf >= 0 ? p->bufs.items[v->buf] : NULL;
		bool reuse = b && b->kind == CG_BUF_TEMP && cg_view_is_contig(v) &&
		             ir_dim_eq(b->numel, ir_shape_numel(&o->shape)) &&
		             b->dtype == cg_storage_type(o->dtype);
		if (reuse) {
			b->kind = CG_BUF_OUTPUT;
			b->index = i;
			continue;
		}
		CgBuf *ob = new_buf(lw, CG_BUF_OUTPUT, i, o->dtype, ir_shape_numel(&o->shape), name);
		CgView dst = cg_view_contig(ob->id, &o->shape);
		Leaves l = {0};
		if (o->op != OP_CONST)
			leaf_add(lw, &l, o, v);
		if (!map_step(lw, o->name, "output", o, &l, &dst))
			return false;
	}
	return true;
}

static bool add_param(Lower *lw, const CgModel *m, const IrNode *x)
{
	const char *path = x->sattr ? x->sattr : x->name;
	if (param_index(lw->p, path) >= 0)
		return true;
	if (!ir_dtype_is_float(x->dtype))
		return fail(lw, x->span, "parameter %s: only float parameters are supported", path);
	CgTensor *t = tensor(lw, path, x->dtype, &x->shape);
	t->init = param_init(m, path);
	ptrvec_push(lw->a, &lw->p->params, t);
	return true;
}

static const char *input_fill_name(const char *name, int *fill)
{
	*fill = SLAPO_FILL_NONE;
	if (strcmp(name, "attention_mask") == 0)
		*fill = SLAPO_FILL_ONES;
	else if (strcmp(name, "token_type_ids") == 0)
		*fill = SLAPO_FILL_ZEROS;
	return name;
}

bool cg_lower(CgProgram *p, const CgModel *m)
{
	IrGraph *g = m->graph;
	Lower lw = {.p = p, .a = p->arena, .ir = p->ir};
	p->model = m;
	if (!bind_syms(&lw, g))
		return false;
	Scope s = {.g = g, .val = ARENA_ARRAY(lw.a, CgView *, g->next_id + 1)};
	for (int i = 0; i < g->inputs.len; i++) {
		IrNode *x = g->inputs.items[i];
		const char *name = x->sattr ? x->sattr : x->name;
		CgTensor *t = tensor(&lw, name, x->dtype, &x->shape);
		input_fill_name(name, &t->fill);
		ptrvec_push(lw.a, &p->inputs, t);
		CgBuf *b = new_buf(&lw, CG_BUF_INPUT, i, x->dtype, ir_shape_numel(&x->shape), name);
		CgView v = cg_view_contig(b->id, &x->shape);
		s.val[x->id] = view_dup(&lw, &v);
	}
	s.groups = find_groups(&lw, g);
	/* a group's weights go next to each other: the runtime stores params
	 * in order, so they can be one GEMM operand */
	Group **wgroup = ARENA_ARRAY(lw.a, Group *, g->next_id + 1); /* weight -> group */
	for (IrNode *x = g->first; x; x = x->next)
		if (x->op == OP_LINEAR && s.groups[x->id])
			wgroup[x->in[1]->id] = s.groups[x->id];
	for (IrNode *x = g->first; x; x = x->next) {
		if (x->op != OP_PARAM)
			continue;
		if (wgroup[x->id])
			for (int i = 0; i < wgroup[x->id]->n; i++)
				if (!add_param(&lw, m, wgroup[x->id]->m[i]->in[1]))
					return false;
		if (!add_param(&lw, m, x))
			return false;
	}
	for (IrNode *x = g->first; x; x = x->next) {
		if (x->op != OP_PARAM)
			continue;
		const char *path = x->sattr ? x->sattr : x->name;
		int idx = param_index(p, path);
		CgBuf *b = NULL;
		for (int k = 0; k < p->bufs.len && !b; k++) {
			CgBuf *c = p->bufs.items[k];
			if (c->kind == CG_BUF_PARAM && c->index == idx)
				b = c;
		}
		if (!b)
			b = new_buf(&lw, CG_BUF_PARAM, idx, x->dtype, ir_shape_numel(&x->shape), path);
		CgView v = cg_view_contig(b->id, &x->shape);
		s.val[x->id] = view_dup(&lw, &v);
	}
	derive_limits(&lw, g);
	if (!add_ties(&lw, m))
		return false;
	for (IrNode *x = g->first; x; x = x->next) {
		if (x->op == OP_INPUT || x->op == OP_PARAM)
			continue;
		lw.at = x;
		if (!lower_node(&lw, &s, x))
			return false;
	}
	if (!lower_outputs(&lw, g, &s))
		return false;
	cg_plan(p);
	return !lw.failed;
}
