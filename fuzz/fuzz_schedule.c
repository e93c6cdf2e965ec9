/* fuzz_schedule.c - structure-aware differential fuzzing of schedules.
 *
 * The input bytes are decoded into a small model (a 2-layer tiny BERT
 * from lang/models/bert.slapo in a few variants, or the MLP `Net` of the
 * schedule tests) and a sequence of up to MAX_STEPS schedule primitives:
 * decompose, trace (with and without flatten and leaves), find and fuse
 * of a few patterns, replace by an equivalent module (a built-in one by
 * a new one equal to it), replace of a matched subgraph by an equivalent
 * module, checkpoint, annotate, printing, regex find. The generator keeps
 * a rough model of the schedule's state so that most steps are valid, and
 * picks freely otherwise. The .slapo text is then run through the
 * evaluator with a --verify-style hook (tools/verify.c's approach): the
 * whole model is traced and runs in the reference interpreter when
 * create_schedule is called and after every primitive, on parameters
 * fixed per path and inputs fixed per position. (A graph already run
 * against the same reference is not run again: see "what was run before".)
 *
 * Findings (the target aborts, printing the program):
 *   - a primitive changes the outputs by more than TOLERANCE (relative);
 *   - the model no longer traces or runs after a primitive that succeeded;
 *   - an "internal error" diagnostic;
 *   - a fuse that succeeded but whose kernel is not in the final model
 *     (silently ignored), unless a later replace of the module or an
 *     ancestor removed it;
 *   - the generated program does not parse (a bug of this generator);
 *   - any crash, sanitizer report or leak.
 * A clean compile error (an invalid sequence) is fine.
 *
 * `fuzz_replay_schedule -v FILE` prints the program an input decodes to;
 * an input that starts with "# fuzz_schedule program" is run as .slapo
 * text instead of being decoded (how findings are kept as regressions).
 */
#include <regex.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "model.h"

enum {
	MAX_STEPS = 16,
	MAX_NODES = 160,
	N_VARIANTS = 8,
};

#define TOLERANCE 1e-9

/* ---- the models ------------------------------------------------------ */

static const char mlp_src[] =
        "module MLP(d) {\n"
        "    fc1 = Linear(d, 4 * d)\n"
        "    act = GELUActivation()\n"
        "    fc2 = Linear(4 * d, d)\n"
        "    forward(x: f32[B, S, d]) {\n"
        "        return fc2(act(fc1(x)))\n"
        "    }\n"
        "}\n"
        "module Block(d) {\n"
        "    mlp = MLP(d)\n"
        "    norm = LayerNorm(d, eps=1e-6)\n"
        "    forward(x: f32[B, S, d]) {\n"
        "        return norm(x + mlp(x))\n"
        "    }\n"
        "}\n"
        "module Net(d, n) {\n"
        "    blocks = ModuleList([Block(d) for i in 0 .. n])\n"
        "    head = Linear(d, 3)\n"
        "    forward(x: f32[B, S, d]) {\n"
        "        for b in blocks {\n"
        "            x = b(x)\n"
        "        }\n"
        "        return head(x)\n"
        "    }\n"
        "}\n"
        "module MLPAlt(d) {\n"
        "    fc1 = Linear(d, 4 * d)\n"
        "    act = GELUActivation()\n"
        "    fc2 = Linear(4 * d, d)\n"
        "    forward(x: f32[B, S, d]) {\n"
        "        h = act(fc1(x * 1.0))\n"
        "        return fc2(h)\n"
        "    }\n"
        "}\n"
        "module BlockAlt(d) {\n"
        "    mlp = MLP(d)\n"
        "    norm = LayerNorm(d, eps=1e-6)\n"
        "    forward(x: f32[B, S, d]) {\n"
        "        return norm(mlp(x) + x)\n"
        "    }\n"
        "}\n";

/* Modules equivalent to the zoo's BERT modules: the same children and
 * parameter names, forward written differently (reordered commutative
 * operands, a scale moved before a matmul, permute instead of transpose). */
static const char bert_alt_src[] =
        "module BertSelfAttentionAlt(config) {\n"
        "    num_attention_heads = config.num_attention_heads\n"
        "    attention_head_size = config.hidden_size // config.num_attention_heads\n"
        "    all_head_size = num_attention_heads * attention_head_size\n"
        "    query = Linear(config.hidden_size, all_head_size)\n"
        "    key = Linear(config.hidden_size, all_head_size)\n"
        "    value = Linear(config.hidden_size, all_head_size)\n"
        "    dropout = Dropout(config.attention_probs_dropout_prob)\n"
        "    forward(hidden_states, attention_mask) {\n"
        "        b = hidden_states.shape[0]\n"
        "        s = hidden_states.shape[1]\n"
        "        q = query(hidden_states).view(b, s, num_attention_heads, attention_head_size).permute(0, 2, 1, 3)\n"
        "        k = key(hidden_states).view(b, s, num_attention_heads, attention_head_size).permute(0, 2, 3, 1)\n"
        "        v = value(hidden_states).view(b, s, num_attention_heads, attention_head_size).transpose(1, 2)\n"
        "        scores = attention_mask + matmul(q / sqrt(attention_head_size), k)\n"
        "        probs = dropout(softmax(scores, dim=-1))\n"
        "        return matmul(probs, v).transpose(1, 2).reshape(b, s, all_head_size)\n"
        "    }\n"
        "}\n"
        "module BertSelfOutputAlt(config) {\n"
        "    dense = Linear(config.hidden_size, config.hidden_size)\n"
        "    LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)\n"
        "    dropout = Dropout(config.hidden_dropout_prob)\n"
        "    forward(hidden_states, input_tensor) {\n"
        "        h = dense(hidden_states)\n"
        "        return LayerNorm(input_tensor + dropout(h))\n"
        "    }\n"
        "}\n"
        "module BertOutputAlt(config) {\n"
        "    dense = Linear(config.intermediate_size, config.hidden_size)\n"
        "    LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)\n"
        "    dropout = Dropout(config.hidden_dropout_prob)\n"
        "    forward(hidden_states, input_tensor) {\n"
        "        return LayerNorm(input_tensor + dropout(dense(hidden_states)))\n"
        "    }\n"
        "}\n"
        "module BertIntermediateAlt(config) {\n"
        "    dense = Linear(config.hidden_size, config.intermediate_size)\n"
        "    intermediate_act_fn = act_fn(config.hidden_act)\n"
        "    forward(hidden_states) {\n"
        "        h = dense(hidden_states * 1.0)\n"
        "        return intermediate_act_fn(h)\n"
        "    }\n"
        "}\n"
        "module BertAttentionAlt(config) {\n"
        "    self = BertSelfAttention(config)\n"
        "    output = BertSelfOutput(config)\n"
        "    forward(hidden_states, attention_mask) {\n"
        "        s = self(hidden_states, attention_mask)\n"
        "        return output(s, hidden_states)\n"
        "    }\n"
        "}\n"
        "module BertLayerAlt(config) {\n"
        "    attention = BertAttention(config)\n"
        "    intermediate = BertIntermediate(config)\n"
        "    output = BertOutput(config)\n"
        "    forward(hidden_states, attention_mask) {\n"
        "        a = attention(hidden_states, attention_mask)\n"
        "        i = intermediate(a)\n"
        "        return output(i, a)\n"
        "    }\n"
        "}\n"
        "module BertEmbeddingsAlt(config) {\n"
        "    word_embeddings = Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)\n"
        "    position_embeddings = Embedding(config.max_position_embeddings, config.hidden_size)\n"
        "    token_type_embeddings = Embedding(config.type_vocab_size, config.hidden_size)\n"
        "    LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)\n"
        "    dropout = Dropout(config.hidden_dropout_prob)\n"
        "    forward(input_ids: i64[B, S], token_type_ids: i64[B, S]) {\n"
        "        position_ids = arange(input_ids.shape[1]).unsqueeze(0)\n"
        "        e = token_type_embeddings(token_type_ids) + word_embeddings(input_ids)\n"
        "        e = position_embeddings(position_ids) + e\n"
        "        return dropout(LayerNorm(e))\n"
        "    }\n"
        "}\n"
        "module BertPredictionHeadTransformAlt(config) {\n"
        "    dense = Linear(config.hidden_size, config.hidden_size)\n"
        "    transform_act_fn = act_fn(config.hidden_act)\n"
        "    LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)\n"
        "    forward(hidden_states) {\n"
        "        h = transform_act_fn(dense(hidden_states))\n"
        "        return LayerNorm(h)\n"
        "    }\n"
        "}\n";

