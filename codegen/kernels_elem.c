/* kernels_elem.c - the CPU column of the op table (cg_cpu_ops, indexed by
 * IrOp as ops.def defines them) and the elementwise emitters: each turns
 * its inputs' values for one element, or for a vector of consecutive
 * elements, into its output's. Also compute types, conversions, and the
 * loads and stores of storage types.
 *
 * Compute types: every float dtype computes in f32 (the compiled dtype),
 * integers in i64, bool in i1. Storage: f32, i64, i32, bool as one byte.
 * Conversions follow the interpreter: float to int truncates toward zero
 * (saturating; NaN gives 0), anything to bool tests != 0.
 */
#include <math.h>

#include "codegen/codegen.h"

#define B (f->L->b)

IrDType cg_compute_type(IrDType t)
{
	switch (t) {
	case IR_I64:
	case IR_I32:
		return IR_I64;
	case IR_BOOL:
		return IR_BOOL;
	default:
		return IR_F32;
	}
}

LLVMTypeRef cg_type(CgLlvm *L, IrDType t, int lanes)
{
	LLVMTypeRef e;
	switch (t) {
	case IR_I64: e = L->t_i64; break;
	case IR_I32: e = L->t_i32; break;
	case IR_BOOL: e = L->t_i1; break;
	default: e = L->t_f32; break;
	}
	return lanes > 1 ? LLVMVectorType(e, (unsigned)lanes) : e;
}

LLVMValueRef cg_splat_const(LLVMValueRef c, int lanes)
{
	if (lanes == 1)
		return c;
	LLVMValueRef e[64];
	for (int i = 0; i < lanes; i++)
		e[i] = c;
	return LLVMConstVector(e, (unsigned)lanes);
}

LLVMValueRef cg_constf(CgFn *f, double v, int lanes)
{
	return cg_splat_const(LLVMConstReal(f->L->t_f32, v), lanes);
}

LLVMValueRef cg_consti(CgFn *f, int64_t v, int lanes)
{
	return cg_splat_const(LLVMConstInt(f->L->t_i64, (unsigned long long)v, 1), lanes);
}

CgVal cg_const(CgFn *f, IrDType t, double v, int lanes)
{
	CgVal r = {.t = cg_compute_type(t)};
	if (r.t == IR_F32)
		r.v = cg_constf(f, v, lanes);
	else if (r.t == IR_I64)
		r.v = cg_consti(f, isfinite(v) ? (int64_t)v : 0, lanes);
	else
		r.v = cg_splat_const(LLVMConstInt(f->L->t_i1, v != 0, 0), lanes);
	return r;
}

LLVMValueRef cg_splat(CgFn *f, LLVMValueRef x, int lanes)
{
	if (lanes == 1)
		return x;
	LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(x), (unsigned)lanes);
	LLVMValueRef v = LLVMBuildInsertElement(B, LLVMGetUndef(vt), x,
	                                        LLVMConstInt(f->L->t_i32, 0, 0), "");
	LLVMValueRef mask = LLVMConstNull(LLVMVectorType(f->L->t_i32, (unsigned)lanes));
	return LLVMBuildShuffleVector(B, v, LLVMGetUndef(vt), mask, "");
}

CgVal cg_convert(CgFn *f, CgVal v, IrDType to, int lanes)
{
	to = cg_compute_type(to);
	if (v.t == to)
		return v;
	CgVal r = {.t = to};
	LLVMTypeRef tt = cg_type(f->L, to, lanes);
	if (v.t == IR_F32 && to == IR_I64) {
		LLVMValueRef fn = cg_llvm_intrinsic(f->L, "llvm.fptosi.sat", tt,
		                                    cg_type(f->L, IR_F32, lanes), 1);
		r.v = cg_llvm_call(f->L, fn, &v.v, 1);
	} else if (v.t == IR_F32 && to == IR_BOOL) {
		r.v = LLVMBuildFCmp(B, LLVMRealUNE, v.v, cg_constf(f, 0, lanes), "");
	} else if (v.t == IR_I64 && to == IR_F32) {
		r.v = LLVMBuildSIToFP(B, v.v, tt, "");
	} else if (v.t == IR_I64 && to == IR_BOOL) {
		r.v = LLVMBuildICmp(B, LLVMIntNE, v.v, cg_consti(f, 0, lanes), "");
	} else if (v.t == IR_BOOL && to == IR_F32) {
		r.v = LLVMBuildUIToFP(B, v.v, tt, "");
	} else { /* bool -> i64 */
		r.v = LLVMBuildZExt(B, v.v, tt, "");
	}
	return r;
}

