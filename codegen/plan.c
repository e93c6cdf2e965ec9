/* plan.c - the static memory plan and the text form of the kernel graph.
 *
 * Every temp buffer lives from the step that first writes it to the last
 * step that reads it. Temps whose lifetimes do not overlap share a slot
 * of the workspace; slots are assigned here, at compile time, greedily in
 * step order (a free slot that already holds a buffer of the same size
 * first, then any free slot, then a new one). Sizes are symbolic, so a
 * slot's size is the largest of its buffers *evaluated at run time* for
 * the actual B and S (driver.c emits that computation), and its offset
 * the sum of the sizes before it, each rounded up to 64 bytes.
 *
 * cg_print writes the kernel graph with the plan for --dump-after=lower:
 * one line per step, then the slots. The text is stable (golden tests).
 */
#include <string.h>

#include "codegen/codegen.h"

static IrDim buf_bytes(const CgBuf *b)
{
	return ir_dim_mul(b->numel, ir_dim_const(cg_elem_size(b->dtype)));
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

int cg_plan_slots(const CgProgram *p, const int *def, const int *last, int *slot_of,
                  PtrVec *slot_bufs)
{
	int nb = p->bufs.len, nt = 0, nslots = 0;
	/* slots, in order of first write */
	int *order = ARENA_ARRAY(p->arena, int, nb + 1);
	for (int i = 0; i < nb; i++) {
		const CgBuf *b = p->bufs.items[i];
		slot_of[i] = -1;
		if (b->kind == CG_BUF_TEMP && def[i] >= 0)
			order[nt++] = i;
	}
	for (int i = 1; i < nt; i++) /* insertion sort by def, stable */
		for (int j = i; j > 0 && def[order[j - 1]] > def[order[j]]; j--) {
			int t = order[j - 1];
			order[j - 1] = order[j];
			order[j] = t;
		}
	int *busy = ARENA_ARRAY(p->arena, int, nt + 1); /* last step of each slot */
	for (int i = 0; i < nt; i++) {
		int id = order[i];
		IrDim bytes = buf_bytes(p->bufs.items[id]);
		int pick = -1;
		for (int s = 0; s < nslots && pick < 0; s++) {
			if (busy[s] >= def[id])
				continue;
			PtrVec *v = &slot_bufs[s];
			for (int k = 0; k < v->len && pick < 0; k++)
				if (ir_dim_eq(buf_bytes(v->items[k]), bytes))
					pick = s;
		}
		for (int s = 0; s < nslots && pick < 0; s++)
			if (busy[s] < def[id])
				pick = s;
		if (pick < 0) {
			pick = nslots++;
			slot_bufs[pick] = (PtrVec){0};
		}
		slot_of[id] = pick;
		busy[pick] = last[id];
		ptrvec_push(p->arena, &slot_bufs[pick], p->bufs.items[id]);
	}
	return nslots;
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
	int *slot_of = ARENA_ARRAY(p->arena, int, nb + 1);
	for (int i = 0; i < nb; i++) {
		const CgBuf *b = p->bufs.items[i];
		def[i] = b->def;
		last[i] = b->last;
	}
	p->slot_bufs = ARENA_ARRAY(p->arena, PtrVec, nb + 1);
	p->nslots = cg_plan_slots(p, def, last, slot_of, p->slot_bufs);
	for (int i = 0; i < nb; i++) {
		CgBuf *b = p->bufs.items[i];
		if (b->kind == CG_BUF_TEMP)
			b->index = slot_of[i]; /* -1: never used */
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
	sb_printf(b, "  memory: %d slots\n", p->nslots);
	for (int s = 0; s < p->nslots; s++) {
		const PtrVec *v = &p->slot_bufs[s];
		sb_printf(b, "    slot %d:", s);
		for (int k = 0; k < v->len; k++) {
			const CgBuf *x = v->items[k];
			sb_printf(b, "%s t%d %s[", k ? "," : "", x->id, ir_dtype_name(x->dtype));
			ir_dim_print(b, c, x->numel);
			sb_printf(b, "] k%d..k%d", x->def, x->last);
		}
		sb_putc(b, '\n');
	}
	sb_puts(b, "}\n");
}