/* Patterns, and parameter-free modules equivalent to some of them (for
 * replace(module, subgraph), which binds the subgraph's external inputs
 * in order of first use: docs/schedule.md). */
static const char pattern_src[] =
        "pattern bias_gelu(x, bias) { return gelu(x + bias) }\n"
        "pattern scale_mask_softmax(s, d, m) { return softmax(s / d + m, dim=-1) }\n"
        "pattern qk(q, k) { return matmul(q, k.transpose(-1, -2)) }\n"
        "pattern residual_norm(x, y, w, b) { return layer_norm(x + y, w, b) }\n"
        "pattern bias_residual_norm(x, b, r, w, beta) { return layer_norm(dropout(x + b) + r, w, beta) }\n"
        "pattern gelu1(x) { return gelu(x) }\n"
        "pattern softmax1(x) { return softmax(x, dim=-1) }\n"
        "pattern linear_gelu(x, w, b) { return gelu(linear(x, w, b)) }\n"
        "module SMS() {\n"
        "    forward(s, d, m) { return softmax(s / d + m, dim=-1) }\n"
        "}\n"
        "module QK() {\n"
        "    forward(k, q) { return matmul(q, k.transpose(-1, -2)) }\n"
        "}\n"
        "module Gelu1() {\n"
        "    forward(x) { return gelu(x) }\n"
        "}\n"
        "module Softmax1() {\n"
        "    forward(x) { return softmax(x, dim=-1) }\n"
        "}\n";

static const char *const patterns[] = {"bias_gelu", "scale_mask_softmax", "qk", "residual_norm",
                                       "bias_residual_norm", "gelu1", "softmax1", "linear_gelu"};
#define N_PATTERNS (int)(sizeof patterns / sizeof patterns[0])

/* Patterns with an equivalent parameter-free module. */
static const char *const sub_patterns[][2] = {
        {"scale_mask_softmax", "SMS()"}, {"qk", "QK()"}, {"gelu1", "Gelu1()"},
        {"softmax1", "Softmax1()"}};
#define N_SUB (int)(sizeof sub_patterns / sizeof sub_patterns[0])

static const char *const regexes[] = {"dense$", "(query|key|value)$", "fc[12]$", "layer[.]0",
                                      "intermediate", "[.]mlp$", "^cls", "("};
#define N_REGEXES (int)(sizeof regexes / sizeof regexes[0])

/* Classes with an equivalent module: class, constructor of the other one
 * (%s: the constructor argument). BERT's self attention cycles through
 * three: the model's, the Alt, and the zoo's FlashSelfAttention (its
 * scaled_dot_product_attention traces a fused kernel node of its own). */
static const char *const alts[][2] = {
        {"BertSelfAttention", "BertSelfAttentionAlt(%s)"},
        {"BertSelfAttentionAlt", "FlashSelfAttention(%s)"},
        {"FlashSelfAttention", "BertSelfAttention(%s)"},
        {"BertSelfOutput", "BertSelfOutputAlt(%s)"},
        {"BertSelfOutputAlt", "BertSelfOutput(%s)"},
        {"BertOutput", "BertOutputAlt(%s)"},
        {"BertOutputAlt", "BertOutput(%s)"},
        {"BertIntermediate", "BertIntermediateAlt(%s)"},
        {"BertIntermediateAlt", "BertIntermediate(%s)"},
        {"BertAttention", "BertAttentionAlt(%s)"},
        {"BertAttentionAlt", "BertAttention(%s)"},
        {"BertLayer", "BertLayerAlt(%s)"},
        {"BertLayerAlt", "BertLayer(%s)"},
        {"BertEmbeddings", "BertEmbeddingsAlt(%s)"},
        {"BertEmbeddingsAlt", "BertEmbeddings(%s)"},
        {"BertPredictionHeadTransform", "BertPredictionHeadTransformAlt(%s)"},
        {"BertPredictionHeadTransformAlt", "BertPredictionHeadTransform(%s)"},
        {"MLP", "MLPAlt(%s)"},
        {"MLPAlt", "MLP(%s)"},
        {"Block", "BlockAlt(%s)"},
        {"BlockAlt", "Block(%s)"},
};
#define N_ALTS (int)(sizeof alts / sizeof alts[0])

/* One module of the model's tree, as the generator tracks it. */
typedef struct TNode {
	const char *path; /* "" for the root */
	const char *cls;  /* class now (after replaces) */
	int parent;       /* index, -1 for the root */
	bool linear;      /* a Linear (not yet decomposed) */
	bool builtin;     /* a built-in module: cannot be traced on its own */
	bool has_weight;
	bool traced, flattened;
	const char *same;  /* a built-in module: a new instance equal to it, or NULL */
} TNode;

