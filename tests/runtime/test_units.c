/* test_units.c - unit tests of libslapo_rt internals, linked directly:
 * the thread pool, sgemm wrappers, the packed GEMM, rt_attention, f16/bf16
 * conversions (exhaustive),
 * strided copies, the JSON parser, and descriptor validation.
 */
#include <math.h>
#include <stdlib.h>

#include "testlib.h"

#include <cblas.h> /* after testlib.h: its complex.h defines I */

/* ---- pool ------------------------------------------------------------ */

typedef struct Cover {
	int *count;
	atomic_int calls;
	RtPool *pool;
	int nested;
} Cover;

static void cover(void *p, int64_t b, int64_t e)
{
	Cover *c = p;
	int64_t i;
	atomic_fetch_add(&c->calls, 1);
	if (c->nested) { /* a job inside a job: no deadlock, full cover */
		Cover inner;
		int cnt[4] = {0};
		inner.count = cnt;
		atomic_init(&inner.calls, 0);
		inner.nested = 0;
		inner.pool = NULL;
		rt_pool_run(c->pool, 4, 1, cover, &inner);
		CHECK(cnt[0] == 1 && cnt[1] == 1 && cnt[2] == 1 && cnt[3] == 1);
	}
	for (i = b; i < e; i++)
		c->count[i]++;
}

static void test_pool(void)
{
	static const int threads[] = {1, 2, 3, 8};
	static const int64_t ns[] = {0, 1, 2, 7, 100, 1000};
	static const int64_t grains[] = {0, 1, 3, 64};
	size_t ti, ni, gi;
	int64_t i;
	CHECK(rt_cpu_count() >= 1);
	for (ti = 0; ti < 4; ti++) {
		RtPool *pool = rt_pool_new(threads[ti]);
		CHECK(pool && rt_pool_threads(pool) == threads[ti]);
		for (ni = 0; ni < 6; ni++)
			for (gi = 0; gi < 4; gi++) {
				Cover c;
				int64_t n = ns[ni], max_chunks;
				c.count = calloc((size_t)n + 1, sizeof *c.count);
				atomic_init(&c.calls, 0);
				c.pool = pool;
				c.nested = gi == 1;
				rt_pool_run(pool, n, grains[gi], cover, &c);
				for (i = 0; i < n; i++)
					CHECK(c.count[i] == 1);
				max_chunks = grains[gi] > 1
				                     ? (n + grains[gi] - 1) / grains[gi]
				                     : n;
				CHECK(atomic_load(&c.calls) <= threads[ti]);
				CHECK(atomic_load(&c.calls) <=
				      (max_chunks > 0 ? max_chunks : 0));
				free(c.count);
			}
		rt_pool_free(pool);
	}
	rt_pool_free(NULL);
}

/* ---- BLAS ------------------------------------------------------------ */

static void naive(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, const float *c0,
                  double *c, int ldc)
{
	int i, j, l;
	for (i = 0; i < m; i++)
		for (j = 0; j < n; j++) {
			double s = 0;
			for (l = 0; l < k; l++)
				s += (double)(ta ? a[l * lda + i] : a[i * lda + l]) *
				     (tb ? b[j * ldb + l] : b[l * ldb + j]);
			c[i * ldc + j] = alpha * s + beta * c0[i * ldc + j];
		}
}

