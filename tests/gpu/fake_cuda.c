/* fake_cuda.c - a stand-in for libcuda.so.1, libcublas and libcublasLt on
 * the CPU, so the whole CUDA path of a model library (runtime sessions,
 * staging, CUDA graphs, the generated host code, the kernels' logic, the
 * GEMM layouts and epilogues, the poisoning of sessions) can be tested on
 * machines with no GPU. Not a simulator of timing or memory spaces:
 * "device" memory is host memory, streams run synchronously (an event
 * records the host clock when it is reached: profiles time the CPU
 * emulation), and a captured graph is the list of operations replayed.
 *
 * Kernels: the PTX cannot run here, so cuModuleLoadDataEx loads
 * $SLAPO_EMU_KERNELS instead, the same kernels compiled for the host
 * (slapoc --gpu-emu=FILE, codegen/gpu_emu.c), and runs each block's
 * threads as coroutines (ucontext): barriers and warp shuffles switch
 * between them. A kernel argument that points into the first page makes
 * the launch fail with CUDA_ERROR_ILLEGAL_ADDRESS, stickily (the test of
 * SLAPO_CUDA_TEST_FAULT).
 *
 *   SLAPO_LIBCUDA=fake_cuda.so SLAPO_LIBCUBLAS=fake_cuda.so \
 *   SLAPO_LIBCUBLASLT=fake_cuda.so SLAPO_EMU_KERNELS=model.emu.so ...
 */
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define API __attribute__((visibility("default")))

typedef int CUresult;
enum { OK = 0, E_INVALID = 1, E_OOM = 2, E_NOT_FOUND = 500, E_ILLEGAL = 700 };

static CUresult sticky; /* once set, every call fails with it */

/* ---- threads of a block as coroutines ------------------------------------------ */

#define STACK (64 * 1024)

typedef void (*Kernel)(void);
static struct {
	int ntid, ctaid, nctaid, cur;
	ucontext_t sched;
	ucontext_t *ctx;
	char *stacks;
	int cap;
	int *state; /* 0 runnable, 1 at a barrier, 2 done */
	float *slots;
	void *fn;
	uint64_t args[80];
	int error;
} E;

static int hk_tid(void) { return E.cur; }
static int hk_ntid(void) { return E.ntid; }
static int hk_ctaid(void) { return E.ctaid; }
static int hk_nctaid(void) { return E.nctaid; }

static void hk_barrier(void)
{
	int t = E.cur;
	E.state[t] = 1;
	swapcontext(&E.ctx[t], &E.sched);
}

static float hk_shfl(int mask, float v, int lanemask, int clamp)
{
	(void)mask;
	(void)clamp;
	int t = E.cur;
	E.slots[t] = v;
	hk_barrier();
	float r = E.slots[(t & ~31) | ((t & 31) ^ lanemask)];
	hk_barrier();
	return r;
}

typedef void (*K80)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

static void trampoline(void)
{
	uint64_t *a = E.args;
	((K80)E.fn)(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12],
	            a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23],
	            a[24], a[25], a[26], a[27], a[28], a[29], a[30], a[31], a[32], a[33], a[34],
	            a[35], a[36], a[37], a[38], a[39]);
	E.state[E.cur] = 2;
}

/* Thread t's context, ready to start at trampoline (its own function:
 * getcontext returns twice, and a loop counter beside it might be
 * clobbered). */
static void make_thread(int t)
{
	getcontext(&E.ctx[t]);
	E.ctx[t].uc_stack.ss_sp = E.stacks + (size_t)t * STACK;
	E.ctx[t].uc_stack.ss_size = STACK;
	E.ctx[t].uc_link = &E.sched;
	makecontext(&E.ctx[t], trampoline, 0);
	E.state[t] = 0;
}

