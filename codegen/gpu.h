/* gpu.h - the CUDA backend of the code generator (prefix cg_gpu_).
 *
 * From the same kernel graph as the CPU code (CgProgram, lower.c):
 *
 *   gpu_plan.c     storage types on the device (precision), GEMM bias
 *                  epilogues, operand conversions, the device memory plan
 *                  and the parameter block layout
 *   gpu_fuse.c     the fusions it applies: attention as one kernel, GELU
 *                  (and opt-in residual) GEMM epilogues
 *   kernels_gpu.c  one NVPTX kernel per MAP / SOFTMAX / LAYER_NORM / REDUCE /
 *                  GATHER step (threads over elements, one block per row)
 *   attention_gpu.c
 *                  the fused ATTENTION kernel (tensor cores, inline PTX),
 *                  on kernels_gpu.c's kernel builder (the cg_gk_ section)
 *   wgmma.c        Hopper's warpgroup products for its Hopper form (cg_wg_)
 *   nvptx.c        the NVPTX LLVM context (nvptx64-nvidia-cuda, sm_80, PTX
 *                  7.0), libdevice for the math LLVM cannot lower, O3,
 *                  identical kernels merged, the PTX text; the sm_90a
 *                  module (PTX 8.0) of Hopper's kernels
 *   driver_gpu.c   host code in the model library: slapo_gpu_forward (kernel
 *                  launches and GEMMs through the runtime's rt_gpu_*
 *                  services), its workspace size, and slapo_gpu_desc
 *
 * docs/gpu.md describes the design; runtime/README.md the contract.
 */
#ifndef SLAPO_CODEGEN_GPU_H
#define SLAPO_CODEGEN_GPU_H

#include "codegen/codegen.h"

typedef enum {
	CG_PREC_FP32 = 0, /* values of rt.h's RT_PREC_* */
	CG_PREC_TF32 = 1,
	CG_PREC_BF16 = 2,
	CG_PREC_FP16 = 3,
} CgPrecision;

/* "fp32", "tf32", "bf16", "fp16" (also "f32", "bfloat16", "float16", "half") */
bool cg_precision_parse(const char *s, CgPrecision *out);
const char *cg_precision_name(CgPrecision p);

/* One step of the GPU program, in order. */
typedef struct CgGpuStep {
	const CgStep *st; /* the kernel-graph step (or a conversion MAP
	                        * made by gpu_plan.c) */
	int kernel;       /* its kernel, or -1 for a GEMM */
	int kernel_small; /* ATTENTION: the kernel of `small`, for grids too
	                   * small to fill the GPU with the main one
	                   * (ATT_SMALL_GRID) */
	const CgStep *small; /* ATTENTION: st with one m16 tile a warp (64
	                      * queries a block); NULL for other steps */
	int kernel_h;     /* ATTENTION: `small` on Hopper's wgmma (the sm_90a
	                   * module), or -1 */
	int object;       /* GATHER: index in CgGpu.objects */
	int a_buf, b_buf; /* GEMM: A / B read from these buffers (converted
	                        * copies, same offsets), or -1 */
	bool bias;        /* GEMM: the bias maps before it are its epilogue */
	bool gelu;        /* GEMM: with the bias, GELU (tanh form) too: the
	                   * MAP after it is its epilogue (RT_EPI_GELU_BIAS) */
	CgView bias_view[CG_MAX_GROUP]; /* per member (ngroup, or 1) */
	bool res;         /* GEMM: with the bias, a residual added as cuBLASLt's
	                   * C input (res_view, laid out as C): the row kernel
	                   * after it reads the sum alone */
	CgView res_view;
} CgGpuStep;

enum {
	CG_GPU_ALIGN = 256 /* of every workspace buffer on the device */
};

