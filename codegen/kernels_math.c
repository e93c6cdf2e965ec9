/* kernels_math.c - exp, tanh, erf, GELU and sigmoid as straight-line
 * polynomial / rational code on f32 scalars or vectors: no libm calls and
 * no branches, so a vector body stays a vector body. Accuracy (measured
 * by tests/codegen/test_math.c against libm in double, stated in
 * docs/codegen.md):
 *
 *   exp    Cody-Waite reduction by ln 2 (split constant), degree-6
 *          polynomial (Cephes expf), scaling by 2^n in two steps so the
 *          denormal range and overflow to inf come out right (AVX-512
 *          vectors: one vscalefps, rounded once, 16 instructions not 28);
 *          max rel error ~1e-7 on [-87, 88]; exp(-inf) = 0, exp(inf) = inf.
 *   tanh   Eigen's rational approximation (odd degree 13 / even degree 6),
 *          clamped at |x| = 7.905; max abs error ~3e-7.
 *   erf    |x| < 1: x * P6(x^2) (fitted, rel error 1.2e-9 in exact
 *          arithmetic); |x| >= 1: 1 - erfc(|x|) with
 *          erfc(x) = exp(-x^2) / x * P10(1/x) (fitted on [1, 10], rel error
 *          4e-8), x^2 kept exact as hi + lo with an FMA; max abs error
 *          ~1.4e-7 over [-6, 6].
 *   gelu   x Phi(x) through erfc(|x|/sqrt 2) = exp(-t^2) u G(u),
 *          u = 1/(1 + 0.3 t), G of degree 8 (scripts/fit_gelu.py), t^2 exact
 *          as hi + lo, so both tails keep their relative accuracy: max rel
 *          error ~5e-7 over [-12, 12]. GPU code storing 16-bit values
 *          (CgLlvm.math16): degree 6, ~1e-6.
 *   gelu_tanh  x * sigmoid(2 u), u = sqrt(2/pi) (x + 0.044715 x^3): the same
 *          function as 0.5 x (1 + tanh u) without the cancellation.
 *   sigmoid 1 / (1 + exp(-x)).
 *
 * In NVPTX modules exp is 2^(x log2 e) through the multi-function unit
 * (ex2.approx, 2 ulp) with the rounding error of x log2 e put back by one
 * FMA, the reciprocal of erfc is rcp.approx refined by one Newton step, and
 * NaN-keeping max is max.NaN: each a few instructions where the portable
 * code takes twenty. Same accuracy bounds (tests/gpu, against the
 * interpreter).
 */
#include <string.h>

#include "codegen/codegen.h"

#define B (f->L->b)

static LLVMValueRef k(CgFn *f, double v, int lanes)
{
	return cg_constf(f, v, lanes);
}

LLVMValueRef cg_fma(CgFn *f, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c, int lanes)
{
	LLVMValueRef fn = cg_llvm_intrinsic(f->L, "llvm.fmuladd", cg_type(f->L, IR_F32, lanes),
	                                    NULL, 3);
	LLVMValueRef args[3] = {a, b, c};
	return cg_llvm_call(f->L, fn, args, 3);
}

/* a * b - a*b rounded: the rounding error of a product (needs a fused
 * multiply-add; 0 where the target has none). */
static LLVMValueRef prod_err(CgFn *f, LLVMValueRef a, LLVMValueRef b, LLVMValueRef p,
                             int lanes)
{
	if (!f->L->has_fma)
		return k(f, 0, lanes);
	LLVMValueRef fn = cg_llvm_intrinsic(f->L, "llvm.fma", cg_type(f->L, IR_F32, lanes),
	                                    NULL, 3);
	LLVMValueRef args[3] = {a, b, LLVMBuildFNeg(B, p, "")};
	return cg_llvm_call(f->L, fn, args, 3);
}

LLVMValueRef cg_select_lt(CgFn *f, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t,
                          LLVMValueRef e)
{
	return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, a, b, ""), t, e, "");
}

