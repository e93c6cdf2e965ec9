/* verify.c - structural checks of a graph, run between passes.
 *
 * The node list is well linked and counted; ids and names are unique;
 * each node has its op's arity, its inputs are in the graph and come
 * before it; re-running its shape rule (on a copy, messages captured)
 * gives the dtype and shape it carries; graph inputs are input nodes of
 * the graph, outputs are nodes of the graph; bodies of fused and called
 * nodes pass the same checks. The first failure is reported as
 *
 *   slapoc: error: internal error: graph G invalid after PASS: what
 *
 * and ir_verify returns false.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

typedef struct Ver {
	const IrGraph *top; /* the graph ir_verify was called on */
	const char *after;
	bool failed;
	/* where shape rules re-run by reinfer write their messages: one
	 * stream for the whole check (opening one per node was most of the
	 * cost of a check), read only when a rule fails */
	FILE *mem;
	char *text;
	size_t len;
} Ver;

SUP_PRINTF(3, 4)
static bool bad(Ver *v, const IrGraph *g, const char *fmt, ...)
{
	StrBuf b = {0};
	va_list ap;
	va_start(ap, fmt);
	sb_vprintf(&b, fmt, ap);
	va_end(ap);
	diag_plain(v->top->ctx->diag, DIAG_ERROR,
	           "internal error: graph %s invalid after %s: %s", g->name, v->after,
	           b.data ? b.data : "");
	sb_free(&b);
	v->failed = true;
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *type_str(const IrGraph *g, IrDType t, const IrShape *s, StrBuf *b)
{
	b->len = 0;
	ir_type_print(b, g->ctx, t, s);
	return b->data;
}

/* Re-run n's shape rule on a copy; errors go to a buffer, not the user. */
static bool reinfer(Ver *v, const IrGraph *g, const IrNode *n)
{
	IrCtx *c = g->ctx;
	IrNode copy = *n;
	if (!v->mem) {
		v->mem = open_memstream(&v->text, &v->len);
		if (!v->mem) /* cannot capture: skip this check rather than spill */
			return true;
	}
	fflush(v->mem);
	size_t start = v->len;
	Diag quiet;
	diag_init(&quiet, v->mem, c->diag ? c->diag->arena : NULL);
	Diag *saved = c->diag;
	c->diag = &quiet;
	bool ok = ir_ops[n->op].shape(c, &copy);
	c->diag = saved;
	if (!ok) {
		/* the captured message, without its "slapoc: error: " prefix */
		fflush(v->mem);
		const char *msg = v->text && v->len > start ? v->text + start : "";
		const char *p = strstr(msg, "error: ");
		if (p)
			msg = p + 7;
		size_t l = strcspn(msg, "\n");
		bad(v, g, "%%%s: its shape rule now fails: %.*s", n->name, (int)l, msg);
		return false;
	}
	if (copy.dtype != n->dtype || !ir_shape_eq(&copy.shape, &n->shape)) {
		StrBuf a = {0}, b = {0};
		bad(v, g, "%%%s is %s but its inputs give %s", n->name,
		    type_str(g, n->dtype, &n->shape, &a),
		    type_str(g, copy.dtype, &copy.shape, &b));
		sb_free(&a);
		sb_free(&b);
		return false;
	}
	return true;
}

static bool verify_graph(Ver *v, const IrGraph *g, int depth);

static bool verify_nodes(Ver *v, const IrGraph *g, int depth, int *pos,
                         const IrNode **byid, const char **names)
{
	int n = g->next_id, count = 0;
	const IrNode *prev = NULL;
	for (const IrNode *x = g->first; x; prev = x, x = x->next) {
		if (count > g->nnodes)
			return bad(v, g, "the node list is longer than its count %d",
			           g->nnodes);
		if (x->prev != prev)
			return bad(v, g, "the node list is broken at %%%s",
			           x->name ? x->name : "?");
		if (x->id < 0 || x->id >= n)
			return bad(v, g, "%%%s has id %d, not below %d",
			           x->name ? x->name : "?", x->id, n);
		if (byid[x->id])
			return bad(v, g, "%%%s and %%%s share id %d", byid[x->id]->name,
			           x->name ? x->name : "?", x->id);
		if (!x->name)
			return bad(v, g, "node %d has no name", x->id);
		if ((unsigned)x->op >= OP_COUNT)
			return bad(v, g, "%%%s has an invalid op %d", x->name,
			           (int)x->op);
		byid[x->id] = x;
		pos[x->id] = count;
		names[count++] = x->name;
	}
	if (prev != g->last)
		return bad(v, g, "the last node is not the end of the list");
	if (count != g->nnodes)
		return bad(v, g, "the graph counts %d nodes but holds %d", g->nnodes,
		           count);
	qsort(names, (size_t)count, sizeof *names, cmp_str);
	for (int i = 1; i < count; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			return bad(v, g, "two nodes are named %%%s", names[i]);

	for (const IrNode *x = g->first; x; x = x->next) {
		const IrOpInfo *info = &ir_ops[x->op];
		int min = (info->flags & OPF_CALL) ? 0 : 1;
		if ((info->arity >= 0 && x->nin != info->arity) ||
		    (info->arity < 0 && x->nin < min))
			return bad(v, g, "%%%s (%s) has %d inputs", x->name, info->name,
			           x->nin);
		for (int i = 0; i < x->nin; i++) {
			const IrNode *in = x->in[i];
			if (!in)
				return bad(v, g, "input %d of %%%s is missing", i,
				           x->name);
			if (in->id < 0 || in->id >= n || byid[in->id] != in)
				return bad(v, g,
				           "%%%s uses %%%s, which is not in the graph",
				           x->name, in->name ? in->name : "?");
			if (pos[in->id] >= pos[x->id])
				return bad(v, g, "%%%s uses %%%s, which comes after it",
				           x->name, in->name);
		}
		if (x->op == OP_INPUT) {
			bool found = false;
			for (int i = 0; i < g->inputs.len && !found; i++)
				found = g->inputs.items[i] == x;
			if (!found)
				return bad(
				        v, g,
				        "%%%s is an input node but not an input of the graph",
				        x->name);
		}
		if (info->flags & OPF_CALL) {
			if (!x->sub)
				return bad(v, g, "%%%s has no body graph", x->name);
			if (!verify_graph(v, x->sub, depth + 1))
				return false;
		}
		if (!reinfer(v, g, x))
			return false;
	}
	for (int i = 0; i < g->inputs.len; i++) {
		const IrNode *x = g->inputs.items[i];
		if (!x || x->op != OP_INPUT || x->id < 0 || x->id >= n ||
		    byid[x->id] != x)
			return bad(v, g, "input %d is not an input node of the graph", i);
	}
	for (int i = 0; i < g->outputs.len; i++) {
		const IrNode *x = g->outputs.items[i];
		if (!x || x->id < 0 || x->id >= n || byid[x->id] != x)
			return bad(v, g, "output %d (%%%s) is not a node of the graph", i,
			           x && x->name ? x->name : "?");
	}
	return true;
}

static bool verify_graph(Ver *v, const IrGraph *g, int depth)
{
	if (depth > 32)
		return bad(v, g, "bodies nest more than 32 deep (a graph calls itself?)");
	if (g->next_id < 0 || g->nnodes < 0)
		return bad(v, g, "negative node count");
	int *pos = calloc((size_t)g->next_id + 1, sizeof *pos);
	const IrNode **byid = calloc((size_t)g->next_id + 1, sizeof *byid);
	const char **names = calloc((size_t)g->nnodes + 2, sizeof *names);
	bool ok;
	if (!pos || !byid || !names)
		ok = bad(v, g, "out of memory");
	else
		ok = verify_nodes(v, g, depth, pos, byid, names);
	free(pos);
	free(byid);
	free(names);
	return ok;
}

bool ir_verify(const IrGraph *g, const char *after)
{
	Ver v = {.top = g, .after = after ? after : "?"};
	bool ok = verify_graph(&v, g, 0);
	if (v.mem)
		fclose(v.mem);
	free(v.text);
	return ok;
}
