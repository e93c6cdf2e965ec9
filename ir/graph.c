/* graph.c - dataflow graphs: building nodes, naming them, editing the
 * node list (uses, replace, remove, insert, reorder), cloning, inlining
 * one graph into another, and dead-code elimination.
 *
 * A graph's nodes form a doubly linked list in topological order: every
 * node comes after its inputs. ir_build appends; passes that create
 * nodes elsewhere move them with ir_insert_before, or call ir_toposort
 * once after a batch of edits.
 *
 * Names are unique in a graph and made the way torch.fx makes them: the
 * hint with illegal characters replaced by `_` ("dense.weight" ->
 * dense_weight), then a numeric suffix on a clash (add, add_1, add_2;
 * "layer_0" counts on from its own suffix, as in fx).
 */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* ---- name table ------------------------------------------------------------ */

/* One key: a name in use, or a base whose suffix counter is kept, or both. */
typedef struct NameEnt {
	const char *key;
	bool used;     /* a node has (had) this name */
	int64_t count; /* the last suffix tried for this base */
} NameEnt;

typedef struct NameTab {
	NameEnt *ents; /* open addressing; cap a power of two */
	int cap, len;
} NameTab;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static NameEnt *name_slot(NameEnt *ents, int cap, const char *key)
{
	uint64_t i = hash_str(key) & (uint64_t)(cap - 1);
	while (ents[i].key && strcmp(ents[i].key, key) != 0)
		i = (i + 1) & (uint64_t)(cap - 1);
	return &ents[i];
}

/* The entry for key, created (unused, count 0) if absent. */
static NameEnt *name_get(IrGraph *g, const char *key)
{
	Arena *a = g->ctx->arena;
	NameTab *t = g->names;
	if (!t) {
		t = ARENA_NEW(a, NameTab);
		t->cap = 64;
		t->ents = ARENA_ARRAY(a, NameEnt, t->cap);
		g->names = t;
	}
	if (2 * (t->len + 1) > t->cap) {
		int cap = t->cap * 2;
		NameEnt *ents = ARENA_ARRAY(a, NameEnt, cap);
		for (int i = 0; i < t->cap; i++)
			if (t->ents[i].key)
				*name_slot(ents, cap, t->ents[i].key) = t->ents[i];
		t->ents = ents;
		t->cap = cap;
	}
	NameEnt *e = name_slot(t->ents, t->cap, key);
	if (!e->key) {
		e->key = arena_strdup(a, key);
		t->len++;
	}
	return e;
}

static bool name_used(IrGraph *g, const char *key)
{
	NameTab *t = g->names;
	if (!t)
		return false;
	NameEnt *e = name_slot(t->ents, t->cap, key);
	return e->key && e->used;
}

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_';
}

/* Called for every node made: no malloc (it showed in profiles). */
const char *ir_unique_name(IrGraph *g, const char *hint)
{
	if (!hint || !*hint)
		hint = "_unnamed";
	/* runs of illegal characters become one '_'; a leading digit gets one */
	char *base = arena_alloc(g->ctx->arena, strlen(hint) + 2);
	size_t len = 0;
	if (*hint >= '0' && *hint <= '9')
		base[len++] = '_';
	for (const char *p = hint; *p;) {
		if (name_char(*p)) {
			base[len++] = *p++;
			continue;
		}
		base[len++] = '_';
		while (*p && !name_char(*p))
			p++;
	}
	base[len] = 0;
	/* split a numeric suffix: base_num */
	size_t d = len;
	while (d > 0 && base[d - 1] >= '0' && base[d - 1] <= '9')
		d--;
	int64_t num = -1;
	if (d < len && d > 0 && base[d - 1] == '_' && len - d <= 15) {
		num = strtoll(base + d, NULL, 10);
		base[d - 1] = 0;
		len = d - 1;
	}
	/* candidates: base, then base_NUM (NUM has at most 20 digits) */
	char small[128];
	size_t size = len + 24;
	char *cand = size <= sizeof small ? small : arena_alloc(g->ctx->arena, size);
	if (num < 0)
		memcpy(cand, base, len + 1);
	else
		snprintf(cand, size, "%s_%lld", base, (long long)num);
	if (num < 0)
		num = name_get(g, base)->count;
	while (name_used(g, cand)) {
		num++;
		snprintf(cand, size, "%s_%lld", base, (long long)num);
	}
	NameEnt *e = name_get(g, cand);
	e->used = true;
	const char *r = e->key;
	name_get(g, base)->count = num;
	return r;
}

