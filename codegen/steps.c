/* steps.c - the step table profiles read (runtime/rt.h RtStepDesc): for
 * each step of a program, in the order forward() runs them, a name that
 * is unique in the table, its kind, the .slapo line and the module path
 * it comes from; and a function computing every step's FLOPs and bytes
 * at run time (sizes are symbolic). driver.c emits the CPU program's
 * table, driver_gpu.c the GPU program's (its steps differ: bias
 * epilogues, operand conversions).
 *
 * Names are the model-graph node names `slapoc --explain` prints (a
 * fused kernel's, not its body's): a GEMM of grouped linears is its
 * members joined with '+' ("linear+linear_1+linear_2"), a linear's bias
 * pass is "NAME.bias", another helper step of a node (an operand copy)
 * "NAME.WHAT", and a number is appended to what still clashes.
 * Costs are estimates in the spirit of --explain: 2mnk per GEMM, one
 * FLOP per element and elementwise op (8 for exp/tanh/erf/GELU), and the
 * bytes of each operand's distinct elements.
 *
 * Both drivers fold a linear's bias pass into its GEMM where they can
 * (cg_find_bias): the step then goes from their tables; and both run
 * attention's product, softmax and product as one step where
 * cg_find_attention finds them (one fused kernel on the GPU, rt_attention
 * on the CPU), whose table row is the attention step's.
 */
#include <string.h>

#include "codegen/codegen.h"
#include "runtime/rt.h"

#define B (L->b)

/* ---- bias epilogues ------------------------------------------------------------------- */

/* A "bias" MAP writing C's columns [col, col + n) from a parameter read
 * as [.., n : 0, .., 1]: its bias view, else NULL. */
static const CgView *bias_map(const CgProgram *p, const CgStep *m, const CgView *C,
                              IrDim col, IrDim n)
{
	if (m->kind != CG_MAP || !m->what || strcmp(m->what, "bias") != 0 ||
	    m->nview != 2 || m->expr.nleaf != 1 || m->expr.root != m->expr.leaf[0])
		return NULL;
	const CgView *o = &m->views[0], *b = &m->views[1];
	if (o->buf != C->buf || b->buf < 0)
		return NULL;
	const CgBuf *bb = p->bufs.items[b->buf];
	if (bb->kind != CG_BUF_PARAM || b->ndim < 1 ||
	    !ir_dim_eq(b->dim[b->ndim - 1], n) || !cg_dim_is(b->stride[b->ndim - 1], 1))
		return NULL;
	for (int i = 0; i + 1 < b->ndim; i++)
		if (!cg_dim_is(b->stride[i], 0))
			return NULL;
	CgPoly want = C->off;
	bool ok = true;
	cg_poly_add(&want, col, &ok);
	return ok && cg_poly_eq(&o->off, &want) ? b : NULL;
}

bool cg_find_bias(const CgProgram *p, int s, const CgView **bias, int *steps)
{
	const CgStep *st = p->steps.items[s];
	int members = st->ngroup > 1 ? st->ngroup : 1, found = 0;
	if (st->beta != 1 || st->nbatch != 0)
		return false;
	int i = s - 1;
	while (i >= 0 && ((const CgStep *)p->steps.items[i])->kind == CG_MAP &&
	       ((const CgStep *)p->steps.items[i])->what &&
	       strcmp(((const CgStep *)p->steps.items[i])->what, "copy") == 0 &&
	       s - i < 4)
		i--;
	for (int k = members - 1; k >= 0; k--, i--) {
		if (i < 0)
			return false;
		IrDim col = st->ngroup > 1 ? st->gc[k] : ir_dim_const(0);
		IrDim n = st->ngroup > 1 ? st->gn[k] : st->n;
		bias[k] = bias_map(p, p->steps.items[i], &st->views[0], col, n);
		if (!bias[k])
			return false;
		steps[k] = i;
		found++;
	}
	return found == members;
}

/* ---- attention -------------------------------------------------------------------------- */

/* The model-graph node a step computes (or helps to). */
const char *cg_step_node(const CgStep *st)
{
	return st->node ? st->node : st->name ? st->name : "step";
}

