/* test_interp.c - the reference interpreter against values worked out
 * by hand, op by op, and its refusals (bad sizes, bad indices). */
#include "test_util.h"

static T t;
static IrGraph *g;

static IrNode *input(const char *name, IrDType dt, IrShape s)
{
	return t_input(&t, g, name, dt, s);
}

static void fresh(void)
{
	g = ir_graph_new(&t.ctx, "G");
}

/* Params by path: a tiny table. */
typedef struct Params {
	const char *path[8];
	IrTensor *val[8];
	int n;
} Params;

static IrTensor *get_param(void *user, const IrNode *n)
{
	Params *p = user;
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->path[i], n->sattr) == 0)
			return p->val[i];
	return NULL;
}

/* Run g (output 0 = node o) and compare with want[]. */
static void expect(IrNode *o, IrTensor **ins, const int64_t *syms, Params *ps,
                   const double *want, int64_t nwant, int line)
{
	if (!o) {
		fprintf(stderr, "line %d: build failed: %s", line, t_diag(&t));
		t_failures++;
		return;
	}
	g->outputs.len = 0;
	ir_add_output(g, o, NULL);
	if (!ir_verify(g, "test"))
		fprintf(stderr, "%s", t_diag(&t));
	IrInterp it = {.sym_values = syms, .param = get_param, .param_user = ps};
	IrTensor *out = NULL;
	if (!interp_run(&it, g, ins, &out)) {
		fprintf(stderr, "line %d: interp failed: %s\n", line, it.error);
		t_failures++;
		return;
	}
	if (out->numel != nwant) {
		fprintf(stderr, "line %d: %lld elements, want %lld\n", line,
		        (long long)out->numel, (long long)nwant);
		t_failures++;
	} else {
		for (int64_t i = 0; i < nwant; i++)
			if (!(fabs(out->data[i] - want[i]) <=
			      1e-12 * fmax(1, fabs(want[i])))) {
				fprintf(stderr, "line %d: [%lld] = %.17g, want %.17g\n",
				        line, (long long)i, out->data[i], want[i]);
				t_failures++;
				break;
			}
	}
	ir_tensor_free(out);
}

#define EXPECT(o, ins, syms, ps, ...)                                                    \
	do {                                                                             \
		const double w_[] = {__VA_ARGS__};                                       \
		expect(o, ins, syms, ps, w_, (int64_t)(sizeof w_ / sizeof w_[0]),        \
		       __LINE__);                                                        \
	} while (0)

static const char *run_err(IrNode *o, IrTensor **ins, const int64_t *syms, Params *ps)
{
	g->outputs.len = 0;
	ir_add_output(g, o, NULL);
	IrInterp it = {.sym_values = syms, .param = get_param, .param_user = ps};
	IrTensor *out = NULL;
	if (interp_run(&it, g, ins, &out)) {
		ir_tensor_free(out);
		return "(no error)";
	}
	CHECK(out == NULL);
	return arena_strdup(&t.arena, it.error);
}