static LLVMValueRef select_gt(CgFn *f, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t,
                              LLVMValueRef e)
{
	return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, a, b, ""), t, e, "");
}

LLVMValueRef cg_ptx(CgFn *f, const char *text, const char *constraints, LLVMTypeRef elem,
                    LLVMValueRef *args, int nargs, int lanes)
{
	LLVMTypeRef at[4];
	for (int i = 0; i < nargs; i++) {
		LLVMTypeRef t = LLVMTypeOf(args[i]);
		at[i] = lanes > 1 ? LLVMGetElementType(t) : t;
	}
	LLVMTypeRef fty = LLVMFunctionType(elem, at, (unsigned)nargs, 0);
	LLVMValueRef fn = LLVMGetInlineAsm(fty, (char *)text, strlen(text), (char *)constraints,
	                                   strlen(constraints), 0, 0, LLVMInlineAsmDialectATT,
	                                   0);
	if (lanes == 1)
		return LLVMBuildCall2(B, fty, fn, args, (unsigned)nargs, "");
	LLVMValueRef r = LLVMGetUndef(LLVMVectorType(elem, (unsigned)lanes));
	for (int l = 0; l < lanes; l++) {
		LLVMValueRef idx = LLVMConstInt(f->L->t_i32, (unsigned)l, 0), a[4];
		for (int i = 0; i < nargs; i++)
			a[i] = LLVMBuildExtractElement(B, args[i], idx, "");
		r = LLVMBuildInsertElement(
		        B, r, LLVMBuildCall2(B, fty, fn, a, (unsigned)nargs, ""), idx, "");
	}
	return r;
}

/* max(a, b) that keeps a NaN of either side */
LLVMValueRef cg_fmax_nan(CgFn *f, LLVMValueRef a, LLVMValueRef b)
{
	if (f->L->nvptx) {
		LLVMValueRef ab[2] = {a, b};
		LLVMTypeRef t = LLVMTypeOf(a);
		int lanes = LLVMGetTypeKind(t) == LLVMVectorTypeKind ? (int)LLVMGetVectorSize(t) : 1;
		return cg_ptx(f, "max.NaN.f32 $0, $1, $2;", "=f,f,f", f->L->t_f32, ab, 2, lanes);
	}
	LLVMValueRef take_a = LLVMBuildFCmp(B, LLVMRealUGT, a, b, ""); /* a > b or NaN */
	LLVMValueRef r = LLVMBuildSelect(B, take_a, a, b, "");
	LLVMValueRef b_nan = LLVMBuildFCmp(B, LLVMRealUNO, b, b, "");
	return LLVMBuildSelect(B, b_nan, b, r, "");
}

static LLVMValueRef fabs_(CgFn *f, LLVMValueRef x, int lanes)
{
	LLVMValueRef fn = cg_llvm_intrinsic(f->L, "llvm.fabs", cg_type(f->L, IR_F32, lanes),
	                                    NULL, 1);
	return cg_llvm_call(f->L, fn, &x, 1);
}

static LLVMValueRef copysign_(CgFn *f, LLVMValueRef mag, LLVMValueRef sgn, int lanes)
{
	LLVMValueRef fn = cg_llvm_intrinsic(f->L, "llvm.copysign",
	                                    cg_type(f->L, IR_F32, lanes), NULL, 2);
	LLVMValueRef args[2] = {mag, sgn};
	return cg_llvm_call(f->L, fn, args, 2);
}

/* Horner: c[0] x^(n-1) + ... + c[n-1] */
static LLVMValueRef poly(CgFn *f, LLVMValueRef x, const double *c, int n, int lanes)
{
	LLVMValueRef p = k(f, c[0], lanes);
	for (int i = 1; i < n; i++)
		p = cg_fma(f, p, x, k(f, c[i], lanes), lanes);
	return p;
}

static LLVMTypeRef ity(CgFn *f, int lanes)
{
	return lanes > 1 ? LLVMVectorType(f->L->t_i32, (unsigned)lanes) : f->L->t_i32;
}

