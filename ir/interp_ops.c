/* interp_ops.c - the interpreter's op functions, one per `interp` column
 * of ops.def. Each gets the node, its input tensors and an output tensor
 * already shaped as the node says; it checks the sizes it relies on and
 * fills the output in double precision.
 *
 * Broadcasting, permutes, slices and expands all go through one strided
 * walk over the output's index space (Walk), each operand read through
 * its own strides (0 along broadcast dims).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

#define OP(id, name, arity, flags, shape, interp)                                        \
	bool interp(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out);
#include "ir/ops.def"
#undef OP

/* ---- strided walks ----------------------------------------------------------- */

enum {
	MAXOP = 3
};

/* Row-major walk over `shape`, keeping one offset per operand. */
typedef struct Walk {
	int nd, nop;
	int64_t shape[IR_MAX_DIMS];
	int64_t idx[IR_MAX_DIMS];
	int64_t st[MAXOP][IR_MAX_DIMS];
	int64_t off[MAXOP];
} Walk;

static void walk_init(Walk *w, int nd, const int64_t *shape, int nop)
{
	memset(w, 0, sizeof *w);
	w->nd = nd;
	w->nop = nop;
	for (int i = 0; i < nd; i++)
		w->shape[i] = shape[i];
}

static void walk_next(Walk *w)
{
	for (int i = w->nd - 1; i >= 0; i--) {
		w->idx[i]++;
		for (int k = 0; k < w->nop; k++)
			w->off[k] += w->st[k][i];
		if (w->idx[i] < w->shape[i])
			return;
		for (int k = 0; k < w->nop; k++)
			w->off[k] -= w->st[k][i] * w->shape[i];
		w->idx[i] = 0;
	}
}

/* Contiguous strides of a shape. */
static void strides(int nd, const int64_t *shape, int64_t *st)
{
	int64_t s = 1;
	for (int i = nd - 1; i >= 0; i--) {
		st[i] = s;
		s *= shape[i];
	}
}

/* Strides that read tensor shape ts (contiguous, each element `scale`
 * apart) broadcast to os (right-aligned); false if it does not broadcast. */
static bool bstrides(int tnd, const int64_t *ts, int ond, const int64_t *os,
                     int64_t scale, int64_t *st)
{
	if (tnd > ond)
		return false;
	int64_t s = scale;
	for (int i = ond - 1; i >= 0; i--) {
		int j = i - (ond - tnd);
		if (j < 0) {
			st[i] = 0;
			continue;
		}
		if (ts[j] == os[i])
			st[i] = ts[j] == 1 ? 0 : s;
		else if (ts[j] == 1)
			st[i] = 0;
		else
			return false;
		s *= ts[j];
	}
	return true;
}

static bool tbstrides(const IrTensor *t, const IrTensor *out, int64_t *st)
{
	return bstrides(t->ndim, t->shape, out->ndim, out->shape, 1, st);
}

static bool same_numel(IrInterp *it, const IrNode *n, const IrTensor *a,
                       const IrTensor *out)
{
	if (a->numel != out->numel)
		return interp_fail(it, "%s: input has %lld elements, output %lld",
		                   n->name, (long long)a->numel, (long long)out->numel);
	return true;
}

static bool no_bcast(IrInterp *it, const IrNode *n)
{
	return interp_fail(it, "%s: input shapes do not broadcast to the output",
	                   n->name);
}

/* ---- sources ---------------------------------------------------------------------- */

bool interp_input(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	return interp_fail(it, "%s: input nodes are bound by interp_run", n->name);
}

bool interp_param(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	return interp_fail(it, "%s: parameters are bound by interp_run", n->name);
}

bool interp_const(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	for (int64_t i = 0; i < out->numel; i++)
		out->data[i] = n->fattr;
	return true;
}

bool interp_arange(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	for (int64_t i = 0; i < out->numel; i++)
		out->data[i] = (double)i;
	return true;
}

/* ---- library calls ------------------------------------------------------------------ */

