/* gen_cases.c - makes the GPU op test suite where slapoc runs (it needs
 * LLVM; the GPU machine needs only what this writes): every op and fused
 * kernel of tests/codegen/test_ops.c compiled to a model library with GPU
 * code at one precision, random inputs and parameters, and the reference
 * interpreter's outputs (double precision) for each binding of B and S.
 *
 *   gen_cases OUTDIR [--precision fp32|tf32|bf16|fp16] [--emu] [NAME-SUBSTRING]
 *
 * writes into OUTDIR, for each case NAME:
 *   NAME.so                     the model library (CPU and GPU code)
 *   NAME.ptx                    its GPU code (for ptxas)
 *   NAME.emu.so                 with --emu: the kernels for the host
 *                               (tests/gpu/fake_cuda.c)
 *   NAME.w.safetensors          its parameters (f32)
 *   NAME.b<k>.in.safetensors    inputs of binding k, by index (in0, in1, ...)
 *   NAME.b<k>.ref.safetensors   reference outputs (out0, out1, ...: f32 for
 *                               f32 outputs, else f64)
 * and one line per case into OUTDIR/manifest:
 *   NAME NBIND B0 S0 B1 S1 ... RTOL ATOL EXPECT_FAIL FAIL_OBJECT
 * run_cases.c runs them (on the GPU, or on the CPU as a check of this).
 */
#define main test_ops_main
#include "../codegen/test_ops.c"
#undef main

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "codegen/gpu.h"
#include "runtime/rt.h"

/* ---- cases for what only the GPU code has ------------------------------------------------ */

/* four elements per thread: dims that are multiples of 4, with a
 * broadcast operand (stride 0), a transposed one (strided loads) and a
 * strided output */
static void t_vec_map(Case *c)
{
	IrNode *x = in_(c, "x", IR_F32, "B,S,64");
	IrNode *y = in_(c, "y", IR_F32, "64");
	IrNode *z = in_(c, "z", IR_F32, "B,64,S");
	IrNode *g = op_(c, OP_GELU, op_(c, OP_ADD, x, y, NULL, NULL), NULL, NULL, NULL);
	out_(c, g);
	int64_t tr[] = {-1, -2};
	IrAttrs at = ints(2, tr);
	IrNode *zt = op_(c, OP_TRANSPOSE, z, NULL, NULL, &at);
	out_(c, op_(c, OP_MUL, x, zt, NULL, NULL));
	out_(c,
	     op_(c, OP_TRANSPOSE, op_(c, OP_RELU, x, NULL, NULL, NULL), NULL, NULL, &at));
}

/* rows longer than 8 * 1024 elements: the part past the registers goes
 * through the output */
static void t_long_rows(Case *c)
{
	c->lo = -4;
	c->hi = 4;
	IrNode *x = in_(c, "x", IR_F32, "B,9001");
	int64_t d[] = {-1};
	IrAttrs at = ints(1, d);
	IrNode *q = op_(c, OP_DIV, x, const_(c, 3, IR_F32), NULL, NULL);
	IrNode *sm = op_(c, OP_SOFTMAX, q, NULL, NULL, &at);
	IrNode *r[2] = {q, sm};
	fuse_(c, r, 2, "FusedLongSoftmax");
	IrNode *y = in_(c, "y", IR_F32, "B,8300");
	IrNode *w = param_(c, "ln.weight", "8300"), *b = param_(c, "ln.bias", "8300");
	IrAttrs la = A();
	la.fattr = 1e-5;
	out_(c, op_(c, OP_LAYER_NORM, y, w, b, &la));
}

/* a GEMM on a model output and on an input (bf16: converted copies) with
 * a bias into a temp, then into an output */
