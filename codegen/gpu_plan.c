/* gpu_plan.c - the GPU program made from the kernel graph: what each
 * buffer holds on the device, which GEMMs take their bias as a cuBLASLt
 * epilogue, which operands need converting, the workspace slots and the
 * layout of the device parameter block.
 *
 * Storage types by precision (fp32/tf32: everything as on the CPU):
 *   bf16 / fp16  float temps and parameters in the low type; inputs keep
 *                the model's declared types, float outputs are f32 or,
 *                with --output-dtype, the low type too; a parameter
 *                that only ever serves as the bias of a GEMM writing an f32
 *                output stays f32 (the epilogue wants the bias in the
 *                output's type)
 * Arithmetic is f32 in every kernel (loads widen, stores round to
 * nearest even); GEMMs take both operands in the low type and accumulate
 * in f32, so an f32 input or output read by a GEMM is first converted
 * into a temp of its own (a "convert" MAP over the whole buffer).
 *
 * Bias epilogues: lower.c pre-fills a linear's bias into C with a MAP
 * ("bias") and runs the GEMM with beta = 1. When the bias is a parameter
 * read along C's columns, the GEMM has no outer batch loop, and the bias
 * has C's type, the MAP is dropped and the GEMM adds the bias itself
 * (beta = 0). For a group (Q, K, V) each member's bias map is folded.
 */
#include <string.h>

#include "codegen/gpu.h"
#include "runtime/rt.h"

bool cg_precision_parse(const char *s, CgPrecision *out)
{
	static const struct {
		const char *name;
		CgPrecision p;
	} names[] = {{"fp32", CG_PREC_FP32},    {"f32", CG_PREC_FP32},
	             {"float32", CG_PREC_FP32}, {"tf32", CG_PREC_TF32},
	             {"bf16", CG_PREC_BF16},    {"bfloat16", CG_PREC_BF16},
	             {"fp16", CG_PREC_FP16},    {"f16", CG_PREC_FP16},
	             {"float16", CG_PREC_FP16}, {"half", CG_PREC_FP16}};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].p;
			return true;
		}
	return false;
}

const char *cg_precision_name(CgPrecision p)
{
	switch (p) {
	case CG_PREC_TF32:
		return "tf32";
	case CG_PREC_BF16:
		return "bf16";
	case CG_PREC_FP16:
		return "fp16";
	default:
		return "fp32";
	}
}

int cg_gpu_elem_size(IrDType t)
{
	switch (t) {
	case IR_BF16:
	case IR_F16:
		return 2;
	case IR_I64:
	case IR_F64:
		return 8;
	case IR_BOOL:
		return 1;
	default:
		return 4;
	}
}

int cg_gpu_gemm_type(IrDType t)
{
	return t == IR_BF16 ? RT_GPU_BF16 : t == IR_F16 ? RT_GPU_F16 : RT_GPU_F32;
}

/* Whether buffer b (not a parameter) is stored in the low type: f32
 * temps, and f32 outputs declared in it (CgProgram.out_dtype). */
static bool stored_low(const CgProgram *p, const CgBuf *b, IrDType low)
{
	return low != IR_F32 && b->dtype == IR_F32 &&
	       (b->kind == CG_BUF_TEMP || (b->kind == CG_BUF_OUTPUT && p->out_dtype == low));
}

/* The owner of param index i (itself or its tie target). */
static int owner_of(const CgProgram *p, int i)
{
	const CgTensor *t = p->params.items[i];
	return t->tied_to >= 0 ? t->tied_to : i;
}

static int add_buf(CgGpu *g, CgBuf *b, IrDType t)
{
	b->id = g->nbufs;
	g->bufs[g->nbufs] = b;
	g->btype[g->nbufs] = t;
	return g->nbufs++;
}