typedef struct CgGpu {
	const CgProgram *prog;
	CgPrecision prec;
	/* buffers: the program's, then conversion temps */
	int nbufs;
	CgBuf **bufs;
	IrDType *btype; /* [nbufs] storage type on the device */
	CgPlan plan;    /* the device workspace, by the GPU steps' lifetimes */
	/* steps */
	int nsteps;
	CgGpuStep *steps;
	int max_views;
	/* kernels (after merging identical ones) */
	int nkernels;
	const char **kernel_names;
	int nobjects;
	const char **objects; /* names gathers report */
	/* parameters: device type (owners; aliases carry their owner's) and
	 * byte offset in the device block */
	IrDType *ptype;
	uint64_t *poff;
	uint64_t params_size;
	/* the module; the sm_90a module, the last nkernels_h kernels */
	char *ptx;
	size_t ptx_len;
	int nkernels_h;
	char *ptx_h;
	const char *target; /* "sm_80" */
} CgGpu;

/* What cg_gpu_plan may fuse:
 *   CG_FUSE_ATTENTION  (bf16/fp16) attention's GEMM, softmax and GEMM as
 *                      one CG_ATTENTION step (tensor cores, inline PTX:
 *                      not for gpu_emu.c)
 *   CG_FUSE_GELU       (bf16/fp16) a GEMM and the gelu(C + bias) after it
 *                      as one cuBLASLt call with its bias + GELU epilogue,
 *                      which computes GELU's tanh form (a gelu_tanh is
 *                      fused without it)
 *   CG_FUSE_RESIDUAL   (any precision) a GEMM whose output only feeds a
 *                      layer_norm of (C + bias) + R: the GEMM adds the bias
 *                      (epilogue) and R (as its C input, beta 1), the
 *                      layer_norm reads the sum alone */
enum {
	CG_FUSE_ATTENTION = 1,
	CG_FUSE_GELU = 2,
	CG_FUSE_RESIDUAL = 4
};

/* gpu_plan.c: types, epilogues, conversions, slots, parameter layout;
 * fuse: CG_FUSE_* flags. */
bool cg_gpu_plan(CgGpu *g, const CgProgram *prog, CgPrecision prec, unsigned fuse);
/* gpu_plan.c, for gpu_fuse.c: a new temp of n elements of device type t
 * (named after buffer `like`); a MAP converting all of buffer src into
 * buffer dst, for operand `which` of step `owner`; and that MAP added to
 * g's steps (dst < 0: into a new temp of type t). The first and last
 * return the buffer id. */
int cg_gpu_temp(CgGpu *g, IrDim n, IrDType t, int like);
CgStep *cg_gpu_convert_map(CgGpu *g, int dst, int src, const CgStep *owner,
                           const char *which);
int cg_gpu_convert(CgGpu *g, int dst, int src, IrDType t, const CgStep *owner,
                   const char *which);

/* gpu_fuse.c: steps s, s + 1, s + 2 (attention) or s, s + 1 as one GPU
 * step, or NULL (see each function's comment there):
 *   fuse_attention      the attention kernel, Q, K, V, O of type t (16-bit)
 *   fuse_attention_f16  at tf32: the f16 kernel between conversions (their
 *                       MAPs added to g's steps; *back the one after it)
 *   fuse_gelu           a GEMM with its GELU (and bias) as the epilogue;
 *                       folded: the bias the GEMM already adds
 *   fuse_residual       a GEMM adding the LayerNorm's bias and residual
 *                       (*ln: the LayerNorm of the sum alone) */
CgStep *cg_gpu_fuse_attention(const CgGpu *g, const CgProgram *p, int s, IrDType t);
CgStep *cg_gpu_fuse_attention_f16(CgGpu *g, const CgProgram *p, int s, CgStep **back);
CgStep *cg_gpu_fuse_gelu(const CgGpu *g, const CgProgram *p, int s, bool erf,
                         const CgView *folded, CgView *bias);
CgStep *cg_gpu_fuse_residual(const CgGpu *g, const CgProgram *p, int s, CgView *bias,
                             CgView *res, CgStep **ln);