bool interp_linear(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	const IrTensor *x = in[0], *w = in[1], *b = n->nin > 2 ? in[2] : NULL;
	if (x->ndim < 1 || w->ndim != 2 || out->ndim != x->ndim)
		return interp_fail(it, "%s: bad ranks", n->name);
	int64_t k = x->shape[x->ndim - 1], m = w->shape[0];
	if (w->shape[1] != k || out->shape[out->ndim - 1] != m || (b && b->numel != m))
		return interp_fail(it, "%s: sizes do not match", n->name);
	int64_t rows = k ? x->numel / k : out->numel / (m ? m : 1);
	if (rows * m != out->numel)
		return interp_fail(it, "%s: sizes do not match", n->name);
	for (int64_t r = 0; r < rows; r++) {
		const double *xr = x->data + r * k;
		for (int64_t o = 0; o < m; o++) {
			const double *wr = w->data + o * k;
			double s = 0;
			for (int64_t j = 0; j < k; j++)
				s += xr[j] * wr[j];
			out->data[r * m + o] = b ? s + b->data[o] : s;
		}
	}
	return true;
}

bool interp_matmul(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	const IrTensor *a = in[0], *b = in[1];
	if (a->ndim < 2 || b->ndim < 2 || out->ndim < 2)
		return interp_fail(it, "%s: operands must have at least 2 dims", n->name);
	int64_t rn = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
	int64_t rm = b->shape[b->ndim - 1];
	if (b->shape[b->ndim - 2] != k || out->shape[out->ndim - 2] != rn ||
	    out->shape[out->ndim - 1] != rm)
		return interp_fail(it, "%s: sizes do not match", n->name);
	int bnd = out->ndim - 2;
	Walk w;
	walk_init(&w, bnd, out->shape, 2);
	if (!bstrides(a->ndim - 2, a->shape, bnd, out->shape, rn * k, w.st[0]) ||
	    !bstrides(b->ndim - 2, b->shape, bnd, out->shape, k * rm, w.st[1]))
		return no_bcast(it, n);
	int64_t batches = rn != 0 && rm != 0 ? out->numel / (rn * rm) : 0;
	for (int64_t t = 0; t < batches; t++, walk_next(&w)) {
		const double *pa = a->data + w.off[0], *pb = b->data + w.off[1];
		double *po = out->data + t * rn * rm;
		for (int64_t i = 0; i < rn; i++)
			for (int64_t j = 0; j < rm; j++) {
				double s = 0;
				for (int64_t q = 0; q < k; q++)
					s += pa[i * k + q] * pb[q * rm + j];
				po[i * rm + j] = s;
			}
	}
	return true;
}

/* ---- elementwise -------------------------------------------------------------------- */

typedef double (*Fn1)(double);
typedef double (*Fn2)(double, double);

static bool binary(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out, Fn2 f)
{
	Walk w;
	walk_init(&w, out->ndim, out->shape, 2);
	if (!tbstrides(in[0], out, w.st[0]) || !tbstrides(in[1], out, w.st[1]))
		return no_bcast(it, n);
	for (int64_t e = 0; e < out->numel; e++, walk_next(&w))
		out->data[e] = f(in[0]->data[w.off[0]], in[1]->data[w.off[1]]);
	return true;
}

static bool unary(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out, Fn1 f)
{
	if (!same_numel(it, n, in[0], out))
		return false;
	for (int64_t e = 0; e < out->numel; e++)
		out->data[e] = f(in[0]->data[e]);
	return true;
}

static double f_add(double a, double b)
{
	return a + b;
}
static double f_sub(double a, double b)
{
	return a - b;
}
static double f_mul(double a, double b)
{
	return a * b;
}
static double f_div(double a, double b)
{
	return a / b;
}
static double f_pow(double a, double b)
{
	return pow(a, b);
}
static double f_maximum(double a, double b)
{
	return isnan(a) || a > b ? a : b;
}
static double f_minimum(double a, double b)
{
	return isnan(a) || a < b ? a : b;
}
static double f_eq(double a, double b)
{
	return a == b;
}
static double f_ne(double a, double b)
{
	return a != b;
}
static double f_lt(double a, double b)
{
	return a < b;
}
static double f_le(double a, double b)
{
	return a <= b;
}
static double f_gt(double a, double b)
{
	return a > b;
}
static double f_ge(double a, double b)
{
	return a >= b;
}

