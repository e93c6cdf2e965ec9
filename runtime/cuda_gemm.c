/* cuda_gemm.c - rt_gpu_gemm: a GEMM of the generated code (RtGemm) on the
 * session's stream. cuBLASLt with the bias or bias + GELU epilogue where it
 * has an algorithm (the fastest of the heuristic's first answers, timed
 * once per shape in an eager run: lt_algo), else cuBLAS with our
 * utility kernels for the epilogue (slapo_util_bias_*, slapo_util_gelu_*);
 * outer batches with uneven strides as one pointer-array call
 * (slapo_util_ptrs fills the pointers); a GEMM whose rows are not aligned
 * for cuBLASLt split into classes of rows that are (gemm_split).
 */
#include <stdio.h>
#include <string.h>

#include "cuda_exec.h"

/* A cuBLAS or cuBLASLt call that failed: the run fails naming it and the
 * product's shape. */
static void blas_fail(RtExec *ex, RtGpuSession *gs, cublasStatus_t b, const char *call,
                      const RtGemm *q)
{
	gs->last_err = b;
	rt_fail(ex, SLAPO_DEVICE, NULL, "%s (%lld x %lld x %lld, batch %lld): %s", call,
	        (long long)q->m, (long long)q->n, (long long)q->k, (long long)q->batch,
	        gs->cu->cublasGetStatusName(b));
}

static int cuda_type(int64_t t)
{
	return t == RT_GPU_BF16 ? CUDA_R_16BF : t == RT_GPU_F16 ? CUDA_R_16F : CUDA_R_32F;
}

static int64_t type_size(int64_t t)
{
	return t == RT_GPU_F32 ? 4 : 2;
}

/* Largest power of two <= 256 dividing the address and every batch
 * stride in bytes: what cuBLASLt may assume of every matrix. */
static uint32_t alignment(const void *p, int64_t stride, int64_t esize, int64_t batch)
{
	uint64_t v = (uint64_t)(uintptr_t)p | 256u;
	if (batch > 1)
		v |= (uint64_t)(stride * esize);
	return (uint32_t)(v & (~v + 1));
}

static int64_t max3(int64_t a, int64_t b, int64_t c)
{
	int64_t m = a > b ? a : b;
	return m > c ? m : c;
}

/* ---- the algorithm: the heuristic's fastest answer ---------------------------------------- */

enum {
	TUNE_MAX = 8,        /* answers of the heuristic timed */
	TUNE_REPS = 3,       /* runs of each, after one to warm up */
	TUNE_INTENSITY = 256 /* least FLOPs a byte of A, B and C for a GEMM to be timed */
};
/* another answer only when it takes less than this of the first's time */
#define TUNE_GAIN 0.95

/* Whether timing the GEMM alone says how it runs in the model: when it is
 * bound by its arithmetic (FLOPs a byte of its operands above any Hopper's
 * ratio), not by reading its weight, which repeated runs find in L2 and a
 * forward does not (at batch 1 / 128, timed choices made the forward 3 %
 * slower, H200). */
static int worth_timing(const RtGemm *q)
{
	double m = (double)q->m, n = (double)q->n, k = (double)q->k;
	double bytes = (double)type_size(q->a_type) * m * k +
	               (double)type_size(q->b_type) * n * k +
	               (double)type_size(q->c_type) * m * n;
	return 2.0 * m * n * k >= TUNE_INTENSITY * bytes;
}

/* An answer of the heuristic the session can run (its workspace fits). */
static int usable_answer(const RtLtHeuristic *h)
{
	return h->state == CUBLAS_STATUS_SUCCESS && h->workspaceSize <= BLAS_WS;
}

_Static_assert(sizeof(LtKey) == 10 * 8 + 8 * 4 + 4 * 4, "LtKey has no padding (memcmp)");

/* The time of TUNE_REPS runs of the GEMM with algorithm h (ms), or -1 when
 * it fails (the candidate is dropped; a sticky error shows at the run's
 * end). Eager only: it synchronises the stream. */