static LLVMValueRef iconst(CgFn *f, int32_t v, int lanes)
{
	return cg_splat_const(LLVMConstInt(f->L->t_i32, (unsigned long long)(int64_t)v, 1), lanes);
}

/* 2^n for integer n in [-254, 256] as two factors' product, applied to y */
static LLVMValueRef scale2(CgFn *f, LLVMValueRef y, LLVMValueRef n, int lanes)
{
	LLVMTypeRef ft = cg_type(f->L, IR_F32, lanes);
	LLVMValueRef h = LLVMBuildAShr(B, n, iconst(f, 1, lanes), "");
	LLVMValueRef l = LLVMBuildSub(B, n, h, "");
	LLVMValueRef s1 = LLVMBuildShl(B, LLVMBuildAdd(B, h, iconst(f, 127, lanes), ""),
	                               iconst(f, 23, lanes), "");
	LLVMValueRef s2 = LLVMBuildShl(B, LLVMBuildAdd(B, l, iconst(f, 127, lanes), ""),
	                               iconst(f, 23, lanes), "");
	y = LLVMBuildFMul(B, y, LLVMBuildBitCast(B, s1, ft, ""), "");
	return LLVMBuildFMul(B, y, LLVMBuildBitCast(B, s2, ft, ""), "");
}

/* 1 / x: rcp.approx and one Newton step on NVPTX (1 ulp), else a division */
static LLVMValueRef recip(CgFn *f, LLVMValueRef x, int lanes)
{
	if (!f->L->nvptx)
		return LLVMBuildFDiv(B, k(f, 1.0, lanes), x, "");
	LLVMValueRef r = cg_ptx(f, "rcp.approx.ftz.f32 $0, $1;", "=f,f", f->L->t_f32, &x, 1,
	                        lanes);
	LLVMValueRef e = cg_fma(f, LLVMBuildFNeg(B, x, ""), r, k(f, 1.0, lanes), lanes);
	return cg_fma(f, r, e, r, lanes);
}

LLVMValueRef cg_math_exp(CgFn *f, LLVMValueRef x, int lanes)
{
	if (f->L->nvptx) {
		/* t = x log2 e rounded, err its rounding error (and that of
		 * log2 e's f32 value); 2^t (1 + err ln 2) */
		const double l2e = 1.44269504088896341;
		const double l2e_hi = (float)l2e, l2e_lo = l2e - l2e_hi;
		/* clamped as below, so that t is finite (an infinite x would
		 * make err NaN); NaN stays NaN */
		LLVMValueRef xc = select_gt(f, x, k(f, 88.8, lanes), k(f, 88.8, lanes), x);
		xc = cg_select_lt(f, xc, k(f, -104.0, lanes), k(f, -104.0, lanes), xc);
		LLVMValueRef t = LLVMBuildFMul(B, xc, k(f, l2e_hi, lanes), "");
		LLVMValueRef err =
		        cg_fma(f, xc, k(f, l2e_hi, lanes), LLVMBuildFNeg(B, t, ""), lanes);
		err = cg_fma(f, xc, k(f, l2e_lo, lanes), err, lanes);
		LLVMValueRef r = cg_ptx(f, "ex2.approx.ftz.f32 $0, $1;", "=f,f", f->L->t_f32, &t, 1,
		                        lanes);
		LLVMValueRef c = LLVMBuildFMul(B, err, k(f, 0.69314718055994531, lanes), "");
		return cg_fma(f, r, c, r, lanes);
	}
	static const double P[] = {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3,
	                           4.1665795894E-2, 1.6666665459E-1, 5.0000001201E-1};
	const double magic = 12582912.0; /* 1.5 * 2^23: adding it rounds to an integer */
	LLVMValueRef xc = select_gt(f, x, k(f, 88.8, lanes), k(f, 88.8, lanes), x);
	xc = cg_select_lt(f, xc, k(f, -104.0, lanes), k(f, -104.0, lanes), xc);
	LLVMValueRef t = LLVMBuildFAdd(
	        B, LLVMBuildFMul(B, xc, k(f, 1.44269504088896341, lanes), ""), k(f, magic, lanes),
	        "");
	LLVMValueRef n = LLVMBuildFSub(B, t, k(f, magic, lanes), "");
	LLVMValueRef r = cg_fma(f, n, k(f, -0.693359375, lanes), xc, lanes);
	r = cg_fma(f, n, k(f, 2.12194440e-4, lanes), r, lanes);
	LLVMValueRef p = poly(f, r, P, 6, lanes);
	LLVMValueRef y = cg_fma(f, p, LLVMBuildFMul(B, r, r, ""), r, lanes);
	y = LLVMBuildFAdd(B, y, k(f, 1.0, lanes), "");
	if (f->L->avx512 && lanes == 16) { /* y 2^n in one step, rounded once */
		LLVMTypeRef vt = cg_type(f->L, IR_F32, 16);
		LLVMTypeRef at[5] = {vt, vt, vt, LLVMInt16TypeInContext(f->L->ctx), f->L->t_i32};
		LLVMValueRef fn = cg_llvm_decl(f->L, "llvm.x86.avx512.mask.scalef.ps.512",
		                               LLVMFunctionType(vt, at, 5, 0));
		LLVMValueRef args[5] = {y, n, LLVMGetUndef(vt),
		                        LLVMConstInt(at[3], 0xffff, 0),
		                        LLVMConstInt(f->L->t_i32, 4, 0)}; /* current rounding */
		return cg_llvm_call(f->L, fn, args, 5);
	}
	LLVMValueRef ni = LLVMBuildSub(B, LLVMBuildBitCast(B, t, ity(f, lanes), ""),
	                               iconst(f, 0x4B400000, lanes), "");
	return scale2(f, y, ni, lanes);
}