/* ---- memory ------------------------------------------------------------------ */

static LLVMTypeRef storage_elem(CgLlvm *L, IrDType st)
{
	switch (st) {
	case IR_I64: return L->t_i64;
	case IR_I32: return L->t_i32;
	case IR_BOOL: return L->t_i8;
	default: return L->t_f32;
	}
}

/* a storage element (or vector of them) widened to its compute type */
static CgVal widen(CgFn *f, IrDType st, LLVMValueRef x, int lanes)
{
	CgVal r = {.v = x, .t = cg_compute_type(st)};
	if (st == IR_I32)
		r.v = LLVMBuildSExt(B, x, cg_type(f->L, IR_I64, lanes), "");
	else if (st == IR_BOOL)
		r.v = LLVMBuildICmp(B, LLVMIntNE, x,
		                    cg_splat_const(LLVMConstInt(f->L->t_i8, 0, 0), lanes), "");
	return r;
}

static LLVMValueRef narrow(CgFn *f, IrDType st, CgVal v, int lanes)
{
	v = cg_convert(f, v, st, lanes);
	if (st == IR_I32)
		return LLVMBuildTrunc(B, v.v, cg_type(f->L, IR_I32, lanes), "");
	if (st == IR_BOOL)
		return LLVMBuildZExt(B, v.v,
		                     lanes > 1 ? LLVMVectorType(f->L->t_i8, (unsigned)lanes)
		                               : f->L->t_i8,
		                     "");
	return v.v;
}

LLVMValueRef cg_load_lanes(CgFn *f, LLVMTypeRef et, LLVMValueRef p, LLVMValueRef off,
                           LLVMValueRef stride, int cls, int lanes, unsigned align,
                           unsigned vec_align)
{
	if (lanes == 1 || cls == 0) {
		LLVMValueRef x = LLVMBuildLoad2(B, et, LLVMBuildInBoundsGEP2(B, et, p, &off, 1, ""), "");
		LLVMSetAlignment(x, align);
		return cg_splat(f, x, lanes);
	}
	LLVMTypeRef vt = LLVMVectorType(et, (unsigned)lanes);
	if (cls == 1) {
		LLVMValueRef vp = LLVMBuildBitCast(B, LLVMBuildInBoundsGEP2(B, et, p, &off, 1, ""),
		                                   LLVMPointerType(vt, 0), "");
		LLVMValueRef x = LLVMBuildLoad2(B, vt, vp, "");
		LLVMSetAlignment(x, vec_align);
		return x;
	}
	LLVMValueRef v = LLVMGetUndef(vt);
	for (int i = 0; i < lanes; i++) {
		LLVMValueRef o = LLVMBuildAdd(
		        B, off, LLVMBuildMul(B, stride, LLVMConstInt(f->L->t_i64, (unsigned)i, 0), ""),
		        "");
		LLVMValueRef x = LLVMBuildLoad2(B, et, LLVMBuildInBoundsGEP2(B, et, p, &o, 1, ""), "");
		LLVMSetAlignment(x, align);
		v = LLVMBuildInsertElement(B, v, x, LLVMConstInt(f->L->t_i32, (unsigned)i, 0), "");
	}
	return v;
}