/* A new temp of n elements of device type t, named after buffer `like`. */
int cg_gpu_temp(CgGpu *g, IrDim n, IrDType t, int like)
{
	Arena *a = g->prog->arena;
	const CgBuf *lb = g->bufs[like];
	CgBuf *nb = ARENA_NEW(a, CgBuf);
	nb->kind = CG_BUF_TEMP;
	nb->index = -1; /* its place: g->plan */
	nb->dtype = IR_F32;
	nb->numel = n;
	nb->name = arena_printf(a, "%s_%s", lb->name ? lb->name : "buf",
	                        t == IR_BF16 ? "bf16" : t == IR_F16 ? "f16" : "f32");
	return add_buf(g, nb, t);
}

/* The next GPU step: st, its kernel to be made, no converted operands. */
static CgGpuStep *push_step(CgGpu *g, const CgStep *st)
{
	CgGpuStep *gs = &g->steps[g->nsteps++];
	memset(gs, 0, sizeof *gs);
	gs->st = st;
	gs->kernel = -1;
	gs->a_buf = gs->b_buf = gs->object = -1;
	return gs;
}

/* A MAP converting all of buffer src into buffer dst, for operand `which`
 * ("a", "b", "q", ...) of step `owner`. */
CgStep *cg_gpu_convert_map(CgGpu *g, int dst, int src, const CgStep *owner,
                           const char *which)
{
	const CgProgram *p = g->prog;
	Arena *a = p->arena;
	const CgBuf *sb = g->bufs[src];
	CgStep *st = ARENA_NEW(a, CgStep);
	st->kind = CG_MAP;
	st->id = -1;
	st->name = arena_printf(a, "%s.convert_%s",
	                        owner->members ? owner->members : owner->name, which);
	st->what = "convert";
	st->span = owner->span;
	st->module = owner->module;
	st->ndim = 1;
	st->dim[0] = sb->numel;
	st->nview = 2;
	st->views = ARENA_ARRAY(a, CgView, 2);
	for (int k = 0; k < 2; k++) {
		st->views[k].buf = k ? src : dst;
		st->views[k].ndim = 1;
		st->views[k].dim[0] = sb->numel;
		st->views[k].stride[0] = ir_dim_const(1);
	}
	IrNode *leaf = ARENA_NEW(a, IrNode);
	leaf->op = OP_INPUT;
	leaf->dtype = IR_F32;
	leaf->name = "x";
	st->expr.root = leaf;
	st->expr.nleaf = 1;
	st->expr.leaf = ARENA_ARRAY(a, IrNode *, 1);
	st->expr.leaf[0] = leaf;
	st->expr.leaf_view = ARENA_ARRAY(a, int, 1);
	st->expr.leaf_view[0] = 1;
	st->type = IR_F32;
	return st;
}

/* That MAP as the next step, into dst or (dst < 0) a new temp of type t;
 * returns the buffer it writes. */
int cg_gpu_convert(CgGpu *g, int dst, int src, IrDType t, const CgStep *owner,
                   const char *which)
{
	int id = dst >= 0 ? dst : cg_gpu_temp(g, g->bufs[src]->numel, t, src);
	push_step(g, cg_gpu_convert_map(g, id, src, owner, which));
	return id;
}

enum {
	WANT_LOW = 1,
	WANT_F32 = 2
};

/* The buffers step gs reads or writes, into out; returns how many. A
 * fused attention step keeps the softmax's view of the scores (its
 * prologue's leaf) but never reads it: the scores are in registers. */
static int step_bufs(const CgGpuStep *gs, int *out)
{
	const CgStep *st = gs->st;
	int n = 0;
	for (int k = 0; k < st->nview; k++)
		if (st->kind != CG_ATTENTION || k != st->expr.leaf_view[st->sleaf])
			out[n++] = st->views[k].buf;
	for (int k = 0; st->kind == CG_GEMM && k < st->ngroup; k++)
		out[n++] = st->gb[k].buf;
	for (int k = 0; gs->bias && k < (st->ngroup > 1 ? st->ngroup : 1); k++)
		out[n++] = gs->bias_view[k].buf;
	if (gs->res)
		out[n++] = gs->res_view.buf;
	out[n++] = gs->a_buf;
	out[n++] = gs->b_buf;
	return n;
}

