/* cuda_load.c - opens the CUDA driver (libcuda.so.1), cuBLAS and cuBLASLt
 * with dlopen the first time weights are created on a CUDA device, and
 * resolves the functions cuda_api.h declares. Nothing here is linked at
 * build time, so a model library loads and runs on the CPU on machines
 * without any CUDA.
 *
 * Where the libraries are looked for, first match wins:
 *   $SLAPO_LIBCUDA / $SLAPO_LIBCUBLAS / $SLAPO_LIBCUBLASLT   a path each
 *   the names libcuda.so.1, libcublas.so.13 (then .12, then .so) and
 *   libcublasLt.so.13 (...) on the dynamic linker's path (LD_LIBRARY_PATH,
 *   ldconfig; a library already loaded by the process, PyTorch's say)
 *   $CUDA_HOME/lib64, $CUDA_PATH/lib64, /usr/local/cuda/lib64
 * A failure is SLAPO_UNSUPPORTED naming the library (or function) that is
 * missing, with dlerror's reason; it is remembered and repeated.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_api.h"
#include "rt.h"

static RtCuda cuda;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;                  /* 1 when every function is there */
static char load_error[RT_MSG_MAX]; /* why not */
static char paths[3][256];

/* Opens one library: the env override, the names, then the dirs. */
static void *open_lib(const char *env, const char *const *names, char *found,
                      size_t fsize, char *why, size_t wsize)
{
	const char *dirs[3] = {getenv("CUDA_HOME"), getenv("CUDA_PATH"),
	                       "/usr/local/cuda"};
	const char *p = getenv(env);
	void *h;
	char path[1024];
	why[0] = '\0';
	if (p && *p) {
		h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
		if (!h)
			snprintf(why, wsize, "$%s=%.200s: %.300s", env, p, dlerror());
		else
			snprintf(found, fsize, "%.250s", p);
		return h;
	}
	for (int i = 0; names[i]; i++) {
		if ((h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL))) {
			snprintf(found, fsize, "%.250s", names[i]);
			return h;
		}
		if (!why[0])
			snprintf(why, wsize, "%.500s", dlerror());
	}
	for (int d = 0; d < 3; d++) {
		if (!dirs[d] || !*dirs[d])
			continue;
		for (int i = 0; names[i]; i++) {
			snprintf(path, sizeof path, "%.800s/lib64/%.100s", dirs[d],
			         names[i]);
			if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
				snprintf(found, fsize, "%.250s", path);
				return h;
			}
		}
	}
	return NULL;
}

#define SYM(lib, field, name)                                                            \
	do {                                                                             \
		*(void **)&cuda.field = dlsym(lib, name);                                \
		if (!cuda.field) {                                                       \
			snprintf(load_error, sizeof load_error,                          \
			         "%.250s has no function %.100s (too old a version?)",   \
			         paths_of(lib), name);                                   \
			return;                                                          \
		}                                                                        \
	} while (0)

static void *libs[3];

static const char *paths_of(void *lib)
{
	for (int i = 0; i < 3; i++)
		if (libs[i] == lib)
			return paths[i];
	return "?";
}