static void test_elementwise(void)
{
	fresh();
	IrNode *a = input("a", IR_F32, shp(2, C(2), C(3)));
	IrNode *b = input("b", IR_F32, shp(1, C(3)));
	IrTensor *ta =
	        t_tensor(IR_F32, 2, (int64_t[]){2, 3}, (double[]){1, -2, 3, 0.5, 0, -1});
	IrTensor *tb = t_tensor(IR_F32, 1, (int64_t[]){3}, (double[]){10, 20, 30});
	IrTensor *ins[] = {ta, tb};
	EXPECT(t_op2(&t, g, OP_ADD, a, b), ins, NULL, NULL, 11, 18, 33, 10.5, 20, 29);
	EXPECT(t_op2(&t, g, OP_SUB, b, a), ins, NULL, NULL, 9, 22, 27, 9.5, 20, 31);
	EXPECT(t_op2(&t, g, OP_MUL, a, b), ins, NULL, NULL, 10, -40, 90, 5, 0, -30);
	EXPECT(t_op2(&t, g, OP_DIV, a, b), ins, NULL, NULL, 0.1, -0.1, 0.1, 0.05, 0,
	       -1.0 / 30);
	EXPECT(t_op2(&t, g, OP_MAXIMUM, a, t_const(&t, g, 0.25, IR_F32)), ins, NULL, NULL,
	       1, 0.25, 3, 0.5, 0.25, 0.25);
	EXPECT(t_op2(&t, g, OP_MINIMUM, a, t_const(&t, g, 0.25, IR_F32)), ins, NULL, NULL,
	       0.25, -2, 0.25, 0.25, 0, -1);
	EXPECT(t_op2(&t, g, OP_POW, a, t_const(&t, g, 2, IR_F32)), ins, NULL, NULL, 1, 4,
	       9, 0.25, 0, 1);
	EXPECT(t_op2(&t, g, OP_GT, a, t_const(&t, g, 0, IR_F32)), ins, NULL, NULL, 1, 0,
	       1, 1, 0, 0);
	EXPECT(t_op2(&t, g, OP_LE, a, t_const(&t, g, 0, IR_F32)), ins, NULL, NULL, 0, 1,
	       0, 0, 1, 1);
	EXPECT(t_op2(&t, g, OP_EQ, a, t_const(&t, g, 0, IR_F32)), ins, NULL, NULL, 0, 0,
	       0, 0, 1, 0);
	EXPECT(t_op2(&t, g, OP_NE, a, t_const(&t, g, 0, IR_F32)), ins, NULL, NULL, 1, 1,
	       1, 1, 0, 1);
	EXPECT(t_op2(&t, g, OP_LT, a, t_const(&t, g, 1, IR_F32)), ins, NULL, NULL, 0, 1,
	       0, 1, 1, 1);
	EXPECT(t_op2(&t, g, OP_GE, a, t_const(&t, g, 1, IR_F32)), ins, NULL, NULL, 1, 0,
	       1, 0, 0, 0);
	EXPECT(t_op1(&t, g, OP_NEG, a), ins, NULL, NULL, -1, 2, -3, -0.5, 0, 1);
	EXPECT(t_op1(&t, g, OP_RELU, a), ins, NULL, NULL, 1, 0, 3, 0.5, 0, 0);
	EXPECT(t_op1(&t, g, OP_EXP, a), ins, NULL, NULL, exp(1), exp(-2), exp(3),
	       exp(0.5), 1, exp(-1));
	EXPECT(t_op1(&t, g, OP_TANH, a), ins, NULL, NULL, tanh(1), tanh(-2), tanh(3),
	       tanh(0.5), 0, tanh(-1));
	EXPECT(t_op1(&t, g, OP_ERF, a), ins, NULL, NULL, erf(1), erf(-2), erf(3),
	       erf(0.5), 0, erf(-1));
	EXPECT(t_op1(&t, g, OP_SIGMOID, a), ins, NULL, NULL, 1 / (1 + exp(-1)),
	       1 / (1 + exp(2)), 1 / (1 + exp(-3)), 1 / (1 + exp(-0.5)), 0.5,
	       1 / (1 + exp(1)));
	EXPECT(t_op1(&t, g, OP_SQRT, b), ins, NULL, NULL, sqrt(10), sqrt(20), sqrt(30));
	EXPECT(t_op1(&t, g, OP_RSQRT, b), ins, NULL, NULL, 1 / sqrt(10), 1 / sqrt(20),
	       1 / sqrt(30));
	EXPECT(t_op1(&t, g, OP_LOG, b), ins, NULL, NULL, log(10), log(20), log(30));
	/* gelu, erf form: 0.5 x (1 + erf(x / sqrt 2)); known values */
	EXPECT(t_op1(&t, g, OP_GELU, a), ins, NULL, NULL, 0.8413447460685429,
	       -0.04550026389635842, 2.9959503059051098, 0.34573123063700656, 0,
	       -0.15865525393145707);
	/* tanh approximation */
	double k = sqrt(2 / M_PI);
	EXPECT(t_op1(&t, g, OP_GELU_TANH, a), ins, NULL, NULL,
	       0.5 * (1 + tanh(k * (1 + 0.044715))),
	       0.5 * -2 * (1 + tanh(k * (-2 - 0.044715 * 8))),
	       0.5 * 3 * (1 + tanh(k * (3 + 0.044715 * 27))),
	       0.5 * 0.5 * (1 + tanh(k * (0.5 + 0.044715 * 0.125))), 0,
	       -0.5 * (1 + tanh(k * (-1 - 0.044715))));
	EXPECT(t_op1(&t, g, OP_DROPOUT, a), ins, NULL, NULL, 1, -2, 3, 0.5, 0, -1);
	IrNode *ci = t_opa(&t, g, OP_CAST, &a, 1, t_ints(1, (int64_t[]){IR_I64}));
	EXPECT(ci, ins, NULL, NULL, 1, -2, 3, 0, 0, -1); /* truncates */
	IrNode *cb = t_opa(&t, g, OP_CAST, &a, 1, t_ints(1, (int64_t[]){IR_BOOL}));
	EXPECT(cb, ins, NULL, NULL, 1, 1, 1, 1, 0, 1);
	EXPECT(t_op1(&t, g, OP_NOT, cb), ins, NULL, NULL, 0, 0, 0, 0, 1, 0);
	/* integer arithmetic stays integer, division is true division */
	IrNode *i2 = t_op2(&t, g, OP_ADD, ci, t_const(&t, g, 2, IR_I64));
	EXPECT(i2, ins, NULL, NULL, 3, 0, 5, 2, 2, 1);
	EXPECT(t_op2(&t, g, OP_DIV, ci, t_const(&t, g, 2, IR_I64)), ins, NULL, NULL, 0.5,
	       -1, 1.5, 0, 0, -0.5);

	/* where and masked_fill, with broadcasting */
	IrNode *m = t_op2(&t, g, OP_GT, b, t_const(&t, g, 15, IR_F32)); /* [0, 1, 1] */
	EXPECT(t_opa(&t, g, OP_WHERE, (IrNode *[]){m, a, t_const(&t, g, -7, IR_F32)}, 3,
	             (IrAttrs){0}),
	       ins, NULL, NULL, -7, -2, 3, -7, 0, -1);
	IrAttrs mf = {.fattr = -1e4};
	EXPECT(t_opa(&t, g, OP_MASKED_FILL, (IrNode *[]){a, m}, 2, mf), ins, NULL, NULL,
	       1, -1e4, -1e4, 0.5, -1e4, -1e4);
	/* broadcasting both ways: [2,1] + [3] -> [2,3] */
	IrNode *col = t_opa(&t, g, OP_VIEW, &b, 1, t_dims(shp(2, C(3), C(1))));
	EXPECT(t_op2(&t, g, OP_MUL, col, b), ins, NULL, NULL, 100, 200, 300, 200, 400,
	       600, 300, 600, 900);
	ir_tensor_free(ta);
	ir_tensor_free(tb);
}

