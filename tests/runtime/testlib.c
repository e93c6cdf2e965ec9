/* testlib.c - the helpers declared in testlib.h: checks, model loading,
 * owned tensors, temporary files, and the fake model's parameters,
 * checkpoint writer and double-precision reference forward.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "testlib.h"

int t_failures;

void t_check_status(const SlapoApi *api, SlapoStatus got, SlapoStatus want,
                    const char *what, const char *file, int line)
{
	if (got == want)
		return;
	fprintf(stderr, "%s:%d: %s returned %s, want %s\n", file, line, what,
	        api ? api->status_name(got) : rt_status_name(got),
	        api ? api->status_name(want) : rt_status_name(want));
	if (api)
		fprintf(stderr, "    last error: %s [%s]\n", api->last_error()->message,
		        api->last_error()->object_name);
	else
		fprintf(stderr, "    last error: %s [%s]\n", rt_last_error()->message,
		        rt_last_error()->object_name);
	t_failures++;
}

void t_check_error(const SlapoApi *api, const char *sub, const char *obj,
                   const char *file, int line)
{
	const SlapoError *e = api ? api->last_error() : rt_last_error();
	if (sub && !strstr(e->message, sub)) {
		fprintf(stderr, "%s:%d: error message lacks \"%s\": %s\n", file, line,
		        sub, e->message);
		t_failures++;
	}
	if (obj && strcmp(e->object_name, obj) != 0) {
		fprintf(stderr, "%s:%d: error object is \"%s\", want \"%s\" (%s)\n", file,
		        line, e->object_name, obj, e->message);
		t_failures++;
	}
}

int t_done(const char *name)
{
	t_rmdir();
	if (t_failures) {
		fprintf(stderr, "%s: %d check(s) failed\n", name, t_failures);
		return 1;
	}
	printf("%s: all checks passed\n", name);
	return 0;
}

const SlapoApi *t_load(const char *path, void **handle)
{
	SlapoGetApiFn get;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		return NULL;
	}
	*(void **)&get = dlsym(h, SLAPO_GET_API_SYMBOL);
	if (!get) {
		fprintf(stderr, "%s: no %s\n", path, SLAPO_GET_API_SYMBOL);
		dlclose(h);
		return NULL;
	}
	if (handle)
		*handle = h;
	return get(SLAPO_ABI_MAJOR);
}

/* ---- tensors --------------------------------------------------------- */

void tt_init(TTensor *x, DLDataType dt, int ndim, const int64_t *shape)
{
	int64_t n;
	memset(x, 0, sizeof *x);
	memcpy(x->shape, shape, (size_t)ndim * sizeof *shape);
	x->t.device.device_type = kDLCPU;
	x->t.dtype = dt;
	x->t.ndim = ndim;
	x->t.shape = x->shape;
	n = rt_numel(ndim, shape);
	x->t.data = calloc((size_t)(n ? n : 1), rt_dtype_size(dt));
}

void tt_free(TTensor *x)
{
	free(x->t.data);
	x->t.data = NULL;
}

int64_t tt_numel(const TTensor *x)
{
	return rt_numel(x->t.ndim, x->t.shape);
}

/* ---- temporary files ------------------------------------------------- */

static char tmpdir[256];

const char *t_tmpdir(void)
{
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof tmpdir, "/tmp/slapo-rt-test-XXXXXX");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			exit(99);
		}
	}
	return tmpdir;
}

void t_rmdir(void)
{
	DIR *d;
	struct dirent *e;
	char p[512];
	if (!tmpdir[0] || !(d = opendir(tmpdir)))
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(tmpdir);
	tmpdir[0] = '\0';
}

const char *t_path(const char *name)
{
	static char bufs[8][512];
	static int next;
	char *b = bufs[next++ % 8];
	snprintf(b, 512, "%s/%s", t_tmpdir(), name);
	return b;
}

const char *t_write_file(const char *name, const void *data, size_t len)
{
	const char *p = t_path(name);
	FILE *f = fopen(p, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
		perror(p);
		exit(99);
	}
	return p;
}

/* ---- the fake model -------------------------------------------------- */

