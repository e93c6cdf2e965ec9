/* dim.c - symbolic dimensions.
 *
 * A dimension is a monomial coef * prod(sym_i ^ pow_i) over the context's
 * symbols: 768, B, 12*S, B*S, S^2. Products and exact quotients stay
 * monomials; sums only of like terms (S + S = 2*S). That covers what
 * transformer shapes need (view [B, S, 768] as [B, S, 12, 64], flatten
 * [B, S] to [B*S]) and keeps equality a field-by-field compare.
 *
 * Arithmetic on coefficients wraps (as unsigned) instead of overflowing:
 * hostile sizes give wrong numbers that later checks reject, never UB.
 */
#include <string.h>

#include "ir/ir.h"

static int64_t wrap_mul(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a * (uint64_t)b);
}

static int64_t wrap_add(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a + (uint64_t)b);
}

IrDim ir_dim_const(int64_t v)
{
	IrDim d;
	memset(&d, 0, sizeof d);
	d.coef = v;
	return d;
}

IrDim ir_dim_sym(int sym)
{
	IrDim d = ir_dim_const(1);
	if (sym >= 0 && sym < IR_MAX_SYMS)
		d.pow[sym] = 1;
	return d;
}

bool ir_dim_is_const(IrDim d)
{
	for (int i = 0; i < IR_MAX_SYMS; i++)
		if (d.pow[i])
			return false;
	return true;
}

bool ir_dim_plain_sym(IrDim d, int *sym)
{
	if (d.coef != 1)
		return false;
	int found = -1;
	for (int i = 0; i < IR_MAX_SYMS; i++) {
		if (!d.pow[i])
			continue;
		if (d.pow[i] != 1 || found >= 0)
			return false;
		found = i;
	}
	*sym = found;
	return found >= 0;
}

bool ir_dim_eq(IrDim a, IrDim b)
{
	return a.coef == b.coef && memcmp(a.pow, b.pow, sizeof a.pow) == 0;
}

/* Zero is a constant whatever the powers say. */
static IrDim norm(IrDim d)
{
	if (d.coef == 0)
		memset(d.pow, 0, sizeof d.pow);
	return d;
}

IrDim ir_dim_mul(IrDim a, IrDim b)
{
	IrDim r;
	r.coef = wrap_mul(a.coef, b.coef);
	for (int i = 0; i < IR_MAX_SYMS; i++)
		r.pow[i] = (uint8_t)(a.pow[i] + b.pow[i]);
	return norm(r);
}

bool ir_dim_div(IrDim a, IrDim b, IrDim *out)
{
	if (b.coef == 0)
		return false;
	if (a.coef == 0) {
		*out = ir_dim_const(0);
		return true;
	}
	/* INT64_MIN / -1 overflows: refuse it */
	if (b.coef == -1 && a.coef == INT64_MIN)
		return false;
	if (a.coef % b.coef != 0)
		return false;
	IrDim r;
	r.coef = a.coef / b.coef;
	for (int i = 0; i < IR_MAX_SYMS; i++) {
		if (a.pow[i] < b.pow[i])
			return false;
		r.pow[i] = (uint8_t)(a.pow[i] - b.pow[i]);
	}
	*out = r;
	return true;
}

bool ir_dim_add(IrDim a, IrDim b, IrDim *out)
{
	if (a.coef == 0) {
		*out = b;
		return true;
	}
	if (b.coef == 0) {
		*out = a;
		return true;
	}
	if (memcmp(a.pow, b.pow, sizeof a.pow) != 0)
		return false;
	IrDim r = a;
	r.coef = wrap_add(a.coef, b.coef);
	*out = norm(r);
	return true;
}

int64_t ir_dim_eval(IrDim d, const int64_t *values)
{
	int64_t v = d.coef;
	for (int i = 0; i < IR_MAX_SYMS; i++)
		for (int p = 0; p < d.pow[i]; p++)
			v = wrap_mul(v, values ? values[i] : 0);
	return v;
}

void ir_dim_print(StrBuf *b, const IrCtx *c, IrDim d)
{
	if (ir_dim_is_const(d)) {
		sb_printf(b, "%lld", (long long)d.coef);
		return;
	}
	bool first = true;
	if (d.coef == -1) {
		sb_putc(b, '-');
	} else if (d.coef != 1) {
		sb_printf(b, "%lld", (long long)d.coef);
		first = false;
	}
	for (int i = 0; i < IR_MAX_SYMS; i++) {
		if (!d.pow[i])
			continue;
		if (!first)
			sb_putc(b, '*');
		first = false;
		if (c && i < c->nsyms && c->sym_names[i])
			sb_puts(b, c->sym_names[i]);
		else
			sb_printf(b, "s%d", i);
		if (d.pow[i] > 1)
			sb_printf(b, "^%d", d.pow[i]);
	}
}

void ir_shape_print(StrBuf *b, const IrCtx *c, const IrShape *s)
{
	sb_putc(b, '[');
	for (int i = 0; i < s->ndim; i++) {
		if (i)
			sb_puts(b, ", ");
		ir_dim_print(b, c, s->d[i]);
	}
	sb_putc(b, ']');
}

bool ir_shape_eq(const IrShape *a, const IrShape *b)
{
	if (a->ndim != b->ndim)
		return false;
	for (int i = 0; i < a->ndim; i++)
		if (!ir_dim_eq(a->d[i], b->d[i]))
			return false;
	return true;
}

IrDim ir_shape_numel(const IrShape *s)
{
	IrDim n = ir_dim_const(1);
	for (int i = 0; i < s->ndim; i++)
		n = ir_dim_mul(n, s->d[i]);
	return n;
}