static void t_gemm_chain(Case *c)
{
	c->rtol = c->atol = 1e-4;
	IrNode *x = in_(c, "x", IR_F32, "B,S,32");
	IrNode *w1 = param_(c, "a.weight", "48,32"), *b1 = param_(c, "a.bias", "48");
	IrNode *w2 = param_(c, "b.weight", "16,48"), *b2 = param_(c, "b.bias", "16");
	IrNode *h = op_(c, OP_LINEAR, x, w1, b1, NULL);
	IrNode *g = op_(c, OP_GELU, h, NULL, NULL, NULL);
	out_(c, g);
	out_(c, op_(c, OP_LINEAR, g, w2, b2, NULL));
}

static const Test GPU_TESTS[] = {
        {"vec_map", t_vec_map, 0},
        {"long_rows", t_long_rows, 0},
        {"gemm_chain", t_gemm_chain, 0},
};

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static DLDataType dl_of(IrDType t)
{
	switch (t) {
	case IR_I64:
		return (DLDataType){kDLInt, 64, 1};
	case IR_I32:
		return (DLDataType){kDLInt, 32, 1};
	case IR_BOOL:
		return (DLDataType){kDLBool, 8, 1};
	default:
		return (DLDataType){kDLFloat, 32, 1};
	}
}

static const DLDataType F64 = {kDLFloat, 64, 1};

typedef struct Prm {
	int n;
	const char *name[256];
	IrTensor *t[256];
} Prm;

static IrTensor *param_cb(void *user, const IrNode *n)
{
	Prm *p = user;
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->name[i], n->sattr) == 0)
			return p->t[i];
	return NULL;
}

/* A tensor of an IrTensor's values converted to dtype dt (a new buffer). */
static void *to_buf(const IrTensor *t, DLDataType dt)
{
	size_t es = rt_dtype_size(dt);
	char *b = malloc((size_t)(t->numel + 1) * es);
	for (int64_t e = 0; e < t->numel; e++) {
		if (dt.code == kDLFloat) {
			rt_convert(dt, b + e * (int64_t)es, F64, &t->data[e], 1);
		} else { /* integers and bools: exact */
			int64_t v = (int64_t)t->data[e];
			rt_convert(dt, b + e * (int64_t)es, (DLDataType){kDLInt, 64, 1},
			           &v, 1);
		}
	}
	return b;
}

static bool emulate; /* --emu: also NAME.emu.so for tests/gpu/fake_cuda.c */

