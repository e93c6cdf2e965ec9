/* rt.h - libslapo_rt: the contract with generated code, and the
 * runtime's internals, sectioned by source file.
 *
 * A model library made by slapoc is the generated object(s) plus
 * libslapo_rt.a. The generated code defines one hidden constant,
 *
 *     const RtModelDesc slapo_model_desc = { RT_DESC_VERSION, ... };
 *
 * describing the model (names, dtypes, symbolic shapes, parameter ties,
 * the workspace size function and the forward function). The runtime
 * implements the public API (include/slapo/slapo.h) on top of it:
 * checking inputs, binding symbolic dims, loading weights, owning the
 * workspace and thread pool, and calling forward() with an RtExec that
 * holds every pointer the generated code needs. Generated code calls
 * back only the services of the "services" section (rt_parallel_for,
 * rt_sgemm, rt_sgemm_bias, rt_sgemm_batched, rt_attention, rt_fail,
 * rt_failed, rt_prof_step).
 *
 * runtime/README.md explains the contract in prose; this header is the
 * reference. Everything declared here has hidden visibility: the only
 * symbol a model library exports is slapo_get_api.
 */
#ifndef SLAPO_RT_H
#define SLAPO_RT_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "slapo/slapo.h"

#ifndef SLAPO_RT_VERSION /* set by the build */
#define SLAPO_RT_VERSION "unknown"
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#define RT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RT_PRINTF(f, a)
#endif

/* ======================================================================
 * 1. The model descriptor (defined by generated code)
 * ====================================================================== */

/* Bumped when RtModelDesc, RtTensorDesc, RtExec or the services change;
 * model_open fails with SLAPO_ABI_MISMATCH on a version it cannot read.
 * Version 3 appended the step table (n_steps, steps, step_costs); the
 * runtime still reads version 2 descriptors (no step table: no
 * profiles). */
#define RT_DESC_VERSION     3u
#define RT_DESC_VERSION_MIN 2u

#define RT_MAX_NDIM 16 /* most dims a tensor may have */
#define RT_ALIGN    64 /* alignment of params and workspace, in bytes */

/* A dim is a constant (>= 0) or a symbol: RT_SYM(k) names symbol k of
 * RtModelDesc.syms. Parameters never have symbolic dims. */
#define RT_SYM(k)        (-1 - (int64_t)(k))
#define RT_DIM_IS_SYM(d) ((d) < 0)
#define RT_DIM_SYM(d)    ((int32_t)(-1 - (d)))

/* A symbolic dim, e.g. {"B", 1, -1} or {"S", 1, 512}. */
typedef struct RtSymDesc {
	const char *name;
	int64_t min; /* smallest value accepted, >= 0 */
	int64_t max; /* largest value accepted, or -1 for no bound */
} RtSymDesc;

/* How weights_init_random fills a parameter. */
enum {
	RT_INIT_NORMAL = 0, /* normal(0, init_std); init_std 0 means 0.02 */
	RT_INIT_ZEROS = 1,
	RT_INIT_ONES = 2
};

/* An input, output or parameter. Unused fields are 0. */
typedef struct RtTensorDesc {
	const char *name;    /* PyTorch/HF name */
	DLDataType dtype;    /* params: the compiled dtype (f32 for now) */
	int32_t ndim;        /* 0 .. RT_MAX_NDIM */
	const int64_t *dims; /* [ndim]: constants or RT_SYM(k) */
	/* Integer inputs: values must be in [0, value_max); the runtime
	 * checks it before forward. 0 = no check. */
	int64_t value_max;
	int32_t fill;   /* inputs: SLAPO_FILL_* (a hint for callers) */
	int32_t init;   /* params: RT_INIT_* */
	float init_std; /* params with RT_INIT_NORMAL */
} RtTensorDesc;

/* param shares tied_to's storage (HF tie_weights). Both are in params[]
 * with equal dtype and shape; tied_to is not itself tied. */
typedef struct RtTie {
	const char *param;   /* e.g. "cls.predictions.decoder.weight" */
	const char *tied_to; /* e.g. "bert.embeddings.word_embeddings.weight" */
} RtTie;

/* One step of forward(): a kernel launch or a library call, in program
 * order, as profiles report it. forward() marks the start of step i with
 * rt_prof_step(ex, i) (section 3). */
typedef struct RtStepDesc {
	const char *name;   /* unique in the table: the kernel's name as slapoc
	                     * --explain shows it ("linear_3", "FusedBiasGeLU_0";
	                     * "linear_3.bias" for a linear's bias pass) */
	const char *kind;   /* "gemm", "map", "softmax", "layer_norm", "reduce",
	                     * "gather" */
	const char *source; /* "FILE.slapo:LINE" that made it, or NULL */
	const char *module; /* module path ("bert.encoder.layer.0.attention.self");
	                     * "" for the root, NULL if unknown */
} RtStepDesc;

/* FLOPs and bytes moved by each step for these symbol values: out[2 i]
 * and out[2 i + 1] for step i (estimates, as slapoc --explain counts). */
typedef void (*RtStepCostFn)(const int64_t *sym, double *out);

typedef struct RtExec RtExec;
typedef struct RtGpuDesc RtGpuDesc;

