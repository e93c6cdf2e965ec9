/* test_graph.c - building and naming nodes, editing the node list,
 * clone, inline, dce, toposort, and the verifier's reports. */
#include "test_util.h"

static T t;

static const char *order(const IrGraph *g)
{
	StrBuf b = {0};
	for (const IrNode *n = g->first; n; n = n->next)
		sb_printf(&b, "%s%s", n == g->first ? "" : " ", n->name);
	const char *r = arena_strdup(&t.arena, b.data ? b.data : "");
	sb_free(&b);
	return r;
}

static void test_names(void)
{
	IrGraph *g = ir_graph_new(&t.ctx, "G");
	CHECK_STR(ir_unique_name(g, "add"), "add");
	CHECK_STR(ir_unique_name(g, "add"), "add_1");
	CHECK_STR(ir_unique_name(g, "add"), "add_2");
	CHECK_STR(ir_unique_name(g, "dense.weight"), "dense_weight");
	CHECK_STR(ir_unique_name(g, "dense.weight"), "dense_weight_1");
	CHECK_STR(ir_unique_name(g, "layer.0"), "layer_0");
	CHECK_STR(ir_unique_name(g, "layer.0"),
	          "layer_1"); /* fx counts on from the suffix */
	CHECK_STR(ir_unique_name(g, "layer.1"), "layer_2");
	CHECK_STR(ir_unique_name(g, "0abc"), "_0abc");
	CHECK_STR(ir_unique_name(g, "a-.b"), "a_b");
	CHECK_STR(ir_unique_name(g, ""), "_unnamed");
	CHECK_STR(ir_unique_name(g, "add_1"), "add_3");
	CHECK_STR(ir_unique_name(g, "FusedBiasGeLU_0"), "FusedBiasGeLU_0");
	CHECK_STR(ir_unique_name(g, "FusedBiasGeLU_0"), "FusedBiasGeLU_1");
	/* many names: the table grows */
	for (int i = 0; i < 300; i++)
		ir_unique_name(g, "mul");
	CHECK_STR(ir_unique_name(g, "mul"), "mul_300");
	CHECK_STR(ir_unique_name(g, "add"), "add_4");

	/* the builder: inputs first keep their names */
	IrGraph *h = ir_graph_new(&t.ctx, "H");
	IrNode *x = t_input(&t, h, "hidden_states", IR_F32, shp(2, t.B, C(4)));
	IrNode *a = t_op2(&t, h, OP_ADD, x, x);
	IrNode *b = t_op2(&t, h, OP_ADD, a, x);
	IrNode *c = ir_build(h, OP_ADD, (IrNode *[]){b, x}, 2, NULL, t.sp, "add");
	IrNode *p = t_param(&t, h, "encoder.layer.0.weight", shp(1, C(4)));
	IrNode *d = ir_build(h, OP_MUL, (IrNode *[]){c, p}, 2, NULL, t.sp, "my.mul");
	IrNode *p5 = t_param(&t, h, "p5", shp(1, C(5)));
	CHECK_STR(x->name, "hidden_states");
	CHECK_STR(x->sattr, "hidden_states");
	CHECK_STR(a->name, "add");
	CHECK_STR(b->name, "add_1");
	CHECK_STR(c->name, "add_2");
	CHECK_STR(p->name, "encoder_layer_0_weight");
	CHECK_STR(p->sattr, "encoder.layer.0.weight");
	CHECK_STR(d->name, "my_mul");
	CHECK(x->id == 0 && a->id == 1 && d->id == 5 && h->next_id == 7 &&
	      h->nnodes == 7);
	CHECK(h->inputs.len == 1); /* the caller appends inputs */
	/* a failed build takes no id and no name */
	CHECK(t_op2(&t, h, OP_ADD, x, p5) == NULL);
	CHECK(h->next_id == 7 && h->nnodes == 7);
	CHECK_STR(t_diag(&t),
	          "slapoc: error: add: shapes [B, 4] and [5] do not broadcast\n");
	CHECK_STR(t_op2(&t, h, OP_ADD, x, p)->name, "add_3");
}