/* A model variant: its program header and its tree (made once, by
 * running the header). */
typedef struct Variant {
	bool ready;
	char *header;     /* malloc'd */
	const char *ctor_arg; /* "config" or the MLP width */
	TNode nodes[MAX_NODES];
	int n;
	char *strings;    /* malloc'd block holding the paths and classes */
	/* the header parsed once (parsing it for every input was a sixth of
	 * the time): what it imports, then itself without the import */
	Arena arena;      /* holds both syntax trees, for the whole process */
	Ast *lib;         /* lang/models/bert.slapo, or NULL */
	Ast *head;
	int lines;        /* lines of the header */
} Variant;

static Variant variants[N_VARIANTS];

static void header_text(int v, StrBuf *b)
{
	static const char *const act[] = {"gelu", "gelu_new", "relu", "gelu", "gelu"};
	static const int net[][2] = {{4, 1}, {4, 2}, {8, 3}};
	if (v < 5) {
		sb_puts(b, "import \"models/bert.slapo\"\n");
		sb_printf(b, "config = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=2, "
		             "num_attention_heads=2, intermediate_size=12, max_position_embeddings=16, "
		             "hidden_act=\"%s\", is_decoder=%s)\n",
		          act[v], v == 2 || v == 4 ? "true" : "false");
		sb_puts(b, bert_alt_src);
		sb_puts(b, pattern_src);
		sb_printf(b, "model = %s(config)\n", v < 3 ? "BertLMHeadModel" : "BertModel");
	} else {
		sb_puts(b, mlp_src);
		sb_puts(b, pattern_src);
		sb_printf(b, "model = Net(%d, %d)\n", net[v - 5][0], net[v - 5][1]);
	}
	sb_puts(b, "sch = create_schedule(model)\n");
}

/* A constructor call making a new built-in module equal to m (the
 * parameters are valued by path, so the model's outputs stay), or "". */
static void same_builtin(const Module *m, char *buf, size_t size)
{
	const char *cls = mod_builtin_name(m->builtin);
	buf[0] = 0;
	switch (m->builtin) {
	case BM_LINEAR:
	case BM_LINEAR_SEP_BIAS:
		snprintf(buf, size, "Linear(%lld, %lld, bias=%s)",
		         (long long)m->in_features, (long long)m->out_features,
		         m->bias ? "true" : "false");
		break;
	case BM_LAYER_NORM:
		if (m->bias)
			snprintf(buf, size, "LayerNorm(%lld, eps=%.17g)",
			         (long long)m->in_features, m->eps);
		break;
	case BM_EMBEDDING:
		snprintf(buf, size, "Embedding(%lld, %lld)", (long long)m->num_embeddings,
		         (long long)m->out_features);
		break;
	case BM_DROPOUT:
		snprintf(buf, size, "Dropout(%.17g)", m->p);
		break;
	case BM_SOFTMAX:
		snprintf(buf, size, "Softmax(dim=%lld)", (long long)m->softmax_dim);
		break;
	case BM_GELU:
	case BM_NEW_GELU:
	case BM_RELU:
	case BM_TANH:
	case BM_IDENTITY:
		snprintf(buf, size, "%s()", cls);
		break;
	default:
		break;
	}
}

static void walk(Variant *var, Eval *ev, Module *m, int parent, StrBuf *strings,
                 size_t *offs)
{
	if (var->n >= MAX_NODES)
		return;
	int i = var->n++;
	char same[128];
	same_builtin(m, same, sizeof same);
	const char *path = mod_path(ev, m);
	offs[3 * i] = strings->len;
	sb_putn(strings, path, strlen(path) + 1);
	offs[3 * i + 1] = strings->len;
	sb_putn(strings, m->cls, strlen(m->cls) + 1);
	offs[3 * i + 2] = strings->len;
	sb_putn(strings, same, strlen(same) + 1);
	var->nodes[i].parent = parent;
	var->nodes[i].linear = m->builtin == BM_LINEAR;
	var->nodes[i].builtin = m->builtin != BM_NONE;
	var->nodes[i].has_weight = mod_param(m, "weight") != NULL;
	for (int k = 0; k < m->children.len; k++)
		walk(var, ev, m->children.items[k], i, strings, offs);
}

static void die(const char *why, const char *program, const char *diag)
{
	fprintf(stderr, "fuzz_schedule: %s\n", why);
	if (diag && *diag)
		fprintf(stderr, "---- diagnostics ----\n%s", diag);
	if (program)
		fprintf(stderr, "---- program ----\n%s---- end ----\n", program);
	abort();
}

/* Evaluate a variant's header (the model and its schedule `sch`) from
 * its parsed trees, as the import and the header text would. */
static void eval_header(Eval *ev, const Variant *var)
{
	if (var->lib)
		eval_program(ev, var->lib);
	eval_program(ev, var->head);
}

static Variant *variant(int v)
{
	Variant *var = &variants[v];
	if (var->ready)
		return var;
	StrBuf b = {0};
	header_text(v, &b);
	var->header = b.data;
	var->ctor_arg = v < 5 ? "config" : v == 7 ? "8" : "4";
	Arena arena = {0};
	Diag diag;
	char *dbuf = NULL;
	size_t dlen = 0;
	FILE *dout = open_memstream(&dbuf, &dlen);
	diag_init(&diag, dout, &var->arena);
	jmp_buf bail;
	diag.bail = &bail;
	if (setjmp(bail)) {
		fflush(dout);
		die("the model header does not run", var->header, dbuf);
	}
	/* the import, parsed here; in the header's text it becomes spaces */
	const char *imp = "import \"models/bert.slapo\"";
	char *text = arena_strdup(&var->arena, var->header);
	if (strncmp(text, imp, strlen(imp)) == 0) {
		const char *path = arena_printf(&var->arena, "%s/models/bert.slapo",
		                                fuzz_lang_dir());
		Span none = {0};
		SrcFile *lib = diag_load(&diag, path, none);
		if (!lib)
			diag_bail(&diag);
		var->lib = parse_file(&var->arena, &diag, lib);
		if (!var->lib || diag.nerrors)
			diag_bail(&diag);
		memset(text, ' ', strlen(imp));
	}
	for (const char *p = text; *p; p++)
		var->lines += *p == '\n';
	SrcFile *src = src_from_string(&var->arena, "/nonexistent-fuzz-dir/schedule.slapo",
	                               text, strlen(text));
	var->head = parse_file(&var->arena, &diag, src);
	if (!var->head || diag.nerrors)
		diag_bail(&diag);
	IrCtx *ir = ARENA_NEW(&arena, IrCtx);
	ir_ctx_init(ir, &arena, &diag);
	Eval *ev = ARENA_NEW(&arena, Eval);
	eval_init(ev, &arena, &diag, ir, fuzz_devnull());
	ptrvec_push(&arena, &ev->import_dirs, (void *)fuzz_lang_dir());
	eval_header(ev, var);
	StrBuf strings = {0};
	size_t offs[3 * MAX_NODES];
	walk(var, ev, ev->schedules.items[0], -1, &strings, offs);
	var->strings = strings.data;
	for (int i = 0; i < var->n; i++) {
		var->nodes[i].path = var->strings + offs[3 * i];
		var->nodes[i].cls = var->strings + offs[3 * i + 1];
		const char *same = var->strings + offs[3 * i + 2];
		var->nodes[i].same = *same ? same : NULL;
	}
	fclose(dout);
	free(dbuf);
	arena_free(&arena);
	var->ready = true;
	return var;
}