typedef struct RtModelDesc {
	uint32_t version;           /* RT_DESC_VERSION */
	uint32_t devices;           /* SLAPO_DEVICE_BIT_* it has code for */
	const char *name;           /* e.g. "BertLMHeadModel" */
	const char *slapoc_version; /* compiler version, e.g. "0.1.0" */
	int32_t n_syms;
	const RtSymDesc *syms; /* [n_syms] */
	int32_t n_inputs;
	const RtTensorDesc *inputs; /* [n_inputs] */
	int32_t n_outputs;
	/* [n_outputs]; every symbol they use is used by some input */
	const RtTensorDesc *outputs;
	int32_t n_params;
	const RtTensorDesc *params; /* [n_params], tied aliases included */
	int32_t n_ties;
	const RtTie *ties; /* [n_ties] */
	int32_t n_ignore;
	/* [n_ignore]: checkpoint tensors under these prefixes are expected
	 * extras (e.g. "bert.pooler."), ignored quietly. A '*' matches one
	 * dot-free name segment ("transformer.h.*.attn.bias"). */
	const char *const *ignore_prefixes;
	/* HF base_model_prefix ("bert") or NULL: a checkpoint name X that
	 * matches nothing is retried as "bert.X", and "bert.X" as X, as HF
	 * does. */
	const char *base_prefix;
	/* Bytes of scratch forward() needs for these symbol values; returns
	 * UINT64_MAX when the size overflows. */
	uint64_t (*workspace_size)(const int64_t *sym);
	/* Runs the model. Returns SLAPO_OK, or the status given to rt_fail. */
	SlapoStatus (*forward)(RtExec *ex);
	/* version 2: the CUDA code (devices has SLAPO_DEVICE_BIT_CUDA), or
	 * NULL for a CPU-only library */
	const RtGpuDesc *gpu;
	/* version 3: the steps of forward() (n_steps may be 0: no profiles),
	 * and their costs (or NULL) */
	int32_t n_steps;
	const RtStepDesc *steps; /* [n_steps] */
	RtStepCostFn step_costs;
} RtModelDesc;

/* ---- 1b. The CUDA part of the descriptor ----------------------------- */

/* Numeric precision the GPU code was compiled for (slapoc --precision). */
enum {
	RT_PREC_FP32 = 0, /* f32 storage, f32 GEMMs */
	RT_PREC_TF32 = 1, /* f32 storage, GEMMs on tensor cores in TF32 */
	RT_PREC_BF16 = 2, /* bf16 weights and activations, f32 arithmetic */
	RT_PREC_FP16 = 3  /* f16 likewise */
};

/* What a model library needs on a GPU. Kernels are PTX text made by
 * LLVM's NVPTX backend; forward() runs on the host and enqueues kernel
 * launches (rt_gpu_launch) and matrix products (rt_gpu_gemm) on the
 * session's stream, which the runtime captures into a CUDA graph once
 * per shape and replays. RtExec pointers (inputs, outputs, params,
 * workspace) are device pointers; sym is in host memory. */
struct RtGpuDesc {
	uint32_t version;   /* RT_GPU_VERSION */
	uint32_t precision; /* RT_PREC_* */
	const char *ptx;    /* NUL-terminated PTX module */
	const char *target; /* "sm_80": the oldest GPU it runs on */
	int32_t n_kernels;
	int32_t n_objects;
	const char *const *kernel_names; /* [n_kernels] .entry names in ptx */
	/* [n_objects] input names a gather reports on a bad index: a kernel
	 * that finds one stores 1 + its object index in the error word */
	const char *const *objects;
	/* [n_params] storage type of each parameter on the device (f32,
	 * bf16, f16; the host copy is f32) and its byte offset in the
	 * device block (a tied alias: its target's) */
	const DLDataType *param_dtypes;
	const uint64_t *param_offsets;
	uint64_t params_size; /* bytes of the device parameter block */
	/* device workspace bytes for these symbol values (UINT64_MAX:
	 * overflow) */
	uint64_t (*workspace_size)(const int64_t *sym);
	/* enqueues the model on the session's stream */
	SlapoStatus (*forward)(RtExec *ex);
	/* version 2: the steps of forward() (GPU steps differ from the CPU's:
	 * bias epilogues, operand conversions), and their costs (or NULL) */
	int32_t n_steps;
	const RtStepDesc *steps; /* [n_steps] */
	RtStepCostFn step_costs;
	/* version 3: kernels for Hopper (compute capability 9.0) alone, in a
	 * module of their own (PTX ISA 8.0, target sm_90a: wgmma): the last
	 * n_kernels_sm90a of kernel_names, found in ptx_sm90a ("" if none).
	 * The runtime loads it on such a GPU only; forward() asks
	 * rt_gpu_has_kernel before launching one. */
	const char *ptx_sm90a;
	int32_t n_kernels_sm90a;
	int32_t reserved1;
};

/* Version 2 appended the step table, version 3 the sm_90a module;
 * versions 1 and 2 are still read. */
#define RT_GPU_VERSION     3u
#define RT_GPU_VERSION_MIN 1u

/* Defined by the generated code (hidden); used only by api.c. */
extern const RtModelDesc slapo_model_desc;

/* ======================================================================
 * 2. RtExec: what forward() receives (filled by the runtime)
 * ====================================================================== */

typedef struct RtPool RtPool;
typedef struct RtPacks RtPacks;
typedef struct RtErrorSlot RtErrorSlot;
typedef struct RtProf RtProf;

struct RtExec {
	const RtModelDesc *desc;
	const int64_t *sym; /* [n_syms] values bound from the inputs */
	/* [n_inputs] compact row-major data, aligned to the element size */
	const void *const *inputs;
	void *const *outputs; /* [n_outputs] likewise, to be written */
	/* [n_params] compact, RT_ALIGN-aligned; a tied alias points at its
	 * target */
	const void *const *params;
	/* workspace_size(sym) bytes, RT_ALIGN-aligned, uninitialised; NULL
	 * if 0 */
	void *workspace;
	uint64_t workspace_size;
	int32_t n_threads; /* threads rt_parallel_for may use */
	int32_t reserved0;
	RtPool *pool;      /* the session's pool (opaque) */
	RtErrorSlot *err;  /* the session's error slot (opaque) */
	/* non-NULL while the session profiles (opaque): forward() then
	 * calls rt_prof_step at every step; NULL costs one test per step */
	RtProf *prof;
	/* the weights' packed GEMM operands (gemm.c), or NULL; generated
	 * code passes ex on and never reads it */
	RtPacks *packs;
	void *reserved[2]; /* zero */
};