void cg_store_lanes(CgFn *f, LLVMValueRef x, LLVMTypeRef et, LLVMValueRef p, LLVMValueRef off,
                    LLVMValueRef stride, int cls, int lanes, unsigned align, unsigned vec_align)
{
	if (lanes == 1) {
		LLVMSetAlignment(LLVMBuildStore(B, x, LLVMBuildInBoundsGEP2(B, et, p, &off, 1, "")),
		                 align);
		return;
	}
	if (cls == 1) {
		LLVMValueRef vp = LLVMBuildBitCast(B, LLVMBuildInBoundsGEP2(B, et, p, &off, 1, ""),
		                                   LLVMPointerType(LLVMTypeOf(x), 0), "");
		LLVMSetAlignment(LLVMBuildStore(B, x, vp), vec_align);
		return;
	}
	for (int i = 0; i < lanes; i++) {
		LLVMValueRef o = LLVMBuildAdd(
		        B, off, LLVMBuildMul(B, stride, LLVMConstInt(f->L->t_i64, (unsigned)i, 0), ""),
		        "");
		LLVMValueRef e = LLVMBuildExtractElement(B, x, LLVMConstInt(f->L->t_i32, (unsigned)i, 0),
		                                         "");
		LLVMSetAlignment(LLVMBuildStore(B, e, LLVMBuildInBoundsGEP2(B, et, p, &o, 1, "")), align);
	}
}

/* stride_class: 0 = broadcast, 1 = contiguous, 2 = `stride` apart */
CgVal cg_load(CgFn *f, IrDType st, LLVMValueRef p, LLVMValueRef off, LLVMValueRef stride,
              int stride_class, int lanes)
{
	unsigned align = (unsigned)cg_elem_size(st);
	return widen(f, st,
	             cg_load_lanes(f, storage_elem(f->L, st), p, off, stride, stride_class, lanes,
	                           align, align),
	             lanes);
}

void cg_store(CgFn *f, IrDType st, LLVMValueRef p, LLVMValueRef off, CgVal v,
              LLVMValueRef stride, int stride_class, int lanes)
{
	unsigned align = (unsigned)cg_elem_size(st);
	cg_store_lanes(f, narrow(f, st, v, lanes), storage_elem(f->L, st), p, off, stride,
	               stride_class, lanes, align, align);
}

/* ---- emitters ------------------------------------------------------------------ */

/* The type both operands of a comparison compute in. */
static IrDType common_type(IrDType a, IrDType b)
{
	a = cg_compute_type(a);
	b = cg_compute_type(b);
	if (a == IR_F32 || b == IR_F32)
		return IR_F32;
	if (a == IR_I64 || b == IR_I64)
		return IR_I64;
	return IR_BOOL;
}

static LLVMValueRef call1(CgFn *f, const char *name, LLVMValueRef x, int lanes)
{
	LLVMValueRef fn = cg_llvm_intrinsic(f->L, name, cg_type(f->L, IR_F32, lanes), NULL, 1);
	return cg_llvm_call(f->L, fn, &x, 1);
}

static CgVal binop(CgFn *f, const IrNode *n, const CgVal *in, int lanes)
{
	IrDType t = cg_compute_type(n->dtype);
	LLVMValueRef a = cg_convert(f, in[0], t, lanes).v, b = cg_convert(f, in[1], t, lanes).v;
	CgVal r = {.t = t};
	if (t == IR_F32) {
		switch (n->op) {
		case OP_ADD: r.v = LLVMBuildFAdd(B, a, b, ""); break;
		case OP_SUB: r.v = LLVMBuildFSub(B, a, b, ""); break;
		case OP_MUL: r.v = LLVMBuildFMul(B, a, b, ""); break;
		case OP_DIV: r.v = LLVMBuildFDiv(B, a, b, ""); break;
		case OP_MAXIMUM: r.v = cg_fmax_nan(f, a, b); break;
		default: { /* minimum, NaN kept */
			LLVMValueRef take_a = LLVMBuildFCmp(B, LLVMRealULT, a, b, "");
			LLVMValueRef m = LLVMBuildSelect(B, take_a, a, b, "");
			LLVMValueRef bn = LLVMBuildFCmp(B, LLVMRealUNO, b, b, "");
			r.v = LLVMBuildSelect(B, bn, b, m, "");
		}
		}
	} else if (t == IR_I64) {
		switch (n->op) {
		case OP_ADD: r.v = LLVMBuildAdd(B, a, b, ""); break;
		case OP_SUB: r.v = LLVMBuildSub(B, a, b, ""); break;
		case OP_MUL: r.v = LLVMBuildMul(B, a, b, ""); break;
		case OP_MAXIMUM:
			r.v = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, a, b, ""), a, b, "");
			break;
		default:
			r.v = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, b, ""), a, b, "");
		}
	} else {
		switch (n->op) {
		case OP_ADD: case OP_MAXIMUM: r.v = LLVMBuildOr(B, a, b, ""); break;
		case OP_SUB: r.v = LLVMBuildXor(B, a, b, ""); break;
		default: r.v = LLVMBuildAnd(B, a, b, "");
		}
	}
	return r;
}

