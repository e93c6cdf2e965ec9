/* blas.c - matrix multiplication services for generated code, on
 * OpenBLAS's cblas_sgemm (row-major).
 *
 * Two thread pools on one set of cores fight (OpenBLAS's idle workers
 * spin and yield while the session's pool runs kernels, and the other
 * way round), so the runtime threads GEMMs itself when it can:
 *
 *   - OpenBLAS single-threaded (OPENBLAS_NUM_THREADS=1; slapo-run sets
 *     it): rt_sgemm splits C into blocks of rows (or of columns when it
 *     has few rows) over the session's pool, each chunk one cblas_sgemm;
 *     rt_sgemm_batched splits the batch over the pool.
 *   - OpenBLAS multi-threaded (the process's choice): one GEMM goes to
 *     OpenBLAS whole and it threads it; only batches of small matrices
 *     (where OpenBLAS stays single-threaded) are split over the pool.
 *
 * Blocks split M or N only, never K, at positions that depend only on
 * the shape and the thread count, so a given configuration reproduces
 * its results bit for bit. Across thread counts the bits match when
 * OpenBLAS's kernel sums over K in the same order for every block size
 * (its AVX-512 kernels do, its Haswell ones do not: last-bit
 * differences).
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

/* OpenBLAS is opened on the first CPU GEMM (dlopen), not linked: a model
 * library run on a GPU needs no OpenBLAS on the machine. $SLAPO_LIBBLAS
 * names another library with the same two functions. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };
typedef void (*SgemmFn)(int, int, int, int, int, int, float, const float *, int,
                        const float *, int, float, float *, int);
static SgemmFn blas_sgemm;
static int (*blas_threads)(void);
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static char blas_error[512];

static void load_blas(void)
{
	const char *env = getenv("SLAPO_LIBBLAS");
	const char *names[] = {env && *env ? env : "libopenblas.so.0", "libopenblas.so", NULL};
	void *h = NULL;
	for (int i = 0; names[i] && !h; i++)
		h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(blas_error, sizeof blas_error,
		         "the CPU code needs OpenBLAS (libopenblas.so.0), which cannot be loaded: "
		         "%.400s",
		         dlerror());
		return;
	}
	*(void **)&blas_sgemm = dlsym(h, "cblas_sgemm");
	*(void **)&blas_threads = dlsym(h, "openblas_get_num_threads");
	if (!blas_sgemm)
		snprintf(blas_error, sizeof blas_error, "%s has no cblas_sgemm", names[0]);
}

/* Whether OpenBLAS is there; rt_fail (once per run) if not. */
static int have_blas(RtExec *ex)
{
	pthread_once(&blas_once, load_blas);
	if (blas_sgemm)
		return 1;
	if (ex)
		rt_fail(ex, SLAPO_UNSUPPORTED, NULL, "%s", blas_error);
	return 0;
}

static int openblas_get_num_threads(void)
{
	return blas_threads ? blas_threads() : 1;
}

/* Below this many multiply-adds (where OpenBLAS itself runs one thread),
 * a GEMM is not worth splitting. */
#define SMALL_GEMM (64 * 64 * 64)
/* Rows (or columns) per block unit: a multiple of the kernels' tiles. */
#define UNIT 16

static int fits_int(int64_t v)
{
	return v >= 0 && v <= INT_MAX;
}

static int check_dims(RtExec *ex, int64_t m, int64_t n, int64_t k, int64_t lda,
                      int64_t ldb, int64_t ldc)
{
	if (fits_int(m) && fits_int(n) && fits_int(k) && fits_int(lda) && fits_int(ldb) &&
	    fits_int(ldc))
		return 1;
	if (ex)
		rt_fail(ex, SLAPO_UNSUPPORTED, NULL,
		        "sgemm dims %lld x %lld x %lld exceed the BLAS's int range",
		        (long long)m, (long long)n, (long long)k);
	return 0;
}