/* ---- the node list ------------------------------------------------------------ */

IrGraph *ir_graph_new(IrCtx *c, const char *name)
{
	IrGraph *g = ARENA_NEW(c->arena, IrGraph);
	g->ctx = c;
	g->name = arena_strdup(c->arena, name ? name : "graph");
	return g;
}

static bool linked(const IrGraph *g, const IrNode *n)
{
	return n->prev || n->next || g->first == n;
}

static void unlink_node(IrGraph *g, IrNode *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		g->first = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		g->last = n->prev;
	n->prev = n->next = NULL;
	g->nnodes--;
}

static void link_before(IrGraph *g, IrNode *pos, IrNode *n)
{
	if (!pos) {
		n->prev = g->last;
		n->next = NULL;
		if (g->last)
			g->last->next = n;
		else
			g->first = n;
		g->last = n;
	} else {
		n->next = pos;
		n->prev = pos->prev;
		if (pos->prev)
			pos->prev->next = n;
		else
			g->first = n;
		pos->prev = n;
	}
	g->nnodes++;
}

void ir_insert_before(IrGraph *g, IrNode *pos, IrNode *n)
{
	if (pos == n)
		return;
	if (linked(g, n))
		unlink_node(g, n);
	link_before(g, pos, n);
}

void ir_add_output(IrGraph *g, IrNode *n, const char *name)
{
	if (!n)
		return; /* an earlier error */
	ptrvec_push(g->ctx->arena, &g->outputs, n);
	ptrvec_push(g->ctx->arena, &g->output_names,
	            (void *)arena_strdup(g->ctx->arena, name ? name : n->name));
}

/* ---- building ------------------------------------------------------------------- */

IrNode *ir_build(IrGraph *g, IrOp op, IrNode **in, int nin, const IrAttrs *at, Span sp,
                 const char *hint)
{
	IrCtx *c = g->ctx;
	IrAttrs none;
	if (!at) {
		memset(&none, 0, sizeof none);
		at = &none;
	}
	if ((unsigned)op >= OP_COUNT) {
		diag_error(c->diag, sp, "internal error: unknown op %d", (int)op);
		return NULL;
	}
	const IrOpInfo *info = &ir_ops[op];
	if (nin < 0 || (nin > 0 && !in))
		return NULL;
	for (int i = 0; i < nin; i++)
		if (!in[i])
			return NULL; /* an earlier error */
	int min = (info->flags & OPF_CALL) ? 0 : 1;
	if ((info->arity >= 0 && nin != info->arity) || (info->arity < 0 && nin < min)) {
		if (info->arity >= 0)
			diag_error(c->diag, sp, "%s: expects %d input%s, got %d",
			           info->name, info->arity, info->arity == 1 ? "" : "s",
			           nin);
		else
			diag_error(c->diag, sp, "%s: expects at least one input",
			           info->name);
		return NULL;
	}
	if (at->niattr < 0 || at->niattr > IR_MAX_DIMS || at->ndattr < 0 ||
	    at->ndattr > IR_MAX_DIMS) {
		diag_error(c->diag, sp, "%s: more than %d attribute values", info->name,
		           IR_MAX_DIMS);
		return NULL;
	}
	IrNode *n = ARENA_NEW(c->arena, IrNode);
	n->op = op;
	n->span = sp;
	n->nin = nin;
	n->in = nin ? ARENA_ARRAY(c->arena, IrNode *, nin) : NULL;
	if (nin)
		memcpy(n->in, in, sizeof(IrNode *) * (size_t)nin);
	memcpy(n->iattr, at->iattr, sizeof n->iattr);
	n->niattr = at->niattr;
	memcpy(n->dattr, at->dattr, sizeof n->dattr);
	n->ndattr = at->ndattr;
	n->fattr = at->fattr;
	n->flags = at->flags;
	n->sattr = at->sattr ? arena_strdup(c->arena, at->sattr) : NULL;
	n->sub = at->sub;
	n->module = at->module;
	if (info->flags & OPF_SOURCE) {
		n->dtype = at->dtype;
		n->shape = at->shape;
	}
	if (!info->shape(c, n))
		return NULL;
	if (!hint && (op == OP_INPUT || op == OP_PARAM || (info->flags & OPF_CALL)))
		hint = n->sattr;
	n->name = ir_unique_name(g, hint ? hint : info->name);
	n->id = g->next_id++;
	if (op == OP_INPUT && !n->sattr)
		n->sattr = n->name;
	link_before(g, NULL, n);
	return n;
}

