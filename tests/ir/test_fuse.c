/* test_fuse.c - fusing matched regions: the printed result, the errors
 * (not convex, several outputs), and numerics identical before and after
 * through the interpreter on random data. */
#include "test_util.h"

static T t;

static IrGraph *bert_intermediate(void)
{
	IrGraph *g = ir_graph_new(&t.ctx, "BertIntermediate");
	IrNode *h = t_input(&t, g, "hidden_states", IR_F32, shp(3, t.B, t.S, C(1024)));
	IrNode *w = t_param(&t, g, "dense.weight", shp(2, C(4096), C(1024)));
	IrNode *l = t_op2(&t, g, OP_LINEAR, h, w);
	IrNode *b = t_param(&t, g, "dense.bias", shp(1, C(4096)));
	IrNode *a = t_op2(&t, g, OP_ADD, l, b);
	ir_add_output(g, t_op1(&t, g, OP_GELU, a), NULL);
	return g;
}

static IrNode *find(IrGraph *g, const char *name)
{
	for (IrNode *n = g->first; n; n = n->next)
		if (strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static IrGraph *bias_gelu(void)
{
	IrGraph *p = ir_graph_new(&t.ctx, "bias_gelu");
	IrNode *x = t_input(&t, p, "x", IR_F32, shp(0));
	IrNode *b = t_input(&t, p, "bias", IR_F32, shp(0));
	ir_add_output(p, t_op1(&t, p, OP_GELU, t_op2(&t, p, OP_ADD, x, b)), NULL);
	return p;
}

static void test_happy(void)
{
	IrGraph *g = bert_intermediate();
	IrMatch *ms;
	CHECK(ir_match(&t.ctx, g, bias_gelu(), &ms) == 1);
	IrNode *f =
	        ir_fuse(g, ms[0].nodes, ms[0].nnodes, OP_FUSED, "FusedBiasGeLU_0", t.sp);
	CHECK(f && f->op == OP_FUSED);
	CHECK(ir_verify(g, "fuse"));
	CHECK_STR(
	        t_print(&t, g),
	        "graph BertIntermediate(%hidden_states: f32[B, S, 1024]) {\n"
	        "  %dense_weight = param \"dense.weight\" : f32[4096, 1024]\n"
	        "  %linear = linear(%hidden_states, %dense_weight) : f32[B, S, 4096]\n"
	        "  %dense_bias = param \"dense.bias\" : f32[4096]\n"
	        "  %FusedBiasGeLU_0 = FusedBiasGeLU_0(%linear, %dense_bias) : f32[B, S, 4096]\n"
	        "  return %FusedBiasGeLU_0\n"
	        "}\n"
	        "\n"
	        "fused FusedBiasGeLU_0(%linear: f32[B, S, 4096], %dense_bias: f32[4096]) {\n"
	        "  %add = add(%linear, %dense_bias) : f32[B, S, 4096]\n"
	        "  %gelu = gelu(%add) : f32[B, S, 4096]\n"
	        "  return %gelu\n"
	        "}\n");

	/* as a call node (subgraph replace) */
	IrGraph *g2 = bert_intermediate();
	IrNode *nodes[2] = {find(g2, "linear"), find(g2, "add")};
	IrNode *c = ir_fuse(g2, nodes, 2, OP_CALL, "dense", t.sp);
	CHECK(c && ir_verify(g2, "replace"));
	CHECK_STR(
	        t_print(&t, g2),
	        "graph BertIntermediate(%hidden_states: f32[B, S, 1024]) {\n"
	        "  %dense_weight = param \"dense.weight\" : f32[4096, 1024]\n"
	        "  %dense_bias = param \"dense.bias\" : f32[4096]\n"
	        "  %dense = call \"dense\"(%hidden_states, %dense_weight, %dense_bias) : f32[B, S, 4096]\n"
	        "  %gelu = gelu(%dense) : f32[B, S, 4096]\n"
	        "  return %gelu\n"
	        "}\n");
	CHECK_STR(t_diag(&t), "");
}

static void test_errors(void)
{
	IrGraph *g = ir_graph_new(&t.ctx, "G");
	IrNode *x = t_input(&t, g, "x", IR_F32, shp(1, t.S));
	IrNode *a = t_op1(&t, g, OP_EXP, x);
	IrNode *b = t_op1(&t, g, OP_TANH, a);
	IrNode *c = t_op2(&t, g, OP_ADD, a, b);
	ir_add_output(g, c, NULL);
	/* {exp, add}: exp -> tanh (outside) -> add */
	IrNode *r1[2] = {a, c};
	CHECK(ir_fuse(g, r1, 2, OP_FUSED, "K", t.sp) == NULL);
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: cannot fuse: the subgraph is not convex: %exp leaves it and %tanh re-enters it\n");
	/* {exp, tanh}: both used by add */
	IrNode *r2[2] = {a, b};
	CHECK(ir_fuse(g, r2, 2, OP_FUSED, "K", t.sp) == NULL);
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: cannot fuse: the subgraph has 2 outputs (%exp, %tanh); a fused node has one\n");
	/* an inner value that the graph returns is an output too */
	IrNode *r3[2] = {b, c};
	ir_add_output(g, b, NULL);
	CHECK(ir_fuse(g, r3, 2, OP_FUSED, "K", t.sp) == NULL);
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: cannot fuse: the subgraph has 2 outputs (%tanh, %add); a fused node has one\n");
	g->outputs.len = 1;
	IrNode *r4[1] = {x};
	CHECK(ir_fuse(g, r4, 1, OP_FUSED, "K", t.sp) == NULL);
	CHECK_STR(t_diag(&t),
	          "slapoc: error: cannot fuse: %x is an input of the graph\n");
	IrNode *r5[2] = {a, a};
	CHECK(ir_fuse(g, r5, 2, OP_FUSED, "K", t.sp) == NULL);
	CHECK_STR(t_diag(&t), "slapoc: error: cannot fuse: %exp is listed twice\n");
	CHECK(ir_fuse(g, r5, 0, OP_FUSED, "K", t.sp) == NULL);
	CHECK_STR(t_diag(&t), "slapoc: error: cannot fuse: the subgraph is empty\n");
	IrGraph *other = ir_graph_new(&t.ctx, "O");
	IrNode *ox = t_input(&t, other, "x", IR_F32, shp(1, t.S));
	IrNode *oe = t_op1(&t, other, OP_EXP, ox);
	CHECK(ir_fuse(g, &oe, 1, OP_FUSED, "K", t.sp) == NULL);
	CHECK_STR(t_diag(&t),
	          "slapoc: error: cannot fuse: %exp is not a node of graph G\n");
	/* the graph is untouched */
	CHECK(ir_verify(g, "failed fuse") && g->nnodes == 4);
	/* {tanh, add} is fine; so is {exp, tanh, add} */
	IrNode *r6[2] = {b, c};
	IrNode *f = ir_fuse(g, r6, 2, OP_FUSED, "K", t.sp);
	CHECK(f && f->nin == 1 && f->in[0] == a && ir_verify(g, "fuse"));
	CHECK_STR(t_diag(&t), "");
}

/* A user of the output sitting between it and the region's last node:
 * the fused node must move before that user. */
static void test_reorder(void)
{
	IrGraph *g = ir_graph_new(&t.ctx, "G");
	IrNode *x = t_input(&t, g, "x", IR_F32, shp(1, t.S));
	IrNode *o = t_op1(&t, g, OP_EXP, x);
	IrNode *u = t_op1(&t, g, OP_TANH, o);
	IrNode *y = t_input(&t, g, "y", IR_F32, shp(1, t.S));
	IrNode *l = t_op2(&t, g, OP_MUL, o, y); /* in the region, used by nobody */
	ir_add_output(g, u, NULL);
	IrNode *r[2] = {o, l};
	IrNode *f = ir_fuse(g, r, 2, OP_FUSED, "K", t.sp);
	CHECK(f && ir_verify(g, "fuse"));
	CHECK_STR(t_print(&t, g), "graph G(%x: f32[S], %y: f32[S]) {\n"
	                          "  %K = K(%x, %y) : f32[S]\n"
	                          "  %tanh = tanh(%K) : f32[S]\n"
	                          "  return %tanh\n"
	                          "}\n"
	                          "\n"
	                          "fused K(%x: f32[S], %y: f32[S]) {\n"
	                          "  %exp = exp(%x) : f32[S]\n"
	                          "  %mul = mul(%exp, %y) : f32[S]\n"
	                          "  return %exp\n"
	                          "}\n");
}

/* ---- numerics before and after ---------------------------------------------------- */

typedef struct Params {
	IrTensor *val[16];
	const char *path[16];
	int n;
	uint64_t seed;
} Params;

/* Random values, made once per path and kept. */
static IrTensor *rand_param(void *user, const IrNode *n)
{
	Params *p = user;
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->path[i], n->sattr) == 0)
			return p->val[i];
	if (p->n == 16)
		return NULL;
	int64_t shape[IR_MAX_DIMS];
	for (int i = 0; i < n->shape.ndim; i++)
		shape[i] = n->shape.d[i].coef; /* params have constant shapes */
	p->path[p->n] = n->sattr;
	p->val[p->n] = t_random(n->dtype, n->shape.ndim, shape, &p->seed);
	return p->val[p->n++];
}