static void test_reduce(void)
{
	fresh();
	IrNode *x = input("x", IR_F32, shp(2, C(2), C(3)));
	IrTensor *tx =
	        t_tensor(IR_F32, 2, (int64_t[]){2, 3}, (double[]){1, 2, 3, 4, 5, 6});
	IrTensor *ins[] = {tx};
	/* softmax along the last dim: exp(x - max) / sum */
	double e1 = exp(-2), e2 = exp(-1), s = e1 + e2 + 1;
	EXPECT(t_opa(&t, g, OP_SOFTMAX, &x, 1, t_ints(1, (int64_t[]){-1})), ins, NULL, NULL,
	       e1 / s, e2 / s, 1 / s, e1 / s, e2 / s, 1 / s);
	double f = 1 / (1 + exp(3));
	EXPECT(t_opa(&t, g, OP_SOFTMAX, &x, 1, t_ints(1, (int64_t[]){0})), ins, NULL, NULL,
	       f, f, f, 1 - f, 1 - f, 1 - f);
	/* large values do not overflow: max-subtracted */
	IrNode *big = t_op2(&t, g, OP_MUL, x, t_const(&t, g, 1000, IR_F32));
	EXPECT(t_opa(&t, g, OP_SOFTMAX, &big, 1, t_ints(1, (int64_t[]){1})), ins, NULL,
	       NULL, exp(-2000) / (1 + exp(-1000) + exp(-2000)),
	       exp(-1000) / (1 + exp(-1000)), 1, 0, 0, 1);
	EXPECT(t_opa(&t, g, OP_SUM, &x, 1, t_ints(1, (int64_t[]){1})), ins, NULL, NULL, 6,
	       15);
	EXPECT(t_opa(&t, g, OP_SUM, &x, 1, t_ints(1, (int64_t[]){0})), ins, NULL, NULL, 5,
	       7, 9);
	EXPECT(t_opa(&t, g, OP_SUM, &x, 1, (IrAttrs){0}), ins, NULL, NULL, 21);
	IrAttrs kd = t_ints(1, (int64_t[]){-1});
	kd.flags = 1;
	IrNode *mk = t_opa(&t, g, OP_MEAN, &x, 1, kd);
	CHECK(mk->shape.ndim == 2);
	EXPECT(mk, ins, NULL, NULL, 2, 5);
	EXPECT(t_opa(&t, g, OP_MAX, &x, 1, t_ints(1, (int64_t[]){0})), ins, NULL, NULL, 4,
	       5, 6);
	EXPECT(t_opa(&t, g, OP_MAX, &x, 1, t_ints(2, (int64_t[]){0, 1})), ins, NULL, NULL,
	       6);
	/* layer norm: biased variance */
	IrNode *w = t_param(&t, g, "w", shp(1, C(3)));
	IrNode *b = t_param(&t, g, "b", shp(1, C(3)));
	IrTensor *tw = t_tensor(IR_F32, 1, (int64_t[]){3}, (double[]){1, 2, 0.5});
	IrTensor *tb = t_tensor(IR_F32, 1, (int64_t[]){3}, (double[]){0, 1, -1});
	Params ps = {{"w", "b"}, {tw, tb}, 2};
	IrAttrs ln = {.fattr = 1e-5};
	double inv = 1 / sqrt(2.0 / 3 + 1e-5);
	EXPECT(t_opa(&t, g, OP_LAYER_NORM, (IrNode *[]){x, w, b}, 3, ln), ins, NULL, &ps,
	       -inv, 1, 0.5 * inv - 1, -inv, 1, 0.5 * inv - 1);
	ir_tensor_free(tw);
	ir_tensor_free(tb);
	ir_tensor_free(tx);
}

