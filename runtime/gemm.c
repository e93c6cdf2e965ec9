/* gemm.c - the CPU's own matrix product for weights: C = alpha * A *
 * op(B) + beta * C where B is a parameter (a Linear's W), on x86-64
 * with AVX-512.
 *
 * OpenBLAS copies B into its panel layout on every call; with A a few
 * hundred rows tall (a batch of one or two sequences) it ran BERT-base's
 * layer GEMMs at 310-325 GFLOP/s on two AVX-512 cores where this kernel
 * reaches 460-490 (docs/performance.md). Here each weight is packed
 * once, the first time a GEMM reads it, and kept with the weights
 * (RtPacks, one per weights object) until a load, weights_set or
 * weights_init_random changes them (they cannot while a session lives):
 *
 *   panel p = columns [32p, 32p + 32) of op(B), k-major: 32 floats per k
 *   (zeros past n), 64-byte aligned; panels follow each other.
 *
 * The kernel keeps a 12 x 32 tile of C in 24 zmm accumulators; per k it
 * loads the panel's 32 floats and broadcasts 12 floats of A, read in
 * place (row stride lda). It runs over K in blocks (at most KC_MAX; when A
 * is one block of rows, as at batch 1, small enough that the block's
 * columns of A, A_BLOCK_BYTES, stay in L2 while the thread's panels go
 * by: BERT's FFN down projection, K = 3072, read A from L3 for every
 * panel), C stored after each with the bias added the first time (as it
 * is stored: no bias pass); while it works on panel p it prefetches
 * panel p + 1, which comes from memory (a model's weights are far larger
 * than the caches). Work is split into units of (block of MC rows,
 * panel), panels outer: a thread takes a contiguous run of panels and
 * every block of rows of each, so a panel comes from memory once. Every
 * output is summed over k in the same order whatever the thread count
 * (the blocks depend on the shape only), so results repeat bit for bit
 * across thread counts.
 *
 * Used when the CPU has AVX-512F, A is not transposed and B lies in the
 * weights' storage; everything else goes to OpenBLAS (blas.c).
 * SLAPO_CPU_GEMM=blas sends every GEMM there.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

#define NR 32        /* columns of a panel: two zmm */
#define MR 12        /* rows of the register tile */
#define MC 192       /* rows of a work unit */
#define KC_MAX 4096  /* longest run over k without storing C */
#define KC_MIN 256   /* shortest */
#define A_BLOCK_BYTES (512 << 10) /* of A's columns a k block keeps in the cache */

/* One packed operand: op(B) of a GEMM shape, read from b. */
typedef struct Pack {
	struct Pack *next;
	const float *b;
	int64_t n, k, ldb;
	int32_t tb;
	float *panels; /* [cdiv(n, NR)][k][NR] */
} Pack;

struct RtPacks {
	const char *lo, *hi; /* the weights' storage: B in [lo, hi) is a weight */
	pthread_mutex_t mu;  /* taken to add a pack */
	_Atomic(Pack *) head;
	uint64_t bytes; /* of all packs (under mu) */
	SlapoLogFn log; /* the weights' logger */
	void *log_user_data;
};

/* ---- whether to use it ------------------------------------------------------------------ */

static int usable;
static pthread_once_t usable_once = PTHREAD_ONCE_INIT;

static void check_usable(void)
{
	const char *env = getenv("SLAPO_CPU_GEMM");
	if (env && strcmp(env, "blas") == 0)
		return;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	usable = __builtin_cpu_supports("avx512f");
#endif
}

/* ---- the packs of a weights object ------------------------------------------------------ */

RtPacks *rt_packs_new(const void *storage, uint64_t bytes, SlapoLogFn log, void *log_user_data)
{
	RtPacks *ps = rt_calloc(1, sizeof *ps);
	if (!ps)
		return NULL;
	ps->lo = storage;
	ps->hi = (const char *)storage + bytes;
	ps->log = log;
	ps->log_user_data = log_user_data;
	pthread_mutex_init(&ps->mu, NULL);
	atomic_init(&ps->head, NULL);
	return ps;
}