CgStep *cg_find_attention(const CgProgram *p, int s)
{
	if (s + 2 >= p->steps.len)
		return NULL;
	const CgStep *g1 = p->steps.items[s], *sm = p->steps.items[s + 1],
	             *g2 = p->steps.items[s + 2];
	if (g1->kind != CG_GEMM || sm->kind != CG_SOFTMAX || g2->kind != CG_GEMM)
		return NULL;
	if (g1->ta || !g1->tb || g2->ta || g2->tb || g1->ngroup > 1 || g2->ngroup > 1 ||
	    g1->alpha != 1.0 || g1->beta != 0.0 || g2->alpha != 1.0 || g2->beta != 0.0)
		return NULL;
	int sbuf = g1->views[0].buf, pbuf = sm->views[0].buf;
	if (sbuf < 0 || pbuf < 0)
		return NULL;
	const CgBuf *sb = p->bufs.items[sbuf], *pb = p->bufs.items[pbuf];
	if (sb->kind != CG_BUF_TEMP || pb->kind != CG_BUF_TEMP || sb->last != s + 1 ||
	    pb->last != s + 2 || g2->views[1].buf != pbuf || g1->views[0].off.n != 0 ||
	    g2->views[1].off.n != 0)
		return NULL;
	if (!ir_dim_eq(g2->n, g1->k) || !ir_dim_eq(g1->m, g1->n) || !ir_dim_eq(g2->m, g1->m) ||
	    !ir_dim_eq(g2->k, g1->m))
		return NULL;
	/* the same batches; scores and probs compact, rows (batches, query) */
	if (g1->nbatch != g2->nbatch || g1->nbatch < 1 || !ir_dim_eq(g1->ldc, g1->n) ||
	    !ir_dim_eq(g2->lda, g1->n))
		return NULL;
	IrDim want = ir_dim_mul(g1->m, g1->n);
	for (int i = g1->nbatch - 1; i >= 0; i--) {
		if (!ir_dim_eq(g1->bdim[i], g2->bdim[i]) || !ir_dim_eq(g1->bsc[i], want) ||
		    !ir_dim_eq(g2->bsa[i], want))
			return NULL;
		want = ir_dim_mul(want, g1->bdim[i]);
	}
	IrDim rows = ir_dim_const(1);
	for (int i = 0; i + 1 < sm->ndim; i++)
		rows = ir_dim_mul(rows, sm->dim[i]);
	if (!ir_dim_eq(sm->dim[sm->ndim - 1], g1->n) || !ir_dim_eq(ir_dim_mul(rows, g1->n), want) ||
	    !cg_view_is_contig(&sm->views[0]))
		return NULL;
	int sleaf = -1;
	for (int i = 0; i < sm->expr.nleaf; i++) {
		const CgView *lv = &sm->views[sm->expr.leaf_view[i]];
		if (lv->buf != sbuf)
			continue;
		if (sleaf >= 0 || !cg_view_is_contig(lv))
			return NULL;
		sleaf = i;
	}
	if (sleaf < 0)
		return NULL;
	CgStep *at = ARENA_NEW(p->arena, CgStep);
	*at = *sm;
	at->kind = CG_ATTENTION;
	at->what = "attention";
	at->name = g2->name;
	/* the step table names the three: "matmul+FusedScaleMaskSoftmax_0+matmul_1" */
	at->members = arena_printf(p->arena, "%s+%s+%s", cg_step_node(g1), cg_step_node(sm),
	                           cg_step_node(g2));
	at->nview = sm->nview + 3;
	at->views = ARENA_ARRAY(p->arena, CgView, at->nview);
	at->views[0] = g2->views[0];
	at->views[1] = g1->views[1];
	at->views[2] = g1->views[2];
	at->views[3] = g2->views[2];
	for (int i = 1; i < sm->nview; i++)
		at->views[i + 3] = sm->views[i];
	at->expr.leaf_view = ARENA_ARRAY(p->arena, int, sm->expr.nleaf + 1);
	for (int i = 0; i < sm->expr.nleaf; i++)
		at->expr.leaf_view[i] = sm->expr.leaf_view[i] + 3;
	at->sleaf = sleaf;
	at->mt = 1;
	at->m = g1->m;
	at->k = g1->k;
	at->lda = g1->lda;
	at->ldb = g1->ldb;
	at->ldc = g2->ldc;
	at->ldv = g2->ldb;
	at->nbatch = g1->nbatch;
	for (int i = 0; i < g1->nbatch; i++) {
		at->bdim[i] = g1->bdim[i];
		at->bsa[i] = g1->bsa[i];
		at->bsb[i] = g1->bsb[i];
		at->bsc[i] = g2->bsc[i];
		at->bsv[i] = g2->bsb[i];
	}
	return at;
}

