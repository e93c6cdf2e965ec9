/* attention_gpu.c - the fused attention kernel of the GPU program: a
 * CG_ATTENTION step (attention's GEMM, softmax and GEMM, joined by
 * gpu_fuse.c at bf16/fp16, and at tf32 on f16 copies) as one NVPTX kernel
 * on the tensor cores, through inline PTX (mma.sync, ldmatrix, cp.async;
 * on Hopper wgmma; so not for gpu_emu.c).
 *
 * cg_gpu_emit_kernel (kernels_gpu.c) sets the kernel up (parameters, the
 * operands of its views) and calls cg_gk_emit_attention; the kernel builder
 * both files use (CgGkOps, loops, the prologue's expression evaluator) is
 * gpu.h's cg_gk_ section. nvptx.c caps its registers (ATT_MAX_REGS,
 * ATT_H_MAX_REGS) and puts Hopper's form in the sm_90a module;
 * driver_gpu.c launches it (blocks of 128 threads over ATT_QUERIES or 64
 * queries, one row of blocks per batch).
 */
#include <math.h>
#include <string.h>

#include "codegen/gpu.h"

#define B (f->L->b)

/* ---- ATTENTION: softmax(expr(Q K^T)) V on the tensor cores ------------------------
 *
 * Flash attention: a block of 4 warps takes ATT_QUERIES (128) queries of
 * one batch (32 per warp: ATT_MT = 2 m16n8k16 row tiles, so that each K
 * and V fragment read from shared memory feeds two matrix products) and
 * walks the keys 64 at a time. K and V tiles come into shared memory by
 * cp.async, double-buffered (the next tile loads while this one is used).
 * Per key tile: scores by mma.sync from Q fragments (kept in registers)
 * and K fragments (ldmatrix); the softmax's prologue expression (scale,
 * mask, ...) evaluated on each score as the SOFTMAX kernel would, but
 * for a product then an add as one FMA (CgEval.contract; operands that
 * do not move with the query loaded once for a thread's two rows; columns
 * clamped only in the tile that reaches past S); the online softmax
 * (running max and sum per row, its 16 values a row reduced as trees, the
 * accumulator rescaled when the max grows); P rounded to 16 bits and
 * multiplied with V (ldmatrix.trans fragments) by mma.sync. Scores and
 * probabilities never touch memory. Keys past S score -inf (their V rows
 * clamped to S - 1, weight 0); queries past S compute on clamped rows and
 * store nothing. f32 statistics and accumulators; Q, K, V, O bf16 or f16
 * (gpu_fuse.c checks).
 *
 * Hopper's form (CgLlvm.sm90a; head size 64, 64 queries a block): Q too
 * comes into shared memory, the tiles swizzled for wgmma, and each tile's
 * two products are one warpgroup's wgmma (wgmma.c); the rest is shared. */

enum {
	ATT_KEYS = 64,
	ATT_NT = ATT_KEYS / 8,
	ATT_MAXD8 = 16,
	ATT_MT = ATT_QUERIES / 64 /* most m16 tiles of queries per warp (st->mt) */
};

typedef struct Att {
	CgFn *f;
	bool f16;
	bool wg; /* Hopper's form: wgmma from swizzled shared tiles (wgmma.c) */
	int mt;  /* m16 tiles of queries per warp */
	LLVMValueRef q, k, v, out;       /* i16*: this batch's element 0 */
	LLVMValueRef ldq, ldk, ldv, ldo; /* row strides (elements) */
} Att;

static LLVMTypeRef t_i16(CgFn *f)
{
	return LLVMInt16TypeInContext(f->L->ctx);
}

