/* match.c - find occurrences of a pattern graph in a graph.
 *
 * A pattern is a graph: its input nodes are wildcards, its other nodes
 * must match nodes of the same op (and the same number of inputs; a
 * const must have the same value, a fused node the same kernel). The
 * match is structural: it anchors a graph node against the pattern's
 * output and walks back through inputs, so node order in the list does
 * not matter (unlike Slapo's, which walks `node.next`).
 *
 * The search is a backtracking solver over a stack of goals (pattern
 * node, graph node). Commutative binary ops try both input orders, and a
 * later failure can undo an earlier choice. Bindings are one-to-one: a
 * pattern node used twice (a diamond, or `x` in `x * sigmoid(x)`) must
 * meet the same graph node both times, and two pattern nodes never
 * share a graph node.
 *
 * A match is accepted only if the graph nodes matched by the pattern's
 * inner nodes (all but the output and the wildcards) have no users
 * outside the match and are not graph outputs: fusing the match must not
 * duplicate work. Matches do not overlap: anchors are tried in graph
 * order and nodes already taken by a match cannot be matched again (a
 * wildcard may still bind them, so chained occurrences are all found).
 */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

typedef struct Goal {
	const IrNode *p; /* pattern node */
	IrNode *g;       /* graph node it must match */
} Goal;

typedef struct Matcher {
	const IrGraph *g, *pat;
	const IrNode *pout;        /* the pattern's output node */
	int np, ng;                /* id ranges */
	IrNode **bind;             /* by pattern id: graph node, or NULL */
	const IrNode **owner;      /* by graph id: pattern node bound to it, or NULL */
	bool *taken;               /* by graph id: already part of an accepted match */
	bool *is_out;              /* by graph id: a graph output */
	int *use_start, *use_list; /* users of each graph node (by id), CSR */
	Goal *goals;
	int maxgoals;
} Matcher;

static bool attrs_match(const IrNode *p, const IrNode *x)
{
	if (p->op != x->op || p->nin != x->nin)
		return false;
	switch (p->op) {
	case OP_CONST:
		return p->fattr == x->fattr;
	case OP_FUSED:
	case OP_CALL:
	case OP_PARAM:
		return !p->sattr || (x->sattr && strcmp(p->sattr, x->sattr) == 0);
	default:
		return true;
	}
}

/* Inner nodes of the match are used only inside it. */
static bool closed(const Matcher *m)
{
	for (const IrNode *p = m->pat->first; p; p = p->next) {
		if (p->op == OP_INPUT || p == m->pout || p->id < 0 || p->id >= m->np)
			continue;
		const IrNode *x = m->bind[p->id];
		if (!x)
			continue; /* not reachable from the output */
		if (m->is_out[x->id])
			return false;
		for (int k = m->use_start[x->id]; k < m->use_start[x->id + 1]; k++) {
			int u = m->use_list[k];
			const IrNode *up = m->owner[u];
			if (!up || up->op == OP_INPUT)
				return false;
		}
	}
	return true;
}

static bool solve(Matcher *m, int ngoals)
{
	if (ngoals == 0)
		return closed(m);
	Goal goal = m->goals[ngoals - 1];
	const IrNode *p = goal.p;
	IrNode *x = goal.g;
	bool ok = false;
	if (m->bind[p->id]) {
		ok = m->bind[p->id] == x && solve(m, ngoals - 1);
		goto out;
	}
	if (m->owner[x->id])
		goto out; /* x already matched by another pattern node */
	if (p->op == OP_INPUT) {
		m->bind[p->id] = x;
		m->owner[x->id] = p;
		ok = solve(m, ngoals - 1);
		if (!ok) {
			m->bind[p->id] = NULL;
			m->owner[x->id] = NULL;
		}
		goto out;
	}
	if (m->taken[x->id] || !attrs_match(p, x))
		goto out;
	m->bind[p->id] = x;
	m->owner[x->id] = p;
	int orders = (ir_ops[p->op].flags & OPF_COMMUTATIVE) && p->nin == 2 ? 2 : 1;
	for (int o = 0; o < orders && !ok; o++) {
		int top = ngoals - 1;
		if (top + p->nin > m->maxgoals)
			break;
		/* push inputs so that input 0 is solved first */
		for (int i = p->nin - 1; i >= 0; i--) {
			int gi = o ? 1 - i : i;
			m->goals[top++] = (Goal){p->in[i], x->in[gi]};
		}
		ok = solve(m, top);
	}
	if (!ok) {
		m->bind[p->id] = NULL;
		m->owner[x->id] = NULL;
	}
out:
	if (!ok)
		m->goals[ngoals - 1] = goal; /* leave the stack as found */
	return ok;
}

