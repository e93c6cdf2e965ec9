/* codegen.h - CPU code generation: from the final model graph to a model
 * shared library.
 *
 *   IrGraph ──lower.c──▶ CgProgram ──kernels_*.c, driver.c──▶ LLVM module
 *   (flat model)          (kernels, GEMM calls,   (one function per kernel,
 *                          views, memory plan)     forward(), the descriptor)
 *           ──llvm.c──▶ object file ──link.c──▶ model.so (+ libslapo_rt.a)
 *
 * Sections follow the source files. Everything is allocated from the
 * arena of the IrCtx the graph belongs to; LLVM handles are owned by a
 * CgLlvm and released by cg_llvm_dispose. Errors are reported through
 * the IrCtx's Diag (diag_plain / diag_error) and make functions return
 * false; nothing here exits or unwinds.
 */
#ifndef SLAPO_CODEGEN_H
#define SLAPO_CODEGEN_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "ir/ir.h"

/* ---- codegen.c: the entry point ------------------------------------------ */

typedef enum {
	CG_EMIT_SO,   /* a model library (object linked with libslapo_rt.a) */
	CG_EMIT_OBJ,  /* the object file only */
	CG_EMIT_ASM,  /* assembly text */
	CG_EMIT_LLVM, /* LLVM IR text, after optimisation */
} CgEmit;

typedef struct CgOptions {
	CgEmit emit;
	const char *output;   /* file to write */
	const char *cpu;      /* target CPU ("x86-64-v3", "znver3"); NULL or
	                       * "native": the host, with its features */
	const char *rt_lib;   /* libslapo_rt.a; NULL: $SLAPO_RT_LIB, else found
	                       * beside the running executable */
	const char *cc;       /* linker driver; NULL: $CC, else "cc" */
	FILE *dump_lower;     /* print the kernel graph here (or NULL) */
	FILE *dump_gpu;       /* print the GPU steps and memory plan here */
	bool no_opt;          /* skip the O3 pipeline (debugging) */
	int gpu;              /* CG_GPU_*: CUDA code too (gpu.h) */
	int precision;        /* CgPrecision of the GPU code (gpu.h) */
	const char *ptx_out;  /* also write the PTX here (or NULL) */
	bool unfused_attention; /* GPU: keep attention's GEMM, softmax, GEMM apart */
	bool cpu_unfused_attention; /* CPU: likewise (no rt_attention) */
	bool exact_gelu;            /* GPU: no GEMM epilogue for an erf GELU
	                             * (its tanh form) */
	bool residual_epilogue;     /* GPU: a layer_norm's bias and residual
	                             * added by the GEMM before it */
	int output_dtype;     /* IrDType of float outputs: IR_F32 (0, the
	                       * default) or precision's 16-bit type; the CPU
	                       * code writes f32 and the runtime converts */
	const char *emu_out;  /* also the kernels for the host, for testing
	                       * without a GPU (gpu_emu.c), or NULL */
} CgOptions;

enum {
	CG_GPU_AUTO = 0, /* CUDA code when this LLVM/CUDA can make it (else a
	                  * warning and a CPU-only library) */
	CG_GPU_OFF = 1,  /* CPU code only */
	CG_GPU_ON = 2,   /* CUDA code or an error */
};

/* The model as the descriptor describes it: the graph plus what the
 * runtime needs to load a HuggingFace checkpoint into it. */
typedef struct CgModel {
	IrGraph *graph;           /* flat model graph: inputs, params, outputs */
	const char *name;         /* e.g. "BertLMHeadModel" */
	const char *const *ties;  /* [2*nties]: param, tied_to (root-relative) */
	int nties;
	const char *const *ignore; /* [nignore]: checkpoint prefixes to skip */
	int nignore;
	const char *base_prefix;  /* HF base_model_prefix ("bert") or NULL */
	const char *const *ones;  /* [nones]: params initialised to ones */
	int nones;
} CgModel;

/* Lower, emit and (for CG_EMIT_SO) link. With only o->dump_lower or
 * o->dump_gpu set and no output, stops after printing. */
bool cg_compile(const CgModel *m, const CgOptions *o);

/* ---- model.c: the model from the evaluator ----------------------------------- */

struct Eval;
struct Module;

/* Fills *out for `root` (traced with trace_model: may unwind through the
 * Diag's bail on errors in the schedule): ties from ev->ties, the base
 * prefix (the first child's name when the root is a *LMHeadModel,
 * *ForMaskedLM or other *For* head model), the expected extras of HF
 * checkpoints (the base model's pooler and the NSP head when the model
 * has none) and LayerNorm weights (initialised to ones). */
