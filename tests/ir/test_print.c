/* test_print.c - the graph text form, exactly. */
#include "test_util.h"

static T t;

static void test_bert_intermediate(void)
{
	IrGraph *g = ir_graph_new(&t.ctx, "BertIntermediate");
	IrNode *h = t_input(&t, g, "hidden_states", IR_F32, shp(3, t.B, t.S, C(1024)));
	IrNode *w = t_param(&t, g, "dense.weight", shp(2, C(4096), C(1024)));
	IrNode *l = t_op2(&t, g, OP_LINEAR, h, w);
	IrNode *b = t_param(&t, g, "dense.bias", shp(1, C(4096)));
	IrNode *a = t_op2(&t, g, OP_ADD, l, b);
	IrNode *ge = t_op1(&t, g, OP_GELU, a);
	ir_add_output(g, ge, NULL);
	CHECK_STR(t_print(&t, g),
	          "graph BertIntermediate(%hidden_states: f32[B, S, 1024]) {\n"
	          "  %dense_weight = param \"dense.weight\" : f32[4096, 1024]\n"
	          "  %linear = linear(%hidden_states, %dense_weight) : f32[B, S, 4096]\n"
	          "  %dense_bias = param \"dense.bias\" : f32[4096]\n"
	          "  %add = add(%linear, %dense_bias) : f32[B, S, 4096]\n"
	          "  %gelu = gelu(%add) : f32[B, S, 4096]\n"
	          "  return %gelu\n"
	          "}\n");
	StrBuf sb = {0};
	ir_node_print(&sb, &t.ctx, a);
	CHECK_STR(sb.data, "%add = add(%linear, %dense_bias) : f32[B, S, 4096]");
	sb_free(&sb);
}