/* The layouts above are what LLVM-generated code builds and reads; on
 * LP64 targets (x86-64, aarch64) they are the natural C layouts, fixed
 * here so a change cannot slip by (runtime/README.md has the table). */
#if defined(__LP64__) || defined(_LP64)
_Static_assert(sizeof(RtSymDesc) == 24, "RtSymDesc");
_Static_assert(offsetof(RtTensorDesc, dtype) == 8 && offsetof(RtTensorDesc, ndim) == 12 &&
                       offsetof(RtTensorDesc, dims) == 16 &&
                       offsetof(RtTensorDesc, value_max) == 24 &&
                       offsetof(RtTensorDesc, fill) == 32 &&
                       offsetof(RtTensorDesc, init) == 36 &&
                       offsetof(RtTensorDesc, init_std) == 40 &&
                       sizeof(RtTensorDesc) == 48,
               "RtTensorDesc");
_Static_assert(sizeof(RtTie) == 16, "RtTie");
_Static_assert(offsetof(RtStepDesc, kind) == 8 && offsetof(RtStepDesc, source) == 16 &&
                       offsetof(RtStepDesc, module) == 24 && sizeof(RtStepDesc) == 32,
               "RtStepDesc");
_Static_assert(offsetof(RtGpuDesc, ptx) == 8 && offsetof(RtGpuDesc, n_kernels) == 24 &&
                       offsetof(RtGpuDesc, kernel_names) == 32 &&
                       offsetof(RtGpuDesc, objects) == 40 &&
                       offsetof(RtGpuDesc, param_dtypes) == 48 &&
                       offsetof(RtGpuDesc, param_offsets) == 56 &&
                       offsetof(RtGpuDesc, params_size) == 64 &&
                       offsetof(RtGpuDesc, workspace_size) == 72 &&
                       offsetof(RtGpuDesc, forward) == 80 &&
                       offsetof(RtGpuDesc, n_steps) == 88 &&
                       offsetof(RtGpuDesc, steps) == 96 &&
                       offsetof(RtGpuDesc, step_costs) == 104 &&
                       offsetof(RtGpuDesc, ptx_sm90a) == 112 &&
                       offsetof(RtGpuDesc, n_kernels_sm90a) == 120 &&
                       sizeof(RtGpuDesc) == 128,
               "RtGpuDesc");
_Static_assert(offsetof(RtModelDesc, name) == 8 && offsetof(RtModelDesc, n_syms) == 24 &&
                       offsetof(RtModelDesc, syms) == 32 &&
                       offsetof(RtModelDesc, inputs) == 48 &&
                       offsetof(RtModelDesc, outputs) == 64 &&
                       offsetof(RtModelDesc, params) == 80 &&
                       offsetof(RtModelDesc, ties) == 96 &&
                       offsetof(RtModelDesc, ignore_prefixes) == 112 &&
                       offsetof(RtModelDesc, base_prefix) == 120 &&
                       offsetof(RtModelDesc, workspace_size) == 128 &&
                       offsetof(RtModelDesc, forward) == 136 &&
                       offsetof(RtModelDesc, gpu) == 144 &&
                       offsetof(RtModelDesc, n_steps) == 152 &&
                       offsetof(RtModelDesc, steps) == 160 &&
                       offsetof(RtModelDesc, step_costs) == 168 &&
                       sizeof(RtModelDesc) == 176,
               "RtModelDesc");
_Static_assert(offsetof(RtExec, sym) == 8 && offsetof(RtExec, inputs) == 16 &&
                       offsetof(RtExec, outputs) == 24 &&
                       offsetof(RtExec, params) == 32 &&
                       offsetof(RtExec, workspace) == 40 &&
                       offsetof(RtExec, workspace_size) == 48 &&
                       offsetof(RtExec, n_threads) == 56 &&
                       offsetof(RtExec, pool) == 64 && offsetof(RtExec, err) == 72 &&
                       offsetof(RtExec, prof) == 80 && sizeof(RtExec) == 112,
               "RtExec");
#endif

/* ======================================================================
 * 3. Services for generated code (pool.c, blas.c, attention.c, err.c)
 * ====================================================================== */

/* A loop body over [begin, end) of some 0 .. n range. */
typedef void (*RtRangeFn)(void *ctx, int64_t begin, int64_t end);

/* Runs fn over [0, n) split into at most ex->n_threads contiguous chunks
 * of at least grain iterations (grain <= 0 means 1), on the session's
 * pool, the calling thread taking part; returns when all are done. The
 * split depends only on n, grain and n_threads, so results are
 * reproducible. Called from inside a chunk, it runs serially. */
void rt_parallel_for(RtExec *ex, int64_t n, int64_t grain, RtRangeFn fn, void *ctx);

/* Row-major C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, where
 * op(X) is X, or X transposed when trans_x != 0 (then A is stored [k,m],
 * B [n,k]). lda/ldb/ldc are row strides in elements. A Linear layer
 * y = x W^T + b is rt_sgemm(ex, 0, 1, rows, out, in, 1, x, in, W, in,
 * 0, y, out) and a bias add. Fails through rt_fail on dims beyond the
 * BLAS's int range. */
void rt_sgemm(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
              int64_t k, float alpha, const float *a, int64_t lda, const float *b,
              int64_t ldb, float beta, float *c, int64_t ldc);

/* C = alpha * op(A) op(B) + bias, bias a row of n floats added to every
 * row of C: a Linear layer with its bias in one call. */
void rt_sgemm_bias(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
                   int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                   int64_t ldb, const float *bias, float *c, int64_t ldc);