static void test_blas(void)
{
	enum {
		M = 7,
		N = 5,
		K = 9,
		LD = 12,
		BATCH = 6
	};
	float a[BATCH][LD * LD], b[BATCH][LD * LD], c[BATCH][LD * LD];
	double want[LD * LD];
	RtErrorSlot err;
	RtExec ex;
	int ta, tb, i, bt;
	uint64_t s = 1;
	for (bt = 0; bt < BATCH; bt++)
		for (i = 0; i < LD * LD; i++) {
			s = s * 6364136223846793005u + 1442695040888963407u;
			a[bt][i] = (float)((s >> 40) % 1000) / 500.0f - 1.0f;
			b[bt][i] = (float)((s >> 20) % 1000) / 500.0f - 1.0f;
			c[bt][i] = (float)((s >> 50) % 100) / 50.0f;
		}
	memset(&ex, 0, sizeof ex);
	memset(&err, 0, sizeof err);
	ex.err = &err;
	ex.pool = rt_pool_new(3);
	ex.n_threads = 3;
	for (ta = 0; ta < 2; ta++)
		for (tb = 0; tb < 2; tb++) {
			float cc[LD * LD];
			memcpy(cc, c[0], sizeof cc);
			naive(ta, tb, M, N, K, 0.5f, a[0], LD, b[0], LD, 2.0f, c[0], want,
			      LD);
			rt_sgemm(&ex, ta, tb, M, N, K, 0.5f, a[0], LD, b[0], LD, 2.0f, cc,
			         LD);
			for (i = 0; i < M; i++)
				CHECK(t_err_ratio(cc + i * LD, want + i * LD, N, 1e-5,
				                  1e-5) <= 1);
		}
	{
		float cc[BATCH][LD * LD];
		memcpy(cc, c, sizeof cc);
		rt_sgemm_batched(&ex, 1, 0, M, N, K, 1.0f, a[0], LD, LD * LD, b[0], LD,
		                 LD * LD, 1.0f, cc[0], LD, LD * LD, BATCH);
		for (bt = 0; bt < BATCH; bt++) {
			naive(1, 0, M, N, K, 1.0f, a[bt], LD, b[bt], LD, 1.0f, c[bt],
			      want, LD);
			for (i = 0; i < M; i++)
				CHECK(t_err_ratio(cc[bt] + i * LD, want + i * LD, N, 1e-5,
				                  1e-5) <= 1);
		}
	}
	CHECK(!rt_failed(&ex));
	rt_sgemm(&ex, 0, 0, (int64_t)1 << 33, 1, 1, 1, a[0], 1, b[0], 1, 0, c[0], 1);
	CHECK(rt_failed(&ex) && err.code == SLAPO_UNSUPPORTED);
	CHECK(strstr(err.message, "exceed the BLAS's int range"));
	rt_fail(&ex, SLAPO_INTERNAL, "x", "second"); /* the first one stands */
	CHECK(err.code == SLAPO_UNSUPPORTED && !strstr(err.message, "second"));
	rt_pool_free(ex.pool);
	rt_parallel_for(NULL, 0, 1, cover, NULL); /* n = 0: fn never called */
}

/* GEMMs split over the pool (OpenBLAS single-threaded), by rows, by
 * columns and by batch, agree with one cblas_sgemm call (to the last bits:
 * some OpenBLAS kernels sum differently for different block sizes). */
static int close_to(const float *a, const float *b, int64_t n)
{
	int64_t i;
	for (i = 0; i < n; i++)
		if (!(fabsf(a[i] - b[i]) <= 1e-5f * (1 + fabsf(b[i]))))
			return 0;
	return 1;
}

static void test_blas_split(void)
{
	static const int shapes[][3] = {{200, 96, 80}, {20, 1000, 40}, {70, 70, 70}};
	RtErrorSlot err;
	RtExec ex;
	size_t si;
	int ta, tb;
	int64_t i;
	openblas_set_num_threads(1);
	memset(&ex, 0, sizeof ex);
	memset(&err, 0, sizeof err);
	ex.err = &err;
	ex.pool = rt_pool_new(3);
	ex.n_threads = 3;
	for (si = 0; si < 3; si++) {
		int m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
		int big = (m > n ? m : n) * (k > n ? k : n) + m * n;
		float *a = malloc((size_t)big * 4), *b = malloc((size_t)big * 4);
		float *c1 = malloc((size_t)m * n * 4), *c2 = malloc((size_t)m * n * 4);
		for (i = 0; i < big; i++) {
			a[i] = (float)((i * 7919) % 1000) / 300.0f - 1.5f;
			b[i] = (float)((i * 104729) % 997) / 400.0f - 1.2f;
		}
		for (ta = 0; ta < 2; ta++)
			for (tb = 0; tb < 2; tb++) {
				int lda = ta ? m : k, ldb = tb ? k : n;
				for (i = 0; i < (int64_t)m * n; i++)
					c1[i] = c2[i] = (float)i / 1000.0f;
				cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
				            tb ? CblasTrans : CblasNoTrans, m, n, k, 0.5f,
				            a, lda, b, ldb, 1.5f, c1, n);
				rt_sgemm(&ex, ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 1.5f,
				         c2, n);
				CHECK(close_to(c1, c2, (int64_t)m * n));
			}
		/* batched: 2 matrices of half size each */
		for (i = 0; i < (int64_t)m * n; i++)
			c1[i] = c2[i] = 0;
		for (i = 0; i < 2; i++)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m / 2, n, k,
			            1.0f, a + i * (m / 2) * k, k, b + i * 7, k, 0.0f,
			            c1 + i * (m / 2) * n, n);
		rt_sgemm_batched(&ex, 0, 1, m / 2, n, k, 1.0f, a, k, (m / 2) * k, b, k, 7,
		                 0.0f, c2, n, (m / 2) * n, 2);
		CHECK(close_to(c1, c2, (int64_t)m * n));
		free(a);
		free(b);
		free(c1);
		free(c2);
	}
	CHECK(!rt_failed(&ex));
	rt_pool_free(ex.pool);
}