LLVMValueRef cg_math_tanh(CgFn *f, LLVMValueRef x, int lanes)
{
	static const double A[] = {-2.76076847742355e-16, 2.00018790482477e-13,
	                           -8.60467152213735e-11, 5.12229709037114e-08,
	                           1.48572235717979e-05,  6.37261928875436e-04,
	                           4.89352455891786e-03};
	static const double Bq[] = {1.19825839466702e-06, 1.18534705686654e-04,
	                            2.26843463243900e-03, 4.89352518554385e-03};
	const double lim = 7.90531110763549805;
	LLVMValueRef xc = select_gt(f, x, k(f, lim, lanes), k(f, lim, lanes), x);
	xc = cg_select_lt(f, xc, k(f, -lim, lanes), k(f, -lim, lanes), xc);
	LLVMValueRef x2 = LLVMBuildFMul(B, xc, xc, "");
	LLVMValueRef p = LLVMBuildFMul(B, poly(f, x2, A, 7, lanes), xc, "");
	LLVMValueRef q = poly(f, x2, Bq, 4, lanes);
	LLVMValueRef r = LLVMBuildFDiv(B, p, q, "");
	LLVMValueRef ax = fabs_(f, x, lanes);
	/* beyond the clamp tanh is 1 to within 3e-7: make it exactly +-1 */
	r = select_gt(f, ax, k(f, lim, lanes), copysign_(f, k(f, 1.0, lanes), x, lanes), r);
	return cg_select_lt(f, ax, k(f, 0.0004, lanes), x, r);
}

/* erfc(x) for x >= 1 given x^2 = hi + lo; 0 beyond x = 10 (erfc(10) is
 * below the smallest f32), where hi and lo are not used. */