bool cg_model_from_eval(struct Eval *ev, struct Module *root, Span sp, CgModel *out);

/* ---- lower.c: the kernel graph ------------------------------------------- */

enum {
	CG_MAX_TERMS = 8,   /* monomials in a view offset */
	CG_MAX_VIEWS = 64,  /* operands of one kernel */
	CG_MAX_GROUP = 4,   /* linears sharing their input in one GEMM */
};

/* A sum of monomials (an element offset). */
typedef struct CgPoly {
	int n;
	IrDim t[CG_MAX_TERMS];
} CgPoly;

/* How a buffer is reached at run time. */
typedef enum {
	CG_BUF_INPUT,  /* ex->inputs[index] */
	CG_BUF_PARAM,  /* ex->params[index] */
	CG_BUF_OUTPUT, /* ex->outputs[index] */
	CG_BUF_TEMP,   /* workspace, at the offset of slot `index` */
} CgBufKind;

/* One piece of memory holding a tensor's elements. */
typedef struct CgBuf {
	CgBufKind kind;
	int index;         /* input/param/output index; temps: slot (plan.c) */
	IrDType dtype;     /* storage type: F32, I64, I32 or BOOL (1 byte) */
	IrDim numel;       /* elements */
	const char *name;  /* the node (or param path) it was made for */
	int def, last;     /* temps: first step writing it, last step reading it */
	int id;            /* index in CgProgram.bufs */
} CgBuf;

/* A strided window on a buffer: element (i0..in-1) of the view is
 * buffer[off + sum ik * stride[k]]. Strides may be 0 (broadcast). */
typedef struct CgView {
	int buf;
	int ndim;
	IrDim dim[IR_MAX_DIMS];
	IrDim stride[IR_MAX_DIMS];
	CgPoly off;
} CgView;

typedef enum {
	CG_MAP,        /* out[i] = expr(leaves at i) over an index space */
	CG_SOFTMAX,    /* rows: softmax of expr along the last iteration dim */
	CG_LAYER_NORM, /* rows: layer_norm(expr) * w + b along the last dim */
	CG_REDUCE,     /* rows: sum / mean / max of a view along the last dim */
	CG_GATHER,     /* embedding rows by index, with range checks */
	CG_GEMM,       /* rt_sgemm / rt_sgemm_batched */
	CG_ATTENTION,  /* GPU only (gpu_fuse.c): GEMM, SOFTMAX, GEMM as one kernel */
} CgKind;

/* An elementwise expression evaluated per element of a kernel's index
 * space: `root` and the nodes below it, down to the leaves, which are
 * read from memory (leaf_view[i] is an index into the step's views).
 * Leaf nodes that are ARANGE read their index instead of memory; CONST
 * nodes are constants. Nodes may come from the model graph or from a
 * fused kernel's body. */
typedef struct CgExpr {
	IrNode *root;
	int nleaf;
	IrNode **leaf;
	int *leaf_view;
	int nconst;           /* body inputs bound to constants of the caller: */
	IrNode **cnode;       /* cnode[i] evaluates as the CONST cval[i] */
	IrNode **cval;
} CgExpr;

