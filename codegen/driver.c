/* driver.c - the functions and constants that tie the kernels into a
 * model library (see runtime/README.md for the contract):
 *
 *   plan(sym, offs) -> bytes   slot offsets of the workspace for these
 *                              symbol values (internal)
 *   workspace_size(sym)        the total, UINT64_MAX on overflow
 *   forward(ex)                every step in order: kernels through
 *                              rt_parallel_for, GEMMs through rt_sgemm /
 *                              rt_sgemm_batched (outer batch dims as loops),
 *                              attention's GEMM, softmax and GEMM through
 *                              rt_attention (the scores in its scratch, the
 *                              softmax kernel's NAME_unit entry on them),
 *                              rt_failed checked after gathers and GEMMs;
 *                              each step marked for profiles with
 *                              rt_prof_step when ex->prof is set
 *   slapo_model_desc           the RtModelDesc constant (hidden), with the
 *                              step table and costs of steps.c
 *
 * The LLVM struct types mirror rt.h's C layouts; cg_emit_driver checks
 * every field offset against offsetof() before using them.
 */
#include <stddef.h>
#include <string.h>

#include "codegen/codegen.h"
#include "runtime/rt.h"
#include "slapo_config.h"

#define B (L->b)

/* ---- descriptor types -------------------------------------------------------------- */

typedef struct Types {
	LLVMTypeRef dl;     /* DLDataType {i8, i8, i16} */
	LLVMTypeRef sym;    /* RtSymDesc */
	LLVMTypeRef tensor; /* RtTensorDesc */
	LLVMTypeRef tie;    /* RtTie */
	LLVMTypeRef desc;   /* RtModelDesc */
	LLVMTypeRef exec;   /* RtExec */
	LLVMTypeRef att;    /* RtAttention */
} Types;

static bool make_types(CgLlvm *L, Types *T)
{
	LLVMContextRef c = L->ctx;
	LLVMTypeRef p = L->t_i8p;
	if (!(T->dl = cg_host_dl_type(L)) || !(T->exec = cg_host_exec_type(L)))
		return false;
	LLVMTypeRef sym[3] = {p, L->t_i64, L->t_i64};
	T->sym = LLVMStructTypeInContext(c, sym, 3, 0);
	LLVMTypeRef ten[8] = {p, T->dl, L->t_i32, L->t_i64p, L->t_i64, L->t_i32, L->t_i32, L->t_f32};
	T->tensor = LLVMStructTypeInContext(c, ten, 8, 0);
	LLVMTypeRef tie[2] = {p, p};
	T->tie = LLVMStructTypeInContext(c, tie, 2, 0);
	LLVMTypeRef desc[23] = {L->t_i32, L->t_i32, p, p, L->t_i32, p, L->t_i32, p,
	                        L->t_i32, p, L->t_i32, p, L->t_i32, p, L->t_i32, p,
	                        p, p, p, p, L->t_i32, p, p};
	T->desc = LLVMStructTypeInContext(c, desc, 23, 0);

	static const size_t o_sym[] = {offsetof(RtSymDesc, name), offsetof(RtSymDesc, min),
	                               offsetof(RtSymDesc, max)};
	static const size_t o_ten[] = {offsetof(RtTensorDesc, name),     offsetof(RtTensorDesc, dtype),
	                               offsetof(RtTensorDesc, ndim),     offsetof(RtTensorDesc, dims),
	                               offsetof(RtTensorDesc, value_max), offsetof(RtTensorDesc, fill),
	                               offsetof(RtTensorDesc, init),     offsetof(RtTensorDesc, init_std)};
	static const size_t o_tie[] = {offsetof(RtTie, param), offsetof(RtTie, tied_to)};
	static const size_t o_desc[] = {
	        offsetof(RtModelDesc, version),        offsetof(RtModelDesc, devices),
	        offsetof(RtModelDesc, name),           offsetof(RtModelDesc, slapoc_version),
	        offsetof(RtModelDesc, n_syms),         offsetof(RtModelDesc, syms),
	        offsetof(RtModelDesc, n_inputs),       offsetof(RtModelDesc, inputs),
	        offsetof(RtModelDesc, n_outputs),      offsetof(RtModelDesc, outputs),
	        offsetof(RtModelDesc, n_params),       offsetof(RtModelDesc, params),
	        offsetof(RtModelDesc, n_ties),         offsetof(RtModelDesc, ties),
	        offsetof(RtModelDesc, n_ignore),       offsetof(RtModelDesc, ignore_prefixes),
	        offsetof(RtModelDesc, base_prefix),    offsetof(RtModelDesc, workspace_size),
	        offsetof(RtModelDesc, forward),        offsetof(RtModelDesc, gpu),
	        offsetof(RtModelDesc, n_steps),        offsetof(RtModelDesc, steps),
	        offsetof(RtModelDesc, step_costs)};
	LLVMTypeRef dims = LLVMArrayType(L->t_i64, RT_ATT_DIMS);
	LLVMTypeRef rows[4] = {p, L->t_i64, L->t_i64, L->t_f32p};
	LLVMTypeRef att[19] = {L->t_i64, dims, L->t_i64, L->t_i64, L->t_i64, L->t_i64, L->t_i64,
	                       L->t_i64, L->t_i64, dims, dims, dims, dims, p, p, p, p,
	                       LLVMPointerType(LLVMFunctionType(L->t_void, rows, 4, 0), 0), p};
	T->att = LLVMStructTypeInContext(c, att, 19, 0);
	static const size_t o_att[] = {
	        offsetof(RtAttention, nbatch), offsetof(RtAttention, bdim),
	        offsetof(RtAttention, m),      offsetof(RtAttention, n),
	        offsetof(RtAttention, d),      offsetof(RtAttention, ldq),
	        offsetof(RtAttention, ldk),    offsetof(RtAttention, ldv),
	        offsetof(RtAttention, ldo),    offsetof(RtAttention, sq),
	        offsetof(RtAttention, sk),     offsetof(RtAttention, sv),
	        offsetof(RtAttention, so),     offsetof(RtAttention, q),
	        offsetof(RtAttention, k),      offsetof(RtAttention, v),
	        offsetof(RtAttention, o),      offsetof(RtAttention, softmax),
	        offsetof(RtAttention, ctx)};
	return cg_llvm_check_layout(L, T->att, o_att, 19, sizeof(RtAttention), "RtAttention") &&
	       cg_llvm_check_layout(L, T->sym, o_sym, 3, sizeof(RtSymDesc), "RtSymDesc") &&
	       cg_llvm_check_layout(L, T->tensor, o_ten, 8, sizeof(RtTensorDesc), "RtTensorDesc") &&
	       cg_llvm_check_layout(L, T->tie, o_tie, 2, sizeof(RtTie), "RtTie") &&
	       cg_llvm_check_layout(L, T->desc, o_desc, 23, sizeof(RtModelDesc), "RtModelDesc");
}