enum {
	STEP_BUFS = CG_MAX_VIEWS + 2 * CG_MAX_GROUP + 3
};

/* The workspace slots of the GPU program: the lifetimes of its own steps
 * (a GEMM writing its GELU's output, attention's scores and probabilities
 * never in memory once fused, conversion temps) and its storage sizes;
 * temps no GPU step touches take no memory. */
static void plan_slots(CgGpu *g)
{
	Arena *a = g->prog->arena;
	int *def = ARENA_ARRAY(a, int, g->nbufs + 1), *last = ARENA_ARRAY(a, int, g->nbufs + 1);
	IrDim *bytes = ARENA_ARRAY(a, IrDim, g->nbufs + 1);
	for (int i = 0; i < g->nbufs; i++) {
		def[i] = last[i] = -1;
		bytes[i] = ir_dim_mul(g->bufs[i]->numel,
		                      ir_dim_const(cg_gpu_elem_size(g->btype[i])));
	}
	int bufs[STEP_BUFS];
	for (int s = 0; s < g->nsteps; s++)
		for (int n = step_bufs(&g->steps[s], bufs), k = 0; k < n; k++)
			if (bufs[k] >= 0) {
				if (def[bufs[k]] < 0)
					def[bufs[k]] = s;
				last[bufs[k]] = s;
			}
	cg_plan_make(a, g->bufs, bytes, g->nbufs, def, last, CG_GPU_ALIGN, &g->plan);
}

