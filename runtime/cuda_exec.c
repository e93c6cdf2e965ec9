/* cuda_exec.c - models on an NVIDIA GPU: the device copy of the weights,
 * sessions (a stream, the PTX module, cuBLAS and cuBLASLt handles, one
 * device allocation for the memory plan), session_run with CUDA graphs,
 * and the services generated GPU code calls (rt_gpu_launch,
 * rt_gpu_error_word; rt_gpu_gemm is cuda_gemm.c's, cuda_exec.h what the two
 * share).
 *
 * A run:
 *   1. checks inputs and outputs (host memory or memory of the session's
 *      GPU), binds the symbols, checks index inputs given in host memory;
 *   2. sizes the session's device memory: error word | cuBLAS workspace |
 *      pointer arrays | staged inputs | staged outputs | the model's
 *      workspace (the memory plan), reallocated (dropping the graphs) only
 *      when it grows;
 *   3. copies the inputs into their staging buffers (so a graph can be
 *      replayed whatever buffers the caller passes);
 *   4. runs forward: the first time for a (symbols, output buffers) key
 *      eagerly (a warm-up, as cuBLAS wants before capture), the second time
 *      captured into a CUDA graph, then by replaying that graph;
 *   5. copies staged outputs out, synchronises, and reads the error word
 *      (a gather that saw a bad index in a device input).
 * Every CUDA call is checked. An error that leaves the context unusable
 * (illegal address, launch failure, ...: rt_cu_error_sticky) poisons the
 * session: this run and every later one return SLAPO_DEVICE_LOST with the
 * CUDA error in SlapoError.device_error. Other failures (out of memory, a
 * cuBLAS status) are SLAPO_OUT_OF_MEMORY / SLAPO_DEVICE and leave the
 * session usable.
 *
 * A profiled run (session_profile) is always eager, with a CUDA event
 * recorded before each step and after the last; their elapsed times are
 * read once the run has finished.
 *
 * Environment (for debugging): SLAPO_CUDA_GRAPHS=0 runs every time
 * eagerly; SLAPO_GEMM_SPLIT_ROWS=N splits misaligned GEMMs (gemm_split)
 * from N rows a class (default 512; tests take 1); SLAPO_ATT_SMALL_GRID=N
 * launches attention's 64-query kernel below N blocks of 128 queries
 * (default: the library's ATT_SMALL_GRID; 0: never); SLAPO_GEMM_NO_LT=1
 * runs every GEMM on cuBLAS, as where cuBLASLt has no algorithm (bias and
 * GELU epilogues by our kernels); SLAPO_GEMM_TUNE=0 runs cuBLASLt's first
 * answer for every GEMM, =2 times the answers of every GEMM, not only the
 * compute-bound ones (cuda_gemm.c, lt_algo); SLAPO_CUDA_SM90A=0 leaves the
 * library's sm_90a module (Hopper's attention kernel) unloaded, =1
 * requires it (an error where it cannot load); SLAPO_CUDA_SYNC=1
 * synchronises after every eager launch and GEMM, naming the kernel that
 * failed; SLAPO_CUDA_TEST_FAULT=1 makes the
 * first kernel launch of each session write to an invalid address (the
 * test of the poisoning path).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_exec.h"

#define DEV_ALIGN 256u
#define MAX_ARGS  160

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static int env_flag(const char *name, int dflt)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return dflt;
	return strcmp(v, "0") != 0;
}

/* A number >= 0 from the environment, else dflt. */
static int64_t env_int(const char *name, int64_t dflt)
{
	const char *v = getenv(name);
	char *end;
	long long n = v ? strtoll(v, &end, 10) : 0;
	return v && *v && !*end && n >= 0 ? n : dflt;
}

/* ---- device copy of the weights ----------------------------------------- */

struct RtGpuWeights {
	const RtCuda *cu;
	const SlapoModel *m;
	int32_t ordinal;
	CUdevice dev;
	CUcontext ctx; /* the device's primary context, retained */
	char name[256];
	int cc_major, cc_minor, sm_count;
	pthread_mutex_t lock;
	CUdeviceptr block; /* params_size bytes; 0 until the first upload */
	int dirty;         /* the host copy changed since the upload */
};

static SlapoStatus cu_fail(const RtCuda *cu, CUresult r, const char *object,
                           const char *what)
{
	char t[300];
	rt_cu_error_text(cu, r, t, sizeof t);
	return rt_error_device(r == CUDA_ERROR_OUT_OF_MEMORY ? SLAPO_OUT_OF_MEMORY
	                       : rt_cu_error_sticky(r)       ? SLAPO_DEVICE_LOST
	                                                     : SLAPO_DEVICE,
	                       r, object, "%s: %s", what, t);
}