/* ---- constants ------------------------------------------------------------------------- */

static LLVMValueRef str_or_null(CgLlvm *L, const char *s)
{
	return s ? cg_llvm_cstr(L, s) : LLVMConstNull(L->t_i8p);
}

static LLVMValueRef tensor_desc(CgLlvm *L, const Types *T, const CgProgram *p,
                                const CgTensor *t, bool param, IrDType dtype)
{
	LLVMValueRef dims[IR_MAX_DIMS];
	for (int i = 0; i < t->shape.ndim; i++) {
		IrDim d = t->shape.d[i];
		int64_t v = d.coef;
		if (!ir_dim_is_const(d)) {
			int s = 0;
			for (int q = 0; q < IR_MAX_SYMS; q++)
				if (d.pow[q])
					s = q;
			v = RT_SYM(p->sym_index[s]);
		}
		dims[i] = cg_i64c(L, v);
	}
	LLVMValueRef f[8] = {cg_llvm_cstr(L, t->name),
	                     cg_host_dl(L, T->dl, dtype),
	                     cg_i32c(L, t->shape.ndim),
	                     cg_llvm_const_array(L, L->t_i64, dims, t->shape.ndim, ".dims"),
	                     cg_i64c(L, t->value_max),
	                     cg_i32c(L, param ? 0 : t->fill),
	                     cg_i32c(L, param ? t->init : 0),
	                     LLVMConstReal(L->t_f32, param && t->init == RT_INIT_NORMAL ? 0.02 : 0)};
	return LLVMConstNamedStruct(T->tensor, f, 8);
}

/* out: the list of outputs (float ones declared as p->out_dtype) */
static LLVMValueRef tensor_list(CgLlvm *L, const Types *T, const CgProgram *p,
                                const PtrVec *v, bool param, bool out, const char *name)
{
	LLVMValueRef *e = ARENA_ARRAY(p->arena, LLVMValueRef, v->len + 1);
	for (int i = 0; i < v->len; i++) {
		const CgTensor *t = v->items[i];
		IrDType dt = out && ir_dtype_is_float(t->dtype) ? p->out_dtype : t->dtype;
		e[i] = tensor_desc(L, T, p, t, param, dt);
	}
	return cg_llvm_const_array(L, T->tensor, e, v->len, name);
}

/* ---- forward ---------------------------------------------------------------------------- */