static bool gen(Case *c, const Test *t, const char *dir, CgPrecision prec, FILE *man)
{
	char path[1024];
	uint64_t rng = 0x9E3779B97F4A7C15ull;
	for (const char *p = c->name; *p; p++)
		rng = (rng ^ (uint64_t)*p) * 1099511628211ull;
	snprintf(path, sizeof path, "%s/%s.so", dir, c->name);
	if (c->diag.nerrors || !c->g->outputs.len) {
		fprintf(stderr, "%s: the graph could not be built\n", c->name);
		return false;
	}
	CgModel model = {
	        .graph = c->g, .name = c->name, .ties = c->ties, .nties = c->nties};
	char ptx[1024], emu[1024];
	snprintf(ptx, sizeof ptx, "%s/%s.ptx", dir, c->name);
	snprintf(emu, sizeof emu, "%s/%s.emu.so", dir, c->name);
	CgOptions opt = {.emit = CG_EMIT_SO,
	                 .output = path,
	                 .gpu = CG_GPU_ON,
	                 .precision = prec,
	                 .ptx_out = ptx,
	                 .emu_out = emulate ? emu : NULL};
	if (!cg_compile(&model, &opt)) {
		fprintf(stderr, "%s: cg_compile failed\n", c->name);
		return false;
	}
	/* parameters: owners random, tied names share them */
	Prm prm = {0};
	RtStWriteTensor wt[256];
	void *wbuf[256];
	int nw = 0;
	for (IrNode *x = c->g->first; x; x = x->next) {
		if (x->op != OP_PARAM || prm.n == 256 || param_cb(&prm, x))
			continue;
		const char *tied = NULL;
		for (int i = 0; i < c->nties; i++)
			if (strcmp(c->ties[2 * i], x->sattr) == 0)
				tied = c->ties[2 * i + 1];
		IrTensor *src = NULL;
		for (int i = 0; tied && i < prm.n; i++)
			if (strcmp(prm.name[i], tied) == 0)
				src = prm.t[i];
		int64_t sh[IR_MAX_DIMS];
		for (int d = 0; d < x->shape.ndim; d++)
			sh[d] = x->shape.d[d].coef;
		IrTensor *pt;
		if (src) {
			pt = ir_tensor_copy(src);
		} else {
			pt = ir_tensor_new(IR_F32, x->shape.ndim, sh);
			for (int64_t e = 0; e < pt->numel; e++)
				pt->data[e] = (double)(float)(2 * rng_unit(&rng) - 1);
			wbuf[nw] = to_buf(pt, (DLDataType){kDLFloat, 32, 1});
			wt[nw] = (RtStWriteTensor){x->sattr,
			                           {kDLFloat, 32, 1},
			                           pt->ndim,
			                           pt->shape,
			                           wbuf[nw]};
			nw++;
		}
		prm.name[prm.n] = x->sattr;
		prm.t[prm.n++] = pt;
	}
	snprintf(path, sizeof path, "%s/%s.w.safetensors", dir, c->name);
	bool ok = rt_st_write(path, nw, wt, 0, NULL) == SLAPO_OK;
	for (int i = 0; i < nw; i++)
		free(wbuf[i]);
	const int64_t(*binds)[2] = t->small ? BS_SMALL : BS;
	int nbind = t->small ? NB(BS_SMALL) : NB(BS);
	for (int b = 0; ok && b < nbind; b++) {
		int64_t vals[IR_MAX_SYMS];
		for (int i = 0; i < IR_MAX_SYMS; i++)
			vals[i] = 1;
		for (int i = 0; i < c->ir.nsyms; i++) {
			if (strcmp(c->ir.sym_names[i], "B") == 0)
				vals[i] = binds[b][0];
			else if (strcmp(c->ir.sym_names[i], "S") == 0)
				vals[i] = binds[b][1];
		}
		IrGraph *g = c->g;
		int nin = g->inputs.len, nout = g->outputs.len;
		IrTensor *ti[16] = {0}, *to[16] = {0};
		RtStWriteTensor it[16], ot[16];
		void *ib[16] = {0}, *ob[16] = {0};
		char names[32][16];
		for (int i = 0; i < nin; i++) {
			const IrNode *x = g->inputs.items[i];
			int64_t sh[IR_MAX_DIMS];
			for (int d = 0; d < x->shape.ndim; d++)
				sh[d] = ir_dim_eval(x->shape.d[d], vals);
			ti[i] = ir_tensor_new(x->dtype, x->shape.ndim, sh);
			for (int64_t e = 0; e < ti[i]->numel; e++) {
				double v;
				if (x->dtype == IR_I64 || x->dtype == IR_I32) {
					int64_t hi = c->int_hi[i] ? c->int_hi[i] : 10;
					v = (double)(int64_t)(rng_unit(&rng) *
					                      (double)hi);
				} else if (x->dtype == IR_BOOL) {
					v = rng_unit(&rng) < 0.5;
				} else {
					v = (double)(float)(c->lo +
					                    (c->hi - c->lo) *
					                            rng_unit(&rng));
				}
				ti[i]->data[e] = v;
			}
			DLDataType dt = dl_of(x->dtype);
			ib[i] = to_buf(ti[i], dt);
			snprintf(names[i], sizeof names[i], "in%d", i);
			it[i] = (RtStWriteTensor){names[i], dt, ti[i]->ndim, ti[i]->shape,
			                          ib[i]};
		}
		snprintf(path, sizeof path, "%s/%s.b%d.in.safetensors", dir, c->name, b);
		ok = rt_st_write(path, nin, it, 0, NULL) == SLAPO_OK;
		if (ok && !c->expect_fail) {
			IrInterp ip;
			memset(&ip, 0, sizeof ip);
			ip.param = param_cb;
			ip.param_user = &prm;
			ip.sym_values = vals;
			if (!interp_run(&ip, g, ti, to)) {
				fprintf(stderr, "%s: interpreter: %s\n", c->name,
				        ip.error);
				ok = false;
			}
			for (int j = 0; ok && j < nout; j++) {
				const IrNode *o = g->outputs.items[j];
				/* what the f32 (or integer) output can hold */
				if (cg_storage_type(o->dtype) == IR_F32)
					for (int64_t e = 0; e < to[j]->numel; e++)
						to[j]->data[e] =
						        (double)(float)to[j]->data[e];
				/* f32 outputs' references in f32 (they are f32 values), others
				 * in f64 (exact integers) */
				DLDataType rt = cg_storage_type(o->dtype) == IR_F32
				                        ? (DLDataType){kDLFloat, 32, 1}
				                        : F64;
				ob[j] = to_buf(to[j], rt);
				snprintf(names[16 + j], sizeof names[16 + j], "out%d", j);
				ot[j] = (RtStWriteTensor){names[16 + j], rt, to[j]->ndim,
				                          to[j]->shape, ob[j]};
			}
			snprintf(path, sizeof path, "%s/%s.b%d.ref.safetensors", dir,
			         c->name, b);
			ok = ok && rt_st_write(path, nout, ot, 0, NULL) == SLAPO_OK;
		}
		for (int i = 0; i < nin; i++) {
			ir_tensor_free(ti[i]);
			free(ib[i]);
		}
		for (int j = 0; j < nout; j++) {
			ir_tensor_free(to[j]);
			free(ob[j]);
		}
	}
	for (int i = 0; i < prm.n; i++)
		ir_tensor_free(prm.t[i]);
	if (!ok)
		return false;
	fprintf(man, "%s %d", c->name, nbind);
	for (int b = 0; b < nbind; b++)
		fprintf(man, " %lld %lld", (long long)binds[b][0],
		        (long long)binds[b][1]);
	fprintf(man, " %.9g %.9g %d %s\n", c->rtol, c->atol, c->expect_fail ? 1 : 0,
	        c->fail_object ? c->fail_object : "-");
	return true;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *filter = NULL;
	CgPrecision prec = CG_PREC_FP32;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--emu") == 0) {
			emulate = true;
		} else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc) {
			if (!cg_precision_parse(argv[++i], &prec)) {
				fprintf(stderr, "gen_cases: bad precision %s\n", argv[i]);
				return 2;
			}
		} else if (!dir) {
			dir = argv[i];
		} else {
			filter = argv[i];
		}
	}
	if (!dir) {
		fprintf(stderr, "usage: gen_cases OUTDIR [--precision P] [FILTER]\n");
		return 2;
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		perror(dir);
		return 1;
	}
	char mpath[1024];
	snprintf(mpath, sizeof mpath, "%s/manifest", dir);
	FILE *man = fopen(mpath, "w");
	if (!man) {
		perror(mpath);
		return 1;
	}
	int fails = 0, n = 0;
	size_t nt = sizeof TESTS / sizeof TESTS[0],
	       ng = sizeof GPU_TESTS / sizeof GPU_TESTS[0];
	for (size_t i = 0; i < nt + ng; i++) {
		const Test *t = i < nt ? &TESTS[i] : &GPU_TESTS[i - nt];
		if (filter && !strstr(t->name, filter))
			continue;
		Case c;
		case_init(&c, t->name);
		t->build(&c);
		bool ok = gen(&c, t, dir, prec, man);
		fails += !ok;
		n++;
		case_free(&c);
	}
	fclose(man);
	printf("gen_cases: %d of %d cases made in %s (%s)\n", n - fails, n, dir,
	       cg_precision_name(prec));
	return fails ? 1 : 0;
}
