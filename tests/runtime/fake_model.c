/* fake_model.c - a hand-written stand-in for slapoc's generated code.
 *
 * It defines slapo_model_desc for a tiny BERT-shaped model and its
 * forward(), using only what generated code may use: the RtExec fields
 * and the rt_ services (rt_sgemm, rt_sgemm_batched, rt_parallel_for,
 * rt_fail). Linked with libslapo_rt.a exactly as slapoc links a model.
 *
 *   x      = word_emb[input_ids] + type_emb[token_type_ids]   [B,S,H]
 *   e      = LayerNorm(x)                                     (gamma/beta)
 *   h1     = gelu(e fc1^T + fc1.b)                            [B,S,I]
 *   hidden = (h1 fc2^T + fc2.b + e) * attention_mask          [B,S,H]
 *   logits = hidden decoder^T + decoder.b                     [B,S,V]
 *            (decoder.weight tied to word_emb, decoder.bias to head.bias)
 *   scores = hidden[b] hidden[b]^T                            [B,S,S]
 *
 * FAKE_VARIANT 2 builds a second, differently sized model ("FakeMLP2"),
 * so two libraries can be told apart in one process. Variant 1 marks its
 * nine steps for profiles (rt_prof_step, a version 3 descriptor with a
 * step table); variant 2 is a version 2 descriptor, as libraries made
 * before profiles were, which the runtime still loads. Variant 3 is
 * variant 1 with a GPU part (never run: its kernels are not real) whose
 * last FAKE_SM90A kernel names belong to an sm_90a module, for the
 * runtime's check of that count when a model is opened.
 */
#include <math.h>
#include <string.h>

#include "rt.h"

#ifndef FAKE_VARIANT
#define FAKE_VARIANT 1
#endif

#if FAKE_VARIANT != 2
#define NAME "FakeMLP"
#define V    50
#define H    16
#define I    32
#else
#define NAME "FakeMLP2"
#define V    40
#define H    8
#define I    24
#endif
#define T     2  /* token types */
#define MAX_S 64 /* like max_position_embeddings */

enum {
	SYM_B,
	SYM_S
};
enum {
	IN_IDS,
	IN_TYPES,
	IN_MASK
};
enum {
	OUT_LOGITS,
	OUT_HIDDEN,
	OUT_SCORES
};
enum {
	P_WORD,
	P_TYPE,
	P_LN_W,
	P_LN_B,
	P_FC1_W,
	P_FC1_B,
	P_FC2_W,
	P_FC2_B,
	P_HEAD_B,
	P_DEC_W,
	P_DEC_B
};

static const RtSymDesc syms[] = {{"B", 1, -1}, {"S", 1, MAX_S}};

static const int64_t d_bs[] = {RT_SYM(SYM_B), RT_SYM(SYM_S)};
static const int64_t d_bsv[] = {RT_SYM(SYM_B), RT_SYM(SYM_S), V};
static const int64_t d_bsh[] = {RT_SYM(SYM_B), RT_SYM(SYM_S), H};
static const int64_t d_bss[] = {RT_SYM(SYM_B), RT_SYM(SYM_S), RT_SYM(SYM_S)};
static const int64_t d_vh[] = {V, H}, d_th[] = {T, H}, d_h[] = {H};
static const int64_t d_ih[] = {I, H}, d_i[] = {I}, d_hi[] = {H, I};
static const int64_t d_v[] = {V};

/* clang-format off */
#define F32 {kDLFloat, 32, 1}
#define I64 {kDLInt, 64, 1}
/* clang-format on */

static const RtTensorDesc inputs[] = {
        {"input_ids", I64, 2, d_bs, V, SLAPO_FILL_NONE, 0, 0},
        {"token_type_ids", I64, 2, d_bs, T, SLAPO_FILL_ZEROS, 0, 0},
        {"attention_mask", I64, 2, d_bs, 0, SLAPO_FILL_ONES, 0, 0},
};

static const RtTensorDesc outputs[] = {
        {"logits", F32, 3, d_bsv, 0, 0, 0, 0},
        {"hidden", F32, 3, d_bsh, 0, 0, 0, 0},
        {"scores", F32, 3, d_bss, 0, 0, 0, 0},
};

