/* run_cases.c - runs the op cases gen_cases made, on a GPU (or on the CPU,
 * to check the cases themselves where there is none), and compares every
 * output with the interpreter's. Needs no LLVM: only libc, and CUDA when
 * the device is cuda.
 *
 *   run_cases DIR [--device cuda:N|cpu] [--norm-tol X] [--emu] [FILTER]
 *   run_cases DIR --device cuda:N --fault NAME    (see fault_test)
 *   run_cases --probe --device cuda:N             (exit 77 without a GPU)
 *
 * Per case: weights loaded on the device from NAME.w.safetensors; per
 * binding the model runs three times (the runtime runs a new shape
 * eagerly, then captures a CUDA graph, then replays it), each time with
 * its outputs poisoned first (NaN / 0x5a bytes); even bindings pass host
 * tensors, odd ones device tensors. A case that must fail (a bad index)
 * must fail naming its input both ways (host inputs are checked by the
 * runtime, device inputs by the gather kernel).
 *
 * Tolerance: with no --norm-tol, each element within the case's
 * atol + rtol |want| (fp32); with --norm-tol X (tf32, bf16, fp16), the
 * normwise relative error ||got - want|| / ||want|| of every output within
 * X. Any NaN or infinity that the reference does not have fails.
 *
 * Exit status: 0 all passed, 1 a failure, 77 no CUDA device (skip).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_api.h"
#include "rt.h"

typedef struct Dev {
	int cuda, ordinal;
	const RtCuda *cu;
	CUcontext ctx;
	CUdevice dev;
} Dev;

static int verbose;
static int emulate; /* --emu: tests/gpu/fake_cuda.c runs NAME.emu.so */

static int dev_init(Dev *d)
{
	if (!d->cuda)
		return 0;
	if (!(d->cu = rt_cuda_load()))
		return -1;
	if (d->cu->cuDeviceGet(&d->dev, d->ordinal) ||
	    d->cu->cuDevicePrimaryCtxRetain(&d->ctx, d->dev) ||
	    d->cu->cuCtxPushCurrent(d->ctx))
		return -1;
	return 0;
}

static void *dev_alloc(Dev *d, size_t n)
{
	CUdeviceptr p = 0;
	if (d->cu->cuMemAlloc(&p, n ? n : 16))
		return NULL;
	return (void *)(uintptr_t)p;
}

static int poison(Dev *d, DLTensor *t, size_t bytes)
{
	int is_f32 = t->dtype.code == kDLFloat && t->dtype.bits == 32;
	if (t->device.device_type == kDLCUDA) {
		size_t n = is_f32 ? bytes / 4 : bytes / 4 + 1;
		return d->cu->cuMemsetD32Async((CUdeviceptr)(uintptr_t)t->data,
		                               is_f32 ? 0x7fc00000u : 0x5a5a5a5au, n,
		                               NULL) ||
		       d->cu->cuStreamSynchronize(NULL);
	}
	if (is_f32)
		for (size_t e = 0; e < bytes / 4; e++)
			((float *)t->data)[e] = NAN;
	else
		memset(t->data, 0x5a, bytes);
	return 0;
}

typedef struct Line {
	char name[128];
	int nbind;
	long long bs[8][2];
	double rtol, atol;
	int expect_fail;
	char object[128];
} Line;

static int parse_line(const char *s, Line *l)
{
	int n = 0, k;
	memset(l, 0, sizeof *l);
	if (sscanf(s, "%127s %d%n", l->name, &l->nbind, &n) != 2 || l->nbind > 8)
		return 0;
	s += n;
	for (int b = 0; b < l->nbind; b++) {
		if (sscanf(s, "%lld %lld%n", &l->bs[b][0], &l->bs[b][1], &k) != 2)
			return 0;
		s += k;
	}
	return sscanf(s, "%lf %lf %d %127s", &l->rtol, &l->atol, &l->expect_fail,
	              l->object) == 4;
}

