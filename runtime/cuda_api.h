/* cuda_api.h - our own declarations of the few CUDA driver, cuBLAS and
 * cuBLASLt types, constants and functions the runtime uses, so that
 * libslapo_rt.a builds and model libraries load on machines with no CUDA
 * at all: the libraries are opened with dlopen (cuda_load.c) only when
 * weights are created on a CUDA device.
 *
 * Values are those of CUDA 12/13's cuda.h, library_types.h, cublas_api.h
 * and cublasLt.h (stable across those versions); tests/gpu/check_cuda_abi.c
 * compares each one with the real headers where they are installed.
 */
#ifndef SLAPO_CUDA_API_H
#define SLAPO_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* ---- driver API (libcuda.so.1) ------------------------------------------ */

typedef int CUresult; /* CUDA_SUCCESS = 0 */
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct CUevent_st *CUevent;
typedef unsigned long long CUdeviceptr;

enum {
	CUDA_SUCCESS = 0,
	CUDA_ERROR_OUT_OF_MEMORY = 2,
	CUDA_ERROR_NO_DEVICE = 100,
	CUDA_ERROR_ECC_UNCORRECTABLE = 214,
	CUDA_ERROR_NVLINK_UNCORRECTABLE = 220,
	CUDA_ERROR_CONTAINED = 226,
	CUDA_ERROR_ILLEGAL_ADDRESS = 700,
	CUDA_ERROR_LAUNCH_TIMEOUT = 702,
	CUDA_ERROR_CONTEXT_IS_DESTROYED = 709,
	CUDA_ERROR_ASSERT = 710,
	CUDA_ERROR_HARDWARE_STACK_ERROR = 714,
	CUDA_ERROR_ILLEGAL_INSTRUCTION = 715,
	CUDA_ERROR_MISALIGNED_ADDRESS = 716,
	CUDA_ERROR_INVALID_ADDRESS_SPACE = 717,
	CUDA_ERROR_INVALID_PC = 718,
	CUDA_ERROR_LAUNCH_FAILED = 719,
	CUDA_ERROR_TENSOR_MEMORY_LEAK = 721,
	CUDA_ERROR_EXTERNAL_DEVICE = 911,
	CUDA_ERROR_UNKNOWN = 999
};

enum {
	CU_STREAM_NON_BLOCKING = 0x1,
	CU_EVENT_DEFAULT = 0x0,
	CU_STREAM_CAPTURE_MODE_GLOBAL = 0,
	CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
	CU_STREAM_CAPTURE_MODE_RELAXED = 2,
	CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
	CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
	CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
	CU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2,
	CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL = 9,
	CU_MEMORYTYPE_DEVICE = 2,
	CU_JIT_INFO_LOG_BUFFER = 3,
	CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4,
	CU_JIT_ERROR_LOG_BUFFER = 5,
	CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
	CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0
};

/* ---- library types (library_types.h), cuBLAS and cuBLASLt ---------------- */

typedef int cublasStatus_t; /* CUBLAS_STATUS_SUCCESS = 0 */
typedef struct cublasContext *cublasHandle_t;
typedef struct cublasLtContext *cublasLtHandle_t;
typedef struct cublasLtMatmulDescOpaque_st *cublasLtMatmulDesc_t;
typedef struct cublasLtMatrixLayoutOpaque_st *cublasLtMatrixLayout_t;
typedef struct cublasLtMatmulPreferenceOpaque_st *cublasLtMatmulPreference_t;

/* cublasLtMatmulAlgo_t and cublasLtMatmulHeuristicResult_t, exactly */
typedef struct RtLtAlgo {
	uint64_t data[8];
} RtLtAlgo;

typedef struct RtLtHeuristic {
	RtLtAlgo algo;
	size_t workspaceSize;
	cublasStatus_t state;
	float wavesCount;
	int reserved[4];
} RtLtHeuristic;

enum {
	CUBLAS_STATUS_SUCCESS = 0,
	/* cudaDataType */
	CUDA_R_32F = 0,
	CUDA_R_16F = 2,
	CUDA_R_16BF = 14,
	/* cublasOperation_t */
	CUBLAS_OP_N = 0,
	CUBLAS_OP_T = 1,
	/* cublasComputeType_t */
	CUBLAS_COMPUTE_32F = 68,
	CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
	/* cublasGemmAlgo_t */
	CUBLAS_GEMM_DEFAULT = -1,
	/* cublasLtMatmulDescAttributes_t */
	CUBLASLT_MATMUL_DESC_TRANSA = 3,
	CUBLASLT_MATMUL_DESC_TRANSB = 4,
	CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
	CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,
	CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26,
	/* cublasLtEpilogue_t */
	CUBLASLT_EPILOGUE_DEFAULT = 1,
	CUBLASLT_EPILOGUE_BIAS = 4,
	CUBLASLT_EPILOGUE_GELU_BIAS = 36, /* GELU (32) | BIAS (4) */
	/* cublasLtMatrixLayoutAttribute_t */
	CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5,
	CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6,
	/* cublasLtMatmulPreferenceAttributes_t */
	CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
	CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
	CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
	CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
	CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8
};

/* ---- the loaded functions ------------------------------------------------- */

/* One table for the process (the libraries are process-wide anyway);
 * every pointer is set once rt_cuda_load() has succeeded. */
