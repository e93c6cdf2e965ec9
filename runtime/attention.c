/* attention.c - rt_attention: scores, the model's softmax and the second
 * product, one (batch, head) unit at a time (see rt.h).
 *
 * Run as three steps over the whole batch, the two products and the
 * softmax each stream the [units, m, n] scores through memory (bert-base,
 * batch 1, sequence 128: 0.8 MB a layer, written, read, written, read;
 * batch 8, sequence 512: 100 MB, twice over for the probabilities);
 * here a thread takes a unit, makes its scores in a scratch of its own
 * (64 KB at sequence 128), runs the softmax kernel over them in place
 * and multiplies by V while they are still in its caches: the workspace
 * holds no scores at all. The products are the AVX-512 kernel of gemm.c
 * (K transposed into a second scratch), or OpenBLAS on the calling thread
 * where that kernel is not used.
 */
#include <string.h>

#include "rt.h"

typedef struct Job {
	RtExec *ex;
	const RtAttention *at;
} Job;

/* Where unit u's Q, K, V and O start. */
static void offsets(const RtAttention *at, int64_t u, int64_t *oq, int64_t *ok, int64_t *ov,
                    int64_t *oo)
{
	*oq = *ok = *ov = *oo = 0;
	for (int i = (int)at->nbatch - 1; i >= 0; i--) {
		int64_t x = u % at->bdim[i];
		u /= at->bdim[i];
		*oq += x * at->sq[i];
		*ok += x * at->sk[i];
		*ov += x * at->sv[i];
		*oo += x * at->so[i];
	}
}

/* Asks for rows x cols floats at p (row stride ld) in the core's L2:
 * the next unit's operands, rows far apart, which the hardware's
 * prefetchers do not follow. */
static void prefetch_rows(const float *p, int64_t ld, int64_t rows, int64_t cols)
{
	for (int64_t r = 0; r < rows; r++)
		for (int64_t c = 0; c < cols; c += 16)
			__builtin_prefetch(p + r * ld + c, 0, 2);
}

static void run_units(void *ctx, int64_t begin, int64_t end)
{
	const Job *j = ctx;
	const RtAttention *at = j->at;
	int64_t m = at->m, n = at->n, d = at->d, u;
	/* the scores, then K transposed (none without the AVX-512 kernel) */
	int64_t words = m * n + rt_gemm_small_scratch(n, d);
	float *s = rt_aligned_alloc((size_t)words * sizeof(float));
	if (!s) {
		rt_fail(j->ex, SLAPO_OUT_OF_MEMORY, NULL,
		        "out of memory for attention's scratch (%lld bytes)",
		        (long long)words * (long long)sizeof(float));
		return;
	}
	int64_t nq, nk, nv, no; /* where the next unit starts */
	offsets(at, begin, &nq, &nk, &nv, &no);
	for (u = begin; u < end && !rt_failed(j->ex); u++) {
		int64_t oq = nq, ok = nk, ov = nv, oo = no;
		if (u + 1 < end) {
			offsets(at, u + 1, &nq, &nk, &nv, &no);
			prefetch_rows(at->q + nq, at->ldq, m, d);
			prefetch_rows(at->k + nk, at->ldk, n, d);
			prefetch_rows(at->v + nv, at->ldv, n, d);
		}
		if (n == 0) { /* no keys: O is a sum over nothing */
			for (int64_t r = 0; r < m; r++)
				memset(at->o + oo + r * at->ldo, 0, (size_t)d * sizeof(float));
			continue;
		}
		if (!rt_gemm_small(1, m, n, d, at->q + oq, at->ldq, at->k + ok, at->ldk, s, n,
		                   s + m * n))
			rt_sgemm_serial(j->ex, 0, 1, m, n, d, 1.0f, at->q + oq, at->ldq, at->k + ok,
			                at->ldk, 0.0f, s, n);
		at->softmax(at->ctx, u * m, (u + 1) * m, s);
		if (!rt_gemm_small(0, m, d, n, s, n, at->v + ov, at->ldv, at->o + oo, at->ldo,
		                   s + m * n))
			rt_sgemm_serial(j->ex, 0, 0, m, d, n, 1.0f, s, n, at->v + ov, at->ldv, 0.0f,
			                at->o + oo, at->ldo);
	}
	rt_free(s);
}

void rt_attention(RtExec *ex, const RtAttention *at)
{
	int64_t units = 1;
	Job j = {ex, at};
	for (int i = 0; i < at->nbatch; i++)
		units *= at->bdim[i];
	if (units > 0 && at->m > 0 && at->d > 0)
		rt_parallel_for(ex, units, 1, run_units, &j);
}