static void test_edit(void)
{
	IrGraph *g = ir_graph_new(&t.ctx, "G");
	IrNode *x = t_input(&t, g, "x", IR_F32, shp(1, C(4)));
	IrNode *a = t_op1(&t, g, OP_EXP, x);
	IrNode *b = t_op2(&t, g, OP_MUL, a, a);
	IrNode *c = t_op2(&t, g, OP_ADD, b, a);
	ir_add_output(g, c, "out");
	CHECK_STR(order(g), "x exp mul add");
	CHECK_STR((const char *)g->output_names.items[0], "out");

	IrNode **users;
	CHECK(ir_node_uses(g, a, &users) == 2 && users[0] == b && users[1] == c);
	CHECK(ir_node_uses(g, c, NULL) == 0);

	/* a new node inserted before mul, then uses of exp redirected to it */
	IrNode *n = t_op1(&t, g, OP_NEG, a);
	CHECK_STR(order(g), "x exp mul add neg");
	ir_insert_before(g, b, n);
	CHECK_STR(order(g), "x exp neg mul add");
	CHECK(g->nnodes == 5);
	ir_replace_uses(g, a, n); /* not in neg itself */
	CHECK(n->in[0] == a && b->in[0] == n && b->in[1] == n && c->in[1] == n);
	CHECK(ir_verify(g, "test"));

	/* removing a used node is refused */
	ir_node_remove(g, n);
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: internal error: removing %neg from graph G while it is still used\n");
	CHECK(g->nnodes == 5);

	/* replacing an output */
	IrNode *s = t_op1(&t, g, OP_SIGMOID, c);
	ir_replace_uses(g, c, s);
	CHECK(g->outputs.items[0] == s);
	ir_insert_before(g, NULL, x); /* move to the end: order now broken */
	CHECK_STR(order(g), "exp neg mul add sigmoid x");
	CHECK(!ir_verify(g, "move"));
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: internal error: graph G invalid after move: %exp uses %x, which comes after it\n");
	ir_toposort(g);
	CHECK_STR(order(g), "x exp neg mul add sigmoid");
	CHECK(ir_verify(g, "toposort"));

	/* dce: a dead chain goes, inputs stay */
	IrNode *d1 = t_op1(&t, g, OP_TANH, c);
	t_op1(&t, g, OP_RELU, d1);
	IrNode *y = t_input(&t, g, "y", IR_F32, shp(1, C(4)));
	(void)y;
	CHECK(g->nnodes == 9);
	ir_dce(g);
	CHECK_STR(order(g), "x exp neg mul add sigmoid y");
	CHECK(ir_verify(g, "dce"));
}

static void test_clone_inline(void)
{
	/* Linear as a module graph: input, params, linear */
	IrGraph *lin = ir_graph_new(&t.ctx, "Linear");
	IrNode *x = t_input(&t, lin, "input", IR_F32, shp(3, t.B, t.S, C(8)));
	IrNode *w = t_param(&t, lin, "weight", shp(2, C(16), C(8)));
	IrNode *b = t_param(&t, lin, "bias", shp(1, C(16)));
	IrNode *l = t_opa(&t, lin, OP_LINEAR, (IrNode *[]){x, w, b}, 3, (IrAttrs){0});
	ir_add_output(lin, l, NULL);

	IrGraph *cl = ir_graph_clone(&t.ctx, lin);
	CHECK_STR(t_print(&t, cl), t_print(&t, lin));
	CHECK(cl->first != lin->first && cl->inputs.items[0] == cl->first);
	CHECK(cl->outputs.items[0] == cl->last && cl->last->in[1] == cl->first->next);
	CHECK(ir_verify(cl, "clone"));
	CHECK_STR(ir_unique_name(cl, "linear"), "linear_1");

	/* inline it twice into a parent, under two prefixes */
	IrGraph *g = ir_graph_new(&t.ctx, "Parent");
	IrNode *h = t_input(&t, g, "h", IR_F32, shp(3, t.B, t.S, C(8)));
	IrNode *tail = t_op1(&t, g, OP_NEG, h);
	IrNode *outs[1];
	CHECK(ir_inline(g, tail, lin, &h, "dense", outs));
	IrNode *ret = t_op1(&t, g, OP_RELU, outs[0]);
	IrNode *outs2[1];
	CHECK(ir_inline(g, NULL, lin, &h, "", outs2));
	ir_add_output(g, ret, NULL);
	ir_add_output(g, outs2[0], NULL);
	ir_add_output(g, tail, NULL);
	CHECK(ir_verify(g, "inline"));
	CHECK_STR(t_print(&t, g),
	          "graph Parent(%h: f32[B, S, 8]) {\n"
	          "  %dense_weight = param \"dense.weight\" : f32[16, 8]\n"
	          "  %dense_bias = param \"dense.bias\" : f32[16]\n"
	          "  %linear = linear(%h, %dense_weight, %dense_bias) : f32[B, S, 16]\n"
	          "  %neg = neg(%h) : f32[B, S, 8]\n"
	          "  %relu = relu(%linear) : f32[B, S, 16]\n"
	          "  %weight = param \"weight\" : f32[16, 8]\n"
	          "  %bias = param \"bias\" : f32[16]\n"
	          "  %linear_1 = linear(%h, %weight, %bias) : f32[B, S, 16]\n"
	          "  return %relu, %linear_1, %neg\n"
	          "}\n");

	/* a failing inline leaves the graph as it was */
	IrGraph *g2 = ir_graph_new(&t.ctx, "P2");
	IrNode *h2 = t_input(&t, g2, "h", IR_F32, shp(3, t.B, t.S, C(7)));
	IrNode *o2[1];
	CHECK(!ir_inline(g2, NULL, lin, &h2, "dense", o2));
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: linear: input has 7 features but the weight expects 8 (weight f32[16, 8])\n");
	CHECK_STR(order(g2), "h");
	CHECK(ir_verify(g2, "failed inline"));
}