static double f_neg(double x)
{
	return -x;
}
static double f_rsqrt(double x)
{
	return 1 / sqrt(x);
}
static double f_sigmoid(double x)
{
	return 1 / (1 + exp(-x));
}
static double f_relu(double x)
{
	return x > 0 ? x : isnan(x) ? x : 0;
}
static double f_gelu(double x)
{
	return 0.5 * x * (1 + erf(x / sqrt(2.0)));
}
static double f_gelu_tanh(double x)
{
	const double k = 0.79788456080286535588; /* sqrt(2/pi) */
	return 0.5 * x * (1 + tanh(k * (x + 0.044715 * x * x * x)));
}
static double f_not(double x)
{
	return x == 0;
}
static double f_id(double x)
{
	return x;
}

#define BINARY(name)                                                                     \
	bool interp_##name(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)  \
	{                                                                                \
		return binary(it, n, in, out, f_##name);                                 \
	}
BINARY(add)
BINARY(sub)
BINARY(mul)
BINARY(div)
BINARY(pow)
BINARY(maximum)
BINARY(minimum)
BINARY(eq)
BINARY(ne)
BINARY(lt)
BINARY(le)
BINARY(gt)
BINARY(ge)

#define UNARY(name, fn)                                                                  \
	bool interp_##name(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)  \
	{                                                                                \
		return unary(it, n, in, out, fn);                                        \
	}
UNARY(neg, f_neg)
UNARY(exp, exp)
UNARY(log, log)
UNARY(tanh, tanh)
UNARY(erf, erf)
UNARY(sqrt, sqrt)
UNARY(rsqrt, f_rsqrt)
UNARY(sigmoid, f_sigmoid)
UNARY(relu, f_relu)
UNARY(gelu, f_gelu)
UNARY(gelu_tanh, f_gelu_tanh)
UNARY(not, f_not)
UNARY(dropout, f_id) /* identity at inference */
UNARY(view, f_id)    /* view, contiguous: same elements, same order */
UNARY(unsqueeze, f_id)

/* The output's dtype rounds the values (interp.c): int truncates, bool
 * tests against 0; floats stay double. */
UNARY(cast, f_id)

bool interp_where(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	Walk w;
	walk_init(&w, out->ndim, out->shape, 3);
	for (int k = 0; k < 3; k++)
		if (!tbstrides(in[k], out, w.st[k]))
			return no_bcast(it, n);
	for (int64_t e = 0; e < out->numel; e++, walk_next(&w))
		out->data[e] = in[0]->data[w.off[0]] != 0 ? in[1]->data[w.off[1]]
		                                          : in[2]->data[w.off[2]];
	return true;
}

bool interp_masked_fill(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	Walk w;
	walk_init(&w, out->ndim, out->shape, 2);
	if (!tbstrides(in[0], out, w.st[0]) || !tbstrides(in[1], out, w.st[1]))
		return no_bcast(it, n);
	for (int64_t e = 0; e < out->numel; e++, walk_next(&w))
		out->data[e] =
		        in[1]->data[w.off[1]] != 0 ? n->fattr : in[0]->data[w.off[0]];
	return true;
}

/* ---- reductions and normalisations ------------------------------------------------- */

bool interp_softmax(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	const IrTensor *x = in[0];
	int a = n->niattr ? ir_axis(n->iattr[0], x->ndim) : -1;
	if (a < 0)
		return interp_fail(it, "%s: dim out of range", n->name);
	if (!same_numel(it, n, x, out))
		return false;
	int64_t outer = 1, d = x->shape[a], inner = 1;
	for (int i = 0; i < a; i++)
		outer *= x->shape[i];
	for (int i = a + 1; i < x->ndim; i++)
		inner *= x->shape[i];
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < inner; i++) {
			const double *px = x->data + o * d * inner + i;
			double *po = out->data + o * d * inner + i;
			double mx = -INFINITY, sum = 0;
			for (int64_t j = 0; j < d; j++)
				if (px[j * inner] > mx || isnan(px[j * inner]))
					mx = px[j * inner];
			for (int64_t j = 0; j < d; j++) {
				po[j * inner] = exp(px[j * inner] - mx);
				sum += po[j * inner];
			}
			for (int64_t j = 0; j < d; j++)
				po[j * inner] /= sum;
		}
	return true;
}

