/* test_dim.c - symbolic dims: algebra and printing. */
#include "test_util.h"

static const char *pd(T *t, IrDim d)
{
	StrBuf b = {0};
	ir_dim_print(&b, &t->ctx, d);
	const char *r = arena_strdup(&t->arena, b.data);
	sb_free(&b);
	return r;
}

static const char *ps(T *t, IrShape s)
{
	StrBuf b = {0};
	ir_shape_print(&b, &t->ctx, &s);
	const char *r = arena_strdup(&t->arena, b.data);
	sb_free(&b);
	return r;
}

int main(void)
{
	T t;
	t_init(&t);
	IrDim B = t.B, S = t.S, r;

	/* symbols are interned */
	CHECK(ir_sym(&t.ctx, "B", t.sp) == 0);
	CHECK(ir_sym(&t.ctx, "S", t.sp) == 1);
	CHECK(t.ctx.nsyms == 2);

	/* printing */
	CHECK_STR(pd(&t, C(768)), "768");
	CHECK_STR(pd(&t, C(0)), "0");
	CHECK_STR(pd(&t, C(-1)), "-1");
	CHECK_STR(pd(&t, B), "B");
	CHECK_STR(pd(&t, ir_dim_mul(B, S)), "B*S");
	CHECK_STR(pd(&t, ir_dim_mul(S, B)), "B*S");
	CHECK_STR(pd(&t, ir_dim_mul(C(12), S)), "12*S");
	CHECK_STR(pd(&t, ir_dim_mul(S, C(12))), "12*S");
	CHECK_STR(pd(&t, ir_dim_mul(S, S)), "S^2");
	CHECK_STR(pd(&t, ir_dim_mul(ir_dim_mul(C(768), B), ir_dim_mul(S, S))),
	          "768*B*S^2");
	CHECK_STR(pd(&t, ir_dim_mul(C(-1), S)), "-S");
	CHECK_STR(pd(&t, ir_dim_mul(C(-2), S)), "-2*S");
	CHECK_STR(ps(&t, shp(3, B, S, C(768))), "[B, S, 768]");
	CHECK_STR(ps(&t, shp(0)), "[]");

	/* equality, constness */
	CHECK(ir_dim_is_const(C(3)));
	CHECK(!ir_dim_is_const(S));
	CHECK(ir_dim_eq(ir_dim_mul(B, S), ir_dim_mul(S, B)));
	CHECK(!ir_dim_eq(B, S));
	CHECK(ir_dim_eq(ir_dim_mul(C(0), S), C(0)));
	CHECK(ir_dim_eq(ir_dim_mul(C(1), S), S));

	/* exact division */
	CHECK(ir_dim_div(ir_dim_mul(C(768), ir_dim_mul(B, S)), ir_dim_mul(C(12), B), &r));
	CHECK_STR(pd(&t, r), "64*S");
	CHECK(ir_dim_div(C(768), C(12), &r) && ir_dim_eq(r, C(64)));
	CHECK(!ir_dim_div(C(768), C(7), &r));
	CHECK(!ir_dim_div(C(768), S, &r));
	CHECK(!ir_dim_div(S, B, &r));
	CHECK(!ir_dim_div(S, C(2), &r));
	CHECK(!ir_dim_div(S, C(0), &r));
	CHECK(ir_dim_div(S, S, &r) && ir_dim_eq(r, C(1)));
	CHECK(ir_dim_div(C(0), S, &r) && ir_dim_eq(r, C(0)));
	CHECK(!ir_dim_div(C(INT64_MIN), C(-1), &r));

	/* sums of like terms */
	CHECK(ir_dim_add(S, S, &r) && ir_dim_eq(r, ir_dim_mul(C(2), S)));
	CHECK(ir_dim_add(C(3), C(4), &r) && ir_dim_eq(r, C(7)));
	CHECK(ir_dim_add(S, C(0), &r) && ir_dim_eq(r, S));
	CHECK(ir_dim_add(S, ir_dim_mul(C(-1), S), &r) && ir_dim_eq(r, C(0)));
	CHECK(!ir_dim_add(S, C(1), &r));
	CHECK(!ir_dim_add(S, B, &r));

	/* evaluation */
	int64_t vals[IR_MAX_SYMS] = {2, 5};
	CHECK(ir_dim_eval(ir_dim_mul(C(12), ir_dim_mul(B, ir_dim_mul(S, S))), vals) ==
	      600);
	CHECK(ir_dim_eval(C(7), NULL) == 7);

	/* shapes */
	IrShape a = shp(3, B, S, C(768)), b = shp(3, B, S, C(768)), c = shp(2, B, S);
	CHECK(ir_shape_eq(&a, &b));
	CHECK(!ir_shape_eq(&a, &c));
	CHECK_STR(pd(&t, ir_shape_numel(&a)), "768*B*S");
	CHECK_STR(pd(&t, ir_shape_numel(&(IrShape){0})), "1");

	/* the symbol table fills up */
	for (int i = 2; i < IR_MAX_SYMS; i++) {
		char name[8];
		snprintf(name, sizeof name, "N%d", i);
		CHECK(ir_sym(&t.ctx, name, t.sp) == i);
	}
	CHECK(ir_sym(&t.ctx, "X", t.sp) == -1);
	CHECK_STR(
	        t_diag(&t),
	        "slapoc: error: too many symbolic dimensions: 'X' would be the 9th (at most 8)\n");

	/* dtypes and the op table */
	IrDType dt;
	CHECK_STR(ir_dtype_name(IR_BF16), "bf16");
	CHECK(ir_dtype_parse("i64", &dt) && dt == IR_I64);
	CHECK(!ir_dtype_parse("f8", &dt));
	CHECK(ir_dtype_is_float(IR_F16) && !ir_dtype_is_float(IR_I32));
	IrOp op;
	CHECK(ir_op_lookup("layer_norm", &op) && op == OP_LAYER_NORM);
	CHECK(ir_op_lookup("gelu_tanh", &op) && op == OP_GELU_TANH);
	CHECK(!ir_op_lookup("conv2d", &op));
	CHECK_STR(ir_ops[OP_MASKED_FILL].name, "masked_fill");
	CHECK(ir_ops[OP_ADD].flags & OPF_COMMUTATIVE);
	CHECK(ir_ops[OP_LINEAR].arity == -1);
	for (int i = 0; i < OP_COUNT; i++)
		CHECK(ir_ops[i].name && ir_ops[i].shape && ir_ops[i].interp);
	CHECK(ir_axis(-1, 3) == 2 && ir_axis(3, 3) == -1 && ir_axis(-4, 3) == -1);

	t_fini(&t);
	return t_done("test_dim");
}