static void test_attrs(void)
{
	IrGraph *g = ir_graph_new(&t.ctx, "Attn");
	IrNode *x = t_input(&t, g, "x", IR_F32, shp(3, t.B, t.S, C(768)));
	IrNode *m = t_input(&t, g, "mask", IR_BOOL, shp(2, t.B, t.S));
	IrNode *ids = t_input(&t, g, "ids", IR_I64, shp(2, t.B, t.S));
	IrNode *lw = t_param(&t, g, "ln.weight", shp(1, C(768)));
	IrNode *lb = t_param(&t, g, "ln.bias", shp(1, C(768)));
	IrAttrs ln = {.fattr = 1e-12};
	t_opa(&t, g, OP_LAYER_NORM, (IrNode *[]){x, lw, lb}, 3, ln);
	IrNode *v = t_opa(&t, g, OP_VIEW, &x, 1, t_dims(shp(4, t.B, t.S, C(12), C(64))));
	IrNode *p = t_opa(&t, g, OP_PERMUTE, &v, 1, t_ints(4, (int64_t[]){0, 2, 1, 3}));
	IrNode *tr = t_opa(&t, g, OP_TRANSPOSE, &p, 1, t_ints(2, (int64_t[]){-1, -2}));
	IrNode *mm = t_op2(&t, g, OP_MATMUL, p, tr);
	IrNode *k = t_const(&t, g, 0.125, IR_F32);
	IrNode *sc = t_op2(&t, g, OP_MUL, mm, k);
	IrNode *sm = t_opa(&t, g, OP_SOFTMAX, &sc, 1, t_ints(1, (int64_t[]){-1}));
	IrNode *u = t_opa(&t, g, OP_UNSQUEEZE, &m, 1, t_ints(1, (int64_t[]){1}));
	IrNode *u2 = t_opa(&t, g, OP_UNSQUEEZE, &u, 1, t_ints(1, (int64_t[]){2}));
	IrAttrs mf = {.fattr = -INFINITY};
	IrNode *mfn = t_opa(&t, g, OP_MASKED_FILL, (IrNode *[]){sm, u2}, 2, mf);
	IrAttrs dr = {.fattr = 0.1};
	t_opa(&t, g, OP_DROPOUT, &mfn, 1, dr);
	IrAttrs sl = t_ints(1, (int64_t[]){1});
	sl.ndattr = 2;
	sl.dattr[0] = C(0);
	sl.dattr[1] = t.S;
	t_opa(&t, g, OP_SLICE, &x, 1, sl);
	sl.dattr[0] = C(1);
	sl.dattr[1] = C(INT64_MAX);
	sl.iattr[0] = 2;
	sl.iattr[1] = 2;
	sl.niattr = 2;
	t_opa(&t, g, OP_SLICE, &x, 1, sl);
	t_opa(&t, g, OP_SELECT, &x, 1, t_ints(2, (int64_t[]){1, 0}));
	IrAttrs red = t_ints(2, (int64_t[]){1, -1});
	red.flags = 1;
	t_opa(&t, g, OP_SUM, &x, 1, red);
	t_opa(&t, g, OP_MEAN, &x, 1, t_ints(1, (int64_t[]){-1}));
	t_opa(&t, g, OP_MAX, &x, 1, (IrAttrs){0});
	t_opa(&t, g, OP_CAT, (IrNode *[]){x, x}, 2, t_ints(1, (int64_t[]){-1}));
	t_opa(&t, g, OP_CAST, &ids, 1, t_ints(1, (int64_t[]){IR_F32}));
	IrNode *e4 = t_opa(&t, g, OP_VIEW, &m, 1, t_dims(shp(4, t.B, C(1), C(1), t.S)));
	t_opa(&t, g, OP_EXPAND, &e4, 1, t_dims(shp(4, C(-1), C(12), t.S, C(-1))));
	IrAttrs ar = {.ndattr = 1};
	ar.dattr[0] = t.S;
	ir_build(g, OP_ARANGE, NULL, 0, &ar, t.sp, NULL);
	t_const(&t, g, 3, IR_I64);
	t_const(&t, g, 1, IR_BOOL);
	t_const(&t, g, 1e-12, IR_F64);
	IrNode *o1 = t_op1(&t, g, OP_CONTIGUOUS, p);
	ir_add_output(g, o1, NULL);
	ir_add_output(g, mfn, NULL);
	CHECK_STR(
	        t_print(&t, g),
	        "graph Attn(%x: f32[B, S, 768], %mask: bool[B, S], %ids: i64[B, S]) {\n"
	        "  %ln_weight = param \"ln.weight\" : f32[768]\n"
	        "  %ln_bias = param \"ln.bias\" : f32[768]\n"
	        "  %layer_norm = layer_norm(%x, %ln_weight, %ln_bias, eps=1e-12) : f32[B, S, 768]\n"
	        "  %view = view(%x, [B, S, 12, 64]) : f32[B, S, 12, 64]\n"
	        "  %permute = permute(%view, [0, 2, 1, 3]) : f32[B, 12, S, 64]\n"
	        "  %transpose = transpose(%permute, -1, -2) : f32[B, 12, 64, S]\n"
	        "  %matmul = matmul(%permute, %transpose) : f32[B, 12, S, S]\n"
	        "  %const = const 0.125 : f32[]\n"
	        "  %mul = mul(%matmul, %const) : f32[B, 12, S, S]\n"
	        "  %softmax = softmax(%mul, dim=-1) : f32[B, 12, S, S]\n"
	        "  %unsqueeze = unsqueeze(%mask, dim=1) : bool[B, 1, S]\n"
	        "  %unsqueeze_1 = unsqueeze(%unsqueeze, dim=2) : bool[B, 1, 1, S]\n"
	        "  %masked_fill = masked_fill(%softmax, %unsqueeze_1, value=-inf) : f32[B, 12, S, S]\n"
	        "  %dropout = dropout(%masked_fill, p=0.1) : f32[B, 12, S, S]\n"
	        "  %slice = slice(%x, dim=1, 0:S) : f32[B, S, 768]\n"
	        "  %slice_1 = slice(%x, dim=2, 1::2) : f32[B, S, 384]\n"
	        "  %select = select(%x, dim=1, index=0) : f32[B, 768]\n"
	        "  %sum = sum(%x, dims=[1, -1], keepdim=true) : f32[B, 1, 1]\n"
	        "  %mean = mean(%x, dims=[-1]) : f32[B, S]\n"
	        "  %max = max(%x) : f32[]\n"
	        "  %cat = cat(%x, %x, dim=-1) : f32[B, S, 1536]\n"
	        "  %cast = cast(%ids, f32) : f32[B, S]\n"
	        "  %view_1 = view(%mask, [B, 1, 1, S]) : bool[B, 1, 1, S]\n"
	        "  %expand = expand(%view_1, [-1, 12, S, -1]) : bool[B, 12, S, S]\n"
	        "  %arange = arange(S) : i64[S]\n"
	        "  %const_1 = const 3 : i64[]\n"
	        "  %const_2 = const true : bool[]\n"
	        "  %const_3 = const 1e-12 : f64[]\n"
	        "  %contiguous = contiguous(%permute) : f32[B, 12, S, 64]\n"
	        "  return %contiguous, %masked_fill\n"
	        "}\n");
}