/* One kernel or library call, run in program order. */
typedef struct CgStep {
	CgKind kind;
	int id;
	const char *name;     /* node computed (for dumps and symbol names) */
	const char *what;     /* short description: "add", "FusedBiasGeLU", ... */
	/* the model-graph node it comes from: its .slapo span (a fused
	 * kernel's: the fuse call) and module path (IrNode.module), for
	 * profiles */
	const char *node;     /* its name (steps of a fused body: the fused
	                       * node's, not the body node's) */
	Span span;
	const char *module;
	const char *members;  /* a GEMM group: its linears' names joined by '+' */
	/* index space: MAP iterates over all of it, row kernels over all
	 * but the last dim (each row then walks the last dim) */
	int ndim;
	IrDim dim[IR_MAX_DIMS];
	/* operands: views[0] is the result; every view has the step's
	 * ndim and dims (broadcast: stride 0) except for GATHER and GEMM */
	int nview;
	CgView *views;
	CgExpr expr;          /* MAP / SOFTMAX / LAYER_NORM: the value (row input) */
	IrDType type;         /* compute type of the result (F32, I64, BOOL) */
	/* LAYER_NORM: views[1] weight, views[2] bias, eps */
	double eps;
	/* REDUCE */
	IrOp rop;             /* OP_SUM, OP_MEAN, OP_MAX */
	/* GATHER: views[1] ids (over dim[0..ndim-1)), views[2] table [rows, D] */
	IrDim rows;           /* table rows */
	const char *object;   /* name reported on a bad index */
	/* GEMM: views[0] C, [1] A, [2] B, each a plain pointer (off only) */
	bool ta, tb;
	IrDim m, n, k, lda, ldb, ldc;
	double alpha, beta;
	int nbatch;           /* batch dims after collapsing; the last one is
	                       * the batched call's, the others loops */
	IrDim bdim[IR_MAX_DIMS];
	IrDim bsa[IR_MAX_DIMS], bsb[IR_MAX_DIMS], bsc[IR_MAX_DIMS];
	/* GEMM of ngroup > 1 linears on one input (Q, K, V): B is their
	 * weights side by side (gb[i]: weight i, gn[i] its rows, gc[i] its
	 * first column of C). When the weights are adjacent in memory at run
	 * time, one call with n = sum gn; else one call per weight. */
	int ngroup;
	CgView gb[CG_MAX_GROUP];
	IrDim gn[CG_MAX_GROUP], gc[CG_MAX_GROUP];
	/* ATTENTION: views[0] O, [1] Q, [2] K, [3] V (element 0 of the first
	 * batch), then the softmax's inputs (expr's leaves; leaf `sleaf` is
	 * the scores); ndim/dim the softmax's index space; m the sequence
	 * (queries and keys), k the head size; lda, ldb, ldc, ldv the row
	 * strides of Q, K, O, V; batch dims bdim with strides bsa (Q), bsb
	 * (K), bsc (O), bsv (V), all as the GEMMs had them */
	IrDim ldv;
	IrDim bsv[IR_MAX_DIMS];
	int sleaf;
	int mt; /* m16 tiles of queries per warp: 1 or 2 (ATT_MT) */
	/* plan.c: the kernel function's name */
	const char *fn;
} CgStep;

/* A model input, output or parameter as the descriptor lists it. */
typedef struct CgTensor {
	const char *name;
	IrDType dtype;        /* storage dtype */
	IrShape shape;
	int64_t value_max;    /* integer inputs feeding an embedding: rows */
	int fill;             /* SLAPO_FILL_* hint */
	int init;             /* RT_INIT_* for params */
	int tied_to;          /* params: index of the storage owner, or -1 */
} CgTensor;

/* The lowered program. */
/* The workspace plan (plan.c): temps in regions, one after another. A
 * region holds buffers whose byte sizes differ only in the coefficient
 * (c * M, M = B^i * S^j the same for all), at offsets a * M + b rounded
 * up to the alignment at run time, placed so that buffers live at the
 * same time never overlap, whatever B and S. */
typedef struct CgPlan {
	int nregions;
	IrDim *size;          /* [nregions] bytes of each: size + size_slack */
	int64_t *size_slack;
	PtrVec *bufs;         /* [nregions] the CgBuf* in each */
	int *region;          /* [buffers] a temp's region; -1: not a temp, or unused */
	IrDim *off;           /* [buffers] its offset in the region: a * M ... */
	int64_t *slack;       /* [buffers] ... + b bytes */
	const int *def, *last; /* [buffers] the lifetimes planned for */
} CgPlan;

typedef struct CgProgram {
	IrCtx *ir;
	Arena *arena;
	Diag *diag;
	const CgModel *model;
	PtrVec bufs;          /* CgBuf* */
	PtrVec steps;         /* CgStep* */
	PtrVec inputs;        /* CgTensor*, in graph input order */
	PtrVec outputs;       /* CgTensor* */
	PtrVec params;        /* CgTensor*, graph params then tie targets */
	/* symbols: IR symbol i is descriptor symbol sym_index[i] (-1: unused) */
	int nsyms;
	int sym_ir[IR_MAX_SYMS];      /* descriptor symbol -> IR symbol */
	int sym_index[IR_MAX_SYMS];
	int64_t sym_max[IR_MAX_SYMS]; /* by descriptor symbol; -1 = none */
	IrDType out_dtype;    /* the declared type of float outputs: IR_F32, or
	                       * the GPU code's 16-bit type (CgOptions) */
	/* plan.c */
	CgPlan plan;          /* the workspace (as printed; driver.c makes
	                       * its own for fused attention) */
	int max_views;        /* most views of one kernel step */
} CgProgram;

/* Lower g (verified, flat) into prog. False after reporting an error. */
bool cg_lower(CgProgram *prog, const CgModel *m);

