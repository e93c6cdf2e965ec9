/* fuse.c - replace a region of a graph by one node with a body graph.
 *
 * The region must be convex (no path leaves it and comes back: the new
 * node would depend on itself) and have a single output (one value used
 * outside it, or returned by the graph). Its body is a new graph whose
 * inputs are the region's external inputs, in order of first use, named
 * after the nodes they stand for; the region's nodes are copied into it
 * in list order and keep their names. The new node (FUSED or CALL, sattr
 * and name from `name`) takes the external inputs, stands where the
 * region's last node stood, and takes over the output's uses; the
 * region's nodes are then removed.
 */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static void names_of(StrBuf *b, IrNode **v, int n)
{
	for (int i = 0; i < n; i++)
		sb_printf(b, "%s%%%s", i ? ", " : "", v[i]->name);
}

const char *ir_common_module(IrCtx *c, IrNode *const *nodes, int nnodes)
{
	const char *m = nnodes > 0 ? nodes[0]->module : NULL;
	size_t len = m ? strlen(m) : 0;
	for (int i = 1; i < nnodes && m; i++) {
		const char *x = nodes[i]->module;
		size_t k = 0;
		if (!x)
			return NULL;
		while (k < len && x[k] && x[k] == m[k])
			k++;
		bool whole = (k == len || m[k] == '.') && (x[k] == '\0' || x[k] == '.');
		if (!whole) /* back to a whole segment */
			while (k > 0 && m[--k] != '.')
				;
		len = k;
	}
	return m ? arena_strndup(c->arena, m, len) : NULL;
}

int ir_next_kernel_index(const IrGraph *g, const char *name)
{
	int next = 0;
	size_t len = strlen(name);
	for (IrNode *n = g->first; n; n = n->next)
		if ((n->op == OP_FUSED || n->op == OP_CALL) && n->sattr &&
		    strncmp(n->sattr, name, len) == 0 && n->sattr[len] == '_') {
			int i = atoi(n->sattr + len + 1);
			if (i >= next)
				next = i + 1;
		}
	return next;
}

