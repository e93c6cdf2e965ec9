/* interp.c - slapoc --interp: run the model of a .slapo file in the
 * double-precision reference interpreter on real weights and inputs
 * (safetensors files), and write its outputs. This is the oracle the
 * compiled libraries and the HuggingFace parity tests are checked
 * against. Parameter names are resolved as HF loads them: the exact
 * name, the legacy LayerNorm gamma/beta names, ties declared in .slapo,
 * and the base-model prefix added or dropped. */
#include "ir/ir.h"
#include "runtime/rt.h"

#include <math.h>
#include <string.h>

typedef struct InterpFiles {
	Eval *ev;
	RtStFile weights;
	char error[512];
	PtrVec made; /* IrTensor* to free */
} InterpFiles;

static double half_to_double(uint16_t h, bool bf16)
{
	if (bf16) {
		uint32_t u = (uint32_t)h << 16;
		float f;
		memcpy(&f, &u, 4);
		return f;
	}
	int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
	double v;
	if (exp == 0)
		v = ldexp(man, -24);
	else if (exp == 31)
		v = man ? NAN : INFINITY;
	else
		v = ldexp(man + 1024, exp - 25);
	return sign ? -v : v;
}

/* A safetensors tensor as doubles; NULL with an error for odd dtypes. */
static IrTensor *to_tensor(const RtStTensor *t, char *err, size_t errlen)
{
	if (t->ndim > IR_MAX_DIMS) {
		snprintf(err, errlen, "'%s' has rank %d (limit %d)", t->name, t->ndim, IR_MAX_DIMS);
		return NULL;
	}
	IrDType dt = IR_F32;
	if (t->dtype.code == kDLInt || t->dtype.code == kDLUInt)
		dt = IR_I64;
	else if (t->dtype.code == kDLBool)
		dt = IR_BOOL;
	IrTensor *x = ir_tensor_new(dt, t->ndim, t->shape);
	const uint8_t *p = t->data;
	const char *n = t->dtype_name;
	for (int64_t i = 0; i < x->numel; i++) {
		double v;
		if (strcmp(n, "F32") == 0) {
			float f;
			memcpy(&f, p + 4 * i, 4);
			v = f;
		} else if (strcmp(n, "F64") == 0) {
			memcpy(&v, p + 8 * i, 8);
		} else if (strcmp(n, "F16") == 0 || strcmp(n, "BF16") == 0) {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			v = half_to_double(h, n[0] == 'B');
		} else if (strcmp(n, "I64") == 0) {
			int64_t q;
			memcpy(&q, p + 8 * i, 8);
			v = (double)q;
		} else if (strcmp(n, "I32") == 0) {
			int32_t q;
			memcpy(&q, p + 4 * i, 4);
			v = q;
		} else if (strcmp(n, "BOOL") == 0 || strcmp(n, "U8") == 0) {
			v = p[i];
		} else {
			snprintf(err, errlen, "'%s' has dtype %s, which the interpreter does not read",
			         t->name, n);
			ir_tensor_free(x);
			return NULL;
		}
		x->data[i] = v;
	}
	return x;
}

/* HF's names for a parameter path, in the order they are tried. */
static const RtStTensor *find_param(InterpFiles *fs, const char *path)
{
	Eval *ev = fs->ev;
	const RtStTensor *t = rt_st_find(&fs->weights, path);
	size_t n = strlen(path);
	if (!t && n > 7 && strcmp(path + n - 7, ".weight") == 0)
		t = rt_st_find(&fs->weights,
		               arena_printf(ev->arena, "%.*s.gamma", (int)(n - 7), path));
	if (!t && n > 5 && strcmp(path + n - 5, ".bias") == 0)
		t = rt_st_find(&fs->weights,
		               arena_printf(ev->arena, "%.*s.beta", (int)(n - 5), path));
	for (int i = 0; !t && i + 1 < ev->ties.len; i += 2)
		if (strcmp(ev->ties.items[i], path) == 0)
			t = find_param(fs, ev->ties.items[i + 1]);
	return t;
}

