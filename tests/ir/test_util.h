/* test_util.h - helpers shared by the ir/ unit tests: a context whose
 * diagnostics go to a memory buffer, shape and graph builders, and
 * CHECK macros that count failures (exit status 1 if any). */
#ifndef SLAPO_TEST_IR_UTIL_H
#define SLAPO_TEST_IR_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static int t_failures;

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
			        #cond);                                                  \
			t_failures++;                                                    \
		}                                                                        \
	} while (0)

#define CHECK_STR(got, want)                                                                       \
	do {                                                                                       \
		const char *g_ = (got), *w_ = (want);                                              \
		if (!g_ || strcmp(g_, w_) != 0) {                                                  \
			fprintf(stderr,                                                            \
			        "%s:%d: CHECK_STR failed: %s\n--- got:\n%s\n--- want:\n%s\n---\n", \
			        __FILE__, __LINE__, #got, g_ ? g_ : "(null)", w_);                 \
			t_failures++;                                                              \
		}                                                                                  \
	} while (0)

#define CHECK_NEAR(got, want, tol)                                                       \
	do {                                                                             \
		double g_ = (got), w_ = (want);                                          \
		if (!(fabs(g_ - w_) <= (tol)*fmax(1.0, fabs(w_)))) {                     \
			fprintf(stderr,                                                  \
			        "%s:%d: CHECK_NEAR failed: %s = %.17g, want %.17g\n",    \
			        __FILE__, __LINE__, #got, g_, w_);                       \
			t_failures++;                                                    \
		}                                                                        \
	} while (0)

static inline int t_done(const char *name)
{
	if (t_failures)
		fprintf(stderr, "%s: %d check(s) failed\n", name, t_failures);
	return t_failures ? 1 : 0;
}

/* A test context: arena, diagnostics into memory, IR context with the
 * symbols B and S. */
typedef struct T {
	Arena arena;
	Diag diag;
	IrCtx ctx;
	char *buf;
	size_t len;
	FILE *mem;
	IrDim B, S;
	Span sp;
} T;

static inline void t_open(T *t)
{
	t->buf = NULL;
	t->len = 0;
	t->mem = open_memstream(&t->buf, &t->len);
	t->diag.out = t->mem;
}

static inline void t_init(T *t)
{
	memset(t, 0, sizeof *t);
	diag_init(&t->diag, stderr, &t->arena);
	t_open(t);
	ir_ctx_init(&t->ctx, &t->arena, &t->diag);
	t->B = ir_dim_sym(ir_sym(&t->ctx, "B", t->sp));
	t->S = ir_dim_sym(ir_sym(&t->ctx, "S", t->sp));
}

/* Everything reported since the last call (arena copy); resets counts. */
static inline const char *t_diag(T *t)
{
	fclose(t->mem);
	const char *r = arena_strdup(&t->arena, t->buf ? t->buf : "");
	free(t->buf);
	t_open(t);
	t->diag.nerrors = 0;
	return r;
}

static inline void t_fini(T *t)
{
	fclose(t->mem);
	free(t->buf);
	arena_free(&t->arena);
}

static inline IrDim C(int64_t v)
{
	return ir_dim_const(v);
}

/* A shape from n dims. */
static inline IrShape shp(int n, ...)
{
	IrShape s;
	memset(&s, 0, sizeof s);
	va_list ap;
	va_start(ap, n);
	s.ndim = n;
	for (int i = 0; i < n; i++)
		s.d[i] = va_arg(ap, IrDim);
	va_end(ap);
	return s;
}

static inline IrNode *t_input(T *t, IrGraph *g, const char *name, IrDType dt, IrShape s)
{
	IrAttrs at = {0};
	at.dtype = dt;
	at.shape = s;
	at.sattr = name;
	IrNode *n = ir_build(g, OP_INPUT, NULL, 0, &at, t->sp, name);
	if (n)
		ptrvec_push(g->ctx->arena, &g->inputs, n);
	return n;
}

static inline IrNode *t_param(T *t, IrGraph *g, const char *path, IrShape s)
{
	IrAttrs at = {0};
	at.dtype = IR_F32;
	at.shape = s;
	at.sattr = path;
	return ir_build(g, OP_PARAM, NULL, 0, &at, t->sp, NULL);
}

static inline IrNode *t_const(T *t, IrGraph *g, double v, IrDType dt)
{
	IrAttrs at = {0};
	at.dtype = dt;
	at.fattr = v;
	return ir_build(g, OP_CONST, NULL, 0, &at, t->sp, NULL);
}

static inline IrNode *t_op1(T *t, IrGraph *g, IrOp op, IrNode *a)
{
	return ir_build(g, op, &a, 1, NULL, t->sp, NULL);
}

static inline IrNode *t_op2(T *t, IrGraph *g, IrOp op, IrNode *a, IrNode *b)
{
	IrNode *in[2] = {a, b};
	return ir_build(g, op, in, 2, NULL, t->sp, NULL);
}

static inline IrNode *t_opa(T *t, IrGraph *g, IrOp op, IrNode **in, int nin, IrAttrs at)
{
	return ir_build(g, op, in, nin, &at, t->sp, NULL);
}

/* The printed graph (arena copy). */
static inline const char *t_print(T *t, const IrGraph *g)
{
	StrBuf b = {0};
	ir_graph_print(&b, g);
	const char *r = arena_strdup(&t->arena, b.data ? b.data : "");
	sb_free(&b);
	return r;
}

/* Deterministic pseudo-random numbers in [-1, 1). */
static inline double t_rand(uint64_t *state)
{
	*state = *state * 6364136223846793005ull + 1442695040888963407ull;
	return (double)(*state >> 11) / (double)(1ull << 52) - 1.0;
}

static inline IrTensor *t_tensor(IrDType dt, int nd, const int64_t *shape,
                                 const double *v)
{
	IrTensor *r = ir_tensor_new(dt, nd, shape);
	if (r && v)
		memcpy(r->data, v, sizeof(double) * (size_t)r->numel);
	return r;
}

static inline IrTensor *t_random(IrDType dt, int nd, const int64_t *shape,
                                 uint64_t *state)
{
	IrTensor *r = ir_tensor_new(dt, nd, shape);
	for (int64_t i = 0; r && i < r->numel; i++)
		r->data[i] = t_rand(state);
	return r;
}

/* Attributes: n integers; the dims of a shape. */
static inline IrAttrs t_ints(int n, const int64_t *v)
{
	IrAttrs a = {0};
	for (int i = 0; i < n; i++)
		a.iattr[i] = v[i];
	a.niattr = n;
	return a;
}

static inline IrAttrs t_dims(IrShape s)
{
	IrAttrs a = {0};
	for (int i = 0; i < s.ndim; i++)
		a.dattr[i] = s.d[i];
	a.ndattr = s.ndim;
	return a;
}

#endif