void rt_packs_clear(RtPacks *ps)
{
	Pack *p, *next;
	if (!ps)
		return;
	for (p = atomic_exchange(&ps->head, NULL); p; p = next) {
		next = p->next;
		rt_free(p->panels);
		rt_free(p);
	}
	ps->bytes = 0;
}

void rt_packs_free(RtPacks *ps)
{
	if (!ps)
		return;
	rt_packs_clear(ps);
	pthread_mutex_destroy(&ps->mu);
	rt_free(ps);
}

static const Pack *find(RtPacks *ps, const float *b, int64_t n, int64_t k, int64_t ldb,
                        int32_t tb)
{
	const Pack *p;
	for (p = atomic_load_explicit(&ps->head, memory_order_acquire); p; p = p->next)
		if (p->b == b && p->n == n && p->k == k && p->ldb == ldb && p->tb == tb)
			return p;
	return NULL;
}

/* Packing: panels [begin, end) of one operand. */
static void pack_panels(void *ctx, int64_t begin, int64_t end)
{
	const Pack *p = ctx;
	int64_t q, kk, j;
	for (q = begin; q < end; q++) {
		float *dst = p->panels + q * p->k * NR;
		int64_t c0 = q * NR, cols = p->n - c0 < NR ? p->n - c0 : NR;
		for (kk = 0; kk < p->k; kk++, dst += NR) {
			for (j = 0; j < cols; j++)
				dst[j] = p->tb ? p->b[(c0 + j) * p->ldb + kk] : p->b[kk * p->ldb + c0 + j];
			for (; j < NR; j++)
				dst[j] = 0.0f;
		}
	}
}

/* The pack of (b, n, k, ldb, tb), made now if it is the first use; NULL
 * when out of memory, which fails the run (a later run tries again). */
static const Pack *get_pack(RtExec *ex, const float *b, int64_t n, int64_t k, int64_t ldb,
                            int32_t tb)
{
	RtPacks *ps = ex->packs;
	const Pack *found = find(ps, b, n, k, ldb, tb);
	Pack *p = NULL;
	int64_t np = (n + NR - 1) / NR;
	uint64_t bytes = (uint64_t)np * (uint64_t)k * NR * sizeof(float);
	if (found)
		return found;
	pthread_mutex_lock(&ps->mu);
	found = find(ps, b, n, k, ldb, tb); /* another session may have made it */
	if (!found && (p = rt_calloc(1, sizeof *p)) != NULL &&
	    (p->panels = bytes <= SIZE_MAX ? rt_aligned_alloc((size_t)bytes) : NULL) != NULL) {
		p->b = b;
		p->n = n;
		p->k = k;
		p->ldb = ldb;
		p->tb = tb;
		rt_parallel_for(ex, np, 1, pack_panels, p);
		p->next = atomic_load_explicit(&ps->head, memory_order_relaxed);
		atomic_store_explicit(&ps->head, p, memory_order_release);
		found = p;
		ps->bytes += bytes;
		rt_log(ps->log, ps->log_user_data, SLAPO_LOG_DEBUG,
		       "packed a %lld x %lld weight for the CPU GEMM: %.1f MiB, %.1f MiB in all",
		       (long long)n, (long long)k, (double)bytes / 1048576.0,
		       (double)ps->bytes / 1048576.0);
	} else if (!found) {
		rt_free(p);
		rt_fail(ex, SLAPO_OUT_OF_MEMORY, NULL,
		        "out of memory packing a %lld x %lld weight for the CPU GEMM "
		        "(%llu bytes)",
		        (long long)n, (long long)k, (unsigned long long)bytes);
	}
	pthread_mutex_unlock(&ps->mu);
	return found;
}