/* View algebra (views.c). */
CgView cg_view_contig(int buf, const IrShape *s);
bool cg_view_is_contig(const CgView *v);
IrDim cg_view_numel(const CgView *v);
/* Apply a view op (VIEW, PERMUTE, ...) of node n to *v in place; false
 * if the result is not a strided view of the same memory (the caller
 * copies the input first). */
bool cg_view_apply(const IrNode *n, CgView *v);
/* Broadcast v to shape (ndim, dim) numpy-style; false if impossible. */
bool cg_view_broadcast(CgView *v, int ndim, const IrDim *dim);
/* Collapse adjacent dims of a common index space shared by views[0..n),
 * dropping size-1 dims; updates ndim/dim and every view. Dims listed in
 * keep_last stay separate from the others (rows of row kernels). */
void cg_views_collapse(int *ndim, IrDim *dim, CgView *views, int nviews, int keep_last);
bool cg_dim_is(IrDim d, int64_t v);
IrDim cg_dim_mul(IrDim a, IrDim b);
void cg_poly_add(CgPoly *p, IrDim t, bool *ok);
/* The same sum of terms (in any order). */
bool cg_poly_eq(const CgPoly *a, const CgPoly *b);
void cg_poly_print(StrBuf *b, const IrCtx *c, const CgPoly *p);

/* ---- plan.c: memory plan and the text dump -------------------------------- */

/* Liveness of temps and their slots (sizes evaluated at run time). */
void cg_plan(CgProgram *prog);
/* Place the nb buffers (bufs[i]->id == i) in the workspace: temp i takes
 * bytes[i] from step def[i] to last[i] (def < 0: unused). */
void cg_plan_make(Arena *a, CgBuf *const *bufs, const IrDim *bytes, int nb, const int *def,
                  const int *last, int align, CgPlan *pl);
/* The regions of pl with their buffers (types[id], or the buffer's dtype
 * when NULL), offsets and lifetimes (steps written as `step`N). */
void cg_plan_print(StrBuf *b, const IrCtx *c, const CgPlan *pl, const IrDType *types,
                   char step);
/* The bytes of each of the program's buffers on the CPU, by id. */
IrDim *cg_plan_bytes(const CgProgram *p);
/* The kernel graph with the memory plan, for --dump-after=lower. */
void cg_print(StrBuf *b, const CgProgram *prog);
/* Storage bytes per element of a dtype (bool 1, i32 4, i64/f64 8 -> f32 4). */
int cg_elem_size(IrDType t);
IrDType cg_storage_type(IrDType t);

/* ---- llvm.c: the LLVM context ----------------------------------------------- */

/* Owns the LLVM handles of one compilation. */
typedef struct CgLlvm {
	Diag *diag;
	LLVMContextRef ctx;
	LLVMModuleRef mod;
	LLVMBuilderRef b;
	LLVMTargetMachineRef tm;
	LLVMTargetDataRef td;
	char *triple, *cpu, *features; /* LLVM-allocated strings */
	int vw;                        /* f32 lanes of a vector register */
	bool has_fma;                  /* fused multiply-add in hardware */
	bool avx512;                   /* x86 with AVX-512F (vw 16): vscalefps */
	bool nvptx;                    /* an NVPTX module: PTX instructions allowed */
	bool sm90a;                    /* ... of Hopper's own instructions (wgmma):
	                                * its PTX is made ISA 8.0, sm_90a */
	bool math16;                   /* GPU code whose values are stored in 16
	                                * bits (bf16/fp16): GELU needs ~1e-6
	                                * relative accuracy, not f32's (kernels_math.c) */
	/* common types */
	LLVMTypeRef t_void, t_i1, t_i8, t_i32, t_i64, t_f32, t_i8p, t_i64p, t_f32p;
	LLVMTypeRef t_kernel;          /* void (i8*, i64, i64) */
} CgLlvm;

/* cpu: NULL or "native" for the host. */
bool cg_llvm_init(CgLlvm *L, Diag *d, const char *module_name, const char *cpu);
void cg_llvm_dispose(CgLlvm *L);
/* With L->triple and L->tm set: the context, module, data layout, builder
 * and the common types (for cg_llvm_init and the NVPTX backend). */
void cg_llvm_module(CgLlvm *L, const char *module_name);
/* Verify, then run the O3 pipeline for the target (a host module: identical
 * functions merged first). */
