/* model.c - what the descriptor needs, taken from the evaluator: the
 * model graph (trace_model on the root given to build(), every schedule
 * decision applied), the ties declared with tie(), HuggingFace's
 * base_model_prefix, the expected extras of HF checkpoints, and which
 * parameters a random init sets to ones.
 *
 * Rules (HF conventions, derived from the module tree):
 *   base_prefix  the root's first child's name when the root's class is a
 *                head model: *LMHeadModel, *ForMaskedLM, *For* ("bert")
 *   ignore       "<base>.pooler." when the base model has no pooler,
 *                "cls.seq_relationship." when `cls` has no NSP head (the
 *                tensors a pre-training checkpoint carries that an LM
 *                head model does not use)
 *   ones         every LayerNorm's weight
 */
#include <string.h>

#include "codegen/codegen.h"
#include "ir/ir.h"

typedef struct Ones {
	Eval *ev;
	PtrVec v;
} Ones;

static void visit(void *user, const char *path, const Param *p, const Module *m)
{
	Ones *o = user;
	if (m->builtin == BM_LAYER_NORM && strcmp(p->name, "weight") == 0)
		ptrvec_push(o->ev->arena, &o->v, (void *)arena_strdup(o->ev->arena, path));
}

static bool is_head_model(const char *cls)
{
	size_t n = strlen(cls);
	const char *suf = "LMHeadModel";
	size_t m = strlen(suf);
	return strstr(cls, "For") || (n >= m && strcmp(cls + n - m, suf) == 0);
}

bool cg_model_from_eval(Eval *ev, Module *root, Span sp, CgModel *out)
{
	memset(out, 0, sizeof *out);
	IrGraph *g = trace_model(ev, root, sp);
	if (!g)
		return false;
	/* one entry per input node */
	int w = 0;
	for (int i = 0; i < g->inputs.len; i++) {
		bool dup = false;
		for (int k = 0; k < w; k++)
			dup |= g->inputs.items[k] == g->inputs.items[i];
		if (!dup)
			g->inputs.items[w++] = g->inputs.items[i];
	}
	g->inputs.len = w;
	out->graph = g;
	out->name = root->cls;
	out->ties = (const char *const *)ev->ties.items;
	out->nties = ev->ties.len / 2;

	PtrVec ign = {0};
	if (is_head_model(root->cls) && root->children.len > 0) {
		const Module *base = root->children.items[0];
		out->base_prefix = base->name;
		if (!mod_child(base, "pooler"))
			ptrvec_push(ev->arena, &ign, arena_printf(ev->arena, "%s.pooler.", base->name));
		const Module *cls = mod_child(root, "cls");
		if (cls && !mod_child(cls, "seq_relationship"))
			ptrvec_push(ev->arena, &ign, (void *)"cls.seq_relationship.");
	}
	out->ignore = (const char *const *)ign.items;
	out->nignore = ign.len;

	Ones o = {.ev = ev};
	mod_each_param(ev, root, "", visit, &o);
	out->ones = (const char *const *)o.v.items;
	out->nones = o.v.len;
	return true;
}