static uint64_t rng(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static float *rand_array(int64_t n, double scale, double offset, uint64_t *s)
{
	float *a = malloc((size_t)n * sizeof *a);
	int64_t i;
	for (i = 0; i < n; i++)
		a[i] = (float)(offset +
		               scale * ((double)(rng(s) >> 11) / 4503599627370496.0 -
		                        1.0));
	return a;
}

void fake_init(FakeParams *p, int V, int H, int I, uint64_t seed)
{
	uint64_t s = seed;
	p->V = V;
	p->H = H;
	p->I = I;
	p->word = rand_array((int64_t)V * H, 1.0, 0, &s);
	p->type = rand_array(2 * H, 1.0, 0, &s);
	p->ln_w = rand_array(H, 0.2, 1.0, &s);
	p->ln_b = rand_array(H, 0.2, 0, &s);
	p->fc1_w = rand_array((int64_t)I * H, 0.3, 0, &s);
	p->fc1_b = rand_array(I, 0.1, 0, &s);
	p->fc2_w = rand_array((int64_t)H * I, 0.3, 0, &s);
	p->fc2_b = rand_array(H, 0.1, 0, &s);
	p->head_b = rand_array(V, 0.1, 0, &s);
}

void fake_init_for(FakeParams *p, const SlapoApi *api, const SlapoModel *m, uint64_t seed)
{
	const SlapoTensorSpec *w = NULL, *f = NULL;
	int32_t iw = 0, i1 = 0;
	api->model_find(m, SLAPO_PARAM, "emb.word_embeddings.weight", &iw);
	api->model_find(m, SLAPO_PARAM, "fc1.weight", &i1);
	api->model_tensor(m, SLAPO_PARAM, iw, &w);
	api->model_tensor(m, SLAPO_PARAM, i1, &f);
	fake_init(p, (int)w->shape[0], (int)w->shape[1], (int)f->shape[0], seed);
}

void fake_free(FakeParams *p)
{
	free(p->word);
	free(p->type);
	free(p->ln_w);
	free(p->ln_b);
	free(p->fc1_w);
	free(p->fc1_b);
	free(p->fc2_w);
	free(p->fc2_b);
	free(p->head_b);
}

static void round_array(float *a, int64_t n, int bf16)
{
	int64_t i;
	for (i = 0; i < n; i++)
		a[i] = bf16 ? rt_bf16_to_f32(rt_f32_to_bf16(a[i]))
		            : rt_f16_to_f32(rt_f32_to_f16(a[i]));
}

void fake_round(FakeParams *p, int bf16)
{
	int V = p->V, H = p->H, I = p->I;
	round_array(p->word, (int64_t)V * H, bf16);
	round_array(p->type, 2 * H, bf16);
	round_array(p->ln_w, H, bf16);
	round_array(p->ln_b, H, bf16);
	round_array(p->fc1_w, (int64_t)I * H, bf16);
	round_array(p->fc1_b, I, bf16);
	round_array(p->fc2_w, (int64_t)H * I, bf16);
	round_array(p->fc2_b, H, bf16);
	round_array(p->head_b, V, bf16);
}

typedef struct Writer {
	RtStWriteTensor t[32];
	int64_t shapes[32][2];
	void *owned[32];
	char names[32][96];
	int n, flags;
} Writer;

/* Adds a float tensor, converted to the file dtype of the flags. */
static void add(Writer *w, const char *name, const float *data, int ndim, int64_t d0,
                int64_t d1)
{
	RtStWriteTensor *t = &w->t[w->n];
	int64_t n = ndim == 1 ? d0 : d0 * d1;
	DLDataType dt = RT_F32;
	void *buf;
	if (w->flags & FW_F16)
		dt = (DLDataType){kDLFloat, 16, 1};
	if (w->flags & FW_BF16)
		dt = (DLDataType){kDLBfloat, 16, 1};
	if ((w->flags & FW_I32_FC1) && strstr(name, "fc1.weight"))
		dt = (DLDataType){kDLInt, 32, 1};
	buf = malloc((size_t)n * rt_dtype_size(dt) + 1);
	if (dt.code == kDLInt) {
		int64_t i;
		for (i = 0; i < n; i++)
			((int32_t *)buf)[i] = (int32_t)data[i];
	} else {
		rt_convert(dt, buf, RT_F32, data, n);
	}
	snprintf(w->names[w->n], sizeof w->names[w->n], "%s%s",
	         (w->flags & FW_PREFIX) ? "fake." : "", name);
	w->shapes[w->n][0] = d0;
	w->shapes[w->n][1] = d1;
	t->name = w->names[w->n];
	t->dtype = dt;
	t->ndim = ndim;
	t->shape = w->shapes[w->n];
	t->data = buf;
	w->owned[w->n++] = buf;
}

SlapoStatus fake_write(const FakeParams *p, const char *path, int flags)
{
	Writer w;
	int V = p->V, H = p->H, I = p->I, legacy = flags & FW_LEGACY, i;
	float *wide = NULL, junk[64] = {0};
	SlapoStatus st;
	memset(&w, 0, sizeof w);
	w.flags = flags;
	add(&w,
	    (flags & FW_ALIAS_ONLY) ? "head.decoder.weight"
	                            : "emb.word_embeddings.weight",
	    p->word, 2, V, H);
	add(&w, "emb.token_type_embeddings.weight", p->type, 2, 2, H);
	add(&w, legacy ? "emb.LayerNorm.gamma" : "emb.LayerNorm.weight", p->ln_w, 1, H,
	    0);
	add(&w, legacy ? "emb.LayerNorm.beta" : "emb.LayerNorm.bias", p->ln_b, 1, H, 0);
	if (flags & FW_BOTH_NAMES)
		add(&w, "emb.LayerNorm.weight", p->ln_w, 1, H, 0);
	if (flags & FW_BAD_SHAPE) {
		wide = calloc((size_t)I * (H + 1), sizeof *wide);
		add(&w, "fc1.weight", wide, 2, I, H + 1);
	} else {
		add(&w, "fc1.weight", p->fc1_w, 2, I, H);
	}
	add(&w, "fc1.bias", p->fc1_b, 1, I, 0);
	add(&w, "fc2.weight", p->fc2_w, 2, H, I);
	if (!(flags & FW_NO_FC2_BIAS))
		add(&w, "fc2.bias", p->fc2_b, 1, H, 0);
	add(&w, "head.bias", p->head_b, 1, V, 0);
	if (flags & FW_EXTRAS) {
		int pf = w.flags;
		w.flags &= ~FW_PREFIX; /* extras are named in full */
		add(&w, "fake.pooler.dense.weight", junk, 2, 4, 4);
		add(&w, "cls.seq_relationship.bias", junk, 1, 2, 0);
		add(&w, "mystery.weight", junk, 1, 3, 0);
		add(&w, "fake.layer.0.attn.bias", junk, 1, 2, 0);
		add(&w, "layer.1.attn.bias", junk, 1, 2, 0);
		add(&w, "fake.layer.1.x.attn.bias", junk, 1, 2, 0); /* not a match */
		w.flags = pf;
	}
	st = rt_st_write(path, w.n, w.t, 0, NULL);
	for (i = 0; i < w.n; i++)
		free(w.owned[i]);
	free(wide);
	return st;
}

static double dot(const double *a, const float *b, int n)
{
	double s = 0;
	int k;
	for (k = 0; k < n; k++)
		s += a[k] * b[k];
	return s;
}

void fake_reference(const FakeParams *p, int64_t B, int64_t S, const int64_t *ids,
                    const int64_t *types, const int64_t *mask, double *logits,
                    double *hidden, double *scores)
{
	int V = p->V, H = p->H, I = p->I, j;
	double *e = malloc((size_t)H * sizeof *e);
	double *h1 = malloc((size_t)I * sizeof *h1);
	int64_t r, b, s1, s2, k;
	for (r = 0; r < B * S; r++) {
		double mean = 0, var = 0, *hid = hidden + r * H;
		for (j = 0; j < H; j++) {
			e[j] = (double)p->word[ids[r] * H + j] +
			       p->type[types[r] * H + j];
			mean += e[j];
		}
		mean /= H;
		for (j = 0; j < H; j++)
			var += (e[j] - mean) * (e[j] - mean);
		for (j = 0; j < H; j++)
			e[j] = (e[j] - mean) / sqrt(var / H + 1e-12) * p->ln_w[j] +
			       p->ln_b[j];
		for (j = 0; j < I; j++) {
			double v = dot(e, p->fc1_w + (int64_t)j * H, H) + p->fc1_b[j];
			h1[j] = 0.5 * v * (1 + erf(v / sqrt(2.0)));
		}
		for (j = 0; j < H; j++)
			hid[j] = (dot(h1, p->fc2_w + (int64_t)j * I, I) + p->fc2_b[j] +
			          e[j]) *
			         (double)mask[r];
		for (j = 0; j < V; j++)
			logits[r * V + j] =
			        dot(hid, p->word + (int64_t)j * H, H) + p->head_b[j];
	}
	for (b = 0; b < B; b++)
		for (s1 = 0; s1 < S; s1++)
			for (s2 = 0; s2 < S; s2++) {
				double sum = 0;
				for (k = 0; k < H; k++)
					sum += hidden[(b * S + s1) * H + k] *
					       hidden[(b * S + s2) * H + k];
				scores[(b * S + s1) * S + s2] = sum;
			}
	free(e);
	free(h1);
}

void fake_inputs(int64_t B, int64_t S, int V, uint64_t seed, TTensor *ids, TTensor *types,
                 TTensor *mask)
{
	int64_t shape[2] = {B, S}, b, s;
	uint64_t st = seed;
	tt_init(ids, RT_I64, 2, shape);
	tt_init(types, RT_I64, 2, shape);
	tt_init(mask, RT_I64, 2, shape);
	for (b = 0; b < B; b++)
		for (s = 0; s < S; s++) {
			((int64_t *)ids->t.data)[b * S + s] =
			        (int64_t)(rng(&st) % (uint64_t)V);
			((int64_t *)types->t.data)[b * S + s] = (int64_t)(rng(&st) % 2);
			((int64_t *)mask->t.data)[b * S + s] = s < S - b % 3;
		}
}

double t_err_ratio(const float *got, const double *want, int64_t n, double rtol,
                   double atol)
{
	double worst = 0;
	int64_t i;
	for (i = 0; i < n; i++) {
		double r = fabs(got[i] - want[i]) / (atol + rtol * fabs(want[i]));
		if (!(r <= worst)) /* NaN counts as the worst */
			worst = isnan(r) ? INFINITY : r;
	}
	return worst;
}