/* The packed GEMM (gemm.c) against a double-precision product, over
 * its tile edges (12 rows, 32 columns), row blocks (192) and k blocks
 * (4096), both layouts of B, with and without bias and beta, padded
 * strides; bit-identical results for 1, 2 and 3 threads (where the packed
 * kernel runs: on OpenBLAS the splits may round differently); a B outside
 * the weights left to OpenBLAS; new weights packed anew after a clear. */
static void run_packed(RtExec *ex, int tb, int m, int n, int k, const float *a, int lda,
                       const float *b, int ldb, const float *bias, float beta, float *c,
                       int ldc)
{
	if (bias)
		rt_sgemm_bias(ex, 0, tb, m, n, k, 0.5f, a, lda, b, ldb, bias, c, ldc);
	else
		rt_sgemm(ex, 0, tb, m, n, k, 0.5f, a, lda, b, ldb, beta, c, ldc);
}

static void test_gemm_packed(void)
{
	static const int shapes[][3] = {{1, 1, 1},     {5, 31, 7},   {12, 32, 64},
	                                {13, 33, 100}, {200, 70, 33}, {30, 40, 4100}};
	RtErrorSlot err;
	RtExec ex;
	RtPool *pools[3];
	size_t si;
	int t, tb, v, packed = 0;
	int64_t i, j;
#if defined(__x86_64__)
	/* the packed kernel runs (else OpenBLAS, whose splits may round differently) */
	packed = __builtin_cpu_supports("avx512f") && !getenv("SLAPO_CPU_GEMM");
#endif
	memset(&ex, 0, sizeof ex);
	memset(&err, 0, sizeof err);
	ex.err = &err;
	for (t = 0; t < 3; t++)
		pools[t] = rt_pool_new(t + 1);
	for (si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		int m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
		int lda = k + 1, ldc = n + 5;
		size_t wbytes = (size_t)(n + 3) * (k + 2) * 4 + 64;
		float *store = malloc(wbytes), *a = malloc((size_t)m * lda * 4);
		float *c0 = malloc((size_t)m * ldc * 4), *c[3], *bias = malloc((size_t)n * 4);
		double *want = malloc((size_t)m * ldc * sizeof *want);
		for (i = 0; i < (int64_t)(wbytes / 4); i++)
			store[i] = (float)((i * 104729) % 997) / 400.0f - 1.2f;
		for (i = 0; i < (int64_t)m * lda; i++)
			a[i] = (float)((i * 7919) % 1000) / 300.0f - 1.5f;
		for (i = 0; i < (int64_t)m * ldc; i++)
			c0[i] = (float)(i % 100) / 50.0f;
		for (i = 0; i < n; i++)
			bias[i] = (float)i / 7.0f - 2.0f;
		for (t = 0; t < 3; t++)
			c[t] = malloc((size_t)m * ldc * 4);
		for (tb = 0; tb < 2; tb++)
			for (v = 0; v < 3; v++) { /* plain, beta, bias */
				const float *b = store + 16; /* not at the storage's start */
				int ldb = tb ? k + 2 : n + 3;
				float beta = v == 1 ? 1.5f : 0.0f;
				RtPacks *ps = rt_packs_new(store, wbytes, NULL, NULL);
				CHECK(ps != NULL);
				ex.packs = ps;
				naive(0, tb, m, n, k, 0.5f, a, lda, b, ldb, beta, c0, want, ldc);
				for (i = 0; v == 2 && i < m; i++)
					for (j = 0; j < n; j++)
						want[i * ldc + j] += bias[j];
				for (t = 0; t < 3; t++) {
					ex.pool = pools[t];
					ex.n_threads = t + 1;
					memcpy(c[t], c0, (size_t)m * ldc * 4);
					run_packed(&ex, tb, m, n, k, a, lda, b, ldb, v == 2 ? bias : NULL,
					           beta, c[t], ldc);
					for (i = 0; i < m; i++)
						CHECK(t_err_ratio(c[t] + i * ldc, want + i * ldc, n, 1e-5,
						                  1e-6 * k) <= 1);
					for (i = 0; i < m; i++) /* padding untouched */
						CHECK(memcmp(c[t] + i * ldc + n, c0 + i * ldc + n, 5 * 4) == 0);
					CHECK(!packed ||
					      memcmp(c[t], c[0], (size_t)m * ldc * 4) == 0);
				}
				rt_packs_free(ps);
			}
		free(store);
		free(a);
		free(c0);
		free(bias);
		free(want);
		for (t = 0; t < 3; t++)
			free(c[t]);
	}
	{ /* outside the weights: OpenBLAS; new weights after a clear */
		float w[64 * 40], x[3 * 40], y[3 * 64];
		double want[3 * 64];
		RtPacks *ps = rt_packs_new(w, sizeof w, NULL, NULL);
		ex.packs = ps;
		ex.pool = pools[1];
		ex.n_threads = 2;
		for (i = 0; i < 64 * 40; i++)
			w[i] = (float)(i % 13) - 6.0f;
		for (i = 0; i < 3 * 40; i++)
			x[i] = (float)(i % 5) - 2.0f;
		CHECK(!rt_gemm_packed(&ex, 0, 1, 3, 64, 40, 1.0f, x, 40, x, 40, NULL, 0.0f, y,
		                      64));
		CHECK(!rt_gemm_packed(&ex, 1, 1, 3, 64, 40, 1.0f, x, 3, w, 40, NULL, 0.0f, y, 64));
#if defined(__x86_64__)
		CHECK(rt_gemm_packed(&ex, 0, 1, 3, 64, 40, 1.0f, x, 40, w, 40, NULL, 0.0f, y, 64) ==
		      packed);
#endif
		for (i = 0; i < 64 * 40; i++)
			w[i] = (float)(i % 11) - 5.0f;
		rt_packs_clear(ps);
		rt_sgemm(&ex, 0, 1, 3, 64, 40, 1.0f, x, 40, w, 40, 0.0f, y, 64);
		naive(0, 1, 3, 64, 40, 1.0f, x, 40, w, 40, 0.0f, y, want, 64);
		for (i = 0; i < 3; i++)
			CHECK(t_err_ratio(y + i * 64, want + i * 64, 64, 1e-6, 1e-6) <= 1);
		rt_packs_free(ps);
	}
	CHECK(!rt_failed(&ex));
	for (t = 0; t < 3; t++)
		rt_pool_free(pools[t]);
}

