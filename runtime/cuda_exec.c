/* cuda_exec.c - models on an NVIDIA GPU: the device copy of the weights,
 * sessions (a stream, the PTX module, cuBLAS and cuBLASLt handles, one
 * device allocation for the memory plan), session_run with CUDA graphs,
 * and the services generated GPU code calls (rt_gpu_launch, rt_gpu_gemm,
 * rt_gpu_error_word).
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
 * GELU epilogues by our kernels); SLAPO_CUDA_SM90A=0 leaves the
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

#include "cuda_api.h"
#include "rt.h"

#define DEV_ALIGN  256u
#define BLAS_WS    (32u << 20) /* cuBLAS / cuBLASLt workspace */
#define MAX_PTRS   16384       /* matrices of one pointer-array GEMM */
#define PTRS_BYTES (3u * MAX_PTRS * 8u)
#define MAX_GRAPHS 8
#define MAX_ARGS   160

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

typedef struct Graph {
	int64_t *key; /* [n_syms + n_outputs]: symbols, then output pointers */
	CUgraphExec exec;
	int captured; /* 0: seen once (ran eagerly), 1: exec is the graph */
	uint64_t used;
} Graph;

struct RtGpuSession {
	const RtCuda *cu;
	SlapoWeights *w;
	RtGpuWeights *gw;
	const RtModelDesc *d;
	const RtGpuDesc *g;
	CUstream stream;
	int own_stream;
	CUmodule mod;
	CUmodule mod90;        /* the sm_90a module, or NULL */
	CUfunction *fn;        /* [n_kernels]; NULL: an sm_90a kernel not loaded */
	int *max_threads;      /* [n_kernels] most threads a block of it can have
	                     * (registers permitting), a multiple of 32 */
	CUfunction bias_fn[3]; /* slapo_util_bias_{f32,bf16,f16} */
	CUfunction gelu_fn[3]; /* slapo_util_gelu_{f32,bf16,f16} */
	CUfunction ptrs_fn;    /* slapo_util_ptrs */
	cublasHandle_t blas;
	cublasLtHandle_t lt;
	CUdeviceptr mem; /* the session's device memory */
	uint64_t mem_size;
	CUdeviceptr flag, blas_ws, ptrs, ws; /* parts of mem for this run */
	void **param_ptrs;                   /* [n_params] device addresses */
	const void **in_ptrs;                /* [n_inputs] what forward reads (device) */
	void **out_ptrs;            /* [n_outputs] what forward writes (device) */
	uint64_t *in_off, *out_off; /* [n] staging offsets in mem (0: none) */
	int64_t *sym;               /* [n_syms] */
	int64_t *shape;             /* [RT_MAX_NDIM] scratch */
	void *host_stage;           /* host copies of strided inputs/outputs */
	size_t host_cap;
	Graph graphs[MAX_GRAPHS];
	uint64_t tick;
	int use_graphs, sync_each, fault_armed, capturing;
	int64_t split_rows;     /* gemm_split's least rows a class */
	int no_lt;              /* every GEMM on cuBLAS (the fallback path) */
	int64_t att_small_grid; /* SLAPO_ATT_SMALL_GRID, or -1 */
	int64_t sm90a;          /* SLAPO_CUDA_SM90A: 0 never, 1 required, -1 auto */
	CUevent *ev; /* [n_ev] profiling: one per step mark, made when needed */
	int32_t n_ev;
	int poisoned; /* a sticky error happened: every run fails */
	CUresult lost_err;
	char lost_msg[RT_MSG_MAX];
	CUresult last_err; /* of the failing service call */
	RtErrorSlot err;
};

/* RtExec as forward() sees it, with the session next to it. */
typedef struct GpuExec {
	RtExec ex;
	RtGpuSession *gs;
} GpuExec;

static RtGpuSession *session_of(RtExec *ex)
{
	return ((GpuExec *)ex)->gs;
}

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
	if (gs->gw->cc_major != 9 || gs->gw->cc_minor != 0)
		st = rt_error(SLAPO_DEVICE, "",
		              "SLAPO_CUDA_SM90A=1, but %s has compute capability %d.%d, "
		              "not 9.0",
		              gs->gw->name, gs->gw->cc_major, gs->gw->cc_minor);
	else if ((st = jit(gs, &gs->mod90, g->ptx_sm90a, "sm_90a")) == SLAPO_OK &&
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
static int check_enqueue(RtExec *ex, RtGpuSession *gs, CUresult r, const char *what,
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
	check_enqueue(ex, gs, r, "kernel", gs->g->kernel_names[kernel]);
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
		gs->last_err = b;
		rt_fail(ex, SLAPO_DEVICE, NULL,
		        "cublasLtMatmul (%lld x %lld x %lld, batch %lld): %s",
		        (long long)q->m, (long long)q->n, (long long)q->k,
		        (long long)q->batch, cu->cublasGetStatusName(b));
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
	if (!check_enqueue(ex, gs, r, "kernel", "slapo_util_ptrs"))
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
	check_enqueue(ex, gs, CUDA_SUCCESS, "GEMM", "");
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
				if (!check_enqueue(ex, gs,
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
		if (!check_enqueue(ex, gs, r, "kernel", name))
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
				check_enqueue(ex, gs, CUDA_SUCCESS, "GEMM", "");
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
		gs->last_err = b;
		rt_fail(ex, SLAPO_DEVICE, NULL,
		        "cublasGemmStridedBatchedEx (%lld x %lld x %lld, batch %lld): %s",
		        (long long)q->m, (long long)q->n, (long long)q->k,
		        (long long)q->batch, cu->cublasGetStatusName(b));
		return;
	}
	if (!check_enqueue(ex, gs, CUDA_SUCCESS, "GEMM", ""))
		return;
	if (q->epilogue == RT_EPI_GELU_BIAS)
		util_rows(ex, gs, gs->gelu_fn[q->c_type], "slapo_util_gelu", q, ldc,
		          NULL);
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
	if (check_enqueue(ex, gs, gs->cu->cuEventRecord(gs->ev[step], gs->stream),
	                  "profiling event of step",
	                  step < ex->prof->t.n ? ex->prof->t.steps[step].name : "(end)"))
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
