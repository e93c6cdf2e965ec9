/* plan.c - the static memory plan and the text form of the kernel graph.
 *
 * Every temp buffer lives from the step that first writes it to the last
 * step that reads it. Temps whose lifetimes do not overlap share a slot
 * of the workspace; slots are assigned here, at compile time, greedily in
 * step order. Sizes are symbolic (c * B^i * S^j), comparable only between
 * buffers of the same monomial B^i * S^j; among the free slots a buffer
 * takes the one known to be large enough with the smallest size, else
 * one of its monomial with the largest size (which grows least), else
 * any, else a new one. A slot's size is the largest of its buffers
 * *evaluated at run time* for the actual B and S (driver.c emits that
 * computation), and its offset the sum of the sizes before it, each
 * rounded up to 64 bytes.
 *
 * cg_print writes the kernel graph with the plan for --dump-after=lower:
 * one line per step, then the slots. The text is stable (golden tests).
 */
#include <string.h>

#include "codegen/codegen.h"
#include "runtime/rt.h"

IrDim *cg_plan_bytes(const CgProgram *p)
{
	IrDim *v = ARENA_ARRAY(p->arena, IrDim, p->bufs.len + 1);
	for (int i = 0; i < p->bufs.len; i++) {
		const CgBuf *b = p->bufs.items[i];
		v[i] = ir_dim_mul(b->numel, ir_dim_const(cg_elem_size(b->dtype)));
	}
	return v;
}

