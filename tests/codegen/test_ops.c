/* test_ops.c - every op the CPU code generator handles, and fused
 * kernels of every shape it makes (elementwise maps, softmax and
 * layer_norm with elementwise prologues), compiled to a model library
 * and compared with the reference interpreter on random inputs at odd
 * sizes (1, 7, 129, ...), outputs poisoned with NaN first.
 *
 * Tolerances (|got - want| <= atol + rtol |want|, want in double):
 *   elementwise, views, copies, gathers        rtol 1e-5, atol 1e-6
 *   exp, tanh, erf, gelu, sigmoid, softmax,     rtol 1e-5, atol 1e-6
 *   layer_norm
 *   linear, matmul (f32 BLAS, k up to 129)      rtol 1e-4, atol 1e-4
 *   sum, mean over up to ~16k elements          rtol 1e-4, atol 1e-4
 *   integer and bool results                    exact
 *
 *   test_codegen_ops [NAME-SUBSTRING]
 */
#include "cgtest.h"

#include <string.h>
#include <unistd.h>

static const int64_t BS[][2] = {{1, 1}, {2, 7}, {3, 129}};
static const int64_t BS_SMALL[][2] = {{1, 1}, {2, 7}, {1, 33}};
#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))

static IrAttrs A(void)
{
	IrAttrs a;
	memset(&a, 0, sizeof a);
	return a;
}

static IrAttrs ints(int n, const int64_t *v)
{
	IrAttrs a = A();
	a.niattr = n;
	for (int i = 0; i < n; i++)
		a.iattr[i] = v[i];
	return a;
}

static IrAttrs dims_of(Case *c, const IrShape *s)
{
	IrAttrs a = A();
	a.ndattr = s->ndim;
	for (int i = 0; i < s->ndim; i++)
		a.dattr[i] = s->d[i];
	return a;
}

typedef void (*Build)(Case *c);

typedef struct Test {
	const char *name;
	Build build;
	int small; /* use the smaller bindings */
} Test;

/* ---- elementwise --------------------------------------------------------------------- */

static void t_binary(Case *c, IrOp op)
{
	IrNode *x = in_(c, "x", IR_F32, "B,S,37");
	IrNode *y = in_(c, "y", IR_F32, "37");
	IrNode *z = in_(c, "z", IR_F32, "B,1,37");
	if (op == OP_DIV || op == OP_POW) {
		c->lo = 0.5;
		c->hi = 2;
	}
	out_(c, op_(c, op, x, y, NULL, NULL));
	out_(c, op_(c, op, z, x, NULL, NULL));
}
#define BIN(n, o) static void t_##n(Case *c) { t_binary(c, o); }
BIN(add, OP_ADD)
BIN(sub, OP_SUB)
BIN(mul, OP_MUL)
BIN(div, OP_DIV)
BIN(pow, OP_POW)
BIN(maximum, OP_MAXIMUM)
BIN(minimum, OP_MINIMUM)

static void t_pow_const(Case *c)
{
	IrNode *x = in_(c, "x", IR_F32, "B,S,5");
	c->lo = 0.1;
	const double e[] = {2, 0.5, 3, -1, -0.5, 1.7};
	for (int i = 0; i < 6; i++)
		out_(c, op_(c, OP_POW, x, const_(c, e[i], IR_F32), NULL, NULL));
}