typedef struct Fwd {
	CgHost h;
	const Types *T;
	LLVMValueRef ctx; /* the kernels' context: ex, sym, the views' addresses */
	LLVMValueRef att; /* an RtAttention (entry block) */
	LLVMValueRef rt_parallel_for, rt_sgemm, rt_sgemm_batched, rt_sgemm_bias, rt_failed,
	        rt_attention;
} Fwd;

/* The steps forward() runs: the program's, less the bias passes folded
 * into their GEMMs, with attention's three steps as one. st[i] is the
 * step of entry i (for attention, the CG_ATTENTION step of the table),
 * first[i] the program's step it begins at; bias[i * CG_MAX_GROUP + k]:
 * the bias view of member k of GEMM step i (NULL when its GEMM keeps
 * beta = 1). */
typedef struct CpuSteps {
	int n;
	const CgStep **st;
	int *first;
	const CgView **bias;
} CpuSteps;

/* The buffers step st reads: a GEMM's A and B (its group's weights),
 * another step's views past the result. */
static int read_bufs(const CgStep *st, int *out)
{
	int n = 0;
	if (st->kind == CG_GEMM) {
		out[n++] = st->views[1].buf;
		out[n++] = st->views[2].buf;
		for (int k = 0; k < st->ngroup; k++)
			out[n++] = st->gb[k].buf;
		return n;
	}
	for (int k = 1; k < st->nview; k++)
		out[n++] = st->views[k].buf;
	return n;
}

/* Whether attention's steps s..s+2 may run unit by unit (rt_attention):
 * at most RT_ATT_DIMS batch dims, and nothing they read (but the scores
 * and probs each passes on) is a buffer one of them writes, since one
 * unit's writes come before another unit's reads. (Distinct buffers get
 * distinct memory: cpu_plan keeps all of the three steps' alive through
 * them.) */
static bool cpu_attention(const CgProgram *p, int s)
{
	const CgStep *g1 = p->steps.items[s];
	if (g1->nbatch > RT_ATT_DIMS)
		return false;
	int wr[3], rd[CG_MAX_VIEWS + CG_MAX_GROUP + 2];
	for (int i = 0; i < 3; i++)
		wr[i] = ((const CgStep *)p->steps.items[s + i])->views[0].buf;
	if (wr[0] == wr[1] || wr[0] == wr[2] || wr[1] == wr[2])
		return false;
	for (int i = 0; i < 3; i++) {
		const CgStep *st = p->steps.items[s + i];
		for (int n = read_bufs(st, rd), k = 0; k < n; k++)
			for (int j = 0; j < 3; j++)
				if (rd[k] == wr[j] && !(j == i - 1))
					return false;
	}
	return true;
}

/* A linear's bias pass goes into its GEMM: rt_sgemm_bias adds the bias
 * as it stores C (the packed GEMM's epilogue, runtime/gemm.c); for Q, K
 * and V as one GEMM, each member's. */
static CpuSteps cpu_steps(const CgProgram *p, bool fuse_attention)
{
	CpuSteps c = {0};
	int n = p->steps.len;
	bool *folded = ARENA_ARRAY(p->arena, bool, n + 1);
	const CgView **bias = ARENA_ARRAY(p->arena, const CgView *, (size_t)n * CG_MAX_GROUP + 1);
	c.st = ARENA_ARRAY(p->arena, const CgStep *, n + 1);
	c.bias = ARENA_ARRAY(p->arena, const CgView *, (size_t)n * CG_MAX_GROUP + 1);
	memset(folded, 0, (size_t)(n + 1) * sizeof *folded);
	memset(bias, 0, ((size_t)n * CG_MAX_GROUP + 1) * sizeof *bias);
	for (int s = 0; s < n; s++) {
		const CgStep *st = p->steps.items[s];
		int at[CG_MAX_GROUP];
		if (st->kind != CG_GEMM || !cg_find_bias(p, s, &bias[s * CG_MAX_GROUP], at)) {
			bias[s * CG_MAX_GROUP] = NULL;
			continue;
		}
		for (int k = 0; k < (st->ngroup > 1 ? st->ngroup : 1); k++)
			folded[at[k]] = true;
	}
	c.first = ARENA_ARRAY(p->arena, int, n + 1);
	for (int s = 0; s < n; s++) {
		if (folded[s])
			continue;
		const CgStep *at = fuse_attention ? cg_find_attention(p, s) : NULL;
		c.first[c.n] = s;
		c.st[c.n] = at && cpu_attention(p, s) ? at : p->steps.items[s];
		memcpy(&c.bias[c.n++ * CG_MAX_GROUP], &bias[s * CG_MAX_GROUP],
		       CG_MAX_GROUP * sizeof *bias);
		if (c.st[c.n - 1] == at)
			s += 2;
	}
	return c;
}