static float lt_time(RtGpuSession *gs, cublasLtMatmulDesc_t desc,
                     cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                     cublasLtMatrixLayout_t lc, const float *alpha, const float *beta,
                     const RtGemm *q, const void *cin, const RtLtHeuristic *h,
                     CUevent ev[2])
{
	const RtCuda *cu = gs->cu;
	float ms = -1;
	for (int r = 0; r <= TUNE_REPS; r++) {
		if (r == 1 && cu->cuEventRecord(ev[0], gs->stream) != CUDA_SUCCESS)
			return -1;
		if (cu->cublasLtMatmul(gs->lt, desc, alpha, q->b, la, q->a, lb, beta, cin,
		                       lc, q->c, lc, &h->algo,
		                       (void *)(uintptr_t)gs->blas_ws, BLAS_WS,
		                       gs->stream) != CUBLAS_STATUS_SUCCESS)
			return -1;
	}
	if (cu->cuEventRecord(ev[1], gs->stream) != CUDA_SUCCESS ||
	    cu->cuStreamSynchronize(gs->stream) != CUDA_SUCCESS ||
	    cu->cuEventElapsedTime(&ms, ev[0], ev[1]) != CUDA_SUCCESS)
		return -1;
	return ms;
}

/* The algorithm for the GEMM `key` into *h: the one the session chose
 * before, else the heuristic's first answer, or the fastest of its first
 * TUNE_MAX, timed, where it beats the first by 5 % (a closer race is
 * noise, or turns the other way in the model). Timed in an eager run, for
 * a GEMM worth_timing (SLAPO_GEMM_TUNE=1) or any (=2), when running it
 * again leaves C as it should be: in bert-large at batch 8 / 512 the FFN's
 * up projection (GELU epilogue) 59.0 -> 52.9 us, Q, K, V 42.7 -> 39.7
 * (H200). 0 when there is none. */
static int lt_algo(RtGpuSession *gs, const LtKey *key, cublasLtMatmulDesc_t desc,
                   cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                   cublasLtMatrixLayout_t lc, cublasLtMatmulPreference_t pref,
                   const float *alpha, const float *beta, const RtGemm *q,
                   const void *cin, RtLtHeuristic *h)
{
	const RtCuda *cu = gs->cu;
	for (int32_t i = 0; i < gs->n_tuned; i++)
		if (memcmp(&gs->tuned[i].key, key, sizeof *key) == 0) {
			*h = gs->tuned[i].h;
			return 1;
		}
	RtLtHeuristic hs[TUNE_MAX];
	int want = gs->tune && !gs->capturing && (*beta == 0 || cin != q->c) &&
	                           (gs->tune == 2 || worth_timing(q))
	                   ? TUNE_MAX
	                   : 1;
	int nf = 0, best = -1, usable = 0;
	if (cu->cublasLtMatmulAlgoGetHeuristic(gs->lt, desc, la, lb, lc, lc, pref, want,
	                                       hs, &nf) != CUBLAS_STATUS_SUCCESS)
		return 0;
	for (int i = 0; i < nf; i++)
		if (usable_answer(&hs[i])) {
			usable++;
			if (best < 0)
				best = i;
		}
	if (best < 0)
		return 0;
	float t_first = -1, t_best = -1;
	CUevent ev[2] = {NULL, NULL};
	if (usable > 1 && cu->cuEventCreate(&ev[0], CU_EVENT_DEFAULT) == CUDA_SUCCESS &&
	    cu->cuEventCreate(&ev[1], CU_EVENT_DEFAULT) == CUDA_SUCCESS) {
		int first = best;
		for (int i = first; i < nf; i++) {
			if (!usable_answer(&hs[i]))
				continue;
			float t = lt_time(gs, desc, la, lb, lc, alpha, beta, q, cin,
			                  &hs[i], ev);
			if (i == first)
				t_first = t_best = t;
			else if (t >= 0 && t_first >= 0 && t < TUNE_GAIN * t_first &&
			         t < t_best)
				t_best = t, best = i;
		}
	}
	for (int i = 0; i < 2; i++)
		if (ev[i])
			cu->cuEventDestroy(ev[i]);
	*h = hs[best];
	if (gs->n_tuned < MAX_TUNED) {
		if (!gs->tuned)
			gs->tuned = rt_calloc(MAX_TUNED, sizeof *gs->tuned);
		if (gs->tuned)
			gs->tuned[gs->n_tuned++] = (LtTuned){*key, *h};
	}
	SlapoWeights *w = gs->w;
	if (t_first >= 0 && w->log)
		rt_log(w->log, w->log_user_data, SLAPO_LOG_DEBUG,
		       "GEMM %lld x %lld x %lld (batch %lld): cuBLASLt algorithm %d of %d, %.1f us "
		       "(the first: %.1f us)",
		       (long long)q->m, (long long)q->n, (long long)q->k,
		       (long long)q->batch, best, usable, 1e3 * t_best / TUNE_REPS,
		       1e3 * t_first / TUNE_REPS);
	return 1;
}

