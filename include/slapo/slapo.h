/* slapo.h - the C ABI of a model library made by slapoc.
 *
 * `slapoc model.slapo -o model.so` makes one shared library. It exports
 * exactly one symbol, slapo_get_api(), which returns a versioned table of
 * functions; everything else in the library is hidden, so any number of
 * model libraries can be loaded into one process side by side.
 *
 *     void *lib = dlopen("./model.so", RTLD_NOW | RTLD_LOCAL);
 *     SlapoGetApiFn get;
 *     *(void **)&get = dlsym(lib, SLAPO_GET_API_SYMBOL);
 *     const SlapoApi *api = get(SLAPO_ABI_MAJOR);   // NULL: other ABI
 *
 *     SlapoModel *m;   api->model_open(&m);
 *     SlapoWeights *w; api->weights_create(m, NULL, &w);       // CPU
 *     const char *files[] = {"model.safetensors"};
 *     api->weights_load_safetensors(w, files, 1, 0);
 *     SlapoSession *s; api->session_create(w, NULL, &s);
 *     api->session_run(s, inputs, n_in, outputs, n_out);
 *     api->session_free(s); api->weights_free(w); api->model_close(m);
 *
 * Handles
 *   SlapoModel    the compiled model's immutable description: names,
 *                 dtypes and symbolic shapes of inputs, outputs, params.
 *   SlapoWeights  the parameters, resident on one device chosen when the
 *                 weights are created. Read-only while sessions use them;
 *                 shareable by any number of sessions and threads.
 *   SlapoSession  per-thread execution state (workspace, thread pool).
 *                 One session serves one thread at a time; concurrent
 *                 session_run calls on one session return SLAPO_BUSY.
 *
 * Handles are reference counted internally: they may be freed in any
 * order, and each lives until the last handle that uses it is freed.
 * All *_free / *_close functions accept NULL.
 *
 * Errors
 *   Every fallible call returns a SlapoStatus (0 = SLAPO_OK). On failure
 *   the calling thread's last error (api->last_error()) holds the code,
 *   a message and the name of the input, output, parameter or file at
 *   fault. Each call through the table resets it. A failed call leaves
 *   every handle valid and unchanged.
 *
 * The library never aborts, never exits and never writes to stdout or
 * stderr: diagnostics go to the log callback given to weights_create,
 * and nowhere when there is none.
 *
 * Tensors cross the boundary as DLPack DLTensors (dlpack.h). Inputs are
 * borrowed for the duration of the call; outputs are allocated by the
 * caller (destination passing) with exactly the shape the model computes
 * (model_output_shape tells it). Any alignment, byte_offset and strides
 * are accepted; compact row-major tensors aligned to their element size
 * avoid a copy.
 *
 * Versioning: SlapoApi only ever grows at its end. A caller built against
 * ABI minor X may use the entries of minor X when api->abi_minor >= X (or,
 * equivalently, when api->struct_size covers the entry). A new ABI major
 * is a new table; slapo_get_api returns NULL for a major it does not have.
 * Params structs start with struct_size: the library reads only the
 * fields the caller's struct_size covers and defaults the rest, so old
 * callers keep working when fields are appended.
 */
#ifndef SLAPO_SLAPO_H
#define SLAPO_SLAPO_H

#include <stddef.h>
#include <stdint.h>

#include "dlpack.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLAPO_ABI_MAJOR 1
#define SLAPO_ABI_MINOR 2

/* The one exported symbol's name, for dlsym. */
#define SLAPO_GET_API_SYMBOL "slapo_get_api"

/* ---- status codes ---------------------------------------------------- */

typedef int32_t SlapoStatus;

