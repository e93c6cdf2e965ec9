/* test_match.c - the pattern matcher: chains, commutative swaps,
 * diamonds, multi-input patterns, non-overlapping occurrences, and
 * candidates rejected for an outside use of an inner node. */
#include "test_util.h"

static T t;

/* Matches as text: "[add gelu] [add_1 gelu_1]". */
static const char *show(const IrGraph *g, const IrGraph *pat)
{
	IrMatch *ms;
	int n = ir_match(&t.ctx, g, pat, &ms);
	StrBuf b = {0};
	for (int i = 0; i < n; i++) {
		sb_printf(&b, "%s[", i ? " " : "");
		for (int k = 0; k < ms[i].nnodes; k++)
			sb_printf(&b, "%s%s", k ? " " : "", ms[i].nodes[k]->name);
		sb_putc(&b, ']');
	}
	const char *r = arena_strdup(&t.arena, b.data ? b.data : "");
	sb_free(&b);
	return r;
}

static IrShape vec(void)
{
	return shp(2, t.B, C(8));
}

/* bias_gelu(x, bias) = gelu(x + bias) */
static IrGraph *bias_gelu(void)
{
	IrGraph *p = ir_graph_new(&t.ctx, "bias_gelu");
	IrNode *x = t_input(&t, p, "x", IR_F32, vec());
	IrNode *b = t_input(&t, p, "bias", IR_F32, vec());
	ir_add_output(p, t_op1(&t, p, OP_GELU, t_op2(&t, p, OP_ADD, x, b)), NULL);
	return p;
}

static void test_chain(void)
{
	IrGraph *pat = bias_gelu();
	IrGraph *g = ir_graph_new(&t.ctx, "G");
	IrNode *x = t_input(&t, g, "x", IR_F32, vec());
	IrNode *w = t_param(&t, g, "dense.weight", shp(2, C(8), C(8)));
	IrNode *l = t_op2(&t, g, OP_LINEAR, x, w);
	IrNode *b = t_param(&t, g, "dense.bias", shp(1, C(8)));
	IrNode *a = t_op2(&t, g, OP_ADD, l, b);
	IrNode *ge = t_op1(&t, g, OP_GELU, a);
	ir_add_output(g, ge, NULL);
	CHECK_STR(show(g, pat), "[add gelu]");
	/* the result nodes are the graph's, in pattern order */
	IrMatch *ms;
	CHECK(ir_match(&t.ctx, g, pat, &ms) == 1);
	CHECK(ms[0].nnodes == 2 && ms[0].nodes[0] == a && ms[0].nodes[1] == ge);

	/* commutative: bias + x matches x + bias */
	IrGraph *g2 = ir_graph_new(&t.ctx, "G2");
	IrNode *x2 = t_input(&t, g2, "x", IR_F32, vec());
	IrNode *b2 = t_param(&t, g2, "bias", shp(1, C(8)));
	ir_add_output(g2, t_op1(&t, g2, OP_GELU, t_op2(&t, g2, OP_ADD, b2, x2)), NULL);
	CHECK_STR(show(g2, pat), "[add gelu]");

	/* sub is not commutative */
	IrGraph *ps = ir_graph_new(&t.ctx, "sub_exp");
	IrNode *px = t_input(&t, ps, "x", IR_F32, vec());
	IrNode *pe = t_op1(&t, ps, OP_EXP, px);
	ir_add_output(ps, t_op2(&t, ps, OP_SUB, pe, px), NULL); /* exp(x) - x */
	IrGraph *g3 = ir_graph_new(&t.ctx, "G3");
	IrNode *x3 = t_input(&t, g3, "x", IR_F32, vec());
	IrNode *e3 = t_op1(&t, g3, OP_EXP, x3);
	IrNode *s3 = t_op2(&t, g3, OP_SUB, x3, e3); /* x - exp(x): no */
	IrNode *s4 = t_op2(&t, g3, OP_SUB, e3,
	                   x3); /* exp(x) - x: yes, but exp is used twice */
	ir_add_output(g3, s3, NULL);
	ir_add_output(g3, s4, NULL);
	CHECK_STR(show(g3, ps), "");
	g3->outputs.len = 1;
	g3->outputs.items[0] = s4;
	ir_node_remove(g3, s3);
	CHECK_STR(show(g3, ps), "[exp sub_1]");

	/* the same op chain with a different op in the middle does not match */
	IrGraph *g4 = ir_graph_new(&t.ctx, "G4");
	IrNode *x4 = t_input(&t, g4, "x", IR_F32, vec());
	ir_add_output(g4, t_op1(&t, g4, OP_GELU, t_op2(&t, g4, OP_MUL, x4, x4)), NULL);
	CHECK_STR(show(g4, pat), "");
}