SlapoStatus rt_gpu_weights_create(const SlapoModel *m, int32_t id, RtGpuWeights **out)
{
	const RtModelDesc *d = m->desc;
	const RtCuda *cu;
	RtGpuWeights *g;
	CUresult r;
	int count = 0;
	*out = NULL;
	if (!d->gpu)
		return rt_error(
		        SLAPO_UNSUPPORTED, "",
		        "model %s was compiled without CUDA code (slapoc --no-gpu, "
		        "or no NVPTX/libdevice where it was compiled); create the "
		        "weights on {kDLCPU, 0}",
		        d->name);
	if (id < 0)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "CUDA device id %d is negative", (int)id);
	if (!(cu = rt_cuda_load()))
		return SLAPO_UNSUPPORTED;
	if ((r = cu->cuDeviceGetCount(&count)) != CUDA_SUCCESS)
		return cu_fail(cu, r, "", "cuDeviceGetCount");
	if (id >= count)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "CUDA device %d does not exist (this machine has %d)",
		                (int)id, count);
	g = rt_calloc(1, sizeof *g);
	if (!g)
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	g->cu = cu;
	g->m = m;
	g->ordinal = id;
	if ((r = cu->cuDeviceGet(&g->dev, id)) != CUDA_SUCCESS) {
		rt_free(g);
		return cu_fail(cu, r, "", "cuDeviceGet");
	}
	cu->cuDeviceGetName(g->name, (int)sizeof g->name, g->dev);
	cu->cuDeviceGetAttribute(&g->cc_major,
	                         CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, g->dev);
	cu->cuDeviceGetAttribute(&g->cc_minor,
	                         CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, g->dev);
	cu->cuDeviceGetAttribute(&g->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
	                         g->dev);
	if (g->cc_major * 10 + g->cc_minor < 80) {
		SlapoStatus st = rt_error(
		        SLAPO_UNSUPPORTED, "",
		        "CUDA device %d (%s) has compute capability %d.%d; "
		        "the model's GPU code (%s) needs 8.0 or newer",
		        (int)id, g->name, g->cc_major, g->cc_minor, d->gpu->target);
		rt_free(g);
		return st;
	}
	if ((r = cu->cuDevicePrimaryCtxRetain(&g->ctx, g->dev)) != CUDA_SUCCESS) {
		rt_free(g);
		return cu_fail(cu, r, "", "cuDevicePrimaryCtxRetain");
	}
	pthread_mutex_init(&g->lock, NULL);
	g->dirty = 1;
	*out = g;
	return SLAPO_OK;
}

void rt_gpu_weights_free(RtGpuWeights *g)
{
	CUcontext prev;
	if (!g)
		return;
	if (g->block && g->cu->cuCtxPushCurrent(g->ctx) == CUDA_SUCCESS) {
		g->cu->cuMemFree(g->block);
		g->cu->cuCtxPopCurrent(&prev);
	}
	g->cu->cuDevicePrimaryCtxRelease(g->dev);
	pthread_mutex_destroy(&g->lock);
	rt_free(g);
}

void rt_gpu_weights_dirty(RtGpuWeights *g)
{
	pthread_mutex_lock(&g->lock);
	g->dirty = 1;
	pthread_mutex_unlock(&g->lock);
}

const char *rt_gpu_device_name(const RtGpuWeights *g)
{
	return g->name;
}

static DLDataType gpu_dtype(const RtGpuDesc *g, int32_t i)
{
	return g->param_dtypes[i];
}

/* Converts and copies every owned parameter into the device block; the
 * caller holds g->lock and has the context current. */
static SlapoStatus upload(SlapoWeights *w, RtGpuWeights *g)
{
	const SlapoModel *m = w->model;
	const RtModelDesc *d = m->desc;
	const RtGpuDesc *gd = d->gpu;
	const RtCuda *cu = g->cu;
	size_t cap = 0;
	void *buf = NULL;
	CUresult r;
	if (!g->block) {
		if ((r = cu->cuMemAlloc(&g->block,
		                        gd->params_size ? gd->params_size : 256)) !=
		    CUDA_SUCCESS) {
			g->block = 0;
			return cu_fail(
			        cu, r, "",
			        "allocating the parameters on the GPU (cuMemAlloc)");
		}
	}
	for (int32_t i = 0; i < d->n_params; i++) {
		DLDataType dt = gpu_dtype(gd, i);
		int64_t n = rt_numel(d->params[i].ndim, d->params[i].dims);
		size_t bytes = (size_t)n * rt_dtype_size(dt);
		if (m->storage_of[i] != i || n == 0)
			continue;
		if (gd->param_offsets[i] + bytes > gd->params_size) {
			rt_free(buf);
			return rt_error(SLAPO_INTERNAL, d->params[i].name,
			                "parameter '%s' lies outside the device block",
			                d->params[i].name);
		}
		const void *src = w->data[i];
		if (!rt_dtype_eq(dt, d->params[i].dtype)) {
			if (bytes > cap) {
				rt_free(buf);
				cap = bytes;
				if (!(buf = rt_malloc(cap)))
					return rt_error(SLAPO_OUT_OF_MEMORY, "",
					                "out of memory");
			}
			rt_convert(dt, buf, d->params[i].dtype, w->data[i], n);
			src = buf;
		}
		if ((r = cu->cuMemcpyHtoD(g->block + gd->param_offsets[i], src, bytes)) !=
		    CUDA_SUCCESS) {
			rt_free(buf);
			return cu_fail(cu, r, d->params[i].name, "uploading a parameter");
		}
	}
	rt_free(buf);
	g->dirty = 0;
	if (w->log) {
		char dt[24];
		rt_log(w->log, w->log_user_data, SLAPO_LOG_INFO,
		       "uploaded the parameters of %s to cuda:%d (%s): %.1f MB, %s",
		       d->name, (int)g->ordinal, g->name, (double)gd->params_size / 1e6,
		       d->n_params ? rt_dtype_name(gpu_dtype(gd, 0), dt) : "-");
	}
	return SLAPO_OK;
}

/* ---- sessions ------------------------------------------------------------- */

/* A CUDA failure during a run: poisons the session if sticky. */
static SlapoStatus run_fail(RtGpuSession *gs, CUresult r, const char *what)
{
	SlapoStatus st = cu_fail(gs->cu, r, "", what);
	if (rt_cu_error_sticky(r) && !gs->poisoned) {
		gs->poisoned = 1;
		gs->lost_err = r;
		snprintf(gs->lost_msg, sizeof gs->lost_msg, "%s",
		         rt_last_error()->message);
	}
	return st;
}

static void drop_graphs(RtGpuSession *gs)
{
	for (int i = 0; i < MAX_GRAPHS; i++) {
		if (gs->graphs[i].exec)
			gs->cu->cuGraphExecDestroy(gs->graphs[i].exec);
		rt_free(gs->graphs[i].key);
		memset(&gs->graphs[i], 0, sizeof gs->graphs[i]);
	}
}

