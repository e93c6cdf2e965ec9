/* cuda_gemm.c - rt_gpu_gemm: a GEMM of the generated code (RtGemm) on the
 * session's stream. cuBLASLt with the bias or bias + GELU epilogue where it
 * has an algorithm (heuristic's first answer), else cuBLAS with our
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
	int n_found = 0, ok = 0;
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
	if (cu->cublasLtMatmulAlgoGetHeuristic(gs->lt, desc, la, lb, lc, lc, pref, 1, &h,
	                                       &n_found) != CUBLAS_STATUS_SUCCESS ||
	    n_found < 1 || h.state != CUBLAS_STATUS_SUCCESS || h.workspaceSize > BLAS_WS)
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