enum {
	SLAPO_OK = 0,
	SLAPO_INVALID_ARGUMENT = 1, /* NULL handle, bad index, bad params */
	SLAPO_SHAPE_MISMATCH = 2,   /* a tensor's shape is not the model's */
	SLAPO_DTYPE_MISMATCH = 3,   /* a tensor's element type is wrong */
	SLAPO_DEVICE_MISMATCH = 4,  /* a tensor lives on the wrong device */
	SLAPO_NOT_FOUND = 5,        /* no input/output/param of that name */
	SLAPO_MISSING_PARAMS = 6,   /* parameters were never loaded */
	SLAPO_IO = 7,               /* a file could not be opened or read */
	SLAPO_FORMAT = 8,           /* a file is malformed (safetensors) */
	SLAPO_UNSUPPORTED = 9,      /* valid, but not supported by this build */
	SLAPO_OUT_OF_MEMORY = 10,   /* host or device allocation failed */
	SLAPO_DEVICE = 11,          /* a device call failed (recoverable) */
	SLAPO_DEVICE_LOST = 12,     /* sticky device error: session poisoned */
	SLAPO_ABI_MISMATCH = 13,    /* library and caller/runtime disagree */
	SLAPO_CANCELLED = 14,       /* stopped by a callback */
	SLAPO_BUSY = 15,            /* object in use (session, weights) */
	SLAPO_INTERNAL = 16         /* a bug in slapo: please report it */
};

/* The calling thread's last error. Strings are never NULL (empty when
 * not applicable) and stay valid until the next call through the same
 * library on the same thread. */
typedef struct SlapoError {
	SlapoStatus code;        /* SLAPO_OK when the last call succeeded */
	int32_t device_error;    /* CUDA error number for DEVICE*, else 0 */
	const char *message;     /* one line, no trailing newline */
	const char *object_name; /* input/output/param/file at fault, or "" */
} SlapoError;

/* ---- logging --------------------------------------------------------- */

enum {
	SLAPO_LOG_ERROR = 1,
	SLAPO_LOG_WARN = 2,
	SLAPO_LOG_INFO = 3,
	SLAPO_LOG_DEBUG = 4
};

/* Called with one line (no trailing newline) per message, from the thread
 * that made the call. Every failure of a call on weights or sessions
 * created with a callback is also logged at SLAPO_LOG_ERROR. */
typedef void (*SlapoLogFn)(int32_t level, const char *message, void *user_data);

/* ---- handles --------------------------------------------------------- */

typedef struct SlapoModel SlapoModel;
typedef struct SlapoWeights SlapoWeights;
typedef struct SlapoSession SlapoSession;

/* ---- introspection --------------------------------------------------- */

/* Which list model_tensor / model_find look in. */
typedef enum {
	SLAPO_INPUT = 0,
	SLAPO_OUTPUT = 1,
	SLAPO_PARAM = 2
} SlapoTensorKind;

/* How a caller may fill an input it does not have (SlapoTensorSpec). */
enum {
	SLAPO_FILL_NONE = 0,  /* the input is required */
	SLAPO_FILL_ZEROS = 1, /* e.g. token_type_ids */
	SLAPO_FILL_ONES = 2   /* e.g. attention_mask */
};

/* Devices a model can run on (SlapoModelInfo.devices bits). */
#define SLAPO_DEVICE_BIT_CPU  (1u << 0)
#define SLAPO_DEVICE_BIT_CUDA (1u << 1)

/* Describes the whole model. Owned by the model handle. Fields may be
 * appended in later minor versions. */
typedef struct SlapoModelInfo {
	const char *name;           /* e.g. "BertLMHeadModel" */
	const char *slapoc_version; /* compiler that made the library */
	int32_t n_inputs;
	int32_t n_outputs;
	int32_t n_params;                /* including tied aliases */
	int32_t n_symbols;               /* symbolic dims, e.g. B and S */
	const char *const *symbol_names; /* [n_symbols] */
	const int64_t *symbol_min;       /* [n_symbols] smallest value allowed */
	const int64_t *symbol_max;       /* [n_symbols] largest, -1 = no bound */
	uint64_t n_param_elements;       /* elements in distinct parameters */
	uint32_t devices;                /* SLAPO_DEVICE_BIT_* it can run on */
	uint32_t reserved;
} SlapoModelInfo;

/* Describes one input, output or parameter. Owned by the model handle.
 * Fields may be appended in later minor versions. */