/* A small attention block: scores, scale, mask, softmax, context, output
 * projection with bias + gelu, residual, layer norm. */
static IrGraph *block(void)
{
	IrGraph *g = ir_graph_new(&t.ctx, "Block");
	IrDim B = t.B, S = t.S;
	IrNode *h = t_input(&t, g, "h", IR_F32, shp(3, B, S, C(8)));
	IrNode *m = t_input(&t, g, "mask", IR_F32, shp(2, B, S));
	IrNode *wq = t_param(&t, g, "q.weight", shp(2, C(8), C(8)));
	IrNode *bq = t_param(&t, g, "q.bias", shp(1, C(8)));
	IrNode *q = t_opa(&t, g, OP_LINEAR, (IrNode *[]){h, wq, bq}, 3, (IrAttrs){0});
	IrAttrs vw = {.ndattr = 4};
	vw.dattr[0] = B, vw.dattr[1] = S, vw.dattr[2] = C(2), vw.dattr[3] = C(4);
	IrNode *qv = t_opa(&t, g, OP_VIEW, &q, 1, vw);
	IrAttrs pm = {.niattr = 4, .iattr = {0, 2, 1, 3}};
	IrNode *qp = t_opa(&t, g, OP_PERMUTE, &qv, 1, pm);
	IrAttrs tr = {.niattr = 2, .iattr = {-1, -2}};
	IrNode *kt = t_opa(&t, g, OP_TRANSPOSE, &qp, 1, tr);
	IrNode *sc = t_op2(&t, g, OP_MATMUL, qp, kt);
	IrNode *scaled = t_op2(&t, g, OP_DIV, sc, t_const(&t, g, 2.0, IR_F32));
	IrAttrs un = {.niattr = 1, .iattr = {1}};
	IrNode *m3 = t_opa(&t, g, OP_UNSQUEEZE, &m, 1, un);
	IrNode *m4 = t_opa(&t, g, OP_UNSQUEEZE, &m3, 1, un);
	IrNode *one = t_const(&t, g, 1.0, IR_F32);
	IrNode *inv = t_op2(&t, g, OP_SUB, one, m4);
	IrNode *big = t_op2(&t, g, OP_MUL, inv, t_const(&t, g, -10000.0, IR_F32));
	IrNode *masked = t_op2(&t, g, OP_ADD, scaled, big);
	IrAttrs sm = {.niattr = 1, .iattr = {-1}};
	IrNode *probs = t_opa(&t, g, OP_SOFTMAX, &masked, 1, sm);
	IrNode *ctx = t_op2(&t, g, OP_MATMUL, probs, qp);
	IrNode *cp = t_opa(&t, g, OP_PERMUTE, &ctx, 1, pm);
	IrAttrs vw2 = {.ndattr = 3};
	vw2.dattr[0] = B, vw2.dattr[1] = S, vw2.dattr[2] = C(-1);
	IrNode *cv = t_opa(&t, g, OP_VIEW, &cp, 1, vw2);
	IrNode *wo = t_param(&t, g, "o.weight", shp(2, C(8), C(8)));
	IrNode *bo = t_param(&t, g, "o.bias", shp(1, C(8)));
	IrNode *lo = t_op2(&t, g, OP_LINEAR, cv, wo);
	IrNode *ab = t_op2(&t, g, OP_ADD, lo, bo);
	IrNode *ge = t_op1(&t, g, OP_GELU, ab);
	IrNode *res = t_op2(&t, g, OP_ADD, ge, h);
	IrNode *lw = t_param(&t, g, "ln.weight", shp(1, C(8)));
	IrNode *lb = t_param(&t, g, "ln.bias", shp(1, C(8)));
	IrAttrs ln = {.fattr = 1e-12};
	IrNode *out = t_opa(&t, g, OP_LAYER_NORM, (IrNode *[]){res, lw, lb}, 3, ln);
	ir_add_output(g, out, NULL);
	ir_add_output(g, probs, "probs");
	return g;
}