int ir_match(IrCtx *c, const IrGraph *g, const IrGraph *pattern, IrMatch **out)
{
	*out = NULL;
	if (pattern->outputs.len != 1) {
		diag_plain(c->diag, DIAG_ERROR,
		           "pattern %s must return exactly one value, not %d",
		           pattern->name, pattern->outputs.len);
		return 0;
	}
	Matcher m = {.g = g, .pat = pattern, .pout = pattern->outputs.items[0]};
	m.np = pattern->next_id;
	m.ng = g->next_id;
	if (m.pout->op == OP_INPUT) {
		diag_plain(c->diag, DIAG_ERROR,
		           "pattern %s matches anything: it returns an input",
		           pattern->name);
		return 0;
	}
	int maxgoals = 1, nuses = 0;
	for (const IrNode *p = pattern->first; p; p = p->next) {
		maxgoals += p->nin;
		for (int i = 0; i < p->nin; i++)
			if (p->id < 0 || p->id >= m.np || p->in[i]->id < 0 ||
			    p->in[i]->id >= m.np)
				return 0; /* not a well-formed graph */
	}
	for (const IrNode *x = g->first; x; x = x->next) {
		nuses += x->nin;
		for (int i = 0; i < x->nin; i++)
			if (x->id < 0 || x->id >= m.ng || x->in[i]->id < 0 ||
			    x->in[i]->id >= m.ng)
				return 0;
	}
	for (int i = 0; i < g->outputs.len; i++) {
		const IrNode *o = g->outputs.items[i];
		if (o->id < 0 || o->id >= m.ng)
			return 0;
	}
	m.maxgoals = maxgoals;
	m.bind = calloc((size_t)m.np + 1, sizeof *m.bind);
	m.owner = calloc((size_t)m.ng + 1, sizeof *m.owner);
	m.taken = calloc((size_t)m.ng + 1, sizeof *m.taken);
	m.is_out = calloc((size_t)m.ng + 1, sizeof *m.is_out);
	m.use_start = calloc((size_t)m.ng + 2, sizeof *m.use_start);
	m.use_list = calloc((size_t)nuses + 1, sizeof *m.use_list);
	m.goals = calloc((size_t)maxgoals + 1, sizeof *m.goals);
	PtrVec found = {0};
	if (!m.bind || !m.owner || !m.taken || !m.is_out || !m.use_start || !m.use_list ||
	    !m.goals)
		goto done;
	/* users of each node: count, prefix sums, fill */
	for (const IrNode *x = g->first; x; x = x->next)
		for (int i = 0; i < x->nin; i++)
			m.use_start[x->in[i]->id + 1]++;
	for (int i = 0; i < m.ng; i++)
		m.use_start[i + 1] += m.use_start[i];
	int *fill = calloc((size_t)m.ng + 1, sizeof *fill);
	if (!fill)
		goto done;
	for (const IrNode *x = g->first; x; x = x->next)
		for (int i = 0; i < x->nin; i++) {
			int id = x->in[i]->id;
			m.use_list[m.use_start[id] + fill[id]++] = x->id;
		}
	free(fill);
	for (int i = 0; i < g->outputs.len; i++)
		m.is_out[((IrNode *)g->outputs.items[i])->id] = true;

	for (IrNode *x = g->first; x; x = x->next) {
		if (m.taken[x->id] || x->op != m.pout->op)
			continue;
		m.goals[0] = (Goal){m.pout, x};
		if (!solve(&m, 1))
			continue;
		IrMatch *r = ARENA_NEW(c->arena, IrMatch);
		int k = 0;
		for (const IrNode *p = pattern->first; p; p = p->next)
			if (p->op != OP_INPUT && m.bind[p->id])
				k++;
		r->nodes = ARENA_ARRAY(c->arena, IrNode *, k);
		for (const IrNode *p = pattern->first; p; p = p->next) {
			if (p->op == OP_INPUT || !m.bind[p->id])
				continue;
			IrNode *y = m.bind[p->id];
			r->nodes[r->nnodes++] = y;
			m.taken[y->id] = true;
		}
		ptrvec_push(c->arena, &found, r);
		/* clear bindings for the next anchor */
		for (const IrNode *p = pattern->first; p; p = p->next) {
			if (p->id >= 0 && p->id < m.np && m.bind[p->id]) {
				m.owner[m.bind[p->id]->id] = NULL;
				m.bind[p->id] = NULL;
			}
		}
	}
	if (found.len) {
		*out = ARENA_ARRAY(c->arena, IrMatch, found.len);
		for (int i = 0; i < found.len; i++)
			(*out)[i] = *(IrMatch *)found.items[i];
	}
done:
	free(m.bind);
	free(m.owner);
	free(m.taken);
	free(m.is_out);
	free(m.use_start);
	free(m.use_list);
	free(m.goals);
	return found.len;
}