/* ---- attention -------------------------------------------------------- */

/* The softmax rt_attention calls: softmax(scale * scores) in place over
 * rows [begin, end) of n at rows; each row counted. */
typedef struct Soft {
	int64_t n;
	float scale;
	atomic_int *seen;
} Soft;

static void soft_rows(void *ctx, int64_t begin, int64_t end, float *rows)
{
	const Soft *s = ctx;
	for (int64_t r = begin; r < end; r++) {
		float *x = rows + (r - begin) * s->n, *y = x, mx = -INFINITY, sum = 0.0f;
		atomic_fetch_add(&s->seen[r], 1);
		for (int64_t j = 0; j < s->n; j++)
			mx = fmaxf(mx, s->scale * x[j]);
		for (int64_t j = 0; j < s->n; j++)
			sum += y[j] = expf(s->scale * x[j] - mx);
		for (int64_t j = 0; j < s->n; j++)
			y[j] /= sum;
	}
}

/* rt_attention against a double-precision attention, BERT's layout (Q,
 * K, V side by side in rows of [B, S, 3, H, D], O [B, S, H, D]) over
 * batch and head units: every unit's rows, head sizes that are and are
 * not multiples of 16, 1-3 threads bit for bit. */
static void test_attention(void)
{
	static const int shapes[][4] = {{1, 1, 1, 8}, {2, 3, 7, 8}, {1, 2, 33, 17}, {2, 2, 128, 64}};
	RtErrorSlot err;
	RtExec ex;
	RtPool *pools[3];
	int t;
	memset(&ex, 0, sizeof ex);
	memset(&err, 0, sizeof err);
	ex.err = &err;
	for (t = 0; t < 3; t++)
		pools[t] = rt_pool_new(t + 1);
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		int64_t B = shapes[si][0], H = shapes[si][1], S = shapes[si][2], D = shapes[si][3];
		int64_t row = 3 * H * D, units = B * H, i, j, q;
		float *qkv = malloc((size_t)(B * S * row) * 4), *o[3];
		atomic_int *seen = malloc((size_t)(units * S) * sizeof *seen);
		double *want = malloc((size_t)(B * S * H * D) * sizeof *want);
		for (i = 0; i < B * S * row; i++)
			qkv[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
		Soft sm = {S, 1.0f / sqrtf((float)D), seen};
		RtAttention at = {.nbatch = 2, .bdim = {B, H}, .m = S, .n = S, .d = D,
		                  .ldq = row, .ldk = row, .ldv = row, .ldo = H * D,
		                  .sq = {S * row, D}, .sk = {S * row, D}, .sv = {S * row, D},
		                  .so = {S * H * D, D}, .q = qkv, .k = qkv + H * D,
		                  .v = qkv + 2 * H * D, .softmax = soft_rows, .ctx = &sm};
		for (int64_t b = 0; b < B; b++)
			for (int64_t h = 0; h < H; h++)
				for (i = 0; i < S; i++) {
					double s[128], mx = -INFINITY, sum = 0;
					const float *qi = qkv + (b * S + i) * row + h * D;
					for (j = 0; j < S; j++) {
						const float *kj = qkv + (b * S + j) * row + H * D + h * D;
						s[j] = 0;
						for (q = 0; q < D; q++)
							s[j] += (double)qi[q] * kj[q];
						s[j] /= sqrt((double)D);
						mx = fmax(mx, s[j]);
					}
					for (j = 0; j < S; j++)
						sum += s[j] = exp(s[j] - mx);
					for (q = 0; q < D; q++) {
						double acc = 0;
						for (j = 0; j < S; j++)
							acc += s[j] / sum *
							       qkv[(b * S + j) * row + 2 * H * D + h * D + q];
						want[((b * S + i) * H + h) * D + q] = acc;
					}
				}
		for (t = 0; t < 3; t++) {
			ex.pool = pools[t];
			ex.n_threads = t + 1;
			o[t] = malloc((size_t)(B * S * H * D) * 4);
			at.o = o[t];
			for (i = 0; i < units * S; i++)
				atomic_init(&seen[i], 0);
			rt_attention(&ex, &at);
			for (i = 0; i < units * S; i++) /* every row of every unit, once */
				CHECK(atomic_load(&seen[i]) == 1);
			CHECK(t_err_ratio(o[t], want, B * S * H * D, 1e-5, 1e-6) <= 1);
			CHECK(memcmp(o[t], o[0], (size_t)(B * S * H * D) * 4) == 0);
		}
		for (t = 0; t < 3; t++)
			free(o[t]);
		free(qkv);
		free(seen);
		free(want);
	}
	CHECK(!rt_failed(&ex));
	for (t = 0; t < 3; t++)
		rt_pool_free(pools[t]);
}