/* A C identifier from a node name. */
static const char *ident(Arena *a, int id, const char *name)
{
	char *s = arena_printf(a, "k%d_%s", id, name ? name : "");
	for (char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_'))
			*c = '_';
	return s;
}

static bool same_monomial(IrDim a, IrDim b)
{
	return memcmp(a.pow, b.pow, sizeof a.pow) == 0;
}

/* Where buffer i goes in its region, as a * M + b bytes (M the region's
 * monomial): past every placed buffer j live at the same time whose
 * footprint, [a_j * M + b_j, (a_j + c_j) * M + b_j + align), would meet
 * its own for some M (first fit). Rounding a * M + b up to the alignment
 * at run time stays inside the footprint. */
static void first_fit(const int *ids, int n, int64_t *a, int64_t *b, const IrDim *bytes,
                      const int *def, const int *last, int i, int64_t align)
{
	a[i] = b[i] = 0;
	for (bool moved = true; moved;) {
		moved = false;
		for (int k = 0; k < n; k++) {
			int j = ids[k];
			if (last[j] < def[i] || def[j] > last[i])
				continue; /* not live together */
			bool before = a[i] + bytes[i].coef <= a[j] && b[i] + align <= b[j];
			bool after = a[j] + bytes[j].coef <= a[i] && b[j] + align <= b[i];
			if (!before && !after) {
				a[i] = a[j] + bytes[j].coef > a[i] ? a[j] + bytes[j].coef : a[i];
				b[i] = b[j] + align > b[i] ? b[j] + align : b[i];
				moved = true;
			}
		}
	}
}

void cg_plan_make(Arena *a, CgBuf *const *bufs, const IrDim *bytes, int nb, const int *def,
                  const int *last, int align, CgPlan *pl)
{
	memset(pl, 0, sizeof *pl);
	pl->region = ARENA_ARRAY(a, int, nb + 1);
	pl->off = ARENA_ARRAY(a, IrDim, nb + 1);
	pl->size = ARENA_ARRAY(a, IrDim, nb + 1);
	pl->bufs = ARENA_ARRAY(a, PtrVec, nb + 1);
	pl->def = def;
	pl->last = last;
	int *order = ARENA_ARRAY(a, int, nb + 1), nt = 0;
	for (int i = 0; i < nb; i++) {
		pl->region[i] = -1;
		if (bufs[i]->kind == CG_BUF_TEMP && def[i] >= 0)
			order[nt++] = i;
	}
	/* largest first (then by first use): big buffers take the low
	 * offsets, small ones fill the gaps around them */
	for (int i = 1; i < nt; i++)
		for (int j = i; j > 0; j--) {
			IrDim x = bytes[order[j - 1]], y = bytes[order[j]];
			bool swap = x.coef < y.coef ||
			            (x.coef == y.coef && def[order[j - 1]] > def[order[j]]);
			if (!swap)
				break;
			int t = order[j - 1];
			order[j - 1] = order[j];
			order[j] = t;
		}
	int *ids = ARENA_ARRAY(a, int, nt + 1);
	int64_t *at = ARENA_ARRAY(a, int64_t, nb + 1);
	pl->slack = ARENA_ARRAY(a, int64_t, nb + 1);
	pl->size_slack = ARENA_ARRAY(a, int64_t, nb + 1);
	for (int k = 0; k < nt; k++) {
		int i = order[k], r = 0;
		while (r < pl->nregions && !same_monomial(pl->size[r], bytes[i]))
			r++;
		if (r == pl->nregions) {
			pl->size[r] = bytes[i];
			pl->size[r].coef = 0;
			pl->nregions++;
		}
		int n = 0; /* the region's buffers so far */
		for (int q = 0; q < pl->bufs[r].len; q++)
			ids[n++] = ((const CgBuf *)pl->bufs[r].items[q])->id;
		first_fit(ids, n, at, pl->slack, bytes, def, last, i, align);
		pl->region[i] = r;
		pl->off[i] = bytes[i];
		pl->off[i].coef = at[i];
		if (at[i] + bytes[i].coef > pl->size[r].coef)
			pl->size[r].coef = at[i] + bytes[i].coef;
		if (pl->slack[i] + align > pl->size_slack[r])
			pl->size_slack[r] = pl->slack[i] + align;
		ptrvec_push(a, &pl->bufs[r], bufs[i]);
	}
}

void cg_plan_print(StrBuf *b, const IrCtx *c, const CgPlan *pl, const IrDType *types,
                   char step)
{
	sb_printf(b, "  memory: %d regions\n", pl->nregions);
	for (int r = 0; r < pl->nregions; r++) {
		const PtrVec *v = &pl->bufs[r];
		sb_printf(b, "    region %d (", r);
		ir_dim_print(b, c, pl->size[r]);
		sb_printf(b, " + %lld bytes):", (long long)pl->size_slack[r]);
		for (int k = 0; k < v->len; k++) {
			const CgBuf *x = v->items[k];
			sb_printf(b, "%s t%d %s[", k ? "," : "", x->id,
			          ir_dtype_name(types ? types[x->id] : x->dtype));
			ir_dim_print(b, c, x->numel);
			sb_printf(b, "] @%lld+%lld %c%d..%c%d", (long long)pl->off[x->id].coef,
			          (long long)pl->slack[x->id], step,
			          pl->def[x->id], step, pl->last[x->id]);
		}
		sb_putc(b, '\n');
	}
}

static LLVMValueRef i64(CgLlvm *L, int64_t v)
{
	return LLVMConstInt(L->t_i64, (unsigned long long)v, 1);
}

/* v rounded up to a multiple of align (a power of two) */
static LLVMValueRef round_up_ir(CgLlvm *L, LLVMValueRef v, int64_t align)
{
	return LLVMBuildAnd(L->b, LLVMBuildAdd(L->b, v, i64(L, align - 1), ""), i64(L, -align), "");
}

/* The byte count d as a double, to see overflow. */
static LLVMValueRef dim_f64(CgFn *f, IrDim d)
{
	LLVMBuilderRef B = f->L->b;
	LLVMTypeRef dt = LLVMDoubleTypeInContext(f->L->ctx);
	LLVMValueRef x = LLVMConstReal(dt, (double)d.coef);
	for (int q = 0; q < IR_MAX_SYMS; q++)
		for (int e = 0; e < d.pow[q]; e++)
			x = LLVMBuildFMul(B, x, LLVMBuildSIToFP(B, cg_dim(f, ir_dim_sym(q)), dt, ""),
			                  "");
	return x;
}

LLVMValueRef cg_emit_plan(CgLlvm *L, const CgProgram *p, const CgPlan *pl, int align,
                          const char *name)
{
	LLVMBuilderRef B = L->b;
	LLVMTypeRef args[2] = {L->t_i64p, L->t_i64p};
	LLVMValueRef fn = LLVMAddFunction(L->mod, name, LLVMFunctionType(L->t_i64, args, 2, 0));
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	CgFn f;
	cg_fn_begin(&f, L, p, fn);
	f.sym = LLVMGetParam(fn, 0);
	LLVMValueRef offs = LLVMGetParam(fn, 1);
	LLVMTypeRef dt = LLVMDoubleTypeInContext(L->ctx);
	LLVMValueRef total = LLVMConstInt(L->t_i64, 0, 0), totd = LLVMConstReal(dt, 0);
	for (int r = 0; r < pl->nregions; r++) {
		LLVMValueRef idx = LLVMConstInt(L->t_i64, (unsigned long long)r, 0);
		LLVMBuildStore(B, total, LLVMBuildInBoundsGEP2(B, L->t_i64, offs, &idx, 1, ""));
		LLVMValueRef sz = round_up_ir(L, LLVMBuildAdd(B, cg_dim(&f, pl->size[r]),
		                                              i64(L, pl->size_slack[r]), ""),
		                              align);
		total = LLVMBuildAdd(B, total, sz, "");
		totd = LLVMBuildFAdd(
		        B, totd,
		        LLVMBuildFAdd(B, dim_f64(&f, pl->size[r]),
		                      LLVMConstReal(dt, (double)(pl->size_slack[r] + align)), ""),
		        "");
	}
	LLVMValueRef over = LLVMBuildFCmp(B, LLVMRealUGT, totd, LLVMConstReal(dt, 4.0e18), "");
	LLVMBuildRet(B, LLVMBuildSelect(B, over, LLVMConstInt(L->t_i64, (unsigned long long)-1, 1),
	                                total, ""));
	cg_fn_end(&f);
	return fn;
}

LLVMValueRef cg_plan_addr(CgFn *f, LLVMValueRef ws, LLVMValueRef offs, const CgPlan *pl,
                          int align, int id)
{
	CgLlvm *L = f->L;
	if (pl->region[id] < 0)
		return LLVMConstNull(L->t_i8p);
	LLVMValueRef idx = LLVMConstInt(L->t_i64, (unsigned long long)pl->region[id], 0);
	LLVMValueRef o = LLVMBuildLoad2(
	        L->b, L->t_i64, LLVMBuildInBoundsGEP2(L->b, L->t_i64, offs, &idx, 1, ""), "");
	o = LLVMBuildAdd(L->b, o,
	                 round_up_ir(L, LLVMBuildAdd(L->b, cg_dim(f, pl->off[id]),
	                                             i64(L, pl->slack[id]), ""),
	                             align),
	                 "");
	return LLVMBuildInBoundsGEP2(L->b, L->t_i8, ws, &o, 1, "");
}

void cg_plan(CgProgram *p)
{
	int nb = p->bufs.len;
	for (int i = 0; i < nb; i++) {
		CgBuf *b = p->bufs.items[i];
		b->def = b->last = -1;
	}
	p->max_views = 0;
	for (int s = 0; s < p->steps.len; s++) {
		CgStep *st = p->steps.items[s];
		st->fn = ident(p->arena, s, st->name);
		if (st->nview > p->max_views)
			p->max_views = st->nview;
		for (int k = 0; k < st->nview; k++) {
			int id = st->views[k].buf;
			if (id < 0)
				continue;
			CgBuf *b = p->bufs.items[id];
			if (b->def < 0)
				b->def = s;
			b->last = s;
		}
	}
	int *def = ARENA_ARRAY(p->arena, int, nb + 1), *last = ARENA_ARRAY(p->arena, int, nb + 1);
	for (int i = 0; i < nb; i++) {
		const CgBuf *b = p->bufs.items[i];
		def[i] = b->def;
		last[i] = b->last;
	}
	cg_plan_make(p->arena, (CgBuf *const *)p->bufs.items, cg_plan_bytes(p), nb, def, last,
	             RT_ALIGN, &p->plan);
	for (int i = 0; i < nb; i++) {
		CgBuf *b = p->bufs.items[i];
		if (b->kind == CG_BUF_TEMP)
			b->index = p->plan.region[i]; /* -1: never used */
	}
}

/* ---- text form ---------------------------------------------------------------- */

static void buf_name(StrBuf *b, const CgProgram *p, int id)
{
	if (id < 0) {
		sb_puts(b, "index");
		return;
	}
	const CgBuf *x = p->bufs.items[id];
	switch (x->kind) {
	case CG_BUF_INPUT: sb_printf(b, "in%d", x->index); break;
	case CG_BUF_PARAM: sb_printf(b, "p%d", x->index); break;
	case CG_BUF_OUTPUT: sb_printf(b, "out%d", x->index); break;
	case CG_BUF_TEMP: sb_printf(b, "t%d", x->id); break;
	}
}

static void dims(StrBuf *b, const IrCtx *c, const IrDim *d, int n)
{
	for (int i = 0; i < n; i++) {
		if (i)
			sb_puts(b, ", ");
		ir_dim_print(b, c, d[i]);
	}
}

/* t3[B*S, 32 : 32, 1] or with an offset t3+(64)[...] */
static void view_print(StrBuf *b, const CgProgram *p, const CgView *v)
{
	buf_name(b, p, v->buf);
	if (v->off.n) {
		sb_puts(b, "+(");
		cg_poly_print(b, p->ir, &v->off);
		sb_putc(b, ')');
	}
	sb_putc(b, '[');
	dims(b, p->ir, v->dim, v->ndim);
	sb_puts(b, " : ");
	dims(b, p->ir, v->stride, v->ndim);
	sb_putc(b, ']');
}

static const char *kind_name(CgKind k)
{
	switch (k) {
	case CG_MAP: return "map";
	case CG_SOFTMAX: return "softmax";
	case CG_LAYER_NORM: return "layer_norm";
	case CG_REDUCE: return "reduce";
	case CG_GATHER: return "gather";
	case CG_GEMM: return "gemm";
	case CG_ATTENTION: return "attention";
	}
	return "?";
}

static void step_print(StrBuf *b, const CgProgram *p, const CgStep *st)
{
	const IrCtx *c = p->ir;
	sb_printf(b, "  k%-3d %-10s %%%s (%s)\n", st->id, kind_name(st->kind), st->name,
	          st->what);
	if (st->kind == CG_GEMM) {
		sb_puts(b, "       ");
		buf_name(b, p, st->views[0].buf);
		sb_puts(b, " = ");
		buf_name(b, p, st->views[1].buf);
		sb_puts(b, st->ta ? "^T" : "");
		sb_puts(b, " . ");
		buf_name(b, p, st->views[2].buf);
		sb_puts(b, st->tb ? "^T" : "");
		if (st->beta != 0)
			sb_puts(b, " + C");
		sb_puts(b, "  m=");
		ir_dim_print(b, c, st->m);
		sb_puts(b, " n=");
		ir_dim_print(b, c, st->n);
		sb_puts(b, " k=");
		ir_dim_print(b, c, st->k);
		sb_puts(b, " lda=");
		ir_dim_print(b, c, st->lda);
		sb_puts(b, " ldb=");
		ir_dim_print(b, c, st->ldb);
		sb_puts(b, " ldc=");
		ir_dim_print(b, c, st->ldc);
		for (int i = 0; i < 3; i++) {
			if (!st->views[i].off.n)
				continue;
			sb_printf(b, " off%c=", "cab"[i]);
			cg_poly_print(b, c, &st->views[i].off);
		}
		sb_putc(b, '\n');
		if (st->ngroup > 1) {
			sb_puts(b, "       group");
			for (int i = 0; i < st->ngroup; i++) {
				sb_puts(b, i ? ", " : " ");
				buf_name(b, p, st->gb[i].buf);
				sb_puts(b, " n=");
				ir_dim_print(b, c, st->gn[i]);
				sb_puts(b, " at column ");
				ir_dim_print(b, c, st->gc[i]);
			}
			sb_puts(b, " (one call when adjacent)\n");
		}
		for (int i = 0; i < st->nbatch; i++) {
			sb_printf(b, "       batch %s", i + 1 == st->nbatch ? "call" : "loop");
			sb_puts(b, " ");
			ir_dim_print(b, c, st->bdim[i]);
			sb_puts(b, " strides a=");
			ir_dim_print(b, c, st->bsa[i]);
			sb_puts(b, " b=");
			ir_dim_print(b, c, st->bsb[i]);
			sb_puts(b, " c=");
			ir_dim_print(b, c, st->bsc[i]);
			sb_putc(b, '\n');
		}
		return;
	}
	sb_puts(b, "       over [");
	dims(b, c, st->dim, st->ndim);
	sb_puts(b, "]");
	if (st->kind == CG_LAYER_NORM) {
		sb_puts(b, " eps=");
		sb_pyfloat(b, st->eps);
	}
	if (st->kind == CG_REDUCE)
		sb_printf(b, " %s", ir_ops[st->rop].name);
	if (st->kind == CG_GATHER) {
		sb_puts(b, " rows=");
		ir_dim_print(b, c, st->rows);
		sb_printf(b, " checked as '%s'", st->object);
	}
	sb_putc(b, '\n');
	for (int k = 0; k < st->nview; k++) {
		const char *role = k == 0 ? "out" : "in";
		if (st->kind == CG_LAYER_NORM && k == 1)
			role = "weight";
		if (st->kind == CG_LAYER_NORM && k == 2)
			role = "bias";
		if (st->kind == CG_GATHER && k == 1)
			role = "ids";
		if (st->kind == CG_GATHER && k == 2)
			role = "table";
		sb_printf(b, "       %-6s ", role);
		view_print(b, p, &st->views[k]);
		for (int l = 0; l < st->expr.nleaf; l++)
			if (st->expr.leaf_view && st->expr.leaf_view[l] == k)
				sb_printf(b, " %%%s", st->expr.leaf[l]->name);
		sb_putc(b, '\n');
	}
}

void cg_print(StrBuf *b, const CgProgram *p)
{
	const IrCtx *c = p->ir;
	const CgModel *m = p->model;
	sb_printf(b, "kernels %s(", m && m->name ? m->name : "model");
	for (int i = 0; i < p->inputs.len; i++) {
		const CgTensor *t = p->inputs.items[i];
		sb_printf(b, "%sin%d %%%s: ", i ? ", " : "", i, t->name);
		ir_type_print(b, c, t->dtype, &t->shape);
	}
	sb_puts(b, ") -> (");
	for (int i = 0; i < p->outputs.len; i++) {
		const CgTensor *t = p->outputs.items[i];
		sb_printf(b, "%sout%d %%%s: ", i ? ", " : "", i, t->name);
		ir_type_print(b, c, t->dtype, &t->shape);
	}
	sb_puts(b, ") {\n");
	int ntied = 0;
	for (int i = 0; i < p->params.len; i++)
		ntied += ((const CgTensor *)p->params.items[i])->tied_to >= 0;
	sb_printf(b, "  params: %d (%d tied)\n", p->params.len, ntied);
	for (int i = 0; i < p->params.len; i++) {
		const CgTensor *t = p->params.items[i];
		sb_printf(b, "    p%d %s: ", i, t->name);
		ir_type_print(b, c, t->dtype, &t->shape);
		if (t->tied_to >= 0)
			sb_printf(b, " = p%d", t->tied_to);
		sb_putc(b, '\n');
	}
	sb_printf(b, "  steps: %d\n", p->steps.len);
	for (int s = 0; s < p->steps.len; s++)
		step_print(b, p, p->steps.items[s]);
	cg_plan_print(b, c, &p->plan, NULL, 'k');
	sb_puts(b, "}\n");
}