/* batch independent sgemms; matrix i uses a + i*stride_a, b + i*stride_b,
 * c + i*stride_c (strides in elements). */
void rt_sgemm_batched(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
                      int64_t k, float alpha, const float *a, int64_t lda,
                      int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b,
                      float beta, float *c, int64_t ldc, int64_t stride_c, int64_t batch);

/* The model's softmax over rows [begin, end) of its index space, its
 * input (the scores) and its output both at rows + (r - begin) * n, in
 * place: one attention unit's rows in a scratch. */
typedef void (*RtRowsFn)(void *ctx, int64_t begin, int64_t end, float *rows);

/* Attention on the CPU (attention.c): for each unit u (an index into the
 * batch dims bdim[0..nbatch), the last the fastest), with X_u = x +
 * sum_i u_i * sx[i], into a thread's scratch S of [m, n] floats:
 *
 *   S = Q_u K_u^T
 *   softmax(ctx, u * m, (u + 1) * m, S)   the model's softmax kernel over
 *                                          the unit's rows, in place
 *   O_u = S V_u
 *
 * Q_u is [m, d] (row stride ldq), K_u [n, d], V_u [n, d], O_u [m, d]. A
 * thread takes whole units; the scores never reach memory beyond its
 * caches. Every field is 8 bytes (generated code fills it as an array);
 * layout checked below. */
enum { RT_ATT_DIMS = 4 };
typedef struct RtAttention {
	int64_t nbatch;
	int64_t bdim[RT_ATT_DIMS];
	int64_t m, n, d;
	int64_t ldq, ldk, ldv, ldo;
	int64_t sq[RT_ATT_DIMS], sk[RT_ATT_DIMS], sv[RT_ATT_DIMS], so[RT_ATT_DIMS];
	const float *q, *k, *v;
	float *o;
	RtRowsFn softmax;
	void *ctx;
} RtAttention;

#if defined(__LP64__) || defined(_LP64)
_Static_assert(offsetof(RtAttention, m) == 40 && offsetof(RtAttention, sq) == 96 &&
                       offsetof(RtAttention, q) == 224 && offsetof(RtAttention, ctx) == 264 &&
                       sizeof(RtAttention) == 272,
               "RtAttention");
#endif

void rt_attention(RtExec *ex, const RtAttention *at);

/* Profiling (only when ex->prof != NULL): step `step` of the descriptor's
 * (or, on a GPU, the GPU part's) step table starts now; step == n_steps
 * marks the end of the last one. forward() calls it once per step, in
 * order, before anything the step does; a step's time runs to the next
 * mark (on the CPU, its rt_parallel_for or GEMM whole; on a GPU, the work
 * it enqueued, timed with CUDA events). */
void rt_prof_step(RtExec *ex, int32_t step);

/* Records an error for this run (the first one wins; callable from any
 * chunk of rt_parallel_for) and returns code, so forward() can
 * `return rt_fail(...)`. object is the input/param at fault or NULL. */
SlapoStatus rt_fail(RtExec *ex, SlapoStatus code, const char *object, const char *fmt,
                    ...) RT_PRINTF(4, 5);
/* Nonzero once rt_fail was called in this run: long loops may stop. */
int32_t rt_failed(const RtExec *ex);

/* ---- 3b. Services for generated GPU code (cuda_exec.c, cuda_gemm.c) ---- */

/* Element types of GEMM operands on the GPU. */
enum { RT_GPU_F32 = 0, RT_GPU_BF16 = 1, RT_GPU_F16 = 2 };
/* What a GEMM does to its product as it stores it (cuBLASLt epilogues):
 * adds the bias; or adds the bias and applies GELU in its tanh form,
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as cuBLASLt's
 * GELU epilogue and the fallback kernel slapo_util_gelu_* compute it. */
enum {
	RT_EPI_NONE = 0,
	RT_EPI_BIAS = 1,
	RT_EPI_GELU_BIAS = 2
};

/* One row-major, strided-batched matrix product on the session's stream:
 * for i < batch, C_i = alpha op(A_i) op(B_i) + beta R_i (+ bias[col]),
 * X_i = x + i * stride_x elements, R = r (a residual laid out as C, with
 * C's strides) when given, else C itself. Every field is 8 bytes, so generated
 * code fills it as an array; layout checked below. */
typedef struct RtGemm {
	int64_t ta, tb;      /* op(X) = X^T when nonzero (as rt_sgemm) */
	int64_t m, n, k;
	int64_t lda, ldb, ldc; /* row strides in elements (raised to their
	                        * minimum by the runtime when a dim is 1) */
	int64_t stride_a, stride_b, stride_c, batch;
	int64_t a_type, b_type, c_type; /* RT_GPU_*; a_type == b_type */
	int64_t epilogue;    /* RT_EPI_*: bias has n elements of c_type */
	double alpha, beta;
	const void *a, *b;
	void *c;
	const void *bias;
	/* an outer batch dim: matrix (j, i) at x + j * stride2_x + i * stride_x
	 * for j < batch2 (attention's batch over heads and sequences, whose
	 * strides do not collapse into one); 1 = none */
	int64_t batch2, stride2_a, stride2_b, stride2_c;
	const void *r; /* C's input when not C (beta then 1), or NULL */
} RtGemm;

#if defined(__LP64__) || defined(_LP64)
_Static_assert(offsetof(RtGemm, alpha) == 128 && offsetof(RtGemm, a) == 144 &&
                       offsetof(RtGemm, bias) == 168 && offsetof(RtGemm, batch2) == 176 &&
                       offsetof(RtGemm, r) == 208 && sizeof(RtGemm) == 216,
               "RtGemm");
#endif

/* Launches kernel `kernel` (index in RtGpuDesc.kernel_names) on the
 * session's stream with a grid of gx * gy blocks of bx threads; args are
 * its nargs parameters, each 8 bytes (device pointers and int64 values).
 * Errors go through rt_fail. */