/* ---- conversions ----------------------------------------------------- */

static void test_convert(void)
{
	uint32_t h;
	int bad = 0;
	float f;
	int64_t i64[4];
	int32_t i32[4] = {-3, 0, 7, 2147483647};
	uint8_t b8[4] = {0, 1, 2, 0};
	double d[4];
	for (h = 0; h < 65536; h++) {
		f = rt_f16_to_f32((uint16_t)h);
		if (isnan(f))
			bad += !isnan(rt_f16_to_f32(rt_f32_to_f16(f)));
		else
			bad += rt_f32_to_f16(f) != h;
		f = rt_bf16_to_f32((uint16_t)h);
		if (isnan(f))
			bad += !isnan(rt_bf16_to_f32(rt_f32_to_bf16(f)));
		else
			bad += rt_f32_to_bf16(f) != h;
	}
	CHECK(bad == 0);
	CHECK(rt_f32_to_f16(1.0f) == 0x3c00 && rt_f32_to_f16(-2.0f) == 0xc000);
	CHECK(rt_f32_to_f16(65504.0f) == 0x7bff);
	CHECK(rt_f32_to_f16(65520.0f) == 0x7c00);           /* ties to inf */
	CHECK(rt_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie: even */
	CHECK(rt_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02); /* tie: even */
	CHECK(rt_f32_to_f16(ldexpf(1, -24)) == 0x0001);     /* subnormal */
	CHECK(rt_f32_to_f16(ldexpf(1, -25)) == 0x0000);     /* tie: even */
	CHECK(rt_f32_to_f16(ldexpf(3, -26)) == 0x0001);
	CHECK(rt_f32_to_f16(1e-10f) == 0 && rt_f32_to_f16(-1e-10f) == 0x8000);
	CHECK(rt_f32_to_f16(INFINITY) == 0x7c00);
	CHECK(rt_f32_to_bf16(1.0f + 1.0f / 256) == 0x3f80);
	CHECK(rt_f32_to_bf16(1.0f + 3.0f / 256) == 0x3f82);
	CHECK(rt_f16_to_f32(0x0001) == ldexpf(1, -24));
	/* ints and bools, unaligned buffers */
	rt_convert(RT_I64, i64, (DLDataType){kDLInt, 32, 1}, i32, 4);
	CHECK(i64[0] == -3 && i64[3] == 2147483647);
	rt_convert((DLDataType){kDLFloat, 64, 1}, d, (DLDataType){kDLBool, 8, 1}, b8, 4);
	CHECK(d[0] == 0 && d[1] == 1 && d[2] == 1);
	CHECK(rt_can_convert(RT_F32, RT_I64) && !rt_can_convert(RT_I64, RT_F32));
	CHECK(!rt_can_convert(RT_F32, (DLDataType){kDLFloat8_e5m2, 8, 1}));
	CHECK(rt_can_convert((DLDataType){kDLFloat8_e5m2, 8, 1},
	                     (DLDataType){kDLFloat8_e5m2, 8, 1}));
	{
		char buf[24];
		CHECK(!strcmp(rt_dtype_name((DLDataType){kDLBfloat, 16, 1}, buf),
		              "bf16"));
		CHECK(!strcmp(rt_dtype_name((DLDataType){kDLFloat, 32, 4}, buf),
		              "dl(2,32,4)"));
	}
}

static void test_copy_nd(void)
{
	float src[6] = {0, 1, 2, 3, 4, 5}, dst[6];
	int64_t shape[2] = {3, 2}, tstr[2] = {1, 3}, rev[2] = {-2, 1};
	int64_t big[3] = {INT64_MAX, 2, 1}, zero[2] = {0, 5};
	char buf[64];
	uint16_t half[6];
	/* src is [2,3] row-major; view it transposed as [3,2] */
	rt_copy_nd(RT_F32, dst, NULL, RT_F32, src, tstr, 2, shape);
	CHECK(dst[0] == 0 && dst[1] == 3 && dst[2] == 1 && dst[5] == 5);
	/* negative strides: rows reversed, with conversion to f16 */
	rt_copy_nd((DLDataType){kDLFloat, 16, 1}, half, NULL, RT_F32, src + 4, rev, 2,
	           shape);
	CHECK(rt_f16_to_f32(half[0]) == 4 && rt_f16_to_f32(half[5]) == 1);
	/* strided destination */
	memset(dst, 0, sizeof dst);
	rt_copy_nd(RT_F32, dst, tstr, RT_F32, src, NULL, 2, shape);
	CHECK(dst[0] == 0 && dst[3] == 1 && dst[1] == 2 && dst[5] == 5);
	CHECK(rt_numel(3, big) == -1 && rt_numel(2, zero) == 0);
	CHECK(!strcmp(rt_shape_str(buf, sizeof buf, 2, shape, NULL), "[3, 2]"));
	{
		const char *names[2] = {"B", NULL};
		CHECK(!strcmp(rt_shape_str(buf, sizeof buf, 2, shape, names), "[B, 2]"));
		CHECK(!strcmp(rt_shape_str(buf, sizeof buf, 0, shape, names), "[]"));
	}
}

/* ---- JSON ------------------------------------------------------------ */

static SlapoStatus parse(const char *text, int depth, RtJsonDoc *doc, char *err)
{
	return rt_json_parse(text, strlen(text), depth, doc, err, 200);
}

static void expect_json(const char *text, SlapoStatus want, const char *sub)
{
	RtJsonDoc doc;
	char err[200];
	SlapoStatus st = parse(text, 64, &doc, err);
	if (st != want || (sub && !strstr(err, sub))) {
		fprintf(stderr, "json %.60s: got %s (%s), want %s (%s)\n", text,
		        rt_status_name(st), err, rt_status_name(want), sub ? sub : "");
		t_failures++;
	}
	if (st == SLAPO_OK)
		rt_json_free(&doc);
}

static void test_json(void)
{
	RtJsonDoc doc;
	char err[200], deep[300];
	uint64_t u;
	const RtJson *v;
	int i;
	expect_json("{}", SLAPO_OK, NULL);
	expect_json(" [1, -0, 1.5e3, true, false, null, \"x\"] ", SLAPO_OK, NULL);
	expect_json("[1,2", SLAPO_FORMAT, "expected ',' or ']'");
	expect_json("{\"a\":1,}", SLAPO_FORMAT, "expected a string key");
	expect_json("{\"a\" 1}", SLAPO_FORMAT, "expected ':'");
	expect_json("{\"a\":1,\"a\":2}", SLAPO_FORMAT, "duplicate key \"a\"");
	expect_json("[01]", SLAPO_FORMAT, "expected ','");
	expect_json("[1.]", SLAPO_FORMAT, "bad number");
	expect_json("[-]", SLAPO_FORMAT, "bad number");
	expect_json("tru", SLAPO_FORMAT, "unexpected character");
	expect_json("{} x", SLAPO_FORMAT, "after the JSON value");
	expect_json("", SLAPO_FORMAT, "end of input");
	expect_json("[\"a\tb\"]", SLAPO_FORMAT, "control character");
	expect_json("[\"\\ud800\"]", SLAPO_FORMAT, "lone high surrogate");
	expect_json("[\"\\udc00\"]", SLAPO_FORMAT, "lone low surrogate");
	expect_json("[\"\\x\"]", SLAPO_FORMAT, "bad escape");
	expect_json("[\"\\u12g4\"]", SLAPO_FORMAT, "bad \\u escape");
	expect_json("[\"abc]", SLAPO_FORMAT, "unterminated string");
	expect_json("[\"\xc3\x28\"]", SLAPO_FORMAT, "UTF-8");
	expect_json("[\"\xed\xa0\x80\"]", SLAPO_FORMAT, "UTF-8"); /* surrogate */
	expect_json("[\"\xc0\xaf\"]", SLAPO_FORMAT, "UTF-8");     /* overlong */
	for (i = 0; i < 65; i++)
		deep[i] = '[';
	for (i = 0; i < 65; i++)
		deep[65 + i] = ']';
	deep[130] = '\0';
	expect_json(deep, SLAPO_FORMAT, "nesting deeper than 64");
	deep[129] = '\0';
	expect_json(deep + 1, SLAPO_OK, NULL); /* 64 deep */
	CHECK(parse("{\"k\\u00e9\\ud83d\\ude00\\n\":\"v\\\"\",\"n\":18446744073709551615,"
	            "\"m\":18446744073709551616,\"e\":1e3,\"s\":-1}",
	            64, &doc, err) == SLAPO_OK);
	CHECK(doc.root.len == 5);
	CHECK(!strcmp(doc.root.keys[0], "k\xc3\xa9\xf0\x9f\x98\x80\n"));
	CHECK(!strcmp(doc.root.items[0].str, "v\""));
	v = rt_json_get(&doc.root, "n");
	CHECK(v && rt_json_u64(v, &u) && u == UINT64_MAX);
	CHECK(!rt_json_u64(rt_json_get(&doc.root, "m"), &u));
	CHECK(!rt_json_u64(rt_json_get(&doc.root, "e"), &u));
	CHECK(!rt_json_u64(rt_json_get(&doc.root, "s"), &u));
	CHECK(rt_json_get(&doc.root, "zz") == NULL);
	rt_json_free(&doc);
	/* many keys, one duplicate far apart */
	{
		size_t cap = 20000, at = 0;
		char *big = malloc(cap);
		at += (size_t)snprintf(big + at, cap - at, "{");
		for (i = 0; i < 1000; i++)
			at += (size_t)snprintf(big + at, cap - at, "\"k%d\":%d,", i, i);
		snprintf(big + at, cap - at, "\"k7\":0}");
		expect_json(big, SLAPO_FORMAT, "duplicate key \"k7\"");
		free(big);
	}
}

/* ---- descriptors ----------------------------------------------------- */

static uint64_t ws_zero(const int64_t *sym)
{
	(void)sym;
	return 0;
}

static SlapoStatus fwd_nop(RtExec *ex)
{
	(void)ex;
	return SLAPO_OK;
}

static void test_descriptors(void)
{
	static const RtSymDesc syms[] = {{"B", 1, -1}, {"S", 1, 8}};
	static const int64_t d_b[] = {RT_SYM(0)}, d_s[] = {RT_SYM(1)};
	static const int64_t d_4[] = {4};
	static const RtTensorDesc in[] = {{"x", {kDLFloat, 32, 1}, 1, d_b, 0, 0, 0, 0}};
	static const RtTensorDesc out_ok[] = {
	        {"y", {kDLFloat, 32, 1}, 1, d_b, 0, 0, 0, 0}};
	static const RtTensorDesc out_bad[] = {
	        {"y", {kDLFloat, 32, 1}, 1, d_s, 0, 0, 0, 0}};
	static const RtTensorDesc params[] = {
	        {"a", {kDLFloat, 32, 1}, 1, d_4, 0, 0, 0, 0},
	        {"b", {kDLFloat, 32, 1}, 1, d_4, 0, 0, 0, 0},
	};
	static const RtTie tie_bad[] = {{"a", "zz"}};
	static const RtTie tie_ok[] = {{"b", "a"}};
	RtModelDesc d;
	SlapoModel *m;
	memset(&d, 0, sizeof d);
	d.version = RT_DESC_VERSION;
	d.devices = SLAPO_DEVICE_BIT_CPU;
	d.name = "Tiny";
	d.n_syms = 2;
	d.syms = syms;
	d.n_inputs = 1;
	d.inputs = in;
	d.n_outputs = 1;
	d.outputs = out_ok;
	d.n_params = 2;
	d.params = params;
	d.n_ties = 1;
	d.ties = tie_ok;
	d.workspace_size = ws_zero;
	d.forward = fwd_nop;
	CHECK_ST(NULL, rt_model_open(&d, &m), SLAPO_OK);
	CHECK(m->n_distinct == 1 && m->storage_of[1] == 0);
	rt_model_close(m);
	d.version = RT_DESC_VERSION + 1;
	CHECK_ST(NULL, rt_model_open(&d, &m), SLAPO_ABI_MISMATCH);
	CHECK_ERR(NULL, "mismatched libslapo_rt.a", NULL);
	d.version = RT_DESC_VERSION_MIN - 1;
	CHECK_ST(NULL, rt_model_open(&d, &m), SLAPO_ABI_MISMATCH);
	/* version 2: read without the step table (garbage there is not looked at) */
	{
		static const RtStepDesc steps[] = {{"a", "map", NULL, NULL}, {NULL, "map", NULL, NULL}};
		RtStepTable t;
		d.version = 2;
		d.n_steps = 2;
		d.steps = steps;
		CHECK_ST(NULL, rt_model_open(&d, &m), SLAPO_OK);
		CHECK(!rt_step_table(m->desc, 0, &t) && t.n == 0 && !t.steps);
		rt_model_close(m);
		d.version = RT_DESC_VERSION;
		CHECK_ST(NULL, rt_model_open(&d, &m), SLAPO_INTERNAL);
		CHECK_ERR(NULL, "step without a name", NULL);
		d.n_steps = -1;
		CHECK_ST(NULL, rt_model_open(&d, &m), SLAPO_INTERNAL);
		CHECK_ERR(NULL, "bad step table", NULL);
		d.n_steps = 1;
		CHECK_ST(NULL, rt_model_open(&d, &m), SLAPO_OK);
		CHECK(rt_step_table(m->desc, 0, &t) && t.n == 1 && t.steps == steps);
		CHECK(!rt_step_table(m->desc, 1, &t)); /* no GPU part */
		rt_model_close(m);
		d.n_steps = 0;
		d.steps = NULL;
	}
	d.version = RT_DESC_VERSION;
	d.ties = tie_bad;
	CHECK_ST(NULL, rt_model_open(&d, &m), SLAPO_INTERNAL);
	CHECK_ERR(NULL, "tie to an unknown param", "a");
	d.ties = tie_ok;
	d.outputs = out_bad;
	CHECK_ST(NULL, rt_model_open(&d, &m), SLAPO_INTERNAL);
	CHECK_ERR(NULL, "symbol bound by no input", "y");
	d.outputs = out_ok;
	d.forward = NULL;
	CHECK_ST(NULL, rt_model_open(&d, &m), SLAPO_INTERNAL);
	CHECK_ST(NULL, rt_model_open(NULL, &m), SLAPO_INTERNAL);
}

int main(void)
{
	test_pool();
	test_blas();
	test_blas_split();
	test_gemm_packed();
	test_attention();
	test_convert();
	test_copy_nd();
	test_json();
	test_descriptors();
	return t_done("test_units");
}