static void test_wildcards(void)
{
	/* silu(x) = x * sigmoid(x): the input is used twice */
	IrGraph *pat = ir_graph_new(&t.ctx, "silu");
	IrNode *px = t_input(&t, pat, "x", IR_F32, vec());
	ir_add_output(pat, t_op2(&t, pat, OP_MUL, px, t_op1(&t, pat, OP_SIGMOID, px)),
	              NULL);

	IrGraph *g = ir_graph_new(&t.ctx, "G");
	IrNode *x = t_input(&t, g, "x", IR_F32, vec());
	IrNode *y = t_input(&t, g, "y", IR_F32, vec());
	IrNode *m1 = t_op2(&t, g, OP_MUL, t_op1(&t, g, OP_SIGMOID, x),
	                   x); /* silu(x), swapped */
	IrNode *m2 = t_op2(&t, g, OP_MUL, y,
	                   t_op1(&t, g, OP_SIGMOID, x)); /* y * sigmoid(x): no */
	ir_add_output(g, m1, NULL);
	ir_add_output(g, m2, NULL);
	CHECK_STR(show(g, pat), "[sigmoid mul]");

	/* two wildcards never bind one node: x + y does not match z + z ... */
	IrGraph *p2 = ir_graph_new(&t.ctx, "add2");
	IrNode *a = t_input(&t, p2, "a", IR_F32, vec());
	IrNode *b = t_input(&t, p2, "b", IR_F32, vec());
	ir_add_output(p2, t_op1(&t, p2, OP_EXP, t_op2(&t, p2, OP_ADD, a, b)), NULL);
	IrGraph *g2 = ir_graph_new(&t.ctx, "G2");
	IrNode *z = t_input(&t, g2, "z", IR_F32, vec());
	IrNode *w = t_input(&t, g2, "w", IR_F32, vec());
	IrNode *e1 = t_op1(&t, g2, OP_EXP, t_op2(&t, g2, OP_ADD, z, z));
	IrNode *e2 = t_op1(&t, g2, OP_EXP, t_op2(&t, g2, OP_ADD, z, w));
	ir_add_output(g2, e1, NULL);
	ir_add_output(g2, e2, NULL);
	CHECK_STR(show(g2, p2), "[add_1 exp_1]");
	/* ... but a + a does */
	IrGraph *p3 = ir_graph_new(&t.ctx, "double");
	IrNode *q = t_input(&t, p3, "q", IR_F32, vec());
	ir_add_output(p3, t_op1(&t, p3, OP_EXP, t_op2(&t, p3, OP_ADD, q, q)), NULL);
	CHECK_STR(show(g2, p3), "[add exp]");

	/* constants match by value */
	IrGraph *p4 = ir_graph_new(&t.ctx, "half");
	IrNode *h = t_input(&t, p4, "h", IR_F32, vec());
	ir_add_output(p4, t_op2(&t, p4, OP_MUL, h, t_const(&t, p4, 0.5, IR_F32)), NULL);
	IrGraph *g4 = ir_graph_new(&t.ctx, "G4");
	IrNode *v = t_input(&t, g4, "v", IR_F32, vec());
	IrNode *k1 = t_op2(&t, g4, OP_MUL, t_const(&t, g4, 0.25, IR_F32), v);
	IrNode *k2 = t_op2(&t, g4, OP_MUL, t_const(&t, g4, 0.5, IR_F32), v);
	ir_add_output(g4, k1, NULL);
	ir_add_output(g4, k2, NULL);
	CHECK_STR(show(g4, p4), "[const_1 mul_1]");
}