bool cg_gpu_plan(CgGpu *g, const CgProgram *p, CgPrecision prec, unsigned fuse)
{
	Arena *a = p->arena;
	int nb = p->bufs.len, ns = p->steps.len, np = p->params.len;
	IrDType low = prec == CG_PREC_BF16   ? IR_BF16
	              : prec == CG_PREC_FP16 ? IR_F16
	                                     : IR_F32;
	memset(g, 0, sizeof *g);
	g->prog = p;
	g->prec = prec;
	g->target = "sm_80";
	g->bufs = ARENA_ARRAY(a, CgBuf *, nb + 2 * ns + 1);
	g->btype = ARENA_ARRAY(a, IrDType, nb + 2 * ns + 1);
	g->steps = ARENA_ARRAY(a, CgGpuStep, 3 * ns + 1);
	g->ptype = ARENA_ARRAY(a, IrDType, np + 1);
	g->poff = ARENA_ARRAY(a, uint64_t, np + 1);
	g->objects = ARENA_ARRAY(a, const char *, ns + 1);

	/* epilogue candidates, and what each parameter is wanted as */
	const CgView **bias =
	        ARENA_ARRAY(a, const CgView *, (size_t)ns *CG_MAX_GROUP + 1);
	int *bias_steps = ARENA_ARRAY(a, int, (size_t)ns *CG_MAX_GROUP + 1);
	bool *cand = ARENA_ARRAY(a, bool, ns + 1);
	int *want = ARENA_ARRAY(a, int, np + 1);
	for (int s = 0; s < ns; s++) {
		const CgStep *st = p->steps.items[s];
		if (st->kind != CG_GEMM)
			continue;
		for (int k = 1; k <= 2; k++) { /* operands want the low type */
			const CgBuf *b = p->bufs.items[st->views[k].buf];
			if (b->kind == CG_BUF_PARAM)
				want[owner_of(p, b->index)] |= WANT_LOW;
		}
		for (int k = 0; k < st->ngroup && st->ngroup > 1; k++) {
			const CgBuf *b = p->bufs.items[st->gb[k].buf];
			if (b->kind == CG_BUF_PARAM)
				want[owner_of(p, b->index)] |= WANT_LOW;
		}
		cand[s] = cg_find_bias(p, s, &bias[s * CG_MAX_GROUP],
		                    &bias_steps[s * CG_MAX_GROUP]);
		if (!cand[s])
			continue;
		int w = stored_low(p, p->bufs.items[st->views[0].buf], low) ? WANT_LOW
		                                                            : WANT_F32;
		for (int k = 0; k < (st->ngroup > 1 ? st->ngroup : 1); k++) {
			const CgBuf *bb = p->bufs.items[bias[s * CG_MAX_GROUP + k]->buf];
			want[owner_of(p, bb->index)] |= w;
		}
	}
	/* parameter types and the device block */
	uint64_t at = 0;
	for (int i = 0; i < np; i++) {
		const CgTensor *t = p->params.items[i];
		g->ptype[i] = IR_F32;
		if (low != IR_F32 && ir_dtype_is_float(t->dtype) && want[i] != WANT_F32)
			g->ptype[i] = low;
	}
	for (int i = 0; i < np; i++) {
		const CgTensor *t = p->params.items[i];
		int o = owner_of(p, i);
		g->ptype[i] = g->ptype[o];
		if (o != i)
			continue;
		int64_t n = 1;
		for (int d = 0; d < t->shape.ndim; d++)
			n *= t->shape.d[d].coef;
		g->poff[i] = at;
		at = (at + (uint64_t)n * (uint64_t)cg_gpu_elem_size(g->ptype[i]) + 255) /
		     256 * 256;
	}
	for (int i = 0; i < np; i++)
		g->poff[i] = g->poff[owner_of(p, i)];
	g->params_size = at;
	/* buffer types */
	for (int i = 0; i < nb; i++) {
		CgBuf *b = p->bufs.items[i];
		IrDType t = b->dtype;
		if (b->kind == CG_BUF_PARAM)
			t = g->ptype[b->index];
		else if (stored_low(p, b, low))
			t = low;
		g->bufs[i] = b;
		g->btype[i] = t;
	}
	g->nbufs = nb;
	/* steps */
	bool *skip = ARENA_ARRAY(a, bool, ns + 1);
	for (int s = 0; s < ns; s++) {
		const CgStep *st = p->steps.items[s];
		if (!cand[s])
			continue;
		IrDType ct = g->btype[st->views[0].buf];
		bool ok = ct == IR_F32 || ct == low;
		for (int k = 0; ok && k < (st->ngroup > 1 ? st->ngroup : 1); k++)
			ok = g->btype[bias[s * CG_MAX_GROUP + k]->buf] == ct;
		cand[s] = ok;
		for (int k = 0; ok && k < (st->ngroup > 1 ? st->ngroup : 1); k++)
			skip[bias_steps[s * CG_MAX_GROUP + k]] = true;
	}
	for (int s = 0; s < ns; s++) {
		const CgStep *st = p->steps.items[s];
		if (skip[s])
			continue;
		CgStep *back = NULL;
		CgStep *at = !(fuse & CG_FUSE_ATTENTION) ? NULL
		             : low != IR_F32           ? cg_gpu_fuse_attention(g, p, s, low)
		             : prec == CG_PREC_TF32    ? cg_gpu_fuse_attention_f16(g, p, s, &back)
		                                       : NULL;
		if (at) {
			CgStep *small = ARENA_NEW(a, CgStep);
			*small = *at;
			small->mt = 1;
			push_step(g, at)->small = small;
			if (back)
				push_step(g, back);
			s += 2;
			continue;
		}
		if (st->kind != CG_GEMM) {
			CgGpuStep *gs = push_step(g, st);
			if (st->kind == CG_GATHER) {
				int o = -1;
				for (int k = 0; k < g->nobjects && o < 0; k++)
					if (strcmp(g->objects[k],
					           st->object ? st->object : "") == 0)
						o = k;
				if (o < 0) {
					o = g->nobjects;
					g->objects[g->nobjects++] =
					        st->object ? st->object : "";
				}
				gs->object = o;
			}
			continue;
		}
		CgView gelu_bias, res_bias, res_view;
		CgStep *res_ln = NULL;
		const CgStep *gelu = cg_gpu_fuse_gelu(g, p, s, fuse & CG_FUSE_GELU,
		                               cand[s] ? bias[s * CG_MAX_GROUP] : NULL, &gelu_bias);
		const CgStep *resg =
		        cand[s] || gelu || !(fuse & CG_FUSE_RESIDUAL)
		                ? NULL
		                : cg_gpu_fuse_residual(g, p, s, &res_bias, &res_view, &res_ln);
		if (gelu)
			st = gelu;
		else if (resg)
			st = resg;
		int abuf = -1, bbuf = -1;
		if (low != IR_F32) {
			if (g->btype[st->views[1].buf] != low)
				abuf = cg_gpu_convert(g, -1, st->views[1].buf, low, st, "a");
			if (g->btype[st->views[2].buf] != low && st->ngroup < 2)
				bbuf = cg_gpu_convert(g, -1, st->views[2].buf, low, st, "b");
			for (int k = 0; st->ngroup > 1 && k < st->ngroup; k++)
				if (g->btype[st->gb[k].buf] != low) {
					diag_plain(
					        p->diag, DIAG_ERROR,
					        "internal error: GPU: grouped GEMM %s has a weight "
					        "that is not %s",
					        st->name, cg_precision_name(prec));
					return false;
				}
		}
		CgGpuStep *gs = push_step(g, st);
		gs->a_buf = abuf;
		gs->b_buf = bbuf;
		gs->bias = cand[s];
		for (int k = 0; cand[s] && k < (st->ngroup > 1 ? st->ngroup : 1); k++)
			gs->bias_view[k] = *bias[s * CG_MAX_GROUP + k];
		if (gelu) {
			gs->bias = gs->gelu = true;
			gs->bias_view[0] = gelu_bias;
			s++; /* the MAP is the epilogue */
		}
		if (resg) {
			gs->bias = gs->res = true;
			gs->bias_view[0] = res_bias;
			gs->res_view = res_view;
			push_step(g, res_ln);
			s++; /* the layer_norm, now of the GEMM's output alone */
		}
	}
	for (int s = 0; s < g->nsteps; s++)
		if (g->steps[s].st->kind != CG_GEMM &&
		    g->steps[s].st->nview > g->max_views)
			g->max_views = g->steps[s].st->nview;
	plan_slots(g);
	return true;
}