/* The GPU steps and memory plan, for --dump-after=gpu. */
void cg_gpu_print(StrBuf *b, const CgGpu *g);
/* Bytes of one element of a device storage type. */
int cg_gpu_elem_size(IrDType t);
/* RT_GPU_* of a float storage type. */
int cg_gpu_gemm_type(IrDType t);

/* nvptx.c: plans, emits every kernel and makes the PTX. Returns false
 * after an error; sets *unavailable (and returns false without an error
 * diagnostic) when GPU code cannot be made on this machine (LLVM without
 * NVPTX, or libdevice needed and not found): the library is then CPU-only
 * and `why` says why. */
bool cg_gpu_build(CgGpu *g, const CgProgram *prog, CgPrecision prec, unsigned fuse,
                  bool *unavailable, char *why, size_t whylen);

/* kernels_gpu.c: the kernel of step gs (named `name`) into an NVPTX
 * module; false if it computes an op it cannot emit. Also the runtime's
 * utility kernels (slapo_util_bias_*). */
bool cg_gpu_emit_kernel(CgLlvm *L, const CgGpu *g, const CgGpuStep *gs, const char *name);
void cg_gpu_emit_utils(CgLlvm *L);
/* Adds fn to !nvvm.annotations as a kernel (an entry point of the PTX). */
void cg_gpu_mark_kernel(CgLlvm *L, LLVMValueRef fn);
/* Caps fn's registers (.maxnreg). Row kernels: their vector path needs ~40,
 * the scalar fallback (misaligned or strided rows) would take ~170 and with
 * them the occupancy of every launch; capped, the fallback spills instead. */
enum { ROW_MAX_REGS = 64 };
/* The attention kernel: blocks of 128 threads over ATT_QUERIES queries
 * (each warp two m16 tiles, so that every K and V fragment read from
 * shared memory feeds two matrix products); two blocks per SM fit 255
 * registers. */
enum { ATT_QUERIES = 128, ATT_MAX_REGS = 255 };
/* Hopper's form (sm_90a module): 64 queries a block, one warpgroup; 128
 * registers (12 bytes spilled) let four blocks share an SM, measured
 * faster on an H200 than 168 or 232, and than 96 (five blocks, 132 bytes
 * spilled) */
enum { ATT_H_MAX_REGS = 128 };
/* Fewer blocks than this (of ATT_QUERIES queries) and the launch takes the
 * kernel of 64-query blocks: twice the blocks, each half as long. */
enum { ATT_SMALL_GRID = 256 };
void cg_gpu_limit_regs(CgLlvm *L, LLVMValueRef fn, int regs);
/* The parameters every kernel takes, in order: one i8* per view of the
 * step, one i64 per descriptor symbol, the error word (i8*) and the
 * object index (i64). */
int cg_gpu_kernel_nargs(const CgProgram *prog, const CgStep *st);

/* ---- shared by kernels_gpu.c and attention_gpu.c (prefix cg_gk_) ----------------------
 * The kernel builder: what cg_gpu_emit_kernel sets up for a step, and the
 * helpers its emitters use. Nothing else in codegen uses this section. */

/* A kernel being emitted: its step and the operands of its views. */
typedef struct CgGkOps {
	const CgGpu *g;
	const CgStep *st;
	LLVMValueRef ptr[CG_MAX_VIEWS]; /* i8*: element 0; NULL for index views */
	IrDType sty[CG_MAX_VIEWS];      /* storage type of each view */
	LLVMValueRef stride[CG_MAX_VIEWS][IR_MAX_DIMS]; /* elements */
	int cls[CG_MAX_VIEWS];          /* last-dim stride: 0, 1 or 2 (other) */
	LLVMValueRef off[CG_MAX_VIEWS]; /* each view's offset at this row */
	CgEval x;                       /* expression evaluation (cg_gk_eval) */
	LLVMValueRef errword, object; /* error word (i8*), object index (i64) */
} CgGkOps;