static void load(void)
{
	static const char *const n_cuda[] = {"libcuda.so.1", "libcuda.so", NULL};
	static const char *const n_blas[] = {"libcublas.so.13", "libcublas.so.12",
	                                     "libcublas.so", NULL};
	static const char *const n_lt[] = {"libcublasLt.so.13", "libcublasLt.so.12",
	                                   "libcublasLt.so", NULL};
	char why[600];
	if (!(libs[0] = open_lib("SLAPO_LIBCUDA", n_cuda, paths[0], sizeof paths[0], why,
	                         sizeof why))) {
		snprintf(
		        load_error, sizeof load_error,
		        "a CUDA device needs the NVIDIA driver's libcuda.so.1, which cannot be "
		        "loaded (%.600s)",
		        why);
		return;
	}
	/* cuBLASLt first: libcublas depends on it */
	if (!(libs[2] = open_lib("SLAPO_LIBCUBLASLT", n_lt, paths[2], sizeof paths[2],
	                         why, sizeof why))) {
		snprintf(
		        load_error, sizeof load_error,
		        "a CUDA device needs cuBLASLt (libcublasLt.so.13 or .12), which cannot be "
		        "loaded (%.600s); put the CUDA toolkit's lib64 on LD_LIBRARY_PATH or set "
		        "SLAPO_LIBCUBLASLT",
		        why);
		return;
	}
	if (!(libs[1] = open_lib("SLAPO_LIBCUBLAS", n_blas, paths[1], sizeof paths[1],
	                         why, sizeof why))) {
		snprintf(
		        load_error, sizeof load_error,
		        "a CUDA device needs cuBLAS (libcublas.so.13 or .12), which cannot be "
		        "loaded (%.600s); put the CUDA toolkit's lib64 on LD_LIBRARY_PATH or set "
		        "SLAPO_LIBCUBLAS",
		        why);
		return;
	}
	void *d = libs[0], *b = libs[1], *l = libs[2];
	SYM(d, cuInit, "cuInit");
	SYM(d, cuDriverGetVersion, "cuDriverGetVersion");
	SYM(d, cuDeviceGetCount, "cuDeviceGetCount");
	SYM(d, cuDeviceGet, "cuDeviceGet");
	SYM(d, cuDeviceGetName, "cuDeviceGetName");
	SYM(d, cuDeviceGetAttribute, "cuDeviceGetAttribute");
	SYM(d, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
	SYM(d, cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
	SYM(d, cuCtxPushCurrent, "cuCtxPushCurrent_v2");
	SYM(d, cuCtxPopCurrent, "cuCtxPopCurrent_v2");
	SYM(d, cuMemAlloc, "cuMemAlloc_v2");
	SYM(d, cuMemFree, "cuMemFree_v2");
	SYM(d, cuMemGetInfo, "cuMemGetInfo_v2");
	SYM(d, cuMemcpyHtoD, "cuMemcpyHtoD_v2");
	SYM(d, cuMemcpyDtoH, "cuMemcpyDtoH_v2");
	SYM(d, cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
	SYM(d, cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
	SYM(d, cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
	SYM(d, cuMemsetD32Async, "cuMemsetD32Async");
	SYM(d, cuPointerGetAttribute, "cuPointerGetAttribute");
	SYM(d, cuStreamCreate, "cuStreamCreate");
	SYM(d, cuStreamDestroy, "cuStreamDestroy_v2");
	SYM(d, cuStreamSynchronize, "cuStreamSynchronize");
	SYM(d, cuStreamBeginCapture, "cuStreamBeginCapture_v2");
	SYM(d, cuStreamEndCapture, "cuStreamEndCapture");
	SYM(d, cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
	SYM(d, cuGraphLaunch, "cuGraphLaunch");
	SYM(d, cuGraphExecDestroy, "cuGraphExecDestroy");
	SYM(d, cuGraphDestroy, "cuGraphDestroy");
	SYM(d, cuEventCreate, "cuEventCreate");
	SYM(d, cuEventRecord, "cuEventRecord");
	SYM(d, cuEventElapsedTime, "cuEventElapsedTime");
	SYM(d, cuEventDestroy, "cuEventDestroy_v2");
	SYM(d, cuModuleLoadDataEx, "cuModuleLoadDataEx");
	SYM(d, cuModuleUnload, "cuModuleUnload");
	SYM(d, cuModuleGetFunction, "cuModuleGetFunction");
	SYM(d, cuFuncGetAttribute, "cuFuncGetAttribute");
	SYM(d, cuLaunchKernel, "cuLaunchKernel");
	SYM(d, cuGetErrorName, "cuGetErrorName");
	SYM(d, cuGetErrorString, "cuGetErrorString");
	SYM(b, cublasCreate, "cublasCreate_v2");
	SYM(b, cublasDestroy, "cublasDestroy_v2");
	SYM(b, cublasSetStream, "cublasSetStream_v2");
	SYM(b, cublasSetWorkspace, "cublasSetWorkspace_v2");
	SYM(b, cublasGemmStridedBatchedEx, "cublasGemmStridedBatchedEx");
	SYM(b, cublasGemmBatchedEx, "cublasGemmBatchedEx");
	SYM(b, cublasGetStatusName, "cublasGetStatusName");
	SYM(l, cublasLtCreate, "cublasLtCreate");
	SYM(l, cublasLtDestroy, "cublasLtDestroy");
	SYM(l, cublasLtMatmulDescCreate, "cublasLtMatmulDescCreate");
	SYM(l, cublasLtMatmulDescDestroy, "cublasLtMatmulDescDestroy");
	SYM(l, cublasLtMatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
	SYM(l, cublasLtMatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
	SYM(l, cublasLtMatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
	SYM(l, cublasLtMatrixLayoutSetAttribute, "cublasLtMatrixLayoutSetAttribute");
	SYM(l, cublasLtMatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
	SYM(l, cublasLtMatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
	SYM(l, cublasLtMatmulPreferenceSetAttribute,
	    "cublasLtMatmulPreferenceSetAttribute");
	SYM(l, cublasLtMatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
	SYM(l, cublasLtMatmul, "cublasLtMatmul");
	CUresult r = cuda.cuInit(0);
	if (r != CUDA_SUCCESS) {
		char t[256];
		snprintf(load_error, sizeof load_error,
		         "the NVIDIA driver (%.250s) cannot initialise CUDA: %.256s",
		         paths[0], rt_cu_error_text(&cuda, r, t, sizeof t));
		return;
	}
	cuda.cuDriverGetVersion(&cuda.driver_version);
	cuda.path_cuda = paths[0];
	cuda.path_cublas = paths[1];
	cuda.path_cublaslt = paths[2];
	loaded = 1;
}

const RtCuda *rt_cuda_load(void)
{
	pthread_once(&once, load);
	if (!loaded) {
		rt_error(SLAPO_UNSUPPORTED, "", "%s", load_error);
		return NULL;
	}
	return &cuda;
}

const char *rt_cu_error_text(const RtCuda *cu, CUresult r, char *buf, size_t size)
{
	const char *name = NULL, *text = NULL;
	if (cu && cu->cuGetErrorName)
		cu->cuGetErrorName(r, &name);
	if (cu && cu->cuGetErrorString)
		cu->cuGetErrorString(r, &text);
	snprintf(buf, size, "%s (%d): %s", name ? name : "CUDA error", (int)r,
	         text ? text : "unknown error");
	return buf;
}

int rt_cu_error_sticky(CUresult r)
{
	switch (r) {
	case CUDA_ERROR_ECC_UNCORRECTABLE:
	case CUDA_ERROR_NVLINK_UNCORRECTABLE:
	case CUDA_ERROR_CONTAINED:
	case CUDA_ERROR_ILLEGAL_ADDRESS:
	case CUDA_ERROR_LAUNCH_TIMEOUT:
	case CUDA_ERROR_CONTEXT_IS_DESTROYED:
	case CUDA_ERROR_ASSERT:
	case CUDA_ERROR_HARDWARE_STACK_ERROR:
	case CUDA_ERROR_ILLEGAL_INSTRUCTION:
	case CUDA_ERROR_MISALIGNED_ADDRESS:
	case CUDA_ERROR_INVALID_ADDRESS_SPACE:
	case CUDA_ERROR_INVALID_PC:
	case CUDA_ERROR_LAUNCH_FAILED:
	case CUDA_ERROR_TENSOR_MEMORY_LEAK:
	case CUDA_ERROR_EXTERNAL_DEVICE:
	case CUDA_ERROR_UNKNOWN:
		return 1;
	default:
		return 0;
	}
}