/* ---- uses ----------------------------------------------------------------------- */

static bool uses(const IrNode *user, const IrNode *n)
{
	for (int i = 0; i < user->nin; i++)
		if (user->in[i] == n)
			return true;
	return false;
}

int ir_node_uses(const IrGraph *g, const IrNode *n, IrNode ***users)
{
	int count = 0;
	for (IrNode *u = g->first; u; u = u->next)
		if (uses(u, n))
			count++;
	if (users) {
		*users = count ? ARENA_ARRAY(g->ctx->arena, IrNode *, count) : NULL;
		int k = 0;
		for (IrNode *u = g->first; u; u = u->next)
			if (uses(u, n))
				(*users)[k++] = u;
	}
	return count;
}

static bool is_output(const IrGraph *g, const IrNode *n)
{
	for (int i = 0; i < g->outputs.len; i++)
		if (g->outputs.items[i] == n)
			return true;
	return false;
}

void ir_replace_uses(IrGraph *g, IrNode *from, IrNode *to)
{
	for (IrNode *u = g->first; u; u = u->next) {
		if (u == to)
			continue;
		for (int i = 0; i < u->nin; i++)
			if (u->in[i] == from)
				u->in[i] = to;
	}
	for (int i = 0; i < g->outputs.len; i++)
		if (g->outputs.items[i] == from)
			g->outputs.items[i] = to;
}

static void drop_input(IrGraph *g, IrNode *n)
{
	int k = 0;
	for (int i = 0; i < g->inputs.len; i++)
		if (g->inputs.items[i] != n)
			g->inputs.items[k++] = g->inputs.items[i];
	g->inputs.len = k;
}

void ir_node_remove(IrGraph *g, IrNode *n)
{
	if (ir_node_uses(g, n, NULL) || is_output(g, n)) {
		diag_plain(
		        g->ctx->diag, DIAG_ERROR,
		        "internal error: removing %%%s from graph %s while it is still used",
		        n->name, g->name);
		return;
	}
	if (!linked(g, n))
		return;
	unlink_node(g, n);
	if (n->op == OP_INPUT)
		drop_input(g, n);
}

void ir_dce(IrGraph *g)
{
	int *nuse = calloc((size_t)g->next_id + 1, sizeof *nuse);
	if (!nuse)
		return;
	for (IrNode *n = g->first; n; n = n->next)
		for (int i = 0; i < n->nin; i++)
			if (n->in[i]->id >= 0 && n->in[i]->id < g->next_id)
				nuse[n->in[i]->id]++;
	for (int i = 0; i < g->outputs.len; i++) {
		IrNode *o = g->outputs.items[i];
		if (o->id >= 0 && o->id < g->next_id)
			nuse[o->id]++;
	}
	/* users follow their inputs, so one backward sweep removes whole chains */
	for (IrNode *n = g->last, *prev; n; n = prev) {
		prev = n->prev;
		if (n->op == OP_INPUT ||
		    (n->id >= 0 && n->id < g->next_id && nuse[n->id]))
			continue;
		for (int i = 0; i < n->nin; i++)
			if (n->in[i]->id >= 0 && n->in[i]->id < g->next_id)
				nuse[n->in[i]->id]--;
		unlink_node(g, n);
	}
	free(nuse);
}

