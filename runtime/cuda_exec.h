/* cuda_exec.h - what the CUDA backend's two files share (cuda_exec.c:
 * weights, sessions, launches, runs; cuda_gemm.c: matrix products through
 * cuBLASLt and cuBLAS): the session, the RtExec that forward() receives
 * with the session beside it, and the check after every enqueue.
 */
#ifndef SLAPO_CUDA_EXEC_H
#define SLAPO_CUDA_EXEC_H

#include "cuda_api.h"
#include "rt.h"

#define BLAS_WS    (32u << 20) /* cuBLAS / cuBLASLt workspace */
#define MAX_PTRS   16384       /* matrices of one pointer-array GEMM */
#define PTRS_BYTES (3u * MAX_PTRS * 8u)
#define MAX_GRAPHS 8
#define MAX_TUNED  128 /* GEMM shapes whose cuBLASLt algorithm a session keeps */

/* A cuBLASLt GEMM as its algorithm depends on it, and the algorithm
 * chosen for it (cuda_gemm.c, lt_algo). */
typedef struct LtKey {
	int64_t m, n, k, batch, lda, ldb, ldc, sa, sb, sc;
	int32_t ta, tb, at, bt, ct, epilogue, compute, beta0;
	uint32_t align[4];
} LtKey;
typedef struct LtTuned {
	LtKey key;
	RtLtHeuristic h;
} LtTuned;

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
	int64_t split_rows; /* gemm_split's least rows a class */
	int no_lt;          /* every GEMM on cuBLAS (the fallback path) */
	/* SLAPO_GEMM_TUNE: time cuBLASLt's answers: 0 never, 1 for
	 * compute-bound GEMMs (default), 2 for all */
	int tune;
	LtTuned *tuned; /* [n_tuned] the algorithms chosen so far */
	int32_t n_tuned;
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

static inline RtGpuSession *session_of(RtExec *ex)
{
	return ((GpuExec *)ex)->gs;
}

/* After an enqueue on the session's stream: 1, or 0 with the run failed
 * through rt_fail (r, or with SLAPO_CUDA_SYNC the kernel's own error, named
 * by what and name; a sticky one poisons the session). */
int rt_gpu_check_enqueue(RtExec *ex, RtGpuSession *gs, CUresult r, const char *what,
                         const char *name);

#endif