bool interp_layer_norm(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	const IrTensor *x = in[0], *w = in[1], *b = in[2];
	if (x->ndim < 1 || !same_numel(it, n, x, out))
		return x->ndim < 1 ? interp_fail(it, "%s: scalar input", n->name) : false;
	int64_t d = x->shape[x->ndim - 1];
	if (w->numel != d || b->numel != d)
		return interp_fail(it,
		                   "%s: weight or bias does not match the last dim %lld",
		                   n->name, (long long)d);
	int64_t rows = d ? x->numel / d : 0;
	for (int64_t r = 0; r < rows; r++) {
		const double *px = x->data + r * d;
		double *po = out->data + r * d;
		double mean = 0, var = 0;
		for (int64_t j = 0; j < d; j++)
			mean += px[j];
		mean /= (double)d;
		for (int64_t j = 0; j < d; j++)
			var += (px[j] - mean) * (px[j] - mean);
		var /= (double)d; /* biased, as torch */
		double inv = 1 / sqrt(var + n->fattr);
		for (int64_t j = 0; j < d; j++)
			po[j] = (px[j] - mean) * inv * w->data[j] + b->data[j];
	}
	return true;
}

/* sum, mean, max: reduce the dims in iattr (all of them when none). */
static bool reduce(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out, int kind)
{
	const IrTensor *x = in[0];
	bool red[IR_MAX_DIMS] = {0};
	for (int i = 0; i < n->niattr; i++) {
		int a = ir_axis(n->iattr[i], x->ndim);
		if (a < 0)
			return interp_fail(it, "%s: dim out of range", n->name);
		red[a] = true;
	}
	int64_t kshape[IR_MAX_DIMS], count = 1, keep = 1;
	for (int i = 0; i < x->ndim; i++) {
		if (n->niattr == 0)
			red[i] = true;
		kshape[i] = red[i] ? 1 : x->shape[i];
		if (red[i])
			count *= x->shape[i];
		else
			keep *= x->shape[i];
	}
	if (keep != out->numel)
		return interp_fail(it, "%s: output has %lld elements, expected %lld",
		                   n->name, (long long)out->numel, (long long)keep);
	Walk w;
	walk_init(&w, x->ndim, x->shape, 1);
	strides(x->ndim, kshape, w.st[0]);
	for (int i = 0; i < x->ndim; i++)
		if (red[i])
			w.st[0][i] = 0;
	for (int64_t e = 0; e < out->numel; e++)
		out->data[e] = kind == 2 ? -INFINITY : 0;
	for (int64_t e = 0; e < x->numel; e++, walk_next(&w)) {
		double v = x->data[e], *o = &out->data[w.off[0]];
		if (kind == 2) {
			if (v > *o || isnan(v))
				*o = isnan(*o) ? *o : v;
		} else {
			*o += v;
		}
	}
	if (kind == 1)
		for (int64_t e = 0; e < out->numel; e++)
			out->data[e] /= (double)count;
	return true;
}

bool interp_sum(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	return reduce(it, n, in, out, 0);
}

bool interp_mean(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	return reduce(it, n, in, out, 1);
}

bool interp_max(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	return reduce(it, n, in, out, 2);
}

/* ---- data movement ------------------------------------------------------------------- */

bool interp_embedding(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	const IrTensor *ids = in[0], *tab = in[1];
	if (tab->ndim != 2)
		return interp_fail(it, "%s: the table must be 2-D", n->name);
	int64_t rows = tab->shape[0], d = tab->shape[1];
	if (ids->numel * d != out->numel)
		return interp_fail(it, "%s: output has %lld elements, expected %lld",
		                   n->name, (long long)out->numel,
		                   (long long)(ids->numel * d));
	for (int64_t i = 0; i < ids->numel; i++) {
		double v = ids->data[i];
		if (!(v >= 0 && v < (double)rows) || v != floor(v))
			return interp_fail(
			        it,
			        "%s: index %.17g is out of range for a table of %lld rows",
			        n->name, v, (long long)rows);
		memcpy(out->data + i * d, tab->data + (int64_t)v * d,
		       sizeof(double) * (size_t)d);
	}
	return true;
}

/* out[i] = src[base + sum idx_k * st_k] over out's index space */
static void gather(const double *src, int64_t base, const int64_t *st, IrTensor *out)
{
	Walk w;
	walk_init(&w, out->ndim, out->shape, 1);
	memcpy(w.st[0], st, sizeof(int64_t) * (size_t)out->ndim);
	for (int64_t e = 0; e < out->numel; e++, walk_next(&w))
		out->data[e] = src[base + w.off[0]];
}