void ir_toposort(IrGraph *g)
{
	int n = g->next_id;
	if (n <= 0)
		return;
	/* already in order? */
	char *state = calloc((size_t)n, 1); /* 0 new, 1 on the stack, 2 placed */
	IrNode **order = malloc(sizeof(IrNode *) * (size_t)(g->nnodes + 1));
	IrNode **stack = malloc(sizeof(IrNode *) * (size_t)(g->nnodes + 1));
	int *next_in = calloc((size_t)n, sizeof(int));
	if (!state || !order || !stack || !next_in)
		goto out;
	bool sorted = true;
	for (IrNode *x = g->first; x && sorted; x = x->next) {
		for (int i = 0; i < x->nin; i++)
			if (x->in[i]->id < 0 || x->in[i]->id >= n ||
			    state[x->in[i]->id] != 2)
				sorted = false;
		if (x->id >= 0 && x->id < n)
			state[x->id] = 2;
	}
	if (sorted)
		goto out;
	memset(state, 0, (size_t)n);
	int norder = 0;
	/* each node, in list order, is placed after its (recursively placed)
	 * inputs: depth-first, post-order, with an explicit stack */
	for (IrNode *x = g->first; x; x = x->next) {
		if (x->id < 0 || x->id >= n || state[x->id])
			continue;
		int sp = 0;
		stack[sp++] = x;
		state[x->id] = 1;
		while (sp) {
			IrNode *t = stack[sp - 1];
			if (next_in[t->id] < t->nin) {
				IrNode *u = t->in[next_in[t->id]++];
				if (u->id < 0 || u->id >= n || state[u->id])
					continue; /* placed, or a cycle (left to the verifier) */
				if (sp > g->nnodes)
					goto out; /* input not in this graph */
				state[u->id] = 1;
				stack[sp++] = u;
				continue;
			}
			if (norder == g->nnodes)
				goto out; /* inputs outside the graph */
			state[t->id] = 2;
			order[norder++] = t;
			sp--;
		}
	}
	if (norder != g->nnodes)
		goto out; /* inputs outside the graph: leave it for the verifier */
	g->first = g->last = NULL;
	g->nnodes = 0;
	for (int i = 0; i < norder; i++)
		link_before(g, NULL, order[i]);
out:
	free(state);
	free(order);
	free(stack);
	free(next_in);
}

/* ---- clone and inline ---------------------------------------------------------- */

IrGraph *ir_graph_clone(IrCtx *c, const IrGraph *g)
{
	IrGraph *r = ir_graph_new(c, g->name);
	int n = g->next_id;
	IrNode **map = calloc((size_t)n + 1, sizeof *map);
	if (!map)
		return r;
	for (IrNode *x = g->first; x; x = x->next) {
		IrNode *y = ARENA_NEW(c->arena, IrNode);
		*y = *x;
		y->prev = y->next = NULL;
		y->aux = NULL;
		y->in = x->nin ? ARENA_ARRAY(c->arena, IrNode *, x->nin) : NULL;
		for (int i = 0; i < x->nin; i++) {
			int id = x->in[i]->id;
			y->in[i] = id >= 0 && id < n && map[id] ? map[id] : x->in[i];
		}
		y->name = ir_unique_name(r, x->name);
		if (x->id >= 0 && x->id < n)
			map[x->id] = y;
		link_before(r, NULL, y);
	}
	r->next_id = g->next_id;
	for (int i = 0; i < g->inputs.len; i++) {
		IrNode *x = g->inputs.items[i];
		ptrvec_push(c->arena, &r->inputs, map[x->id] ? map[x->id] : x);
	}
	for (int i = 0; i < g->outputs.len; i++) {
		IrNode *x = g->outputs.items[i];
		ptrvec_push(c->arena, &r->outputs, map[x->id] ? map[x->id] : x);
	}
	for (int i = 0; i < g->output_names.len; i++)
		ptrvec_push(c->arena, &r->output_names, g->output_names.items[i]);
	free(map);
	return r;
}