/* cuBLASLt: 1 when it ran, 0 when it has no algorithm (or failed to set
 * up), -1 when the enqueue failed. */
static int gemm_lt(RtExec *ex, RtGpuSession *gs, const RtGemm *q, int64_t lda,
                   int64_t ldb, int64_t ldc, int compute)
{
	const RtCuda *cu = gs->cu;
	cublasLtMatmulDesc_t desc = NULL;
	cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
	cublasLtMatmulPreference_t pref = NULL;
	RtLtHeuristic h;
	int ok = 0;
	int32_t opa = q->tb ? CUBLAS_OP_T : CUBLAS_OP_N,
	        opb = q->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
	float alpha = (float)q->alpha, beta = (float)q->beta;
	uint64_t wsz = BLAS_WS;
	/* column-major: C^T (n x m) = op(B)^T op(A)^T; "A" below is our B */
	if (cu->cublasLtMatmulDescCreate(&desc, compute, CUDA_R_32F) !=
	    CUBLAS_STATUS_SUCCESS) {
		desc = NULL;
		goto out;
	}
	if (cu->cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa,
	                                       sizeof opa) ||
	    cu->cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb,
	                                       sizeof opb))
		goto out;
	if (q->epilogue == RT_EPI_BIAS || q->epilogue == RT_EPI_GELU_BIAS) {
		uint32_t epi = q->epilogue == RT_EPI_BIAS ? CUBLASLT_EPILOGUE_BIAS
		                                          : CUBLASLT_EPILOGUE_GELU_BIAS;
		int32_t bt = cuda_type(q->c_type);
		if (cu->cublasLtMatmulDescSetAttribute(
		            desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) ||
		    cu->cublasLtMatmulDescSetAttribute(desc,
		                                       CUBLASLT_MATMUL_DESC_BIAS_POINTER,
		                                       &q->bias, sizeof q->bias) ||
		    cu->cublasLtMatmulDescSetAttribute(
		            desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt))
			goto out;
	}
	if (cu->cublasLtMatrixLayoutCreate(&la, cuda_type(q->b_type),
	                                   (uint64_t)(q->tb ? q->k : q->n),
	                                   (uint64_t)(q->tb ? q->n : q->k), ldb)) {
		la = NULL;
		goto out;
	}
	if (cu->cublasLtMatrixLayoutCreate(&lb, cuda_type(q->a_type),
	                                   (uint64_t)(q->ta ? q->m : q->k),
	                                   (uint64_t)(q->ta ? q->k : q->m), lda)) {
		lb = NULL;
		goto out;
	}
	if (cu->cublasLtMatrixLayoutCreate(&lc, cuda_type(q->c_type), (uint64_t)q->n,
	                                   (uint64_t)q->m, ldc)) {
		lc = NULL;
		goto out;
	}
	if (q->batch > 1) {
		int32_t nb = (int32_t)q->batch;
		int64_t sa = q->stride_b, sb = q->stride_a, sc = q->stride_c;
		if (cu->cublasLtMatrixLayoutSetAttribute(
		            la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &nb, sizeof nb) ||
		    cu->cublasLtMatrixLayoutSetAttribute(
		            lb, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &nb, sizeof nb) ||
		    cu->cublasLtMatrixLayoutSetAttribute(
		            lc, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &nb, sizeof nb) ||
		    cu->cublasLtMatrixLayoutSetAttribute(
		            la, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sa,
		            sizeof sa) ||
		    cu->cublasLtMatrixLayoutSetAttribute(
		            lb, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sb,
		            sizeof sb) ||
		    cu->cublasLtMatrixLayoutSetAttribute(
		            lc, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sc,
		            sizeof sc))
			goto out;
	}
	if (cu->cublasLtMatmulPreferenceCreate(&pref)) {
		pref = NULL;
		goto out;
	}
	uint32_t al_a = alignment(q->b, q->stride_b, type_size(q->b_type), q->batch);
	uint32_t al_b = alignment(q->a, q->stride_a, type_size(q->a_type), q->batch);
	const void *cin = q->r ? q->r : q->c; /* C's input; D is q->c */
	uint32_t al_c = alignment(cin, q->stride_c, type_size(q->c_type), q->batch);
	uint32_t al_d = alignment(q->c, q->stride_c, type_size(q->c_type), q->batch);
	if (cu->cublasLtMatmulPreferenceSetAttribute(
	            pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz, sizeof wsz) ||
	    cu->cublasLtMatmulPreferenceSetAttribute(
	            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a,
	            sizeof al_a) ||
	    cu->cublasLtMatmulPreferenceSetAttribute(
	            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b,
	            sizeof al_b) ||
	    cu->cublasLtMatmulPreferenceSetAttribute(
	            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c,
	            sizeof al_c) ||
	    cu->cublasLtMatmulPreferenceSetAttribute(
	            pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d))
		goto out;
	LtKey key = {.m = q->m,
	             .n = q->n,
	             .k = q->k,
	             .batch = q->batch,
	             .lda = lda,
	             .ldb = ldb,
	             .ldc = ldc,
	             .sa = q->stride_a,
	             .sb = q->stride_b,
	             .sc = q->stride_c,
	             .ta = q->ta,
	             .tb = q->tb,
	             .at = (int32_t)q->a_type,
	             .bt = (int32_t)q->b_type,
	             .ct = (int32_t)q->c_type,
	             .epilogue = (int32_t)q->epilogue,
	             .compute = compute,
	             .beta0 = q->beta == 0,
	             .align = {al_a, al_b, al_c, al_d}};
	if (!lt_algo(gs, &key, desc, la, lb, lc, pref, &alpha, &beta, q, cin, &h))
		goto out;
	cublasStatus_t b = cu->cublasLtMatmul(
	        gs->lt, desc, &alpha, q->b, la, q->a, lb, &beta, cin, lc, q->c, lc,
	        &h.algo, (void *)(uintptr_t)gs->blas_ws, BLAS_WS, gs->stream);
	if (b != CUBLAS_STATUS_SUCCESS) {
		blas_fail(ex, gs, b, "cublasLtMatmul", q);
		ok = -1;
	} else {
		ok = 1;
	}
