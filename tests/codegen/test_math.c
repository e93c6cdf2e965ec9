/* test_math.c - accuracy of the code generator's float math (exp, tanh,
 * erf, gelu, gelu_tanh, sigmoid: polynomial/rational code in
 * kernels_math.c) against libm in double, on dense grids run through a
 * compiled model library (vector bodies and scalar tails alike), plus
 * the special values; a library for this machine, then one for
 * x86-64-v3 (AVX2) where the CPU runs it, since their vector code differs
 * (exp's 2^n: one vscalefps with AVX-512, two factors without). The
 * bounds are the ones docs/codegen.md states:
 *
 *   exp        rel 1e-6 on [-87, 88] (results >= FLT_MIN)
 *   tanh       abs 1e-6 (or rel 1e-5) on [-10, 10]
 *   erf        abs 1e-6 on [-6, 6]
 *   gelu       rel 1e-5 on [-12, 12] (erf form, both tails)
 *   gelu_tanh  rel 3e-5 on [-12, 12] (exp of an argument near -87 that
 *              carries f32 rounding: the inputs, not the code, limit it)
 *   sigmoid    rel 1e-6 on [-80, 80]
 * (results below 1e-36 in magnitude, near the denormal range, are not
 * checked: they may come out as 0).
 */
#include "cgtest.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct Fn {
	const char *name;
	IrOp op;
	double lo, hi;
	double rtol, atol; /* pass if |got - want| <= atol or <= rtol |want| */
	double (*ref)(double);
} Fn;

static double r_gelu(double x)
{
	return 0.5 * x * erfc(-x / sqrt(2.0));
}

static double r_gelu_tanh(double x)
{
	double u = 0.79788456080286535588 * (x + 0.044715 * x * x * x);
	return x / (1 + exp(-2 * u)); /* = 0.5 x (1 + tanh u) */
}

static double r_sigmoid(double x)
{
	return 1 / (1 + exp(-x));
}

static const Fn FNS[] = {
	{"exp", OP_EXP, -87, 88, 1e-6, 0, exp},
	{"tanh", OP_TANH, -10, 10, 1e-5, 1e-6, tanh},
	{"erf", OP_ERF, -6, 6, 0, 1e-6, erf},
	{"gelu", OP_GELU, -12, 12, 1e-5, 0, r_gelu},
	{"gelu_tanh", OP_GELU_TANH, -12, 12, 3e-5, 0, r_gelu_tanh},
	{"sigmoid", OP_SIGMOID, -80, 80, 1e-6, 0, r_sigmoid},
};
enum { NFN = sizeof FNS / sizeof FNS[0], GRID = 1 << 21 };

static const float SPECIAL[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MAX, -FLT_MAX,
                                FLT_MIN, 1e-30f, -1e-30f, 100.0f, -100.0f, 200.0f, -200.0f};
enum { NSPECIAL = sizeof SPECIAL / sizeof SPECIAL[0] };

/* Special values that must come out exactly (NaN: NaN). */
static bool special_ok(const Fn *f, float x, float got)
{
	double want = (double)(float)f->ref((double)x);
	if (isnan(x) || isnan(want))
		return isnan(got);
	if (f->op == OP_GELU && x == -INFINITY)
		return isnan(got) || got == 0; /* -inf * 0: either is fine */
	if (isinf(want) || want == 0 || fabs(want) == 1)
		return (double)got == want || (want == 0 && fabs(got) < 1e-37);
	return fabs(got - want) <= 1e-6 + 1e-5 * fabs(want);
}

/* Every function on the grids and the special values, in a library for
 * `cpu` (NULL: this machine); the number of functions out of bounds, or
 * -1 when the library cannot run. */