static LLVMValueRef imin64(CgFn *f, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMValueRef at_elem(CgFn *f, LLVMValueRef base, LLVMValueRef row, LLVMValueRef ld,
                            LLVMValueRef col)
{
	LLVMValueRef e = LLVMBuildAdd(B, LLVMBuildMul(B, row, ld, ""), col, "");
	return LLVMBuildInBoundsGEP2(B, t_i16(f), base, &e, 1, "");
}

/* elements (row, col) and (row, col + 1) as one i32 (col even) */
static LLVMValueRef att_ld32(CgFn *f, LLVMValueRef base, LLVMValueRef row,
                             LLVMValueRef ld, LLVMValueRef col)
{
	LLVMValueRef p = LLVMBuildBitCast(B, at_elem(f, base, row, ld, col),
	                                  LLVMPointerType(f->L->t_i32, 0), "");
	LLVMValueRef x = LLVMBuildLoad2(B, f->L->t_i32, p, "");
	LLVMSetAlignment(x, 4);
	return x;
}

/* lo and hi rounded to 16 bits, lo in the low half */
static LLVMValueRef att_pack(Att *a, LLVMValueRef lo, LLVMValueRef hi)
{
	LLVMValueRef args[2] = {hi, lo};
	return cg_ptx(a->f,
	              a->f16 ? "cvt.rn.f16x2.f32 $0, $1, $2;"
	                     : "cvt.rn.bf16x2.f32 $0, $1, $2;",
	              "=r,f,f", a->f->L->t_i32, args, 2, 1);
}

/* c += A B, one m16n8k16 tile: A four and B two registers of 16-bit
 * pairs, c four f32 (PTX's fragment layouts) */
static void att_mma(Att *a, LLVMValueRef c[4], LLVMValueRef A[4], LLVMValueRef Bf[2])
{
	CgFn *f = a->f;
	CgLlvm *L = f->L;
	LLVMTypeRef ft[4] = {L->t_f32, L->t_f32, L->t_f32, L->t_f32};
	LLVMTypeRef rt = LLVMStructTypeInContext(L->ctx, ft, 4, 0);
	LLVMTypeRef at[10];
	LLVMValueRef args[10];
	for (int i = 0; i < 4; i++) {
		at[i] = L->t_i32;
		args[i] = A[i];
		at[6 + i] = L->t_f32;
		args[6 + i] = c[i];
	}
	at[4] = at[5] = L->t_i32;
	args[4] = Bf[0];
	args[5] = Bf[1];
	const char *text =
	        a->f16 ? "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
	                 "{$0,$1,$2,$3}, {$4,$5,$6,$7}, {$8,$9}, {$10,$11,$12,$13};"
	               : "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
	                 "{$0,$1,$2,$3}, {$4,$5,$6,$7}, {$8,$9}, {$10,$11,$12,$13};";
	const char *cons = "=f,=f,=f,=f,r,r,r,r,r,r,f,f,f,f";
	LLVMTypeRef fty = LLVMFunctionType(rt, at, 10, 0);
	LLVMValueRef fn =
	        LLVMGetInlineAsm(fty, (char *)text, strlen(text), (char *)cons,
	                         strlen(cons), 0, 0, LLVMInlineAsmDialectATT, 0);
	LLVMValueRef r = LLVMBuildCall2(B, fty, fn, args, 10, "");
	for (int i = 0; i < 4; i++)
		c[i] = LLVMBuildExtractValue(B, r, (unsigned)i, "");
}

/* The block's K and V tiles in shared memory, two of each (the next tile
 * loads while this one is used): ATT_KEYS rows of d elements each, rows
 * d + 8 apart (so that the 8 rows an ldmatrix reads fall in different
 * banks). Buffer b's K at b * 2 * tile, its V tile after.
 *
 * Hopper's form (d = 64): rows of 128 bytes, 1024-byte aligned, each
 * row's 16-byte chunk c stored at chunk c ^ (row % 8): wgmma's 128-byte
 * swizzle, so its descriptors read K as the K-major and V as the
 * MN-major operand, eight rows 1024 bytes apart; the block's 64 rows of Q
 * after the four tiles, as the K-major A operand of the scores. */
#define ATT_TILE(d) (ATT_KEYS * ((d) + 8))
static int att_tile(const Att *a, int d)
{
	return a->wg ? ATT_KEYS * d : ATT_TILE(d);
}

static LLVMValueRef att_smem(Att *a, int d)
{
	CgFn *f = a->f;
	CgLlvm *L = f->L;
	char name[32];
	snprintf(name, sizeof name, "slapo_att_kv%d%s", d, a->wg ? "_sw" : "");
	LLVMValueRef g = LLVMGetNamedGlobal(L->mod, name);
	if (!g) {
		LLVMTypeRef t = LLVMArrayType(
		        t_i16(f), (unsigned)((a->wg ? 5 : 4) * att_tile(a, d)));
		g = LLVMAddGlobalInAddressSpace(L->mod, t, name, 3);
		LLVMSetInitializer(g, LLVMGetUndef(t));
		LLVMSetLinkage(g, LLVMInternalLinkage);
		LLVMSetAlignment(g, a->wg ? 1024 : 16);
	}
	return LLVMBuildBitCast(B, g, LLVMPointerType(t_i16(f), 3), "");
}

/* ldmatrix .x4 (transposed with trans) at the shared address p (i16
 * addrspace(3)*) of this lane's row: four fragment registers */
static void att_ldmatrix(CgFn *f, LLVMValueRef p, bool trans, LLVMValueRef r[4])
{
	CgLlvm *L = f->L;
	LLVMTypeRef it[4] = {L->t_i32, L->t_i32, L->t_i32, L->t_i32};
	LLVMTypeRef rt = LLVMStructTypeInContext(L->ctx, it, 4, 0);
	LLVMTypeRef at = L->t_i64;
	LLVMValueRef addr = LLVMBuildPtrToInt(B, p, L->t_i64, "");
	const char *text = trans ? "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 "
	                           "{$0,$1,$2,$3}, [$4];"
	                         : "ldmatrix.sync.aligned.m8n8.x4.shared.b16 "
	                           "{$0,$1,$2,$3}, [$4];";
	const char *cons = "=r,=r,=r,=r,l,~{memory}";
	LLVMTypeRef fty = LLVMFunctionType(rt, &at, 1, 0);
	/* side effects: it reads what the block stored before the barrier,
	 * so it may not move across barriers or out of the loop */
	LLVMValueRef fn =
	        LLVMGetInlineAsm(fty, (char *)text, strlen(text), (char *)cons,
	                         strlen(cons), 1, 0, LLVMInlineAsmDialectATT, 0);
	LLVMValueRef v = LLVMBuildCall2(B, fty, fn, &addr, 1, "");
	for (int i = 0; i < 4; i++)
		r[i] = LLVMBuildExtractValue(B, v, (unsigned)i, "");
}

/* For each of the warp's m-tiles t: c0[t] += A[t] B0 and c1[t] += A[t] B1,
 * B0 and B1 from one att_ldmatrix at (row, col) of the shared tile (d
 * columns, rows d + 8 apart): the fragments serve every m-tile. */
static void att_mma2(Att *a, LLVMValueRef tile, int d, LLVMValueRef row, LLVMValueRef col,
                     bool trans, LLVMValueRef A[ATT_MT][4], LLVMValueRef c0[ATT_MT][4],
                     LLVMValueRef c1[ATT_MT][4])
{
	CgFn *f = a->f;
	int mt = a->mt;
	LLVMValueRef e =
	        LLVMBuildAdd(B, LLVMBuildMul(B, row, cg_i64(f, d + 8), ""), col, "");
	LLVMValueRef fr[4];
	att_ldmatrix(f, LLVMBuildInBoundsGEP2(B, t_i16(f), tile, &e, 1, ""), trans, fr);
	for (int t = 0; t < mt; t++) {
		att_mma(a, c0[t], A[t], (LLVMValueRef[]){fr[0], fr[1]});
		att_mma(a, c1[t], A[t], (LLVMValueRef[]){fr[2], fr[3]});
	}
}

static void att_asm(CgFn *f, const char *text, const char *cons, LLVMValueRef *args,
                    int n)
{
	CgLlvm *L = f->L;
	LLVMTypeRef at[2] = {L->t_i64, L->t_i64};
	LLVMTypeRef fty = LLVMFunctionType(L->t_void, at, (unsigned)n, 0);
	LLVMValueRef fn =
	        LLVMGetInlineAsm(fty, (char *)text, strlen(text), (char *)cons,
	                         strlen(cons), 1, 0, LLVMInlineAsmDialectATT, 0);
	LLVMBuildCall2(B, fty, fn, args, (unsigned)n, "");
}

/* Starts copying the key tile from key j0 into shared memory (rows past
 * the last key repeat it) with cp.async: 16-byte chunks, the block's
 * threads side by side, swizzled in Hopper's form. */
static void att_fill(Att *at, LLVMValueRef smem, LLVMValueRef src, LLVMValueRef ld,
                     LLVMValueRef j0, LLVMValueRef last, LLVMValueRef tid, int d)
{
	CgFn *f = at->f;
	CgLlvm *L = f->L;
	int per_row = d / 8;
	for (int i = 0; i < ATT_KEYS * per_row / 128; i++) {
		LLVMValueRef id = LLVMBuildAdd(B, tid, cg_i64(f, 128 * i), "");
		LLVMValueRef r = LLVMBuildUDiv(B, id, cg_i64(f, per_row), "");
		LLVMValueRef c =
		        LLVMBuildMul(B, LLVMBuildURem(B, id, cg_i64(f, per_row), ""),
		                     cg_i64(f, 8), "");
		LLVMValueRef key = imin64(f, LLVMBuildAdd(B, j0, r, ""), last);
		LLVMValueRef sc = c;
		if (at->wg)
			sc = LLVMBuildXor(
			        B, c,
			        LLVMBuildMul(B, LLVMBuildAnd(B, r, cg_i64(f, 7), ""),
			                     cg_i64(f, 8), ""),
			        "");
		LLVMValueRef e = LLVMBuildAdd(
		        B,
		        LLVMBuildMul(B, r, cg_i64(f, att_tile(at, d) / ATT_KEYS), ""),
		        sc, "");
		LLVMValueRef a[2] = {
		        LLVMBuildPtrToInt(
		                B, LLVMBuildInBoundsGEP2(B, t_i16(f), smem, &e, 1, ""),
		                L->t_i64, ""),
		        LLVMBuildPtrToInt(B, at_elem(f, src, key, ld, c), L->t_i64, "")};
		att_asm(f, "cp.async.cg.shared.global [$0], [$1], 16;", "l,l,~{memory}",
		        a, 2);
	}
}

/* op over the 4 lanes of a quad (the threads holding one row) */
static LLVMValueRef quad_reduce(CgFn *f, int op, LLVMValueRef v)
{
	for (int d = 1; d <= 2; d *= 2)
		v = cg_gk_combine(f, op, v, cg_gk_shfl_xor(f, v, d));
	return v;
}

static LLVMValueRef fconst(CgFn *f, double v)
{
	return LLVMConstReal(f->L->t_f32, v);
}

/* 2^(x log2 e + nb): exp(x - m) with nb = -m log2 e */
static LLVMValueRef att_exp2(CgFn *f, LLVMValueRef x, LLVMValueRef nb)
{
	LLVMValueRef t = cg_fma(f, x, fconst(f, M_LOG2E), nb, 1);
	return cg_ptx(f, "ex2.approx.ftz.f32 $0, $1;", "=f,f", f->L->t_f32, &t, 1, 1);
}

/* What the key loop of a batch works with (cg_gk_emit_attention). */
typedef struct AttRun {
	Att a;
	CgGkOps *o;
	const CgStep *st;
	int mt, nd16, nd8, d, tile;
	LLVMValueRef seq, last, tid, t2, ntiles;
	LLVMValueRef mi, mr; /* ldmatrix: matrix, row of this lane */
	LLVMValueRef row[ATT_MT][2], rowc[ATT_MT][2];
	LLVMValueRef roff[ATT_MT][2][CG_MAX_VIEWS]; /* the prologue's operands */
	bool shared[CG_MAX_VIEWS];                  /* operands the two rows share */
	LLVMValueRef vm[ATT_MT][2], vl[ATT_MT][2], vacc[ATT_MT][ATT_MAXD8][4];
	LLVMValueRef qa[8][ATT_MT][4]; /* mma.sync: Q's fragments */
	LLVMValueRef smk;              /* the shared tiles */
} AttRun;

static LLVMValueRef att_at(AttRun *r, LLVMValueRef elems)
{
	CgFn *f = r->a.f;
	return LLVMBuildInBoundsGEP2(B, t_i16(f), r->smk, &elems, 1, "");
}

static LLVMValueRef att_at_c(AttRun *r, int64_t elems)
{
	return att_at(r, cg_i64(r->a.f, elems));
}

/* The prologue expression on each score of the key tile at j0, its
 * operands read at the score's column (clamped to the last key when
 * clamp). The thread's two rows share (batch, head): an operand whose
 * offset does not move with the query (the mask) is loaded once for
 * both. */
static void att_prologue(AttRun *r, LLVMValueRef j0, LLVMValueRef s[ATT_NT][ATT_MT][4],
                         bool clamp)
{
	CgFn *f = r->a.f;
	CgGkOps *o = r->o;
	const CgStep *st = r->st;
	const IrNode *sleaf = st->expr.leaf[st->sleaf];
	for (int nt = 0; nt < ATT_NT; nt++)
		for (int c = 0; c < 2; c++) {
			LLVMValueRef col = LLVMBuildAdd(
			        B, j0,
			        LLVMBuildAdd(B, r->t2, cg_i64(f, nt * 8 + c), ""),
			        "");
			int nkeep = 0;
			const IrNode *keep_n[8];
			CgVal keep_v[8];
			for (int t = 0; t < r->mt; t++)
				for (int h = 0; h < 2; h++) {
					int e = 2 * h + c;
					for (int k = 4; k < st->nview; k++)
						o->off[k] = r->roff[t][h][k];
					o->x.j = clamp ? imin64(f, col, r->last) : col;
					o->x.lanes = 1;
					o->x.contract = true; /* s * scale + mask */
					o->x.nmemo = 1 + nkeep;
					o->x.memo_n[0] = sleaf;
					o->x.memo_v[0] = (CgVal){s[nt][t][e], IR_F32};
					for (int i = 0; i < nkeep; i++) {
						o->x.memo_n[1 + i] = keep_n[i];
						o->x.memo_v[1 + i] = keep_v[i];
					}
					s[nt][t][e] =
					        cg_convert(
					                f,
					                cg_gk_eval(f, o, st->expr.root),
					                IR_F32, 1)
					                .v;
					o->x.contract = false;
					/* after the first row: keep the shared operands' loads */
					for (int i = 0;
					     t == 0 && h == 0 && i < st->expr.nleaf;
					     i++) {
						if (i == st->sleaf ||
						    !r->shared[st->expr.leaf_view[i]] ||
						    nkeep == 8)
							continue;
						for (int m = 0; m < o->x.nmemo; m++)
							if (o->x.memo_n[m] ==
							    st->expr.leaf[i]) {
								keep_n[nkeep] =
								        o->x.memo_n[m];
								keep_v[nkeep++] =
								        o->x.memo_v[m];
							}
					}
				}
		}
}

/* The prologue on the scores of the key tile at j0 (s becomes its
 * values): in a tile inside the sequence at the columns themselves (the
 * operands' addresses a constant apart), in the tile that reaches past it
 * at columns clamped to the last key, and -inf past it. */
static void att_scores(AttRun *r, LLVMValueRef j0, LLVMValueRef s[ATT_NT][ATT_MT][4])
{
	CgFn *f = r->a.f;
	CgLlvm *L = f->L;
	int mt = r->mt;
	LLVMValueRef end = LLVMBuildAdd(B, j0, cg_i64(f, ATT_KEYS), "");
	LLVMBasicBlockRef tail = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "tail");
	LLVMBasicBlockRef full = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "full");
	LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(L->ctx, f->fn, "scored");
	LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSGT, end, r->seq, ""), tail, full);
	LLVMValueRef st[ATT_NT][ATT_MT][4], sf[ATT_NT][ATT_MT][4];
	memcpy(st, s, sizeof st);
	memcpy(sf, s, sizeof sf);
	LLVMPositionBuilderAtEnd(B, tail);
	att_prologue(r, j0, st, true);
	for (int nt = 0; nt < ATT_NT; nt++)
		for (int e = 0; e < 4; e++) {
			LLVMValueRef col = LLVMBuildAdd(
			        B, j0,
			        LLVMBuildAdd(B, r->t2, cg_i64(f, nt * 8 + (e & 1)),
			                     ""),
			        "");
			LLVMValueRef in = LLVMBuildICmp(B, LLVMIntSLT, col, r->seq, "");
			for (int t = 0; t < mt; t++)
				st[nt][t][e] = LLVMBuildSelect(B, in, st[nt][t][e],
				                               fconst(f, -INFINITY), "");
		}
	LLVMBasicBlockRef tail_end = LLVMGetInsertBlock(B);
	LLVMBuildBr(B, join);
	LLVMPositionBuilderAtEnd(B, full);
	att_prologue(r, j0, sf, false);
	LLVMBasicBlockRef full_end = LLVMGetInsertBlock(B);
	LLVMBuildBr(B, join);
	LLVMPositionBuilderAtEnd(B, join);
	for (int nt = 0; nt < ATT_NT; nt++)
		for (int t = 0; t < mt; t++)
			for (int e = 0; e < 4; e++) {
				LLVMValueRef phi = LLVMBuildPhi(B, L->t_f32, "");
				LLVMValueRef v[2] = {st[nt][t][e], sf[nt][t][e]};
				LLVMBasicBlockRef bb[2] = {tail_end, full_end};
				LLVMAddIncoming(phi, v, bb, 2);
				s[nt][t][e] = phi;
			}
}