static bool run(IrGraph *g, IrTensor **ins, Params *ps, IrTensor **outs)
{
	IrInterp it = {.param = rand_param, .param_user = ps};
	if (!interp_run(&it, g, ins, outs)) {
		fprintf(stderr, "interp: %s\n", it.error);
		return false;
	}
	return true;
}

static void test_numerics(void)
{
	IrGraph *g = block();
	CHECK(g && ir_verify(g, "build"));
	IrGraph *f = ir_graph_clone(&t.ctx, g);

	/* fuse scale + mask + softmax, then bias + gelu + residual + layer_norm */
	IrGraph *p = ir_graph_new(&t.ctx, "scale_mask_softmax");
	IrNode *s = t_input(&t, p, "s", IR_F32, shp(1, t.S));
	IrNode *k = t_input(&t, p, "k", IR_F32, shp(1, t.S));
	IrNode *mk = t_input(&t, p, "m", IR_F32, shp(1, t.S));
	IrNode *d = t_op2(&t, p, OP_DIV, s, k);
	IrNode *a = t_op2(&t, p, OP_ADD, d, mk);
	IrAttrs sm = {.niattr = 1, .iattr = {-1}};
	ir_add_output(p, t_opa(&t, p, OP_SOFTMAX, &a, 1, sm), NULL);
	IrMatch *ms;
	CHECK(ir_match(&t.ctx, f, p, &ms) == 1);
	CHECK(ms &&
	      ir_fuse(f, ms[0].nodes, ms[0].nnodes, OP_FUSED, "FusedSoftmax_0", t.sp));
	CHECK(ir_match(&t.ctx, f, bias_gelu(), &ms) == 1);
	CHECK(ms &&
	      ir_fuse(f, ms[0].nodes, ms[0].nnodes, OP_FUSED, "FusedBiasGeLU_0", t.sp));
	/* the tail: residual add + layer norm, by hand */
	IrNode *tail[2] = {find(f, "add_2"), find(f, "layer_norm")};
	CHECK(tail[0] && tail[1]);
	CHECK(ir_fuse(f, tail, 2, OP_FUSED, "FusedAddNorm_0", t.sp) != NULL);
	CHECK(ir_verify(f, "fuse"));
	CHECK_STR(t_diag(&t), "");

	uint64_t seed = 42;
	for (int trial = 0; trial < 3; trial++) {
		int64_t bsz = 1 + trial, slen = 3 + 2 * trial;
		IrTensor *h = t_random(IR_F32, 3, (int64_t[]){bsz, slen, 8}, &seed);
		IrTensor *m = ir_tensor_new(IR_F32, 2, (int64_t[]){bsz, slen});
		for (int64_t i = 0; i < m->numel; i++)
			m->data[i] = t_rand(&seed) > -0.5; /* mostly 1, some 0 */
		IrTensor *ins[2] = {h, m};
		Params ps = {.seed = 7};
		IrTensor *o1[2] = {0}, *o2[2] = {0};
		CHECK(run(g, ins, &ps, o1));
		CHECK(run(f, ins, &ps, o2));
		for (int i = 0; i < 2; i++) {
			double r = ir_tensor_max_rel_diff(o1[i], o2[i]);
			if (!(r <= 1e-12)) {
				fprintf(stderr, "trial %d output %d: max rel diff %g\n",
				        trial, i, r);
				t_failures++;
			}
			ir_tensor_free(o1[i]);
			ir_tensor_free(o2[i]);
		}
		for (int i = 0; i < ps.n; i++)
			ir_tensor_free(ps.val[i]);
		ir_tensor_free(h);
		ir_tensor_free(m);
	}
}

int main(void)
{
	t_init(&t);
	test_happy();
	test_errors();
	test_reorder();
	test_numerics();
	t_fini(&t);
	return t_done("test_fuse");
}