static void sgemm1(int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                   float *c, int64_t ldc)
{
	if (m == 0 || n == 0)
		return;
	blas_sgemm(CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS,
	           tb ? CBLAS_TRANS : CBLAS_NO_TRANS, (int)m, (int)n, (int)k, alpha, a,
	           (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* Whether the session's pool should split GEMMs: OpenBLAS runs each call
 * on the calling thread only. */
static int pool_threads_gemm(const RtExec *ex)
{
	return ex && ex->pool && ex->n_threads > 1 && openblas_get_num_threads() == 1;
}

/* The arguments of one call, shared by its chunks. */
typedef struct Gemm {
	int32_t ta, tb;
	int64_t m, n, k, lda, ldb, ldc, sa, sb, sc;
	float alpha, beta;
	const float *a, *b;
	float *c;
} Gemm;

/* Rows [begin, end) * UNIT of C. */
static void gemm_rows(void *ctx, int64_t begin, int64_t end)
{
	const Gemm *q = ctx;
	int64_t r0 = begin * UNIT, r1 = end * UNIT < q->m ? end * UNIT : q->m;
	const float *a = q->ta ? q->a + r0 : q->a + r0 * q->lda;
	sgemm1(q->ta, q->tb, r1 - r0, q->n, q->k, q->alpha, a, q->lda, q->b, q->ldb,
	       q->beta, q->c + r0 * q->ldc, q->ldc);
}

/* Columns [begin, end) * UNIT of C. */
static void gemm_cols(void *ctx, int64_t begin, int64_t end)
{
	const Gemm *q = ctx;
	int64_t c0 = begin * UNIT, c1 = end * UNIT < q->n ? end * UNIT : q->n;
	const float *b = q->tb ? q->b + c0 * q->ldb : q->b + c0;
	sgemm1(q->ta, q->tb, q->m, c1 - c0, q->k, q->alpha, q->a, q->lda, b, q->ldb,
	       q->beta, q->c + c0, q->ldc);
}

static void gemm_batch(void *ctx, int64_t begin, int64_t end)
{
	const Gemm *q = ctx;
	int64_t i;
	for (i = begin; i < end; i++)
		sgemm1(q->ta, q->tb, q->m, q->n, q->k, q->alpha, q->a + i * q->sa, q->lda,
		       q->b + i * q->sb, q->ldb, q->beta, q->c + i * q->sc, q->ldc);
}

static Gemm gemm_args(int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k,
                      float alpha, const float *a, int64_t lda, const float *b,
                      int64_t ldb, float beta, float *c, int64_t ldc)
{
	Gemm q;
	q.ta = ta;
	q.tb = tb;
	q.m = m;
	q.n = n;
	q.k = k;
	q.lda = lda;
	q.ldb = ldb;
	q.ldc = ldc;
	q.sa = q.sb = q.sc = 0;
	q.alpha = alpha;
	q.beta = beta;
	q.a = a;
	q.b = b;
	q.c = c;
	return q;
}

void rt_sgemm(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
              int64_t k, float alpha, const float *a, int64_t lda, const float *b,
              int64_t ldb, float beta, float *c, int64_t ldc)
{
	Gemm q;
	int64_t rows, cols;
	if (rt_gemm_packed(ex, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, NULL, beta, c,
	                   ldc) ||
	    !check_dims(ex, m, n, k, lda, ldb, ldc) || !have_blas(ex))
		return;
	q = gemm_args(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	rows = (m + UNIT - 1) / UNIT;
	cols = (n + UNIT - 1) / UNIT;
	if (!pool_threads_gemm(ex) || m * n * k < SMALL_GEMM)
		sgemm1(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	else if (rows >= 2 * ex->n_threads || rows >= cols)
		rt_parallel_for(ex, rows, 1, gemm_rows, &q);
	else
		rt_parallel_for(ex, cols, 1, gemm_cols, &q);
}

void rt_sgemm_serial(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
                     int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                     int64_t ldb, float beta, float *c, int64_t ldc)
{
	if (check_dims(ex, m, n, k, lda, ldb, ldc) && have_blas(ex))
		sgemm1(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* Rows [begin, end) of C filled with the bias (the fallback's first pass). */
typedef struct BiasFill {
	const float *bias;
	float *c;
	int64_t n, ldc;
} BiasFill;

static void fill_rows(void *ctx, int64_t begin, int64_t end)
{
	const BiasFill *f = ctx;
	for (int64_t r = begin; r < end; r++)
		memcpy(f->c + r * f->ldc, f->bias, (size_t)f->n * sizeof(float));
}

void rt_sgemm_bias(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
                   int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                   int64_t ldb, const float *bias, float *c, int64_t ldc)
{
	BiasFill f = {bias, c, n, ldc};
	if (m <= 0 || n <= 0 ||
	    rt_gemm_packed(ex, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, bias, 0.0f, c,
	                   ldc))
		return;
	rt_parallel_for(ex, m, (4096 + n - 1) / n, fill_rows, &f);
	rt_sgemm(ex, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, 1.0f, c, ldc);
}

void rt_sgemm_batched(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
                      int64_t k, float alpha, const float *a, int64_t lda,
                      int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b,
                      float beta, float *c, int64_t ldc, int64_t stride_c, int64_t batch)
{
	Gemm q;
	int64_t i;
	if (batch <= 0 || !check_dims(ex, m, n, k, lda, ldb, ldc) || !have_blas(ex))
		return;
	q = gemm_args(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	q.sa = stride_a;
	q.sb = stride_b;
	q.sc = stride_c;
	if (ex && ex->pool && (pool_threads_gemm(ex) || m * n * k < SMALL_GEMM) &&
	    batch > 1 && (batch >= ex->n_threads || m * n * k < SMALL_GEMM)) {
		rt_parallel_for(ex, batch, 1, gemm_batch, &q);
		return;
	}
	for (i = 0; i < batch; i++) /* few big matrices: split each one */
		rt_sgemm(ex, trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda,
		         b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
}