typedef struct SlapoTensorSpec {
	/* PyTorch name, e.g. "bert.embeddings.word_embeddings.weight" */
	const char *name;
	DLDataType dtype; /* element type the model takes or makes */
	int32_t ndim;
	const int64_t *shape; /* [ndim]; -1 marks a symbolic dim */
	/* [ndim]; the symbol's name ("B", "S"), or NULL for a constant dim */
	const char *const *dim_names;
	const int32_t *dim_symbols; /* [ndim]; symbol index, or -1 */
	/* params: the parameter this one shares its storage with, or NULL */
	const char *tied_to;
	/* integer inputs: values must lie in [0, value_max) (e.g. the vocab
	 * size); 0 = any */
	int64_t value_max;
	int32_t default_fill; /* inputs: SLAPO_FILL_* */
	uint32_t flags;       /* reserved, 0 */
} SlapoTensorSpec;

/* ---- params structs -------------------------------------------------- */

typedef struct SlapoWeightsParams {
	size_t struct_size;  /* sizeof(SlapoWeightsParams) */
	/* {kDLCPU, 0}, or {kDLCUDA, n} for GPU n (the library must have GPU
	 * code: SlapoModelInfo.devices has SLAPO_DEVICE_BIT_CUDA) */
	DLDevice device;
	int32_t n_threads;   /* default for sessions; 0 = all usable cores */
	SlapoLogFn log;      /* may be NULL: no messages at all */
	void *log_user_data; /* passed to log */
} SlapoWeightsParams;

/* clang-format off */
#define SLAPO_WEIGHTS_PARAMS_INIT {sizeof(SlapoWeightsParams), {kDLCPU, 0}, 0, NULL, NULL}
/* clang-format on */

typedef struct SlapoSessionParams {
	size_t struct_size; /* sizeof(SlapoSessionParams) */
	int32_t n_threads;  /* 0 = the weights' n_threads */
	/* minor 1, CUDA weights: the CUstream / cudaStream_t to run on, or
	 * NULL for a stream of the session's own. session_run still returns
	 * only when the outputs are written. */
	void *cuda_stream;
} SlapoSessionParams;

/* clang-format off */
#define SLAPO_SESSION_PARAMS_INIT {sizeof(SlapoSessionParams), 0, NULL}
/* clang-format on */

/* Flags for weights_load_safetensors. */
enum {
	/* Do not fail when parameters stay unset after this call (for loading
	 * shards in several calls, or weights_set afterwards); session_create
	 * still refuses incomplete weights. */
	SLAPO_LOAD_ALLOW_MISSING = 1u << 0,
	/* Fail (SLAPO_NOT_FOUND) on tensors the model has no parameter for,
	 * instead of logging and ignoring them. Tensors under the model's
	 * expected-extra prefixes (e.g. a BERT pooler) are still ignored. */
	SLAPO_LOAD_STRICT = 1u << 1
};

/* ---- profiles (minor 2) ------------------------------------------------ */

/* Flags for session_profile. */
enum {
	SLAPO_PROFILE_OFF = 0,         /* stop recording (the records stay) */
	SLAPO_PROFILE_ON = 1u << 0,    /* time every step of every run */
	SLAPO_PROFILE_EVENTS = 1u << 1 /* with ON: keep each step run too (a
	                                * timeline, e.g. for a Chrome trace) */
};

/* One step of the compiled model (a kernel, or a library call such as a
 * GEMM), in the order forward runs them, and its time so far. */
typedef struct SlapoProfileStep {
	/* the kernel's name as `slapoc --explain` and `--emit=dot` show it
	 * ("linear_3", "FusedBiasGeLU_0"); unique in the profile ("linear_3.bias"
	 * is the bias pass of linear_3) */
	const char *name;
	const char *kind;   /* "gemm", "map", "softmax", "layer_norm", "reduce", "gather" */
	const char *source; /* the .slapo line that made it, "FILE:LINE", or "" */
	/* the module it belongs to ("bert.encoder.layer.3.attention.self"),
	 * "" for the model itself or when unknown */
	const char *module;
	uint64_t calls;    /* runs of it recorded */
	uint64_t total_ns; /* their total time */
	uint64_t min_ns, max_ns;
	double flops; /* estimated FLOPs of one run at the last run's shapes; 0: unknown */
	double bytes; /* estimated bytes it reads and writes, likewise */
} SlapoProfileStep;