const char *cg_kind_name(CgKind k)
{
	switch (k) {
	case CG_MAP:
		return "map";
	case CG_SOFTMAX:
		return "softmax";
	case CG_LAYER_NORM:
		return "layer_norm";
	case CG_REDUCE:
		return "reduce";
	case CG_GATHER:
		return "gather";
	case CG_GEMM:
		return "gemm";
	case CG_ATTENTION:
		return "attention";
	}
	return "?";
}

static bool used(const char **names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return true;
	return false;
}

/* What a step's table name starts from: its members, else its node. */
static const char *base_of(const CgStep *st)
{
	return st->members ? st->members : cg_step_node(st);
}

/* The unique name of each step (see the top of the file): a node's one
 * step, its GEMM, or the step computing the node itself takes the node's
 * name; other steps of it (a copy of an operand, a part of a fused body)
 * add what they do. */
const char **cg_step_names(Arena *a, const CgStep *const *steps, int n)
{
	const char **names = ARENA_ARRAY(a, const char *, n + 1);
	for (int i = 0; i < n; i++) {
		const CgStep *st = steps[i];
		const char *s = base_of(st);
		int same = 0;
		for (int k = 0; k < n; k++)
			same += strcmp(base_of(steps[k]), s) == 0;
		bool main = same == 1 || st->kind == CG_GEMM ||
		            (st->name && !strcmp(st->name, s));
		if (st->kind == CG_MAP && st->what && strcmp(st->what, "bias") == 0) {
			s = arena_printf(a, "%s.bias", s);
		} else if (!main) {
			const char *w =
			        st->what && strncmp(s, st->what, strlen(st->what)) != 0
			                ? st->what
			                : st->name;
			s = arena_printf(a, "%s.%s", s, w ? w : "step");
		}
		const char *b = s;
		for (int k = 2; used(names, i, s); k++)
			s = arena_printf(a, "%s.%d", b, k);
		names[i] = s;
	}
	return names;
}

/* ---- the table ----------------------------------------------------------------------- */

LLVMValueRef cg_emit_step_table(CgLlvm *L, Arena *a, const CgStep *const *steps, int n,
                                const char *name)
{
	LLVMTypeRef p = L->t_i8p;
	LLVMTypeRef f4[4] = {p, p, p, p};
	LLVMTypeRef t = LLVMStructTypeInContext(L->ctx, f4, 4, 0);
	if (LLVMABISizeOfType(L->td, t) != sizeof(RtStepDesc) ||
	    LLVMOffsetOfElement(L->td, t, 3) != offsetof(RtStepDesc, module)) {
		diag_plain(L->diag, DIAG_ERROR, "internal error: RtStepDesc layout");
		return NULL;
	}
	if (n == 0)
		return LLVMConstNull(p);
	const char **names = cg_step_names(a, steps, n);
	LLVMValueRef *e = ARENA_ARRAY(a, LLVMValueRef, n + 1);
	for (int i = 0; i < n; i++) {
		const CgStep *st = steps[i];
		const char *src = st->span.file
		                          ? arena_printf(a, "%s:%d", st->span.file->path,
		                                         st->span.first_line)
		                          : NULL;
		LLVMValueRef f[4] = {
		        cg_llvm_cstr(L, names[i]), cg_llvm_cstr(L, cg_kind_name(st->kind)),
		        src ? cg_llvm_cstr(L, src) : LLVMConstNull(p),
		        st->module ? cg_llvm_cstr(L, st->module) : LLVMConstNull(p)};
		e[i] = LLVMConstNamedStruct(t, f, 4);
	}
	LLVMValueRef init = LLVMConstArray(t, e, (unsigned)n);
	LLVMValueRef g = LLVMAddGlobal(L->mod, LLVMTypeOf(init), name);
	LLVMSetInitializer(g, init);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetLinkage(g, LLVMPrivateLinkage);
	LLVMValueRef zero = LLVMConstInt(L->t_i64, 0, 0), idx[2] = {zero, zero};
	return LLVMConstBitCast(LLVMConstInBoundsGEP2(LLVMTypeOf(init), g, idx, 2), p);
}