/* ---- decoding bytes into a program ----------------------------------- */

typedef enum {
	S_DECOMPOSE,
	S_TRACE,
	S_FUSE,
	S_FIND,
	S_REPLACE,
	S_REPLACE_SUB,
	S_CHECKPOINT,
	S_ANNOTATE,
	S_PRINT,
	S_REGEX,
	S_TRACE_ROOT,
	S_COUNT
} StepKind;

/* A primitive whose effect must show in the final model (a fuse, a
 * subgraph replace), or one that may legitimately remove such effects
 * from the modules below it. */
typedef enum {
	E_FUSE,          /* kernel NAME_i must be in the final model */
	E_REPLACE_SUB,   /* call NAME_i must be in the final model */
	E_UNDO_ALL,      /* replace(module): a new module, earlier work below is gone */
	E_UNDO_INLINE,   /* trace(flatten=true): calls of modules below are inlined */
} ExpectKind;

typedef struct Expect {
	ExpectKind kind;
	int line;         /* line of the primitive call */
	const char *path; /* module it ran on (generator's view) */
	char name[16];    /* kernel / child name prefix: "K3_", "R5_" */
	bool ran;         /* the hook saw it succeed */
} Expect;

typedef struct Gen {
	const uint8_t *data;
	size_t size, pos;
	Variant *var;
	TNode nodes[MAX_NODES];
	StrBuf text;
	int line; /* lines in text so far */
	int batch, seq;
	Expect expect[MAX_STEPS * 2];
	int nexpect;
	bool text_mode; /* the input was a program: no generator bugs to catch */
} Gen;

/* The next byte mod n, or -1 at the end of the input. */
static int take(Gen *g, int n)
{
	if (g->pos >= g->size)
		return -1;
	return g->data[g->pos++] % n;
}

static int take0(Gen *g, int n)
{
	int r = take(g, n);
	return r < 0 ? 0 : r;
}

static void emit(Gen *g, const char *fmt, ...) SUP_PRINTF(2, 3);
static void emit(Gen *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_vprintf(&g->text, fmt, ap);
	va_end(ap);
	sb_putc(&g->text, '\n');
	g->line++;
}

static bool is_ancestor_or_self(const Gen *g, int a, int i)
{
	for (; i >= 0; i = g->nodes[i].parent)
		if (i == a)
			return true;
	return false;
}

static bool path_under(const char *p, const char *anc)
{
	size_t n = strlen(anc);
	return n == 0 || (strncmp(p, anc, n) == 0 && (p[n] == 0 || p[n] == '.'));
}

/* Whether i or an ancestor is traced. */
static bool in_traced(const Gen *g, int i)
{
	for (; i >= 0; i = g->nodes[i].parent)
		if (g->nodes[i].traced)
			return true;
	return false;
}

/* Whether an ancestor (not i) is traced with flatten: i cannot be indexed. */
static bool under_flattened(const Gen *g, int i)
{
	for (i = g->nodes[i].parent; i >= 0; i = g->nodes[i].parent)
		if (g->nodes[i].traced && g->nodes[i].flattened)
			return true;
	return false;
}

static const char *alt_of(const char *cls)
{
	for (int i = 0; i < N_ALTS; i++)
		if (strcmp(alts[i][0], cls) == 0)
			return alts[i][1];
	return NULL;
}

/* Whether node i's graph was copied into the graph of an ancestor traced
 * after it, so that sched.c refuses to rewrite it (fuse, replace of a
 * subgraph): a traced module keeps as calls only its direct children (none
 * when flattened), and the items of a ModuleList are not direct children
 * of the module that iterates it. Ignores leaves=. */
static bool graph_copied(const Gen *g, int i)
{
	for (int c = i; c > 0; c = g->nodes[c].parent) {
		const TNode *a = &g->nodes[g->nodes[c].parent];
		bool list = strcmp(g->nodes[c].cls, "ModuleList") == 0;
		if (a->traced && (a->flattened || list))
			return true;
	}
	return false;
}

typedef bool (*Filter)(const Gen *g, int i);

static bool f_decompose(const Gen *g, int i)
{
	return g->nodes[i].linear && !in_traced(g, i) && !under_flattened(g, i);
}
static bool f_trace(const Gen *g, int i)
{
	return !g->nodes[i].builtin && !in_traced(g, i) && !under_flattened(g, i);
}
static bool f_traced(const Gen *g, int i)
{
	return g->nodes[i].traced && !under_flattened(g, i) && !graph_copied(g, i);
}
static bool f_replace(const Gen *g, int i)
{
	return i > 0 && (alt_of(g->nodes[i].cls) || g->nodes[i].same) &&
	       !in_traced(g, g->nodes[i].parent) && !under_flattened(g, i);
}
/* Traced, or can be traced now (ensure_traced will). */
static bool f_graph(const Gen *g, int i)
{
	return f_traced(g, i) || f_trace(g, i);
}
static bool f_nonroot(const Gen *g, int i)
{
	return i > 0 && !under_flattened(g, i);
}
static bool f_indexable(const Gen *g, int i)
{
	return !under_flattened(g, i);
}
static bool f_weight(const Gen *g, int i)
{
	return g->nodes[i].has_weight && !under_flattened(g, i);
}

/* A node: mostly one the filter accepts (-1 when there is none: the step
 * is skipped), sometimes any. */
static int pick(Gen *g, Filter f)
{
	int n = g->var->n;
	int any = take0(g, 16) == 0;
	int lo = take0(g, 256); /* separate statements: operand order is unspecified */
	int r = lo | take0(g, 256) << 8;
	if (!any && f) {
		int cand[MAX_NODES], k = 0;
		for (int i = 0; i < n; i++)
			if (f(g, i))
				cand[k++] = i;
		return k ? cand[r % k] : -1; /* nothing sensible: skip the step */
	}
	return r % n;
}