static LLVMValueRef erfc_core(CgFn *f, LLVMValueRef x, LLVMValueRef hi, LLVMValueRef lo,
                              int lanes)
{
	static const double P[] = {
	        -0.047275127686463524, 0.23023806220904868,  -0.39087990127571762,
	        0.082654981592002927,  0.693016777412016,    -1.1741826993295136,
	        0.82474503964925247,   -0.082277216722825028, -0.27198232377397925,
	        -0.00068294647398254366, 0.56420891722739173};
	LLVMValueRef xc = select_gt(f, x, k(f, 10.0, lanes), k(f, 10.0, lanes), x);
	LLVMValueRef hc = select_gt(f, hi, k(f, 100.0, lanes), k(f, 100.0, lanes), hi);
	LLVMValueRef e = cg_math_exp(f, LLVMBuildFNeg(B, hc, ""), lanes);
	e = LLVMBuildFMul(B, e, LLVMBuildFSub(B, k(f, 1.0, lanes), lo, ""), "");
	LLVMValueRef q = recip(f, xc, lanes);
	LLVMValueRef p = poly(f, q, P, 11, lanes);
	LLVMValueRef r = LLVMBuildFMul(B, LLVMBuildFMul(B, e, q, ""), p, "");
	return select_gt(f, x, k(f, 10.0, lanes), k(f, 0.0, lanes), r);
}

static const double ERF_SMALL[] = {7.8524303434878668e-05, -0.00080097494717914251,
                                   0.0051882755778147732,  -0.026853783438745687,
                                   0.11283584432091686,    -0.37612625756472914,
                                   1.1283791657157965};

LLVMValueRef cg_math_erf(CgFn *f, LLVMValueRef x, int lanes)
{
	LLVMValueRef one = k(f, 1.0, lanes);
	LLVMValueRef ax = fabs_(f, x, lanes);
	LLVMValueRef small =
	        LLVMBuildFMul(B, x, poly(f, LLVMBuildFMul(B, x, x, ""), ERF_SMALL, 7, lanes), "");
	LLVMValueRef w = cg_select_lt(f, ax, one, one, ax);
	LLVMValueRef wc = select_gt(f, w, k(f, 10.0, lanes), k(f, 10.0, lanes), w);
	LLVMValueRef hi = LLVMBuildFMul(B, wc, wc, "");
	LLVMValueRef lo = prod_err(f, wc, wc, hi, lanes);
	LLVMValueRef big = LLVMBuildFSub(B, one, erfc_core(f, w, hi, lo, lanes), "");
	big = copysign_(f, big, x, lanes);
	return cg_select_lt(f, ax, one, small, big);
}

/* 0.5 erfc(t) e^(t^2) = u G(u), u = 1 / (1 + GELU_P t): G fitted on t in
 * [0, 11.5] (rel error 2e-8 in exact arithmetic) */
#define GELU_P 0.3
static const double GELU_G[] = {
        -0.064778049510242991, 0.24286876062353083, -0.25633524377029798,
        0.27410694439737748,   -0.047515104852181619, 0.10755403587467,
        0.074143019748951017,  0.08536192188578752,  0.08459370578389272};

/* The same for values stored in 16 bits: degree 6, p = 0.375 (rel error
 * 8e-7), t^2 rounded, exp and reciprocal on NVPTX's multi-function unit. */
#define GELU16_P 0.375
static const double GELU16_G[] = {
        -0.066945951306294993, 0.19188226748202977, -0.061906670089629662,
        0.13948840534736134,   0.084104027419481045, 0.107697237054839,
        0.10568079818367956};

static LLVMValueRef gelu16(CgFn *f, LLVMValueRef x, int lanes)
{
	LLVMValueRef e, u = cg_fma(f, fabs_(f, x, lanes), k(f, GELU16_P * 0.70710678118654752, lanes),
	                           k(f, 1.0, lanes), lanes);
	LLVMValueRef xx = LLVMBuildFMul(B, x, x, "");
	if (f->L->nvptx) {
		LLVMValueRef a = LLVMBuildFMul(B, xx, k(f, -0.5 * 1.44269504088896341, lanes), "");
		e = cg_ptx(f, "ex2.approx.ftz.f32 $0, $1;", "=f,f", f->L->t_f32, &a, 1, lanes);
		u = cg_ptx(f, "rcp.approx.ftz.f32 $0, $1;", "=f,f", f->L->t_f32, &u, 1, lanes);
	} else {
		e = cg_math_exp(f, LLVMBuildFMul(B, xx, k(f, -0.5, lanes), ""), lanes);
		u = LLVMBuildFDiv(B, k(f, 1.0, lanes), u, "");
	}
	LLVMValueRef h = LLVMBuildFMul(B, e, LLVMBuildFMul(B, u, poly(f, u, GELU16_G, 7, lanes), ""), "");
	LLVMValueRef phi = select_gt(f, x, k(f, 0.0, lanes), LLVMBuildFSub(B, k(f, 1.0, lanes), h, ""), h);
	return LLVMBuildFMul(B, x, phi, "");
}

