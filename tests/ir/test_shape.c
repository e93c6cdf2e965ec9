/* test_shape.c - every shape rule: results, dtypes, and the exact text
 * of its error messages. */
#include "test_util.h"

static T t;
static IrGraph *g;

static const char *ty(const IrNode *n)
{
	if (!n)
		return "(null)";
	StrBuf b = {0};
	ir_type_print(&b, &t.ctx, n->dtype, &n->shape);
	const char *r = arena_strdup(&t.arena, b.data);
	sb_free(&b);
	return r;
}

static IrNode *in(const char *name, IrDType dt, IrShape s)
{
	return t_input(&t, g, name, dt, s);
}

static IrNode *op1(IrOp op, IrNode *a, IrAttrs at)
{
	return t_opa(&t, g, op, &a, 1, at);
}

static IrNode *op2(IrOp op, IrNode *a, IrNode *b, IrAttrs at)
{
	IrNode *v[2] = {a, b};
	return t_opa(&t, g, op, v, 2, at);
}

static IrNode *op3(IrOp op, IrNode *a, IrNode *b, IrNode *c, IrAttrs at)
{
	IrNode *v[3] = {a, b, c};
	return t_opa(&t, g, op, v, 3, at);
}

#define ERR(expr, msg)                                                                   \
	do {                                                                             \
		CHECK((expr) == NULL);                                                   \
		CHECK_STR(t_diag(&t), "slapoc: error: " msg "\n");                       \
	} while (0)

static IrAttrs ints(int n, ...)
{
	IrAttrs a = {0};
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		a.iattr[i] = va_arg(ap, int);
	va_end(ap);
	a.niattr = n;
	return a;
}