IrAttrs ir_node_attrs(const IrNode *n)
{
	IrAttrs a;
	memset(&a, 0, sizeof a);
	memcpy(a.iattr, n->iattr, sizeof a.iattr);
	a.niattr = n->niattr;
	memcpy(a.dattr, n->dattr, sizeof a.dattr);
	a.ndattr = n->ndattr;
	a.fattr = n->fattr;
	a.flags = n->flags;
	a.sattr = n->sattr;
	a.sub = n->sub;
	a.module = n->module;
	a.dtype = n->dtype;
	a.shape = n->shape;
	return a;
}

bool ir_inline(IrGraph *g, IrNode *pos, const IrGraph *sub, IrNode **args,
               const char *prefix, IrNode **outs)
{
	IrCtx *c = g->ctx;
	int n = sub->next_id;
	IrNode **map = calloc((size_t)n + 1, sizeof *map);
	PtrVec made = {0};
	IrNode **ins = NULL;
	bool ok = false;
	if (!map)
		return false;
	for (int i = 0; i < sub->inputs.len; i++) {
		IrNode *x = sub->inputs.items[i];
		if (x->id >= 0 && x->id < n)
			map[x->id] = args[i];
	}
	for (IrNode *x = sub->first; x; x = x->next) {
		if (x->op == OP_INPUT) {
			if (x->id < 0 || x->id >= n || !map[x->id]) {
				diag_error(
				        c->diag, x->span,
				        "internal error: input %%%s of graph %s is not bound",
				        x->name, sub->name);
				goto out;
			}
			continue;
		}
		ins = realloc(ins, sizeof(IrNode *) * (size_t)(x->nin + 1));
		for (int i = 0; i < x->nin; i++) {
			int id = x->in[i]->id;
			ins[i] = id >= 0 && id < n ? map[id] : NULL;
			if (!ins[i]) {
				diag_error(
				        c->diag, x->span,
				        "internal error: %%%s of graph %s uses a node outside it",
				        x->name, sub->name);
				goto out;
			}
		}
		IrAttrs at = ir_node_attrs(x);
		const char *hint = x->name;
		if ((x->op == OP_PARAM || x->op == OP_CALL) && x->sattr) {
			if (prefix && *prefix)
				at.sattr =
				        arena_printf(c->arena, "%s.%s", prefix, x->sattr);
			hint = at.sattr;
		}
		IrNode *y = ir_build(g, x->op, ins, x->nin, &at, x->span, hint);
		if (!y)
			goto out;
		if (pos)
			ir_insert_before(g, pos, y);
		ptrvec_push(c->arena, &made, y);
		map[x->id] = y;
	}
	for (int i = 0; i < sub->outputs.len; i++) {
		IrNode *o = sub->outputs.items[i];
		outs[i] = o->id >= 0 && o->id < n ? map[o->id] : NULL;
		if (!outs[i]) {
			diag_plain(c->diag, DIAG_ERROR,
			           "internal error: output %d of graph %s is not in it",
			           i, sub->name);
			goto out;
		}
	}
	ok = true;
out:
	if (!ok) /* take back what was copied, users first */
		for (int i = made.len - 1; i >= 0; i--)
			ir_node_remove(g, made.items[i]);
	free(ins);
	free(map);
	return ok;
}