static void t_compare(Case *c)
{
	IrNode *x = in_(c, "x", IR_I64, "B,S");
	IrNode *y = in_(c, "y", IR_I64, "S");
	c->int_hi[0] = c->int_hi[1] = 3;
	IrOp ops[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
	for (int i = 0; i < 6; i++)
		out_(c, op_(c, ops[i], x, y, NULL, NULL));
	IrNode *f = in_(c, "f", IR_F32, "B,S");
	out_(c, op_(c, OP_LT, f, const_(c, 0.25, IR_F32), NULL, NULL));
}

static void t_where(Case *c)
{
	IrNode *k = in_(c, "k", IR_BOOL, "B,1,S");
	IrNode *a = in_(c, "a", IR_F32, "B,3,S");
	IrNode *b = in_(c, "b", IR_F32, "S");
	out_(c, op_(c, OP_WHERE, k, a, b, NULL));
	IrAttrs at = A();
	at.fattr = -1e30;
	out_(c, op_(c, OP_MASKED_FILL, a, k, NULL, &at));
	IrNode *n = op_(c, OP_NOT, k, NULL, NULL, NULL);
	out_(c, n);
}

static void t_int_arith(Case *c)
{
	IrNode *x = in_(c, "x", IR_I64, "B,S");
	IrNode *y = in_(c, "y", IR_I64, "B,S");
	c->int_hi[0] = 1000;
	c->int_hi[1] = 50;
	out_(c, op_(c, OP_ADD, x, y, NULL, NULL));
	out_(c, op_(c, OP_SUB, x, y, NULL, NULL));
	out_(c, op_(c, OP_MUL, x, y, NULL, NULL));
	out_(c, op_(c, OP_MAXIMUM, x, y, NULL, NULL));
	out_(c, op_(c, OP_NEG, x, NULL, NULL, NULL));
	out_(c, op_(c, OP_DIV, x, const_(c, 7, IR_I64), NULL, NULL)); /* true division */
	out_(c, op_(c, OP_ADD, x, const_(c, 0.5, IR_F32), NULL, NULL)); /* promotes */
}

static void t_unary(Case *c, IrOp op, double lo, double hi)
{
	c->lo = lo;
	c->hi = hi;
	IrNode *x = in_(c, "x", IR_F32, "B,S,129");
	out_(c, op_(c, op, x, NULL, NULL, NULL));
}
#define UN(n, o, lo, hi) static void t_##n(Case *c) { t_unary(c, o, lo, hi); }
UN(neg, OP_NEG, -3, 3)
UN(exp, OP_EXP, -80, 80)
UN(log, OP_LOG, 0.001, 100)
UN(tanh, OP_TANH, -9, 9)
UN(erf, OP_ERF, -6, 6)
UN(sqrt, OP_SQRT, 0, 100)
UN(rsqrt, OP_RSQRT, 0.01, 100)
UN(sigmoid, OP_SIGMOID, -20, 20)
UN(relu, OP_RELU, -2, 2)
UN(gelu, OP_GELU, -8, 8)
UN(gelu_tanh, OP_GELU_TANH, -8, 8)
UN(dropout, OP_DROPOUT, -2, 2)

static void t_cast(Case *c)
{
	IrNode *x = in_(c, "x", IR_F32, "B,S");
	IrNode *i = in_(c, "i", IR_I64, "B,S");
	IrNode *k = in_(c, "k", IR_BOOL, "B,S");
	c->lo = -50;
	c->hi = 50;
	c->int_hi[1] = 1000;
	IrDType to[] = {IR_I64, IR_BOOL, IR_F32, IR_I32};
	IrNode *src[] = {x, i, k};
	for (int s = 0; s < 3; s++)
		for (int t = 0; t < 4; t++) {
			IrAttrs at = A();
			at.niattr = 1;
			at.iattr[0] = to[t];
			out_(c, op_(c, OP_CAST, src[s], NULL, NULL, &at));
		}
}

static void t_const_arange(Case *c)
{
	IrNode *x = in_(c, "x", IR_F32, "B,S");
	IrAttrs at = A();
	at.ndattr = 1;
	at.dattr[0] = x->shape.d[1];
	IrNode *r = op_(c, OP_ARANGE, NULL, NULL, NULL, &at);
	out_(c, r);
	out_(c, op_(c, OP_ADD, x, r, NULL, NULL));
	out_(c, const_(c, 3.5, IR_F32));
}

/* ---- GEMM -------------------------------------------------------------------------------- */

static void t_linear(Case *c)
{
	c->rtol = c->atol = 1e-4;
	IrNode *x = in_(c, "x", IR_F32, "B,S,33");
	IrNode *w = param_(c, "fc.weight", "17,33");
	IrNode *b = param_(c, "fc.bias", "17");
	out_(c, op_(c, OP_LINEAR, x, w, b, NULL));
	out_(c, op_(c, OP_LINEAR, x, w, NULL, NULL));
	IrNode *v = in_(c, "v", IR_F32, "33");
	out_(c, op_(c, OP_LINEAR, v, w, b, NULL));
}

static void t_matmul(Case *c)
{
	c->rtol = c->atol = 1e-4;
	IrNode *q = in_(c, "q", IR_F32, "B,3,S,8");
	IrNode *k = in_(c, "k", IR_F32, "B,3,S,8");
	int64_t tr[] = {-1, -2};
	IrAttrs at = ints(2, tr);
	IrNode *kt = op_(c, OP_TRANSPOSE, k, NULL, NULL, &at);
	IrNode *s = op_(c, OP_MATMUL, q, kt, NULL, NULL);
	out_(c, s);
	out_(c, op_(c, OP_MATMUL, s, k, NULL, NULL));
	IrNode *w = in_(c, "w", IR_F32, "8,5"); /* broadcast over batch */
	out_(c, op_(c, OP_MATMUL, q, w, NULL, NULL));
	IrNode *u = in_(c, "u", IR_F32, "3,8,S"); /* broadcast the other way */
	out_(c, op_(c, OP_MATMUL, q, u, NULL, NULL));
}

/* BERT's attention: linear -> view -> permute -> matmul(q, k^T) etc. */
static void t_attention(Case *c)
{
	c->rtol = c->atol = 1e-4;
	IrNode *h = in_(c, "h", IR_F32, "B,S,16");
	IrNode *wq = param_(c, "q.weight", "16,16"), *bq = param_(c, "q.bias", "16");
	IrNode *wk = param_(c, "k.weight", "16,16"), *bk = param_(c, "k.bias", "16");
	IrNode *q = op_(c, OP_LINEAR, h, wq, bq, NULL);
	IrNode *k = op_(c, OP_LINEAR, h, wk, bk, NULL);
	IrShape s4 = {.ndim = 4, .d = {h->shape.d[0], h->shape.d[1], ir_dim_const(4), ir_dim_const(4)}};
	IrAttrs va = dims_of(c, &s4);
	int64_t p[] = {0, 2, 1, 3};
	IrAttrs pa = ints(4, p);
	IrNode *q4 = op_(c, OP_PERMUTE, op_(c, OP_VIEW, q, NULL, NULL, &va), NULL, NULL, &pa);
	IrNode *k4 = op_(c, OP_PERMUTE, op_(c, OP_VIEW, k, NULL, NULL, &va), NULL, NULL, &pa);
	int64_t tr[] = {-1, -2};
	IrAttrs ta = ints(2, tr);
	IrNode *sc = op_(c, OP_MATMUL, q4, op_(c, OP_TRANSPOSE, k4, NULL, NULL, &ta), NULL, NULL);
	int64_t d[] = {-1};
	IrAttrs sa = ints(1, d);
	IrNode *pr = op_(c, OP_SOFTMAX, sc, NULL, NULL, &sa);
	IrNode *ctx = op_(c, OP_PERMUTE, op_(c, OP_MATMUL, pr, k4, NULL, NULL), NULL, NULL, &pa);
	IrShape s3 = {.ndim = 3, .d = {h->shape.d[0], h->shape.d[1], ir_dim_const(16)}};
	IrAttrs ra = dims_of(c, &s3);
	out_(c, op_(c, OP_VIEW, ctx, NULL, NULL, &ra));
}

/* Q, K, V as one GEMM: with the weights adjacent (one call) and with K's
 * weight tied to another parameter (not adjacent: one call each). */
static void t_linear_group(Case *c, bool tied)
{
	c->rtol = c->atol = 1e-4;
	IrNode *x = in_(c, "x", IR_F32, "B,S,24");
	IrNode *o = param_(c, "other.weight", "16,24"); /* used first: stored first */
	out_(c, op_(c, OP_LINEAR, x, o, NULL, NULL));
	const char *nm[3] = {"q", "k", "v"};
	for (int i = 0; i < 3; i++) {
		char w[32], b[32];
		snprintf(w, sizeof w, "%s.weight", nm[i]);
		snprintf(b, sizeof b, "%s.bias", nm[i]);
		IrNode *l = op_(c, OP_LINEAR, x, param_(c, w, i == 2 ? "8,24" : "16,24"),
		                param_(c, b, i == 2 ? "8" : "16"), NULL);
		out_(c, op_(c, OP_RELU, l, NULL, NULL, NULL));
	}
	if (tied) {
		c->ties[0] = "k.weight";
		c->ties[1] = "other.weight";
		c->nties = 1;
	}
}
static void t_group(Case *c) { t_linear_group(c, false); }
static void t_group_tied(Case *c) { t_linear_group(c, true); }

/* ---- rows ----------------------------------------------------------------------------------- */

static void t_softmax(Case *c)
{
	c->lo = -30;
	c->hi = 30;
	IrNode *x = in_(c, "x", IR_F32, "B,S,S");
	int64_t d[] = {-1};
	IrAttrs at = ints(1, d);
	out_(c, op_(c, OP_SOFTMAX, x, NULL, NULL, &at));
	int64_t d1[] = {1};
	IrAttrs a1 = ints(1, d1);
	out_(c, op_(c, OP_SOFTMAX, x, NULL, NULL, &a1));
}

static void t_layer_norm(Case *c)
{
	IrNode *x = in_(c, "x", IR_F32, "B,S,77");
	IrNode *w = param_(c, "ln.weight", "77"), *b = param_(c, "ln.bias", "77");
	IrAttrs at = A();
	at.fattr = 1e-5;
	out_(c, op_(c, OP_LAYER_NORM, x, w, b, &at));
	IrNode *y = in_(c, "y", IR_F32, "B,S,1"); /* rows of one */
	IrNode *w1 = param_(c, "ln1.weight", "1"), *b1 = param_(c, "ln1.bias", "1");
	out_(c, op_(c, OP_LAYER_NORM, y, w1, b1, &at));
}

static void t_reduce(Case *c)
{
	c->rtol = c->atol = 1e-4;
	IrNode *x = in_(c, "x", IR_F32, "B,S,13");
	IrNode *i = in_(c, "i", IR_I64, "B,S,13");
	c->int_hi[1] = 100;
	IrOp ops[] = {OP_SUM, OP_MEAN, OP_MAX};
	for (int k = 0; k < 3; k++) {
		int64_t last[] = {-1};
		IrAttrs a = ints(1, last);
		out_(c, op_(c, ops[k], x, NULL, NULL, &a));
		int64_t mid[] = {1};
		IrAttrs b = ints(1, mid);
		b.flags = 1; /* keepdim */
		out_(c, op_(c, ops[k], x, NULL, NULL, &b));
		int64_t two[] = {0, 2};
		IrAttrs d = ints(2, two);
		out_(c, op_(c, ops[k], x, NULL, NULL, &d));
		IrAttrs all = A();
		out_(c, op_(c, ops[k], x, NULL, NULL, &all));
		if (ops[k] != OP_MEAN)
			out_(c, op_(c, ops[k], i, NULL, NULL, &a));
	}
}

/* ---- data movement --------------------------------------------------------------------------- */

static void t_embedding(Case *c)
{
	IrNode *ids = in_(c, "input_ids", IR_I64, "B,S");
	IrNode *tab = param_(c, "emb.weight", "11,24");
	c->int_hi[0] = 11;
	out_(c, op_(c, OP_EMBEDDING, ids, tab, NULL, NULL));
}

static void t_embedding_bad(Case *c)
{
	/* computed ids (not an input: the runtime cannot check them) */
	IrNode *ids = in_(c, "input_ids", IR_I64, "B,S");
	IrNode *tab = param_(c, "emb.weight", "5,8");
	c->int_hi[0] = 5;
	IrNode *bad = op_(c, OP_ADD, ids, const_(c, 3, IR_I64), NULL, NULL);
	out_(c, op_(c, OP_EMBEDDING, bad, tab, NULL, NULL));
	c->expect_fail = true;
	c->fail_object = "add";
}

static void t_views(Case *c)
{
	IrNode *x = in_(c, "x", IR_F32, "B,S,6");
	int64_t p[] = {2, 0, 1};
	IrAttrs pa = ints(3, p);
	out_(c, op_(c, OP_PERMUTE, x, NULL, NULL, &pa));
	int64_t t[] = {0, 1};
	IrAttrs ta = ints(2, t);
	IrNode *xt = op_(c, OP_TRANSPOSE, x, NULL, NULL, &ta);
	out_(c, xt);
	IrShape s = {.ndim = 3, .d = {x->shape.d[0], x->shape.d[1], ir_dim_const(6)}};
	s.ndim = 4;
	s.d[2] = ir_dim_const(2);
	s.d[3] = ir_dim_const(3);
	IrAttrs va = dims_of(c, &s);
	out_(c, op_(c, OP_VIEW, x, NULL, NULL, &va));
	/* reshape of a transposed tensor needs a copy */
	IrShape f = {.ndim = 2, .d = {ir_dim_mul(x->shape.d[0], x->shape.d[1]), ir_dim_const(6)}};
	IrAttrs fa = dims_of(c, &f);
	IrNode *flat = op_(c, OP_VIEW, op_(c, OP_CONTIGUOUS, xt, NULL, NULL, NULL), NULL, NULL, &fa);
	out_(c, op_(c, OP_ADD, op_(c, OP_SUM, flat, NULL, NULL, &(IrAttrs){.niattr = 1}),
	            const_(c, 0, IR_F32), NULL, NULL));
	int64_t u[] = {1};
	IrAttrs ua = ints(1, u);
	IrNode *xu = op_(c, OP_UNSQUEEZE, x, NULL, NULL, &ua);
	IrShape e = {.ndim = 4, .d = {x->shape.d[0], ir_dim_const(3), x->shape.d[1], ir_dim_const(6)}};
	IrAttrs ea = dims_of(c, &e);
	out_(c, op_(c, OP_EXPAND, xu, NULL, NULL, &ea));
	IrAttrs sl = A();
	sl.niattr = 2;
	sl.iattr[0] = 2;
	sl.iattr[1] = 2;
	sl.ndattr = 2;
	sl.dattr[0] = ir_dim_const(-5);
	sl.dattr[1] = ir_dim_const(INT64_MAX);
	out_(c, op_(c, OP_SLICE, x, NULL, NULL, &sl));
	IrAttrs s1 = A();
	s1.niattr = 1;
	s1.iattr[0] = 1;
	s1.ndattr = 2;
	s1.dattr[0] = ir_dim_const(0);
	s1.dattr[1] = x->shape.d[1];
	out_(c, op_(c, OP_SLICE, x, NULL, NULL, &s1));
	int64_t se[] = {2, -1};
	IrAttrs sa = ints(2, se);
	out_(c, op_(c, OP_SELECT, x, NULL, NULL, &sa));
	int64_t s0[] = {1, 0};
	IrAttrs sb = ints(2, s0);
	out_(c, op_(c, OP_SELECT, x, NULL, NULL, &sb));
}

static void t_cat(Case *c)
{
	IrNode *x = in_(c, "x", IR_F32, "B,S,4");
	IrNode *y = in_(c, "y", IR_F32, "B,S,3");
	IrNode *z = in_(c, "z", IR_I64, "B,S,2");
	IrNode *v[3] = {x, y, z};
	int64_t d[] = {-1};
	IrAttrs a = ints(1, d);
	out_(c, opn_(c, OP_CAT, v, 3, &a));
	IrNode *w[2] = {x, x};
	int64_t d0[] = {0};
	IrAttrs b = ints(1, d0);
	IrNode *c0 = opn_(c, OP_CAT, w, 2, &b); /* [2*B, S, 4]: reduce it to [S, 4] */
	int64_t r0[] = {0};
	IrAttrs ra = ints(1, r0);
	out_(c, op_(c, OP_SUM, c0, NULL, NULL, &ra));
	int64_t d1[] = {1};
	IrAttrs e = ints(1, d1);
	IrNode *c1 = opn_(c, OP_CAT, w, 2, &e); /* [B, 2*S, 4] */
	int64_t r1[] = {1};
	IrAttrs rb = ints(1, r1);
	out_(c, op_(c, OP_MAX, c1, NULL, NULL, &rb));
}

/* ---- fused kernels ------------------------------------------------------------------------------ */

static void t_fused_bias_gelu(Case *c)
{
	IrNode *x = in_(c, "x", IR_F32, "B,S,37");
	IrNode *b = param_(c, "dense.bias", "37");
	IrNode *a = op_(c, OP_ADD, x, b, NULL, NULL);
	IrNode *g = op_(c, OP_GELU, a, NULL, NULL, NULL);
	IrNode *r[2] = {a, g};
	fuse_(c, r, 2, "FusedBiasGeLU");
}

static void t_fused_elementwise(Case *c)
{
	/* x * 0.5 * (1 + tanh(x)) + y, with a broadcast y and constants */
	IrNode *x = in_(c, "x", IR_F32, "B,S,9");
	IrNode *y = in_(c, "y", IR_F32, "S,1");
	IrNode *h = op_(c, OP_MUL, x, const_(c, 0.5, IR_F32), NULL, NULL);
	IrNode *t = op_(c, OP_TANH, x, NULL, NULL, NULL);
	IrNode *o = op_(c, OP_ADD, const_(c, 1, IR_F32), t, NULL, NULL);
	IrNode *m = op_(c, OP_MUL, h, o, NULL, NULL);
	IrNode *s = op_(c, OP_ADD, m, y, NULL, NULL);
	IrNode *r[5] = {h, t, o, m, s};
	fuse_(c, r, 5, "FusedMix");
}

static void t_fused_softmax(Case *c)
{
	/* softmax(scores / 4 + mask) with a [B, 1, 1, S] mask */
	IrNode *sc = in_(c, "scores", IR_F32, "B,2,S,S");
	IrNode *mk = in_(c, "mask", IR_F32, "B,1,1,S");
	c->lo = -8;
	c->hi = 8;
	IrNode *d = op_(c, OP_DIV, sc, const_(c, 4, IR_F32), NULL, NULL);
	IrNode *a = op_(c, OP_ADD, d, mk, NULL, NULL);
	int64_t dim[] = {-1};
	IrAttrs at = ints(1, dim);
	IrNode *s = op_(c, OP_SOFTMAX, a, NULL, NULL, &at);
	IrNode *r[3] = {d, a, s};
	fuse_(c, r, 3, "FusedScaleMaskSoftmax");
}

static void t_fused_layer_norm(Case *c)
{
	/* layer_norm(x + b + residual) */
	IrNode *x = in_(c, "x", IR_F32, "B,S,48");
	IrNode *r = in_(c, "res", IR_F32, "B,S,48");
	IrNode *b = param_(c, "dense.bias", "48");
	IrNode *w = param_(c, "ln.weight", "48"), *lb = param_(c, "ln.bias", "48");
	IrNode *a = op_(c, OP_ADD, x, b, NULL, NULL);
	IrNode *dr = op_(c, OP_DROPOUT, a, NULL, NULL, NULL);
	IrNode *s = op_(c, OP_ADD, dr, r, NULL, NULL);
	IrAttrs at = A();
	at.fattr = 1e-12;
	IrNode *l = op_(c, OP_LAYER_NORM, s, w, lb, &at);
	IrNode *v[4] = {a, dr, s, l};
	fuse_(c, v, 4, "FusedBiasResidualLayerNorm");
}

static void t_fused_fallback(Case *c)
{
	/* not one kernel (a matmul inside): lowered node by node */
	c->rtol = c->atol = 1e-4;
	IrNode *x = in_(c, "x", IR_F32, "B,S,8");
	IrNode *w = param_(c, "fc.weight", "8,8");
	IrNode *l = op_(c, OP_LINEAR, x, w, NULL, NULL);
	IrNode *g = op_(c, OP_RELU, l, NULL, NULL, NULL);
	IrNode *v[2] = {l, g};
	fuse_(c, v, 2, "FusedLinearReLU");
}

static const Test TESTS[] = {
	{"add", t_add, 0}, {"sub", t_sub, 0}, {"mul", t_mul, 0}, {"div", t_div, 0},
	{"pow", t_pow, 0}, {"pow_const", t_pow_const, 0}, {"maximum", t_maximum, 0},
	{"minimum", t_minimum, 0}, {"compare", t_compare, 0}, {"where", t_where, 0},
	{"int_arith", t_int_arith, 0}, {"neg", t_neg, 0}, {"exp", t_exp, 0},
	{"log", t_log, 0}, {"tanh", t_tanh, 0}, {"erf", t_erf, 0}, {"sqrt", t_sqrt, 0},
	{"rsqrt", t_rsqrt, 0}, {"sigmoid", t_sigmoid, 0}, {"relu", t_relu, 0},
	{"gelu", t_gelu, 0}, {"gelu_tanh", t_gelu_tanh, 0}, {"dropout", t_dropout, 0},
	{"cast", t_cast, 0}, {"const_arange", t_const_arange, 0}, {"linear", t_linear, 0},
	{"linear_group", t_group, 0}, {"linear_group_tied", t_group_tied, 0},
	{"matmul", t_matmul, 1}, {"attention", t_attention, 1}, {"softmax", t_softmax, 1},
	{"layer_norm", t_layer_norm, 0}, {"reduce", t_reduce, 0},
	{"embedding", t_embedding, 0}, {"embedding_bad_index", t_embedding_bad, 0},
	{"views", t_views, 0}, {"cat", t_cat, 0}, {"fused_bias_gelu", t_fused_bias_gelu, 0},
	{"fused_elementwise", t_fused_elementwise, 0}, {"fused_softmax", t_fused_softmax, 1},
	{"fused_layer_norm", t_fused_layer_norm, 0}, {"fused_fallback", t_fused_fallback, 0},
};

int main(int argc, char **argv)
{
	int fails = 0, runs = 0;
	for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
		const Test *t = &TESTS[i];
		if (argc > 1 && !strstr(t->name, argv[1]))
			continue;
		Case c;
		case_init(&c, t->name);
		t->build(&c);
		bool ok = t->small ? case_run(&c, BS_SMALL, NB(BS_SMALL)) : case_run(&c, BS, NB(BS));
		fails += !ok;
		runs++;
		case_free(&c);
	}
	printf("%d of %d op tests passed\n", runs - fails, runs);
	rmdir(test_tmpdir());
	return fails ? 1 : 0;
}