static CgVal e_pow(CgFn *f, const IrNode *n, const CgVal *in, int lanes)
{
	IrDType t = cg_compute_type(n->dtype);
	LLVMValueRef x = cg_convert(f, in[0], IR_F32, lanes).v;
	CgVal r = {.t = IR_F32};
	const IrNode *e = n->in[1];
	double p = e->op == OP_CONST ? e->fattr : NAN;
	if (p == 1)
		r.v = x;
	else if (p == 2)
		r.v = LLVMBuildFMul(B, x, x, "");
	else if (p == 3)
		r.v = LLVMBuildFMul(B, LLVMBuildFMul(B, x, x, ""), x, "");
	else if (p == 0.5)
		r.v = call1(f, "llvm.sqrt", x, lanes);
	else if (p == -1)
		r.v = LLVMBuildFDiv(B, cg_constf(f, 1, lanes), x, "");
	else if (p == -0.5)
		r.v = LLVMBuildFDiv(B, cg_constf(f, 1, lanes), call1(f, "llvm.sqrt", x, lanes), "");
	else if (p == 0)
		r.v = cg_constf(f, 1, lanes);
	else {
		LLVMValueRef fn = cg_llvm_intrinsic(f->L, "llvm.pow", cg_type(f->L, IR_F32, lanes),
		                                    NULL, 2);
		LLVMValueRef args[2] = {x, cg_convert(f, in[1], IR_F32, lanes).v};
		r.v = cg_llvm_call(f->L, fn, args, 2);
	}
	return cg_convert(f, r, t, lanes);
}

static CgVal compare(CgFn *f, const IrNode *n, const CgVal *in, int lanes)
{
	IrDType t = common_type(in[0].t, in[1].t);
	LLVMValueRef a = cg_convert(f, in[0], t, lanes).v, b = cg_convert(f, in[1], t, lanes).v;
	CgVal r = {.t = IR_BOOL};
	if (t == IR_F32) {
		LLVMRealPredicate p = LLVMRealOEQ;
		switch (n->op) {
		case OP_NE: p = LLVMRealUNE; break;
		case OP_LT: p = LLVMRealOLT; break;
		case OP_LE: p = LLVMRealOLE; break;
		case OP_GT: p = LLVMRealOGT; break;
		case OP_GE: p = LLVMRealOGE; break;
		default: break;
		}
		r.v = LLVMBuildFCmp(B, p, a, b, "");
	} else {
		bool u = t == IR_BOOL;
		LLVMIntPredicate p = LLVMIntEQ;
		switch (n->op) {
		case OP_NE: p = LLVMIntNE; break;
		case OP_LT: p = u ? LLVMIntULT : LLVMIntSLT; break;
		case OP_LE: p = u ? LLVMIntULE : LLVMIntSLE; break;
		case OP_GT: p = u ? LLVMIntUGT : LLVMIntSGT; break;
		case OP_GE: p = u ? LLVMIntUGE : LLVMIntSGE; break;
		default: break;
		}
		r.v = LLVMBuildICmp(B, p, a, b, "");
	}
	return r;
}