out:
	if (pref)
		cu->cublasLtMatmulPreferenceDestroy(pref);
	if (lc)
		cu->cublasLtMatrixLayoutDestroy(lc);
	if (lb)
		cu->cublasLtMatrixLayoutDestroy(lb);
	if (la)
		cu->cublasLtMatrixLayoutDestroy(la);
	if (desc)
		cu->cublasLtMatmulDescDestroy(desc);
	return ok;
}

/* Two batch dims in one cuBLAS call: our kernel writes the matrices'
 * addresses into the session's pointer arrays (on the stream, so it is part
 * of the graph), then cublasGemmBatchedEx. 0 when that cannot be used. */
static int gemm_ptrs(RtExec *ex, RtGpuSession *gs, const RtGemm *q, int64_t lda,
                     int64_t ldb, int64_t ldc, int compute)
{
	const RtCuda *cu = gs->cu;
	int64_t total = q->batch * q->batch2;
	if (!gs->ptrs_fn || q->epilogue != RT_EPI_NONE || total > MAX_PTRS || q->k == 0)
		return 0;
	int64_t ea = type_size(q->a_type), eb = type_size(q->b_type),
	        ec = type_size(q->c_type);
	uint64_t args[12] = {(uint64_t)gs->ptrs,
	                     (uint64_t)(uintptr_t)q->a,
	                     (uint64_t)(q->stride_a * ea),
	                     (uint64_t)(q->stride2_a * ea),
	                     (uint64_t)(uintptr_t)q->b,
	                     (uint64_t)(q->stride_b * eb),
	                     (uint64_t)(q->stride2_b * eb),
	                     (uint64_t)(uintptr_t)q->c,
	                     (uint64_t)(q->stride_c * ec),
	                     (uint64_t)(q->stride2_c * ec),
	                     (uint64_t)q->batch,
	                     (uint64_t)total};
	void *params[13];
	for (int i = 0; i < 12; i++)
		params[i] = &args[i];
	params[12] = NULL;
	CUresult r = cu->cuLaunchKernel(gs->ptrs_fn, (unsigned)((total + 255) / 256), 1,
	                                1, 256, 1, 1, 0, gs->stream, params, NULL);
	if (!rt_gpu_check_enqueue(ex, gs, r, "kernel", "slapo_util_ptrs"))
		return 1;
	const void *const *pa = (const void *const *)(uintptr_t)gs->ptrs;
	const void *const *pb = pa + total;
	void *const *pc = (void *const *)(pa + 2 * total);
	float alpha = (float)q->alpha, beta = (float)q->beta;
	cublasStatus_t b = cu->cublasGemmBatchedEx(
	        gs->blas, q->tb ? CUBLAS_OP_T : CUBLAS_OP_N,
	        q->ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)q->n, (int)q->m, (int)q->k,
	        &alpha, pb, cuda_type(q->b_type), (int)ldb, pa, cuda_type(q->a_type),
	        (int)lda, &beta, pc, cuda_type(q->c_type), (int)ldc, (int)total, compute,
	        CUBLAS_GEMM_DEFAULT);
	if (b != CUBLAS_STATUS_SUCCESS) {
		gs->last_err = b;
		rt_fail(ex, SLAPO_DEVICE, NULL,
		        "cublasGemmBatchedEx (%lld x %lld x %lld, batch %lld): %s",
		        (long long)q->m, (long long)q->n, (long long)q->k,
		        (long long)total, cu->cublasGetStatusName(b));
		return 1;
	}
	rt_gpu_check_enqueue(ex, gs, CUDA_SUCCESS, "GEMM", "");
	return 1;
}