/* The CPU's workspace: the program's plan (cg_plan), except that
 * buffers of steps run as one (attention) live through all of them. */
static CgPlan cpu_plan(const CgProgram *p, const CpuSteps *cs)
{
	int nb = p->bufs.len;
	int *def = ARENA_ARRAY(p->arena, int, nb + 1), *last = ARENA_ARRAY(p->arena, int, nb + 1);
	int bufs[CG_MAX_VIEWS + CG_MAX_GROUP + 2];
	for (int i = 0; i < nb; i++) {
		const CgBuf *b = p->bufs.items[i];
		def[i] = b->def;
		last[i] = b->last;
	}
	for (int e = 0; e < cs->n; e++) {
		if (cs->st[e]->kind != CG_ATTENTION)
			continue;
		int s = cs->first[e];
		for (int i = s; i < s + 3; i++) {
			const CgStep *st = p->steps.items[i];
			int n = read_bufs(st, bufs);
			bufs[n++] = st->views[0].buf;
			for (int k = 0; k < n; k++) {
				if (bufs[k] < 0)
					continue;
				if (def[bufs[k]] > s)
					def[bufs[k]] = s;
				if (last[bufs[k]] < s + 2)
					last[bufs[k]] = s + 2;
			}
		}
		for (int i = s; i < s + 2; i++) /* scores and probs: rt_attention's scratch */
			def[((const CgStep *)p->steps.items[i])->views[0].buf] = -1;
	}
	CgPlan pl;
	cg_plan_make(p->arena, (CgBuf *const *)p->bufs.items, cg_plan_bytes(p), nb, def, last,
	             RT_ALIGN, &pl);
	return pl;
}

/* if (rt_failed(ex)) return code; */
static void check_failed(Fwd *w, int code)
{
	CgLlvm *L = w->h.L;
	LLVMValueRef r = cg_llvm_call(L, w->rt_failed, &w->h.ex, 1);
	LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(L->ctx, w->h.f.fn, "failed");
	LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(L->ctx, w->h.f.fn, "ok");
	LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntNE, r, cg_i32c(L, 0), ""), bad, ok);
	LLVMPositionBuilderAtEnd(B, bad);
	LLVMBuildRet(B, cg_i32c(L, code));
	LLVMPositionBuilderAtEnd(B, ok);
}

/* ctx[2 + k] = the address of step st's view k (kernels.c) */
static void fill_ctx(Fwd *w, const CgStep *st)
{
	CgLlvm *L = w->h.L;
	for (int k = 0; k < st->nview; k++) {
		LLVMValueRef idx = cg_i64c(L, k + 2);
		LLVMBuildStore(B, cg_host_view_addr(&w->h, &st->views[k]),
		               LLVMBuildInBoundsGEP2(B, L->t_i8p, w->ctx, &idx, 1, ""));
	}
}

static void emit_kernel_call(Fwd *w, const CgStep *st)
{
	CgLlvm *L = w->h.L;
	CgFn *f = &w->h.f;
	fill_ctx(w, st);
	/* iterations: elements (MAP), rows (row kernels), indices (GATHER) */
	int nd = st->ndim, upto = st->kind == CG_MAP || st->kind == CG_GATHER ? nd : nd - 1;
	LLVMValueRef n = cg_i64c(L, 1);
	for (int i = 0; i < upto; i++)
		n = LLVMBuildMul(B, n, cg_dim(f, st->dim[i]), "");
	LLVMValueRef per; /* elements of work per iteration */
	if (st->kind == CG_MAP)
		per = cg_i64c(L, 1);
	else if (st->kind == CG_GATHER)
		per = cg_dim(f, st->views[2].dim[1]);
	else
		per = cg_dim(f, st->dim[nd - 1]);
	LLVMValueRef grain = LLVMBuildAdd(
	        B, LLVMBuildSDiv(B, cg_i64c(L, 16384), LLVMBuildAdd(B, per, cg_i64c(L, 1), ""), ""),
	        cg_i64c(L, 1), "");
	LLVMValueRef fn = LLVMGetNamedFunction(L->mod, st->fn);
	LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "run");
	LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "next");
	LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSGT, n, cg_i64c(L, 0), ""), run, next);
	LLVMPositionBuilderAtEnd(B, run);
	LLVMValueRef args[5] = {w->h.ex, n, grain, fn, LLVMBuildBitCast(B, w->ctx, L->t_i8p, "")};
	cg_llvm_call(L, w->rt_parallel_for, args, 5);
	LLVMBuildBr(B, next);
	LLVMPositionBuilderAtEnd(B, next);
	if (st->kind == CG_GATHER)
		check_failed(w, SLAPO_INVALID_ARGUMENT);
}