void rt_gpu_launch(RtExec *ex, int32_t kernel, int64_t gx, int64_t gy, int64_t bx,
                   const uint64_t *args, int32_t nargs);
/* Enqueues a GEMM (cuBLASLt; cuBLAS when cuBLASLt has no algorithm). */
void rt_gpu_gemm(RtExec *ex, const RtGemm *g);
/* The device address of the run's error word (int32, zeroed before
 * every run): kernels that find a bad index store 1 + object index. */
void *rt_gpu_error_word(RtExec *ex);
/* The grid size (blocks of the 128-query attention kernel) below which
 * forward launches the 64-query one: dflt, or SLAPO_ATT_SMALL_GRID (0: never,
 * a test of the 128-query kernel at small sizes). */
int64_t rt_gpu_att_small_grid(RtExec *ex, int64_t dflt);
/* 1 if kernel `kernel` can be launched: always for the main module's;
 * for the sm_90a module's, when the GPU is Hopper and the module loaded
 * (SLAPO_CUDA_SM90A=0 keeps it unloaded). */
int32_t rt_gpu_has_kernel(RtExec *ex, int32_t kernel);

/* ======================================================================
 * 4. Internals: errors, logging, allocation (err.c)
 * ====================================================================== */

#define RT_MSG_MAX  1024 /* bytes of an error message, NUL included */
#define RT_NAME_MAX 256  /* bytes of an object name, NUL included */

/* One run's error, shared by the chunks of a forward call. */
struct RtErrorSlot {
	atomic_int taken; /* 0 until the first rt_fail */
	SlapoStatus code;
	char object[RT_NAME_MAX];
	char message[RT_MSG_MAX];
};

/* Resets the calling thread's last error (every API entry does this). */
void rt_clear_error(void);
/* Sets the calling thread's last error and returns code. */
SlapoStatus rt_error(SlapoStatus code, const char *object, const char *fmt, ...)
        RT_PRINTF(3, 4);
SlapoStatus rt_verror(SlapoStatus code, const char *object, const char *fmt, va_list ap);
const SlapoError *rt_last_error(void);
const char *rt_status_name(SlapoStatus status);

/* Sends one formatted line to fn (nothing when fn is NULL). */
void rt_log(SlapoLogFn fn, void *user_data, int32_t level, const char *fmt, ...)
        RT_PRINTF(4, 5);

/* Allocation: every host allocation of the runtime goes through these,
 * so rt_testing_fail_alloc can make any one of them fail. rt_malloc(0)
 * returns a unique pointer. rt_aligned_alloc gives RT_ALIGN alignment
 * and is freed with rt_free. */
void *rt_malloc(size_t size);
void *rt_calloc(size_t n, size_t size);
void *rt_realloc(void *p, size_t size);
void *rt_aligned_alloc(size_t size);
char *rt_strdup(const char *s);
void rt_free(void *p);
int64_t rt_testing_fail_alloc(int64_t n);

/* snprintf that never overflows and always terminates; returns buf. */
char *rt_fmt(char *buf, size_t size, const char *fmt, ...) RT_PRINTF(3, 4);

/* ======================================================================
 * 5. Internals: tensors and dtypes (tensor.c)
 * ====================================================================== */

#define RT_F32 ((DLDataType){kDLFloat, 32, 1})
#define RT_I64 ((DLDataType){kDLInt, 64, 1})

int rt_dtype_eq(DLDataType a, DLDataType b);
/* f16, bf16, f32 or f64 (one lane). */
int rt_dtype_is_float(DLDataType t);
/* What the CPU code reads or writes for a tensor declared as t: f32 for a
 * 16-bit float (an output declared in the GPU code's 16-bit type: the
 * runtime converts), else t. */
DLDataType rt_cpu_dtype(DLDataType t);
/* Bytes per element, or 0 for sub-byte / vector / unknown types. */
size_t rt_dtype_size(DLDataType t);
/* "f32", "bf16", "i64", "bool", ... ("?" forms for odd types). */
const char *rt_dtype_name(DLDataType t, char buf[24]);
/* Whether rt_convert handles src -> dst (floats f16/bf16/f32/f64, ints
 * i8..i64/u8/bool, int -> float, and identity for any sized type). */
int rt_can_convert(DLDataType dst, DLDataType src);
/* Converts n elements between compact buffers of any alignment. */
void rt_convert(DLDataType dst_t, void *dst, DLDataType src_t, const void *src,
                int64_t n);
/* Copies an N-d tensor with element strides (NULL = compact) on either
 * side, converting dtypes as rt_convert does. */
void rt_copy_nd(DLDataType dst_t, void *dst, const int64_t *dst_strides, DLDataType src_t,
                const void *src, const int64_t *src_strides, int32_t ndim,
                const int64_t *shape);
float rt_f16_to_f32(uint16_t h);
uint16_t rt_f32_to_f16(float f);
float rt_bf16_to_f32(uint16_t h);
uint16_t rt_f32_to_bf16(float f);
/* Elements in a shape, or -1 on overflow or a negative dim. */
int64_t rt_numel(int32_t ndim, const int64_t *shape);
/* "[2, 16]", or with names "[B, 16]" where names[d] != NULL. */
char *rt_shape_str(char *buf, size_t size, int32_t ndim, const int64_t *shape,
                   const char *const *names);
/* Whether t's strides (if any) describe compact row-major layout. */
int rt_tensor_compact(const DLTensor *t);
/* The address of element 0: data + byte_offset. */
void *rt_tensor_ptr(const DLTensor *t);

/* ======================================================================
 * 6. Internals: JSON (json.c)
 * ====================================================================== */

typedef enum {
	RT_JSON_NULL,
	RT_JSON_FALSE,
	RT_JSON_TRUE,
	RT_JSON_NUMBER,
	RT_JSON_STRING,
	RT_JSON_ARRAY,
	RT_JSON_OBJECT
} RtJsonType;