static void gemm_one(RtExec *ex, const RtGemm *q);

void rt_gpu_gemm(RtExec *ex, const RtGemm *q)
{
	RtGpuSession *gs = session_of(ex);
	if (rt_failed(ex) || q->m == 0 || q->n == 0 || q->batch <= 0 || q->batch2 <= 0)
		return;
	if (q->batch2 == 1) {
		gemm_one(ex, q);
		return;
	}
	int64_t lda = max3(q->lda, q->ta ? q->m : q->k, 1);
	int64_t ldb = max3(q->ldb, q->tb ? q->k : q->n, 1);
	int64_t ldc = max3(q->ldc, q->n, 1);
	int compute = gs->g->precision == RT_PREC_TF32 && q->a_type == RT_GPU_F32 &&
	                              q->b_type == RT_GPU_F32
	                      ? CUBLAS_COMPUTE_32F_FAST_TF32
	                      : CUBLAS_COMPUTE_32F;
	if (q->m <= INT32_MAX && q->n <= INT32_MAX && q->k <= INT32_MAX &&
	    lda <= INT32_MAX && ldb <= INT32_MAX && ldc <= INT32_MAX &&
	    gemm_ptrs(ex, gs, q, lda, ldb, ldc, compute))
		return;
	/* else one strided-batched call per outer index */
	for (int64_t j = 0; j < q->batch2 && !rt_failed(ex); j++) {
		RtGemm o = *q;
		o.batch2 = 1;
		o.a = (const char *)q->a + j * q->stride2_a * type_size(q->a_type);
		o.b = (const char *)q->b + j * q->stride2_b * type_size(q->b_type);
		o.c = (char *)q->c + j * q->stride2_c * type_size(q->c_type);
		if (q->r)
			o.r = (const char *)q->r +
			      j * q->stride2_c * type_size(q->c_type);
		gemm_one(ex, &o);
	}
}

