/* cgtest.h - helpers for the code generator's tests: build a graph with
 * ir_build, compile it to a model library with cg_compile, load it with
 * dlopen, run it through the public API (slapo_get_api) on random inputs
 * with every output poisoned with NaN beforehand, and compare with the
 * reference interpreter (interp_run, double precision).
 */
#ifndef SLAPO_CGTEST_H
#define SLAPO_CGTEST_H

#include "codegen/codegen.h"
#include "slapo/slapo.h"

/* One graph under test. */
typedef struct Case {
	const char *name;
	Arena arena;
	Diag diag;
	IrCtx ir;
	IrGraph *g;
	Span sp;
	int64_t int_hi[16];  /* integer input k: values in [0, int_hi) (0: 0..9) */
	double lo, hi;       /* float inputs: uniform in [lo, hi) (default -2, 2) */
	double rtol, atol;   /* |got - want| <= atol + rtol * |want| */
	const char *ties[4]; /* tie pairs (param, tied_to) for the descriptor */
	int nties;
	bool expect_fail;    /* session_run must fail (bad index) */
	const char *fail_object; /* ... naming this object */
	const char *cpu;     /* target CPU of the library (NULL: this machine) */
} Case;

/* Starts a case (tolerance rel 1e-5, abs 1e-6). */
void case_init(Case *c, const char *name);
void case_free(Case *c);
/* An input or param with a shape like "B,S,32" (ints and symbols). */
IrNode *in_(Case *c, const char *name, IrDType t, const char *shape);
IrNode *param_(Case *c, const char *path, const char *shape);
IrNode *const_(Case *c, double v, IrDType t);
/* A node; attributes via the IrAttrs (NULL: none). */
IrNode *op_(Case *c, IrOp op, IrNode *a, IrNode *b, IrNode *x, const IrAttrs *at);
IrNode *opn_(Case *c, IrOp op, IrNode **in, int n, const IrAttrs *at);
void out_(Case *c, IrNode *n);
/* Fuse the listed nodes (the last one computes the result) into one
 * FUSED node named `name`, which becomes an output of the graph. */
IrNode *fuse_(Case *c, IrNode **nodes, int n, const char *name);

/* Compile, run at each binding (syms[k][i]: value of symbol i, -1 ends a
 * list), compare. Prints one line; returns true on success. */
bool case_run(Case *c, const int64_t (*syms)[2], int nbind);

/* Compile to <tmpdir>/<name>.so and dlopen it; the API, or NULL with
 * the reason in why. */
const SlapoApi *case_compile(Case *c, char *path, size_t pathlen, void **lib, char *why,
                             size_t whylen);

/* Temporary directory shared by the tests (made once). */
const char *test_tmpdir(void);

#endif