/* One run of one step (SLAPO_PROFILE_EVENTS). */
typedef struct SlapoProfileEvent {
	int32_t step;      /* index in SlapoProfile.steps */
	int32_t run;       /* which profiled session_run, from 0 */
	uint64_t start_ns; /* since profiling started */
	uint64_t dur_ns;
} SlapoProfileEvent;

/* What a session's profile holds. Owned by the session; valid until the
 * next call on it. */
typedef struct SlapoProfile {
	uint32_t device;  /* SLAPO_DEVICE_BIT_CPU, or _CUDA: GPU time */
	int32_t n_steps;
	const SlapoProfileStep *steps; /* [n_steps], in program order */
	int64_t n_runs;   /* successful runs recorded (failed ones are not) */
	int64_t n_events; /* with SLAPO_PROFILE_EVENTS, in order */
	const SlapoProfileEvent *events;
	int64_t dropped_events; /* not kept: more than 2^20 */
} SlapoProfile;

/* ---- the function table ---------------------------------------------- */

typedef struct SlapoApi {
	/* Frozen header: never changes, whatever the version. */
	uint32_t abi_major;   /* SLAPO_ABI_MAJOR the library speaks */
	uint32_t abi_minor;   /* entries present: see versioning */
	uint32_t struct_size; /* sizeof(SlapoApi) in the library */
	uint32_t reserved;
	const char *slapoc_version; /* e.g. "0.1.0" */

	/* -- errors (minor 0) -- */

	/* The calling thread's last error; never NULL. */
	const SlapoError *(*last_error)(void);
	/* "SLAPO_SHAPE_MISMATCH" etc.; "SLAPO_UNKNOWN" for other values. */
	const char *(*status_name)(SlapoStatus status);

	/* -- model (minor 0) -- */

	/* Opens the model compiled into this library. Fails with
	 * SLAPO_ABI_MISMATCH if the generated code and runtime disagree. */
	SlapoStatus (*model_open)(SlapoModel **out);
	void (*model_close)(SlapoModel *model);
	SlapoStatus (*model_info)(const SlapoModel *model, const SlapoModelInfo **out);
	/* The index-th input, output or parameter (in the model's order). */
	SlapoStatus (*model_tensor)(const SlapoModel *model, SlapoTensorKind kind,
	                            int32_t index, const SlapoTensorSpec **out);
	/* Index of the tensor of that kind and name, or SLAPO_NOT_FOUND. For
	 * params, HF legacy names (LayerNorm.gamma/.beta) and names with the
	 * base-model prefix ("bert.") added or removed are accepted. */
	SlapoStatus (*model_find)(const SlapoModel *model, SlapoTensorKind kind,
	                          const char *name, int32_t *index);
	/* The shape of output out_index for these inputs: only their dtype,
	 * ndim and shape are read (data may be NULL). shape receives the
	 * output's ndim values. Input checks are those of session_run. */
	SlapoStatus (*model_output_shape)(const SlapoModel *model,
	                                  const DLTensor *const *inputs, int32_t n_inputs,
	                                  int32_t out_index, int64_t *shape);

	/* -- weights (minor 0) -- */

	/* Creates empty weights on params->device (params NULL = CPU with
	 * defaults). Holds a reference on the model. */
	SlapoStatus (*weights_create)(SlapoModel *model, const SlapoWeightsParams *params,
	                              SlapoWeights **out);
	void (*weights_free)(SlapoWeights *weights);
	/* Loads parameters from HF safetensors files: one file, the shards
	 * of one checkpoint, or its "model.safetensors.index.json". Applies the legacy renames and ties, ignores
	 * the model's expected extras, converts F16/BF16/F64 to the compiled
	 * dtype. Unless SLAPO_LOAD_ALLOW_MISSING, fails with
	 * SLAPO_MISSING_PARAMS naming a parameter that stays unset. Either
	 * everything is loaded or nothing changes. SLAPO_BUSY while sessions
	 * exist on these weights. */
	SlapoStatus (*weights_load_safetensors)(SlapoWeights *weights,
	                                        const char *const *paths, int32_t n_paths,
	                                        uint32_t flags);
	/* Fills every parameter with a deterministic pseudo-random init
	 * (normal for weights, zeros for biases, ones for norm scales, as the
	 * model declares). Only when asked: loading never falls back to it. */
	SlapoStatus (*weights_init_random)(SlapoWeights *weights, uint64_t seed);
	/* Copies one parameter from a host tensor (any float dtype, any
	 * strides). Names as for model_find; a tied name sets its target. */
	SlapoStatus (*weights_set)(SlapoWeights *weights, const char *name,
	                           const DLTensor *tensor);
	/* A read-only DLPack view of a loaded parameter (flags has
	 * DLPACK_FLAG_BITMASK_READ_ONLY). Call (*out)->deleter(*out) when
	 * done; the view keeps the weights alive until then. */
	SlapoStatus (*weights_get)(SlapoWeights *weights, const char *name,
	                           DLManagedTensorVersioned **out);
	/* SLAPO_OK when every parameter is set, else SLAPO_MISSING_PARAMS
	 * naming the first unset one. */
	SlapoStatus (*weights_check)(const SlapoWeights *weights);

	/* -- sessions (minor 0) -- */

	/* Creates a session on complete weights (SLAPO_MISSING_PARAMS
	 * otherwise). params NULL = defaults. */
	SlapoStatus (*session_create)(SlapoWeights *weights,
	                              const SlapoSessionParams *params,
	                              SlapoSession **out);
	void (*session_free)(SlapoSession *session);
	/* Runs forward. inputs[i] is the model's i-th input, outputs[j] its
	 * j-th output; n_inputs/n_outputs must equal the model's counts.
	 * Symbolic dims are bound from the inputs and must agree. Outputs
	 * must be caller-allocated with exactly the computed shape, must not
	 * overlap the inputs, and hold garbage if the call fails. */
	SlapoStatus (*session_run)(SlapoSession *session, const DLTensor *const *inputs,
	                           int32_t n_inputs, DLTensor *const *outputs,
	                           int32_t n_outputs);

	/* -- testing only (minor 0): not for production use -- */

	/* Makes the n-th host allocation made by this library from now on
	 * fail (once), to test out-of-memory paths; 0 disarms it. Returns
	 * how many allocations were still to go before the one armed earlier
	 * (> 0: it was never reached). The counter is global to the library,
	 * shared by all threads. */
	int64_t (*testing_fail_alloc)(int64_t n);

	/* -- profiles (minor 2) -- */

	/* Starts profiling the session's runs (flags: SLAPO_PROFILE_ON, with
	 * SLAPO_PROFILE_EVENTS for a timeline), dropping earlier records, or
	 * stops it (SLAPO_PROFILE_OFF). Each step is timed, on the CPU with
	 * the monotonic clock (a step's threads count as one), on a GPU with
	 * CUDA events on the session's stream; profiled GPU runs do not use
	 * CUDA graphs. Outputs are the same as without profiling.
	 * SLAPO_UNSUPPORTED if the library has no step table (made by a
	 * slapoc older than ABI 1.2). */
	SlapoStatus (*session_profile)(SlapoSession *session, uint32_t flags);
	/* What the profile recorded so far (also after it was stopped);
	 * SLAPO_INVALID_ARGUMENT if the session was never profiled. */
	SlapoStatus (*session_profile_read)(SlapoSession *session,
	                                    const SlapoProfile **out);
} SlapoApi;

#if defined(__LP64__) || defined(_LP64)
#ifdef __cplusplus
static_assert(offsetof(SlapoApi, slapoc_version) == 16, "SlapoApi header");
#else
_Static_assert(offsetof(SlapoApi, slapoc_version) == 16, "SlapoApi header");
#endif
#endif

/* The entry point: the table for ABI major version abi_major, or NULL if
 * this library does not speak it. Cheap; call it once. */
#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const SlapoApi *
slapo_get_api(uint32_t abi_major);

typedef const SlapoApi *(*SlapoGetApiFn)(uint32_t abi_major);

#ifdef __cplusplus
}
#endif

#endif /* SLAPO_SLAPO_H */