/* One GEMM (with its outer batch loops) of n columns, B at b, C at c;
 * with bias (no batch loops then), C = A op(B) + bias. */
static void gemm_call(Fwd *w, const CgStep *st, LLVMValueRef n, LLVMValueRef b,
                      LLVMValueRef bias, LLVMValueRef c)
{
	CgLlvm *L = w->h.L;
	CgFn *f = &w->h.f;
	LLVMValueRef a = cg_host_view_addr(&w->h, &st->views[1]);
	LLVMValueRef m = cg_dim(f, st->m), k = cg_dim(f, st->k);
	LLVMValueRef one = cg_i64c(L, 1);
	CgHost *h = &w->h;
	LLVMValueRef lda = cg_host_imax(h, cg_host_imax(h, cg_dim(f, st->lda), st->ta ? m : k), one);
	LLVMValueRef ldb = cg_host_imax(h, cg_host_imax(h, cg_dim(f, st->ldb), st->tb ? k : n), one);
	LLVMValueRef ldc = cg_host_imax(h, cg_host_imax(h, cg_dim(f, st->ldc), n), one);
	/* outer batch dims: loops that move the three base pointers */
	CgBatchLoops bl;
	cg_host_batch_open(&w->h, st, st->nbatch > 0 ? st->nbatch - 1 : 0, &bl);
	LLVMValueRef four = cg_i64c(L, 4);
	LLVMValueRef ba = LLVMBuildMul(B, bl.offa, four, ""), bb = LLVMBuildMul(B, bl.offb, four, "");
	LLVMValueRef bc = LLVMBuildMul(B, bl.offc, four, "");
	LLVMValueRef pa = LLVMBuildInBoundsGEP2(B, L->t_i8, a, &ba, 1, "");
	LLVMValueRef pb = LLVMBuildInBoundsGEP2(B, L->t_i8, b, &bb, 1, "");
	LLVMValueRef pc = LLVMBuildInBoundsGEP2(B, L->t_i8, c, &bc, 1, "");
	LLVMValueRef alpha = LLVMConstReal(L->t_f32, st->alpha);
	LLVMValueRef beta = LLVMConstReal(L->t_f32, st->beta);
	LLVMValueRef ta = cg_i32c(L, st->ta), tb = cg_i32c(L, st->tb);
	if (st->nbatch > 0) {
		int q = st->nbatch - 1;
		LLVMValueRef args[18] = {w->h.ex, ta, tb, m, n, k, alpha,
		                         pa, lda, cg_dim(f, st->bsa[q]),
		                         pb, ldb, cg_dim(f, st->bsb[q]), beta,
		                         pc, ldc, cg_dim(f, st->bsc[q]), cg_dim(f, st->bdim[q])};
		cg_llvm_call(L, w->rt_sgemm_batched, args, 18);
	} else if (bias) {
		LLVMValueRef args[14] = {w->h.ex, ta, tb, m, n, k, alpha, pa, lda, pb, ldb, bias, pc, ldc};
		cg_llvm_call(L, w->rt_sgemm_bias, args, 14);
	} else {
		LLVMValueRef args[14] = {w->h.ex, ta, tb, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc};
		cg_llvm_call(L, w->rt_sgemm, args, 14);
	}
	cg_host_batch_close(&w->h, &bl);
}

/* bias: NULL, or each member's bias view (cg_find_bias). */
static void emit_gemm_call(Fwd *w, const CgStep *st, const CgView *const *bias)
{
	CgLlvm *L = w->h.L;
	CgFn *f = &w->h.f;
	LLVMValueRef c = cg_host_view_addr(&w->h, &st->views[0]);
	if (st->ngroup < 2) {
		gemm_call(w, st, cg_dim(f, st->n), cg_host_view_addr(&w->h, &st->views[2]),
		          bias ? cg_host_view_addr(&w->h, bias[0]) : NULL, c);
		check_failed(w, SLAPO_UNSUPPORTED);
		return;
	}
	/* grouped linears: one call when the weights (and biases) lie side by side */
	LLVMValueRef b0 = cg_host_view_addr(&w->h, &st->gb[0]);
	LLVMValueRef bias0 = bias ? cg_host_view_addr(&w->h, bias[0]) : NULL;
	LLVMValueRef adj = cg_host_group_adjacent(&w->h, st, b0, bias, bias0);
	LLVMBasicBlockRef one = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "gemm_one");
	LLVMBasicBlockRef each = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "gemm_each");
	LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "gemm_done");
	LLVMBuildCondBr(B, adj, one, each);
	LLVMPositionBuilderAtEnd(B, one);
	gemm_call(w, st, cg_dim(f, st->n), b0, bias0, c);
	LLVMBuildBr(B, done);
	LLVMPositionBuilderAtEnd(B, each);
	for (int i = 0; i < st->ngroup; i++) {
		LLVMValueRef off = LLVMBuildMul(B, cg_dim(f, st->gc[i]), cg_i64c(L, 4), "");
		gemm_call(w, st, cg_dim(f, st->gn[i]), cg_host_view_addr(&w->h, &st->gb[i]),
		          bias ? cg_host_view_addr(&w->h, bias[i]) : NULL,
		          LLVMBuildInBoundsGEP2(B, L->t_i8, c, &off, 1, ""));
	}
	LLVMBuildBr(B, done);
	LLVMPositionBuilderAtEnd(B, done);
	check_failed(w, SLAPO_UNSUPPORTED);
}

