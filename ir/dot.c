/* dot.c - Graphviz DOT pictures of graphs (slapoc --emit=dot).
 *
 * One box per node (its name and op), one edge per use labelled with the
 * value's dtype and shape. A fused kernel is drawn as a cluster labelled
 * with its name holding the ops of its body, so a picture shows what each
 * kernel covers; edges run from the producers outside into the body ops
 * that read them, and from the body's result to the kernel's users.
 * Parameters are drawn as small grey notes. */
#include "ir/ir.h"

#include <stdlib.h>
#include <string.h>

/* DOT identifiers: quoted, with quotes and backslashes escaped. */
static void put_id(StrBuf *b, const char *prefix, const char *name)
{
	sb_putc(b, '"');
	sb_puts(b, prefix);
	for (const char *p = name; *p; p++) {
		if (*p == '"' || *p == '\\')
			sb_putc(b, '\\');
		sb_putc(b, *p);
	}
	sb_putc(b, '"');
}

static void put_type(StrBuf *b, const IrCtx *c, const IrNode *n)
{
	StrBuf t = {0};
	ir_type_print(&t, c, n->dtype, &n->shape);
	for (const char *p = t.data; p && *p; p++) {
		if (*p == '"')
			sb_putc(b, '\\');
		sb_putc(b, *p);
	}
	sb_free(&t);
}

/* The DOT node that stands for value n of a graph drawn with prefix:
 * a fused node stands for its body's result. */
static void value_id(StrBuf *b, const char *prefix, const IrNode *n)
{
	if (n->op == OP_FUSED && n->sub && n->sub->outputs.len == 1) {
		const IrNode *o = n->sub->outputs.items[0];
		char *p = NULL;
		size_t len = strlen(prefix) + strlen(n->name) + 2;
		p = malloc(len);
		if (!p)
			return;
		snprintf(p, len, "%s%s/", prefix, n->name);
		value_id(b, p, o);
		free(p);
		return;
	}
	put_id(b, prefix, n->name);
}

static void draw_graph(StrBuf *b, const IrGraph *g, const char *prefix, int depth);

static void draw_node(StrBuf *b, const IrGraph *g, const IrNode *n, const char *prefix, int depth)
{
	const IrCtx *c = g->ctx;
	if (n->op == OP_FUSED && n->sub) {
		size_t len = strlen(prefix) + strlen(n->name) + 2;
		char *p = malloc(len);
		if (!p)
			return;
		snprintf(p, len, "%s%s/", prefix, n->name);
		sb_printf(b, "%*ssubgraph ", depth * 2, "");
		put_id(b, "cluster_", p);
		sb_printf(b, " {\n%*slabel=", depth * 2 + 2, "");
		put_id(b, "", n->name);
		sb_printf(b, "; style=rounded; color=\"#1f77b4\"; fontcolor=\"#1f77b4\";\n");
		draw_graph(b, n->sub, p, depth + 1);
		sb_printf(b, "%*s}\n", depth * 2, "");
		/* edges from the kernel's operands into the body ops that read them */
		for (int i = 0; i < n->nin && i < n->sub->inputs.len; i++) {
			const IrNode *bin = n->sub->inputs.items[i];
			for (const IrNode *u = n->sub->first; u; u = u->next)
				for (int j = 0; j < u->nin; j++)
					if (u->in[j] == bin) {
						sb_printf(b, "%*s", depth * 2, "");
						value_id(b, prefix, n->in[i]);
						sb_puts(b, " -> ");
						value_id(b, p, u);
						sb_puts(b, " [label=\"");
						put_type(b, c, n->in[i]);
						sb_puts(b, "\"];\n");
					}
		}
		free(p);
		return;
	}
	if (n->op == OP_INPUT && prefix[0] && strchr(prefix, '/'))
		return; /* a kernel body's operand: drawn as the edge from outside */
	sb_printf(b, "%*s", depth * 2, "");
	value_id(b, prefix, n);
	if (n->op == OP_PARAM)
		sb_printf(b, " [label=\"%s\", shape=note, color=gray, fontcolor=gray40];\n", n->sattr);
	else if (n->op == OP_INPUT)
		sb_printf(b, " [label=\"%s\", shape=invhouse];\n", n->name);
	else if (n->op == OP_CONST)
		sb_printf(b, " [label=\"%g\", shape=plaintext];\n", n->fattr);
	else if (strcmp(n->name, ir_ops[n->op].name) == 0)
		sb_printf(b, " [label=\"%s\"];\n", n->name);
	else
		sb_printf(b, " [label=\"%s\\n%s\"];\n", n->name, ir_ops[n->op].name);
	bool in_body = prefix[0] != 0;
	for (int j = 0; j < n->nin; j++) {
		const IrNode *src = n->in[j];
		if (in_body && src->op == OP_INPUT)
			continue;
		sb_printf(b, "%*s", depth * 2, "");
		value_id(b, prefix, src);
		sb_puts(b, " -> ");
		value_id(b, prefix, n);
		sb_puts(b, " [label=\"");
		put_type(b, c, src);
		sb_puts(b, "\"];\n");
	}
}

static void draw_graph(StrBuf *b, const IrGraph *g, const char *prefix, int depth)
{
	for (const IrNode *n = g->first; n; n = n->next)
		draw_node(b, g, n, prefix, depth);
}

void ir_graph_dot(StrBuf *b, const IrGraph *g)
{
	sb_puts(b, "digraph ");
	put_id(b, "", g->name ? g->name : "graph");
	sb_puts(b, " {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n"
	           "  edge [fontname=\"Helvetica\", fontsize=8, color=gray30];\n");
	draw_graph(b, g, "", 1);
	for (int i = 0; i < g->outputs.len; i++) {
		const char *name = i < g->output_names.len ? g->output_names.items[i] : "output";
		sb_puts(b, "  ");
		put_id(b, "out:", name);
		sb_printf(b, " [label=\"%s\", shape=house];\n  ", name);
		value_id(b, "", g->outputs.items[i]);
		sb_puts(b, " -> ");
		put_id(b, "out:", name);
		sb_puts(b, " [label=\"");
		put_type(b, g->ctx, g->outputs.items[i]);
		sb_puts(b, "\"];\n");
	}
	sb_puts(b, "}\n");
}
