/* cgtest.c - see cgtest.h: compile tiny graphs to model libraries, run
 * them through the public API and compare with the interpreter.
 */
#include "cgtest.h"

#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *test_tmpdir(void)
{
	static char dir[256];
	if (!dir[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/slapo-cgtest-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(dir)) {
			fprintf(stderr, "cannot make a temporary directory\n");
			snprintf(dir, sizeof dir, "/tmp");
		}
	}
	return dir;
}

void case_init(Case *c, const char *name)
{
	memset(c, 0, sizeof *c);
	c->name = name;
	diag_init(&c->diag, stderr, &c->arena);
	ir_ctx_init(&c->ir, &c->arena, &c->diag);
	c->g = ir_graph_new(&c->ir, name);
	c->rtol = 1e-5;
	c->atol = 1e-6;
	c->lo = -2;
	c->hi = 2;
}

void case_free(Case *c)
{
	arena_free(&c->arena);
}

static IrShape parse_shape(Case *c, const char *spec)
{
	IrShape s;
	memset(&s, 0, sizeof s);
	char buf[128];
	snprintf(buf, sizeof buf, "%s", spec);
	for (char *t = strtok(buf, ","); t && s.ndim < IR_MAX_DIMS; t = strtok(NULL, ",")) {
		while (*t == ' ')
			t++;
		if (*t >= '0' && *t <= '9')
			s.d[s.ndim++] = ir_dim_const(atoll(t));
		else
			s.d[s.ndim++] = ir_dim_sym(ir_sym(&c->ir, t, c->sp));
	}
	return s;
}

IrNode *in_(Case *c, const char *name, IrDType t, const char *shape)
{
	IrAttrs at;
	memset(&at, 0, sizeof at);
	at.dtype = t;
	at.shape = parse_shape(c, shape);
	at.sattr = name;
	IrNode *n = ir_build(c->g, OP_INPUT, NULL, 0, &at, c->sp, name);
	bool listed = false;
	for (int i = 0; i < c->g->inputs.len; i++)
		listed |= c->g->inputs.items[i] == n;
	if (n && !listed)
		ptrvec_push(&c->arena, &c->g->inputs, n);
	return n;
}

IrNode *param_(Case *c, const char *path, const char *shape)
{
	IrAttrs at;
	memset(&at, 0, sizeof at);
	at.dtype = IR_F32;
	at.shape = parse_shape(c, shape);
	at.sattr = path;
	return ir_build(c->g, OP_PARAM, NULL, 0, &at, c->sp, NULL);
}

IrNode *const_(Case *c, double v, IrDType t)
{
	IrAttrs at;
	memset(&at, 0, sizeof at);
	at.dtype = t;
	at.fattr = v;
	return ir_build(c->g, OP_CONST, NULL, 0, &at, c->sp, NULL);
}

IrNode *opn_(Case *c, IrOp op, IrNode **in, int n, const IrAttrs *at)
{
	return ir_build(c->g, op, in, n, at, c->sp, NULL);
}

IrNode *op_(Case *c, IrOp op, IrNode *a, IrNode *b, IrNode *x, const IrAttrs *at)
{
	IrNode *in[3] = {a, b, x};
	int n = x ? 3 : b ? 2 : a ? 1 : 0;
	return opn_(c, op, in, n, at);
}

void out_(Case *c, IrNode *n)
{
	if (n)
		ir_add_output(c->g, n, NULL);
}

IrNode *fuse_(Case *c, IrNode **nodes, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!nodes[i])
			return NULL;
	/* the region's value must be used: make it an output first */
	ir_add_output(c->g, nodes[n - 1], NULL);
	return ir_fuse(c->g, nodes, n, OP_FUSED, name, c->sp);
}

/* ---- running ------------------------------------------------------------------- */

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
	case IR_I64: return (DLDataType){kDLInt, 64, 1};
	case IR_I32: return (DLDataType){kDLInt, 32, 1};
	case IR_BOOL: return (DLDataType){kDLBool, 8, 1};
	default: return (DLDataType){kDLFloat, 32, 1};
	}
}