/* ---- costs ------------------------------------------------------------------------------ */

/* A sum of monomials, in double. */
typedef struct Cost {
	CgFn *f;
	LLVMValueRef v;
} Cost;

static void add(Cost *c, IrDim d, double k)
{
	CgLlvm *L = c->f->L;
	LLVMTypeRef dt = LLVMDoubleTypeInContext(L->ctx);
	LLVMValueRef x = LLVMConstReal(dt, (double)d.coef * k);
	for (int q = 0; q < IR_MAX_SYMS; q++)
		for (int e = 0; e < d.pow[q]; e++)
			x = LLVMBuildFMul(
			        B, x,
			        LLVMBuildSIToFP(B, cg_dim(c->f, ir_dim_sym(q)), dt, ""),
			        "");
	c->v = LLVMBuildFAdd(B, c->v, x, "");
}

/* Distinct elements a view reaches: its dims, less broadcast ones. */
static IrDim view_elems(const CgView *v)
{
	IrDim n = ir_dim_const(1);
	for (int i = 0; i < v->ndim; i++)
		if (!cg_dim_is(v->stride[i], 0))
			n = cg_dim_mul(n, v->dim[i]);
	return n;
}

static IrDim dims(const IrDim *d, int n)
{
	IrDim r = ir_dim_const(1);
	for (int i = 0; i < n; i++)
		r = cg_dim_mul(r, d[i]);
	return r;
}

/* FLOPs per element of an elementwise expression: its ops (not its
 * leaves or constants), shared nodes once. */
static int expr_flops(const CgExpr *e, const IrNode *x, const IrNode **seen, int *nseen)
{
	if (!x)
		return 0;
	for (int i = 0; i < e->nleaf; i++)
		if (e->leaf[i] == x)
			return 0;
	for (int i = 0; i < e->nconst; i++)
		if (e->cnode[i] == x)
			return 0;
	for (int i = 0; i < *nseen; i++)
		if (seen[i] == x)
			return 0;
	if (*nseen < 256)
		seen[(*nseen)++] = x;
	int f = 0;
	for (int i = 0; i < x->nin; i++)
		f += expr_flops(e, x->in[i], seen, nseen);
	unsigned fl = ir_ops[x->op].flags;
	if (fl & (OPF_SOURCE | OPF_VIEW))
		return f;
	switch (x->op) {
	case OP_GELU:
	case OP_GELU_TANH:
	case OP_ERF:
	case OP_TANH:
	case OP_EXP:
		return f + 8;
	default:
		return f + 1;
	}
}