IrNode *ir_fuse(IrGraph *g, IrNode **nodes, int nnodes, IrOp op, const char *name,
                Span sp)
{
	IrCtx *c = g->ctx;
	int n = g->next_id;
	IrNode *res = NULL;
	char *in_region = calloc((size_t)n + 1, 1);
	IrNode **taint =
	        calloc((size_t)n + 1, sizeof *taint); /* region node it depends on */
	IrNode **map = calloc((size_t)n + 1, sizeof *map);
	IrNode **ext = calloc((size_t)n + 1, sizeof *ext);
	IrNode **outs = calloc((size_t)nnodes + 1, sizeof *outs);
	IrNode **ins = NULL;
	int next = 0, nouts = 0;
	if (!in_region || !taint || !map || !ext || !outs) {
		diag_error(c->diag, sp, "cannot fuse: out of memory");
		goto out;
	}
	if (op != OP_FUSED && op != OP_CALL) {
		diag_error(c->diag, sp, "internal error: fusing into %s",
		           ir_ops[op].name);
		goto out;
	}
	if (nnodes < 1) {
		diag_error(c->diag, sp, "cannot fuse: the subgraph is empty");
		goto out;
	}
	for (int i = 0; i < nnodes; i++) {
		IrNode *x = nodes[i];
		bool inside = x && x->id >= 0 && x->id < n;
		IrNode *y = g->first;
		while (inside && y && y != x)
			y = y->next;
		if (!inside || !y) {
			diag_error(c->diag, sp,
			           "cannot fuse: %%%s is not a node of graph %s",
			           x ? x->name : "?", g->name);
			goto out;
		}
		if (in_region[x->id]) {
			diag_error(c->diag, sp, "cannot fuse: %%%s is listed twice",
			           x->name);
			goto out;
		}
		if (x->op == OP_INPUT) {
			diag_error(c->diag, sp,
			           "cannot fuse: %%%s is an input of the graph", x->name);
			goto out;
		}
		in_region[x->id] = 1;
	}

	for (IrNode *x = g->first; x; x = x->next) {
		bool ok = x->id >= 0 && x->id < n;
		for (int i = 0; ok && i < x->nin; i++)
			ok = x->in[i] && x->in[i]->id >= 0 && x->in[i]->id < n;
		if (!ok) {
			diag_error(c->diag, sp,
			           "internal error: graph %s is malformed at %%%s",
			           g->name, x->name);
			goto out;
		}
	}

	/* convexity: walk in list order, tracking which outside nodes depend
	 * on a region node; a region node using such a node closes a cycle */
	IrNode *first = NULL, *last = NULL;
	for (IrNode *x = g->first; x; x = x->next) {
		if (in_region[x->id]) {
			if (!first)
				first = x;
			last = x;
		}
		for (int i = 0; i < x->nin; i++) {
			IrNode *u = x->in[i];
			if (in_region[x->id]) {
				if (!in_region[u->id] && taint[u->id]) {
					diag_error(
					        c->diag, sp,
					        "cannot fuse: the subgraph is not convex: %%%s leaves it and %%%s re-enters it",
					        taint[u->id]->name, u->name);
					goto out;
				}
			} else if (!taint[x->id]) {
				if (in_region[u->id])
					taint[x->id] = u;
				else if (taint[u->id])
					taint[x->id] = taint[u->id];
			}
		}
	}

	/* outputs: region nodes used outside it or returned */
	for (IrNode *x = first; x; x = x->next) {
		if (!in_region[x->id])
			continue;
		bool used = false;
		for (IrNode *u = x->next; u && !used; u = u->next)
			if (!in_region[u->id])
				for (int i = 0; i < u->nin && !used; i++)
					used = u->in[i] == x;
		for (int i = 0; i < g->outputs.len && !used; i++)
			used = g->outputs.items[i] == x;
		if (used)
			outs[nouts++] = x;
		if (x == last)
			break;
	}
	if (nouts != 1) {
		if (nouts == 0) {
			diag_error(c->diag, sp,
			           "cannot fuse: no value of the subgraph is used");
		} else {
			StrBuf b = {0};
			names_of(&b, outs, nouts);
			diag_error(
			        c->diag, sp,
			        "cannot fuse: the subgraph has %d outputs (%s); a fused node has one",
			        nouts, b.data);
			sb_free(&b);
		}
		goto out;
	}

	/* external inputs in order of first use */
	for (IrNode *x = first; x; x = x->next) {
		if (in_region[x->id])
			for (int i = 0; i < x->nin; i++) {
				IrNode *u = x->in[i];
				if (in_region[u->id] || map[u->id])
					continue;
				map[u->id] =
				        u; /* mark; replaced by the body's input below */
				ext[next++] = u;
			}
		if (x == last)
			break;
	}

	/* the body */
	IrGraph *body = ir_graph_new(c, name);
	for (int i = 0; i < next; i++) {
		IrNode *u = ext[i];
		IrAttrs at = {.dtype = u->dtype, .shape = u->shape, .sattr = u->name};
		IrNode *p = ir_build(body, OP_INPUT, NULL, 0, &at, u->span, u->name);
		if (!p)
			goto out;
		ptrvec_push(c->arena, &body->inputs, p);
		map[u->id] = p;
	}
	for (IrNode *x = first; x; x = x->next) {
		if (!in_region[x->id]) {
			if (x == last)
				break;
			continue;
		}
		ins = realloc(ins, sizeof *ins * (size_t)(x->nin + 1));
		if (!ins)
			goto out;
		for (int i = 0; i < x->nin; i++)
			ins[i] = map[x->in[i]->id];
		IrAttrs at = {.niattr = x->niattr,
		              .ndattr = x->ndattr,
		              .fattr = x->fattr,
		              .flags = x->flags,
		              .sattr = x->sattr,
		              .sub = x->sub,
		              .module = x->module,
		              .dtype = x->dtype,
		              .shape = x->shape};
		memcpy(at.iattr, x->iattr, sizeof at.iattr);
		memcpy(at.dattr, x->dattr, sizeof at.dattr);
		IrNode *y = ir_build(body, x->op, ins, x->nin, &at, x->span, x->name);
		if (!y)
			goto out;
		map[x->id] = y;
		if (x == last)
			break;
	}
	ir_add_output(body, map[outs[0]->id], NULL);

	/* the new node, where the last region node is */
	IrAttrs at = {.sattr = name, .sub = body, .module = ir_common_module(c, nodes, nnodes)};
	IrNode *f = ir_build(g, op, ext, next, &at, sp, name);
	if (!f)
		goto out;
	ir_insert_before(g, last->next, f);
	ir_replace_uses(g, outs[0], f);
	for (IrNode *x = last, *prev; x; x = prev) {
		prev = x->prev;
		if (in_region[x->id])
			ir_node_remove(g, x);
		if (x == first)
			break;
	}
	ir_toposort(g); /* a user of the output may sit between it and `last` */
	res = f;
out:
	free(in_region);
	free(taint);
	free(map);
	free(ext);
	free(outs);
	free(ins);
	return res;
}