static size_t dsize(IrDType t)
{
	return t == IR_I64 ? 8 : t == IR_BOOL ? 1 : 4;
}

static IrDType storage(IrDType t)
{
	return t == IR_I64 || t == IR_I32 || t == IR_BOOL ? t : IR_F32;
}

static double get(const void *p, IrDType t, int64_t i)
{
	switch (storage(t)) {
	case IR_I64: return (double)((const int64_t *)p)[i];
	case IR_I32: return (double)((const int32_t *)p)[i];
	case IR_BOOL: return (double)((const uint8_t *)p)[i];
	default: return (double)((const float *)p)[i];
	}
}

static void put(void *p, IrDType t, int64_t i, double v)
{
	switch (storage(t)) {
	case IR_I64: ((int64_t *)p)[i] = (int64_t)v; break;
	case IR_I32: ((int32_t *)p)[i] = (int32_t)v; break;
	case IR_BOOL: ((uint8_t *)p)[i] = v != 0; break;
	default: ((float *)p)[i] = (float)v; break;
	}
}

typedef struct Params {
	int n;
	const char *name[256];
	IrTensor *t[256];
} Params;

static IrTensor *param_cb(void *user, const IrNode *n)
{
	Params *p = user;
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->name[i], n->sattr) == 0)
			return p->t[i];
	return NULL;
}

static bool shape_of(Case *c, const IrShape *s, const int64_t *vals, int64_t *out)
{
	for (int i = 0; i < s->ndim; i++) {
		out[i] = ir_dim_eval(s->d[i], vals);
		if (out[i] < 0)
			return false;
	}
	return true;
}