/* The schedule expression of node i: sch["a.b"], or indexed in two steps
 * from an ancestor, sch["a"]["b"]. */
static const char *handle(Gen *g, int i, char *buf, size_t size)
{
	const TNode *t = &g->nodes[i];
	if (i == 0) {
		snprintf(buf, size, take0(g, 4) ? "sch" : "sch[\"\"]");
		return buf;
	}
	int mode = take0(g, 3);
	if (mode == 1) {
		int anc[32], k = 0;
		for (int a = t->parent; a > 0 && k < 32; a = g->nodes[a].parent)
			anc[k++] = a;
		if (k) {
			int a = anc[take0(g, k)];
			size_t n = strlen(g->nodes[a].path);
			snprintf(buf, size, "sch[\"%s\"][\"%s\"]", g->nodes[a].path, t->path + n + 1);
			return buf;
		}
	}
	snprintf(buf, size, "sch[\"%s\"]", t->path);
	return buf;
}

/* After a replace of r: its descendants are new instances of the
 * original classes (the equivalent modules keep the children's classes). */
static void reset_below(Gen *g, int r)
{
	for (int i = 0; i < g->var->n; i++)
		if (i != r && is_ancestor_or_self(g, r, i))
			g->nodes[i] = g->var->nodes[i];
}

static void add_expect(Gen *g, int node, const char *prefix, int step, ExpectKind kind);

/* Before a primitive that needs a graph: trace node i first (flatten
 * picked by the input) when the generator believes it is not traced and
 * can be. */
static void ensure_traced(Gen *g, int step, int i, const char *h)
{
	if (g->nodes[i].traced || g->nodes[i].builtin || in_traced(g, i) || under_flattened(g, i))
		return;
	int flatten = take0(g, 4) != 0;
	if (flatten)
		add_expect(g, i, "-", step, E_UNDO_INLINE);
	emit(g, "%s.trace(flatten=%s)", h, flatten ? "true" : "false");
	g->nodes[i].traced = true;
	g->nodes[i].flattened = flatten;
}

static void add_expect(Gen *g, int node, const char *prefix, int step, ExpectKind kind)
{
	Expect *e = &g->expect[g->nexpect++];
	e->kind = kind;
	e->line = g->line + 1; /* the next line emitted holds the call */
	e->path = g->nodes[node].path;
	snprintf(e->name, sizeof e->name, "%s%d_", prefix, step);
	e->ran = false;
}

static void gen_step(Gen *g, int step, StepKind k)
{
	char h[256];
	int i;
	switch (k) {
	case S_DECOMPOSE:
		i = pick(g, f_decompose);
		if (i < 0)
			break;
		handle(g, i, h, sizeof h);
		emit(g, "%s.decompose()", h);
		if (g->nodes[i].linear) {
			g->nodes[i].linear = false;
			g->nodes[i].cls = "LinearWithSeparateBias";
		}
		break;
	case S_TRACE: {
		i = pick(g, f_trace);
		if (i < 0)
			break;
		handle(g, i, h, sizeof h);
		int flatten = take0(g, 2);
		int lv = take0(g, 4);
		char leaves[200] = "";
		if (lv == 1 || lv == 2) {
			int j = pick(g, NULL);
			snprintf(leaves, sizeof leaves, ", leaves=[\"%s\"]",
			         lv == 1 ? g->nodes[j].cls : g->nodes[j].path);
		}
		if (flatten)
			add_expect(g, i, "-", step, E_UNDO_INLINE);
		emit(g, "%s.trace(flatten=%s%s)", h, flatten ? "true" : "false", leaves);
		if (!in_traced(g, i)) {
			g->nodes[i].traced = true;
			g->nodes[i].flattened = flatten;
		}
		break;
	}
	case S_FUSE: {
		i = pick(g, f_graph);
		if (i < 0)
			break;
		handle(g, i, h, sizeof h);
		ensure_traced(g, step, i, h);
		const char *p = patterns[take0(g, N_PATTERNS)];
		emit(g, "m%d = %s.find(%s)", step, h, p);
		emit(g, "if len(m%d) > 0 {", step);
		add_expect(g, i, "K", step, E_FUSE);
		emit(g, "    %s.fuse(m%d, compiler=\"llvm\", name=\"K%d\")", h, step, step);
		emit(g, "}");
		break;
	}
	case S_FIND:
	{
		i = pick(g, take0(g, 2) ? f_traced : f_indexable);
		if (i < 0)
			break;
		handle(g, i, h, sizeof h);
		bool pat = g->nodes[i].traced && take0(g, 4);
		if (pat) {
			const char *p = patterns[take0(g, N_PATTERNS)];
			emit(g, "print(%s.find(%s))", h, p);
		} else {
			const char *re = regexes[take0(g, N_REGEXES)];
			emit(g, "print(%s.find(\"%s\"))", h, re);
		}
		break;
	}
	case S_REPLACE: {
		i = pick(g, f_replace);
		if (i < 0)
			break;
		handle(g, i, h, sizeof h);
		const char *alt = alt_of(g->nodes[i].cls);
		char ctor[128];
		/* a built-in module: a new one equal to it; no equivalent module:
		 * one that cannot bind (in, out widths no model here has), for
		 * the error paths (a random other module might bind and be a
		 * different model, which is no finding) */
		bool same = !alt && g->nodes[i].same;
		if (same)
			snprintf(ctor, sizeof ctor, "%s", g->nodes[i].same);
		else
			snprintf(ctor, sizeof ctor, alt ? alt : "Linear(3, 5)",
			         g->var->ctor_arg);
		add_expect(g, i, "-", step, E_UNDO_ALL);
		emit(g, "%s.replace(%s)", h, ctor);
		if ((alt || same) && i > 0 && !in_traced(g, g->nodes[i].parent) &&
		    !under_flattened(g, i)) {
			char *paren = strchr(ctor, '(');
			size_t n = paren ? (size_t)(paren - ctor) : strlen(ctor);
			/* the class now: the constructor's name (static strings) */
			for (int a = 0; a < N_ALTS; a++)
				if (strlen(alts[a][0]) == n && strncmp(alts[a][0], ctor, n) == 0)
					g->nodes[i].cls = alts[a][0];
			BuiltinKind k;
			char cname[64];
			snprintf(cname, sizeof cname, "%.*s", (int)n, ctor);
			if (same && mod_builtin_lookup(cname, &k)) {
				g->nodes[i].cls = mod_builtin_name(k);
				g->nodes[i].linear = k == BM_LINEAR;
			}
			g->nodes[i].traced = g->nodes[i].flattened = false;
			reset_below(g, i);
		}
		break;
	}
	case S_REPLACE_SUB: {
		i = pick(g, f_graph);
		if (i < 0)
			break;
		handle(g, i, h, sizeof h);
		ensure_traced(g, step, i, h);
		int s = take0(g, N_SUB);
		emit(g, "m%d = %s.find(%s)", step, h, sub_patterns[s][0]);
		emit(g, "if len(m%d) > 0 {", step);
		add_expect(g, i, "R", step, E_REPLACE_SUB);
		emit(g, "    %s.replace(%s, m%d[0], name=\"R%d\")", h, sub_patterns[s][1], step, step);
		emit(g, "}");
		break;
	}
	case S_CHECKPOINT:
		i = pick(g, f_nonroot);
		if (i < 0)
			break;
		handle(g, i, h, sizeof h);
		emit(g, "%s.checkpoint()", h);
		break;
	case S_ANNOTATE:
		i = pick(g, f_weight);
		if (i < 0)
			break;
		handle(g, i, h, sizeof h);
		emit(g, "%s.annotate(\"weight\", \"shard\", %d)", h, step);
		break;
	case S_PRINT:
		i = pick(g, f_indexable);
		if (i < 0)
			break;
		handle(g, i, h, sizeof h);
		emit(g, "print(%s.mod)", h);
		break;
	case S_REGEX: {
		i = pick(g, f_indexable);
		if (i < 0)
			break;
		handle(g, i, h, sizeof h);
		const char *re = regexes[take0(g, 3)];
		emit(g, "for h%d in %s.find(\"%s\") {", step, h, re);
		emit(g, "    h%d.decompose()", step);
		emit(g, "}");
		regex_t rx;
		if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) == 0) {
			size_t n = strlen(g->nodes[i].path);
			for (int j = 0; j < g->var->n; j++)
				if (j != i && is_ancestor_or_self(g, i, j) && g->nodes[j].linear &&
				    regexec(&rx, g->nodes[j].path + (n ? n + 1 : 0), 0, NULL, 0) == 0) {
					g->nodes[j].linear = false;
					g->nodes[j].cls = "LinearWithSeparateBias";
				}
			regfree(&rx);
		}
		break;
	}
	case S_TRACE_ROOT:
		add_expect(g, 0, "-", step, E_UNDO_INLINE);
		emit(g, "sch.trace(flatten=true)");
		if (!in_traced(g, 0)) {
			g->nodes[0].traced = true;
			g->nodes[0].flattened = true;
		}
		break;
	default:
		break;
	}
}