bool cg_llvm_optimize(CgLlvm *L, bool verify_only);
/* Write LLVM IR text, assembly or an object file. */
bool cg_llvm_write(CgLlvm *L, CgEmit what, const char *path);
/* The function `name` of type fnty, declared (external, hidden) if new. */
LLVMValueRef cg_llvm_decl(CgLlvm *L, const char *name, LLVMTypeRef fnty);
/* An intrinsic overloaded on `ty` (and `ty2` when not NULL):
 * cg_llvm_intrinsic(L, "llvm.fma", t, NULL, 3) is llvm.fma.v16f32. */
LLVMValueRef cg_llvm_intrinsic(CgLlvm *L, const char *base, LLVMTypeRef ty,
                               LLVMTypeRef ty2, int nargs);
LLVMValueRef cg_llvm_call(CgLlvm *L, LLVMValueRef fn, LLVMValueRef *args, int n);
/* Fails (an internal error) unless the LLVM struct t has the C layout:
 * n field offsets and the size, as offsetof/sizeof give them. */
bool cg_llvm_check_layout(CgLlvm *L, LLVMTypeRef t, const size_t *offs, int n, size_t size,
                          const char *what);
/* A private constant array of n values of type et; a pointer to its first
 * element (a null one when n is 0). */
LLVMValueRef cg_llvm_const_array(CgLlvm *L, LLVMTypeRef et, LLVMValueRef *v, int n,
                                 const char *name);
/* A private constant NUL-terminated string, as i8*. */
LLVMValueRef cg_llvm_cstr(CgLlvm *L, const char *s);

/* ---- kernels.c: kernel functions ------------------------------------------------- */

/* State of the function being built. */
typedef struct CgFn {
	CgLlvm *L;
	const CgProgram *prog;
	LLVMValueRef fn;
	LLVMBasicBlockRef entry;   /* holds allocas and loop-invariant values */
	LLVMBasicBlockRef body;    /* first block after the entry */
	LLVMValueRef ex;           /* RtExec* (as i8*) */
	LLVMValueRef sym;          /* const int64_t* */
	int ndim_cache;
	IrDim dcache[64];
	LLVMValueRef vcache[64];
} CgFn;

/* Begin a function: entry block, builder positioned in the body. */
void cg_fn_begin(CgFn *f, CgLlvm *L, const CgProgram *prog, LLVMValueRef fn);
/* Close the entry block (branch to the body). */
void cg_fn_end(CgFn *f);
/* An IrDim as an i64, computed once in the entry block. */
LLVMValueRef cg_dim(CgFn *f, IrDim d);
/* plan.c: an internal `name`(sym, offs) -> bytes writing each region's
 * offset into offs (all of pl's regions, each rounded up to align);
 * -1 when the total would overflow. */
LLVMValueRef cg_emit_plan(CgLlvm *L, const CgProgram *p, const CgPlan *pl, int align,
                          const char *name);
/* The address of buffer id in workspace ws, offs as filled by the plan
 * function (NULL for a buffer not planned). */
LLVMValueRef cg_plan_addr(CgFn *f, LLVMValueRef ws, LLVMValueRef offs, const CgPlan *pl,
                          int align, int id);
LLVMValueRef cg_poly(CgFn *f, const CgPoly *p);
/* An i64 stack variable in the entry block. */
LLVMValueRef cg_var(CgFn *f, const char *name);
/* A variable of type t (an alloca in the entry block, named name). */
LLVMValueRef cg_var_of(CgFn *f, LLVMTypeRef t, const char *name);
/* The i64 constant v. */
LLVMValueRef cg_i64(CgFn *f, int64_t v);
/* A counted loop: for (i = init; i < limit; i += step). cg_loop_begin
 * returns i, the builder in the body; cg_loop_end closes it and continues
 * after the loop. */
typedef struct CgLoop {
	LLVMValueRef var; /* the counter (i64, in the entry block) */
	LLVMBasicBlockRef head, exit;
} CgLoop;
LLVMValueRef cg_loop_begin(CgFn *f, CgLoop *lp, LLVMValueRef init, LLVMValueRef limit);
void cg_loop_end(CgFn *f, CgLoop *lp, LLVMValueRef i, LLVMValueRef step);

/* Emit the kernel function of a MAP, SOFTMAX, LAYER_NORM, REDUCE or
 * GATHER step, named step->fn (internal linkage). */
bool cg_emit_kernel(CgLlvm *L, const CgProgram *prog, const CgStep *st);
/* For rt_attention: SOFTMAX step st as `void name(void *ctx, int64_t
 * begin, int64_t end, float *rows)`, its result and its view `view` (the
 * scores; both compact f32 rows) read and written in place at rows + (r
 * - begin) * (row length) instead of their buffers: one unit's rows in a
 * scratch. */