/* ---- the kernel ------------------------------------------------------------------------- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

/* C[mr rows, 32 columns (masks m0, m1)] = alpha * A B + bias + beta * C
 * over kc values of k, B's row k at b + k * ldb: a panel (ldb = NR,
 * aligned, zeros past n, read whole) or, when `rows`, any rows, of which
 * only the columns of the masks are read. Only those columns of C are
 * written. beta == 0 does not read C, bias may be NULL. pf: memory to
 * prefetch (one line per k) or NULL. */
static inline __attribute__((always_inline)) AVX512 void
tile(int mr, int rows, int64_t kc, const float *a, int64_t lda, const float *b, int64_t ldb,
     float *c, int64_t ldc, __mmask16 m0, __mmask16 m1, float alpha, const float *bias,
     float beta, const float *pf)
{
	__m512 x0[MR], x1[MR];
	int i;
	int64_t k;
#pragma GCC unroll 12
	for (i = 0; i < mr; i++)
		x0[i] = x1[i] = _mm512_setzero_ps();
	for (k = 0; k < kc; k++) {
		__m512 b0 = rows ? _mm512_maskz_loadu_ps(m0, b + k * ldb) : _mm512_load_ps(b + k * NR);
		__m512 b1 = rows ? _mm512_maskz_loadu_ps(m1, b + k * ldb + 16)
		                 : _mm512_load_ps(b + k * NR + 16);
		if (pf)
			_mm_prefetch((const char *)(pf + k * 16), _MM_HINT_T0);
#pragma GCC unroll 12
		for (i = 0; i < mr; i++) {
			__m512 ai = _mm512_set1_ps(a[i * lda + k]);
			x0[i] = _mm512_fmadd_ps(ai, b0, x0[i]);
			x1[i] = _mm512_fmadd_ps(ai, b1, x1[i]);
		}
	}
	__m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
	__m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
	if (bias) {
		bias0 = _mm512_maskz_loadu_ps(m0, bias);
		bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
	}
#pragma GCC unroll 12
	for (i = 0; i < mr; i++) {
		float *ci = c + i * ldc;
		__m512 y0 = _mm512_fmadd_ps(va, x0[i], bias0), y1 = _mm512_fmadd_ps(va, x1[i], bias1);
		if (beta != 0.0f) {
			y0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), y0);
			y1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), y1);
		}
		_mm512_mask_storeu_ps(ci, m0, y0);
		_mm512_mask_storeu_ps(ci + 16, m1, y1);
	}
}

/* tile() with mr a constant in each case, so the accumulators are
 * registers: on a panel (tile_panel) or on rows of B (tile_rows). */
#define TILE(r, rows)                                                                      \
	case r:                                                                            \
		tile(r, rows, kc, a, lda, b, ldb, c, ldc, m0, m1, alpha, bias, beta, pf);       \
		break;
#define TILE_CASES(rows)                                                                   \
	switch (mr) {                                                                      \
		TILE(1, rows) TILE(2, rows) TILE(3, rows) TILE(4, rows) TILE(5, rows)            \
		TILE(6, rows) TILE(7, rows) TILE(8, rows) TILE(9, rows) TILE(10, rows)           \
		TILE(11, rows) TILE(12, rows)                                                    \
	default:                                                                           \
		break;                                                                     \
	}

static AVX512 void tile_panel(int mr, int64_t kc, const float *a, int64_t lda, const float *b,
                              float *c, int64_t ldc, __mmask16 m0, __mmask16 m1, float alpha,
                              const float *bias, float beta, const float *pf)
{
	const int64_t ldb = NR;
	TILE_CASES(0)
}

static AVX512 void tile_rows(int mr, int64_t kc, const float *a, int64_t lda, const float *b,
                             int64_t ldb, float *c, int64_t ldc, __mmask16 m0, __mmask16 m1)
{
	const float alpha = 1.0f, beta = 0.0f, *bias = NULL, *pf = NULL;
	TILE_CASES(1)
}
#undef TILE_CASES
#undef TILE