void rt_gpu_session_free(RtGpuSession *gs)
{
	CUcontext prev;
	if (!gs)
		return;
	const RtCuda *cu = gs->cu;
	if (cu->cuCtxPushCurrent(gs->gw->ctx) == CUDA_SUCCESS) {
		if (!gs->poisoned && gs->stream)
			cu->cuStreamSynchronize(gs->stream);
		drop_graphs(gs);
		for (int32_t i = 0; i < gs->n_ev; i++)
			if (gs->ev[i])
				cu->cuEventDestroy(gs->ev[i]);
		if (gs->lt)
			cu->cublasLtDestroy(gs->lt);
		if (gs->blas)
			cu->cublasDestroy(gs->blas);
		if (gs->mod)
			cu->cuModuleUnload(gs->mod);
		if (gs->mod90)
			cu->cuModuleUnload(gs->mod90);
		if (gs->mem)
			cu->cuMemFree(gs->mem);
		if (gs->own_stream && gs->stream)
			cu->cuStreamDestroy(gs->stream);
		cu->cuCtxPopCurrent(&prev);
	}
	rt_free(gs->ev);
	rt_free(gs->fn);
	rt_free(gs->max_threads);
	rt_free(gs->param_ptrs);
	rt_free((void *)gs->in_ptrs);
	rt_free(gs->out_ptrs);
	rt_free(gs->in_off);
	rt_free(gs->out_off);
	rt_free(gs->sym);
	rt_free(gs->tuned);
	rt_free(gs->shape);
	rt_free(gs->host_stage);
	rt_free(gs);
}