bool cg_emit_softmax_rows(CgLlvm *L, const CgProgram *prog, const CgStep *st, int view,
                          const char *name);

/* ---- kernels_elem.c: the per-op column (elementwise values) ------------------------ */

/* Values of one element (lanes == 1) or of vw consecutive elements. */
typedef struct CgVal {
	LLVMValueRef v;
	IrDType t;  /* F32, I64 or BOOL: the compute type */
} CgVal;

/* Emits the op of node n on its input values (already evaluated). */
typedef CgVal (*CgElemFn)(CgFn *f, const IrNode *n, const CgVal *in, int lanes);

/* How an op is lowered on the CPU; the codegen column of ops.def. */
typedef enum {
	CGK_NONE = 0,   /* not supported */
	CGK_SOURCE,     /* input, param: buffers; const, arange: values */
	CGK_ELEM,       /* elementwise: `elem` emits it */
	CGK_VIEW,       /* strided view of its input, no code */
	CGK_GEMM,       /* linear, matmul */
	CGK_ROW,        /* softmax, layer_norm */
	CGK_REDUCE,     /* sum, mean, max */
	CGK_GATHER,     /* embedding */
	CGK_CAT,        /* copies into slices of the output */
	CGK_CALL,       /* fused / call: the body */
} CgOpKind;

typedef struct CgOpInfo {
	CgOpKind kind;
	CgElemFn elem;
} CgOpInfo;

extern const CgOpInfo cg_cpu_ops[OP_COUNT];

/* Compute type of a dtype: F32 for floats, I64 for ints, BOOL. */
IrDType cg_compute_type(IrDType t);
LLVMTypeRef cg_type(CgLlvm *L, IrDType compute, int lanes);
CgVal cg_convert(CgFn *f, CgVal v, IrDType to, int lanes);
/* A scalar x in every lane; a constant c in every lane (lanes 1: itself). */
LLVMValueRef cg_splat(CgFn *f, LLVMValueRef x, int lanes);
LLVMValueRef cg_splat_const(LLVMValueRef c, int lanes);
LLVMValueRef cg_constf(CgFn *f, double v, int lanes);
LLVMValueRef cg_consti(CgFn *f, int64_t v, int lanes);
CgVal cg_const(CgFn *f, IrDType t, double v, int lanes);
/* Load `lanes` elements of a buffer of storage type st at p[off], spaced
 * `stride` elements apart (stride 0: one element, splatted; NULL: 1). */
CgVal cg_load(CgFn *f, IrDType st, LLVMValueRef p, LLVMValueRef off,
              LLVMValueRef stride, int stride_class, int lanes);
/* Store v (converted to storage type st) at p[off] (contiguous lanes). */
void cg_store(CgFn *f, IrDType st, LLVMValueRef p, LLVMValueRef off, CgVal v,
              LLVMValueRef stride, int stride_class, int lanes);
/* The lanes elements of type et at p[off + i * stride] (p an et*; cls 0:
 * one element, splatted; 1: one vector access, aligned to vec_align; 2:
 * one by one, each aligned to align), as they are stored, and the stores
 * of such a vector x: what cg_load / cg_store and the GPU kernels' loads
 * and stores do around their conversions. */
LLVMValueRef cg_load_lanes(CgFn *f, LLVMTypeRef et, LLVMValueRef p, LLVMValueRef off,
                           LLVMValueRef stride, int cls, int lanes, unsigned align,
                           unsigned vec_align);
void cg_store_lanes(CgFn *f, LLVMValueRef x, LLVMTypeRef et, LLVMValueRef p, LLVMValueRef off,
                    LLVMValueRef stride, int cls, int lanes, unsigned align, unsigned vec_align);

/* A fused expression evaluated at position j of a row, for the CPU and the
 * GPU kernels alike: nodes already emitted are remembered (memo), and a
 * leaf's view is read by the kernel's own `leaf` (a load; for an index
 * view, the index: cg_eval_index). */
typedef struct CgEval {
	const CgExpr *expr;
	LLVMValueRef j; /* position in the row */
	int lanes;      /* elements of each value */
	int nmemo;
	const IrNode *memo_n[128];
	CgVal memo_v[128];
	bool bad;      /* an op without an elementwise emitter */
	bool contract; /* a * b + c as one fused multiply-add (cg_eval) */
	/* leaf n, of view `view`, at j */
	CgVal (*leaf)(CgFn *f, struct CgEval *x, int view, const IrNode *n);
} CgEval;
/* The value of node n (memo first). */
CgVal cg_eval(CgFn *f, CgEval *x, const IrNode *n);
/* An index view's values from index i, as type t: i, i + s, ..., i +
 * (lanes - 1) s (s by stride class: 0, 1 or the stride `step`). */
