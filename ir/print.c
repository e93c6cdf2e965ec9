/* print.c - the text form of graphs, stable for golden tests.
 *
 *   graph BertIntermediate(%hidden_states: f32[B, S, 1024]) {
 *     %dense_weight = param "dense.weight" : f32[4096, 1024]
 *     %linear = linear(%hidden_states, %dense_weight) : f32[B, S, 4096]
 *     %FusedBiasGeLU_0 = FusedBiasGeLU_0(%linear, %dense_bias) : f32[B, S, 4096]
 *     return %FusedBiasGeLU_0
 *   }
 *
 *   fused FusedBiasGeLU_0(%linear: f32[B, S, 4096], %dense_bias: f32[4096]) {
 *     ...
 *   }
 *
 * One node per line: `%name = op(%inputs, attributes) : type`. Graph
 * inputs appear in the header only. Attributes follow the inputs:
 * `softmax(%x, dim=-1)`, `layer_norm(%x, %w, %b, eps=1e-12)`,
 * `view(%x, [B, S, 12, 64])`, `permute(%x, [0, 2, 1, 3])`,
 * `transpose(%x, 1, 2)`, `slice(%x, dim=1, 0:S)` (`a:b:step` when the
 * step is not 1, `a:` to the end), `select(%x, dim=1, index=0)`,
 * `sum(%x, dims=[1], keepdim=true)`, `cat(%a, %b, dim=1)`,
 * `cast(%x, f32)`, `masked_fill(%x, %m, value=-inf)`,
 * `dropout(%x, p=0.1)`, `unsqueeze(%x, dim=1)`. Sources:
 * `param "path"`, `const 0.125`, `arange(S)`. A leaf call prints as
 * `call "dense"(%x)`, a fused node by its kernel's name, and each fused
 * body once, after the graph that uses it, with a blank line between.
 * Floats print as Python's repr() does (1e-12, 0.125, -inf).
 */
#include <stdlib.h>

#include "ir/ir.h"

void ir_type_print(StrBuf *b, const IrCtx *c, IrDType t, const IrShape *s)
{
	sb_puts(b, ir_dtype_name(t));
	ir_shape_print(b, c, s);
}

static void print_ints(StrBuf *b, const int64_t *v, int n)
{
	sb_putc(b, '[');
	for (int i = 0; i < n; i++)
		sb_printf(b, "%s%lld", i ? ", " : "", (long long)v[i]);
	sb_putc(b, ']');
}

static void print_dims(StrBuf *b, const IrCtx *c, const IrDim *d, int n)
{
	sb_putc(b, '[');
	for (int i = 0; i < n; i++) {
		if (i)
			sb_puts(b, ", ");
		ir_dim_print(b, c, d[i]);
	}
	sb_putc(b, ']');
}

static void print_scalar(StrBuf *b, IrDType t, double v)
{
	if (t == IR_BOOL)
		sb_puts(b, v != 0 ? "true" : "false");
	else if (!ir_dtype_is_float(t) && v >= -9.2e18 && v <= 9.2e18)
		sb_printf(b, "%lld", (long long)v);
	else
		sb_pyfloat(b, v);
}

/* The attributes of n, each preceded by ", " (or nothing if first). */
static void print_attrs(StrBuf *b, const IrCtx *c, const IrNode *n, bool first)
{
	const char *sep = first ? "" : ", ";
	switch (n->op) {
	case OP_SOFTMAX:
		if (n->niattr >= 1)
			sb_printf(b, "%sdim=%lld", sep, (long long)n->iattr[0]);
		break;
	case OP_UNSQUEEZE:
		if (n->niattr >= 1)
			sb_printf(b, "%sdim=%lld", sep, (long long)n->iattr[0]);
		break;
	case OP_CAT:
		if (n->niattr >= 1)
			sb_printf(b, "%sdim=%lld", sep, (long long)n->iattr[0]);
		break;
	case OP_LAYER_NORM:
		sb_printf(b, "%seps=", sep);
		sb_pyfloat(b, n->fattr);
		break;
	case OP_SUM:
	case OP_MEAN:
	case OP_MAX:
		if (n->niattr > 0) {
			sb_printf(b, "%sdims=", sep);
			print_ints(b, n->iattr, n->niattr);
			sep = ", ";
		}
		if (n->flags & 1)
			sb_printf(b, "%skeepdim=true", sep);
		break;
	case OP_VIEW:
	case OP_EXPAND:
		sb_puts(b, sep);
		print_dims(b, c, n->dattr, n->ndattr);
		break;
	case OP_PERMUTE:
		sb_puts(b, sep);
		print_ints(b, n->iattr, n->niattr);
		break;
	case OP_TRANSPOSE:
		if (n->niattr >= 2)
			sb_printf(b, "%s%lld, %lld", sep, (long long)n->iattr[0],
			          (long long)n->iattr[1]);
		break;
	case OP_SLICE:
		if (n->niattr >= 1)
			sb_printf(b, "%sdim=%lld", sep, (long long)n->iattr[0]);
		if (n->ndattr >= 2) {
			sb_puts(b, ", ");
			ir_dim_print(b, c, n->dattr[0]);
			sb_putc(b, ':');
			if (!(ir_dim_is_const(n->dattr[1]) &&
			      n->dattr[1].coef == INT64_MAX))
				ir_dim_print(b, c, n->dattr[1]);
			if (n->niattr >= 2 && n->iattr[1] != 1)
				sb_printf(b, ":%lld", (long long)n->iattr[1]);
		}
		break;
	case OP_SELECT:
		if (n->niattr >= 2)
			sb_printf(b, "%sdim=%lld, index=%lld", sep,
			          (long long)n->iattr[0], (long long)n->iattr[1]);
		break;
	case OP_CAST:
		if (n->niattr >= 1)
			sb_printf(b, "%s%s", sep, ir_dtype_name((IrDType)n->iattr[0]));
		break;
	case OP_MASKED_FILL:
		sb_printf(b, "%svalue=", sep);
		sb_pyfloat(b, n->fattr);
		break;
	case OP_DROPOUT:
		sb_printf(b, "%sp=", sep);
		sb_pyfloat(b, n->fattr);
		break;
	case OP_ARANGE:
		if (n->ndattr >= 1) {
			sb_puts(b, sep);
			ir_dim_print(b, c, n->dattr[0]);
		}
		break;
	default:
		break;
	}
}