/* Compares output j (host copy in got) with the reference; 0 when ok. */
static int compare(const Line *l, const RtStTensor *ref, const DLTensor *t,
                   const void *got, double norm_tol, char *why, size_t wl)
{
	int64_t n = rt_numel(t->ndim, t->shape);
	if (rt_numel(ref->ndim, ref->shape) != n) {
		snprintf(why, wl, "%s has %lld elements, the reference %lld", ref->name,
		         (long long)n, (long long)rt_numel(ref->ndim, ref->shape));
		return 1;
	}
	double num = 0, den = 0, worst = 0;
	int64_t at = -1;
	for (int64_t e = 0; e < n; e++) {
		double g, w;
		rt_convert((DLDataType){kDLFloat, 64, 1}, &g, t->dtype,
		           (const char *)got + e * (int64_t)rt_dtype_size(t->dtype), 1);
		rt_convert((DLDataType){kDLFloat, 64, 1}, &w, ref->dtype,
		           ref->data + e * (int64_t)rt_dtype_size(ref->dtype), 1);
		double err;
		if (isnan(w) || isnan(g))
			err = isnan(w) && isnan(g) ? 0 : INFINITY;
		else if (isinf(w) || isinf(g))
			err = w == g ? 0 : INFINITY;
		else if (norm_tol > 0) {
			num += (g - w) * (g - w);
			den += w * w;
			err = 0;
		} else
			err = fabs(g - w) / (l->atol + l->rtol * fabs(w));
		if (!(err <= worst)) {
			worst = err;
			at = e;
		}
		if (isinf(err))
			break;
	}
	if (isinf(worst) || (norm_tol <= 0 && worst > 1)) {
		double g = 0, w = 0;
		rt_convert((DLDataType){kDLFloat, 64, 1}, &g, t->dtype,
		           (const char *)got + at * (int64_t)rt_dtype_size(t->dtype), 1);
		rt_convert((DLDataType){kDLFloat, 64, 1}, &w, ref->dtype,
		           ref->data + at * (int64_t)rt_dtype_size(ref->dtype), 1);
		snprintf(why, wl, "%s element %lld: got %.9g, want %.9g (%.3g x tol)",
		         ref->name, (long long)at, g, w, worst);
		return 1;
	}
	if (norm_tol > 0) {
		double rel = den > 0 ? sqrt(num / den) : sqrt(num);
		if (verbose)
			printf("    %s: normwise rel err %.3g\n", ref->name, rel);
		if (!(rel <= norm_tol)) {
			snprintf(why, wl, "%s: normwise relative error %.3g > %.3g",
			         ref->name, rel, norm_tol);
			return 1;
		}
	}
	return 0;
}