static CgVal e_where(CgFn *f, const IrNode *n, const CgVal *in, int lanes)
{
	IrDType t = cg_compute_type(n->dtype);
	LLVMValueRef c = cg_convert(f, in[0], IR_BOOL, lanes).v;
	CgVal r = {.t = t};
	r.v = LLVMBuildSelect(B, c, cg_convert(f, in[1], t, lanes).v,
	                      cg_convert(f, in[2], t, lanes).v, "");
	return r;
}

static CgVal e_masked_fill(CgFn *f, const IrNode *n, const CgVal *in, int lanes)
{
	IrDType t = cg_compute_type(n->dtype);
	LLVMValueRef m = cg_convert(f, in[1], IR_BOOL, lanes).v;
	CgVal r = {.t = t};
	r.v = LLVMBuildSelect(B, m, cg_const(f, t, n->fattr, lanes).v,
	                      cg_convert(f, in[0], t, lanes).v, "");
	return r;
}

static CgVal e_neg(CgFn *f, const IrNode *n, const CgVal *in, int lanes)
{
	IrDType t = cg_compute_type(n->dtype);
	CgVal r = cg_convert(f, in[0], t, lanes);
	if (t == IR_F32)
		r.v = LLVMBuildFNeg(B, r.v, "");
	else if (t == IR_I64)
		r.v = LLVMBuildNeg(B, r.v, "");
	return r;
}

static CgVal e_relu(CgFn *f, const IrNode *n, const CgVal *in, int lanes)
{
	IrDType t = cg_compute_type(n->dtype);
	CgVal r = cg_convert(f, in[0], t, lanes);
	if (t == IR_F32)
		r.v = cg_select_lt(f, r.v, cg_constf(f, 0, lanes), cg_constf(f, 0, lanes), r.v);
	else if (t == IR_I64)
		r.v = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, r.v, cg_consti(f, 0, lanes), ""),
		                      cg_consti(f, 0, lanes), r.v, "");
	return r;
}

/* unary float math */
static CgVal e_math(CgFn *f, const IrNode *n, const CgVal *in, int lanes)
{
	LLVMValueRef x = cg_convert(f, in[0], IR_F32, lanes).v;
	CgVal r = {.t = IR_F32};
	switch (n->op) {
	case OP_EXP: r.v = cg_math_exp(f, x, lanes); break;
	case OP_LOG: r.v = call1(f, "llvm.log", x, lanes); break;
	case OP_TANH: r.v = cg_math_tanh(f, x, lanes); break;
	case OP_ERF: r.v = cg_math_erf(f, x, lanes); break;
	case OP_SQRT: r.v = call1(f, "llvm.sqrt", x, lanes); break;
	case OP_RSQRT:
		r.v = LLVMBuildFDiv(B, cg_constf(f, 1, lanes), call1(f, "llvm.sqrt", x, lanes), "");
		break;
	case OP_SIGMOID: r.v = cg_math_sigmoid(f, x, lanes); break;
	case OP_GELU: r.v = cg_math_gelu(f, x, lanes); break;
	default: r.v = cg_math_gelu_tanh(f, x, lanes); break;
	}
	return cg_convert(f, r, n->dtype, lanes);
}

static CgVal e_not(CgFn *f, const IrNode *n, const CgVal *in, int lanes)
{
	CgVal r = cg_convert(f, in[0], IR_BOOL, lanes);
	r.v = LLVMBuildNot(B, r.v, "");
	return cg_convert(f, r, n->dtype, lanes);
}

static CgVal e_cast(CgFn *f, const IrNode *n, const CgVal *in, int lanes)
{
	return cg_convert(f, in[0], n->dtype, lanes);
}

static CgVal e_identity(CgFn *f, const IrNode *n, const CgVal *in, int lanes)
{
	return cg_convert(f, in[0], n->dtype, lanes);
}

#define ELEM(fn) {CGK_ELEM, fn}