static void test_diamond(void)
{
	/* n = neg(x); d = exp(n) + tanh(n) */
	IrGraph *pat = ir_graph_new(&t.ctx, "diamond");
	IrNode *px = t_input(&t, pat, "x", IR_F32, vec());
	IrNode *pn = t_op1(&t, pat, OP_NEG, px);
	IrNode *pe = t_op1(&t, pat, OP_EXP, pn);
	IrNode *pt = t_op1(&t, pat, OP_TANH, pn);
	ir_add_output(pat, t_op2(&t, pat, OP_ADD, pe, pt), NULL);

	IrGraph *g = ir_graph_new(&t.ctx, "G");
	IrNode *x = t_input(&t, g, "x", IR_F32, vec());
	/* the same shape of diamond, list order scrambled and sides swapped */
	IrNode *n = t_op1(&t, g, OP_NEG, x);
	IrNode *th = t_op1(&t, g, OP_TANH, n);
	IrNode *ex = t_op1(&t, g, OP_EXP, n);
	IrNode *d = t_op2(&t, g, OP_ADD, th, ex);
	/* not a diamond: two different negs */
	IrNode *n1 = t_op1(&t, g, OP_NEG, x);
	IrNode *n2 = t_op1(&t, g, OP_NEG, x);
	IrNode *e1 = t_op1(&t, g, OP_EXP, n1);
	IrNode *t2 = t_op1(&t, g, OP_TANH, n2);
	IrNode *d2 = t_op2(&t, g, OP_ADD, e1, t2);
	ir_add_output(g, d, NULL);
	ir_add_output(g, d2, NULL);
	CHECK_STR(show(g, pat), "[neg exp tanh add]");
}

static void test_multi_input(void)
{
	/* (x + y) * (y - z) */
	IrGraph *pat = ir_graph_new(&t.ctx, "tree");
	IrNode *x = t_input(&t, pat, "x", IR_F32, vec());
	IrNode *y = t_input(&t, pat, "y", IR_F32, vec());
	IrNode *z = t_input(&t, pat, "z", IR_F32, vec());
	IrNode *pa = t_op2(&t, pat, OP_ADD, x, y);
	IrNode *ps = t_op2(&t, pat, OP_SUB, y, z);
	ir_add_output(pat, t_op2(&t, pat, OP_MUL, pa, ps), NULL);

	IrGraph *g = ir_graph_new(&t.ctx, "G");
	IrNode *a = t_input(&t, g, "a", IR_F32, vec());
	IrNode *b = t_input(&t, g, "b", IR_F32, vec());
	IrNode *c = t_input(&t, g, "c", IR_F32, vec());
	/* (b - c) * (b + a): y = b shared; both commutative swaps at once */
	IrNode *s = t_op2(&t, g, OP_SUB, b, c);
	IrNode *ad = t_op2(&t, g, OP_ADD, b, a);
	IrNode *m = t_op2(&t, g, OP_MUL, s, ad);
	/* (a + b) * (c - a): y would be b and c at once: no */
	IrNode *a2 = t_op2(&t, g, OP_ADD, a, b);
	IrNode *s2 = t_op2(&t, g, OP_SUB, c, a);
	IrNode *m2 = t_op2(&t, g, OP_MUL, a2, s2);
	ir_add_output(g, m, NULL);
	ir_add_output(g, m2, NULL);
	CHECK_STR(show(g, pat), "[add sub mul]");
	/* the first order tried (x = b, y = a) fails only at the sub: backtracking */
	IrMatch *ms;
	CHECK(ir_match(&t.ctx, g, pat, &ms) == 1 && ms[0].nodes[0] == ad &&
	      ms[0].nodes[1] == s && ms[0].nodes[2] == m);
}