static void att_set(Fwd *w, int i, int j, LLVMValueRef v)
{
	CgLlvm *L = w->h.L;
	LLVMValueRef p = LLVMBuildStructGEP2(B, w->T->att, w->att, (unsigned)i, "");
	if (j >= 0) {
		LLVMValueRef idx[2] = {cg_i64c(L, 0), cg_i64c(L, j)};
		p = LLVMBuildInBoundsGEP2(B, LLVMArrayType(L->t_i64, RT_ATT_DIMS), p, idx, 2, "");
	}
	LLVMBuildStore(B, v, p);
}

/* The softmax kernel of an attention step on a unit's rows in a scratch
 * (cg_emit_softmax_rows), emitted by cg_emit_driver. */
static const char *unit_fn(const CgProgram *p, const CgStep *sm)
{
	return arena_printf(p->arena, "%s_unit", sm->fn);
}

/* Attention's product, softmax and product (program steps s..s+2) as
 * rt_attention: the softmax kernel's context as for its own call (its
 * scores and result are the thread's scratch instead), the products'
 * operands as the GEMM calls would have them. */
static void emit_attention(Fwd *w, int s)
{
	CgLlvm *L = w->h.L;
	CgFn *f = &w->h.f;
	const CgProgram *p = f->prog;
	const CgStep *g1 = p->steps.items[s], *sm = p->steps.items[s + 1],
	             *g2 = p->steps.items[s + 2];
	LLVMValueRef one = cg_i64c(L, 1), d = cg_dim(f, g1->k);
	fill_ctx(w, sm);
	att_set(w, 0, -1, cg_i64c(L, g1->nbatch));
	for (int i = 0; i < RT_ATT_DIMS; i++) {
		bool in = i < g1->nbatch;
		att_set(w, 1, i, in ? cg_dim(f, g1->bdim[i]) : one);
		att_set(w, 9, i, in ? cg_dim(f, g1->bsa[i]) : cg_i64c(L, 0));
		att_set(w, 10, i, in ? cg_dim(f, g1->bsb[i]) : cg_i64c(L, 0));
		att_set(w, 11, i, in ? cg_dim(f, g2->bsb[i]) : cg_i64c(L, 0));
		att_set(w, 12, i, in ? cg_dim(f, g2->bsc[i]) : cg_i64c(L, 0));
	}
	att_set(w, 2, -1, cg_dim(f, g1->m));
	att_set(w, 3, -1, cg_dim(f, g1->n));
	att_set(w, 4, -1, d);
	/* row strides as the BLAS wants them: at least the row (a stride
	 * shorter than its row only occurs where there is one row) */
	LLVMValueRef ld[4] = {cg_dim(f, g1->lda), cg_dim(f, g1->ldb), cg_dim(f, g2->ldb),
	                      cg_dim(f, g2->ldc)};
	for (int i = 0; i < 4; i++)
		att_set(w, 5 + i, -1, cg_host_imax(&w->h, cg_host_imax(&w->h, ld[i], d), one));
	const CgView *ptr[4] = {&g1->views[1], &g1->views[2], &g2->views[2], &g2->views[0]};
	for (int i = 0; i < 4; i++)
		att_set(w, 13 + i, -1, cg_host_view_addr(&w->h, ptr[i]));
	att_set(w, 17, -1, LLVMGetNamedFunction(L->mod, unit_fn(p, sm)));
	att_set(w, 18, -1, LLVMBuildBitCast(B, w->ctx, L->t_i8p, ""));
	LLVMValueRef args[2] = {w->h.ex, LLVMBuildBitCast(B, w->att, L->t_i8p, "")};
	cg_llvm_call(L, w->rt_attention, args, 2);
	check_failed(w, SLAPO_UNSUPPORTED);
}