/* The lanes of a 16-float vector below `left` columns (all when >= 16). */
static inline __mmask16 mask16(int64_t left)
{
	return left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* One call's arguments, shared by its units. */
typedef struct Job {
	const Pack *p;
	int64_t m, kc, np, n_mb;
	float alpha, beta;
	const float *bias;
	const float *a;
	int64_t lda;
	float *c;
	int64_t ldc;
} Job;

static AVX512 void run_units(void *ctx, int64_t begin, int64_t end)
{
	const Job *j = ctx;
	const Pack *p = j->p;
	int64_t u, k0;
	/* k blocks outer: a block of A's columns stays in the cache while the
	 * thread's panels go by */
	for (k0 = 0; k0 < p->k; k0 += j->kc)
		for (u = begin; u < end; u++) {
			int64_t mb = u % j->n_mb, q = u / j->n_mb;
			int64_t r0 = mb * MC, r1 = r0 + MC < j->m ? r0 + MC : j->m;
			int64_t c0 = q * NR, left = p->n - c0;
			__mmask16 m0 = mask16(left), m1 = mask16(left - 16);
			const float *panel = p->panels + q * p->k * NR;
			const float *next = q + 1 < j->np ? panel + p->k * NR : NULL;
			int64_t kc = p->k - k0 < j->kc ? p->k - k0 : j->kc, r;
			float beta = k0 == 0 ? j->beta : 1.0f;
			const float *bias = k0 == 0 && j->bias ? j->bias + c0 : NULL;
			for (r = r0; r < r1; r += MR) {
				/* the first two tiles prefetch the next panel's half each */
				int64_t t = (r - r0) / MR;
				const float *pf = next && t < 2 ? next + k0 * NR + t * kc * 16 : NULL;
				tile_panel(r1 - r < MR ? (int)(r1 - r) : MR, kc, j->a + r * j->lda + k0,
				           j->lda, panel + k0 * NR, j->c + r * j->ldc + c0, j->ldc, m0, m1,
				           j->alpha, bias, beta, pf);
			}
		}
}

int rt_gemm_packed(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
                   int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                   int64_t ldb, const float *bias, float beta, float *c, int64_t ldc)
{
	const Pack *p;
	/* one block of rows: K in blocks whose A columns fit half an L2 */
	int64_t kmax = m <= MC ? A_BLOCK_BYTES / ((int64_t)sizeof(float) * m) / 16 * 16 : KC_MAX;
	kmax = kmax < KC_MIN ? KC_MIN : kmax > KC_MAX ? KC_MAX : kmax;
	int64_t blocks = (k + kmax - 1) / kmax;
	pthread_once(&usable_once, check_usable);
	if (!usable || !ex || !ex->packs || trans_a || m <= 0 || n <= 0 || k <= 0 ||
	    (const char *)b < ex->packs->lo || (const char *)b >= ex->packs->hi)
		return 0;
	if (!(p = get_pack(ex, b, n, k, ldb, trans_b)))
		return 1; /* out of memory: the run has failed */
	Job j = {.p = p,
	         .m = m,
	         /* K in equal blocks of at most kmax, a multiple of 16 */
	         .kc = blocks == 1 ? k : ((k + blocks - 1) / blocks + 15) / 16 * 16,
	         .np = (n + NR - 1) / NR,
	         .n_mb = (m + MC - 1) / MC,
	         .alpha = alpha,
	         .beta = beta,
	         .bias = bias,
	         .a = a,
	         .lda = lda,
	         .c = c,
	         .ldc = ldc};
	rt_parallel_for(ex, j.n_mb * j.np, 1, run_units, &j);
	return 1;
}

/* ---- small products on the calling thread ---------------------------------------------- */

/* dst[16][ldd] = the transpose of src[16][lds]: 16 x 16 in registers
 * (32-bit, then 64-bit interleaves within 128-bit lanes, then two rounds
 * of lane shuffles). */
static AVX512 void transpose16(const float *src, int64_t lds, float *dst, int64_t ldd)
{
	__m512 r[16], t[16];
	int i, c;
	for (i = 0; i < 16; i++)
		r[i] = _mm512_loadu_ps(src + i * lds);
	for (i = 0; i < 16; i += 2) { /* per lane L: rows i, i+1 at 4L..4L+3 */
		t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
	}
	for (i = 0; i < 16; i += 4) { /* r[i + c], lane L: rows i..i+3 at column 4L + c */
		__m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
		__m512d x = _mm512_castps_pd(t[i + 2]), y = _mm512_castps_pd(t[i + 3]);
		r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, x));
		r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, x));
		r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, y));
		r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, y));
	}
	for (c = 0; c < 4; c++) { /* column 4L + c: lane L of r[c], r[4 + c], r[8 + c], r[12 + c] */
		__m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44);
		__m512 v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xee);
		__m512 v2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
		__m512 v3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xee);
		_mm512_storeu_ps(dst + c * ldd, _mm512_shuffle_f32x4(v0, v2, 0x88));
		_mm512_storeu_ps(dst + (4 + c) * ldd, _mm512_shuffle_f32x4(v0, v2, 0xdd));
		_mm512_storeu_ps(dst + (8 + c) * ldd, _mm512_shuffle_f32x4(v1, v3, 0x88));
		_mm512_storeu_ps(dst + (12 + c) * ldd, _mm512_shuffle_f32x4(v1, v3, 0xdd));
	}
}