static const RtTensorDesc params[] = {
        {"emb.word_embeddings.weight", F32, 2, d_vh, 0, 0, RT_INIT_NORMAL, 0.5f},
        {"emb.token_type_embeddings.weight", F32, 2, d_th, 0, 0, RT_INIT_NORMAL, 0.5f},
        {"emb.LayerNorm.weight", F32, 1, d_h, 0, 0, RT_INIT_ONES, 0},
        {"emb.LayerNorm.bias", F32, 1, d_h, 0, 0, RT_INIT_ZEROS, 0},
        {"fc1.weight", F32, 2, d_ih, 0, 0, RT_INIT_NORMAL, 0.2f},
        {"fc1.bias", F32, 1, d_i, 0, 0, RT_INIT_ZEROS, 0},
        {"fc2.weight", F32, 2, d_hi, 0, 0, RT_INIT_NORMAL, 0.2f},
        {"fc2.bias", F32, 1, d_h, 0, 0, RT_INIT_ZEROS, 0},
        {"head.bias", F32, 1, d_v, 0, 0, RT_INIT_ZEROS, 0},
        {"head.decoder.weight", F32, 2, d_vh, 0, 0, RT_INIT_NORMAL, 0},
        {"head.decoder.bias", F32, 1, d_v, 0, 0, RT_INIT_ZEROS, 0},
};

static const RtTie ties[] = {
        {"head.decoder.weight", "emb.word_embeddings.weight"},
        {"head.decoder.bias", "head.bias"},
};

static const char *const ignore[] = {"fake.pooler.", "cls.seq_relationship.",
                                     "fake.layer.*.attn.bias"};

static uint64_t workspace_size(const int64_t *sym)
{
	uint64_t rows = (uint64_t)sym[SYM_B] * (uint64_t)sym[SYM_S];
	return rows * (H + I) * sizeof(float);
}

/* ---- kernels (what codegen would emit as fused loops) ---------------- */

typedef struct Ctx {
	RtExec *ex;
	float *e, *h1, *hidden;
} Ctx;

/* Embedding gather + LayerNorm, one row per token. */
static void embed_ln(void *p, int64_t begin, int64_t end)
{
	Ctx *c = p;
	const int64_t *ids = c->ex->inputs[IN_IDS];
	const int64_t *types = c->ex->inputs[IN_TYPES];
	const float *word = c->ex->params[P_WORD], *type = c->ex->params[P_TYPE];
	const float *g = c->ex->params[P_LN_W], *b = c->ex->params[P_LN_B];
	int64_t r;
	int j;
	for (r = begin; r < end; r++) {
		float *x = c->e + r * H, mean = 0, var = 0, inv;
		for (j = 0; j < H; j++) {
			x[j] = word[ids[r] * H + j] + type[types[r] * H + j];
			mean += x[j];
		}
		mean /= H;
		for (j = 0; j < H; j++)
			var += (x[j] - mean) * (x[j] - mean);
		inv = 1.0f / sqrtf(var / H + 1e-12f);
		for (j = 0; j < H; j++)
			x[j] = (x[j] - mean) * inv * g[j] + b[j];
	}
}

static void bias_gelu(void *p, int64_t begin, int64_t end)
{
	Ctx *c = p;
	const float *b = c->ex->params[P_FC1_B];
	int64_t r;
	int j;
	for (r = begin; r < end; r++)
		for (j = 0; j < I; j++) {
			float v = c->h1[r * I + j] + b[j];
			c->h1[r * I + j] = 0.5f * v * (1.0f + erff(v * 0.70710678f));
		}
}

static void bias_mask(void *p, int64_t begin, int64_t end)
{
	Ctx *c = p;
	const float *b = c->ex->params[P_FC2_B];
	const int64_t *mask = c->ex->inputs[IN_MASK];
	int64_t r;
	int j;
	for (r = begin; r < end; r++)
		for (j = 0; j < H; j++)
			c->hidden[r * H + j] =
			        (c->hidden[r * H + j] + b[j]) * (float)mask[r];
}

static void add_bias_v(void *p, int64_t begin, int64_t end)
{
	Ctx *c = p;
	float *logits = c->ex->outputs[OUT_LOGITS];
	const float *b = c->ex->params[P_DEC_B];
	int64_t r;
	int j;
	for (r = begin; r < end; r++)
		for (j = 0; j < V; j++)
			logits[r * V + j] += b[j];
}

#if FAKE_VARIANT != 2
/* as slapoc's steps.c makes them */
static const RtStepDesc steps[] = {
        {"embed_ln", "map", "fake.slapo:3", "emb"},
        {"fc1", "gemm", "fake.slapo:4", "fc1"},
        {"bias_gelu", "map", "fake.slapo:4", "fc1"},
        {"fc2.residual", "map", "fake.slapo:5", ""},
        {"fc2", "gemm", "fake.slapo:5", "fc2"},
        {"bias_mask", "map", "fake.slapo:5", ""},
        {"decoder", "gemm", "fake.slapo:6", "head.decoder"},
        {"decoder.bias", "map", "fake.slapo:6", "head.decoder"},
        {"scores", "gemm", NULL, NULL},
};
#define N_STEPS ((int32_t)(sizeof steps / sizeof steps[0]))