/* op over v[0 .. n) as a balanced tree (n a power of two): the values are
 * independent, so each level's steps issue together instead of one chain
 * of 2 ATT_NT; v is overwritten */
static LLVMValueRef tree(CgFn *f, int op, LLVMValueRef *v, int n)
{
	for (; n > 1; n /= 2)
		for (int i = 0; i < n / 2; i++)
			v[i] = cg_gk_combine(f, op, v[i], v[i + n / 2]);
	return v[0];
}

/* Online softmax per row over the tile's scores, exp(x - m) as
 * 2^(x log2 e - m log2 e) on the multi-function unit (P is rounded to 16
 * bits after): s becomes P, the running max and sum move on, the
 * accumulator is rescaled. */
static void att_softmax(AttRun *r, LLVMValueRef s[ATT_NT][ATT_MT][4])
{
	CgFn *f = r->a.f;
	CgLlvm *L = f->L;
	for (int t = 0; t < r->mt; t++)
		for (int h = 0; h < 2; h++) {
			LLVMValueRef row[2 * ATT_NT];
			for (int nt = 0; nt < ATT_NT; nt++)
				for (int e = 0; e < 2; e++)
					row[2 * nt + e] = s[nt][t][2 * h + e];
			LLVMValueRef mx = tree(f, 1, row, 2 * ATT_NT);
			LLVMValueRef mold = cg_gk_ld(f, L->t_f32, r->vm[t][h]);
			LLVMValueRef mnew =
			        cg_gk_combine(f, 1, mold, quad_reduce(f, 1, mx));
			LLVMValueRef inf = LLVMBuildFCmp(B, LLVMRealOEQ, mnew,
			                                 fconst(f, -INFINITY), "");
			LLVMValueRef bse =
			        LLVMBuildSelect(B, inf, fconst(f, 0.0), mnew, "");
			LLVMValueRef nb = LLVMBuildFMul(B, bse, fconst(f, -M_LOG2E), "");
			LLVMValueRef corr = att_exp2(f, mold, nb);
			for (int nt = 0; nt < ATT_NT; nt++)
				for (int e = 0; e < 2; e++) {
					LLVMValueRef *p = &s[nt][t][2 * h + e];
					*p = row[2 * nt + e] = att_exp2(f, *p, nb);
				}
			LLVMValueRef sum = tree(f, 0, row, 2 * ATT_NT);
			LLVMBuildStore(B,
			               cg_fma(f, cg_gk_ld(f, L->t_f32, r->vl[t][h]), corr,
			                      sum, 1),
			               r->vl[t][h]);
			LLVMBuildStore(B, mnew, r->vm[t][h]);
			for (int dn = 0; dn < r->nd8; dn++)
				for (int e = 2 * h; e < 2 * h + 2; e++)
					LLVMBuildStore(
					        B,
					        LLVMBuildFMul(B,
					                      cg_gk_ld(f, L->t_f32,
					                               r->vacc[t][dn][e]),
					                      corr, ""),
					        r->vacc[t][dn][e]);
		}
}