static void test_matmul(void)
{
	fresh();
	/* a [2, 1, 2, 3] @ b [2, 3, 2] -> [2, 2, 2, 2]: batch dims broadcast */
	IrNode *a = input("a", IR_F32, shp(4, C(2), C(1), C(2), C(3)));
	IrNode *b = input("b", IR_F32, shp(3, C(2), C(3), C(2)));
	double av[12], bv[12];
	for (int i = 0; i < 12; i++) {
		av[i] = i + 1;
		bv[i] = i % 2 ? -(i + 1) : i + 1;
	}
	IrTensor *ta = t_tensor(IR_F32, 4, (int64_t[]){2, 1, 2, 3}, av);
	IrTensor *tb = t_tensor(IR_F32, 3, (int64_t[]){2, 3, 2}, bv);
	IrTensor *ins[] = {ta, tb};
	double want[16];
	for (int i = 0; i < 2; i++)         /* a's batch */
		for (int j = 0; j < 2; j++) /* b's batch */
			for (int r = 0; r < 2; r++)
				for (int c = 0; c < 2; c++) {
					double s = 0;
					for (int k = 0; k < 3; k++)
						s += av[i * 6 + r * 3 + k] *
						     bv[j * 6 + k * 2 + c];
					want[((i * 2 + j) * 2 + r) * 2 + c] = s;
				}
	IrNode *mm = t_op2(&t, g, OP_MATMUL, a, b);
	expect(mm, ins, NULL, NULL, want, 16, __LINE__);
	/* linear: x [2, 3] w [2, 3] b [2] */
	fresh();
	IrNode *x = input("x", IR_F32, shp(2, C(2), C(3)));
	IrNode *w = t_param(&t, g, "w", shp(2, C(2), C(3)));
	IrNode *bias = t_param(&t, g, "b", shp(1, C(2)));
	IrTensor *tx =
	        t_tensor(IR_F32, 2, (int64_t[]){2, 3}, (double[]){1, 2, 3, 4, 5, 6});
	IrTensor *tw = t_tensor(IR_F32, 2, (int64_t[]){2, 3},
	                        (double[]){1, 0, -1, 0.5, 0.5, 0.5});
	IrTensor *tbias = t_tensor(IR_F32, 1, (int64_t[]){2}, (double[]){100, 200});
	Params ps = {{"w", "b"}, {tw, tbias}, 2};
	IrTensor *xins[] = {tx};
	EXPECT(t_opa(&t, g, OP_LINEAR, (IrNode *[]){x, w, bias}, 3, (IrAttrs){0}), xins,
	       NULL, &ps, 98, 203, 98, 207.5);
	EXPECT(t_op2(&t, g, OP_LINEAR, x, w), xins, NULL, &ps, -2, 3, -2, 7.5);
	ir_tensor_free(ta);
	ir_tensor_free(tb);
	ir_tensor_free(tx);
	ir_tensor_free(tw);
	ir_tensor_free(tbias);
}