typedef struct RtJson RtJson;
struct RtJson {
	RtJsonType type;
	/* STRING: bytes; NUMBER: text bytes; ARRAY/OBJECT: element count */
	size_t len;
	/* STRING: decoded UTF-8, NUL-terminated; NUMBER: the literal (not
	 * NUL-terminated) */
	const char *str;
	RtJson *items;     /* ARRAY: elements; OBJECT: values */
	const char **keys; /* OBJECT: decoded keys, NUL-terminated */
	size_t *key_lens;  /* OBJECT: key lengths in bytes */
};

typedef struct RtJsonBlock RtJsonBlock;

/* A parsed document; all its memory is freed by rt_json_free. */
typedef struct RtJsonDoc {
	RtJson root;
	RtJsonBlock *blocks;
} RtJsonDoc;

/* Parses exactly text[0..len) as one JSON value with surrounding
 * whitespace, nesting at most max_depth arrays/objects. Strict: no
 * duplicate object keys, no lone surrogates, no control characters in
 * strings. The text need not be NUL-terminated or valid UTF-8 (invalid
 * UTF-8 in strings is rejected). Returns SLAPO_OK, SLAPO_FORMAT with the
 * byte offset and reason in err, or SLAPO_OUT_OF_MEMORY. */
SlapoStatus rt_json_parse(const char *text, size_t len, int max_depth, RtJsonDoc *doc,
                          char *err, size_t err_size);
void rt_json_free(RtJsonDoc *doc);
/* A non-negative integer literal (no sign, fraction or exponent) that
 * fits in uint64_t. */
int rt_json_u64(const RtJson *v, uint64_t *out);
/* The value of key in an object, or NULL. */
const RtJson *rt_json_get(const RtJson *obj, const char *key);
/* Whether s[0..len) is well-formed UTF-8 (no overlongs, surrogates). */
int rt_utf8_valid(const unsigned char *s, size_t len);

/* ======================================================================
 * 7. Internals: safetensors (safetensors.c)
 * ====================================================================== */

#define RT_ST_MAX_HEADER 100000000u /* the reference MAX_HEADER_SIZE */
#define RT_ST_MAX_DEPTH  64         /* JSON nesting allowed in a header */

typedef struct RtStTensor {
	const char *name;       /* NUL-terminated, owned by the file */
	const char *dtype_name; /* "F32", "BF16", ... */
	DLDataType dtype;       /* its DLPack type (bits per element) */
	int32_t ndim;
	const int64_t *shape; /* [ndim] */
	uint64_t begin, end;  /* byte offsets in the data buffer */
	const uint8_t *data;  /* mapped bytes, any alignment */
} RtStTensor;

typedef struct RtStFile {
	const char *path; /* as given (not owned) */
	void *map;        /* mmap of the whole file, or NULL */
	size_t map_len;
	uint64_t header_len; /* N */
	int32_t n_tensors;
	RtStTensor *tensors; /* sorted by name */
	int32_t n_meta;
	const char **meta_keys; /* __metadata__, in file order */
	const char **meta_values;
	RtJsonDoc json;  /* owns the strings */
	int64_t *shapes; /* owns the shapes */
} RtStFile;

/* Opens, maps and validates path exactly as the reference implementation
 * does (see docs/abi.md). On failure sets the last error (SLAPO_IO,
 * SLAPO_FORMAT, SLAPO_OUT_OF_MEMORY) with path as the object and leaves
 * *f closed. */
SlapoStatus rt_st_open(const char *path, RtStFile *f);
/* Validates an in-memory file (the same rules; for fuzzing and tests).
 * The tensors point into data, which must outlive f. */
SlapoStatus rt_st_parse(const char *name, const uint8_t *data, size_t len, RtStFile *f);
void rt_st_close(RtStFile *f);
const RtStTensor *rt_st_find(const RtStFile *f, const char *name);
/* Maps a safetensors dtype name to DLPack; 0 if unknown. */
int rt_st_dtype(const char *name, size_t len, DLDataType *out, const char **canonical);
/* The safetensors name of a DLPack type, or NULL. */
const char *rt_st_dtype_name(DLDataType t);

/* One tensor to write: compact row-major data of a sized dtype. */
typedef struct RtStWriteTensor {
	const char *name;
	DLDataType dtype;
	int32_t ndim;
	const int64_t *shape;
	const void *data;
} RtStWriteTensor;

/* Writes a safetensors file: header padded with spaces to a multiple of
 * 8, tensors laid out by descending alignment then name (as the
 * reference writer does). meta is n_meta key/value pairs or NULL. */
SlapoStatus rt_st_write(const char *path, int32_t n, const RtStWriteTensor *tensors,
                        int32_t n_meta, const char *const *meta_kv);

/* shards.c: a list of checkpoint files. */
typedef struct RtPathList {
	char **paths;
	int32_t n;
} RtPathList;

/* The files to load for paths: a "*.json" path is a sharded checkpoint's
 * index (model.safetensors.index.json) and stands for the shards its
 * weight_map names, in its directory; other paths stand for themselves.
 * Each file appears once. Free with rt_free_paths. */
SlapoStatus rt_expand_paths(const char *const *paths, int32_t n, RtPathList *out);
void rt_free_paths(RtPathList *l);

/* ======================================================================
 * 8. Internals: thread pool (pool.c), BLAS (blas.c), packed and small GEMMs (gemm.c)
 * ====================================================================== */

/* Usable CPUs (affinity mask), at least 1. */
int32_t rt_cpu_count(void);
/* A pool running jobs on n_threads threads (the caller counts as one).
 * Returns NULL with the last error set on failure. */