static int run_block(void)
{
	int n = E.ntid;
	if (n > E.cap) {
		free(E.ctx);
		free(E.stacks);
		free(E.state);
		free(E.slots);
		E.ctx = calloc((size_t)n, sizeof *E.ctx);
		E.stacks = malloc((size_t)n * STACK);
		E.state = calloc((size_t)n, sizeof *E.state);
		E.slots = calloc((size_t)n, sizeof *E.slots);
		E.cap = n;
	}
	for (int t = 0; t < n; t++)
		make_thread(t);
	for (;;) {
		int done = 0, waiting = 0;
		for (int t = 0; t < n; t++)
			if (E.state[t] == 0) {
				E.cur = t;
				swapcontext(&E.sched, &E.ctx[t]);
			}
		for (int t = 0; t < n; t++) {
			done += E.state[t] == 2;
			waiting += E.state[t] == 1;
		}
		if (done == n)
			return 0;
		if (done > 0 && waiting > 0) {
			fprintf(stderr, "fake_cuda: a barrier that not every thread reaches\n");
			return -1;
		}
		for (int t = 0; t < n; t++)
			if (E.state[t] == 1)
				E.state[t] = 0;
	}
}

static int run_kernel(void *fn, unsigned gx, unsigned bx, const uint64_t *args, int nargs)
{
	E.fn = fn;
	memset(E.args, 0, sizeof E.args);
	memcpy(E.args, args, (size_t)nargs * 8);
	E.ntid = (int)bx;
	E.nctaid = (int)gx;
	for (unsigned b = 0; b < gx; b++) {
		E.ctaid = (int)b;
		if (run_block())
			return -1;
	}
	return 0;
}

/* ---- recorded operations (stream capture) --------------------------------------- */

typedef struct Op {
	int kind; /* 0 kernel, 1 memcpy, 2 memset32, 3 gemm (lt), 4 gemm (cublas),
	           * 5 event record (dst: the Event) */
	void *fn;
	unsigned gx, bx;
	uint64_t args[80];
	int nargs;
	void *dst;
	const void *src;
	size_t n;
	unsigned val;
	struct Gemm *g;
} Op;

typedef struct Graph {
	Op *ops;
	int n, cap;
} Graph;

static Graph *capture; /* non-NULL while a stream captures */

static void record(const Op *op)
{
	if (capture->n == capture->cap) {
		capture->cap = capture->cap ? 2 * capture->cap : 64;
		capture->ops = realloc(capture->ops, (size_t)capture->cap * sizeof *capture->ops);
	}
	capture->ops[capture->n++] = *op;
}

/* ---- GEMMs ----------------------------------------------------------------------- */

enum { R32F = 0, R16F = 2, R16BF = 14 };

static double get(int t, const void *p, int64_t i)
{
	if (t == R32F)
		return ((const float *)p)[i];
	uint16_t h = ((const uint16_t *)p)[i];
	if (t == R16BF) {
		uint32_t u = (uint32_t)h << 16;
		float f;
		memcpy(&f, &u, 4);
		return f;
	}
	/* f16 */
	int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
	double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
	return s ? -v : v;
}