static void test_movement(void)
{
	fresh();
	/* x [B, S, 4] with B = 2, S = 3, bound from the input */
	IrNode *x = input("x", IR_F32, shp(3, t.B, t.S, C(4)));
	double xv[24];
	for (int i = 0; i < 24; i++)
		xv[i] = i;
	IrTensor *tx = t_tensor(IR_F32, 3, (int64_t[]){2, 3, 4}, xv);
	IrTensor *ins[] = {tx};
	/* view [B, S, 2, 2] then permute [0, 2, 1, 3] -> [B, 2, S, 2] */
	IrNode *v = t_opa(&t, g, OP_VIEW, &x, 1, t_dims(shp(4, t.B, t.S, C(2), C(-1))));
	IrNode *p = t_opa(&t, g, OP_PERMUTE, &v, 1, t_ints(4, (int64_t[]){0, 2, 1, 3}));
	EXPECT(p, ins, NULL, NULL, 0, 1, 4, 5, 8, 9, 2, 3, 6, 7, 10, 11, 12, 13, 16, 17,
	       20, 21, 14, 15, 18, 19, 22, 23);
	IrNode *tr = t_opa(&t, g, OP_TRANSPOSE, &x, 1, t_ints(2, (int64_t[]){1, 2}));
	EXPECT(tr, ins, NULL, NULL, 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, 12, 16, 20, 13,
	       17, 21, 14, 18, 22, 15, 19, 23);
	IrNode *fl = t_opa(&t, g, OP_VIEW, &x, 1, t_dims(shp(2, C(-1), C(4))));
	EXPECT(fl, ins, NULL, NULL, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	       16, 17, 18, 19, 20, 21, 22, 23);
	/* slice dim 1, 1:S ... given as 1:INT64_MAX; step 2 on the last dim */
	IrAttrs sl = t_ints(2, (int64_t[]){2, 2});
	sl.ndattr = 2;
	sl.dattr[0] = C(1);
	sl.dattr[1] = C(INT64_MAX);
	EXPECT(t_opa(&t, g, OP_SLICE, &x, 1, sl), ins, NULL, NULL, 1, 3, 5, 7, 9, 11, 13,
	       15, 17, 19, 21, 23);
	IrAttrs sl2 = t_ints(1, (int64_t[]){1});
	sl2.ndattr = 2;
	sl2.dattr[0] = C(0);
	sl2.dattr[1] = t.S;
	EXPECT(t_opa(&t, g, OP_SLICE, &x, 1, sl2), ins, NULL, NULL, 0, 1, 2, 3, 4, 5, 6,
	       7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);
	IrAttrs sl3 = t_ints(1, (int64_t[]){2});
	sl3.ndattr = 2;
	sl3.dattr[0] = C(-1);
	sl3.dattr[1] = C(4);
	EXPECT(t_opa(&t, g, OP_SLICE, &x, 1, sl3), ins, NULL, NULL, 3, 7, 11, 15, 19, 23);
	EXPECT(t_opa(&t, g, OP_SELECT, &x, 1, t_ints(2, (int64_t[]){1, -1})), ins, NULL,
	       NULL, 8, 9, 10, 11, 20, 21, 22, 23);
	EXPECT(t_opa(&t, g, OP_SELECT, &x, 1, t_ints(2, (int64_t[]){2, 1})), ins, NULL,
	       NULL, 1, 5, 9, 13, 17, 21);
	IrNode *sel =
	        t_opa(&t, g, OP_SELECT, &x, 1, t_ints(2, (int64_t[]){1, 0})); /* [B, 4] */
	IrNode *u = t_opa(&t, g, OP_UNSQUEEZE, &sel, 1,
	                  t_ints(1, (int64_t[]){1})); /* [B, 1, 4] */
	/* cat along dim 1 ([B, 1, 4] + [B, S, 4] is not a single term: use
	 * constant dims) */
	{
		IrGraph *save = g;
		fresh();
		IrNode *xc = input("xc", IR_F32, shp(3, C(2), C(3), C(4)));
		IrNode *sc = t_opa(&t, g, OP_SELECT, &xc, 1, t_ints(2, (int64_t[]){1, 0}));
		IrNode *uc = t_opa(&t, g, OP_UNSQUEEZE, &sc, 1, t_ints(1, (int64_t[]){1}));
		EXPECT(t_opa(&t, g, OP_CAT, (IrNode *[]){uc, xc, uc}, 3,
		             t_ints(1, (int64_t[]){1})),
		       ins, NULL, NULL, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
		       0, 1, 2, 3, 12, 13, 14, 15, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
		       22, 23, 12, 13, 14, 15);
		g = save;
	}
	EXPECT(t_opa(&t, g, OP_CAT, (IrNode *[]){sel, sel}, 2, t_ints(1, (int64_t[]){-1})),
	       ins, NULL, NULL, 0, 1, 2, 3, 0, 1, 2, 3, 12, 13, 14, 15, 12, 13, 14, 15);
	EXPECT(t_opa(&t, g, OP_EXPAND, &u, 1, t_dims(shp(3, C(-1), C(2), C(4)))), ins, NULL,
	       NULL, 0, 1, 2, 3, 0, 1, 2, 3, 12, 13, 14, 15, 12, 13, 14, 15);
	IrAttrs ar = {.ndattr = 1};
	ar.dattr[0] = t.S;
	EXPECT(ir_build(g, OP_ARANGE, NULL, 0, &ar, t.sp, NULL), ins, NULL, NULL, 0, 1,
	       2);
	EXPECT(t_op1(&t, g, OP_CONTIGUOUS, tr), ins, NULL, NULL, 0, 4, 8, 1, 5, 9, 2, 6,
	       10, 3, 7, 11, 12, 16, 20, 13, 17, 21, 14, 18, 22, 15, 19, 23);
	ir_tensor_free(tx);

	/* embedding */
	fresh();
	IrNode *ids = input("ids", IR_I64, shp(2, t.B, t.S));
	IrNode *tab = t_param(&t, g, "emb", shp(2, C(4), C(2)));
	IrTensor *tids = t_tensor(IR_I64, 2, (int64_t[]){1, 3}, (double[]){3, 0, 3});
	IrTensor *ttab = t_tensor(IR_F32, 2, (int64_t[]){4, 2},
	                          (double[]){0, 1, 10, 11, 20, 21, 30, 31});
	Params ps = {{"emb"}, {ttab}, 1};
	IrTensor *eins[] = {tids};
	IrNode *e = t_op2(&t, g, OP_EMBEDDING, ids, tab);
	EXPECT(e, eins, NULL, &ps, 30, 31, 0, 1, 30, 31);
	tids->data[1] = 4;
	CHECK_STR(run_err(e, eins, NULL, &ps),
	          "embedding: index 4 is out of range for a table of 4 rows");
	tids->data[1] = -1;
	CHECK_STR(run_err(e, eins, NULL, &ps),
	          "embedding: index -1 is out of range for a table of 4 rows");
	tids->data[1] = 1.5;
	CHECK_STR(run_err(e, eins, NULL, &ps),
	          "embedding: index 1.5 is out of range for a table of 4 rows");
	tids->data[1] = 1;
	EXPECT(e, eins, NULL, &ps, 30, 31, 10, 11, 30, 31);
	/* missing and mis-shaped parameters, inputs */
	Params none = {0};
	CHECK_STR(run_err(e, eins, NULL, &none), "no value for parameter emb");
	IrTensor *small = t_tensor(IR_F32, 2, (int64_t[]){4, 3}, NULL);
	Params bad = {{"emb"}, {small}, 1};
	CHECK_STR(run_err(e, eins, NULL, &bad),
	          "parameter emb: expected shape [4, 2], got [4, 3]");
	/* explicit symbol values must agree with the inputs */
	int64_t syms[2] = {2, 3};
	CHECK_STR(run_err(e, eins, syms, &ps),
	          "input ids: expected shape [2, 3], got [1, 3]");
	IrTensor *nul[] = {NULL};
	CHECK_STR(run_err(e, nul, NULL, &ps), "input ids: no tensor given");
	ir_tensor_free(small);
	ir_tensor_free(tids);
	ir_tensor_free(ttab);

	/* a select index out of range at run time (symbolic dim) */
	fresh();
	IrNode *y = input("y", IR_F32, shp(1, t.S));
	IrNode *sy = t_opa(&t, g, OP_SELECT, &y, 1, t_ints(2, (int64_t[]){0, 5}));
	IrTensor *ty = t_tensor(IR_F32, 1, (int64_t[]){3}, NULL);
	IrTensor *yins[] = {ty};
	CHECK_STR(run_err(sy, yins, NULL, NULL),
	          "select: index 5 is out of range for a dim of size 3");
	/* a symbol nobody binds */
	fresh();
	input("y", IR_F32, shp(1, t.S));
	IrAttrs ar2 = {.ndattr = 1};
	ar2.dattr[0] = t.B;
	IrNode *arb = ir_build(g, OP_ARANGE, NULL, 0, &ar2, t.sp, NULL);
	CHECK_STR(run_err(arb, yins, NULL, NULL),
	          "arange: no value for the symbolic dim B");
	ir_tensor_free(ty);
}