static int cpu_elem_size(const void *ctx, int buf)
{
	const CgProgram *p = ctx;
	return cg_elem_size(((const CgBuf *)p->bufs.items[buf])->dtype);
}

static LLVMValueRef emit_forward(CgLlvm *L, const CgProgram *p, const CpuSteps *cs,
                                 const CgPlan *pl, const Types *T, LLVMValueRef plan)
{
	Fwd w = {.T = T};
	CgHostBufs bufs = {(CgBuf *const *)p->bufs.items, p->bufs.len, pl, plan, RT_ALIGN,
	                   cpu_elem_size, p};
	cg_host_begin(&w.h, L, p, "slapo_forward", T->exec, &bufs);
	/* runtime services */
	LLVMTypeRef kp = LLVMPointerType(L->t_kernel, 0);
	LLVMTypeRef pf[5] = {L->t_i8p, L->t_i64, L->t_i64, kp, L->t_i8p};
	w.rt_parallel_for = cg_llvm_decl(L, "rt_parallel_for", LLVMFunctionType(L->t_void, pf, 5, 0));
	LLVMTypeRef sg[14] = {L->t_i8p, L->t_i32, L->t_i32, L->t_i64, L->t_i64, L->t_i64, L->t_f32,
	                      L->t_i8p, L->t_i64, L->t_i8p, L->t_i64, L->t_f32, L->t_i8p, L->t_i64};
	w.rt_sgemm = cg_llvm_decl(L, "rt_sgemm", LLVMFunctionType(L->t_void, sg, 14, 0));
	LLVMTypeRef sb[18] = {L->t_i8p, L->t_i32, L->t_i32, L->t_i64, L->t_i64, L->t_i64,
	                      L->t_f32, L->t_i8p, L->t_i64, L->t_i64, L->t_i8p, L->t_i64,
	                      L->t_i64, L->t_f32, L->t_i8p, L->t_i64, L->t_i64, L->t_i64};
	w.rt_sgemm_batched = cg_llvm_decl(L, "rt_sgemm_batched", LLVMFunctionType(L->t_void, sb, 18, 0));
	LLVMTypeRef sbias[14] = {L->t_i8p, L->t_i32, L->t_i32, L->t_i64, L->t_i64, L->t_i64, L->t_f32,
	                         L->t_i8p, L->t_i64, L->t_i8p, L->t_i64, L->t_i8p, L->t_i8p, L->t_i64};
	w.rt_sgemm_bias = cg_llvm_decl(L, "rt_sgemm_bias", LLVMFunctionType(L->t_void, sbias, 14, 0));
	w.rt_failed = cg_llvm_decl(L, "rt_failed", LLVMFunctionType(L->t_i32, &L->t_i8p, 1, 0));
	LLVMTypeRef pa[2] = {L->t_i8p, L->t_i8p};
	w.rt_attention = cg_llvm_decl(L, "rt_attention", LLVMFunctionType(L->t_void, pa, 2, 0));

	/* the kernels' context (ex, sym, then each step's views) and rt_attention's block */
	LLVMBasicBlockRef body = LLVMGetInsertBlock(B);
	LLVMPositionBuilderAtEnd(B, w.h.f.entry);
	w.ctx = LLVMBuildArrayAlloca(B, L->t_i8p, cg_i64c(L, p->max_views + 2), "ctx");
	w.att = LLVMBuildAlloca(B, T->att, "att");
	LLVMPositionBuilderAtEnd(B, body);
	LLVMValueRef z = cg_i64c(L, 0), o1 = cg_i64c(L, 1);
	LLVMBuildStore(B, w.h.ex, LLVMBuildInBoundsGEP2(B, L->t_i8p, w.ctx, &z, 1, ""));
	LLVMBuildStore(B, LLVMBuildBitCast(B, w.h.f.sym, L->t_i8p, ""),
	               LLVMBuildInBoundsGEP2(B, L->t_i8p, w.ctx, &o1, 1, ""));
	for (int s = 0; s < cs->n; s++) {
		cg_host_prof_mark(&w.h, s);
		if (cs->st[s]->kind == CG_ATTENTION)
			emit_attention(&w, cs->first[s]);
		else if (cs->st[s]->kind == CG_GEMM)
			emit_gemm_call(&w, cs->st[s],
			               cs->bias[s * CG_MAX_GROUP] ? &cs->bias[s * CG_MAX_GROUP] : NULL);
		else
			emit_kernel_call(&w, cs->st[s]);
	}
	return cg_host_end(&w.h, cs->n);
}

/* ---- the descriptor ---------------------------------------------------------------------- */