/* PTX's special register `name` ("tid.x", "ctaid.y", ...) as an i64. */
LLVMValueRef cg_gk_sreg(CgFn *f, const char *name);
/* The value of type t at p. */
LLVMValueRef cg_gk_ld(CgFn *f, LLVMTypeRef t, LLVMValueRef p);
/* if (cond) { ...: returns the block after; the builder is in the
 * then-block. cg_gk_if_end closes it and continues in the block after. */
LLVMBasicBlockRef cg_gk_if_begin(CgFn *f, LLVMValueRef cond);
void cg_gk_if_end(CgFn *f, LLVMBasicBlockRef after);
/* o->off[k] of views [k0, k1) for row r of dims [0, nouter). */
void cg_gk_row_offsets(CgFn *f, CgGkOps *o, const IrDim *dim, int nouter, LLVMValueRef r,
                       int k0, int k1);
/* Node n of the step's expression at index o->j (o->lanes lanes),
 * memoised in o; sets o->bad for an op it cannot emit. */
CgVal cg_gk_eval(CgFn *f, CgGkOps *o, const IrNode *n);
/* a + b (op 0) or the NaN-keeping max of a and b (op 1), f32. */
LLVMValueRef cg_gk_combine(CgFn *f, int op, LLVMValueRef a, LLVMValueRef b);
/* v (f32) of the lane whose index differs from this one's by the bits of d. */
LLVMValueRef cg_gk_shfl_xor(CgFn *f, LLVMValueRef v, int d);
/* The block's barrier (bar.sync 0). */
void cg_gk_barrier(CgFn *f);

/* wgmma.c: Hopper's warpgroup products (sm_90a module only; prefix cg_wg_).
 *   cg_wg_through  text as an asm statement the n values (f32 or i32) pass
 *                  through: ordered after what it orders
 *   cg_wg_desc     descriptor of the 128-byte-swizzled tile at shared
 *                  address p (rows of 128 bytes, 1024-byte aligned; each
 *                  16-byte chunk c of row r at chunk c ^ r % 8), start
 *                  moved by off bytes (a multiple of 16)
 *   cg_wg_issue    starts d = A B (+ d when acc), 64 x 64, over `steps`
 *                  k16 steps: A K-major at atile (32 bytes a step) or the
 *                  registers A[step] when atile is NULL; B at btile
 *                  (step_bytes a step), MN-major when trans; bf16, or f16
 *                  with f16. One commit group; d is not to be read before
 *                  cg_wg_wait
 *   cg_wg_wait     waits until at most `pending` groups are in flight; d
 *                  (of a group then done) through the wait */
void cg_wg_through(CgFn *f, const char *text, LLVMValueRef *v, int n);
LLVMValueRef cg_wg_desc(CgFn *f, LLVMValueRef p, int off);
void cg_wg_issue(CgFn *f, bool f16, LLVMValueRef d[32], bool acc, LLVMValueRef A[][4],
                 LLVMValueRef atile, int steps, LLVMValueRef btile, int step_bytes,
                 bool trans);
void cg_wg_wait(CgFn *f, LLVMValueRef d[32], int pending);

/* attention_gpu.c: the body of a CG_ATTENTION step's kernel (128 threads),
 * o set up by cg_gpu_emit_kernel; bf16 or f16 operands. */
void cg_gk_emit_attention(CgFn *f, CgGkOps *o);

/* gpu_emu.c: the kernels compiled for the host into the shared library
 * `out`, for tests/gpu/fake_cuda.c (testing without a GPU). */
bool cg_gpu_build_emu(const CgGpu *g, Diag *d, const char *out, const char *cc);

/* driver_gpu.c: host code and slapo_gpu_desc into the host module (before
 * cg_emit_driver, which points the descriptor at it). */
bool cg_gpu_emit_host(CgLlvm *L, const CgGpu *g);

#endif