/* JIT-compiles one PTX module; on failure the error names it and the log. */
static SlapoStatus jit(RtGpuSession *gs, CUmodule *mod, const char *ptx, const char *what)
{
	const RtCuda *cu = gs->cu;
	char errlog[8192];
	int opts[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
	void *vals[2] = {errlog, (void *)(uintptr_t)sizeof errlog};
	CUresult r;
	errlog[0] = '\0';
	if ((r = cu->cuModuleLoadDataEx(mod, ptx, 2, opts, vals)) == CUDA_SUCCESS)
		return SLAPO_OK;
	char t[300];
	*mod = NULL;
	errlog[sizeof errlog - 1] = '\0';
	for (char *p = errlog; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return rt_error_device(
	        rt_cu_error_sticky(r) ? SLAPO_DEVICE_LOST : SLAPO_DEVICE, r, "",
	        "loading the model's PTX (%s) on %s: %s; JIT log: %.600s", what,
	        gs->gw->name, rt_cu_error_text(cu, r, t, sizeof t), errlog);
}

/* Kernels [lo, hi) of kernel_names from mod. */
static SlapoStatus find_kernels(RtGpuSession *gs, CUmodule mod, int32_t lo, int32_t hi)
{
	const RtCuda *cu = gs->cu;
	CUresult r;
	for (int32_t i = lo; i < hi; i++) {
		int mt = 1024;
		if ((r = cu->cuModuleGetFunction(&gs->fn[i], mod,
		                                 gs->g->kernel_names[i])) != CUDA_SUCCESS)
			return cu_fail(cu, r, gs->g->kernel_names[i],
			               "finding a kernel in the PTX");
		if (cu->cuFuncGetAttribute(&mt, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
		                           gs->fn[i]) != CUDA_SUCCESS ||
		    mt < 32 || mt > 1024)
			mt = 1024;
		gs->max_threads[i] = mt / 32 * 32;
	}
	return SLAPO_OK;
}

/* The sm_90a module, on a GPU of compute capability 9.0 (unless
 * SLAPO_CUDA_SM90A=0). Where it cannot load, its kernels stay NULL and
 * forward() launches the portable ones, unless SLAPO_CUDA_SM90A=1 asks
 * for it, or the failure left the context unusable: then that is the
 * session's error. */
static SlapoStatus load_sm90a(RtGpuSession *gs)
{
	const RtGpuDesc *g = gs->g;
	int32_t n90 = g->version >= 3 ? g->n_kernels_sm90a : 0;
	if (n90 == 0 || gs->sm90a == 0)
		return SLAPO_OK;
	SlapoStatus st;
	if (gs->gw->cc_major != 9 || gs->gw->cc_minor != 0) /* not Hopper */
		return gs->sm90a != 1
		               ? SLAPO_OK
		               : rt_error(
		                         SLAPO_DEVICE, "",
		                         "SLAPO_CUDA_SM90A=1, but %s has compute capability "
		                         "%d.%d, not 9.0",
		                         gs->gw->name, gs->gw->cc_major,
		                         gs->gw->cc_minor);
	if ((st = jit(gs, &gs->mod90, g->ptx_sm90a, "sm_90a")) == SLAPO_OK &&
	    (st = find_kernels(gs, gs->mod90, g->n_kernels - n90, g->n_kernels)) !=
	            SLAPO_OK)
		for (int32_t i = g->n_kernels - n90; i < g->n_kernels; i++)
			gs->fn[i] = NULL;
	SlapoWeights *w = gs->w;
	if (st == SLAPO_OK && w->log)
		rt_log(w->log, w->log_user_data, SLAPO_LOG_INFO,
		       "loaded the sm_90a module of %s on cuda:%d (%s): %d Hopper kernels",
		       gs->d->name, (int)gs->gw->ordinal, gs->gw->name, (int)n90);
	if (st == SLAPO_OK || gs->sm90a == 1 || st == SLAPO_DEVICE_LOST)
		return st;
	if (w->log)
		rt_log(w->log, w->log_user_data, SLAPO_LOG_WARN,
		       "the sm_90a module of %s did not load on cuda:%d (%s), the portable "
		       "kernels run instead: %s%s%s",
		       gs->d->name, (int)gs->gw->ordinal, gs->gw->name,
		       rt_last_error()->object_name,
		       *rt_last_error()->object_name ? ": " : "",
		       rt_last_error()->message);
	rt_clear_error(); /* not an error of the session */
	return SLAPO_OK;
}

static SlapoStatus load_module(RtGpuSession *gs)
{
	const RtCuda *cu = gs->cu;
	const RtGpuDesc *g = gs->g;
	SlapoStatus st;
	if ((st = jit(gs, &gs->mod, g->ptx, g->target)) != SLAPO_OK)
		return st;
	gs->fn = rt_calloc((size_t)g->n_kernels + 1, sizeof *gs->fn);
	gs->max_threads = rt_calloc((size_t)g->n_kernels + 1, sizeof *gs->max_threads);
	if (!gs->fn || !gs->max_threads)
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	int32_t n90 = g->version >= 3 ? g->n_kernels_sm90a : 0;
	if ((st = find_kernels(gs, gs->mod, 0, g->n_kernels - n90)) != SLAPO_OK ||
	    (st = load_sm90a(gs)) != SLAPO_OK)
		return st;
	static const char *const bias[3] = {"slapo_util_bias_f32", "slapo_util_bias_bf16",
	                                    "slapo_util_bias_f16"};
	static const char *const gelu[3] = {"slapo_util_gelu_f32", "slapo_util_gelu_bf16",
	                                    "slapo_util_gelu_f16"};
	for (int i = 0; i < 3; i++) {
		if (cu->cuModuleGetFunction(&gs->bias_fn[i], gs->mod, bias[i]) !=
		    CUDA_SUCCESS)
			gs->bias_fn[i] = NULL;
		if (cu->cuModuleGetFunction(&gs->gelu_fn[i], gs->mod, gelu[i]) !=
		    CUDA_SUCCESS)
			gs->gelu_fn[i] = NULL;
	}
	if (cu->cuModuleGetFunction(&gs->ptrs_fn, gs->mod, "slapo_util_ptrs") !=
	    CUDA_SUCCESS)
		gs->ptrs_fn = NULL;
	return SLAPO_OK;
}

SlapoStatus rt_gpu_session_create(SlapoWeights *w, void *stream, RtGpuSession **out)
{
	RtGpuWeights *gw = w->gpu;
	const RtCuda *cu = gw->cu;
	const RtModelDesc *d = w->model->desc;
	RtGpuSession *gs;
	CUcontext prev;
	CUresult r;
	SlapoStatus st = SLAPO_OK;
	*out = NULL;
	gs = rt_calloc(1, sizeof *gs);
	if (!gs)
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	gs->cu = cu;
	gs->w = w;
	gs->gw = gw;
	gs->d = d;
	gs->g = d->gpu;
	gs->use_graphs = env_flag("SLAPO_CUDA_GRAPHS", 1);
	gs->tune = (int)env_int("SLAPO_GEMM_TUNE", 1);
	gs->sync_each = env_flag("SLAPO_CUDA_SYNC", 0);
	gs->fault_armed = env_flag("SLAPO_CUDA_TEST_FAULT", 0);
	gs->split_rows = env_int("SLAPO_GEMM_SPLIT_ROWS", 512);
	gs->no_lt = env_flag("SLAPO_GEMM_NO_LT", 0);
	gs->att_small_grid = env_int("SLAPO_ATT_SMALL_GRID", -1);
	gs->sm90a = env_int("SLAPO_CUDA_SM90A", -1);
	gs->param_ptrs = rt_calloc((size_t)d->n_params + 1, sizeof *gs->param_ptrs);
	gs->in_ptrs = rt_calloc((size_t)d->n_inputs + 1, sizeof *gs->in_ptrs);
	gs->out_ptrs = rt_calloc((size_t)d->n_outputs + 1, sizeof *gs->out_ptrs);
	gs->in_off = rt_calloc((size_t)d->n_inputs + 1, sizeof *gs->in_off);
	gs->out_off = rt_calloc((size_t)d->n_outputs + 1, sizeof *gs->out_off);
	gs->sym = rt_calloc((size_t)d->n_syms + 1, sizeof *gs->sym);
	gs->shape = rt_calloc(RT_MAX_NDIM, sizeof *gs->shape);
	if (!gs->param_ptrs || !gs->in_ptrs || !gs->out_ptrs || !gs->in_off ||
	    !gs->out_off || !gs->sym || !gs->shape) {
		rt_gpu_session_free(gs);
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	}
	if ((r = cu->cuCtxPushCurrent(gw->ctx)) != CUDA_SUCCESS) {
		st = cu_fail(cu, r, "", "cuCtxPushCurrent");
		rt_gpu_session_free(gs);
		return st;
	}
	pthread_mutex_lock(&gw->lock);
	if (gw->dirty || !gw->block)
		st = upload(w, gw);
	pthread_mutex_unlock(&gw->lock);
	if (st == SLAPO_OK) {
		for (int32_t i = 0; i < d->n_params; i++)
			gs->param_ptrs[i] =
			        (void *)(uintptr_t)(gw->block + gs->g->param_offsets[i]);
		if (stream) {
			gs->stream = (CUstream)stream;
		} else if ((r = cu->cuStreamCreate(&gs->stream,
		                                   CU_STREAM_NON_BLOCKING)) !=
		           CUDA_SUCCESS) {
			gs->stream = NULL;
			st = cu_fail(cu, r, "", "cuStreamCreate");
		} else {
			gs->own_stream = 1;
		}
	}
	if (st == SLAPO_OK)
		st = load_module(gs);
	if (st == SLAPO_OK) {
		cublasStatus_t b;
		if ((b = cu->cublasCreate(&gs->blas)) != CUBLAS_STATUS_SUCCESS) {
			gs->blas = NULL;
			st = rt_error_device(SLAPO_DEVICE, b, "", "cublasCreate: %s",
			                     cu->cublasGetStatusName(b));
		} else if ((b = cu->cublasLtCreate(&gs->lt)) != CUBLAS_STATUS_SUCCESS) {
			gs->lt = NULL;
			st = rt_error_device(SLAPO_DEVICE, b, "", "cublasLtCreate: %s",
			                     cu->cublasGetStatusName(b));
		} else if ((b = cu->cublasSetStream(gs->blas, gs->stream)) !=
		           CUBLAS_STATUS_SUCCESS) {
			st = rt_error_device(SLAPO_DEVICE, b, "", "cublasSetStream: %s",
			                     cu->cublasGetStatusName(b));
		}
	}
	cu->cuCtxPopCurrent(&prev);
	if (st != SLAPO_OK) {
		rt_gpu_session_free(gs);
		return st;
	}
	*out = gs;
	return SLAPO_OK;
}

/* ---- services ----------------------------------------------------------- */

void *rt_gpu_error_word(RtExec *ex)
{
	return (void *)(uintptr_t)session_of(ex)->flag;
}

int64_t rt_gpu_att_small_grid(RtExec *ex, int64_t dflt)
{
	int64_t v = session_of(ex)->att_small_grid;
	return v >= 0 ? v : dflt;
}

int32_t rt_gpu_has_kernel(RtExec *ex, int32_t kernel)
{
	RtGpuSession *gs = session_of(ex);
	return kernel >= 0 && kernel < gs->g->n_kernels && gs->fn[kernel] != NULL;
}

/* After an enqueue: its error, and with SLAPO_CUDA_SYNC the kernel's. */
int rt_gpu_check_enqueue(RtExec *ex, RtGpuSession *gs, CUresult r, const char *what,
                         const char *name)
{
	char msg[400];
	if (r == CUDA_SUCCESS && gs->sync_each && !gs->capturing)
		r = gs->cu->cuStreamSynchronize(gs->stream);
	if (r == CUDA_SUCCESS)
		return 1;
	gs->last_err = r;
	snprintf(msg, sizeof msg, "after %s %s", what, name);
	run_fail(gs, r, msg);
	rt_fail(ex, rt_last_error()->code, NULL, "%s", rt_last_error()->message);
	return 0;
}

void rt_gpu_launch(RtExec *ex, int32_t kernel, int64_t gx, int64_t gy, int64_t bx,
                   const uint64_t *args, int32_t nargs)
{
	RtGpuSession *gs = session_of(ex);
	void *params[MAX_ARGS + 1];
	uint64_t bad[MAX_ARGS];
	if (rt_failed(ex))
		return;
	if (kernel < 0 || kernel >= gs->g->n_kernels || !gs->fn[kernel] ||
	    nargs > MAX_ARGS || nargs < 0 || gx < 1 || gx > INT32_MAX || gy < 1 ||
	    gy > 65535 || bx < 1 || bx > 1024) {
		rt_fail(ex, SLAPO_INTERNAL, NULL,
		        "bad launch of kernel %d: grid %lld x %lld, %lld threads, %d args",
		        (int)kernel, (long long)gx, (long long)gy, (long long)bx,
		        (int)nargs);
		return;
	}
	/* every kernel loops over its work, so fewer threads per block are
	 * correct: as many as the kernel's registers allow */
	if (bx > gs->max_threads[kernel])
		bx = gs->max_threads[kernel];
	for (int32_t i = 0; i < nargs; i++)
		params[i] = (void *)&args[i];
	params[nargs] =
	        NULL; /* not read by CUDA; ends the list for tests/gpu/fake_cuda.c */
	if (gs->fault_armed && nargs > 0) { /* SLAPO_CUDA_TEST_FAULT */
		gs->fault_armed = 0;
		for (int32_t i = 0; i < nargs; i++) {
			bad[i] = i == 0 ? (uint64_t)16 : args[i];
			params[i] = &bad[i];
		}
	}
	CUresult r =
	        gs->cu->cuLaunchKernel(gs->fn[kernel], (unsigned)gx, (unsigned)gy, 1,
	                               (unsigned)bx, 1, 1, 0, gs->stream, params, NULL);
	rt_gpu_check_enqueue(ex, gs, r, "kernel", gs->g->kernel_names[kernel]);
}

/* ---- running ------------------------------------------------------------ */

static int is_device(const DLTensor *t)
{
	return t->device.device_type == kDLCUDA;
}

static size_t tensor_bytes(const DLTensor *t)
{
	return (size_t)rt_numel(t->ndim, t->shape) * rt_dtype_size(t->dtype);
}

/* Host bytes for strided host tensors (copied compact first). */
static void *host_scratch(RtGpuSession *gs, size_t bytes)
{
	if (bytes > gs->host_cap) {
		void *p = rt_aligned_alloc(bytes);
		if (!p)
			return NULL;
		rt_free(gs->host_stage);
		gs->host_stage = p;
		gs->host_cap = bytes;
	}
	return gs->host_stage;
}

/* Whether a device output can be written in place by the graph. */
static int direct_output(const DLTensor *t)
{
	void *p = rt_tensor_ptr(t);
	size_t esz = rt_dtype_size(t->dtype);
	return is_device(t) && rt_tensor_compact(t) &&
	       (uintptr_t)p % (esz ? esz : 1) == 0;
}

/* Lays out and (re)allocates the session's device memory. */
static SlapoStatus size_memory(RtGpuSession *gs, const DLTensor *const *inputs,
                               DLTensor *const *outputs, uint64_t ws)
{
	const RtModelDesc *d = gs->d;
	uint64_t at = DEV_ALIGN + BLAS_WS + PTRS_BYTES;
	CUresult r;
	for (int32_t i = 0; i < d->n_inputs; i++) {
		gs->in_off[i] = at;
		at = align_up(at + tensor_bytes(inputs[i]), DEV_ALIGN);
	}
	for (int32_t j = 0; j < d->n_outputs; j++) {
		gs->out_off[j] = 0;
		if (direct_output(outputs[j]))
			continue;
		gs->out_off[j] = at;
		at = align_up(at + tensor_bytes(outputs[j]), DEV_ALIGN);
	}
	uint64_t ws_off = at;
	at = align_up(at + ws, DEV_ALIGN);
	if (at > gs->mem_size) {
		/* exactly what this run needs the first time; when it grows,
		 * some room for the next larger shapes */
		uint64_t want = gs->mem_size ? align_up(at + at / 8, 1u << 20)
		                             : align_up(at, 1u << 20);
		drop_graphs(gs);
		if (gs->mem) {
			gs->cu->cuStreamSynchronize(gs->stream);
			gs->cu->cuMemFree(gs->mem);
			gs->mem = 0;
			gs->mem_size = 0;
		}
		if ((r = gs->cu->cuMemAlloc(&gs->mem, want)) == CUDA_SUCCESS) {
			gs->mem_size = want;
		} else if ((r = gs->cu->cuMemAlloc(&gs->mem, at)) == CUDA_SUCCESS) {
			gs->mem_size = at;
		} else {
			gs->mem = 0;
			return run_fail(gs, r, "allocating the session's GPU memory");
		}
	}
	gs->flag = gs->mem;
	gs->blas_ws = gs->mem + DEV_ALIGN;
	gs->ptrs = gs->blas_ws + BLAS_WS;
	if (gs->cu->cublasSetWorkspace(gs->blas, (void *)(uintptr_t)gs->blas_ws,
	                               BLAS_WS) != CUBLAS_STATUS_SUCCESS)
		return rt_error(SLAPO_DEVICE, "", "cublasSetWorkspace failed");
	for (int32_t i = 0; i < d->n_inputs; i++)
		gs->in_ptrs[i] = (const void *)(uintptr_t)(gs->mem + gs->in_off[i]);
	for (int32_t j = 0; j < d->n_outputs; j++)
		gs->out_ptrs[j] = gs->out_off[j]
		                          ? (void *)(uintptr_t)(gs->mem + gs->out_off[j])
		                          : rt_tensor_ptr(outputs[j]);
	gs->ws = gs->mem + ws_off;
	return SLAPO_OK;
}

/* Copies the inputs into their staging buffers. */
static SlapoStatus stage_inputs(RtGpuSession *gs, const DLTensor *const *inputs)
{
	const RtModelDesc *d = gs->d;
	CUresult r;
	SlapoStatus st;
	for (int32_t i = 0; i < d->n_inputs; i++) {
		const DLTensor *t = inputs[i];
		size_t bytes = tensor_bytes(t);
		int64_t n = rt_numel(t->ndim, t->shape);
		CUdeviceptr dst = gs->mem + gs->in_off[i];
		const void *src = rt_tensor_ptr(t);
		if (bytes == 0)
			continue;
		if (is_device(t)) {
			if (!rt_tensor_compact(t))
				return rt_error(
				        SLAPO_UNSUPPORTED, d->inputs[i].name,
				        "input '%s' is a strided CUDA tensor; pass it "
				        "contiguous",
				        d->inputs[i].name);
			r = gs->cu->cuMemcpyDtoDAsync(dst, (CUdeviceptr)(uintptr_t)src,
			                              bytes, gs->stream);
		} else {
			if (!rt_tensor_compact(t)) {
				void *h = host_scratch(gs, bytes);
				if (!h)
					return rt_error(SLAPO_OUT_OF_MEMORY,
					                d->inputs[i].name,
					                "out of memory staging '%s'",
					                d->inputs[i].name);
				rt_copy_nd(t->dtype, h, NULL, t->dtype, src, t->strides,
				           t->ndim, t->shape);
				src = h;
			}
			if ((st = rt_check_values(&d->inputs[i], src, n)) != SLAPO_OK)
				return st;
			/* synchronous: src may be the scratch copy reused next */
			r = gs->cu->cuMemcpyHtoDAsync(dst, src, bytes, gs->stream);
			if (r == CUDA_SUCCESS && src == gs->host_stage)
				r = gs->cu->cuStreamSynchronize(gs->stream);
		}
		if (r != CUDA_SUCCESS)
			return run_fail(gs, r, "copying an input to the GPU");
	}
	return SLAPO_OK;
}

/* Copies staged outputs to the caller's tensors; host ones after a sync. */
static SlapoStatus unstage_outputs(RtGpuSession *gs, DLTensor *const *outputs,
                                   int after_sync)
{
	const RtModelDesc *d = gs->d;
	CUresult r = CUDA_SUCCESS;
	for (int32_t j = 0; j < d->n_outputs; j++) {
		const DLTensor *t = outputs[j];
		size_t bytes = tensor_bytes(t);
		CUdeviceptr src = gs->mem + gs->out_off[j];
		if (!gs->out_off[j] || bytes == 0)
			continue;
		if (!after_sync) {
			if (is_device(t))
				r = gs->cu->cuMemcpyDtoDAsync(
				        (CUdeviceptr)(uintptr_t)rt_tensor_ptr(t), src,
				        bytes, gs->stream);
			else if (rt_tensor_compact(t) &&
			         (uintptr_t)rt_tensor_ptr(t) % rt_dtype_size(t->dtype) ==
			                 0)
				r = gs->cu->cuMemcpyDtoHAsync(rt_tensor_ptr(t), src,
				                              bytes, gs->stream);
		} else if (!is_device(t) &&
		           !(rt_tensor_compact(t) &&
		             (uintptr_t)rt_tensor_ptr(t) % rt_dtype_size(t->dtype) ==
		                     0)) {
			void *h = host_scratch(gs, bytes);
			if (!h)
				return rt_error(SLAPO_OUT_OF_MEMORY, d->outputs[j].name,
				                "out of memory staging '%s'",
				                d->outputs[j].name);
			if ((r = gs->cu->cuMemcpyDtoH(h, src, bytes)) == CUDA_SUCCESS)
				rt_copy_nd(t->dtype, rt_tensor_ptr(t), t->strides,
				           t->dtype, h, NULL, t->ndim, t->shape);
		}
		if (r != CUDA_SUCCESS)
			return run_fail(gs, r, "copying an output from the GPU");
	}
	return SLAPO_OK;
}

/* The graph slot for the current key: an existing one, else a new one
 * (evicting the least recently used). */
static Graph *find_graph(RtGpuSession *gs, int *fresh)
{
	const RtModelDesc *d = gs->d;
	int n = d->n_syms + d->n_outputs;
	Graph *lru = &gs->graphs[0];
	*fresh = 0;
	for (int i = 0; i < MAX_GRAPHS; i++) {
		Graph *g = &gs->graphs[i];
		if (!g->key) {
			lru = g;
			break;
		}
		int same = 1;
		for (int k = 0; k < d->n_syms && same; k++)
			same = g->key[k] == gs->sym[k];
		for (int k = 0; k < d->n_outputs && same; k++)
			same = g->key[d->n_syms + k] ==
			       (int64_t)(intptr_t)gs->out_ptrs[k];
		if (same) {
			g->used = ++gs->tick;
			return g;
		}
		if (g->used < lru->used)
			lru = g;
	}
	if (lru->exec)
		gs->cu->cuGraphExecDestroy(lru->exec);
	rt_free(lru->key);
	memset(lru, 0, sizeof *lru);
	lru->key = rt_calloc((size_t)n + 1, sizeof *lru->key);
	if (!lru->key)
		return NULL;
	for (int k = 0; k < d->n_syms; k++)
		lru->key[k] = gs->sym[k];
	for (int k = 0; k < d->n_outputs; k++)
		lru->key[d->n_syms + k] = (int64_t)(intptr_t)gs->out_ptrs[k];
	lru->used = ++gs->tick;
	*fresh = 1;
	return lru;
}

/* forward() on the stream (eagerly, or while capturing). */
static SlapoStatus call_forward(RtGpuSession *gs, GpuExec *gx)
{
	SlapoStatus st;
	atomic_store(&gs->err.taken, 0);
	gs->last_err = 0;
	st = gs->g->forward(&gx->ex);
	if (atomic_load(&gs->err.taken))
		return rt_error_device(gs->err.code, gs->last_err, gs->err.object, "%s",
		                       gs->err.message);
	if (st != SLAPO_OK)
		return rt_error(st, "", "forward of %s on the GPU failed (%s)",
		                gs->d->name, rt_status_name(st));
	return SLAPO_OK;
}

static SlapoStatus run_graph(RtGpuSession *gs, GpuExec *gx)
{
	const RtCuda *cu = gs->cu;
	CUresult r;
	SlapoStatus st;
	int fresh = 0;
	Graph *g = gs->use_graphs && !gx->ex.prof ? find_graph(gs, &fresh) : NULL;
	if (!g || fresh || !g->captured) {
		if (g && !fresh && !g->captured) { /* second time: capture */
			CUgraph graph = NULL;
			if ((r = cu->cuStreamBeginCapture(
			             gs->stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)) !=
			    CUDA_SUCCESS)
				return run_fail(gs, r, "cuStreamBeginCapture");
			gs->capturing = 1;
			r = cu->cuMemsetD32Async(gs->flag, 0, 1, gs->stream);
			st = r == CUDA_SUCCESS ? call_forward(gs, gx) : SLAPO_OK;
			gs->capturing = 0;
			CUresult e = cu->cuStreamEndCapture(gs->stream, &graph);
			if (r != CUDA_SUCCESS) {
				if (graph)
					cu->cuGraphDestroy(graph);
				return run_fail(gs, r, "cuMemsetD32Async");
			}
			if (st != SLAPO_OK) {
				if (graph)
					cu->cuGraphDestroy(graph);
				return st;
			}
			if (e != CUDA_SUCCESS)
				return run_fail(gs, e,
				                "capturing the model into a CUDA graph");
			r = cu->cuGraphInstantiateWithFlags(&g->exec, graph, 0);
			cu->cuGraphDestroy(graph);
			if (r != CUDA_SUCCESS) {
				g->exec = NULL;
				return run_fail(gs, r, "cuGraphInstantiate");
			}
			g->captured = 1;
		} else { /* first time (or graphs off): eagerly */
			if ((r = cu->cuMemsetD32Async(gs->flag, 0, 1, gs->stream)) !=
			    CUDA_SUCCESS)
				return run_fail(gs, r, "cuMemsetD32Async");
			return call_forward(gs, gx);
		}
	}
	if ((r = cu->cuGraphLaunch(g->exec, gs->stream)) != CUDA_SUCCESS)
		return run_fail(gs, r, "cuGraphLaunch");
	return SLAPO_OK;
}

/* ---- profiles -------------------------------------------------------------- */

/* rt_prof_step on a GPU: a CUDA event on the stream marks the step. */
static void prof_mark(RtExec *ex, int32_t step)
{
	RtGpuSession *gs = session_of(ex);
	if (rt_failed(ex))
		return;
	if (rt_gpu_check_enqueue(ex, gs, gs->cu->cuEventRecord(gs->ev[step], gs->stream),
	                         "profiling event of step",
	                         step < ex->prof->t.n ? ex->prof->t.steps[step].name
	                                              : "(end)"))
		ex->prof->mark[step] = 0; /* recorded; its time comes after the run */
}

/* The events of a profiled run: one per step mark, made once. */
static SlapoStatus prof_events(RtGpuSession *gs, RtProf *p)
{
	CUresult r;
	if (gs->n_ev >= p->t.n + 1)
		return SLAPO_OK;
	CUevent *ev = rt_realloc(gs->ev, ((size_t)p->t.n + 1) * sizeof *ev);
	if (!ev)
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	gs->ev = ev;
	for (; gs->n_ev < p->t.n + 1; gs->n_ev++)
		if ((r = gs->cu->cuEventCreate(&gs->ev[gs->n_ev], CU_EVENT_DEFAULT)) !=
		    CUDA_SUCCESS)
			return run_fail(gs, r, "cuEventCreate (profiling)");
	return SLAPO_OK;
}

/* After the run has finished on the stream: each recorded event's time
 * from the first, as marks on the host clock from the run's start. */
static SlapoStatus prof_times(RtGpuSession *gs, RtProf *p)
{
	int32_t first = -1;
	CUresult r;
	for (int32_t i = 0; i <= p->t.n; i++) {
		float ms = 0;
		if (p->mark[i] < 0)
			continue;
		if (first < 0)
			first = i;
		else if ((r = gs->cu->cuEventElapsedTime(&ms, gs->ev[first],
		                                         gs->ev[i])) != CUDA_SUCCESS)
			return run_fail(gs, r, "cuEventElapsedTime (profiling)");
		p->mark[i] = p->run_ns + (int64_t)((double)ms * 1e6);
	}
	return SLAPO_OK;
}

static SlapoStatus run(RtGpuSession *gs, RtProf *prof, const DLTensor *const *inputs,
                       int32_t n_inputs, DLTensor *const *outputs, int32_t n_outputs)
{
	const SlapoModel *m = gs->w->model;
	const RtModelDesc *d = gs->d;
	const RtCuda *cu = gs->cu;
	int32_t dev = gs->gw->ordinal, word = 0;
	GpuExec gx;
	SlapoStatus st;
	CUresult r;
	uint64_t ws;
	if ((st = rt_bind_inputs(m, inputs, n_inputs, 1, gs->sym)) != SLAPO_OK)
		return st;
	for (int32_t i = 0; i < n_inputs; i++)
		if ((st = rt_check_tensor_device("input", d->inputs[i].name, inputs[i],
		                                 dev)) != SLAPO_OK)
			return st;
	if ((st = rt_check_outputs(m, gs->sym, outputs, n_outputs, dev, gs->shape)) !=
	    SLAPO_OK)
		return st;
	for (int32_t j = 0; j < n_outputs; j++)
		if (is_device(outputs[j]) && !rt_tensor_compact(outputs[j]))
			return rt_error(
			        SLAPO_UNSUPPORTED, d->outputs[j].name,
			        "output '%s' is a strided CUDA tensor; pass it contiguous",
			        d->outputs[j].name);
	ws = gs->g->workspace_size(gs->sym);
	if (ws == UINT64_MAX || ws > ((uint64_t)1 << 46))
		return rt_error(SLAPO_OUT_OF_MEMORY, "workspace",
		                "the GPU workspace for these shapes is too large");
	if ((st = size_memory(gs, inputs, outputs, ws)) != SLAPO_OK)
		return st;
	if ((st = stage_inputs(gs, inputs)) != SLAPO_OK)
		goto sync_out;
	memset(&gx, 0, sizeof gx);
	gx.ex.desc = d;
	gx.ex.sym = gs->sym;
	gx.ex.inputs = gs->in_ptrs;
	gx.ex.outputs = gs->out_ptrs;
	gx.ex.params = (const void *const *)gs->param_ptrs;
	gx.ex.workspace = ws ? (void *)(uintptr_t)gs->ws : NULL;
	gx.ex.workspace_size = ws;
	gx.ex.n_threads = 1;
	gx.ex.err = &gs->err;
	gx.gs = gs;
	if (prof) {
		if ((st = prof_events(gs, prof)) != SLAPO_OK)
			goto sync_out;
		prof->mark_fn = prof_mark;
		rt_prof_begin_run(prof, gs->sym);
		gx.ex.prof = prof;
	}
	if ((st = run_graph(gs, &gx)) != SLAPO_OK)
		goto sync_out;
	if ((st = unstage_outputs(gs, outputs, 0)) != SLAPO_OK)
		goto sync_out;
	if ((r = cu->cuMemcpyDtoHAsync(&word, gs->flag, sizeof word, gs->stream)) !=
	    CUDA_SUCCESS)
		return run_fail(gs, r, "reading the error word");
	if ((r = cu->cuStreamSynchronize(gs->stream)) != CUDA_SUCCESS)
		return run_fail(gs, r, "running the model on the GPU");
	if ((st = unstage_outputs(gs, outputs, 1)) != SLAPO_OK)
		return st;
	if (word != 0) {
		const char *obj = word > 0 && word <= gs->g->n_objects
		                          ? gs->g->objects[word - 1]
		                          : "?";
		return rt_error(
		        SLAPO_INVALID_ARGUMENT, obj,
		        "input '%s' holds a value outside the range of the embedding "
		        "table it indexes",
		        obj);
	}
	if (prof) {
		if ((st = prof_times(gs, prof)) != SLAPO_OK)
			return st;
		rt_prof_end_run(prof);
	}
	return SLAPO_OK;
sync_out:
	/* leave no work of a failed run queued */
	if (!gs->poisoned && (r = cu->cuStreamSynchronize(gs->stream)) != CUDA_SUCCESS)
		return run_fail(gs, r, "running the model on the GPU");
	if (gs->poisoned && st != SLAPO_DEVICE_LOST)
		return rt_error_device(SLAPO_DEVICE_LOST, gs->lost_err, "", "%s",
		                       gs->lost_msg);
	return st;
}

SlapoStatus rt_gpu_session_run(RtGpuSession *gs, RtProf *prof,
                               const DLTensor *const *inputs, int32_t n_inputs,
                               DLTensor *const *outputs, int32_t n_outputs)
{
	CUcontext prev;
	CUresult r;
	SlapoStatus st;
	if (gs->poisoned)
		return rt_error_device(
		        SLAPO_DEVICE_LOST, gs->lost_err, "",
		        "the session is unusable after an earlier CUDA error (%s); "
		        "free it and its weights",
		        gs->lost_msg);
	if ((r = gs->cu->cuCtxPushCurrent(gs->gw->ctx)) != CUDA_SUCCESS)
		return run_fail(gs, r, "cuCtxPushCurrent");
	st = run(gs, prof, inputs, n_inputs, outputs, n_outputs);
	gs->cu->cuCtxPopCurrent(&prev);
	return st;
}