static bool run_binding(Case *c, const SlapoApi *api, SlapoSession *s, Params *prm,
                        const int64_t *vals, uint64_t *rng, char *why, size_t whylen)
{
	IrGraph *g = c->g;
	int nin = g->inputs.len, nout = g->outputs.len;
	IrTensor *ti[16] = {0}, *to[16] = {0};
	void *bi[16] = {0}, *bo[16] = {0};
	int64_t shi[16][IR_MAX_DIMS], sho[16][IR_MAX_DIMS];
	DLTensor di[16], dout[16];
	const DLTensor *pi[16];
	DLTensor *po[16];
	bool ok = false;
	if (nin > 16 || nout > 16) {
		snprintf(why, whylen, "too many inputs/outputs");
		return false;
	}
	for (int i = 0; i < nin; i++) {
		const IrNode *x = g->inputs.items[i];
		shape_of(c, &x->shape, vals, shi[i]);
		ti[i] = ir_tensor_new(x->dtype, x->shape.ndim, shi[i]);
		bi[i] = calloc((size_t)(ti[i]->numel + 1), dsize(storage(x->dtype)));
		for (int64_t e = 0; e < ti[i]->numel; e++) {
			double v;
			if (x->dtype == IR_I64 || x->dtype == IR_I32) {
				int64_t hi = c->int_hi[i] ? c->int_hi[i] : 10;
				v = (double)(int64_t)(rng_unit(rng) * (double)hi);
			} else if (x->dtype == IR_BOOL) {
				v = rng_unit(rng) < 0.5;
			} else {
				v = (double)(float)(c->lo + (c->hi - c->lo) * rng_unit(rng));
			}
			ti[i]->data[e] = v;
			put(bi[i], x->dtype, e, v);
		}
		di[i] = (DLTensor){bi[i], {kDLCPU, 0}, x->shape.ndim, dl_of(storage(x->dtype)),
		                   shi[i], NULL, 0};
		pi[i] = &di[i];
	}
	for (int i = 0; i < nout; i++) {
		const IrNode *o = g->outputs.items[i];
		shape_of(c, &o->shape, vals, sho[i]);
		int64_t n = 1;
		for (int k = 0; k < o->shape.ndim; k++)
			n *= sho[i][k];
		size_t bytes = (size_t)(n + 1) * dsize(storage(o->dtype));
		bo[i] = malloc(bytes);
		if (storage(o->dtype) == IR_F32)
			for (int64_t e = 0; e < n; e++)
				((float *)bo[i])[e] = NAN;
		else
			memset(bo[i], 0x5a, bytes);
		dout[i] = (DLTensor){bo[i], {kDLCPU, 0}, o->shape.ndim, dl_of(storage(o->dtype)),
		                     sho[i], NULL, 0};
		po[i] = &dout[i];
	}
	SlapoStatus st = api->session_run(s, pi, nin, po, nout);
	if (c->expect_fail) {
		const SlapoError *e = api->last_error();
		if (st == SLAPO_OK)
			snprintf(why, whylen, "session_run succeeded; expected a failure");
		else if (c->fail_object && strcmp(e->object_name, c->fail_object) != 0)
			snprintf(why, whylen, "failed naming '%s' (%s), expected '%s'", e->object_name,
			         e->message, c->fail_object);
		else
			ok = true;
		goto out;
	}
	if (st != SLAPO_OK) {
		snprintf(why, whylen, "session_run: %s: %s", api->status_name(st),
		         api->last_error()->message);
		goto out;
	}
	IrInterp it;
	memset(&it, 0, sizeof it);
	it.param = param_cb;
	it.param_user = prm;
	int64_t sv[IR_MAX_SYMS];
	for (int i = 0; i < IR_MAX_SYMS; i++)
		sv[i] = vals[i];
	it.sym_values = sv;
	if (!interp_run(&it, g, ti, to)) {
		snprintf(why, whylen, "interpreter: %s", it.error);
		goto out;
	}
	ok = true;
	for (int i = 0; i < nout && ok; i++) {
		const IrNode *o = g->outputs.items[i];
		double worst = 0;
		int64_t at = -1;
		for (int64_t e = 0; e < to[i]->numel; e++) {
			double want = to[i]->data[e], got = get(bo[i], o->dtype, e);
			if (storage(o->dtype) == IR_F32)
				want = (double)(float)want;
			double err;
			if (isnan(want) || isnan(got))
				err = isnan(want) && isnan(got) ? 0 : INFINITY;
			else if (isinf(want) || isinf(got))
				err = want == got ? 0 : INFINITY;
			else
				err = fabs(got - want) / (c->atol + c->rtol * fabs(want));
			if (!(err <= worst)) {
				worst = err;
				at = e;
			}
		}
		if (worst > 1) {
			snprintf(why, whylen, "output %d element %lld: got %.9g, want %.9g (%.3g x tol)",
			         i, (long long)at, get(bo[i], o->dtype, at), to[i]->data[at], worst);
			ok = false;
		}
	}
out:
	for (int i = 0; i < nin; i++) {
		ir_tensor_free(ti[i]);
		free(bi[i]);
	}
	for (int i = 0; i < nout; i++) {
		ir_tensor_free(to[i]);
		free(bo[i]);
	}
	return ok;
}

const SlapoApi *case_compile(Case *c, char *path, size_t pathlen, void **lib, char *why,
                             size_t whylen)
{
	snprintf(path, pathlen, "%s/%s.so", test_tmpdir(), c->name);
	*lib = NULL;
	if (c->diag.nerrors || !c->g->outputs.len) {
		snprintf(why, whylen, "the graph could not be built");
		return NULL;
	}
	CgModel model = {.graph = c->g, .name = c->name, .ties = c->ties, .nties = c->nties};
	CgOptions opt = {.emit = CG_EMIT_SO, .output = path, .cpu = c->cpu};
	if (getenv("CGTEST_DUMP"))
		opt.dump_lower = stderr;
	if (!cg_compile(&model, &opt)) {
		snprintf(why, whylen, "cg_compile failed");
		return NULL;
	}
	*lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!*lib) {
		snprintf(why, whylen, "dlopen: %s", dlerror());
		return NULL;
	}
	SlapoGetApiFn get;
	*(void **)&get = dlsym(*lib, SLAPO_GET_API_SYMBOL);
	const SlapoApi *api = get ? get(SLAPO_ABI_MAJOR) : NULL;
	if (!api)
		snprintf(why, whylen, "no slapo_get_api in %s", path);
	return api;
}