static bool permute(IrInterp *it, const IrNode *n, const IrTensor *x, const int *perm,
                    IrTensor *out)
{
	int64_t xs[IR_MAX_DIMS], st[IR_MAX_DIMS];
	if (out->ndim != x->ndim)
		return interp_fail(it, "%s: rank mismatch", n->name);
	strides(x->ndim, x->shape, xs);
	for (int i = 0; i < x->ndim; i++) {
		if (out->shape[i] != x->shape[perm[i]])
			return interp_fail(it, "%s: output dim %d does not match",
			                   n->name, i);
		st[i] = xs[perm[i]];
	}
	gather(x->data, 0, st, out);
	return true;
}

bool interp_permute(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	int perm[IR_MAX_DIMS];
	bool seen[IR_MAX_DIMS] = {0};
	if (n->niattr != in[0]->ndim)
		return interp_fail(it, "%s: bad permutation", n->name);
	for (int i = 0; i < n->niattr; i++) {
		perm[i] = ir_axis(n->iattr[i], in[0]->ndim);
		if (perm[i] < 0 || seen[perm[i]])
			return interp_fail(it, "%s: bad permutation", n->name);
		seen[perm[i]] = true;
	}
	return permute(it, n, in[0], perm, out);
}

bool interp_transpose(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	int perm[IR_MAX_DIMS];
	int nd = in[0]->ndim;
	int a = n->niattr >= 2 ? ir_axis(n->iattr[0], nd) : -1;
	int b = n->niattr >= 2 ? ir_axis(n->iattr[1], nd) : -1;
	if (a < 0 || b < 0)
		return interp_fail(it, "%s: dims out of range", n->name);
	for (int i = 0; i < nd; i++)
		perm[i] = i;
	perm[a] = b;
	perm[b] = a;
	return permute(it, n, in[0], perm, out);
}

bool interp_expand(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	int64_t st[IR_MAX_DIMS];
	if (!tbstrides(in[0], out, st))
		return interp_fail(it, "%s: cannot expand the input to the output",
		                   n->name);
	gather(in[0]->data, 0, st, out);
	return true;
}

/* A slice bound at run time, Python-style: negative counts from the end,
 * then clamped to [0, size]. */
static int64_t bound(int64_t v, int64_t size)
{
	if (v == INT64_MAX)
		return size;
	if (v < 0)
		v += size;
	return v < 0 ? 0 : v > size ? size : v;
}

bool interp_slice(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	const IrTensor *x = in[0];
	int a = n->niattr >= 1 ? ir_axis(n->iattr[0], x->ndim) : -1;
	int64_t step = n->niattr >= 2 ? n->iattr[1] : 1, lo, hi;
	if (a < 0 || n->ndattr < 2 || step < 1 || out->ndim != x->ndim)
		return interp_fail(it, "%s: bad slice", n->name);
	if (!interp_dim(it, n, n->dattr[0], &lo) || !interp_dim(it, n, n->dattr[1], &hi))
		return false;
	lo = bound(lo, x->shape[a]);
	hi = bound(hi, x->shape[a]);
	int64_t len = hi > lo ? (hi - lo + step - 1) / step : 0;
	for (int i = 0; i < x->ndim; i++)
		if (out->shape[i] != (i == a ? len : x->shape[i]))
			return interp_fail(
			        it,
			        "%s: the slice %lld:%lld:%lld has %lld elements but the shape says %lld",
			        n->name, (long long)lo, (long long)hi, (long long)step,
			        (long long)len, (long long)out->shape[a]);
	int64_t st[IR_MAX_DIMS];
	strides(x->ndim, x->shape, st);
	int64_t base = lo * st[a];
	st[a] *= step;
	gather(x->data, len ? base : 0, st, out);
	return true;
}