RtPool *rt_pool_new(int32_t n_threads);
void rt_pool_free(RtPool *pool);
int32_t rt_pool_threads(const RtPool *pool);
/* rt_parallel_for without an RtExec (pool may be NULL: serial). */
void rt_pool_run(RtPool *pool, int64_t n, int64_t grain, RtRangeFn fn, void *ctx);

/* The packed copies of the weights that GEMMs read, for the bytes of
 * weight storage at storage (NULL when out of memory); each pack is
 * logged at SLAPO_LOG_DEBUG. Clear them whenever the weights change. */
RtPacks *rt_packs_new(const void *storage, uint64_t bytes, SlapoLogFn log,
                      void *log_user_data);
void rt_packs_clear(RtPacks *ps);
void rt_packs_free(RtPacks *ps);
/* C = alpha * A op(B) + bias + beta * C (bias: a row of n, or NULL) on
 * the weight's packed copy (made on first use): returns 1, or returns 0
 * having done nothing (no AVX-512, A transposed, B not a weight,
 * SLAPO_CPU_GEMM=blas). Out of memory for a pack fails the run
 * (rt_fail) and returns 1. */
int rt_gemm_packed(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
                   int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                   int64_t ldb, const float *bias, float beta, float *c, int64_t ldc);

/* C[m, n] = A[m, k] op(B) (B is [k, n], or [n, k] when trans_b) on the
 * calling thread, unpacked: attention's products. scratch holds
 * rt_gemm_small_scratch(n, k) floats (B transposed; 0 where the kernel is
 * not used). Returns 0 having done nothing where the AVX-512 kernel is
 * not used. */
int64_t rt_gemm_small_scratch(int64_t n, int64_t k);
int rt_gemm_small(int32_t trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc,
                  float *scratch);
/* rt_sgemm on the calling thread only (OpenBLAS). */
void rt_sgemm_serial(RtExec *ex, int32_t trans_a, int32_t trans_b, int64_t m, int64_t n,
                     int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                     int64_t ldb, float beta, float *c, int64_t ldc);

/* ======================================================================
 * 9. Internals: handles (model.c, weights.c, session.c)
 * ====================================================================== */

struct SlapoModel {
	atomic_int refs;
	const RtModelDesc *desc;
	SlapoModelInfo info;
	SlapoTensorSpec *specs[3]; /* by SlapoTensorKind */
	int32_t counts[3];
	/* [n_params] the param whose storage it uses: itself, or its tie
	 * target */
	int32_t *storage_of;
	int32_t *by_name;      /* [n_params] indices sorted by name */
	uint64_t *param_bytes; /* [n_params] */
	int32_t n_distinct;    /* params that own storage (untied) */
};

struct SlapoWeights {
	atomic_int refs;       /* user handle + sessions + views */
	atomic_int n_sessions; /* live sessions: weights are frozen */
	SlapoModel *model;
	DLDevice device;
	int32_t n_threads;
	SlapoLogFn log;
	void *log_user_data;
	void *block;     /* RT_ALIGN storage of all params */
	void **data;     /* [n_params]; tied -> target's */
	uint8_t *is_set; /* [n_params]; for storage owners */
	/* CUDA weights: the device copy (cuda_exec.c); NULL on the CPU. The
	 * host copy above stays the one loads and weights_set change. */
	struct RtGpuWeights *gpu;
	/* CPU weights: packed GEMM operands (gemm.c), or NULL */
	RtPacks *packs;
};

/* model.c */
/* A descriptor's step table: the CPU's, or (gpu) its GPU part's. */
typedef struct RtStepTable {
	int32_t n;
	const RtStepDesc *steps;
	RtStepCostFn costs;
} RtStepTable;
/* Fills *out (zeros for a descriptor too old to have one); returns
 * whether it has steps. */
int rt_step_table(const RtModelDesc *d, int gpu, RtStepTable *out);
SlapoStatus rt_model_open(const RtModelDesc *desc, SlapoModel **out);
void rt_model_close(SlapoModel *m);
void rt_model_retain(SlapoModel *m);
SlapoStatus rt_model_info(const SlapoModel *m, const SlapoModelInfo **out);
SlapoStatus rt_model_tensor(const SlapoModel *m, SlapoTensorKind kind, int32_t index,
                            const SlapoTensorSpec **out);
SlapoStatus rt_model_find(const SlapoModel *m, SlapoTensorKind kind, const char *name,
                          int32_t *index);
SlapoStatus rt_model_output_shape(const SlapoModel *m, const DLTensor *const *inputs,
                                  int32_t n_inputs, int32_t out_index, int64_t *shape);
/* Index of the param stored under exactly name, or -1. */
int32_t rt_model_param_exact(const SlapoModel *m, const char *name);
/* Resolves a checkpoint/user name to a param index: exact, then the HF
 * legacy rename, then base_prefix added or removed. -1 if none. If
 * renamed is not NULL it is set when the legacy rename applied. */
int32_t rt_model_param_lookup(const SlapoModel *m, const char *name, int *renamed);
/* Checks inputs against the model and binds symbol values into sym
 * [n_syms]. With check_data, NULL data of non-empty inputs is an
 * error. Sets the last error on failure. */
SlapoStatus rt_bind_inputs(const SlapoModel *m, const DLTensor *const *inputs,
                           int32_t n_inputs, int check_data, int64_t *sym);
/* Output index's shape under sym. */
void rt_output_shape(const SlapoModel *m, int32_t index, const int64_t *sym,
                     int64_t *shape);

/* weights.c */
SlapoStatus rt_weights_create(SlapoModel *m, const SlapoWeightsParams *p,
                              SlapoWeights **out);
void rt_weights_free(SlapoWeights *w);
void rt_weights_retain(SlapoWeights *w);
SlapoStatus rt_weights_load(SlapoWeights *w, const char *const *paths, int32_t n,
                            uint32_t flags);
