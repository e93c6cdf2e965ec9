/* verify.c - slapoc --verify: runs the model in the reference
 * interpreter before the schedule and after every primitive, on seeded
 * random weights and inputs, and reports how far each primitive moved
 * the outputs. The first primitive out of tolerance is named with its
 * line; Slapo's own Verify checks only the end result. */
#include "ir/ir.h"

#include <math.h>
#include <setjmp.h>
#include <string.h>

typedef struct Verify {
	Module *root;        /* the model under schedule */
	int batch, seq;
	double tol;
	IrTensor **ref;      /* baseline outputs */
	int nref;
	PtrVec cache_paths;  /* parameter values by path, made once */
	PtrVec cache_vals;
	int nprims, failed;
	Arena *arena;
} Verify;

static const int64_t *sym_values(Eval *ev, Verify *v, int64_t *vals)
{
	for (int i = 0; i < ev->ir->nsyms; i++)
		vals[i] = strcmp(ev->ir->sym_names[i], "B") == 0 ? v->batch : v->seq;
	return vals;
}

/* A parameter's fixed value (ir_fixed_param), made once per path. */
static IrTensor *param_value(void *user, const IrNode *n)
{
	void **u = user;
	Eval *ev = u[0];
	Verify *v = u[1];
	for (int i = 0; i < v->cache_paths.len; i++)
		if (strcmp(v->cache_paths.items[i], n->sattr) == 0)
			return v->cache_vals.items[i];
	int64_t vals[IR_MAX_SYMS];
	IrTensor *t = ir_fixed_param(n, sym_values(ev, v, vals));
	if (t) {
		ptrvec_push(v->arena, &v->cache_paths, (void *)n->sattr);
		ptrvec_push(v->arena, &v->cache_vals, t);
	}
	return t;
}

static bool run(Eval *ev, Verify *v, IrTensor ***outs, int *nout, Span sp)
{
	IrGraph *g = trace_model(ev, v->root, sp);
	int64_t vals[IR_MAX_SYMS];
	sym_values(ev, v, vals);
	IrTensor **ins = ARENA_ARRAY(v->arena, IrTensor *, g->inputs.len + 1);
	bool made = true;
	for (int i = 0; i < g->inputs.len; i++)
		made &= (ins[i] = ir_fixed_input(g, g->inputs.items[i], i, vals)) != NULL;
	*nout = g->outputs.len;
	*outs = ARENA_ARRAY(v->arena, IrTensor *, g->outputs.len + 1);
	void *user[2] = {ev, v};
	IrInterp it = {.sym_values = vals, .param = param_value, .param_user = user};
	if (!made)
		snprintf(it.error, sizeof it.error, "an input of batch %d, sequence %d is too large",
		         v->batch, v->seq);
	bool ok = made && interp_run(&it, g, ins, *outs);
	for (int i = 0; i < g->inputs.len; i++)
		ir_tensor_free(ins[i]);
	if (!ok)
		diag_error(ev->diag, sp, "verify: the interpreter failed: %s", it.error);
	return ok;
}

static void compare(Verify *v, IrTensor **outs, int n, double *abs_err, double *rel_err)
{
	*abs_err = *rel_err = 0;
	for (int k = 0; k < n && k < v->nref; k++) {
		double maxref = 0, maxdiff = 0;
		if (outs[k]->numel != v->ref[k]->numel) {
			*abs_err = *rel_err = INFINITY;
			return;
		}
		for (int64_t i = 0; i < outs[k]->numel; i++) {
			double d = fabs(outs[k]->data[i] - v->ref[k]->data[i]);
			if (!(d <= maxdiff))
				maxdiff = d; /* NaN propagates */
			if (fabs(v->ref[k]->data[i]) > maxref)
				maxref = fabs(v->ref[k]->data[i]);
		}
		if (!(maxdiff <= *abs_err))
			*abs_err = maxdiff;
		double rel = maxdiff / (maxref > 1e-300 ? maxref : 1e-300);
		if (!(rel <= *rel_err))
			*rel_err = rel;
	}
}

static void after_primitive(Eval *ev, const char *prim, Span sp, void *user)
{
	Verify *v = user;
	if (!v->root || v->failed)
		return;
	IrTensor **outs;
	int n;
	if (!run(ev, v, &outs, &n, sp)) {
		v->failed = 1;
		diag_bail(ev->diag);
	}
	double a, r;
	compare(v, outs, n, &a, &r);
	for (int i = 0; i < n; i++)
		ir_tensor_free(outs[i]);
	v->nprims++;
	printf("  line %-4d %-12s max abs %.3e  max rel %.3e  %s\n", sp.first_line, prim, a, r,
	       r <= v->tol ? "ok" : "FAIL");
	if (!(r <= v->tol)) {
		v->failed = 1;
		diag_error(ev->diag, sp, "verify: %s changed the model's outputs: max relative "
		           "error %.3e exceeds the tolerance %.1e", prim, r, v->tol);
		diag_bail(ev->diag);
	}
}

/* create_schedule is where the baseline is taken. */
static void on_schedule(Eval *ev, Verify *v, Span sp)
{
	Module *root = ev->schedules.items[ev->schedules.len - 1];
	if (v->root == root)
		return;
	v->root = root;
	if (!run(ev, v, &v->ref, &v->nref, sp))
		diag_bail(ev->diag);
	printf("verify: %s, batch %d, sequence %d, tolerance %.1e\n", root->cls, v->batch,
	       v->seq, v->tol);
	printf("  line %-4d %-12s %d output%s\n", sp.first_line, "baseline", v->nref,
	       v->nref == 1 ? "" : "s");
}

static void hook(Eval *ev, const char *prim, Span sp, void *user)
{
	Verify *v = user;
	if (strcmp(prim, "create_schedule") == 0)
		on_schedule(ev, v, sp);
	else
		after_primitive(ev, prim, sp, user);
}

static void free_tensors(Verify *v)
{
	for (int i = 0; i < v->nref; i++)
		ir_tensor_free(v->ref[i]);
	for (int i = 0; i < v->cache_vals.len; i++)
		ir_tensor_free(v->cache_vals.items[i]);
	v->nref = 0;
	v->cache_vals.len = 0;
}

int verify_run(Eval *ev, const Ast *prog, int batch, int seq, double tol)
{
	Verify v = {.batch = batch, .seq = seq, .tol = tol, .arena = ev->arena};
	ev->after_primitive = hook;
	ev->after_user = &v;
	FILE *saved = ev->out;
	ev->out = fopen("/dev/null", "w");
	if (!ev->out)
		ev->out = saved;
	/* an error (a primitive out of tolerance, a failed trace) unwinds to
	 * here first, so the interpreter's tensors are freed on every path */
	jmp_buf *outer = ev->diag->bail, here;
	volatile int failed = 0;
	ev->diag->bail = &here;
	if (setjmp(here) == 0) {
		eval_program(ev, prog);
		if (!v.root && ev->schedules.len)
			on_schedule(ev, &v, prog->span);
	} else {
		failed = 1;
	}
	ev->diag->bail = outer;
	if (ev->out != saved)
		fclose(ev->out);
	ev->out = saved;
	if (failed || !v.root) {
		if (!failed)
			diag_plain(ev->diag, DIAG_ERROR, "verify: the program creates no schedule");
		free_tensors(&v);
		return 1;
	}
	printf("verify: %d primitive%s checked, all within tolerance\n", v.nprims,
	       v.nprims == 1 ? "" : "s");
	free_tensors(&v);
	return 0;
}