static IrTensor *param_fn(void *user, const IrNode *n)
{
	InterpFiles *fs = user;
	const RtStTensor *t = find_param(fs, n->sattr);
	if (!t) {
		/* the base model saved alone, or loaded into a head model */
		const char *dot = strchr(n->sattr, '.');
		if (dot)
			t = find_param(fs, dot + 1);
	}
	if (!t) {
		snprintf(fs->error, sizeof fs->error, "parameter '%s' is missing from the weights",
		         n->sattr);
		return NULL;
	}
	IrTensor *x = to_tensor(t, fs->error, sizeof fs->error);
	if (x)
		ptrvec_push(fs->ev->arena, &fs->made, x);
	return x;
}

int interp_files(Eval *ev, const char *weights, const char *inputs, const char *outputs)
{
	Span none = {0};
	Module *root = eval_model_root(ev, "--interp");
	if (!root)
		return 1;
	IrGraph *g = trace_model(ev, root, root->made_at);
	InterpFiles fs = {.ev = ev};
	RtStFile in;
	if (rt_st_open(weights, &fs.weights) != SLAPO_OK) {
		diag_plain(ev->diag, DIAG_ERROR, "--interp: %s", rt_last_error()->message);
		return 1;
	}
	if (rt_st_open(inputs, &in) != SLAPO_OK) {
		diag_plain(ev->diag, DIAG_ERROR, "--interp: %s", rt_last_error()->message);
		rt_st_close(&fs.weights);
		return 1;
	}
	int status = 0;
	int nin = g->inputs.len;
	IrTensor **ins = ARENA_ARRAY(ev->arena, IrTensor *, nin + 1);
	IrTensor **outs = ARENA_ARRAY(ev->arena, IrTensor *, g->outputs.len + 1);
	const IrTensor *first = NULL;
	for (int i = 0; i < nin; i++) {
		IrNode *n = g->inputs.items[i];
		const RtStTensor *t = rt_st_find(&in, n->sattr);
		char err[512] = "";
		if (t) {
			ins[i] = to_tensor(t, err, sizeof err);
			if (!ins[i]) {
				diag_plain(ev->diag, DIAG_ERROR, "--interp: input %s", err);
				status = 1;
				goto out;
			}
			if (!first)
				first = ins[i];
		}
	}
	for (int i = 0; i < nin; i++) {
		IrNode *n = g->inputs.items[i];
		if (ins[i])
			continue;
		bool mask = strcmp(n->sattr, "attention_mask") == 0;
		if ((!mask && strcmp(n->sattr, "token_type_ids") != 0) || !first) {
			diag_plain(ev->diag, DIAG_ERROR, "--interp: input '%s' is missing from %s",
			           n->sattr, inputs);
			status = 1;
			goto out;
		}
		ins[i] = ir_tensor_new(n->dtype, first->ndim, first->shape);
		for (int64_t j = 0; j < ins[i]->numel; j++)
			ins[i]->data[j] = mask;
		fprintf(stderr, "slapoc: note: input '%s' not given: filled with %s\n", n->sattr,
		        mask ? "ones" : "zeros");
	}
	IrInterp it = {.param = param_fn, .param_user = &fs};
	if (!interp_run(&it, g, ins, outs)) {
		diag_plain(ev->diag, DIAG_ERROR, "--interp: %s%s%s", it.error,
		           fs.error[0] ? ": " : "", fs.error);
		status = 1;
		goto out;
	}
	RtStWriteTensor *w = ARENA_ARRAY(ev->arena, RtStWriteTensor, g->outputs.len + 1);
	for (int i = 0; i < g->outputs.len; i++) {
		IrTensor *o = outs[i];
		float *f = ARENA_ARRAY(ev->arena, float, o->numel + 1);
		for (int64_t j = 0; j < o->numel; j++)
			f[j] = (float)o->data[j];
		w[i].name = g->output_names.items[i];
		w[i].dtype = RT_F32;
		w[i].ndim = o->ndim;
		w[i].shape = o->shape;
		w[i].data = f;
	}
	if (rt_st_write(outputs, g->outputs.len, w, 0, NULL) != SLAPO_OK) {
		diag_plain(ev->diag, DIAG_ERROR, "--interp: %s", rt_last_error()->message);
		status = 1;
	}
	for (int i = 0; i < g->outputs.len; i++)
		ir_tensor_free(outs[i]);
out:
	for (int i = 0; i < nin; i++)
		ir_tensor_free(ins[i]);
	for (int i = 0; i < fs.made.len; i++)
		ir_tensor_free(fs.made.items[i]);
	rt_st_close(&in);
	rt_st_close(&fs.weights);
	(void)none;
	return status;
}