static int check_target(const char *cpu)
{
	Case c;
	case_init(&c, cpu ? "math_target" : "math");
	c.cpu = cpu;
	IrNode *x = in_(&c, "x", IR_F32, "S");
	for (int i = 0; i < NFN; i++)
		out_(&c, op_(&c, FNS[i].op, x, NULL, NULL, NULL));
	char path[512], why[512];
	void *lib;
	const SlapoApi *api = case_compile(&c, path, sizeof path, &lib, why, sizeof why);
	SlapoModel *m = NULL;
	SlapoWeights *w = NULL;
	SlapoSession *s = NULL;
	printf("target %s\n", cpu ? cpu : "this machine");
	if (!api || api->model_open(&m) || api->weights_create(m, NULL, &w) ||
	    api->session_create(w, NULL, &s)) {
		printf("FAIL math: %s\n", api ? api->last_error()->message : why);
		return -1;
	}
	int fails = 0;
	int64_t n = GRID + NSPECIAL;
	float *in = malloc(sizeof(float) * (size_t)n);
	float *out[NFN];
	for (int k = 0; k < NFN; k++) {
		const Fn *f = &FNS[k];
		for (int64_t i = 0; i < GRID; i++)
			in[i] = (float)(f->lo + (f->hi - f->lo) * (double)i / (GRID - 1));
		memcpy(in + GRID, SPECIAL, sizeof SPECIAL);
		DLTensor din = {in, {kDLCPU, 0}, 1, {kDLFloat, 32, 1}, &n, NULL, 0};
		const DLTensor *pin = &din;
		DLTensor dout[NFN];
		DLTensor *pout[NFN];
		for (int j = 0; j < NFN; j++) {
			out[j] = malloc(sizeof(float) * (size_t)n);
			for (int64_t i = 0; i < n; i++)
				out[j][i] = NAN;
			dout[j] = (DLTensor){out[j], {kDLCPU, 0}, 1, {kDLFloat, 32, 1}, &n, NULL, 0};
			pout[j] = &dout[j];
		}
		if (api->session_run(s, &pin, 1, pout, NFN)) {
			printf("FAIL %s: %s\n", f->name, api->last_error()->message);
			return -1;
		}
		double max_abs = 0, max_rel = 0, worst_x = 0;
		bool ok = true;
		for (int64_t i = 0; i < GRID; i++) {
			double xv = in[i], want = f->ref(xv), got = out[k][i];
			double ae = fabs(got - want), re = want != 0 ? ae / fabs(want) : ae;
			if (fabs(want) < 1e-36)
				continue; /* results near the denormal range may flush to 0 */
			bool good = (f->atol > 0 && ae <= f->atol) || (f->rtol > 0 && re <= f->rtol);
			if (!good || isnan(got)) {
				if (ok)
					printf("  %s(%.9g): got %.9g, want %.9g\n", f->name, xv, got, want);
				ok = false;
			}
			if (ae > max_abs)
				max_abs = ae;
			if (re > max_rel) {
				max_rel = re;
				worst_x = xv;
			}
		}
		for (int i = 0; i < NSPECIAL; i++)
			if (!special_ok(f, SPECIAL[i], out[k][GRID + i])) {
				printf("  %s(%g): got %g, want %g\n", f->name, SPECIAL[i], out[k][GRID + i],
				       f->ref(SPECIAL[i]));
				ok = false;
			}
		printf("%s %-9s on [%g, %g]: max abs err %.3g, max rel err %.3g (at %.6g)\n",
		       ok ? "ok  " : "FAIL", f->name, f->lo, f->hi, max_abs, max_rel, worst_x);
		fails += !ok;
		for (int j = 0; j < NFN; j++)
			free(out[j]);
	}
	free(in);
	api->session_free(s);
	api->weights_free(w);
	api->model_close(m);
	unlink(path);
	case_free(&c);
	return fails;
}

int main(void)
{
	/* this machine (with AVX-512, exp's 2^n is one vscalefps), then the
	 * AVX2 form (8 lanes, 2^n in two factors) where the CPU runs it */
	int host = check_target(NULL), v3 = 0;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		v3 = check_target("x86-64-v3");
#endif
	rmdir(test_tmpdir());
	return host || v3 ? 1 : 0;
}