static void test_overlap_and_uses(void)
{
	IrGraph *pat = bias_gelu();
	/* two occurrences, the second fed by the first */
	IrGraph *g = ir_graph_new(&t.ctx, "G");
	IrNode *x = t_input(&t, g, "x", IR_F32, vec());
	IrNode *b = t_param(&t, g, "b", shp(1, C(8)));
	IrNode *g1 = t_op1(&t, g, OP_GELU, t_op2(&t, g, OP_ADD, x, b));
	IrNode *g2 = t_op1(&t, g, OP_GELU, t_op2(&t, g, OP_ADD, g1, b));
	ir_add_output(g, g2, NULL);
	CHECK_STR(show(g, pat), "[add gelu] [add_1 gelu_1]");

	/* add(add(x, y), z) over a chain of three adds: one match, no overlap */
	IrGraph *p2 = ir_graph_new(&t.ctx, "add3");
	IrNode *px = t_input(&t, p2, "x", IR_F32, vec());
	IrNode *py = t_input(&t, p2, "y", IR_F32, vec());
	IrNode *pz = t_input(&t, p2, "z", IR_F32, vec());
	ir_add_output(p2, t_op2(&t, p2, OP_ADD, t_op2(&t, p2, OP_ADD, px, py), pz), NULL);
	IrGraph *h = ir_graph_new(&t.ctx, "H");
	IrNode *v[4];
	for (int i = 0; i < 4; i++) {
		char name[4] = {'v', (char)('0' + i), 0};
		v[i] = t_input(&t, h, name, IR_F32, vec());
	}
	IrNode *a1 = t_op2(&t, h, OP_ADD, v[0], v[1]);
	IrNode *a2 = t_op2(&t, h, OP_ADD, a1, v[2]);
	IrNode *a3 = t_op2(&t, h, OP_ADD, a2, v[3]);
	ir_add_output(h, a3, NULL);
	CHECK_STR(show(h, p2), "[add add_1]");

	/* an inner node used outside the match: rejected */
	IrGraph *k = ir_graph_new(&t.ctx, "K");
	IrNode *kx = t_input(&t, k, "x", IR_F32, vec());
	IrNode *kb = t_param(&t, k, "b", shp(1, C(8)));
	IrNode *ka = t_op2(&t, k, OP_ADD, kx, kb);
	IrNode *kg = t_op1(&t, k, OP_GELU, ka);
	IrNode *kt = t_op1(&t, k, OP_TANH, ka);
	ir_add_output(k, kg, NULL);
	ir_add_output(k, kt, NULL);
	CHECK_STR(show(k, pat), "");
	/* ... or returned by the graph */
	k->outputs.len = 0;
	ir_add_output(k, kg, NULL);
	ir_add_output(k, ka, NULL);
	ir_dce(k);
	CHECK_STR(show(k, pat), "");
	k->outputs.len = 1;
	CHECK_STR(show(k, pat), "[add gelu]");
	/* the output node itself may be used anywhere */
	ir_add_output(k, t_op1(&t, k, OP_EXP, kg), NULL);
	CHECK_STR(show(k, pat), "[add gelu]");

	/* a pattern that returns one of its inputs, or several values */
	IrGraph *bad = ir_graph_new(&t.ctx, "id");
	IrNode *bx = t_input(&t, bad, "x", IR_F32, vec());
	ir_add_output(bad, bx, NULL);
	CHECK_STR(show(k, bad), "");
	CHECK_STR(t_diag(&t),
	          "slapoc: error: pattern id matches anything: it returns an input\n");
	ir_add_output(bad, bx, NULL);
	CHECK_STR(show(k, bad), "");
	CHECK_STR(t_diag(&t),
	          "slapoc: error: pattern id must return exactly one value, not 2\n");
}

int main(void)
{
	t_init(&t);
	test_chain();
	test_wildcards();
	test_diamond();
	test_multi_input();
	test_overlap_and_uses();
	CHECK_STR(t_diag(&t), "");
	t_fini(&t);
	return t_done("test_match");
}