int main(void)
{
	t_init(&t);
	g = ir_graph_new(&t.ctx, "G");
	IrDim B = t.B, S = t.S;
	IrAttrs none = {0};

	IrNode *x = in("x", IR_F32, shp(3, B, S, C(768)));
	IrNode *scores = in("scores", IR_F32, shp(4, B, C(12), S, S));
	IrNode *bias = in("bias", IR_F32, shp(1, C(768)));
	IrNode *ids = in("ids", IR_I64, shp(2, B, S));
	IrNode *mask = in("mask", IR_BOOL, shp(4, B, C(1), C(1), S));
	IrNode *h16 = in("h16", IR_F16, shp(3, B, S, C(768)));
	IrNode *i32 = in("i32", IR_I32, shp(2, B, S));
	IrNode *one = t_const(&t, g, 0.125, IR_F32);
	IrNode *ione = t_const(&t, g, 2, IR_I64);
	CHECK_STR(ty(one), "f32[]");

	/* broadcasting and promotion */
	CHECK_STR(ty(op2(OP_ADD, x, bias, none)), "f32[B, S, 768]");
	CHECK_STR(ty(op2(OP_MUL, scores, one, none)), "f32[B, 12, S, S]");
	CHECK_STR(ty(op2(OP_ADD, scores, op1(OP_CAST, mask, ints(1, IR_F32)), none)),
	          "f32[B, 12, S, S]");
	CHECK_STR(ty(op2(OP_ADD, h16, one, none)),
	          "f16[B, S, 768]"); /* scalar: no widening */
	CHECK_STR(ty(op2(OP_ADD, h16, x, none)), "f32[B, S, 768]");
	CHECK_STR(ty(op2(OP_ADD, ids, i32, none)), "i64[B, S]");
	CHECK_STR(ty(op2(OP_ADD, ids, one, none)), "f32[B, S]"); /* float wins */
	CHECK_STR(ty(op2(OP_MUL, i32, ione, none)), "i32[B, S]");
	CHECK_STR(ty(op2(OP_DIV, ids, ione, none)), "f32[B, S]"); /* true division */
	CHECK_STR(ty(op2(OP_SUB, one, x, none)), "f32[B, S, 768]");
	CHECK_STR(ty(op2(OP_MAXIMUM, x, x, none)), "f32[B, S, 768]");
	ERR(op2(OP_ADD, x, scores, none),
	    "add: shapes [B, S, 768] and [B, 12, S, S] do not broadcast");
	ERR(op2(OP_SUB, bias, ids, none),
	    "sub: shapes [768] and [B, S] do not broadcast");

	/* comparisons, where, masked_fill */
	CHECK_STR(ty(op2(OP_EQ, ids, ione, none)), "bool[B, S]");
	CHECK_STR(ty(op2(OP_LT, x, bias, none)), "bool[B, S, 768]");
	ERR(op2(OP_GT, x, scores, none),
	    "gt: shapes [B, S, 768] and [B, 12, S, S] do not broadcast");
	CHECK_STR(ty(op3(OP_WHERE, mask, scores, one, none)), "f32[B, 12, S, S]");
	ERR(op3(OP_WHERE, x, scores, one, none),
	    "where: the condition must be bool, got f32[B, S, 768]");
	ERR(op3(OP_WHERE, mask, x, one, none),
	    "where: shapes [B, 1, 1, S], [B, S, 768] and [] do not broadcast");
	IrAttrs fill = {.fattr = -1e4};
	CHECK_STR(ty(op2(OP_MASKED_FILL, scores, mask, fill)), "f32[B, 12, S, S]");
	ERR(op2(OP_MASKED_FILL, x, mask, fill),
	    "masked_fill: mask [B, 1, 1, S] does not broadcast to [B, S, 768]");
	ERR(op2(OP_MASKED_FILL, scores, x, fill),
	    "masked_fill: the mask must be bool, got f32[B, S, 768]");

	/* unary */
	CHECK_STR(ty(op1(OP_GELU, x, none)), "f32[B, S, 768]");
	CHECK_STR(ty(op1(OP_EXP, ids, none)), "f32[B, S]");
	CHECK_STR(ty(op1(OP_NEG, ids, none)), "i64[B, S]");
	CHECK_STR(ty(op1(OP_NOT, mask, none)), "bool[B, 1, 1, S]");
	CHECK_STR(ty(op1(OP_DROPOUT, x, (IrAttrs){.fattr = 0.1})), "f32[B, S, 768]");
	CHECK_STR(ty(op1(OP_CAST, ids, ints(1, IR_F16))), "f16[B, S]");
	ERR(op1(OP_CAST, ids, ints(1, 99)), "cast: invalid target dtype 99");

	/* softmax */
	CHECK_STR(ty(op1(OP_SOFTMAX, scores, ints(1, -1))), "f32[B, 12, S, S]");
	CHECK_STR(ty(op1(OP_SOFTMAX, scores, ints(1, 3))), "f32[B, 12, S, S]");
	ERR(op1(OP_SOFTMAX, scores, ints(1, 4)),
	    "softmax: dim 4 is out of range for [B, 12, S, S]");
	ERR(op1(OP_SOFTMAX, scores, ints(1, -5)),
	    "softmax: dim -5 is out of range for [B, 12, S, S]");

	/* linear */
	IrNode *w = t_param(&t, g, "dense.weight", shp(2, C(3072), C(768)));
	IrNode *b = t_param(&t, g, "dense.bias", shp(1, C(3072)));
	IrNode *w2 = t_param(&t, g, "other.weight", shp(2, C(3072), C(1024)));
	IrNode *v3[3] = {x, w, b};
	CHECK_STR(ty(t_opa(&t, g, OP_LINEAR, v3, 3, none)), "f32[B, S, 3072]");
	CHECK_STR(ty(op2(OP_LINEAR, x, w, none)), "f32[B, S, 3072]");
	IrNode *x1024 = in("x1024", IR_F32, shp(3, B, S, C(1024)));
	ERR(op2(OP_LINEAR, x1024, w, none),
	    "linear: input has 1024 features but the weight expects 768 (weight f32[3072, 768])");
	ERR(op2(OP_LINEAR, x, w2, none),
	    "linear: input has 768 features but the weight expects 1024 (weight f32[3072, 1024])");
	ERR(op2(OP_LINEAR, x, bias, none),
	    "linear: the weight must be 2-D, got f32[768]");
	IrNode *v3b[3] = {x, w, bias};
	ERR(t_opa(&t, g, OP_LINEAR, v3b, 3, none),
	    "linear: bias f32[768] does not match the weight's 3072 outputs (weight f32[3072, 768])");
	ERR(op2(OP_LINEAR, h16, w, none),
	    "linear: the input is f16 but the weight is f32");
	ERR(t_opa(&t, g, OP_LINEAR, v3, 1, none),
	    "linear: expects 2 or 3 inputs (x, weight[, bias]), got 1");

	/* matmul */
	IrNode *q = in("q", IR_F32, shp(4, B, C(12), S, C(64)));
	IrNode *kt = in("kt", IR_F32, shp(4, B, C(12), C(64), S));
	IrNode *k1 = in("k1", IR_F32, shp(3, C(12), C(64), S));
	IrNode *kbad = in("kbad", IR_F32, shp(4, B, C(12), C(32), S));
	IrNode *kb2 = in("kb2", IR_F32, shp(4, B, C(6), C(64), S));
	CHECK_STR(ty(op2(OP_MATMUL, q, kt, none)), "f32[B, 12, S, S]");
	CHECK_STR(ty(op2(OP_MATMUL, q, k1, none)), "f32[B, 12, S, S]");
	ERR(op2(OP_MATMUL, q, kbad, none),
	    "matmul: cannot multiply [B, 12, S, 64] by [B, 12, 32, S]: inner dims 64 and 32 differ");
	ERR(op2(OP_MATMUL, q, kb2, none),
	    "matmul: batch dims of [B, 12, S, 64] and [B, 6, 64, S] do not broadcast");
	ERR(op2(OP_MATMUL, bias, kt, none),
	    "matmul: operands must have at least 2 dims, got [768] and [B, 12, 64, S]");

	/* layer_norm */
	IrNode *lw = t_param(&t, g, "ln.weight", shp(1, C(768)));
	IrNode *lb = t_param(&t, g, "ln.bias", shp(1, C(768)));
	IrNode *lw2 = t_param(&t, g, "ln2.weight", shp(1, C(1024)));
	CHECK_STR(ty(op3(OP_LAYER_NORM, x, lw, lb, (IrAttrs){.fattr = 1e-12})),
	          "f32[B, S, 768]");
	ERR(op3(OP_LAYER_NORM, x, lw2, lb, none),
	    "layer_norm: weight f32[1024] does not match the last dim of [B, S, 768]");
	ERR(op3(OP_LAYER_NORM, x, lw, lw2, none),
	    "layer_norm: bias f32[1024] does not match the last dim of [B, S, 768]");

	/* reductions */
	CHECK_STR(ty(op1(OP_SUM, scores, ints(1, -1))), "f32[B, 12, S]");
	IrAttrs kd = ints(2, 1, 3);
	kd.flags = 1;
	CHECK_STR(ty(op1(OP_MEAN, scores, kd)), "f32[B, 1, S, 1]");
	CHECK_STR(ty(op1(OP_MAX, scores, none)), "f32[]");
	CHECK_STR(ty(op1(OP_SUM, mask, ints(1, 3))), "i64[B, 1, 1]");
	CHECK_STR(ty(op1(OP_MEAN, ids, ints(1, 1))), "f32[B]");
	ERR(op1(OP_SUM, scores, ints(1, 4)),
	    "sum: dim 4 is out of range for [B, 12, S, S]");
	ERR(op1(OP_MAX, scores, ints(2, 1, -3)), "max: dim -3 is given twice");

	/* embedding */
	IrNode *tab = t_param(&t, g, "emb.weight", shp(2, C(30522), C(768)));
	CHECK_STR(ty(op2(OP_EMBEDDING, ids, tab, none)), "f32[B, S, 768]");
	CHECK_STR(ty(op2(OP_EMBEDDING, i32, tab, none)), "f32[B, S, 768]");
	ERR(op2(OP_EMBEDDING, x, tab, none),
	    "embedding: ids must be integers, got f32[B, S, 768]");
	ERR(op2(OP_EMBEDDING, ids, bias, none),
	    "embedding: the table must be 2-D, got f32[768]");

	/* view */
	CHECK_STR(ty(op1(OP_VIEW, x, t_dims(shp(4, B, S, C(12), C(64))))),
	          "f32[B, S, 12, 64]");
	CHECK_STR(ty(op1(OP_VIEW, x, t_dims(shp(4, B, S, C(12), C(-1))))),
	          "f32[B, S, 12, 64]");
	CHECK_STR(ty(op1(OP_VIEW, x, t_dims(shp(2, C(-1), C(768))))), "f32[B*S, 768]");
	CHECK_STR(ty(op1(OP_VIEW, x, t_dims(shp(3, B, C(-1), C(768))))), "f32[B, S, 768]");
	ERR(op1(OP_VIEW, x, t_dims(shp(4, B, S, C(12), C(32)))),
	    "view: cannot view [B, S, 768] (B*S*768 elements) as [B, S, 12, 32]");
	ERR(op1(OP_VIEW, x, t_dims(shp(4, B, S, C(-1), C(7)))),
	    "view: cannot view [B, S, 768] (B*S*768 elements) as [B, S, -1, 7]");
	ERR(op1(OP_VIEW, bias, t_dims(shp(2, C(5), C(100)))),
	    "view: cannot view [768] (768 elements) as [5, 100]");
	ERR(op1(OP_VIEW, x, t_dims(shp(3, B, C(-1), C(-1)))),
	    "view: only one dim can be -1 in [B, -1, -1]");
	ERR(op1(OP_VIEW, x, t_dims(shp(3, B, S, C(-2)))),
	    "view: invalid size -2 in [B, S, -2]");

	/* permute, transpose, unsqueeze */
	IrNode *heads = op1(OP_VIEW, x, t_dims(shp(4, B, S, C(12), C(64))));
	CHECK_STR(ty(op1(OP_PERMUTE, heads, ints(4, 0, 2, 1, 3))), "f32[B, 12, S, 64]");
	CHECK_STR(ty(op1(OP_PERMUTE, heads, ints(4, 0, -2, 1, -1))), "f32[B, 12, S, 64]");
	ERR(op1(OP_PERMUTE, heads, ints(4, 0, 2, 2, 3)),
	    "permute: [0, 2, 2, 3] is not a permutation of the dims of [B, S, 12, 64]");
	ERR(op1(OP_PERMUTE, heads, ints(3, 0, 2, 1)),
	    "permute: [0, 2, 1] is not a permutation of the dims of [B, S, 12, 64]");
	CHECK_STR(ty(op1(OP_TRANSPOSE, q, ints(2, -1, -2))), "f32[B, 12, 64, S]");
	ERR(op1(OP_TRANSPOSE, q, ints(2, 1, 4)),
	    "transpose: dims 1 and 4 are out of range for [B, 12, S, 64]");
	CHECK_STR(ty(op1(OP_UNSQUEEZE, ids, ints(1, 1))), "i64[B, 1, S]");
	CHECK_STR(ty(op1(OP_UNSQUEEZE, ids, ints(1, -1))), "i64[B, S, 1]");
	CHECK_STR(ty(op1(OP_UNSQUEEZE, ids, ints(1, 2))), "i64[B, S, 1]");
	ERR(op1(OP_UNSQUEEZE, ids, ints(1, 3)),
	    "unsqueeze: dim 3 is out of range for [B, S]");

	/* expand */
	IrNode *m2 = in("m2", IR_F32, shp(2, B, S));
	IrNode *m4 = op1(OP_VIEW, m2, t_dims(shp(4, B, C(1), C(1), S)));
	CHECK_STR(ty(op1(OP_EXPAND, m4, t_dims(shp(4, B, C(12), S, S)))),
	          "f32[B, 12, S, S]");
	CHECK_STR(ty(op1(OP_EXPAND, m4, t_dims(shp(4, C(-1), C(12), S, C(-1))))),
	          "f32[B, 12, S, S]");
	CHECK_STR(ty(op1(OP_EXPAND, bias, t_dims(shp(3, B, S, C(768))))), "f32[B, S, 768]");
	ERR(op1(OP_EXPAND, m4, t_dims(shp(4, B, C(12), S, C(5)))),
	    "expand: cannot expand [B, 1, 1, S] to [B, 12, S, 5]");
	ERR(op1(OP_EXPAND, m4, t_dims(shp(3, C(12), S, S))),
	    "expand: cannot expand [B, 1, 1, S] to [12, S, S]");

	/* slice and select */
	IrNode *pos = in("pos", IR_I64, shp(2, C(1), C(512)));
	IrAttrs sl = ints(1, 1);
	sl.ndattr = 2;
	sl.dattr[0] = C(0);
	sl.dattr[1] = S;
	CHECK_STR(ty(op1(OP_SLICE, pos, sl)), "i64[1, S]");
	sl.dattr[1] = C(10000); /* clamps to a constant dim */
	CHECK_STR(ty(op1(OP_SLICE, pos, sl)), "i64[1, 512]");
	sl.dattr[0] = C(-2);
	sl.dattr[1] = C(INT64_MAX);
	CHECK_STR(ty(op1(OP_SLICE, pos, sl)), "i64[1, 2]");
	IrAttrs sl2 = ints(2, 1, 2);
	sl2.ndattr = 2;
	sl2.dattr[0] = C(1);
	sl2.dattr[1] = C(6);
	CHECK_STR(ty(op1(OP_SLICE, pos, sl2)), "i64[1, 3]");
	IrAttrs sl3 = ints(1, 1);
	sl3.ndattr = 2;
	sl3.dattr[0] = C(0);
	sl3.dattr[1] = C(INT64_MAX);
	CHECK_STR(ty(op1(OP_SLICE, ids, sl3)), "i64[B, S]");
	sl3.dattr[0] = C(1);
	ERR(op1(OP_SLICE, ids, sl3), "slice: length S - 1 is not a single term");
	sl3.dattr[0] = C(-1);
	ERR(op1(OP_SLICE, ids, sl3),
	    "slice: bounds -1:9223372036854775807 of a dim of size S cannot be resolved");
	sl3.dattr[0] = C(0);
	sl3.dattr[1] = S;
	sl3.iattr[1] = 2;
	sl3.niattr = 2;
	ERR(op1(OP_SLICE, ids, sl3), "slice: length S is not divisible by the step 2");
	sl3.iattr[1] = 0;
	ERR(op1(OP_SLICE, ids, sl3), "slice: step 0 must be positive");
	sl3.iattr[0] = 2;
	sl3.iattr[1] = 1;
	ERR(op1(OP_SLICE, ids, sl3), "slice: dim 2 is out of range for [B, S]");
	CHECK_STR(ty(op1(OP_SELECT, x, ints(2, 1, 0))), "f32[B, 768]");
	CHECK_STR(ty(op1(OP_SELECT, x, ints(2, -1, -768))), "f32[B, S]");
	ERR(op1(OP_SELECT, x, ints(2, 2, 768)),
	    "select: index 768 is out of range for dim 2 of [B, S, 768]");
	ERR(op1(OP_SELECT, x, ints(2, 2, -769)),
	    "select: index -769 is out of range for dim 2 of [B, S, 768]");
	CHECK_STR(ty(op1(OP_SELECT, x, ints(2, 1, -1))), "f32[B, 768]");

	/* cat */
	IrNode *c1 = in("c1", IR_F32, shp(3, B, S, C(64)));
	IrNode *cats[3] = {c1, c1, x};
	CHECK_STR(ty(t_opa(&t, g, OP_CAT, cats, 3, ints(1, -1))), "f32[B, S, 896]");
	CHECK_STR(ty(t_opa(&t, g, OP_CAT, cats, 2, ints(1, 1))), "f32[B, 2*S, 64]");
	ERR(t_opa(&t, g, OP_CAT, cats, 3, ints(1, 1)),
	    "cat: shapes [B, S, 64] and [B, S, 768] differ outside dim 1");
	IrNode *c2 = in("c2", IR_F32, shp(3, B, C(1), C(64)));
	IrNode *cats2[2] = {c1, c2};
	ERR(t_opa(&t, g, OP_CAT, cats2, 2, ints(1, 1)),
	    "cat: sizes S and 1 along dim 1 do not add up to a single term");

	/* arange, sources */
	IrAttrs ar = {.ndattr = 1};
	ar.dattr[0] = S;
	CHECK_STR(ty(ir_build(g, OP_ARANGE, NULL, 0, &ar, t.sp, NULL)), "i64[S]");

	/* arity */
	ERR(op2(OP_GELU, x, x, none), "gelu: expects 1 input, got 2");
	ERR(op1(OP_ADD, x, none), "add: expects 2 inputs, got 1");
	ERR(t_opa(&t, g, OP_CAT, cats, 0, ints(1, 0)), "cat: expects at least one input");
	/* a NULL input (an earlier error) is passed on silently */
	CHECK(op2(OP_ADD, x, NULL, none) == NULL);
	CHECK_STR(t_diag(&t), "");

	/* call: bind the body's symbols to the actual dims */
	IrGraph *body = ir_graph_new(&t.ctx, "Body");
	{
		IrGraph *save = g;
		g = body;
		IrNode *bx = in("bx", IR_F32, shp(3, B, S, C(768)));
		IrNode *bb = in("bb", IR_F32, shp(1, C(768)));
		IrNode *r = op2(OP_ADD, bx, bb, none);
		IrNode *r2 = op1(OP_VIEW, r, t_dims(shp(2, ir_dim_mul(B, S), C(768))));
		ir_add_output(body, r2, NULL);
		g = save;
	}
	IrAttrs ca = {.sattr = "Body", .sub = body};
	CHECK_STR(ty(op2(OP_FUSED, x, bias, ca)), "f32[B*S, 768]");
	IrNode *xs = in("xs", IR_F32, shp(3, S, C(4), C(768))); /* B := S, S := 4 */
	CHECK_STR(ty(op2(OP_CALL, xs, bias, ca)), "f32[4*S, 768]");
	ERR(op2(OP_FUSED, x, lw2, ca),
	    "Body: input 2 is f32[1024] but the body expects f32[768]");
	ERR(op1(OP_FUSED, x, ca), "Body: expects 2 inputs, got 1");
	IrNode *xb = in("xb", IR_F32,
	                shp(3, S, S, C(768))); /* B and S both bound to S: fine */
	CHECK_STR(ty(op2(OP_FUSED, xb, bias, ca)), "f32[S^2, 768]");

	t_fini(&t);
	return t_done("test_shape");
}