/* P's fragments for 16 keys kk: m-tile t's A registers */
static void att_p_frags(AttRun *r, LLVMValueRef s[ATT_NT][ATT_MT][4], int kk, int t,
                        LLVMValueRef pa[4])
{
	pa[0] = att_pack(&r->a, s[2 * kk][t][0], s[2 * kk][t][1]);
	pa[1] = att_pack(&r->a, s[2 * kk][t][2], s[2 * kk][t][3]);
	pa[2] = att_pack(&r->a, s[2 * kk + 1][t][0], s[2 * kk + 1][t][1]);
	pa[3] = att_pack(&r->a, s[2 * kk + 1][t][2], s[2 * kk + 1][t][3]);
}

/* mma.sync: one key tile, K at tk and V at tv in shared memory. Scores:
 * s[nt] is the 16 x 8 tile of keys j0 + 8 nt ..; one ldmatrix.x4 gives
 * the K fragments of tiles nt and nt + 1. Then O += P V, 16 keys at a
 * time. */
static void att_tile_mma(AttRun *r, LLVMValueRef j0, LLVMValueRef tk, LLVMValueRef tv)
{
	CgFn *f = r->a.f;
	CgLlvm *L = f->L;
	int mt = r->mt, d = r->d;
	LLVMValueRef mi = r->mi, mr = r->mr;
	LLVMValueRef s[ATT_NT][ATT_MT][4];
	for (int nt = 0; nt < ATT_NT; nt++)
		for (int t = 0; t < mt; t++)
			for (int e = 0; e < 4; e++)
				s[nt][t][e] = fconst(f, 0.0);
	for (int nt = 0; nt < ATT_NT; nt += 2) {
		LLVMValueRef krow = LLVMBuildAdd(
		        B,
		        LLVMBuildMul(B, LLVMBuildLShr(B, mi, cg_i64(f, 1), ""),
		                     cg_i64(f, 8), ""),
		        LLVMBuildAdd(B, mr, cg_i64(f, nt * 8), ""), "");
		for (int ks = 0; ks < r->nd16; ks++) {
			LLVMValueRef col = LLVMBuildAdd(
			        B,
			        LLVMBuildMul(B, LLVMBuildAnd(B, mi, cg_i64(f, 1), ""),
			                     cg_i64(f, 8), ""),
			        cg_i64(f, ks * 16), "");
			att_mma2(&r->a, tk, d, krow, col, false, r->qa[ks], s[nt],
			         s[nt + 1]);
		}
	}
	att_scores(r, j0, s);
	att_softmax(r, s);
	LLVMValueRef acc[ATT_MAXD8][ATT_MT][4];
	for (int dn = 0; dn < r->nd8; dn++)
		for (int t = 0; t < mt; t++)
			for (int e = 0; e < 4; e++)
				acc[dn][t][e] = cg_gk_ld(f, L->t_f32, r->vacc[t][dn][e]);
	for (int kk = 0; kk < ATT_KEYS / 16; kk++) {
		LLVMValueRef pa[ATT_MT][4];
		for (int t = 0; t < mt; t++)
			att_p_frags(r, s, kk, t, pa[t]);
		/* one ldmatrix.x4.trans: the V fragments of dims dn and dn + 1 */
		LLVMValueRef vrow = LLVMBuildAdd(
		        B,
		        LLVMBuildMul(B, LLVMBuildAnd(B, mi, cg_i64(f, 1), ""),
		                     cg_i64(f, 8), ""),
		        LLVMBuildAdd(B, mr, cg_i64(f, kk * 16), ""), "");
		for (int dn = 0; dn < r->nd8; dn += 2) {
			LLVMValueRef col = LLVMBuildMul(
			        B,
			        LLVMBuildAdd(B,
			                     LLVMBuildLShr(B, mi, cg_i64(f, 1), ""),
			                     cg_i64(f, dn), ""),
			        cg_i64(f, 8), "");
			att_mma2(&r->a, tv, d, vrow, col, true, pa, acc[dn], acc[dn + 1]);
		}
	}
	for (int dn = 0; dn < r->nd8; dn++)
		for (int t = 0; t < mt; t++)
			for (int e = 0; e < 4; e++)
				LLVMBuildStore(B, acc[dn][t][e], r->vacc[t][dn][e]);
}