bool cg_emit_driver(CgLlvm *L, const CgProgram *p, bool fuse_attention)
{
	Types T;
	if (!make_types(L, &T))
		return false;
	CpuSteps cs = cpu_steps(p, fuse_attention);
	CgPlan pl = cpu_plan(p, &cs);
	for (int e = 0; e < cs.n; e++) {
		const CgStep *at = cs.st[e], *sm = p->steps.items[cs.first[e] + 1];
		if (at->kind == CG_ATTENTION &&
		    !cg_emit_softmax_rows(L, p, sm, sm->expr.leaf_view[at->sleaf], unit_fn(p, sm))) {
			diag_plain(L->diag, DIAG_ERROR,
			           "internal error: kernel %s computes an op it cannot emit", sm->fn);
			return false;
		}
	}
	LLVMValueRef plan = cg_emit_plan(L, p, &pl, RT_ALIGN, "slapo_plan");
	LLVMValueRef wsz = cg_host_workspace_size(L, "slapo_workspace_size", &pl, plan);
	LLVMValueRef fwd = emit_forward(L, p, &cs, &pl, &T, plan);
	const CgModel *m = p->model;

	LLVMValueRef syms[IR_MAX_SYMS];
	for (int i = 0; i < p->nsyms; i++) {
		int s = p->sym_ir[i];
		LLVMValueRef f[3] = {cg_llvm_cstr(L, p->ir->sym_names[s] ? p->ir->sym_names[s] : "?"),
		                     cg_i64c(L, 1), cg_i64c(L, p->sym_max[i])};
		syms[i] = LLVMConstNamedStruct(T.sym, f, 3);
	}
	int nties = 0;
	LLVMValueRef *ties = ARENA_ARRAY(p->arena, LLVMValueRef, p->params.len + 1);
	for (int i = 0; i < p->params.len; i++) {
		const CgTensor *t = p->params.items[i];
		if (t->tied_to < 0)
			continue;
		const CgTensor *to = p->params.items[t->tied_to];
		LLVMValueRef f[2] = {cg_llvm_cstr(L, t->name), cg_llvm_cstr(L, to->name)};
		ties[nties++] = LLVMConstNamedStruct(T.tie, f, 2);
	}
	LLVMValueRef *ign = ARENA_ARRAY(p->arena, LLVMValueRef, m->nignore + 1);
	for (int i = 0; i < m->nignore; i++)
		ign[i] = cg_llvm_cstr(L, m->ignore[i]);

	LLVMValueRef step_table = cg_emit_step_table(L, p->arena, cs.st, cs.n, ".steps");
	if (!step_table)
		return false;
	/* the GPU part, if codegen/gpu_*.c emitted one (cg_gpu_emit_host) */
	LLVMValueRef gpu = LLVMGetNamedGlobal(L->mod, "slapo_gpu_desc");
	LLVMValueRef f[23] = {
	        cg_i32c(L, RT_DESC_VERSION),
	        cg_i32c(L, SLAPO_DEVICE_BIT_CPU | (gpu ? SLAPO_DEVICE_BIT_CUDA : 0)),
	        cg_llvm_cstr(L, m->name ? m->name : "model"),
	        cg_llvm_cstr(L, SLAPO_VERSION),
	        cg_i32c(L, p->nsyms),
	        cg_llvm_const_array(L, T.sym, syms, p->nsyms, ".syms"),
	        cg_i32c(L, p->inputs.len),
	        tensor_list(L, &T, p, &p->inputs, false, false, ".inputs"),
	        cg_i32c(L, p->outputs.len),
	        tensor_list(L, &T, p, &p->outputs, false, true, ".outputs"),
	        cg_i32c(L, p->params.len),
	        tensor_list(L, &T, p, &p->params, true, false, ".params"),
	        cg_i32c(L, nties),
	        cg_llvm_const_array(L, T.tie, ties, nties, ".ties"),
	        cg_i32c(L, m->nignore),
	        cg_llvm_const_array(L, L->t_i8p, ign, m->nignore, ".ignore"),
	        str_or_null(L, m->base_prefix),
	        LLVMConstBitCast(wsz, L->t_i8p),
	        LLVMConstBitCast(fwd, L->t_i8p),
	        gpu ? LLVMConstBitCast(gpu, L->t_i8p) : LLVMConstNull(L->t_i8p),
	        cg_i32c(L, cs.n),
	        step_table,
	        cg_emit_step_costs(L, p, cs.st, cs.n, cpu_elem_size, p,
	                           "slapo_step_costs"),
	};
	LLVMValueRef init = LLVMConstNamedStruct(T.desc, f, 23);
	LLVMValueRef g = LLVMAddGlobal(L->mod, T.desc, "slapo_model_desc");
	LLVMSetInitializer(g, init);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetVisibility(g, LLVMHiddenVisibility);
	return true;
}