/* x Phi(x) with Phi(x) = 1 - h for x > 0, h for x <= 0, h = 0.5 erfc(t),
 * t = |x| / sqrt 2: one exp, one reciprocal and nine FMAs, no branch. */
LLVMValueRef cg_math_gelu(CgFn *f, LLVMValueRef x, int lanes)
{
	if (f->L->math16)
		return gelu16(f, x, lanes);
	/* t^2 = x^2 / 2 exactly as hi + lo (x clamped where erfc(t) is 0) */
	LLVMValueRef xc = select_gt(f, x, k(f, 16.0, lanes), k(f, 16.0, lanes), x);
	xc = cg_select_lt(f, xc, k(f, -16.0, lanes), k(f, -16.0, lanes), xc);
	LLVMValueRef xx = LLVMBuildFMul(B, xc, xc, "");
	LLVMValueRef hi = LLVMBuildFMul(B, xx, k(f, 0.5, lanes), "");
	LLVMValueRef lo = LLVMBuildFMul(B, prod_err(f, xc, xc, xx, lanes), k(f, 0.5, lanes), "");
	LLVMValueRef e = cg_math_exp(f, LLVMBuildFNeg(B, hi, ""), lanes);
	e = cg_fma(f, LLVMBuildFNeg(B, e, ""), lo, e, lanes); /* e^-(hi + lo) */
	LLVMValueRef t = LLVMBuildFMul(B, fabs_(f, xc, lanes), k(f, 0.70710678118654752, lanes), "");
	LLVMValueRef u = cg_fma(f, t, k(f, GELU_P, lanes), k(f, 1.0, lanes), lanes);
	u = f->L->nvptx ? cg_ptx(f, "rcp.approx.ftz.f32 $0, $1;", "=f,f", f->L->t_f32, &u, 1, lanes)
	                : LLVMBuildFDiv(B, k(f, 1.0, lanes), u, "");
	LLVMValueRef g = LLVMBuildFMul(B, u, poly(f, u, GELU_G, 9, lanes), "");
	LLVMValueRef h = LLVMBuildFMul(B, e, g, "");
	LLVMValueRef phi = select_gt(f, x, k(f, 0.0, lanes), LLVMBuildFSub(B, k(f, 1.0, lanes), h, ""), h);
	return LLVMBuildFMul(B, x, phi, "");
}

LLVMValueRef cg_math_sigmoid(CgFn *f, LLVMValueRef x, int lanes)
{
	LLVMValueRef e = cg_math_exp(f, LLVMBuildFNeg(B, x, ""), lanes);
	return LLVMBuildFDiv(B, k(f, 1.0, lanes), LLVMBuildFAdd(B, k(f, 1.0, lanes), e, ""), "");
}

LLVMValueRef cg_math_gelu_tanh(CgFn *f, LLVMValueRef x, int lanes)
{
	LLVMValueRef x3 = LLVMBuildFMul(B, LLVMBuildFMul(B, x, x, ""), x, "");
	LLVMValueRef u = cg_fma(f, x3, k(f, 0.044715, lanes), x, lanes);
	u = LLVMBuildFMul(B, u, k(f, 2.0 * 0.79788456080286535588, lanes), "");
	return LLVMBuildFMul(B, x, cg_math_sigmoid(f, u, lanes), "");
}
