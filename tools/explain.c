/* explain.c - slapoc --explain: what the schedule did, and what the
 * model costs.
 *
 * First, one line per primitive (recorded by ir/sched.c while the script
 * runs): what it matched and changed, with its source line. Then one row
 * per node of the final graph that does work: fused kernels, library
 * calls (linear, matmul) and other ops, each with its FLOPs and the bytes
 * it reads and writes (symbolic in B and S, and evaluated at the example
 * shape), and the .slapo line that made it: the `fuse` call for a fused
 * kernel, the forward line for other ops. View ops cost nothing and are
 * counted, not listed. */
#include "ir/ir.h"

#include <string.h>

enum { POLY_MAX = 16 };

/* A sum of monomials (FLOPs and bytes are sums of unlike terms). */
typedef struct Poly {
	IrDim t[POLY_MAX];
	int n;
} Poly;

static void poly_add(Poly *p, IrDim d)
{
	if (d.coef == 0)
		return;
	for (int i = 0; i < p->n; i++) {
		IrDim r;
		if (ir_dim_add(p->t[i], d, &r)) {
			p->t[i] = r;
			return;
		}
	}
	if (p->n < POLY_MAX)
		p->t[p->n++] = d;
}

static void poly_addp(Poly *p, const Poly *q)
{
	for (int i = 0; i < q->n; i++)
		poly_add(p, q->t[i]);
}

static double poly_eval(const Poly *p, const int64_t *syms)
{
	double v = 0;
	for (int i = 0; i < p->n; i++)
		v += (double)ir_dim_eval(p->t[i], syms);
	return v;
}

static void poly_print(StrBuf *b, const IrCtx *c, const Poly *p)
{
	if (p->n == 0)
		sb_puts(b, "0");
	for (int i = 0; i < p->n; i++) {
		if (i)
			sb_puts(b, " + ");
		ir_dim_print(b, c, p->t[i]);
	}
}

static int dtype_bytes(IrDType t)
{
	switch (t) {
	case IR_F64:
	case IR_I64:
		return 8;
	case IR_F16:
	case IR_BF16:
		return 2;
	case IR_BOOL:
		return 1;
	default:
		return 4;
	}
}

static IrDim scaled(IrDim d, int64_t k)
{
	return ir_dim_mul(d, ir_dim_const(k));
}

/* FLOPs of one node (bodies of fused kernels summed). */
static void node_flops(const IrNode *n, Poly *f)
{
	IrDim out = ir_shape_numel(&n->shape);
	const IrShape *a = n->nin ? &n->in[0]->shape : NULL;
	switch (n->op) {
	case OP_LINEAR:
	case OP_MATMUL:
		if (a && a->ndim)
			poly_add(f, scaled(ir_dim_mul(out, a->d[a->ndim - 1]), 2));
		if (n->op == OP_LINEAR && n->nin == 3)
			poly_add(f, out);
		break;
	case OP_FUSED:
		for (const IrNode *x = n->sub->first; x; x = x->next)
			if (!(ir_ops[x->op].flags & OPF_SOURCE))
				node_flops(x, f);
		break;
	case OP_SOFTMAX:
		poly_add(f, scaled(out, 5));
		break;
	case OP_LAYER_NORM:
		poly_add(f, scaled(out, 8));
		break;
	case OP_GELU:
	case OP_GELU_TANH:
	case OP_ERF:
	case OP_TANH:
	case OP_EXP:
		poly_add(f, scaled(out, 8)); /* a polynomial per element, roughly */
		break;
	default:
		if (ir_ops[n->op].flags & (OPF_ELEMWISE | OPF_REDUCE))
			poly_add(f, a && ir_ops[n->op].flags & OPF_REDUCE ? ir_shape_numel(a) : out);
		break;
	}
}

static void node_bytes(const IrNode *n, Poly *b)
{
	for (int i = 0; i < n->nin; i++) {
		bool seen = false;
		for (int j = 0; j < i; j++)
			seen |= n->in[j] == n->in[i];
		if (!seen && n->in[i]->op != OP_CONST)
			poly_add(b, scaled(ir_shape_numel(&n->in[i]->shape), dtype_bytes(n->in[i]->dtype)));
	}
	poly_add(b, scaled(ir_shape_numel(&n->shape), dtype_bytes(n->dtype)));
}

static const char *kind_of(const IrNode *n)
{
	if (n->op == OP_FUSED)
		return "kernel";
	if (ir_ops[n->op].flags & OPF_LIBCALL)
		return "BLAS";
	return "op";
}

static void body_ops(StrBuf *b, const IrNode *n)
{
	if (n->op != OP_FUSED) {
		sb_puts(b, ir_ops[n->op].name);
		return;
	}
	bool first = true;
	for (const IrNode *x = n->sub->first; x; x = x->next)
		if (!(ir_ops[x->op].flags & OPF_SOURCE)) {
			sb_printf(b, "%s%s", first ? "" : "+", ir_ops[x->op].name);
			first = false;
		}
}

int explain_model(Eval *ev, int batch, int seq)
{
	printf("schedule:\n%s", ev->explain && ev->explain->len ? ev->explain->data
	                                                         : "  (no primitive was applied)\n");
	Module *root = eval_model_root(ev, "--explain");
	if (!root)
		return 1;
	IrGraph *g = trace_model(ev, root, root->made_at);
	int64_t syms[IR_MAX_SYMS];
	for (int i = 0; i < ev->ir->nsyms; i++)
		syms[i] = strcmp(ev->ir->sym_names[i], "B") == 0 ? batch : seq;
	printf("\nkernels of %s (FLOPs and bytes symbolic, then at B=%d, S=%d):\n", root->cls,
	       batch, seq);
	Poly tf = {0}, tb = {0};
	int views = 0, nk = 0;
	for (const IrNode *n = g->first; n; n = n->next) {
		if (ir_ops[n->op].flags & OPF_SOURCE)
			continue;
		if (ir_ops[n->op].flags & OPF_VIEW && n->op != OP_CAT) {
			views++;
			continue;
		}
		Poly f = {0}, b = {0};
		node_flops(n, &f);
		node_bytes(n, &b);
		poly_addp(&tf, &f);
		poly_addp(&tb, &b);
		StrBuf line = {0};
		sb_printf(&line, "  %-6s %-22s ", kind_of(n), n->name);
		StrBuf ops = {0};
		body_ops(&ops, n);
		sb_printf(&line, "%-18s FLOPs ", ops.data);
		poly_print(&line, ev->ir, &f);
		sb_printf(&line, " = %.3g, bytes ", poly_eval(&f, syms));
		poly_print(&line, ev->ir, &b);
		sb_printf(&line, " = %.3g, line %d", poly_eval(&b, syms), n->span.first_line);
		if (n->span.file && strcmp(n->span.file->path, g->first ? root->made_at.file->path : "") != 0)
			sb_printf(&line, " of %s", n->span.file->path);
		puts(line.data);
		sb_free(&line);
		sb_free(&ops);
		nk++;
	}
	StrBuf t = {0};
	sb_puts(&t, "total: ");
	poly_print(&t, ev->ir, &tf);
	sb_printf(&t, " FLOPs = %.4g, ", poly_eval(&tf, syms));
	poly_print(&t, ev->ir, &tb);
	sb_printf(&t, " bytes = %.4g, in %d nodes (%d view ops cost nothing)", poly_eval(&tb, syms),
	          nk, views);
	puts(t.data);
	sb_free(&t);
	return 0;
}