bool interp_select(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	const IrTensor *x = in[0];
	int a = n->niattr >= 2 ? ir_axis(n->iattr[0], x->ndim) : -1;
	if (a < 0 || out->ndim != x->ndim - 1)
		return interp_fail(it, "%s: bad select", n->name);
	int64_t idx = n->iattr[1], size = x->shape[a];
	if (idx < 0)
		idx += size;
	if (idx < 0 || idx >= size)
		return interp_fail(
		        it, "%s: index %lld is out of range for a dim of size %lld",
		        n->name, (long long)n->iattr[1], (long long)size);
	int64_t xs[IR_MAX_DIMS], st[IR_MAX_DIMS];
	strides(x->ndim, x->shape, xs);
	for (int i = 0, j = 0; i < x->ndim; i++) {
		if (i == a)
			continue;
		if (out->shape[j] != x->shape[i])
			return interp_fail(it, "%s: output dim %d does not match",
			                   n->name, j);
		st[j++] = xs[i];
	}
	gather(x->data, idx * xs[a], st, out);
	return true;
}

bool interp_cat(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	int a = n->niattr >= 1 ? ir_axis(n->iattr[0], out->ndim) : -1;
	if (a < 0)
		return interp_fail(it, "%s: dim out of range", n->name);
	int64_t outer = 1, inner = 1, total = 0;
	for (int i = 0; i < a; i++)
		outer *= out->shape[i];
	for (int i = a + 1; i < out->ndim; i++)
		inner *= out->shape[i];
	for (int k = 0; k < n->nin; k++) {
		const IrTensor *t = in[k];
		bool ok = t->ndim == out->ndim;
		for (int i = 0; ok && i < t->ndim; i++)
			ok = i == a || t->shape[i] == out->shape[i];
		if (!ok)
			return interp_fail(it, "%s: input %d does not fit the output",
			                   n->name, k);
		total += t->shape[a];
	}
	if (total != out->shape[a])
		return interp_fail(
		        it, "%s: inputs add up to %lld along dim %d, output has %lld",
		        n->name, (long long)total, a, (long long)out->shape[a]);
	int64_t at = 0;
	for (int k = 0; k < n->nin; k++) {
		const IrTensor *t = in[k];
		int64_t blk = t->shape[a] * inner;
		for (int64_t o = 0; o < outer; o++)
			memcpy(out->data + (o * total + at) * inner, t->data + o * blk,
			       sizeof(double) * (size_t)blk);
		at += t->shape[a];
	}
	return true;
}

/* ---- calls ---------------------------------------------------------------------------- */

/* Parameters of a called module's body are named relative to it
 * ("weight"); the callback sees them under the call's path
 * ("dense.weight"). */
typedef struct Prefixed {
	IrParamFn fn;
	void *user;
	const char *prefix;
} Prefixed;

static IrTensor *prefixed_param(void *user, const IrNode *n)
{
	Prefixed *p = user;
	if (!p->fn || !n->sattr)
		return NULL;
	size_t len = strlen(p->prefix) + strlen(n->sattr) + 2;
	char *path = malloc(len);
	if (!path)
		return NULL;
	snprintf(path, len, "%s.%s", p->prefix, n->sattr);
	IrNode copy = *n;
	copy.sattr = path;
	IrTensor *t = p->fn(p->user, &copy);
	free(path);
	return t;
}

bool interp_call(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out)
{
	const IrGraph *body = n->sub;
	if (!body || body->outputs.len != 1 || body->inputs.len != n->nin)
		return interp_fail(it, "%s: the body does not fit the call", n->name);
	IrTensor *res = NULL;
	IrInterp sub = *it;
	Prefixed pre = {it->param, it->param_user, n->sattr};
	if (n->op == OP_CALL && n->sattr && *n->sattr) {
		sub.param = prefixed_param;
		sub.param_user = &pre;
	}
	if (!interp_graph(&sub, body, in, &res, it->sym_values)) {
		/* say where: "in call encoder.dense: no value for parameter weight" */
		char why[sizeof it->error];
		memcpy(why, sub.error, sizeof why);
		why[sizeof why - 1] = 0;
		return interp_fail(it, "in %s%s: %s", n->op == OP_CALL ? "call " : "",
		                   n->sattr ? n->sattr : n->name, why);
	}
	bool ok = res->ndim == out->ndim && res->numel == out->numel;
	for (int i = 0; ok && i < out->ndim; i++)
		ok = res->shape[i] == out->shape[i];
	if (!ok) {
		ir_tensor_free(res);
		return interp_fail(it,
		                   "%s: the body's result does not have the call's shape",
		                   n->name);
	}
	double *d = out->data;
	out->data = res->data;
	res->data = d;
	ir_tensor_free(res);
	return true;
}