bool case_run(Case *c, const int64_t (*syms)[2], int nbind)
{
	char path[512], why[512] = "";
	bool ok = false;
	void *lib = NULL;
	const SlapoApi *api = NULL;
	SlapoModel *m = NULL;
	SlapoWeights *w = NULL;
	SlapoSession *s = NULL;
	Params prm = {0};
	uint64_t rng = 0x9E3779B97F4A7C15ull;
	for (const char *p = c->name; *p; p++)
		rng = (rng ^ (uint64_t)*p) * 1099511628211ull;
	api = case_compile(c, path, sizeof path, &lib, why, sizeof why);
	if (!api)
		goto out;
	if (api->model_open(&m) || api->weights_create(m, NULL, &w)) {
		snprintf(why, sizeof why, "cannot open the model: %s",
		         api ? api->last_error()->message : "no API");
		goto out;
	}
	for (IrNode *x = c->g->first; x; x = x->next) {
		if (x->op != OP_PARAM || prm.n == 256 || param_cb(&prm, x))
			continue;
		const char *tied = NULL; /* a tied param reads its target's values */
		for (int i = 0; i < c->nties; i++)
			if (strcmp(c->ties[2 * i], x->sattr) == 0)
				tied = c->ties[2 * i + 1];
		if (tied) {
			bool found = false;
			for (int i = 0; i < prm.n && !found; i++)
				if (strcmp(prm.name[i], tied) == 0) {
					prm.name[prm.n] = x->sattr;
					prm.t[prm.n++] = ir_tensor_copy(prm.t[i]);
					found = true;
				}
			if (found)
				continue;
		}
		int64_t sh[IR_MAX_DIMS];
		shape_of(c, &x->shape, NULL, sh);
		IrTensor *t = ir_tensor_new(IR_F32, x->shape.ndim, sh);
		float *f = malloc(sizeof(float) * (size_t)(t->numel + 1));
		for (int64_t e = 0; e < t->numel; e++) {
			t->data[e] = (double)(float)(2 * rng_unit(&rng) - 1);
			f[e] = (float)t->data[e];
		}
		DLTensor d = {f, {kDLCPU, 0}, x->shape.ndim, {kDLFloat, 32, 1}, sh, NULL, 0};
		SlapoStatus st = api->weights_set(w, x->sattr, &d);
		free(f);
		prm.name[prm.n] = x->sattr;
		prm.t[prm.n++] = t;
		if (st) {
			snprintf(why, sizeof why, "weights_set %s: %s", x->sattr,
			         api->last_error()->message);
			goto out;
		}
	}
	if (api->session_create(w, NULL, &s)) {
		snprintf(why, sizeof why, "session_create: %s", api->last_error()->message);
		goto out;
	}
	ok = true;
	for (int b = 0; b < nbind && ok; b++) {
		int64_t vals[IR_MAX_SYMS];
		for (int i = 0; i < IR_MAX_SYMS; i++)
			vals[i] = 1;
		for (int i = 0; i < c->ir.nsyms; i++) {
			if (strcmp(c->ir.sym_names[i], "B") == 0)
				vals[i] = syms[b][0];
			else if (strcmp(c->ir.sym_names[i], "S") == 0)
				vals[i] = syms[b][1];
		}
		char w2[400] = "";
		ok = run_binding(c, api, s, &prm, vals, &rng, w2, sizeof w2);
		if (!ok)
			snprintf(why, sizeof why, "B=%lld S=%lld: %s", (long long)syms[b][0],
			         (long long)syms[b][1], w2);
	}
out:
	if (api) {
		api->session_free(s);
		api->weights_free(w);
		api->model_close(m);
	}
	for (int i = 0; i < prm.n; i++)
		ir_tensor_free(prm.t[i]);
	if (lib)
		dlclose(lib);
	unlink(path);
	printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", c->name, ok ? "" : ": ", ok ? "" : why);
	fflush(stdout);
	return ok;
}