static void generate(Gen *g)
{
	int v = take0(g, N_VARIANTS);
	int shape = take0(g, 15);
	g->var = variant(v);
	g->batch = 1 + shape % 3;
	g->seq = 1 + shape / 3;
	memcpy(g->nodes, g->var->nodes, sizeof g->nodes);
	sb_puts(&g->text, g->var->header);
	for (const char *p = g->var->header; *p; p++)
		g->line += *p == '\n';
	for (int step = 0; step < MAX_STEPS; step++) {
		int k = take(g, S_COUNT);
		if (k < 0)
			break;
		gen_step(g, step, (StepKind)k);
	}
}

/* ---- running it ------------------------------------------------------- */

typedef struct Check {
	FuzzModel fm;
	Module *root;
	IrTensor **ref;
	int nref;
	uint64_t ref_hash;     /* of the unscheduled model's graph */
	volatile int in_check; /* inside the hook: an unwinding is a finding */
	const char *program;
	Gen *gen;
	int nprims;            /* primitives checked */
	FILE *dout;
	char **dbuf;
	char why[512];
} Check;

/* ---- what was run before ----------------------------------------------
 *
 * The interpreter's outputs depend only on the graph's structure (model.c
 * hashes it), so a graph already run for the same reference need not run
 * again: the references, and the graphs found equal to theirs, are kept
 * for the whole process, by hash. Every primitive is still traced (the
 * model must trace after it) and checked; only a repeated interpreter run
 * is saved (most primitives leave the flat model as it was: a trace, a
 * replace by an equal module). FUZZ_SCHEDULE_NOCACHE=1 turns this off. */

enum {
	N_REFS = 1024,  /* references kept (8 variants x 15 shapes, text inputs) */
	SEEN_BITS = 18, /* graphs kept: a set of 2^18 hashes */
};

typedef struct Ref {
	uint64_t hash;           /* of the unscheduled model's graph; 0: empty */
	IrTensor **outs;         /* its outputs (kept for the process) */
	int n;
} Ref;

static Ref refs[N_REFS];
static int nrefs;
static int gen_ref[N_VARIANTS][15]; /* a generated input's reference: index + 1 */
static uint64_t seen[1 << SEEN_BITS];
static int nseen;
static long runs_saved, runs_done;

static bool cache_off(void)
{
	static int v = -1;
	if (v < 0) {
		const char *e = getenv("FUZZ_SCHEDULE_NOCACHE");
		v = e && *e && *e != '0';
	}
	return v;
}

static uint64_t *seen_slot(uint64_t key)
{
	key |= 1; /* 0 marks an empty slot */
	uint64_t i = key & ((1u << SEEN_BITS) - 1);
	while (seen[i] && seen[i] != key)
		i = (i + 1) & ((1u << SEEN_BITS) - 1);
	return &seen[i];
}

static bool seen_has(uint64_t key)
{
	return !cache_off() && *seen_slot(key) != 0;
}

static void seen_add(uint64_t key)
{
	if (cache_off())
		return;
	if (2 * (nseen + 1) > 1 << SEEN_BITS) { /* full: forget everything */
		memset(seen, 0, sizeof seen);
		nseen = 0;
	}
	uint64_t *e = seen_slot(key);
	if (!*e) {
		*e = key | 1;
		nseen++;
	}
}

static uint64_t pair_key(uint64_t ref, uint64_t graph)
{
	return ref * 0x9E3779B97F4A7C15ull ^ graph;
}

static const Ref *ref_find(uint64_t hash)
{
	for (int i = 0; i < nrefs && !cache_off(); i++)
		if (refs[i].hash == hash)
			return &refs[i];
	return NULL;
}

/* Keep a reference for the process; NULL when the table is full. */
static const Ref *ref_add(uint64_t hash, IrTensor **outs, int n)
{
	if (cache_off() || nrefs == N_REFS)
		return NULL;
	Ref *r = &refs[nrefs++];
	r->hash = hash;
	r->n = n;
	r->outs = calloc((size_t)n + 1, sizeof *r->outs);
	for (int i = 0; r->outs && i < n; i++)
		r->outs[i] = ir_tensor_copy(outs[i]);
	return r;
}