const CgOpInfo cg_cpu_ops[OP_COUNT] = {
	[OP_INPUT] = {CGK_SOURCE, NULL},
	[OP_PARAM] = {CGK_SOURCE, NULL},
	[OP_CONST] = {CGK_SOURCE, NULL},
	[OP_ARANGE] = {CGK_SOURCE, NULL},
	[OP_LINEAR] = {CGK_GEMM, NULL},
	[OP_MATMUL] = {CGK_GEMM, NULL},
	[OP_ADD] = ELEM(binop),
	[OP_SUB] = ELEM(binop),
	[OP_MUL] = ELEM(binop),
	[OP_DIV] = ELEM(binop),
	[OP_POW] = ELEM(e_pow),
	[OP_MAXIMUM] = ELEM(binop),
	[OP_MINIMUM] = ELEM(binop),
	[OP_EQ] = ELEM(compare),
	[OP_NE] = ELEM(compare),
	[OP_LT] = ELEM(compare),
	[OP_LE] = ELEM(compare),
	[OP_GT] = ELEM(compare),
	[OP_GE] = ELEM(compare),
	[OP_WHERE] = ELEM(e_where),
	[OP_MASKED_FILL] = ELEM(e_masked_fill),
	[OP_NEG] = ELEM(e_neg),
	[OP_EXP] = ELEM(e_math),
	[OP_LOG] = ELEM(e_math),
	[OP_TANH] = ELEM(e_math),
	[OP_ERF] = ELEM(e_math),
	[OP_SQRT] = ELEM(e_math),
	[OP_RSQRT] = ELEM(e_math),
	[OP_SIGMOID] = ELEM(e_math),
	[OP_RELU] = ELEM(e_relu),
	[OP_GELU] = ELEM(e_math),
	[OP_GELU_TANH] = ELEM(e_math),
	[OP_NOT] = ELEM(e_not),
	[OP_CAST] = ELEM(e_cast),
	[OP_DROPOUT] = ELEM(e_identity),
	[OP_SOFTMAX] = {CGK_ROW, NULL},
	[OP_LAYER_NORM] = {CGK_ROW, NULL},
	[OP_SUM] = {CGK_REDUCE, NULL},
	[OP_MEAN] = {CGK_REDUCE, NULL},
	[OP_MAX] = {CGK_REDUCE, NULL},
	[OP_EMBEDDING] = {CGK_GATHER, NULL},
	[OP_VIEW] = {CGK_VIEW, NULL},
	[OP_PERMUTE] = {CGK_VIEW, NULL},
	[OP_TRANSPOSE] = {CGK_VIEW, NULL},
	[OP_EXPAND] = {CGK_VIEW, NULL},
	[OP_UNSQUEEZE] = {CGK_VIEW, NULL},
	[OP_SLICE] = {CGK_VIEW, NULL},
	[OP_SELECT] = {CGK_VIEW, NULL},
	[OP_CONTIGUOUS] = {CGK_VIEW, NULL},
	[OP_CAT] = {CGK_CAT, NULL},
	[OP_FUSED] = {CGK_CALL, NULL},
	[OP_CALL] = {CGK_CALL, NULL},
};

/* ---- fused expressions ------------------------------------------------------------------ */

CgVal cg_eval_index(CgFn *f, LLVMValueRef i, int cls, LLVMValueRef step, IrDType t,
                    int lanes)
{
	if (lanes == 1)
		return cg_convert(f, (CgVal){i, IR_I64}, t, 1);
	LLVMValueRef iota[64];
	for (int l = 0; l < lanes; l++)
		iota[l] = LLVMConstInt(f->L->t_i64, (unsigned)l, 0);
	LLVMValueRef d = LLVMConstVector(iota, (unsigned)lanes);
	if (cls == 0)
		d = cg_consti(f, 0, lanes);
	else if (cls == 2)
		d = LLVMBuildMul(B, d, cg_splat(f, step, lanes), "");
	return cg_convert(f, (CgVal){LLVMBuildAdd(B, cg_splat(f, i, lanes), d, ""), IR_I64}, t, lanes);
}