static void put(int t, void *p, int64_t i, double v)
{
	float f = (float)v;
	if (t == R32F) {
		((float *)p)[i] = f;
		return;
	}
	uint32_t u;
	memcpy(&u, &f, 4);
	if (t == R16BF) {
		uint16_t h = isnan(f) ? (uint16_t)((u >> 16) | 0x40) : (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
		((uint16_t *)p)[i] = h;
		return;
	}
	/* f16 round to nearest even */
	_Float16 hf = (_Float16)f;
	memcpy((uint16_t *)p + i, &hf, 2);
}

typedef struct Gemm {
	const void *const *pa, *const *pb; /* pointer arrays (cublasGemmBatchedEx) */
	void *const *pc;
	int ta, tb; /* column-major ops of A and B */
	int64_t m, n, k, lda, ldb, ldc, sa, sb, sc, batch;
	int at, bt, ct;
	float alpha, beta;
	const void *a, *b, *c;
	void *d;
	const void *bias;
	int bias_t;
	int gelu; /* then GELU's tanh form (cuBLASLt's GELU epilogue) */
} Gemm;

static void gemm(const Gemm *g)
{
	for (int64_t q = 0; q < g->batch; q++) {
		const char *a = (const char *)g->a + q * g->sa * (g->at == R32F ? 4 : 2);
		const char *b = (const char *)g->b + q * g->sb * (g->bt == R32F ? 4 : 2);
		const char *c = (const char *)g->c + q * g->sc * (g->ct == R32F ? 4 : 2);
		char *d = (char *)g->d + q * g->sc * (g->ct == R32F ? 4 : 2);
		if (g->pa) { /* read when it runs: a kernel wrote them */
			a = g->pa[q];
			b = g->pb[q];
			c = d = g->pc[q];
		}
		for (int64_t j = 0; j < g->n; j++)
			for (int64_t i = 0; i < g->m; i++) {
				double acc = 0;
				for (int64_t l = 0; l < g->k; l++) {
					double x = get(g->at, a, g->ta ? l + i * g->lda : i + l * g->lda);
					double y = get(g->bt, b, g->tb ? j + l * g->ldb : l + j * g->ldb);
					acc += x * y;
				}
				double v = g->alpha * acc;
				if (g->beta != 0)
					v += g->beta * get(g->ct, c, i + j * g->ldc);
				if (g->bias)
					v += get(g->bias_t, g->bias, i);
				if (g->gelu)
					v = 0.5 * v *
					    (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
				put(g->ct, d, i + j * g->ldc, v);
			}
	}
}

/* A CUDA event: when the work before it was done, in ms. */
typedef struct Event {
	double ms;
	int recorded;
} Event;

/* The host clock in ms: what the fake's events record. */
static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void run_op(const Op *op)
{
	if (sticky)
		return;
	switch (op->kind) {
	case 0:
		for (int i = 0; i < op->nargs; i++)
			if (op->args[i] > 0 && op->args[i] < 4096 && i < 1) {
				sticky = E_ILLEGAL;
				return;
			}
		if (run_kernel(op->fn, op->gx, op->bx, op->args, op->nargs))
			sticky = E_ILLEGAL;
		break;
	case 1: memmove(op->dst, op->src, op->n); break;
	case 5: /* streams run synchronously: done by now */
		((Event *)op->dst)->ms = now_ms();
		((Event *)op->dst)->recorded = 1;
		break;
	case 2:
		for (size_t i = 0; i < op->n; i++)
			((unsigned *)op->dst)[i] = op->val;
		break;
	default: gemm(op->g); break;
	}
}

static CUresult submit(const Op *op)
{
	if (sticky)
		return sticky;
	if (capture) {
		Op c = *op;
		if (op->g) {
			c.g = malloc(sizeof *c.g);
			*c.g = *op->g;
		}
		record(&c);
		return OK;
	}
	run_op(op);
	return OK;
}

/* ---- driver API -------------------------------------------------------------------- */

#define STICKY() do { if (sticky) return sticky; } while (0)

API CUresult cuInit(unsigned f) { (void)f; return OK; }
API CUresult cuDriverGetVersion(int *v) { *v = 13000; return OK; }
API CUresult cuDeviceGetCount(int *n) { *n = 1; return OK; }
API CUresult cuDeviceGet(int *d, int i) { *d = i; return i == 0 ? OK : 101; }
API CUresult cuDeviceGetName(char *s, int n, int d)
{
	(void)d;
	snprintf(s, (size_t)n, "fake CUDA device (tests/gpu/fake_cuda.c)");
	return OK;
}
API CUresult cuDeviceGetAttribute(int *v, int a, int d)
{
	(void)d;
	/* compute capability 9.0 (FAKE_CC_MAJOR=N: N.0), 4 SMs */
	const char *cc = getenv("FAKE_CC_MAJOR");
	*v = a == 75 ? (cc ? atoi(cc) : 9) : a == 76 ? 0 : a == 16 ? 4 : 0;
	return OK;
}
API CUresult cuDevicePrimaryCtxRetain(void **c, int d) { (void)d; *c = (void *)&E; return OK; }
API CUresult cuDevicePrimaryCtxRelease_v2(int d) { (void)d; return OK; }
API CUresult cuCtxPushCurrent_v2(void *c) { (void)c; return OK; }
API CUresult cuCtxPopCurrent_v2(void **c) { if (c) *c = NULL; return OK; }
API CUresult cuMemAlloc_v2(uint64_t *p, size_t n)
{
	STICKY();
	void *m = NULL;
	if (posix_memalign(&m, 256, n ? n : 1))
		return E_OOM;
	if (getenv("FAKE_LOG_ALLOC")) /* for measuring what a library allocates */
		fprintf(stderr, "fake_cuda: cuMemAlloc %zu bytes\n", n);
	*p = (uint64_t)(uintptr_t)m;
	return OK;
}
API CUresult cuMemFree_v2(uint64_t p) { free((void *)(uintptr_t)p); return OK; }
API CUresult cuMemGetInfo_v2(size_t *f, size_t *t) { *f = *t = (size_t)1 << 34; return OK; }
static CUresult copy(void *d, const void *s, size_t n)
{
	Op op = {.kind = 1, .dst = d, .src = s, .n = n};
	return submit(&op);
}
API CUresult cuMemcpyHtoD_v2(uint64_t d, const void *s, size_t n) { STICKY(); memcpy((void *)(uintptr_t)d, s, n); return OK; }
API CUresult cuMemcpyDtoH_v2(void *d, uint64_t s, size_t n) { STICKY(); memcpy(d, (void *)(uintptr_t)s, n); return OK; }
API CUresult cuMemcpyHtoDAsync_v2(uint64_t d, const void *s, size_t n, void *st) { (void)st; return copy((void *)(uintptr_t)d, s, n); }
API CUresult cuMemcpyDtoHAsync_v2(void *d, uint64_t s, size_t n, void *st) { (void)st; return copy(d, (void *)(uintptr_t)s, n); }
API CUresult cuMemcpyDtoDAsync_v2(uint64_t d, uint64_t s, size_t n, void *st) { (void)st; return copy((void *)(uintptr_t)d, (void *)(uintptr_t)s, n); }
API CUresult cuMemsetD32Async(uint64_t d, unsigned v, size_t n, void *st)
{
	(void)st;
	Op op = {.kind = 2, .dst = (void *)(uintptr_t)d, .val = v, .n = n};
	return submit(&op);
}
API CUresult cuPointerGetAttribute(void *v, int a, uint64_t p) { (void)v; (void)a; (void)p; return E_INVALID; }
API CUresult cuStreamCreate(void **s, unsigned f) { (void)f; *s = malloc(8); return OK; }
API CUresult cuStreamDestroy_v2(void *s) { free(s); return OK; }
API CUresult cuStreamSynchronize(void *s) { (void)s; return sticky; }
API CUresult cuStreamBeginCapture_v2(void *s, int mode)
{
	(void)s;
	(void)mode;
	STICKY();
	capture = calloc(1, sizeof *capture);
	return OK;
}
API CUresult cuStreamEndCapture(void *s, void **g)
{
	(void)s;
	*g = capture;
	capture = NULL;
	return sticky;
}
API CUresult cuGraphInstantiateWithFlags(void **e, void *g, unsigned long long f)
{
	(void)f;
	Graph *src = g, *dst = calloc(1, sizeof *dst);
	dst->n = dst->cap = src->n;
	dst->ops = malloc((size_t)(src->n + 1) * sizeof *dst->ops);
	memcpy(dst->ops, src->ops, (size_t)src->n * sizeof *dst->ops);
	for (int i = 0; i < src->n; i++)
		if (src->ops[i].g) {
			dst->ops[i].g = malloc(sizeof(Gemm));
			*dst->ops[i].g = *src->ops[i].g;
		}
	*e = dst;
	return OK;
}
API CUresult cuGraphLaunch(void *e, void *s)
{
	(void)s;
	Graph *g = e;
	STICKY();
	for (int i = 0; i < g->n && !sticky; i++)
		run_op(&g->ops[i]);
	return OK;
}
static void graph_free(Graph *g)
{
	for (int i = 0; i < g->n; i++)
		free(g->ops[i].g);
	free(g->ops);
	free(g);
}
API CUresult cuGraphExecDestroy(void *e) { graph_free(e); return OK; }
API CUresult cuGraphDestroy(void *g) { graph_free(g); return OK; }

API CUresult cuEventCreate(void **e, unsigned f) { (void)f; *e = calloc(1, sizeof(Event)); return *e ? OK : E_OOM; }
API CUresult cuEventDestroy_v2(void *e) { free(e); return OK; }
API CUresult cuEventRecord(void *e, void *s)
{
	(void)s;
	Op op = {.kind = 5, .dst = e};
	return submit(&op);
}
API CUresult cuEventElapsedTime(float *ms, void *a, void *b)
{
	const Event *x = a, *y = b;
	STICKY();
	if (!x || !y || !x->recorded || !y->recorded)
		return E_INVALID;
	*ms = (float)(y->ms - x->ms);
	return OK;
}

API CUresult cuModuleLoadDataEx(void **m, const void *ptx, unsigned n, int *o, void **v)
{
	(void)ptx;
	(void)n;
	(void)o;
	(void)v;
	STICKY();
	const char *path = getenv("SLAPO_EMU_KERNELS");
	void *h = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
	if (!h) {
		fprintf(stderr, "fake_cuda: cannot load $SLAPO_EMU_KERNELS (%s): %s\n",
		        path ? path : "unset", dlerror());
		return 218; /* CUDA_ERROR_INVALID_PTX */
	}
	void **hooks = dlsym(h, "slapo_emu_hooks");
	if (hooks) {
		hooks[0] = (void *)hk_tid;
		hooks[1] = (void *)hk_ntid;
		hooks[2] = (void *)hk_ctaid;
		hooks[3] = (void *)hk_nctaid;
		hooks[4] = (void *)hk_barrier;
		hooks[5] = (void *)hk_shfl;
	}
	*m = h;
	return OK;
}
API CUresult cuModuleUnload(void *m) { dlclose(m); return OK; }
API CUresult cuModuleGetFunction(void **f, void *m, const char *name)
{
	*f = dlsym(m, name);
	return *f ? OK : E_NOT_FOUND;
}
API CUresult cuFuncGetAttribute(int *v, int a, void *f)
{
	(void)f;
	*v = a == 0 ? (getenv("FAKE_MAX_THREADS") ? atoi(getenv("FAKE_MAX_THREADS")) : 1024) : 0;
	return OK;
}
API CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                            unsigned by, unsigned bz, unsigned sh, void *st, void **params,
                            void **extra)
{
	(void)st;
	(void)sh;
	(void)extra;
	if (gy != 1 || gz != 1 || by != 1 || bz != 1 || bx < 1 || bx > 1024)
		return E_INVALID;
	Op op = {.kind = 0, .fn = f, .gx = gx, .bx = bx};
	while (op.nargs < 80 && params[op.nargs]) {
		op.args[op.nargs] = *(uint64_t *)params[op.nargs];
		op.nargs++;
	}
	return submit(&op);
}
API CUresult cuGetErrorName(CUresult r, const char **s)
{
	*s = r == E_ILLEGAL ? "CUDA_ERROR_ILLEGAL_ADDRESS" : r == E_OOM ? "CUDA_ERROR_OUT_OF_MEMORY"
	                                                               : "CUDA_ERROR_(fake)";
	return OK;
}
API CUresult cuGetErrorString(CUresult r, const char **s)
{
	*s = r == E_ILLEGAL ? "an illegal memory access was encountered" : "fake error";
	return OK;
}

/* ---- cuBLAS ----------------------------------------------------------------------- */

API int cublasCreate_v2(void **h) { *h = malloc(8); return 0; }
API int cublasDestroy_v2(void *h) { free(h); return 0; }
API int cublasSetStream_v2(void *h, void *s) { (void)h; (void)s; return 0; }
API int cublasSetWorkspace_v2(void *h, void *w, size_t n) { (void)h; (void)w; (void)n; return 0; }
API const char *cublasGetStatusName(int s) { return s ? "CUBLAS_STATUS_(fake error)" : "CUBLAS_STATUS_SUCCESS"; }
API int cublasGemmStridedBatchedEx(void *h, int ta, int tb, int m, int n, int k,
                                   const void *alpha, const void *a, int at, int lda,
                                   long long sa, const void *b, int bt, int ldb, long long sb,
                                   const void *beta, void *c, int ct, int ldc, long long sc,
                                   int batch, int compute, int algo)
{
	(void)h;
	(void)compute;
	(void)algo;
	Gemm g = {NULL, NULL, NULL, ta, tb, m, n, k, lda, ldb, ldc, sa, sb, sc, batch, at, bt, ct,
	          *(const float *)alpha, *(const float *)beta, a, b, c, c, NULL, 0, 0};
	Op op = {.kind = 4, .g = &g};
	return submit(&op) ? 14 : 0;
}

API int cublasGemmBatchedEx(void *h, int ta, int tb, int m, int n, int k, const void *alpha,
                            const void *const *a, int at, int lda, const void *const *b, int bt,
                            int ldb, const void *beta, void *const *c, int ct, int ldc,
                            int batch, int compute, int algo)
{
	(void)h;
	(void)compute;
	(void)algo;
	Gemm g = {a, b, c, ta, tb, m, n, k, lda, ldb, ldc, 0, 0, 0, batch, at, bt, ct,
	          *(const float *)alpha, *(const float *)beta, NULL, NULL, NULL, NULL, NULL, 0, 0};
	Op op = {.kind = 4, .g = &g};
	return submit(&op) ? 14 : 0;
}

/* ---- cuBLASLt ----------------------------------------------------------------------- */

typedef struct Desc {
	int ta, tb, epi, bias_t;
	const void *bias;
} Desc;
typedef struct Layout {
	int t;
	int64_t rows, cols, ld, batch, stride;
} Layout;

API int cublasLtCreate(void **h) { *h = malloc(8); return 0; }
API int cublasLtDestroy(void *h) { free(h); return 0; }
API int cublasLtMatmulDescCreate(void **d, int compute, int scale)
{
	(void)compute;
	(void)scale;
	Desc *x = calloc(1, sizeof *x);
	x->epi = 1;
	x->bias_t = -1;
	*d = x;
	return 0;
}
API int cublasLtMatmulDescDestroy(void *d) { free(d); return 0; }
API int cublasLtMatmulDescSetAttribute(void *d, int a, const void *v, size_t n)
{
	Desc *x = d;
	(void)n;
	switch (a) {
	case 3: x->ta = *(const int *)v; break;
	case 4: x->tb = *(const int *)v; break;
	case 7: x->epi = (int)*(const uint32_t *)v; break;
	case 8: x->bias = *(const void *const *)v; break;
	case 26: x->bias_t = *(const int *)v; break;
	default: return 7; /* CUBLAS_STATUS_INVALID_VALUE */
	}
	return 0;
}
API int cublasLtMatrixLayoutCreate(void **l, int t, uint64_t rows, uint64_t cols, int64_t ld)
{
	Layout *x = calloc(1, sizeof *x);
	*x = (Layout){t, (int64_t)rows, (int64_t)cols, ld, 1, 0};
	if (ld < (int64_t)rows) {
		free(x);
		return 7;
	}
	*l = x;
	return 0;
}
API int cublasLtMatrixLayoutDestroy(void *l) { free(l); return 0; }
API int cublasLtMatrixLayoutSetAttribute(void *l, int a, const void *v, size_t n)
{
	Layout *x = l;
	(void)n;
	if (a == 5)
		x->batch = *(const int32_t *)v;
	else if (a == 6)
		x->stride = *(const int64_t *)v;
	else
		return 7;
	return 0;
}
API int cublasLtMatmulPreferenceCreate(void **p) { *p = malloc(8); return 0; }
API int cublasLtMatmulPreferenceDestroy(void *p) { free(p); return 0; }
API int cublasLtMatmulPreferenceSetAttribute(void *p, int a, const void *v, size_t n)
{
	(void)p; (void)a; (void)v; (void)n;
	return 0;
}
API int cublasLtMatmulAlgoGetHeuristic(void *h, void *d, void *a, void *b, void *c, void *dd,
                                       void *p, int req, void *res, int *n)
{
	(void)h; (void)a; (void)b; (void)c; (void)dd; (void)p;
	/* RtLtHeuristic: algo[64], workspaceSize, state, wavesCount, reserved;
	 * FAKE_LT_ALGOS=N: N answers (at most req), algo[0] their index */
	const char *na = getenv("FAKE_LT_ALGOS");
	int want = na ? atoi(na) : 1;
	want = want < 1 ? 1 : want > req ? req : want;
	memset(res, 0, 96 * (size_t)want);
	for (int i = 0; i < want; i++)
		((unsigned char *)res)[96 * i] = (unsigned char)i;
	/* FAKE_LT_NO_EPILOGUE=E: no algorithm for epilogue E (the fallbacks) */
	const char *no = getenv("FAKE_LT_NO_EPILOGUE");
	*n = no && atoi(no) == ((const Desc *)d)->epi ? 0 : want;
	return 0;
}
API int cublasLtMatmul(void *h, void *desc, const void *alpha, const void *a, void *la,
                       const void *b, void *lb, const void *beta, const void *c, void *lc,
                       void *d, void *ld, const void *algo, void *ws, size_t wss, void *st)
{
	(void)h; (void)ws; (void)wss; (void)st; (void)ld;
	const Desc *x = desc;
	/* FAKE_LT_SLOW_ALGO=I: algorithm I takes twice as long and 10 ms more
	 * (the host clock times the fake's events; in proportion, so that a
	 * busy machine's noise does not hide it) */
	const char *slow = getenv("FAKE_LT_SLOW_ALGO");
	bool slow_algo = slow && atoi(slow) == *(const unsigned char *)algo;
	const Layout *A = la, *B = lb, *C = lc;
	int64_t m = C->rows, n = C->cols, k = x->ta ? A->rows : A->cols;
	if ((x->ta ? A->cols : A->rows) != m || (x->tb ? B->rows : B->cols) != n ||
	    (x->tb ? B->cols : B->rows) != k || A->batch != C->batch || B->batch != C->batch)
		return 7;
	Gemm g = {NULL, NULL, NULL, x->ta, x->tb, m, n, k, A->ld, B->ld, C->ld, A->stride, B->stride, C->stride,
	          C->batch, A->t, B->t, C->t, *(const float *)alpha, *(const float *)beta,
	          a, b, c, d, x->epi == 4 || x->epi == 36 ? x->bias : NULL,
	          x->bias_t >= 0 ? x->bias_t : C->t, x->epi == 36};
	if (x->epi != 1 && x->epi != 4 && x->epi != 36)
		return 15; /* CUBLAS_STATUS_NOT_SUPPORTED */
	Op op = {.kind = 3, .g = &g};
	double t0 = slow_algo ? now_ms() : 0;
	CUresult r = submit(&op);
	if (slow_algo)
		usleep((useconds_t)(1e3 * (10 + now_ms() - t0)));
	return r ? 14 : 0;
}