/* C's rows not 16-byte aligned (an LM head's 30522 f32 columns): rows
 * fall into g = 16 / gcd(row pitch, 16) classes by their misalignment; in
 * class i (rows i, i + g, ...: A and C with g times their row strides),
 * column s_i is the first aligned one, so columns [s_i, s_i + n8) with n8
 * a multiple of 8 run on cuBLASLt's Hopper kernels (B's rows from s_i: B
 * is [N, K]), the few columns left in GEMMs of their own. Returns 0 where
 * that does not apply. */
static int gemm_split(RtExec *ex, RtGpuSession *gs, const RtGemm *q, int64_t lda,
                      int64_t ldb, int64_t ldc)
{
	int64_t es = type_size(q->c_type), ea = type_size(q->a_type),
	        eb = type_size(q->b_type);
	int64_t pitch = ldc * es, g = 1;
	while (g < 16 && (pitch * g) % 16 != 0)
		g *= 2;
	/* op(A) = A^T would need every g-th column of A */
	if (q->batch != 1 || !q->tb || q->ta || g == 1 || q->n < 8 * g || q->k == 0 ||
	    q->m < gs->split_rows * g || q->n * es > PTRS_BYTES || g * lda > INT32_MAX ||
	    g * ldc > INT32_MAX || (uintptr_t)q->c % (uintptr_t)es != 0)
		return 0;
	for (int64_t i = 0; i < g && i < q->m && !rt_failed(ex); i++) {
		uintptr_t at = (uintptr_t)q->c + (uintptr_t)(i * pitch);
		int64_t s = (int64_t)((16 - at % 16) % 16);
		s /= es; /* a whole number: C and its pitch are multiples of es */
		int64_t n8 = (q->n - s) / 8 * 8;
		RtGemm o = *q;
		o.m = (q->m - i + g - 1) / g;
		o.a = (const char *)q->a + i * lda * ea;
		o.lda = g * lda;
		o.ldc = g * ldc;
		/* R is laid out as C: the same rows and columns of it */
		int64_t c0[3] = {0, s, s + n8}, c1[3] = {s, s + n8, q->n};
		for (int p = 0; p < 3 && !rt_failed(ex); p++) {
			if (c1[p] <= c0[p])
				continue;
			RtGemm r = o;
			r.n = c1[p] - c0[p];
			r.b = (const char *)q->b + c0[p] * ldb * eb;
			r.c = (char *)q->c + (i * ldc + c0[p]) * es;
			if (q->r)
				r.r = (const char *)q->r + (i * ldc + c0[p]) * es;
			r.bias = q->bias ? (const char *)q->bias + c0[p] * es : NULL;
			if (p == 1 && r.bias && (uintptr_t)r.bias % 16 != 0) {
				/* the epilogue wants its bias aligned too: a copy in the
				 * pointer-array space (free here; stream order) */
				if (!rt_gpu_check_enqueue(
				            ex, gs,
				            gs->cu->cuMemcpyDtoDAsync(
				                    gs->ptrs,
				                    (CUdeviceptr)(uintptr_t)r.bias,
				                    (size_t)(n8 * es), gs->stream),
				            "cuMemcpyDtoDAsync", "GEMM bias"))
					return 1;
				r.bias = (const void *)(uintptr_t)gs->ptrs;
			}
			gemm_one(ex, &r);
		}
	}
	return 1;
}

/* A utility kernel over each batch's m x n matrix C (row stride ldc):
 * slapo_util_bias_* (c, bias, r, m, n, ldc) when bias is given (r: the
 * GEMM's residual R at the same place, or 0), else slapo_util_gelu_* (c,
 * m, n, ldc). 0 after a failure. */