SlapoStatus rt_weights_init_random(SlapoWeights *w, uint64_t seed);
SlapoStatus rt_weights_set(SlapoWeights *w, const char *name, const DLTensor *t);
SlapoStatus rt_weights_get(SlapoWeights *w, const char *name,
                           DLManagedTensorVersioned **out);
SlapoStatus rt_weights_check(const SlapoWeights *w);
/* Logs the last error through w's callback and returns st. */
SlapoStatus rt_weights_fail(const SlapoWeights *w, SlapoStatus st);

/* session.c */
SlapoStatus rt_session_create(SlapoWeights *w, const SlapoSessionParams *p,
                              SlapoSession **out);
void rt_session_free(SlapoSession *s);
SlapoStatus rt_session_run(SlapoSession *s, const DLTensor *const *inputs,
                           int32_t n_inputs, DLTensor *const *outputs, int32_t n_outputs);
SlapoStatus rt_session_profile(SlapoSession *s, uint32_t flags);
SlapoStatus rt_session_profile_read(SlapoSession *s, const SlapoProfile **out);

/* ======================================================================
 * 9b. Internals: profiles (profile.c)
 * ====================================================================== */

/* Most events (step runs) a profile keeps for session_profile_read; later
 * ones are counted as dropped. */
#define RT_PROF_MAX_EVENTS (1 << 20)

/* A session's profile: per-step totals over the profiled runs, and with
 * SLAPO_PROFILE_EVENTS each step run's start and duration. A run's marks
 * (when each step started, on the profile's clock) are collected by
 * rt_prof_step (CPU) or filled from CUDA events (cuda_exec.c), then
 * added up by rt_prof_end_run when the run succeeded. */
struct RtProf {
	RtStepTable t;
	uint32_t flags;  /* SLAPO_PROFILE_* */
	uint32_t device; /* SLAPO_DEVICE_BIT_CPU or _CUDA */
	int64_t t0;      /* clock when profiling started (ns) */
	int64_t *mark;   /* [n + 1] this run's marks in ns, -1 = none */
	int64_t run_ns;  /* this run's start */
	double *cost;    /* [2 n] costs at the last run's shapes */
	SlapoProfileStep *rec; /* [n] what session_profile_read returns */
	SlapoProfileEvent *ev;
	int64_t n_ev, cap_ev, dropped;
	int64_t runs;
	SlapoProfile out;
	/* GPU sessions: records a mark's CUDA event (NULL on the CPU: the
	 * host clock) */
	void (*mark_fn)(RtExec *ex, int32_t step);
};

/* The monotonic clock in ns. */
int64_t rt_now_ns(void);
/* A profile of table t's steps; NULL with the last error set. */
RtProf *rt_prof_new(const RtStepTable *t, uint32_t flags, uint32_t device);
void rt_prof_free(RtProf *p);
/* Before forward(): clears the marks, notes the start and the costs at
 * these symbol values. */
void rt_prof_begin_run(RtProf *p, const int64_t *sym);
/* After a successful run whose marks are in p->mark: adds them up (a
 * failed run is simply not ended). */
void rt_prof_end_run(RtProf *p);
/* The records as of now (owned by p). */
const SlapoProfile *rt_prof_read(RtProf *p);

/* ======================================================================
 * 10. Internals: CUDA devices (cuda_load.c, cuda_exec.c)
 * ====================================================================== */

typedef struct RtGpuWeights RtGpuWeights;
typedef struct RtGpuSession RtGpuSession;

/* Checks that the model has GPU code and that device `id` exists and can
 * run it (loading the CUDA libraries on first use); on success retains
 * the device's primary context into *out (the weights' device state). */
SlapoStatus rt_gpu_weights_create(const SlapoModel *m, int32_t device_id,
                                  RtGpuWeights **out);
void rt_gpu_weights_free(RtGpuWeights *g);
/* The host copy changed: upload again before the next session. */
void rt_gpu_weights_dirty(RtGpuWeights *g);
/* Name of the device ("NVIDIA H100 80GB HBM3"), for logs. */
const char *rt_gpu_device_name(const RtGpuWeights *g);

/* A session on CUDA weights: uploads them if needed (once), loads the
 * PTX module, makes the stream (or takes the caller's) and the cuBLAS
 * handles. */
SlapoStatus rt_gpu_session_create(SlapoWeights *w, void *stream, RtGpuSession **out);
void rt_gpu_session_free(RtGpuSession *gs);
/* session_run on a CUDA session: inputs and outputs in host or device
 * memory; returns when the outputs are written. With prof (the
 * session's profile, or NULL), the run is eager (no CUDA graph) and
 * every step is timed with CUDA events. */
SlapoStatus rt_gpu_session_run(RtGpuSession *gs, RtProf *prof,
                               const DLTensor *const *inputs, int32_t n_inputs,
                               DLTensor *const *outputs, int32_t n_outputs);

/* session.c, shared with cuda_exec.c: output checks (count, dtype, shape
 * under sym); device_id >= 0 also accepts kDLCUDA tensors of that
 * device. */
SlapoStatus rt_check_outputs(const SlapoModel *m, const int64_t *sym,
                             DLTensor *const *outputs, int32_t n_outputs,
                             int32_t device_id, int64_t *scratch_shape);
SlapoStatus rt_check_tensor_device(const char *kind, const char *name, const DLTensor *t,
                                   int32_t device_id);
/* Index inputs: every value in [0, value_max). */
SlapoStatus rt_check_values(const RtTensorDesc *d, const void *p, int64_t n);

/* err.c: an error from a device call (device_error = the CUDA/cuBLAS
 * status) */
SlapoStatus rt_error_device(SlapoStatus code, int32_t device_error, const char *object,
                            const char *fmt, ...) RT_PRINTF(4, 5);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif /* SLAPO_RT_H */
