/* views.c - strided views with symbolic sizes: what the view ops
 * (view/reshape, permute, transpose, expand, unsqueeze, slice, select,
 * contiguous) do to a tensor's (offset, strides) without moving data,
 * numpy broadcasting of a view to an index space, and the collapsing of
 * adjacent dims that a kernel can walk as one.
 *
 * Sizes and strides are IrDim monomials, offsets sums of monomials, so
 * every decision here holds for all values of the symbols (B, S). When a
 * view op cannot be expressed on the input's strides (reshaping a
 * permuted tensor), cg_view_apply says so and the caller copies.
 */
#include <string.h>

#include "codegen/codegen.h"

bool cg_dim_is(IrDim d, int64_t v)
{
	return ir_dim_is_const(d) && d.coef == v;
}

IrDim cg_dim_mul(IrDim a, IrDim b)
{
	return ir_dim_mul(a, b);
}

bool cg_poly_eq(const CgPoly *a, const CgPoly *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++) {
		bool found = false;
		for (int j = 0; j < b->n && !found; j++)
			found = ir_dim_eq(a->t[i], b->t[j]);
		if (!found)
			return false;
	}
	return true;
}

void cg_poly_add(CgPoly *p, IrDim t, bool *ok)
{
	if (t.coef == 0)
		return;
	for (int i = 0; i < p->n; i++) {
		IrDim s;
		if (memcmp(p->t[i].pow, t.pow, sizeof t.pow) == 0 && ir_dim_add(p->t[i], t, &s)) {
			if (s.coef == 0) {
				p->t[i] = p->t[--p->n];
			} else {
				p->t[i] = s;
			}
			return;
		}
	}
	if (p->n == CG_MAX_TERMS) {
		*ok = false;
		return;
	}
	p->t[p->n++] = t;
}

void cg_poly_print(StrBuf *b, const IrCtx *c, const CgPoly *p)
{
	if (p->n == 0) {
		sb_putc(b, '0');
		return;
	}
	for (int i = 0; i < p->n; i++) {
		if (i)
			sb_puts(b, " + ");
		ir_dim_print(b, c, p->t[i]);
	}
}

CgView cg_view_contig(int buf, const IrShape *s)
{
	CgView v;
	memset(&v, 0, sizeof v);
	v.buf = buf;
	v.ndim = s->ndim;
	IrDim st = ir_dim_const(1);
	for (int i = s->ndim - 1; i >= 0; i--) {
		v.dim[i] = s->d[i];
		v.stride[i] = st;
		st = cg_dim_mul(st, s->d[i]);
	}
	return v;
}

IrDim cg_view_numel(const CgView *v)
{
	IrDim n = ir_dim_const(1);
	for (int i = 0; i < v->ndim; i++)
		n = cg_dim_mul(n, v->dim[i]);
	return n;
}

/* Offset 0 and row-major strides (size-1 dims may have any stride). */
bool cg_view_is_contig(const CgView *v)
{
	if (v->off.n)
		return false;
	IrDim st = ir_dim_const(1);
	for (int i = v->ndim - 1; i >= 0; i--) {
		if (cg_dim_is(v->dim[i], 1))
			continue;
		if (!ir_dim_eq(v->stride[i], st))
			return false;
		st = cg_dim_mul(st, v->dim[i]);
	}
	return true;
}

/* ---- reshape ------------------------------------------------------------------ */

/* View v as shape `to` (same number of elements) if some strides do it:
 * the input's dims, size-1 dims dropped, form chunks that are contiguous
 * among themselves; each target dim must lie within one chunk. */
static bool reshape(CgView *v, const IrShape *to)
{
	IrDim cd[IR_MAX_DIMS], cs[IR_MAX_DIMS]; /* chunk sizes and inner strides */
	int nc = 0;
	for (int i = 0; i < v->ndim; i++) {
		if (cg_dim_is(v->dim[i], 1))
			continue;
		if (nc > 0 && ir_dim_eq(cs[nc - 1], cg_dim_mul(v->stride[i], v->dim[i]))) {
			cd[nc - 1] = cg_dim_mul(cd[nc - 1], v->dim[i]);
			cs[nc - 1] = v->stride[i];
		} else {
			cd[nc] = v->dim[i];
			cs[nc] = v->stride[i];
			nc++;
		}
	}
	CgView r = *v;
	r.ndim = to->ndim;
	int c = 0, t = 0;
	while (t < to->ndim) {
		if (cg_dim_is(to->d[t], 1)) {
			r.dim[t] = to->d[t];
			r.stride[t] = ir_dim_const(0);
			t++;
			continue;
		}
		if (c >= nc)
			return false;
		/* target dims t..u-1 (ignoring ones) multiply to chunk c */
		IrDim q = ir_dim_const(1);
		int u = t;
		while (u < to->ndim) {
			q = cg_dim_mul(q, to->d[u]);
			u++;
			if (ir_dim_eq(q, cd[c]))
				break;
			IrDim rest;
			if (!ir_dim_div(cd[c], q, &rest))
				return false;
		}
		if (!ir_dim_eq(q, cd[c]))
			return false;
		IrDim st = cs[c];
		for (int k = u - 1; k >= t; k--) {
			r.dim[k] = to->d[k];
			r.stride[k] = cg_dim_is(to->d[k], 1) ? ir_dim_const(0) : st;
			if (!cg_dim_is(to->d[k], 1))
				st = cg_dim_mul(st, to->d[k]);
		}
		t = u;
		c++;
	}
	if (c != nc)
		return false;
	*v = r;
	return true;
}

/* ---- the view ops -------------------------------------------------------------- */