void cg_gpu_print(StrBuf *b, const CgGpu *g)
{
	const CgProgram *p = g->prog;
	const IrCtx *c = p->ir;
	const CgStep **steps = ARENA_ARRAY(p->arena, const CgStep *, g->nsteps + 1);
	for (int s = 0; s < g->nsteps; s++)
		steps[s] = g->steps[s].st;
	const char **names = cg_step_names(p->arena, steps, g->nsteps);
	sb_printf(b, "gpu %s {\n  steps: %d\n", cg_precision_name(g->prec), g->nsteps);
	for (int s = 0; s < g->nsteps; s++) {
		const CgGpuStep *gs = &g->steps[s];
		sb_printf(b, "    s%d %s %s", s, cg_kind_name(gs->st->kind), names[s]);
		if (gs->bias)
			sb_printf(b, " (epilogue: bias%s%s)", gs->gelu ? ", gelu" : "",
			          gs->res ? ", residual" : "");
		if (gs->a_buf >= 0 || gs->b_buf >= 0)
			sb_printf(b, " (converted:%s%s)", gs->a_buf >= 0 ? " a" : "",
			          gs->b_buf >= 0 ? " b" : "");
		sb_putc(b, '\n');
	}
	cg_plan_print(b, c, &g->plan, g->btype, 's');
	sb_puts(b, "}\n");
}