static void finding(Check *ck, const char *why)
{
	fflush(ck->dout);
	die(why, ck->program, *ck->dbuf);
}

static void hook(Eval *ev, const char *prim, Span sp, void *user)
{
	Check *ck = user;
	IrTensor **outs;
	int n;
	if (strcmp(prim, "create_schedule") == 0) {
		if (ck->root)
			return;
		ck->root = ev->schedules.items[ev->schedules.len - 1];
		/* a generated input's model is its variant's: traced and run
		 * once per shape */
		Gen *g = ck->gen;
		int shape = (g->batch - 1) + 3 * (g->seq - 1);
		int *slot = g->text_mode ? NULL : &gen_ref[g->var - variants][shape];
		const Ref *r = slot && *slot && !cache_off() ? &refs[*slot - 1] : NULL;
		if (!r) {
			ck->in_check = 1;
			IrGraph *g0 = fuzz_model_trace(&ck->fm, ck->root, sp, &ck->ref_hash);
			r = ref_find(ck->ref_hash);
			if (!r) {
				if (fuzz_model_run_graph(&ck->fm, g0, &outs, &n) != FUZZ_RUN_OK) {
					snprintf(ck->why, sizeof ck->why,
					         "the unscheduled model does not run: %s",
					         ck->fm.error);
					finding(ck, ck->why);
				}
				runs_done++;
				ck->ref = outs;
				ck->nref = n;
				r = ref_add(ck->ref_hash, outs, n);
			}
			ck->in_check = 0;
			if (r && slot)
				*slot = (int)(r - refs) + 1;
		}
		if (r) {
			ck->ref_hash = r->hash;
			ck->ref = r->outs;
			ck->nref = r->n;
			seen_add(pair_key(r->hash, r->hash));
		}
		return;
	}
	if (!ck->root)
		return;
	/* find, annotate and checkpoint rewrite nothing (the graphs they touch
	 * were verified structurally by sched.c): skip the costly run */
	if (strcmp(prim, "find") == 0 || strcmp(prim, "annotate") == 0 ||
	    strcmp(prim, "checkpoint") == 0) {
		ck->nprims++;
		return;
	}
	ck->in_check = 1;
	uint64_t h;
	IrGraph *gr = fuzz_model_trace(&ck->fm, ck->root, sp, &h);
	uint64_t key = pair_key(ck->ref_hash, h);
	double rel = 0;
	bool again = seen_has(key);
	if (again) {
		runs_saved++;
	} else {
		if (fuzz_model_run_graph(&ck->fm, gr, &outs, &n) != FUZZ_RUN_OK) {
			snprintf(ck->why, sizeof ck->why,
			         "line %d: after %s the model does not run: %s", sp.first_line,
			         prim, ck->fm.error);
			finding(ck, ck->why);
		}
		runs_done++;
		rel = fuzz_max_rel(ck->ref, ck->nref, outs, n);
		if (!(rel <= TOLERANCE)) {
			snprintf(ck->why, sizeof ck->why,
			         "line %d: %s changed the outputs: max relative error %.3e > "
			         "%.0e",
			         sp.first_line, prim, rel, TOLERANCE);
			finding(ck, ck->why);
		}
		seen_add(key);
	}
	ck->in_check = 0;
	ck->nprims++;
	if (fuzz_verbose && again)
		fprintf(stderr, "  line %d: %s ok (a graph run before)\n", sp.first_line,
		        prim);
	else if (fuzz_verbose)
		fprintf(stderr, "  line %d: %s ok (max rel %.1e)\n", sp.first_line, prim, rel);
	for (int i = 0; i < ck->gen->nexpect; i++) {
		Expect *e = &ck->gen->expect[i];
		bool want = e->kind == E_UNDO_INLINE ? strcmp(prim, "trace") == 0
		            : e->kind == E_FUSE      ? strcmp(prim, "fuse") == 0
		                                     : strcmp(prim, "replace") == 0;
		if (e->line == sp.first_line && want)
			e->ran = true;
	}
}

/* Whether a node of g (or of a body it calls) has an sattr starting with
 * prefix. */
static bool has_kernel(const IrGraph *g, const char *prefix, int depth)
{
	if (depth > 16)
		return false;
	for (IrNode *n = g->first; n; n = n->next) {
		if ((n->op == OP_FUSED || n->op == OP_CALL) && n->sattr &&
		    strncmp(n->sattr, prefix, strlen(prefix)) == 0)
			return true;
		if (n->sub && has_kernel(n->sub, prefix, depth + 1))
			return true;
	}
	return false;
}

/* Fuses and subgraph replaces that ran must show in the final model,
 * unless a later replace(module) of their module or an ancestor undid
 * them. */
static void check_effects(Check *ck, Eval *ev, Span sp)
{
	Gen *g = ck->gen;
	IrGraph *model = NULL;
	for (int i = 0; i < g->nexpect; i++) {
		Expect *e = &g->expect[i];
		/* Only fused kernels are checked: the call a subgraph replace
		 * makes is inlined by any later trace that replays the module
		 * (its body stays, so the effect is kept but not visible by
		 * name). */
		if (!e->ran || e->kind != E_FUSE)
			continue;
		bool undone = false;
		for (int j = i + 1; j < g->nexpect; j++) {
			const Expect *u = &g->expect[j];
			if (u->ran && path_under(e->path, u->path) &&
			    (u->kind == E_UNDO_ALL ||
			     (u->kind == E_UNDO_INLINE && e->kind == E_REPLACE_SUB)))
				undone = true;
		}
		if (undone)
			continue;
		if (!model) {
			ck->in_check = 1;
			model = trace_model(ev, ck->root, sp);
			ck->in_check = 0;
		}
		if (!has_kernel(model, e->name, 0)) {
			snprintf(ck->why, sizeof ck->why,
			         "line %d: the %s named %s... succeeded but the final model has no "
			         "trace of it (silently ignored)",
			         e->line, e->name[0] == 'K' ? "fuse" : "replace", e->name);
			finding(ck, ck->why);
		}
	}
}