bool cg_view_apply(const IrNode *n, CgView *v)
{
	int nd = v->ndim;
	bool ok = true;
	switch (n->op) {
	case OP_CONTIGUOUS:
	case OP_DROPOUT:
		return true;
	case OP_VIEW:
		return reshape(v, &n->shape);
	case OP_UNSQUEEZE: {
		int a = n->niattr >= 1 ? ir_axis(n->iattr[0], nd + 1) : -1;
		if (a < 0 || nd + 1 > IR_MAX_DIMS)
			return false;
		for (int i = nd; i > a; i--) {
			v->dim[i] = v->dim[i - 1];
			v->stride[i] = v->stride[i - 1];
		}
		v->dim[a] = ir_dim_const(1);
		v->stride[a] = ir_dim_const(0);
		v->ndim = nd + 1;
		return true;
	}
	case OP_PERMUTE:
	case OP_TRANSPOSE: {
		int perm[IR_MAX_DIMS];
		if (n->op == OP_PERMUTE) {
			if (n->niattr != nd)
				return false;
			for (int i = 0; i < nd; i++)
				if ((perm[i] = ir_axis(n->iattr[i], nd)) < 0)
					return false;
		} else {
			int a = n->niattr >= 2 ? ir_axis(n->iattr[0], nd) : -1;
			int b = n->niattr >= 2 ? ir_axis(n->iattr[1], nd) : -1;
			if (a < 0 || b < 0)
				return false;
			for (int i = 0; i < nd; i++)
				perm[i] = i;
			perm[a] = b;
			perm[b] = a;
		}
		CgView r = *v;
		for (int i = 0; i < nd; i++) {
			r.dim[i] = v->dim[perm[i]];
			r.stride[i] = v->stride[perm[i]];
		}
		*v = r;
		return true;
	}
	case OP_EXPAND:
		return cg_view_broadcast(v, n->shape.ndim, n->shape.d);
	case OP_SLICE: {
		int a = n->niattr >= 1 ? ir_axis(n->iattr[0], nd) : -1;
		int64_t step = n->niattr >= 2 ? n->iattr[1] : 1;
		IrDim lo;
		if (a < 0 || n->ndattr < 2 || step < 1 || n->shape.ndim != nd ||
		    !ir_slice_bound(n->dattr[0], v->dim[a], &lo))
			return false;
		cg_poly_add(&v->off, cg_dim_mul(lo, v->stride[a]), &ok);
		v->stride[a] = cg_dim_mul(v->stride[a], ir_dim_const(step));
		v->dim[a] = n->shape.d[a];
		return ok;
	}
	case OP_SELECT: {
		int a = n->niattr >= 2 ? ir_axis(n->iattr[0], nd) : -1;
		if (a < 0)
			return false;
		int64_t idx = n->iattr[1];
		if (idx < 0) {
			if (!ir_dim_is_const(v->dim[a]))
				return false;
			idx += v->dim[a].coef;
		}
		cg_poly_add(&v->off, cg_dim_mul(ir_dim_const(idx), v->stride[a]), &ok);
		for (int i = a; i + 1 < nd; i++) {
			v->dim[i] = v->dim[i + 1];
			v->stride[i] = v->stride[i + 1];
		}
		v->ndim = nd - 1;
		return ok;
	}
	default:
		return false;
	}
}

bool cg_view_broadcast(CgView *v, int ndim, const IrDim *dim)
{
	if (v->ndim > ndim)
		return false;
	CgView r = *v;
	r.ndim = ndim;
	int off = ndim - v->ndim;
	for (int i = 0; i < ndim; i++) {
		r.dim[i] = dim[i];
		if (i < off) {
			r.stride[i] = ir_dim_const(0);
			continue;
		}
		IrDim d = v->dim[i - off];
		if (ir_dim_eq(d, dim[i]))
			r.stride[i] = v->stride[i - off];
		else if (cg_dim_is(d, 1))
			r.stride[i] = ir_dim_const(0);
		else
			return false;
	}
	*v = r;
	return true;
}

void cg_views_collapse(int *ndim, IrDim *dim, CgView *views, int nviews, int keep_last)
{
	int nd = *ndim;
	/* drop size-1 dims (the row dim stays) */
	int w = 0;
	for (int i = 0; i < nd; i++) {
		bool row = keep_last && i == nd - 1;
		if (cg_dim_is(dim[i], 1) && !row)
			continue;
		dim[w] = dim[i];
		for (int k = 0; k < nviews; k++)
			views[k].stride[w] = views[k].stride[i];
		w++;
	}
	nd = w;
	/* merge i into i+1 when every view walks them as one */
	int last = keep_last ? nd - 1 : nd;
	for (int i = last - 2; i >= 0; i--) {
		bool ok = true;
		for (int k = 0; ok && k < nviews; k++)
			ok = ir_dim_eq(views[k].stride[i],
			               cg_dim_mul(views[k].stride[i + 1], dim[i + 1]));
		if (!ok)
			continue;
		dim[i] = cg_dim_mul(dim[i], dim[i + 1]);
		for (int k = 0; k < nviews; k++)
			views[k].stride[i] = views[k].stride[i + 1];
		for (int j = i + 1; j + 1 < nd; j++) {
			dim[j] = dim[j + 1];
			for (int k = 0; k < nviews; k++)
				views[k].stride[j] = views[k].stride[j + 1];
		}
		nd--;
		last--;
	}
	if (nd == 0) {
		nd = 1;
		dim[0] = ir_dim_const(1);
		for (int k = 0; k < nviews; k++)
			views[k].stride[0] = ir_dim_const(0);
	}
	*ndim = nd;
	for (int k = 0; k < nviews; k++) {
		views[k].ndim = nd;
		for (int i = 0; i < nd; i++)
			views[k].dim[i] = dim[i];
	}
}