void ir_node_print(StrBuf *b, const IrCtx *c, const IrNode *n)
{
	sb_printf(b, "%%%s = ", n->name);
	switch (n->op) {
	case OP_INPUT:
	case OP_PARAM:
		sb_printf(b, "%s \"%s\"", ir_ops[n->op].name, n->sattr ? n->sattr : "");
		break;
	case OP_CONST:
		sb_puts(b, "const ");
		print_scalar(b, n->dtype, n->fattr);
		break;
	default:
		if (n->op == OP_FUSED)
			sb_puts(b, n->sattr ? n->sattr : "fused");
		else if (n->op == OP_CALL)
			sb_printf(b, "call \"%s\"", n->sattr ? n->sattr : "");
		else
			sb_puts(b, ir_ops[n->op].name);
		sb_putc(b, '(');
		for (int i = 0; i < n->nin; i++)
			sb_printf(b, "%s%%%s", i ? ", " : "",
			          n->in[i] ? n->in[i]->name : "?");
		print_attrs(b, c, n, n->nin == 0);
		sb_putc(b, ')');
		break;
	}
	sb_puts(b, " : ");
	ir_type_print(b, c, n->dtype, &n->shape);
}

static bool is_graph_input(const IrGraph *g, const IrNode *n)
{
	for (int i = 0; i < g->inputs.len; i++)
		if (g->inputs.items[i] == n)
			return true;
	return false;
}

static void print_one(StrBuf *b, const IrGraph *g, const char *kw)
{
	const IrCtx *c = g->ctx;
	sb_printf(b, "%s %s(", kw, g->name);
	for (int i = 0; i < g->inputs.len; i++) {
		const IrNode *x = g->inputs.items[i];
		sb_printf(b, "%s%%%s: ", i ? ", " : "", x->name);
		ir_type_print(b, c, x->dtype, &x->shape);
	}
	sb_puts(b, ") {\n");
	for (const IrNode *n = g->first; n; n = n->next) {
		if (n->op == OP_INPUT && is_graph_input(g, n))
			continue;
		sb_puts(b, "  ");
		ir_node_print(b, c, n);
		sb_putc(b, '\n');
	}
	sb_puts(b, "  return");
	for (int i = 0; i < g->outputs.len; i++) {
		const IrNode *o = g->outputs.items[i];
		sb_printf(b, "%s%%%s", i ? ", " : " ", o ? o->name : "?");
	}
	sb_puts(b, "\n}\n");
}

void ir_graph_print(StrBuf *b, const IrGraph *g)
{
	print_one(b, g, "graph");
	/* fused bodies, each once, breadth-first in order of first use */
	const IrGraph **todo = NULL;
	int len = 0, cap = 0;
	const IrGraph *cur = g;
	for (int k = -1; k < len; k++) {
		if (k >= 0) {
			cur = todo[k];
			sb_putc(b, '\n');
			print_one(b, cur, "fused");
		}
		for (const IrNode *n = cur->first; n; n = n->next) {
			if (n->op != OP_FUSED || !n->sub)
				continue;
			bool seen = n->sub == g;
			for (int i = 0; i < len && !seen; i++)
				seen = todo[i] == n->sub;
			if (seen)
				continue;
			if (len == cap) {
				cap = cap ? 2 * cap : 8;
				const IrGraph **t =
				        realloc(todo, sizeof *todo * (size_t)cap);
				if (!t)
					break;
				todo = t;
			}
			todo[len++] = n->sub;
		}
	}
	free(todo);
}