static int util_rows(RtExec *ex, RtGpuSession *gs, CUfunction f, const char *name,
                     const RtGemm *q, int64_t ldc, const void *bias)
{
	if (!f) {
		rt_fail(ex, SLAPO_INTERNAL, NULL, "no %s kernel for this GEMM", name);
		return 0;
	}
	for (int64_t i = 0; i < q->batch; i++) {
		uint64_t args[6];
		void *params[7];
		int n = 0;
		uint64_t at = (uint64_t)(i * q->stride_c * type_size(q->c_type));
		args[n++] = (uint64_t)(uintptr_t)q->c + at;
		if (bias) {
			args[n++] = (uint64_t)(uintptr_t)bias;
			args[n++] = q->r ? (uint64_t)(uintptr_t)q->r + at : 0;
		}
		args[n++] = (uint64_t)q->m;
		args[n++] = (uint64_t)q->n;
		args[n++] = (uint64_t)ldc;
		for (int k = 0; k < n; k++)
			params[k] = &args[k];
		params[n] = NULL;
		int64_t blocks = (q->m * q->n + 255) / 256;
		CUresult r = gs->cu->cuLaunchKernel(
		        f, (unsigned)(blocks < 65535 ? blocks : 65535), 1, 1, 256, 1, 1,
		        0, gs->stream, params, NULL);
		if (!rt_gpu_check_enqueue(ex, gs, r, "kernel", name))
			return 0;
	}
	return 1;
}

static void gemm_one(RtExec *ex, const RtGemm *q)
{
	RtGpuSession *gs = session_of(ex);
	const RtCuda *cu = gs->cu;
	int64_t lda = max3(q->lda, q->ta ? q->m : q->k, 1);
	int64_t ldb = max3(q->ldb, q->tb ? q->k : q->n, 1);
	int64_t ldc = max3(q->ldc, q->n, 1);
	if (q->m > INT32_MAX || q->n > INT32_MAX || q->k > INT32_MAX || lda > INT32_MAX ||
	    ldb > INT32_MAX || ldc > INT32_MAX || q->batch > INT32_MAX) {
		rt_fail(ex, SLAPO_UNSUPPORTED, NULL,
		        "GEMM dims %lld x %lld x %lld exceed cuBLAS's range",
		        (long long)q->m, (long long)q->n, (long long)q->k);
		return;
	}
	if (gemm_split(ex, gs, q, lda, ldb, ldc))
		return;
	int compute = gs->g->precision == RT_PREC_TF32 && q->a_type == RT_GPU_F32 &&
	                              q->b_type == RT_GPU_F32
	                      ? CUBLAS_COMPUTE_32F_FAST_TF32
	                      : CUBLAS_COMPUTE_32F;
	if (q->k > 0 && !gs->no_lt) {
		int r = gemm_lt(ex, gs, q, lda, ldb, ldc, compute);
		if (r != 0) {
			if (r > 0)
				rt_gpu_check_enqueue(ex, gs, CUDA_SUCCESS, "GEMM", "");
			return;
		}
	}
	/* cuBLAS: bias (plus the residual R) pre-filled into C by our kernel,
	 * then beta = 1 (and GELU by our kernel after it) */
	float alpha = (float)q->alpha, beta = (float)q->beta;
	if (q->epilogue != RT_EPI_NONE) {
		if (!util_rows(ex, gs, gs->bias_fn[q->c_type], "slapo_util_bias", q, ldc,
		               q->bias))
			return;
		beta = 1;
	}
	cublasStatus_t b = cu->cublasGemmStridedBatchedEx(
	        gs->blas, q->tb ? CUBLAS_OP_T : CUBLAS_OP_N,
	        q->ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)q->n, (int)q->m, (int)q->k,
	        &alpha, q->b, cuda_type(q->b_type), (int)ldb, (long long)q->stride_b,
	        q->a, cuda_type(q->a_type), (int)lda, (long long)q->stride_a, &beta, q->c,
	        cuda_type(q->c_type), (int)ldc, (long long)q->stride_c, (int)q->batch,
	        compute, CUBLAS_GEMM_DEFAULT);
	if (b != CUBLAS_STATUS_SUCCESS) {
		blas_fail(ex, gs, b, "cublasGemmStridedBatchedEx", q);
		return;
	}
	if (!rt_gpu_check_enqueue(ex, gs, CUDA_SUCCESS, "GEMM", ""))
		return;
	if (q->epilogue == RT_EPI_GELU_BIAS)
		util_rows(ex, gs, gs->gelu_fn[q->c_type], "slapo_util_gelu", q, ldc,
		          NULL);
}