/* n's slot in x's memo, or -1 */
static int memo_at(const CgEval *x, const IrNode *n)
{
	for (int i = 0; i < x->nmemo; i++)
		if (x->memo_n[i] == n)
			return i;
	return -1;
}

/* The constant value of n, if it is one. */
static bool const_of(const CgExpr *e, const IrNode *n, double *v)
{
	for (int i = 0; i < e->nconst; i++)
		if (e->cnode[i] == n) {
			*v = e->cval[i]->fattr;
			return true;
		}
	if (n->op != OP_CONST)
		return false;
	*v = n->fattr;
	return true;
}

/* n = m + c or c + m, m a product a * b or a quotient a / 2^k (whose
 * reciprocal is exact), all in f32 and m not computed yet: a * b + c as
 * one fused multiply-add in *r (one rounding fewer than the two ops). */
static bool eval_fma(CgFn *f, CgEval *x, const IrNode *n, CgVal *r)
{
	if (n->op != OP_ADD || cg_compute_type(n->dtype) != IR_F32)
		return false;
	const CgExpr *e = x->expr;
	for (int i = 0; i < 2; i++) {
		const IrNode *m = n->in[i];
		double v = 0;
		int ex;
		bool ok = (m->op == OP_MUL ||
		           (m->op == OP_DIV && const_of(e, m->in[1], &v) && v != 0 &&
		            fabs(frexp(v, &ex)) == 0.5)) &&
		          cg_compute_type(m->dtype) == IR_F32 && memo_at(x, m) < 0;
		for (int k = 0; k < e->nleaf && ok; k++)
			ok = e->leaf[k] != m;
		if (!ok)
			continue;
		int lanes = x->lanes;
		LLVMValueRef a = cg_convert(f, cg_eval(f, x, m->in[0]), IR_F32, lanes).v;
		LLVMValueRef b = m->op == OP_DIV
		                         ? cg_constf(f, 1.0 / v, lanes)
		                         : cg_convert(f, cg_eval(f, x, m->in[1]), IR_F32, lanes).v;
		LLVMValueRef c = cg_convert(f, cg_eval(f, x, n->in[1 - i]), IR_F32, lanes).v;
		*r = (CgVal){cg_fma(f, a, b, c, lanes), IR_F32}; /* as binop's */
		return true;
	}
	return false;
}

CgVal cg_eval(CgFn *f, CgEval *x, const IrNode *n)
{
	int memo = memo_at(x, n);
	if (memo >= 0)
		return x->memo_v[memo];
	const CgExpr *e = x->expr;
	CgVal r = {0};
	for (int i = 0; i < e->nconst; i++)
		if (e->cnode[i] == n) {
			r = cg_const(f, e->cval[i]->dtype, e->cval[i]->fattr, x->lanes);
			return cg_convert(f, r, n->dtype, x->lanes);
		}
	int leaf = -1;
	for (int i = 0; i < e->nleaf && leaf < 0; i++)
		if (e->leaf[i] == n)
			leaf = i;
	if (leaf >= 0) {
		r = x->leaf(f, x, e->leaf_view[leaf], n);
	} else if (n->op == OP_CONST) {
		r = cg_const(f, n->dtype, n->fattr, x->lanes);
	} else if (x->contract && eval_fma(f, x, n, &r)) {
		/* r is a * b + c */
	} else if (cg_cpu_ops[n->op].elem && n->nin <= 8) {
		CgVal in[8];
		for (int i = 0; i < n->nin; i++)
			in[i] = cg_eval(f, x, n->in[i]);
		r = cg_cpu_ops[n->op].elem(f, n, in, x->lanes);
	} else {
		x->bad = true;
		r = cg_const(f, n->dtype, 0, x->lanes);
	}
	if (x->nmemo < 128) {
		x->memo_n[x->nmemo] = n;
		x->memo_v[x->nmemo++] = r;
	}
	return r;
}