static void step_cost(Cost *fl, Cost *by, const CgStep *st,
                      int (*esize)(const void *, int), const void *ctx)
{
	const IrNode *seen[256];
	int nseen = 0;
	if (st->kind == CG_GEMM) {
		IrDim batch = ir_dim_const(1), ba = batch, bb = batch;
		for (int i = 0; i < st->nbatch; i++) {
			batch = cg_dim_mul(batch, st->bdim[i]);
			if (!cg_dim_is(st->bsa[i], 0))
				ba = cg_dim_mul(ba, st->bdim[i]);
			if (!cg_dim_is(st->bsb[i], 0))
				bb = cg_dim_mul(bb, st->bdim[i]);
		}
		IrDim mn = cg_dim_mul(cg_dim_mul(st->m, st->n), batch);
		add(fl, cg_dim_mul(mn, st->k), 2);
		if (st->beta != 0)
			add(fl, mn, 1);
		int b1 = st->ngroup > 1 ? st->gb[0].buf : st->views[2].buf;
		add(by, cg_dim_mul(cg_dim_mul(st->m, st->k), ba),
		    esize(ctx, st->views[1].buf));
		add(by, cg_dim_mul(cg_dim_mul(st->k, st->n), bb), esize(ctx, b1));
		add(by, mn, esize(ctx, st->views[0].buf) * (st->beta != 0 ? 2 : 1));
		return;
	}
	if (st->kind == CG_ATTENTION) { /* two products, the softmax, Q K V O once */
		IrDim batch = ir_dim_const(1);
		for (int i = 0; i < st->nbatch; i++)
			batch = cg_dim_mul(batch, st->bdim[i]);
		IrDim ss = cg_dim_mul(cg_dim_mul(st->m, st->m), batch);
		add(fl, cg_dim_mul(ss, st->k), 4);
		add(fl, ss, expr_flops(&st->expr, st->expr.root, seen, &nseen) + 5);
		for (int k = 0; k < 4; k++)
			add(by, cg_dim_mul(cg_dim_mul(st->m, st->k), batch),
			    esize(ctx, st->views[k].buf));
		for (int k = 4; k < st->nview; k++)
			if (st->views[k].buf >= 0 && k != st->expr.leaf_view[st->sleaf])
				add(by, view_elems(&st->views[k]), esize(ctx, st->views[k].buf));
		return;
	}
	if (st->kind == CG_GATHER) {
		IrDim ids = dims(st->dim, st->ndim - 1);
		add(by, ids, esize(ctx, st->views[1].buf));
		add(by, cg_dim_mul(ids, st->views[2].dim[1]),
		    2 * esize(ctx, st->views[2].buf));
		return;
	}
	IrDim all = dims(st->dim, st->ndim);
	int per = st->expr.root ? expr_flops(&st->expr, st->expr.root, seen, &nseen) : 0;
	per += st->kind == CG_SOFTMAX      ? 5
	       : st->kind == CG_LAYER_NORM ? 8
	       : st->kind == CG_REDUCE     ? 1
	                                   : 0;
	add(fl, all, per);
	for (int k = 0; k < st->nview; k++)
		if (st->views[k].buf >= 0)
			add(by, view_elems(&st->views[k]), esize(ctx, st->views[k].buf));
}

LLVMValueRef cg_emit_step_costs(CgLlvm *L, const CgProgram *p, const CgStep *const *steps,
                                int n, int (*esize)(const void *ctx, int buf),
                                const void *ctx, const char *name)
{
	if (n == 0)
		return LLVMConstNull(L->t_i8p);
	LLVMTypeRef dt = LLVMDoubleTypeInContext(L->ctx);
	LLVMTypeRef args[2] = {L->t_i64p, LLVMPointerType(dt, 0)};
	LLVMValueRef fn =
	        LLVMAddFunction(L->mod, name, LLVMFunctionType(L->t_void, args, 2, 0));
	LLVMSetLinkage(fn, LLVMInternalLinkage);
	CgFn f;
	cg_fn_begin(&f, L, p, fn);
	f.sym = LLVMGetParam(fn, 0);
	LLVMValueRef out = LLVMGetParam(fn, 1);
	for (int i = 0; i < n; i++) {
		Cost fl = {&f, LLVMConstReal(dt, 0)}, by = {&f, LLVMConstReal(dt, 0)};
		step_cost(&fl, &by, steps[i], esize, ctx);
		for (int k = 0; k < 2; k++) {
			LLVMValueRef idx = LLVMConstInt(
			        L->t_i64, (unsigned long long)(2 * i + k), 0);
			LLVMBuildStore(B, k ? by.v : fl.v,
			               LLVMBuildInBoundsGEP2(B, dt, out, &idx, 1, ""));
		}
	}
	LLVMBuildRetVoid(B);
	cg_fn_end(&f);
	return LLVMConstBitCast(fn, L->t_i8p);
}