static void test_call(void)
{
	/* a body run through a call node, its symbols rebound */
	IrGraph *body = ir_graph_new(&t.ctx, "Body");
	IrNode *bx = t_input(&t, body, "bx", IR_F32, shp(1, t.S));
	IrNode *bw = t_input(&t, body, "bw", IR_F32, shp(1, t.S));
	IrNode *bs =
	        t_opa(&t, body, OP_SOFTMAX, (IrNode *[]){t_op2(&t, body, OP_MUL, bx, bw)},
	              1, t_ints(1, (int64_t[]){0}));
	IrAttrs ar = {.ndattr = 1};
	ar.dattr[0] = t.S;
	IrNode *ab = ir_build(body, OP_ARANGE, NULL, 0, &ar, t.sp, NULL);
	ir_add_output(body, t_op2(&t, body, OP_ADD, bs, ab), NULL);
	fresh();
	IrNode *x = input("x", IR_F32, shp(1, t.B));
	IrNode *w = t_param(&t, g, "w", shp(1, t.B));
	IrAttrs fa = {.sattr = "Body", .sub = body};
	IrNode *f = ir_build(g, OP_FUSED, (IrNode *[]){x, w}, 2, &fa, t.sp, NULL);
	CHECK(f && f->shape.ndim == 1 && ir_dim_eq(f->shape.d[0], t.B));
	IrTensor *tx = t_tensor(IR_F32, 1, (int64_t[]){2}, (double[]){1, 2});
	IrTensor *tw = t_tensor(IR_F32, 1, (int64_t[]){2}, (double[]){3, -1});
	Params ps = {{"w"}, {tw}, 1};
	IrTensor *ins[] = {tx};
	double s = 1 + exp(-5);
	EXPECT(f, ins, NULL, &ps, 1 / s, exp(-5) / s + 1);
	ir_tensor_free(tx);
	ir_tensor_free(tw);

	/* a leaf call: the module's own graph, its params relative to it */
	IrGraph *lin = ir_graph_new(&t.ctx, "Linear");
	IrNode *li = t_input(&t, lin, "input", IR_F32, shp(2, t.B, C(3)));
	IrNode *lw = t_param(&t, lin, "weight", shp(2, C(2), C(3)));
	ir_add_output(lin, t_op2(&t, lin, OP_LINEAR, li, lw), NULL);
	fresh();
	IrNode *x2 = input("x", IR_F32, shp(2, t.B, C(3)));
	IrAttrs ca = {.sattr = "encoder.dense", .sub = lin};
	IrNode *cl = ir_build(g, OP_CALL, &x2, 1, &ca, t.sp, NULL);
	CHECK_STR(cl->name, "encoder_dense");
	IrTensor *tx2 = t_tensor(IR_F32, 2, (int64_t[]){1, 3}, (double[]){1, 2, 3});
	IrTensor *tw2 =
	        t_tensor(IR_F32, 2, (int64_t[]){2, 3}, (double[]){1, 1, 1, 0, 0, -2});
	Params ps2 = {{"encoder.dense.weight"}, {tw2}, 1};
	IrTensor *ins2[] = {tx2};
	EXPECT(cl, ins2, NULL, &ps2, 6, -6);
	Params ps3 = {{"weight"}, {tw2}, 1};
	CHECK_STR(run_err(cl, ins2, NULL, &ps3),
	          "in call encoder.dense: no value for parameter weight");
	ir_tensor_free(tx2);
	ir_tensor_free(tw2);
}