static void run_program(Gen *g)
{
	const char *program = g->text.data;
	Arena arena = {0};
	Diag diag;
	char *dbuf = NULL;
	size_t dlen = 0;
	FILE *dout = open_memstream(&dbuf, &dlen);
	diag_init(&diag, dout, &arena);
	jmp_buf bail;
	diag.bail = &bail;
	Check *volatile ck = NULL;
	if (setjmp(bail) == 0) {
		SrcFile *src;
		if (g->text_mode) {
			src = src_from_string(&arena, "/nonexistent-fuzz-dir/schedule.slapo",
			                      program, g->text.len);
			if (!src_validate(&diag, src))
				goto done;
		} else {
			/* the steps only (the header was parsed once), on the lines
			 * they have in the program */
			size_t hl = strlen(g->var->header), n = (size_t)g->var->lines;
			char *steps = arena_alloc(&arena, n + g->text.len - hl + 1);
			memset(steps, '\n', n);
			memcpy(steps + n, program + hl, g->text.len - hl + 1);
			src = src_from_string(&arena, "/nonexistent-fuzz-dir/schedule.slapo",
			                      steps, n + g->text.len - hl);
		}
		Ast *prog = parse_file(&arena, &diag, src);
		if (!prog || diag.nerrors) {
			fflush(dout);
			if (!g->text_mode)
				die("the generated program does not parse (a bug of the generator)",
				    program, dbuf);
			goto done;
		}
		IrCtx *ir = ARENA_NEW(&arena, IrCtx);
		ir_ctx_init(ir, &arena, &diag);
		Eval *ev = ARENA_NEW(&arena, Eval);
		eval_init(ev, &arena, &diag, ir, fuzz_devnull());
		ptrvec_push(&arena, &ev->import_dirs, (void *)fuzz_lang_dir());
		Check *c = ARENA_NEW(&arena, Check);
		c->fm.ev = ev;
		c->fm.batch = g->batch;
		c->fm.seq = g->seq;
		c->program = program;
		c->gen = g;
		c->dout = dout;
		c->dbuf = &dbuf;
		ck = c;
		ev->after_primitive = hook;
		ev->after_user = c;
		if (!g->text_mode)
			eval_header(ev, g->var);
		eval_program(ev, prog);
		if (c->root)
			check_effects(c, ev, prog->span);
	} else if (ck && ck->in_check) {
		finding(ck, "the model does not trace any more after a primitive that succeeded");
	}
done:
	fflush(dout);
	if (dbuf && fuzz_internal_error(dbuf)) {
		die("an internal error was reported", program, dbuf);
	}
	if (fuzz_verbose && dbuf && *dbuf)
		fprintf(stderr, "---- diagnostics ----\n%s", dbuf);
	if (fuzz_verbose)
		fprintf(stderr, "---- %d primitives checked ----\n", ck ? ck->nprims : 0);
	if (ck)
		fuzz_model_free(&ck->fm);
	fclose(dout);
	free(dbuf);
	arena_free(&arena);
}

/* An input that starts with TEXT_MAGIC is a program already (the
 * regression inputs under tests/fuzz/schedule/ are stored that way, so
 * that they stay valid when the decoder changes): its first line may set
 * the shape, "# fuzz_schedule program B=2 S=3". */
#define TEXT_MAGIC "# fuzz_schedule program"

/* The module path of a line's handle: sch["a.b"]["c"] -> "a.b.c". */
static void line_path(const char *line, const char *end, char *out, size_t size)
{
	size_t n = 0;
	out[0] = 0;
	const char *p = strstr(line, "sch");
	if (!p || p >= end)
		return;
	p += 3;
	while (p + 1 < end && p[0] == '[' && p[1] == '"') {
		const char *q = memchr(p + 2, '"', (size_t)(end - p - 2));
		if (!q)
			break;
		size_t k = (size_t)(q - p - 2);
		if (n && k && n + 1 < size)
			out[n++] = '.';
		for (size_t i = 0; i < k && n + 1 < size; i++)
			out[n++] = p[2 + i];
		out[n] = 0;
		p = q + 1;
		if (p < end && *p == ']')
			p++;
	}
}

/* Expectations of a program given as text: every `.fuse(..., name="N")`
 * line expects a kernel N_i; every `.replace(M(...))` line with one
 * argument undoes the work below its module. Paths are read from the
 * line's sch["..."] handle (the form the generator writes). */
static void text_expectations(Gen *g)
{
	static char paths[MAX_STEPS * 2][160];
	const char *t = g->text.data, *end = t + g->text.len;
	int line = 1;
	for (const char *p = t; p < end && g->nexpect < MAX_STEPS * 2; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *f = NULL, *nm = NULL;
		for (const char *q = p; q + 6 < le; q++)
			if (memcmp(q, ".fuse(", 6) == 0)
				f = q;
		for (const char *q = p; q + 6 < le; q++)
			if (memcmp(q, "name=\"", 6) == 0)
				nm = q + 6;
		bool rep = false;
		for (const char *q = p; q + 9 < le; q++)
			if (memcmp(q, ".replace(", 9) == 0)
				rep = memchr(q, ',', (size_t)(le - q)) == NULL;
		if ((f && nm) || rep) {
			Expect *e = &g->expect[g->nexpect];
			char *path = paths[g->nexpect++];
			line_path(p, le, path, sizeof paths[0]);
			e->path = path;
			e->line = line;
			e->ran = false;
			e->kind = rep ? E_UNDO_ALL : E_FUSE;
			size_t k = 0;
			if (!rep)
				while (nm + k < le && nm[k] != '"' && k + 2 < sizeof e->name) {
					e->name[k] = nm[k];
					k++;
				}
			e->name[k] = rep ? '-' : '_';
			e->name[k + 1] = 0;
		}
		p = le + 1;
	}
}

static bool text_input(Gen *g, const uint8_t *data, size_t size)
{
	size_t n = strlen(TEXT_MAGIC);
	if (size < n || memcmp(data, TEXT_MAGIC, n) != 0)
		return false;
	const char *nl = memchr(data, '\n', size);
	char first[128] = "";
	if (nl && (size_t)(nl - (const char *)data) < sizeof first)
		memcpy(first, data, (size_t)(nl - (const char *)data));
	g->batch = 2;
	g->seq = 3;
	const char *b = strstr(first, "B="), *sq = strstr(first, "S=");
	if (b)
		g->batch = atoi(b + 2);
	if (sq)
		g->seq = atoi(sq + 2);
	if (g->batch < 1 || g->batch > 8)
		g->batch = 2;
	if (g->seq < 1 || g->seq > 16)
		g->seq = 3;
	sb_putn(&g->text, (const char *)data, size);
	g->text_mode = true;
	text_expectations(g);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Gen g = {.data = data, .size = size};
	if (text_input(&g, data, size)) {
		if (memchr(data, 0, size))
			return 0;
	} else if (size > 256) {
		return 0;
	} else {
		generate(&g);
	}
	if (fuzz_verbose)
		fprintf(stderr, "---- program (B=%d, S=%d) ----\n%s---- end ----\n", g.batch,
		        g.seq, g.text.data);
	run_program(&g);
	sb_free(&g.text);
	return 0;
}
