/* blas.c - matrix multiplication services for generated code, on
 * OpenBLAS's cblas_sgemm (row-major).
 *
 * rt_sgemm hands one GEMM to OpenBLAS, which threads it itself (its
 * thread count comes from OPENBLAS_NUM_THREADS or the core count, read
 * once when OpenBLAS loads). rt_sgemm_batched spreads a batch of small
 * GEMMs (attention heads) over the session's pool, each chunk calling
 * cblas_sgemm on its matrices in order; large matrices go one by one to
 * OpenBLAS instead. Every element is computed by one sgemm call either
 * way, so results do not depend on the thread count.
 */
#include <cblas.h>
#include <limits.h>

#include "rt.h"

/* Below this many multiply-adds per matrix (where OpenBLAS itself runs
 * single-threaded), a batch is split over the pool; above it, OpenBLAS
 * threads each matrix. */
#define SMALL_GEMM (64 * 64 * 64)

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
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
	            tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a,
	            (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

void rt_sgemm(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
              int64_t k, float alpha, const float *a, int64_t lda, const float *b,
              int64_t ldb, float beta, float *c, int64_t ldc)
{
	if (!check_dims(ex, m, n, k, lda, ldb, ldc))
		return;
	sgemm1(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* Arguments of one batched call, shared by its chunks. */
typedef struct Batch {
	int32_t ta, tb;
	int64_t m, n, k, lda, ldb, ldc, sa, sb, sc;
	float alpha, beta;
	const float *a, *b;
	float *c;
} Batch;

static void batch_range(void *ctx, int64_t begin, int64_t end)
{
	const Batch *q = ctx;
	int64_t i;
	for (i = begin; i < end; i++)
		sgemm1(q->ta, q->tb, q->m, q->n, q->k, q->alpha, q->a + i * q->sa, q->lda,
		       q->b + i * q->sb, q->ldb, q->beta, q->c + i * q->sc, q->ldc);
}

void rt_sgemm_batched(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
                      int64_t k, float alpha, const float *a, int64_t lda,
                      int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b,
                      float beta, float *c, int64_t ldc, int64_t stride_c, int64_t batch)
{
	Batch q;
	if (batch <= 0 || !check_dims(ex, m, n, k, lda, ldb, ldc))
		return;
	q.ta = trans_a;
	q.tb = trans_b;
	q.m = m;
	q.n = n;
	q.k = k;
	q.lda = lda;
	q.ldb = ldb;
	q.ldc = ldc;
	q.sa = stride_a;
	q.sb = stride_b;
	q.sc = stride_c;
	q.alpha = alpha;
	q.beta = beta;
	q.a = a;
	q.b = b;
	q.c = c;
	if (m * n * k < SMALL_GEMM && ex && ex->pool)
		rt_parallel_for(ex, batch, 1, batch_range, &q);
	else
		batch_range(&q, 0, batch);
}