static void test_tensors(void)
{
	CHECK(ir_tensor_new(IR_F32, 1, (int64_t[]){-1}) == NULL);
	CHECK(ir_tensor_new(IR_F32, 2, (int64_t[]){1 << 20, 1 << 20}) == NULL);
	CHECK(ir_tensor_new(IR_F32, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}) == NULL);
	IrTensor *a = ir_tensor_new(IR_F32, 0, NULL);
	CHECK(a && a->numel == 1);
	IrTensor *b = ir_tensor_copy(a);
	a->data[0] = 1;
	b->data[0] = 1.5;
	CHECK_NEAR(ir_tensor_max_rel_diff(a, b), 1.0 / 3, 1e-15);
	b->data[0] = 1;
	CHECK(ir_tensor_max_rel_diff(a, b) == 0);
	b->data[0] = NAN;
	CHECK(isinf(ir_tensor_max_rel_diff(a, b)));
	IrTensor *c = ir_tensor_new(IR_F32, 1, (int64_t[]){1});
	CHECK(isinf(ir_tensor_max_rel_diff(a, c)));
	ir_tensor_free(a);
	ir_tensor_free(b);
	ir_tensor_free(c);
	ir_tensor_free(NULL);
}

int main(void)
{
	t_init(&t);
	test_elementwise();
	test_reduce();
	test_matmul();
	test_movement();
	test_call();
	test_tensors();
	CHECK_STR(t_diag(&t), "");
	t_fini(&t);
	return t_done("test_interp");
}
