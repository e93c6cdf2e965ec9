/* testlib.h - helpers shared by the runtime tests: checks that count
 * failures, loading a model library, owned DLTensors, and the fake
 * model's parameters, checkpoint writer and double-precision reference
 * (the oracle for fake_model.c). Tests exit 0 on success, 1 on failure,
 * 77 when skipped.
 */
#ifndef SLAPO_TESTLIB_H
#define SLAPO_TESTLIB_H

#include <stdio.h>
#include <string.h>

#include "rt.h"

extern int t_failures;

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, \
			        #c);                                                     \
			t_failures++;                                                    \
		}                                                                        \
	} while (0)

/* call must return want; on mismatch prints the last error. */
#define CHECK_ST(api, call, want)                                                        \
	t_check_status((api), (call), (want), #call, __FILE__, __LINE__)

/* The last error's message contains sub, and its object is obj (if not
 * NULL). */
#define CHECK_ERR(api, sub, obj) t_check_error((api), (sub), (obj), __FILE__, __LINE__)

void t_check_status(const SlapoApi *api, SlapoStatus got, SlapoStatus want,
                    const char *what, const char *file, int line);
void t_check_error(const SlapoApi *api, const char *sub, const char *obj,
                   const char *file, int line);
int t_done(const char *name);

/* dlopens path (RTLD_LOCAL) and returns its table, or NULL. */
const SlapoApi *t_load(const char *path, void **handle);

/* A DLTensor that owns its shape and compact data. */
typedef struct TTensor {
	DLTensor t;
	int64_t shape[8];
} TTensor;

void tt_init(TTensor *x, DLDataType dt, int ndim, const int64_t *shape);
void tt_free(TTensor *x);
int64_t tt_numel(const TTensor *x);

/* ---- the fake model -------------------------------------------------- */

typedef struct FakeParams {
	int V, H, I;
	float *word, *type, *ln_w, *ln_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b, *head_b;
} FakeParams;

/* How fake_write names and stores the parameters. */
enum {
	FW_LEGACY = 1 << 0, /* LayerNorm.gamma / .beta */
	FW_PREFIX = 1 << 1, /* "fake." before every name */
	FW_EXTRAS = 1 << 2, /* pooler, NSP, per-layer attn.bias, 2 unknowns */
	FW_F16 = 1 << 3,    /* store as F16 */
	FW_BF16 = 1 << 4,   /* store as BF16 */
	FW_NO_FC2_BIAS = 1 << 5,
	FW_ALIAS_ONLY = 1 << 6, /* head.decoder.weight instead of word emb */
	FW_BAD_SHAPE = 1 << 7,  /* fc1.weight one column too wide */
	FW_I32_FC1 = 1 << 8,    /* fc1.weight stored as I32 */
	FW_BOTH_NAMES = 1 << 9  /* LayerNorm.gamma and .weight both */
};

void fake_init(FakeParams *p, int V, int H, int I, uint64_t seed);
/* V, H, I from a model's parameter specs. */
void fake_init_for(FakeParams *p, const SlapoApi *api, const SlapoModel *m,
                   uint64_t seed);
void fake_free(FakeParams *p);
/* Rounds every parameter through f16 or bf16 (what a F16/BF16 file
 * holds once loaded). */
void fake_round(FakeParams *p, int bf16);
SlapoStatus fake_write(const FakeParams *p, const char *path, int flags);
/* Reference forward in double precision. */
void fake_reference(const FakeParams *p, int64_t B, int64_t S, const int64_t *ids,
                    const int64_t *types, const int64_t *mask, double *logits,
                    double *hidden, double *scores);
/* Random ids in [0, V), types in [0, 2), mask with trailing zeros. */
void fake_inputs(int64_t B, int64_t S, int V, uint64_t seed, TTensor *ids, TTensor *types,
                 TTensor *mask);
/* Max of |got - want| / (atol + rtol |want|) over n elements (<= 1 ok). */
double t_err_ratio(const float *got, const double *want, int64_t n, double rtol,
                   double atol);

/* A fresh temporary directory (removed by t_rmdir). */
const char *t_tmpdir(void);
void t_rmdir(void);
/* path inside the temporary directory (a static buffer per call slot). */
const char *t_path(const char *name);
/* Writes bytes to t_path(name) and returns the path. */
const char *t_write_file(const char *name, const void *data, size_t len);

#endif