typedef struct RtCuda {
	/* driver */
	CUresult (*cuInit)(unsigned);
	CUresult (*cuDriverGetVersion)(int *);
	CUresult (*cuDeviceGetCount)(int *);
	CUresult (*cuDeviceGet)(CUdevice *, int);
	CUresult (*cuDeviceGetName)(char *, int, CUdevice);
	CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
	CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
	CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
	CUresult (*cuCtxPushCurrent)(CUcontext);
	CUresult (*cuCtxPopCurrent)(CUcontext *);
	CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
	CUresult (*cuMemFree)(CUdeviceptr);
	CUresult (*cuMemGetInfo)(size_t *, size_t *);
	CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
	CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
	CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
	CUresult (*cuMemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
	CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
	CUresult (*cuMemsetD32Async)(CUdeviceptr, unsigned, size_t, CUstream);
	CUresult (*cuPointerGetAttribute)(void *, int, CUdeviceptr);
	CUresult (*cuStreamCreate)(CUstream *, unsigned);
	CUresult (*cuStreamDestroy)(CUstream);
	CUresult (*cuStreamSynchronize)(CUstream);
	CUresult (*cuStreamBeginCapture)(CUstream, int);
	CUresult (*cuStreamEndCapture)(CUstream, CUgraph *);
	CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *, CUgraph,
	                                        unsigned long long);
	CUresult (*cuGraphLaunch)(CUgraphExec, CUstream);
	CUresult (*cuGraphExecDestroy)(CUgraphExec);
	CUresult (*cuGraphDestroy)(CUgraph);
	CUresult (*cuEventCreate)(CUevent *, unsigned);
	CUresult (*cuEventRecord)(CUevent, CUstream);
	CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
	CUresult (*cuEventDestroy)(CUevent);
	CUresult (*cuModuleLoadDataEx)(CUmodule *, const void *, unsigned, int *,
	                               void **);
	CUresult (*cuModuleUnload)(CUmodule);
	CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
	CUresult (*cuFuncGetAttribute)(int *, int, CUfunction);
	CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
	                           unsigned, unsigned, unsigned, CUstream, void **,
	                           void **);
	CUresult (*cuGetErrorName)(CUresult, const char **);
	CUresult (*cuGetErrorString)(CUresult, const char **);
	/* cuBLAS */
	cublasStatus_t (*cublasCreate)(cublasHandle_t *);
	cublasStatus_t (*cublasDestroy)(cublasHandle_t);
	cublasStatus_t (*cublasSetStream)(cublasHandle_t, CUstream);
	cublasStatus_t (*cublasSetWorkspace)(cublasHandle_t, void *, size_t);
	cublasStatus_t (*cublasGemmStridedBatchedEx)(cublasHandle_t, int, int, int, int,
	                                             int, const void *, const void *, int,
	                                             int, long long, const void *, int,
	                                             int, long long, const void *, void *,
	                                             int, int, long long, int, int, int);
	cublasStatus_t (*cublasGemmBatchedEx)(cublasHandle_t, int, int, int, int, int,
	                                      const void *, const void *const *, int, int,
	                                      const void *const *, int, int, const void *,
	                                      void *const *, int, int, int, int, int);
	const char *(*cublasGetStatusName)(cublasStatus_t);
	/* cuBLASLt */
	cublasStatus_t (*cublasLtCreate)(cublasLtHandle_t *);
	cublasStatus_t (*cublasLtDestroy)(cublasLtHandle_t);
	cublasStatus_t (*cublasLtMatmulDescCreate)(cublasLtMatmulDesc_t *, int, int);
	cublasStatus_t (*cublasLtMatmulDescDestroy)(cublasLtMatmulDesc_t);
	cublasStatus_t (*cublasLtMatmulDescSetAttribute)(cublasLtMatmulDesc_t, int,
	                                                 const void *, size_t);
	cublasStatus_t (*cublasLtMatrixLayoutCreate)(cublasLtMatrixLayout_t *, int,
	                                             uint64_t, uint64_t, int64_t);
	cublasStatus_t (*cublasLtMatrixLayoutDestroy)(cublasLtMatrixLayout_t);
	cublasStatus_t (*cublasLtMatrixLayoutSetAttribute)(cublasLtMatrixLayout_t, int,
	                                                   const void *, size_t);
	cublasStatus_t (*cublasLtMatmulPreferenceCreate)(cublasLtMatmulPreference_t *);
	cublasStatus_t (*cublasLtMatmulPreferenceDestroy)(cublasLtMatmulPreference_t);
	cublasStatus_t (*cublasLtMatmulPreferenceSetAttribute)(cublasLtMatmulPreference_t,
	                                                       int, const void *, size_t);
	cublasStatus_t (*cublasLtMatmulAlgoGetHeuristic)(
	        cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
	        cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
	        cublasLtMatmulPreference_t, int, RtLtHeuristic *, int *);
	cublasStatus_t (*cublasLtMatmul)(cublasLtHandle_t, cublasLtMatmulDesc_t,
	                                 const void *, const void *,
	                                 cublasLtMatrixLayout_t, const void *,
	                                 cublasLtMatrixLayout_t, const void *,
	                                 const void *, cublasLtMatrixLayout_t, void *,
	                                 cublasLtMatrixLayout_t, const RtLtAlgo *, void *,
	                                 size_t, CUstream);
	/* what was loaded, for messages */
	const char *path_cuda, *path_cublas, *path_cublaslt;
	int driver_version;
} RtCuda;

/* The loaded table, loading the libraries on first use (thread-safe).
 * NULL on failure, with the last error set (SLAPO_UNSUPPORTED) naming the
 * library or function that is missing. */
const RtCuda *rt_cuda_load(void);

/* "CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered" */
const char *rt_cu_error_text(const RtCuda *cu, CUresult r, char *buf, size_t size);
/* Whether a CUDA error leaves the context unusable (illegal address,
 * launch failure, ECC, ...): the session is then poisoned. */
int rt_cu_error_sticky(CUresult r);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