/* Hopper: one key tile, K at tk and V at tv in shared memory, Q at smq:
 * S = Q K^T, then O += P V, each one wgmma group, waited for. (Starting
 * the next tile's S before this one's softmax, with K two tiles ahead,
 * needed 152 registers and three blocks an SM, and was slower than
 * this at four: 54 against 48 us a call on bert-large, H200.) */
static void att_tile_wg(AttRun *r, LLVMValueRef j0, LLVMValueRef smq, LLVMValueRef tk,
                        LLVMValueRef tv)
{
	Att *a = &r->a;
	CgFn *f = a->f;
	CgLlvm *L = f->L;
	LLVMValueRef d32[32], s[ATT_NT][ATT_MT][4], pf[4][4];
	cg_wg_issue(a->f, a->f16, d32, false, NULL, smq, r->nd16, tk, 32, false);
	cg_wg_wait(a->f, d32, 0);
	for (int i = 0; i < 32; i++)
		s[i / 4][0][i % 4] = d32[i];
	att_scores(r, j0, s);
	att_softmax(r, s);
	for (int kk = 0; kk < ATT_KEYS / 16; kk++)
		att_p_frags(r, s, kk, 0, pf[kk]);
	for (int i = 0; i < 32; i++)
		d32[i] = cg_gk_ld(f, L->t_f32, r->vacc[0][i / 4][i % 4]);
	/* 16 keys a step: two 8-row swizzle atoms of V */
	cg_wg_issue(a->f, a->f16, d32, true, pf, NULL, ATT_KEYS / 16, tv, 16 * 128, true);
	cg_wg_wait(a->f, d32, 0);
	for (int i = 0; i < 32; i++)
		LLVMBuildStore(B, d32[i], r->vacc[0][i / 4][i % 4]);
}