static int run_case(const char *dir, const Line *l, Dev *d, double norm_tol, int *skip)
{
	char path[1024], why[2048] = "";
	void *lib;
	SlapoGetApiFn get;
	const SlapoApi *api = NULL;
	SlapoModel *m = NULL;
	SlapoWeights *w = NULL;
	SlapoSession *s = NULL;
	const SlapoModelInfo *info;
	int bad = 1;
	if (emulate) {
		snprintf(path, sizeof path, "%s/%s.emu.so", dir, l->name);
		setenv("SLAPO_EMU_KERNELS", path, 1);
	}
	snprintf(path, sizeof path, "%s/%s.so", dir, l->name);
	if (!(lib = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
		snprintf(why, sizeof why, "dlopen: %s", dlerror());
		goto out;
	}
	*(void **)&get = dlsym(lib, SLAPO_GET_API_SYMBOL);
	if (!get || !(api = get(SLAPO_ABI_MAJOR))) {
		snprintf(why, sizeof why, "no slapo API in %s", path);
		goto out;
	}
	SlapoWeightsParams wp = SLAPO_WEIGHTS_PARAMS_INIT;
	wp.device = d->cuda ? (DLDevice){kDLCUDA, d->ordinal} : (DLDevice){kDLCPU, 0};
	if (api->model_open(&m) || api->model_info(m, &info)) {
		snprintf(why, sizeof why, "model_open: %s", api->last_error()->message);
		goto out;
	}
	if (api->weights_create(m, &wp, &w)) {
		SlapoStatus st = api->last_error()->code;
		snprintf(why, sizeof why, "weights_create: %s",
		         api->last_error()->message);
		if (d->cuda && (st == SLAPO_UNSUPPORTED || st == SLAPO_DEVICE))
			*skip = 1;
		goto out;
	}
	snprintf(path, sizeof path, "%s/%s.w.safetensors", dir, l->name);
	const char *files[1] = {path};
	if (api->weights_load_safetensors(w, files, 1, 0) ||
	    api->session_create(w, NULL, &s)) {
		snprintf(why, sizeof why, "weights/session: %s",
		         api->last_error()->message);
		goto out;
	}
	bad = 0;
	for (int b = 0; b < l->nbind && !bad; b++) {
		RtStFile in, ref;
		int have_ref = 0;
		snprintf(path, sizeof path, "%s/%s.b%d.in.safetensors", dir, l->name, b);
		if (rt_st_open(path, &in)) {
			snprintf(why, sizeof why, "%s", rt_last_error()->message);
			bad = 1;
			break;
		}
		if (!l->expect_fail) {
			snprintf(path, sizeof path, "%s/%s.b%d.ref.safetensors", dir,
			         l->name, b);
			if (rt_st_open(path, &ref)) {
				snprintf(why, sizeof why, "%s", rt_last_error()->message);
				rt_st_close(&in);
				bad = 1;
				break;
			}
			have_ref = 1;
		}
		int on_dev = d->cuda && b % 2 == 1;
		DLTensor ti[16], to[16];
		const DLTensor *pi[16];
		DLTensor *po[16];
		int64_t osh[16][RT_MAX_NDIM];
		void *host_out[16] = {0};
		size_t obytes[16];
		int nin = info->n_inputs, nout = info->n_outputs;
		memset(ti, 0, sizeof ti);
		memset(to, 0, sizeof to);
		for (int i = 0; i < nin && !bad; i++) {
			char nm[16];
			snprintf(nm, sizeof nm, "in%d", i);
			const RtStTensor *ft = rt_st_find(&in, nm);
			if (!ft) {
				snprintf(why, sizeof why, "no %s in the inputs", nm);
				bad = 1;
				break;
			}
			size_t bytes = (size_t)(ft->end - ft->begin);
			ti[i].ndim = ft->ndim;
			ti[i].shape = (int64_t *)ft->shape;
			ti[i].dtype = ft->dtype;
			ti[i].device = (DLDevice){kDLCPU, 0};
			ti[i].data = malloc(bytes + 16);
			memcpy(ti[i].data, ft->data, bytes);
			if (on_dev) {
				void *dp = dev_alloc(d, bytes);
				if (!dp || d->cu->cuMemcpyHtoD((CUdeviceptr)(uintptr_t)dp,
				                               ti[i].data, bytes)) {
					snprintf(why, sizeof why,
					         "cannot copy an input to the GPU");
					bad = 1;
				}
				free(ti[i].data);
				ti[i].data = dp;
				ti[i].device = (DLDevice){kDLCUDA, d->ordinal};
			}
			pi[i] = &ti[i];
		}
		for (int j = 0; j < nout && !bad; j++) {
			const SlapoTensorSpec *sp;
			api->model_tensor(m, SLAPO_OUTPUT, j, &sp);
			if (api->model_output_shape(m, pi, nin, j, osh[j])) {
				snprintf(why, sizeof why, "model_output_shape: %s",
				         api->last_error()->message);
				bad = 1;
				break;
			}
			obytes[j] = (size_t)rt_numel(sp->ndim, osh[j]) *
			            rt_dtype_size(sp->dtype);
			to[j].ndim = sp->ndim;
			to[j].shape = osh[j];
			to[j].dtype = sp->dtype;
			host_out[j] = malloc(obytes[j] + 16);
			to[j].device = on_dev ? (DLDevice){kDLCUDA, d->ordinal}
			                      : (DLDevice){kDLCPU, 0};
			to[j].data = on_dev ? dev_alloc(d, obytes[j] + 16) : host_out[j];
			po[j] = &to[j];
		}
		int reps = d->cuda ? 3 : 1;
		for (int r = 0; r < reps && !bad; r++) {
			for (int j = 0; j < nout && !bad; j++)
				if (poison(d, &to[j], obytes[j])) {
					snprintf(why, sizeof why,
					         "cannot poison an output");
					bad = 1;
				}
			SlapoStatus st =
			        bad ? SLAPO_OK : api->session_run(s, pi, nin, po, nout);
			if (bad)
				break;
			if (l->expect_fail) {
				const SlapoError *e = api->last_error();
				if (st == SLAPO_OK) {
					snprintf(
					        why, sizeof why,
					        "B=%lld S=%lld run %d: succeeded; expected a failure",
					        l->bs[b][0], l->bs[b][1], r);
					bad = 1;
				} else if (strcmp(l->object, "-") &&
				           strcmp(e->object_name, l->object)) {
					snprintf(why, sizeof why,
					         "failed naming '%s' (%s), expected '%s'",
					         e->object_name, e->message, l->object);
					bad = 1;
				} else if (verbose) {
					printf("    expected failure: %s\n", e->message);
				}
				continue;
			}
			if (st != SLAPO_OK) {
				snprintf(why, sizeof why,
				         "B=%lld S=%lld run %d (%s I/O): %s: %s",
				         l->bs[b][0], l->bs[b][1], r,
				         on_dev ? "device" : "host", api->status_name(st),
				         api->last_error()->message);
				bad = 1;
				break;
			}
			for (int j = 0; j < nout && !bad; j++) {
				char nm[16], w2[400];
				snprintf(nm, sizeof nm, "out%d", j);
				const RtStTensor *rt = rt_st_find(&ref, nm);
				if (on_dev && d->cu->cuMemcpyDtoH(
				                      host_out[j],
				                      (CUdeviceptr)(uintptr_t)to[j].data,
				                      obytes[j])) {
					snprintf(why, sizeof why,
					         "cannot copy an output back");
					bad = 1;
				} else if (!rt) {
					snprintf(why, sizeof why,
					         "no %s in the reference", nm);
					bad = 1;
				} else if (compare(l, rt, &to[j], host_out[j], norm_tol,
				                   w2, sizeof w2)) {
					snprintf(why, sizeof why,
					         "B=%lld S=%lld run %d (%s I/O): %s",
					         l->bs[b][0], l->bs[b][1], r,
					         on_dev ? "device" : "host", w2);
					bad = 1;
				}
			}
		}
		for (int i = 0; i < nin; i++) {
			if (on_dev && ti[i].data)
				d->cu->cuMemFree((CUdeviceptr)(uintptr_t)ti[i].data);
			else
				free(ti[i].data);
		}
		for (int j = 0; j < nout; j++) {
			if (on_dev && to[j].data)
				d->cu->cuMemFree((CUdeviceptr)(uintptr_t)to[j].data);
			free(host_out[j]);
		}
		rt_st_close(&in);
		if (have_ref)
			rt_st_close(&ref);
	}
out:
	if (api) {
		api->session_free(s);
		api->weights_free(w);
		api->model_close(m);
	}
	if (!*skip)
		printf("%s %s%s%s\n", bad ? "FAIL" : "ok  ", l->name, bad ? ": " : "",
		       bad ? why : "");
	else
		printf("skip: %s\n", why);
	fflush(stdout);
	return bad;
}

/* --fault NAME: with SLAPO_CUDA_TEST_FAULT the first kernel of a session
 * writes to an invalid address: the run must return SLAPO_DEVICE_LOST with
 * the CUDA error, and so must the next one (the session is poisoned). Run
 * it last: the process's CUDA context is unusable afterwards. */
static int fault_test(const char *dir, const char *name, Dev *d)
{
	char path[1024];
	void *lib;
	SlapoGetApiFn get;
	const SlapoApi *api;
	SlapoModel *m = NULL;
	SlapoWeights *w = NULL;
	SlapoSession *s = NULL;
	int bad = 0;
	setenv("SLAPO_CUDA_TEST_FAULT", "1", 1);
	if (emulate) {
		snprintf(path, sizeof path, "%s/%s.emu.so", dir, name);
		setenv("SLAPO_EMU_KERNELS", path, 1);
	}
	snprintf(path, sizeof path, "%s/%s.so", dir, name);
	if (!(lib = dlopen(path, RTLD_NOW | RTLD_LOCAL)) ||
	    !(*(void **)&get = dlsym(lib, SLAPO_GET_API_SYMBOL)) ||
	    !(api = get(SLAPO_ABI_MAJOR))) {
		printf("FAIL fault: cannot load %s\n", path);
		return 1;
	}
	SlapoWeightsParams wp = SLAPO_WEIGHTS_PARAMS_INIT;
	wp.device = (DLDevice){kDLCUDA, d->ordinal};
	snprintf(path, sizeof path, "%s/%s.w.safetensors", dir, name);
	const char *files[1] = {path};
	if (api->model_open(&m) || api->weights_create(m, &wp, &w) ||
	    api->weights_load_safetensors(w, files, 1, 0) ||
	    api->session_create(w, NULL, &s)) {
		printf("FAIL fault: setup: %s\n", api->last_error()->message);
		return 1;
	}
	RtStFile in;
	snprintf(path, sizeof path, "%s/%s.b1.in.safetensors", dir, name);
	if (rt_st_open(path, &in)) {
		printf("FAIL fault: %s\n", rt_last_error()->message);
		return 1;
	}
	const SlapoModelInfo *info;
	api->model_info(m, &info);
	DLTensor ti[16], to[16];
	const DLTensor *pi[16];
	DLTensor *po[16];
	int64_t osh[16][RT_MAX_NDIM];
	for (int i = 0; i < info->n_inputs; i++) {
		char nm[16];
		snprintf(nm, sizeof nm, "in%d", i);
		const RtStTensor *ft = rt_st_find(&in, nm);
		ti[i] = (DLTensor){(void *)ft->data,     {kDLCPU, 0}, ft->ndim, ft->dtype,
		                   (int64_t *)ft->shape, NULL,        0};
		pi[i] = &ti[i];
	}
	for (int j = 0; j < info->n_outputs; j++) {
		const SlapoTensorSpec *sp;
		api->model_tensor(m, SLAPO_OUTPUT, j, &sp);
		api->model_output_shape(m, pi, info->n_inputs, j, osh[j]);
		size_t bytes =
		        (size_t)rt_numel(sp->ndim, osh[j]) * rt_dtype_size(sp->dtype);
		to[j] = (DLTensor){malloc(bytes + 16),
		                   {kDLCPU, 0},
		                   sp->ndim,
		                   sp->dtype,
		                   osh[j],
		                   NULL,
		                   0};
		po[j] = &to[j];
	}
	for (int r = 0; r < 2; r++) {
		SlapoStatus st =
		        api->session_run(s, pi, info->n_inputs, po, info->n_outputs);
		const SlapoError *e = api->last_error();
		if (st != SLAPO_DEVICE_LOST || e->device_error == 0) {
			printf("FAIL fault: run %d returned %s (device_error %d): %s\n",
			       r, api->status_name(st), (int)e->device_error, e->message);
			bad = 1;
		} else {
			printf("ok   fault: run %d: %s, device_error %d: %s\n", r,
			       api->status_name(st), (int)e->device_error, e->message);
		}
	}
	for (int j = 0; j < info->n_outputs; j++)
		free(to[j].data);
	rt_st_close(&in);
	api->session_free(s);
	api->weights_free(w);
	api->model_close(m);
	return bad;
}

int main(int argc, char **argv)
{
	const char *fault = NULL;
	const char *dir = NULL, *filter = NULL;
	Dev d = {0};
	double norm_tol = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--device") && i + 1 < argc) {
			const char *v = argv[++i];
			d.cuda = !strncmp(v, "cuda", 4);
			d.ordinal = d.cuda && v[4] == ':' ? atoi(v + 5) : 0;
		} else if (!strcmp(argv[i], "--norm-tol") && i + 1 < argc) {
			norm_tol = atof(argv[++i]);
		} else if (!strcmp(argv[i], "-v")) {
			verbose = 1;
		} else if (!strcmp(argv[i], "--emu")) {
			emulate = 1;
		} else if (!strcmp(argv[i], "--fault") && i + 1 < argc) {
			fault = argv[++i];
		} else if (!strcmp(argv[i], "--probe")) {
			dir = "";
		} else if (!dir) {
			dir = argv[i];
		} else {
			filter = argv[i];
		}
	}
	if (!dir) {
		fprintf(stderr,
		        "usage: run_cases DIR [--device cuda:N|cpu] [--norm-tol X] [FILTER]\n");
		return 2;
	}
	if (dev_init(&d)) {
		printf("skip: no usable CUDA device: %s\n", rt_last_error()->message);
		return 77;
	}
	if (!*dir) /* --probe */
		return 0;
	if (fault)
		return d.cuda ? fault_test(dir, fault, &d) : 77;
	char mpath[1024], line[2048];
	snprintf(mpath, sizeof mpath, "%s/manifest", dir);
	FILE *man = fopen(mpath, "r");
	if (!man) {
		perror(mpath);
		return 1;
	}
	int n = 0, fails = 0;
	while (fgets(line, sizeof line, man)) {
		Line l;
		if (!parse_line(line, &l)) {
			fprintf(stderr, "bad manifest line: %s", line);
			fails++;
			continue;
		}
		if (filter && !strstr(l.name, filter))
			continue;
		int skip = 0;
		fails += run_case(dir, &l, &d, norm_tol, &skip);
		if (skip) {
			fclose(man);
			return 77;
		}
		n++;
	}
	fclose(man);
	printf("%d of %d cases passed on %s (%s)\n", n - fails, n,
	       d.cuda ? "cuda" : "cpu", dir);
	return fails ? 1 : 0;
}