CgVal cg_eval_index(CgFn *f, LLVMValueRef i, int cls, LLVMValueRef step, IrDType t,
                    int lanes);

/* ---- kernels_math.c: vectorisable float math ------------------------------------- */

/* All take and return f32 (or <vw x f32>) values; accuracy is stated in
 * docs/codegen.md and tested in tests/codegen/test_math.c. */
LLVMValueRef cg_math_exp(CgFn *f, LLVMValueRef x, int lanes);
LLVMValueRef cg_math_tanh(CgFn *f, LLVMValueRef x, int lanes);
LLVMValueRef cg_math_erf(CgFn *f, LLVMValueRef x, int lanes);
LLVMValueRef cg_math_gelu(CgFn *f, LLVMValueRef x, int lanes);
LLVMValueRef cg_math_gelu_tanh(CgFn *f, LLVMValueRef x, int lanes);
LLVMValueRef cg_math_sigmoid(CgFn *f, LLVMValueRef x, int lanes);
/* Helpers shared with the kernels. */
LLVMValueRef cg_fma(CgFn *f, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c, int lanes);
LLVMValueRef cg_select_lt(CgFn *f, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t,
                          LLVMValueRef e);
LLVMValueRef cg_fmax_nan(CgFn *f, LLVMValueRef a, LLVMValueRef b);
/* NVPTX: one PTX instruction ("ex2.approx.ftz.f32 $0, $1;", operand
 * constraints "=f,f") applied lane by lane to the nargs values args, each
 * lane's result of type elem. */
LLVMValueRef cg_ptx(CgFn *f, const char *text, const char *constraints, LLVMTypeRef elem,
                    LLVMValueRef *args, int nargs, int lanes);

/* ---- steps.c: the step table of profiles ----------------------------------------------- */

/* The "bias" MAPs that pre-fill C before GEMM step s (beta = 1, no outer
 * batch loop) from a parameter read along C's columns, one per member,
 * found just before it (past operand copies): their bias views and
 * step indices, for a GEMM that adds the bias itself; false if they are
 * not all there. */
bool cg_find_bias(const CgProgram *p, int s, const CgView **bias, int *steps);
/* Steps s, s + 1, s + 2 as attention, or NULL: scores = Q K^T (GEMM),
 * probs = softmax(expr(scores, ...)) (SOFTMAX), O = probs V (GEMM), each
 * intermediate a temp read by the next step only, compact [batches, S, S]
 * at offset 0, queries and keys one length, the two products over the
 * same batches. The result is a new CG_ATTENTION step (see CgStep; mt 1)
 * for the device's own checks. */
CgStep *cg_find_attention(const CgProgram *p, int s);
/* The model-graph node a step computes (or helps to): its name. */
const char *cg_step_node(const CgStep *st);

/* The name of each step in profiles (unique; see steps.c). */
const char **cg_step_names(Arena *a, const CgStep *const *steps, int n);
/* "map", "gemm", ... */
const char *cg_kind_name(CgKind k);
/* A private constant RtStepDesc[n] for steps (as i8*; NULL when n is 0),
 * named `name`; NULL after an error. */
LLVMValueRef cg_emit_step_table(CgLlvm *L, Arena *a, const CgStep *const *steps, int n,
                                const char *name);
/* An internal RtStepCostFn `name` for steps (as i8*; NULL when n is 0);
 * esize(ctx, buf) is the bytes of an element of buffer buf. */
LLVMValueRef cg_emit_step_costs(CgLlvm *L, const CgProgram *p, const CgStep *const *steps,
                                int n, int (*esize)(const void *ctx, int buf),
                                const void *ctx, const char *name);

/* ---- host.c: what both drivers' host functions are built from ------------------------- */

LLVMValueRef cg_i32c(CgLlvm *L, int64_t v);
LLVMValueRef cg_i64c(CgLlvm *L, int64_t v);
/* RtExec's and DLDataType's LLVM types, checked against rt.h's layouts
 * (NULL after an error, reported). */