static void test_verify(void)
{
	IrGraph *g = ir_graph_new(&t.ctx, "V");
	IrNode *x = t_input(&t, g, "x", IR_F32, shp(2, t.B, C(4)));
	IrNode *a = t_op1(&t, g, OP_EXP, x);
	IrNode *b = t_op2(&t, g, OP_ADD, a, x);
	ir_add_output(g, b, NULL);
	CHECK(ir_verify(g, "build"));

	a->shape.d[1] = C(5);
	CHECK(!ir_verify(g, "edit"));
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: internal error: graph V invalid after edit: %exp is f32[B, 5] but its inputs give f32[B, 4]\n");
	a->shape.d[1] = C(4);

	a->name = "add";
	CHECK(!ir_verify(g, "rename"));
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: internal error: graph V invalid after rename: two nodes are named %add\n");
	a->name = "exp";

	b->nin = 1;
	CHECK(!ir_verify(g, "arity"));
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: internal error: graph V invalid after arity: %add (add) has 1 inputs\n");
	b->nin = 2;

	IrGraph *other = ir_graph_new(&t.ctx, "O");
	IrNode *z = t_input(&t, other, "z", IR_F32, shp(2, t.B, C(4)));
	IrNode *z2 = t_op1(&t, other, OP_EXP, z);
	z2->id = 9; /* ids beyond the graph's range */
	b->in[1] = z;
	CHECK(!ir_verify(g, "mix"));
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: internal error: graph V invalid after mix: %add uses %z, which is not in the graph\n");
	b->in[1] = x;

	ir_add_output(g, z2, NULL);
	CHECK(!ir_verify(g, "out"));
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: internal error: graph V invalid after out: output 1 (%exp) is not a node of the graph\n");
	g->outputs.len = 1;

	/* a shape rule that now fails */
	IrNode *w = t_param(&t, g, "w", shp(2, C(3), C(4)));
	IrNode *l = t_op2(&t, g, OP_LINEAR, x, w);
	w->shape.d[1] = C(6);
	CHECK(!ir_verify(g, "shard"));
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: internal error: graph V invalid after shard: %linear: its shape rule now fails: linear: input has 4 features but the weight expects 6 (weight f32[3, 6])\n");
	w->shape.d[1] = C(4);
	(void)l;

	g->nnodes++;
	CHECK(!ir_verify(g, "count"));
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: internal error: graph V invalid after count: the graph counts 6 nodes but holds 5\n");
	g->nnodes--;
	CHECK(ir_verify(g, "fixed"));
}

int main(void)
{
	t_init(&t);
	test_names();
	test_edit();
	test_clone_inline();
	test_verify();
	t_fini(&t);
	return t_done("test_graph");
}