/* The key loop: tile 0 into buffer 0 (K, then V; Hopper's form also the
 * block's 64 queries after the two buffers, rows past the last repeating
 * it); then each step starts the next tile into the other buffer (past
 * the end: the last keys again, unused) and waits for this one. */
static void att_loop(AttRun *r)
{
	Att *a = &r->a;
	CgFn *f = a->f;
	int tile = r->tile, d = r->d;
	LLVMValueRef smq = att_at_c(r, 4 * tile);
	att_fill(a, r->smk, a->k, a->ldk, cg_i64(f, 0), r->last, r->tid, d);
	att_fill(a, att_at_c(r, tile), a->v, a->ldv, cg_i64(f, 0), r->last, r->tid,
	         d);
	if (a->wg)
		att_fill(a, smq, a->q, a->ldq,
		         LLVMBuildMul(B, cg_gk_sreg(f, "ctaid.x"), cg_i64(f, 64), ""),
		         r->last, r->tid, d);
	att_asm(f, "cp.async.commit_group;", "~{memory}", NULL, 0);
	CgLoop kl;
	LLVMValueRef kt = cg_loop_begin(f, &kl, cg_i64(f, 0), r->ntiles);
	LLVMValueRef j0 = LLVMBuildMul(B, kt, cg_i64(f, ATT_KEYS), "");
	LLVMValueRef cur = LLVMBuildMul(B, LLVMBuildAnd(B, kt, cg_i64(f, 1), ""),
	                                cg_i64(f, 2 * tile), "");
	LLVMValueRef nxt = LLVMBuildSub(B, cg_i64(f, 2 * tile), cur, "");
	LLVMValueRef j1 = LLVMBuildAdd(B, j0, cg_i64(f, ATT_KEYS), "");
	att_fill(a, att_at(r, nxt), a->k, a->ldk, j1, r->last, r->tid, d);
	att_fill(a, att_at(r, LLVMBuildAdd(B, nxt, cg_i64(f, tile), "")), a->v,
	         a->ldv, j1, r->last, r->tid, d);
	att_asm(f, "cp.async.commit_group;", "~{memory}", NULL, 0);
	att_asm(f, "cp.async.wait_group 1;", "~{memory}", NULL, 0);
	if (a->wg) /* the tile, written by the generic proxy, read by wgmma */
		att_asm(f, "fence.proxy.async.shared::cta;", "~{memory}", NULL, 0);
	cg_gk_barrier(f); /* every thread's part of this tile is in */
	LLVMValueRef tk = att_at(r, cur),
	             tv = att_at(r, LLVMBuildAdd(B, cur, cg_i64(f, tile), ""));
	if (a->wg)
		att_tile_wg(r, j0, smq, tk, tv);
	else
		att_tile_mma(r, j0, tk, tv);
	cg_gk_barrier(f); /* this buffer is free for the tile after next */
	cg_loop_end(f, &kl, kt, cg_i64(f, 1));
	att_asm(f, "cp.async.wait_group 0;", "~{memory}", NULL, 0);
}