static void test_calls(void)
{
	/* a fused body, a call, a nested fused body */
	IrGraph *inner = ir_graph_new(&t.ctx, "Inner_0");
	IrNode *ia = t_input(&t, inner, "a", IR_F32, shp(1, t.S));
	ir_add_output(inner, t_op1(&t, inner, OP_EXP, ia), NULL);

	IrGraph *body = ir_graph_new(&t.ctx, "FusedBiasGeLU_0");
	IrNode *bx = t_input(&t, body, "linear", IR_F32, shp(1, t.S));
	IrNode *bb = t_input(&t, body, "dense_bias", IR_F32, shp(1, t.S));
	IrNode *ad = t_op2(&t, body, OP_ADD, bx, bb);
	IrAttrs fa = {.sattr = "Inner_0", .sub = inner};
	IrNode *fi = ir_build(body, OP_FUSED, &ad, 1, &fa, t.sp, NULL);
	ir_add_output(body, t_op1(&t, body, OP_GELU, fi), NULL);

	IrGraph *leaf = ir_graph_new(&t.ctx, "Dropout");
	IrNode *lx = t_input(&t, leaf, "input", IR_F32, shp(1, t.S));
	ir_add_output(leaf, lx, NULL);

	IrGraph *g = ir_graph_new(&t.ctx, "M");
	IrNode *x = t_input(&t, g, "x", IR_F32, shp(1, t.S));
	IrAttrs ca = {.sattr = "dropout", .sub = leaf};
	IrNode *cl = ir_build(g, OP_CALL, &x, 1, &ca, t.sp, NULL);
	IrAttrs fb = {.sattr = "FusedBiasGeLU_0", .sub = body};
	IrNode *f1 = ir_build(g, OP_FUSED, (IrNode *[]){cl, x}, 2, &fb, t.sp, NULL);
	IrNode *f2 = ir_build(g, OP_FUSED, (IrNode *[]){f1, x}, 2, &fb, t.sp, NULL);
	ir_add_output(g, f2, NULL);
	CHECK(ir_verify(g, "build"));
	CHECK_STR(t_print(&t, g),
	          "graph M(%x: f32[S]) {\n"
	          "  %dropout = call \"dropout\"(%x) : f32[S]\n"
	          "  %FusedBiasGeLU_0 = FusedBiasGeLU_0(%dropout, %x) : f32[S]\n"
	          "  %FusedBiasGeLU_1 = FusedBiasGeLU_0(%FusedBiasGeLU_0, %x) : f32[S]\n"
	          "  return %FusedBiasGeLU_1\n"
	          "}\n"
	          "\n"
	          "fused FusedBiasGeLU_0(%linear: f32[S], %dense_bias: f32[S]) {\n"
	          "  %add = add(%linear, %dense_bias) : f32[S]\n"
	          "  %Inner_0 = Inner_0(%add) : f32[S]\n"
	          "  %gelu = gelu(%Inner_0) : f32[S]\n"
	          "  return %gelu\n"
	          "}\n"
	          "\n"
	          "fused Inner_0(%a: f32[S]) {\n"
	          "  %exp = exp(%a) : f32[S]\n"
	          "  return %exp\n"
	          "}\n");
}

int main(void)
{
	t_init(&t);
	test_bert_intermediate();
	test_attrs();
	test_calls();
	t_fini(&t);
	return t_done("test_print");
}