/* FLOPs and bytes per step, roughly */
static void step_costs(const int64_t *sym, double *out)
{
	double rows = (double)(sym[SYM_B] * sym[SYM_S]), S = (double)sym[SYM_S];
	double f[N_STEPS] = {rows * H * 10, 2 * rows * H * I, rows * I * 10, 0,
	                     2 * rows * H * I, rows * H * 2, 2 * rows * H * V, rows * V,
	                     2 * rows * S * H};
	for (int32_t i = 0; i < N_STEPS; i++) {
		out[2 * i] = f[i];
		out[2 * i + 1] = rows * H * 4 * 3;
	}
}

/* if (ex->prof) rt_prof_step(ex, i), as generated code does */
#define MARK(i)                                                                          \
	do {                                                                             \
		if (ex->prof)                                                            \
			rt_prof_step(ex, i);                                             \
	} while (0)
#else
#define MARK(i) ((void)0)
#endif

static SlapoStatus forward(RtExec *ex)
{
	int64_t B = ex->sym[SYM_B], S = ex->sym[SYM_S], rows = B * S;
	Ctx c;
	c.ex = ex;
	c.e = ex->workspace;
	c.h1 = c.e + rows * H;
	c.hidden = ex->outputs[OUT_HIDDEN];
	MARK(0);
	rt_parallel_for(ex, rows, 4, embed_ln, &c);
	MARK(1);
	rt_sgemm(ex, 0, 1, rows, I, H, 1.0f, c.e, H, ex->params[P_FC1_W], H, 0.0f, c.h1,
	         I);
	MARK(2);
	rt_parallel_for(ex, rows, 4, bias_gelu, &c);
	MARK(3);
	memcpy(c.hidden, c.e, (size_t)(rows * H) * sizeof(float)); /* residual */
	MARK(4);
	rt_sgemm(ex, 0, 1, rows, H, I, 1.0f, c.h1, I, ex->params[P_FC2_W], I, 1.0f,
	         c.hidden, H);
	MARK(5);
	rt_parallel_for(ex, rows, 4, bias_mask, &c);
	MARK(6);
	rt_sgemm(ex, 0, 1, rows, V, H, 1.0f, c.hidden, H, ex->params[P_DEC_W], H, 0.0f,
	         ex->outputs[OUT_LOGITS], V);
	MARK(7);
	rt_parallel_for(ex, rows, 4, add_bias_v, &c);
	MARK(8);
	rt_sgemm_batched(ex, 0, 1, S, S, H, 1.0f, c.hidden, H, S * H, c.hidden, H, S * H,
	                 0.0f, ex->outputs[OUT_SCORES], S, S * S, B);
	if (rt_failed(ex))
		return SLAPO_INTERNAL;
	MARK(9);
	return SLAPO_OK;
}

#if FAKE_VARIANT == 3
static const char *const kernel_names[] = {"k0_fake", "h1_fake"};
static const DLDataType param_dtypes[11] = {
        {kDLFloat, 32, 1}, {kDLFloat, 32, 1}, {kDLFloat, 32, 1}, {kDLFloat, 32, 1},
        {kDLFloat, 32, 1}, {kDLFloat, 32, 1}, {kDLFloat, 32, 1}, {kDLFloat, 32, 1},
        {kDLFloat, 32, 1}, {kDLFloat, 32, 1}, {kDLFloat, 32, 1}};
/* a 4 KiB slot each, aliases at their target's */
static const uint64_t param_offsets[11] = {0,     4096,  8192,  12288, 16384, 20480,
                                           24576, 28672, 32768, 0,     32768};
static const RtGpuDesc gpu_desc = {
        .version = RT_GPU_VERSION,
        .precision = RT_PREC_FP32,
        .ptx = "",
        .target = "sm_80",
        .n_kernels = 2,
        .kernel_names = kernel_names,
        .param_dtypes = param_dtypes,
        .param_offsets = param_offsets,
        .params_size = 9 * 4096,
        .workspace_size = workspace_size,
        .forward = forward,
        .ptx_sm90a = "",
        .n_kernels_sm90a = FAKE_SM90A,
};
#define DEVICES (SLAPO_DEVICE_BIT_CPU | SLAPO_DEVICE_BIT_CUDA)
#define GPU     (&gpu_desc)
#else
#define DEVICES SLAPO_DEVICE_BIT_CPU
#define GPU     NULL /* no GPU code */
#endif

const RtModelDesc slapo_model_desc = {
#if FAKE_VARIANT != 2
        RT_DESC_VERSION,
#else
        2, /* as before profiles: no step table (the fields read as 0) */
#endif
        DEVICES,
        NAME,
        "0.1.0-fake",
        2,
        syms,
        3,
        inputs,
        3,
        outputs,
        11,
        params,
        2,
        ties,
        3,
        ignore,
        "fake",
        workspace_size,
        forward,
        GPU,
#if FAKE_VARIANT != 2
        N_STEPS,
        steps,
        step_costs,
#else
        0,
        NULL,
        NULL,
#endif
};