void cg_gk_emit_attention(CgFn *f, CgGkOps *o)
{
	const CgStep *st = o->st;
	CgLlvm *L = f->L;
	AttRun run = {.o = o, .st = st}, *r = &run;
	int mt = r->mt = st->mt == 1 ? 1 : ATT_MT;
	Att *a = &r->a;
	*a = (Att){.f = f, .f16 = o->sty[1] == IR_F16, .wg = f->L->sm90a, .mt = mt};
	r->nd16 = (int)(st->k.coef / 16);
	r->nd8 = (int)(st->k.coef / 8);
	r->d = (int)st->k.coef;
	r->tile = att_tile(a, r->d);
	LLVMValueRef seq = r->seq = cg_dim(f, st->m);
	LLVMValueRef last = r->last = LLVMBuildSub(B, seq, cg_i64(f, 1), "");
	LLVMValueRef tid = r->tid = cg_gk_sreg(f, "tid.x");
	LLVMValueRef lane = LLVMBuildAnd(B, tid, cg_i64(f, 31), "");
	LLVMValueRef g = LLVMBuildLShr(B, lane, cg_i64(f, 2), "");
	LLVMValueRef t2 = r->t2 = LLVMBuildMul(
	        B, LLVMBuildAnd(B, lane, cg_i64(f, 3), ""), cg_i64(f, 2), "");
	r->mi = LLVMBuildLShr(B, lane, cg_i64(f, 3), "");
	r->mr = LLVMBuildAnd(B, lane, cg_i64(f, 7), "");
	a->ldq = cg_dim(f, st->lda);
	a->ldk = cg_dim(f, st->ldb);
	a->ldo = cg_dim(f, st->ldc);
	a->ldv = cg_dim(f, st->ldv);
	LLVMValueRef q0 = LLVMBuildAdd(
	        B, LLVMBuildMul(B, cg_gk_sreg(f, "ctaid.x"), cg_i64(f, 64 * mt), ""),
	        LLVMBuildMul(B, LLVMBuildLShr(B, tid, cg_i64(f, 5), ""),
	                     cg_i64(f, 16 * mt), ""),
	        "");
	/* m-tile t's rows: q0 + 16 t + g and 8 after */
	for (int t = 0; t < mt; t++)
		for (int h = 0; h < 2; h++) {
			r->row[t][h] = LLVMBuildAdd(
			        B, q0,
			        LLVMBuildAdd(B, g, cg_i64(f, 16 * t + 8 * h), ""),
			        "");
			r->rowc[t][h] = imin64(f, r->row[t][h], last);
		}
	LLVMValueRef nbat = cg_i64(f, 1);
	for (int i = 0; i < st->nbatch; i++)
		nbat = LLVMBuildMul(B, nbat, cg_dim(f, st->bdim[i]), "");
	r->ntiles =
	        LLVMBuildSDiv(B, LLVMBuildAdd(B, seq, cg_i64(f, ATT_KEYS - 1), ""),
	                      cg_i64(f, ATT_KEYS), "");
	IrDim q;
	int nd = st->ndim;
	for (int k = 4; k < st->nview && nd >= 2; k++)
		r->shared[k] = st->views[k].ndim == nd &&
		               cg_dim_is(st->views[k].stride[nd - 2], 0) &&
		               ir_dim_div(st->dim[nd - 2], st->m, &q);
	/* loop-carried state */
	for (int t = 0; t < mt; t++) {
		for (int h = 0; h < 2; h++) {
			r->vm[t][h] = cg_var_of(f, L->t_f32, "m");
			r->vl[t][h] = cg_var_of(f, L->t_f32, "l");
		}
		for (int dn = 0; dn < r->nd8; dn++)
			for (int e = 0; e < 4; e++)
				r->vacc[t][dn][e] = cg_var_of(f, L->t_f32, "acc");
	}

	CgLoop bl;
	LLVMValueRef bi = cg_loop_begin(f, &bl, cg_gk_sreg(f, "ctaid.y"), nbat);
	/* this batch's Q, K, V, O */
	LLVMValueRef rem = bi, off[4] = {cg_i64(f, 0), cg_i64(f, 0),
	                                 cg_i64(f, 0), cg_i64(f, 0)};
	for (int i = st->nbatch - 1; i >= 0; i--) {
		LLVMValueRef idx = rem;
		if (i > 0) {
			LLVMValueRef dd = cg_dim(f, st->bdim[i]);
			LLVMValueRef qq = LLVMBuildUDiv(B, rem, dd, "");
			idx = LLVMBuildSub(B, rem, LLVMBuildMul(B, qq, dd, ""), "");
			rem = qq;
		}
		const IrDim *bs[4] = {&st->bsc[i], &st->bsa[i], &st->bsb[i], &st->bsv[i]};
		for (int k = 0; k < 4; k++)
			off[k] = LLVMBuildAdd(B, off[k],
			                      LLVMBuildMul(B, idx, cg_dim(f, *bs[k]), ""),
			                      "");
	}
	LLVMValueRef base[4];
	for (int k = 0; k < 4; k++) {
		LLVMValueRef p =
		        LLVMBuildBitCast(B, o->ptr[k], LLVMPointerType(t_i16(f), 0), "");
		base[k] = LLVMBuildInBoundsGEP2(B, t_i16(f), p, &off[k], 1, "");
	}
	a->out = base[0];
	a->q = base[1];
	a->k = base[2];
	a->v = base[3];
	for (int t = 0; t < mt; t++)
		for (int h = 0; h < 2; h++) {
			LLVMValueRef row = LLVMBuildAdd(B, LLVMBuildMul(B, bi, seq, ""),
			                                r->rowc[t][h], "");
			cg_gk_row_offsets(f, o, st->dim, st->ndim - 1, row, 4, st->nview);
			for (int k = 4; k < st->nview; k++)
				r->roff[t][h][k] = o->off[k];
		}
	/* Q fragments (qa[ks][t]: m-tile t, k-step ks): rows g, g + 8;
	 * columns 2t, 2t + 8 of each 16 (Hopper's form reads Q from shared
	 * memory: as register fragments kept across the loop the scores came
	 * out wrong from the second key tile on, H200) */
	for (int ks = 0; ks < r->nd16 && !a->wg; ks++)
		for (int t = 0; t < mt; t++)
			for (int i = 0; i < 4; i++) {
				LLVMValueRef col = LLVMBuildAdd(
				        B, t2, cg_i64(f, ks * 16 + (i >= 2 ? 8 : 0)),
				        "");
				r->qa[ks][t][i] =
				        att_ld32(f, a->q, r->rowc[t][i & 1], a->ldq, col);
			}
	for (int t = 0; t < mt; t++) {
		for (int h = 0; h < 2; h++) {
			LLVMBuildStore(B, fconst(f, -INFINITY), r->vm[t][h]);
			LLVMBuildStore(B, fconst(f, 0.0), r->vl[t][h]);
		}
		for (int dn = 0; dn < r->nd8; dn++)
			for (int e = 0; e < 4; e++)
				LLVMBuildStore(B, fconst(f, 0.0), r->vacc[t][dn][e]);
	}
	r->smk = att_smem(a, r->d);
	att_loop(r);

	/* O = acc / sum, rows inside the sequence */
	for (int t = 0; t < mt; t++)
		for (int h = 0; h < 2; h++) {
			LLVMValueRef inv = LLVMBuildFDiv(
			        B, fconst(f, 1.0),
			        quad_reduce(f, 0, cg_gk_ld(f, L->t_f32, r->vl[t][h])),
			        "");
			LLVMBasicBlockRef after = cg_gk_if_begin(
			        f, LLVMBuildICmp(B, LLVMIntSLT, r->row[t][h], seq, ""));
			for (int dn = 0; dn < r->nd8; dn++) {
				LLVMValueRef y = att_pack(
				        a,
				        LLVMBuildFMul(B,
				                      cg_gk_ld(f, L->t_f32,
				                               r->vacc[t][dn][2 * h]),
				                      inv, ""),
				        LLVMBuildFMul(B,
				                      cg_gk_ld(f, L->t_f32,
				                               r->vacc[t][dn][2 * h + 1]),
				                      inv, ""));
				LLVMValueRef p = LLVMBuildBitCast(
				        B,
				        at_elem(f, a->out, r->row[t][h], a->ldo,
				                LLVMBuildAdd(B, t2, cg_i64(f, dn * 8),
				                             "")),
				        LLVMPointerType(L->t_i32, 0), "");
				LLVMSetAlignment(LLVMBuildStore(B, y, p), 4);
			}
			cg_gk_if_end(f, after);
		}
	cg_loop_end(f, &bl, bi, cg_gk_sreg(f, "nctaid.y"));
}