/* dst[k][ldd] = src[n][lds] transposed (k columns of src). */
static AVX512 void transpose(const float *src, int64_t lds, int64_t n, int64_t k, float *dst,
                             int64_t ldd)
{
	int64_t j, kk, n16 = n / 16 * 16, k16 = k / 16 * 16;
	for (j = 0; j < n16; j += 16)
		for (kk = 0; kk < k16; kk += 16)
			transpose16(src + j * lds + kk, lds, dst + kk * ldd + j, ldd);
	for (j = 0; j < n; j++)
		for (kk = j < n16 ? k16 : 0; kk < k; kk++)
			dst[kk * ldd + j] = src[j * lds + kk];
}

int64_t rt_gemm_small_scratch(int64_t n, int64_t k)
{
	pthread_once(&usable_once, check_usable);
	return usable ? k * ((n + 15) / 16 * 16) : 0;
}

AVX512 int rt_gemm_small(int32_t trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                         int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc,
                         float *scratch)
{
	int64_t c0, r;
	pthread_once(&usable_once, check_usable);
	if (!usable)
		return 0;
	if (trans_b) {
		int64_t ldt = (n + 15) / 16 * 16;
		transpose(b, ldb, n, k, scratch, ldt);
		b = scratch;
		ldb = ldt;
	}
	for (c0 = 0; c0 < n; c0 += NR)
		for (r = 0; r < m; r += MR)
			tile_rows(m - r < MR ? (int)(m - r) : MR, k, a + r * lda, lda, b + c0, ldb,
			          c + r * ldc + c0, ldc, mask16(n - c0), mask16(n - c0 - 16));
	return 1;
}

#else /* no AVX-512 kernel for this target: OpenBLAS does it all */

int rt_gemm_packed(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
                   int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                   int64_t ldb, const float *bias, float beta, float *c, int64_t ldc)
{
	(void)ex, (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha;
	(void)a, (void)lda, (void)b, (void)ldb, (void)bias, (void)beta, (void)c, (void)ldc;
	(void)get_pack;
	pthread_once(&usable_once, check_usable);
	return 0;
}

int64_t rt_gemm_small_scratch(int64_t n, int64_t k)
{
	(void)n, (void)k;
	return 0;
}

int rt_gemm_small(int32_t trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc,
                  float *scratch)
{
	(void)trans_b, (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b, (void)ldb;
	(void)c, (void)ldc, (void)scratch;
	return 0;
}

#endif