LLVMTypeRef cg_host_exec_type(CgLlvm *L);
LLVMTypeRef cg_host_dl_type(CgLlvm *L);
/* The DLDataType constant of dtype t (dl: cg_host_dl_type's). */
LLVMValueRef cg_host_dl(CgLlvm *L, LLVMTypeRef dl, IrDType t);
/* An internal `name`(sym) -> bytes: the workspace's size, by plan function
 * `plan` (cg_emit_plan) for pl; UINT64_MAX on overflow. */
LLVMValueRef cg_host_workspace_size(CgLlvm *L, const char *name, const CgPlan *pl,
                                    LLVMValueRef plan);

/* A forward's buffers: bufs[0..n) (bufs[i]->id == i), the temporaries
 * placed by plan (its function plan_fn, regions aligned to align);
 * esize(ctx, buf) is the bytes of an element of buffer buf. */
typedef struct CgHostBufs {
	CgBuf *const *bufs;
	int n;
	const CgPlan *plan;
	LLVMValueRef plan_fn;
	int align;
	int (*esize)(const void *ctx, int buf);
	const void *ctx;
} CgHostBufs;

/* A forward(ex) being built. */
typedef struct CgHost {
	CgLlvm *L;
	CgFn f;
	LLVMTypeRef exec;    /* RtExec */
	LLVMValueRef ex;     /* the parameter, RtExec* as i8* */
	LLVMValueRef *base;  /* [bufs.n] i8* of each buffer */
	CgHostBufs bufs;
	LLVMValueRef rt_prof_step;
} CgHost;

/* Begin an internal i32 `name`(i8* ex): RtExec's fields read in the entry
 * block (h->f.sym among them), the plan called, every buffer's base
 * address; the builder in the body after them. */
void cg_host_begin(CgHost *h, CgLlvm *L, const CgProgram *p, const char *name,
                   LLVMTypeRef exec, const CgHostBufs *bufs);
/* The last profile mark (after nsteps steps), `return SLAPO_OK`; the function. */
LLVMValueRef cg_host_end(CgHost *h, int nsteps);
/* RtExec's field i, of type t. */
LLVMValueRef cg_host_field(CgHost *h, int i, LLVMTypeRef t);
/* if (ex->prof) rt_prof_step(ex, step): step `step` starts here. */
void cg_host_prof_mark(CgHost *h, int step);
/* The address of element `off` of buffer buf (NULL for buf < 0); of a view's
 * first element; p + elems * esize bytes. */
LLVMValueRef cg_host_elem_addr(CgHost *h, int buf, LLVMValueRef off);
LLVMValueRef cg_host_view_addr(CgHost *h, const CgView *v);
LLVMValueRef cg_host_offset(CgHost *h, LLVMValueRef p, LLVMValueRef elems, int esize);
LLVMValueRef cg_host_imax(CgHost *h, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef cg_host_imin(CgHost *h, LLVMValueRef a, LLVMValueRef b);

/* A GEMM step's outer batch dims 0..n as loops; offa, offb, offc: the
 * operands' element offsets inside them. */
typedef struct CgBatchLoops {
	int n;
	CgLoop loop[IR_MAX_DIMS];
	LLVMValueRef iv[IR_MAX_DIMS];
	LLVMValueRef offa, offb, offc;
} CgBatchLoops;
void cg_host_batch_open(CgHost *h, const CgStep *st, int nloop, CgBatchLoops *bl);
void cg_host_batch_close(CgHost *h, CgBatchLoops *bl);
/* i1: whether a GEMM group's weights (the first at b0) and, with bias, each
 * member's bias view (the first at bias0) lie side by side, so that one
 * call can do the group. */
LLVMValueRef cg_host_group_adjacent(CgHost *h, const CgStep *st, LLVMValueRef b0,
                                    const CgView *const *bias, LLVMValueRef bias0);

/* ---- driver.c: forward(), workspace_size() and the descriptor ----------------------- */

/* fuse_attention: attention's GEMM, softmax and GEMM as rt_attention where
 * cg_find_attention finds them (else three steps). */
bool cg_emit_driver(CgLlvm *L, const CgProgram *prog, bool fuse_attention);

/* ---- link.c --------------------------------------------------------------------- */

/* Link obj with the runtime into a shared library exporting only
 * slapo_get_api. */
bool cg_link(Diag *d, const char *obj, const char *out, const char *rt_lib,
             const char *cc);
/* The runtime archive: explicit, $SLAPO_RT_LIB, or found relative to the
 * running executable (<exe>/../runtime/, <exe>/../lib/). NULL if none. */
const char *cg_find_rt_lib(Arena *a, const char *explicit_path);

#endif
