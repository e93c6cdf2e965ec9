/* slapo-run.c - run a model library made by slapoc from the command line.
 *
 *   slapo-run MODEL.so [--device cpu|cuda[:N]]
 *             [--weights F.safetensors... | --random-weights SEED]
 *             [--inputs IN.safetensors | --batch B --seq S] [--outputs OUT]
 *             [--compare REF [--rtol R --atol A | --norm-tol X]] [--bench N]
 *             [--threads T] [--io host|device] [--profile[=TRACE.json]]
 *
 * It dlopens the library, prints its inputs and outputs, loads weights,
 * builds inputs (from a file, filling defaultable ones, or at random),
 * runs forward, and prints a summary of each output; it can write the
 * outputs, compare them with reference tensors and time the forward
 * call, and profile it kernel by kernel (profile_out.c prints the table
 * and writes the Chrome trace). It uses only the public API (slapo.h) to
 * talk to the model, and
 * libslapo_rt's safetensors reader/writer for files. Every error is one
 * message on stderr and exit status 1.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_api.h"
#include "rt.h"

#define MAX_FILES 64
#define MAX_DIMS  16

typedef struct Opts {
	const char *model;
	const char *device;
	const char *weights[MAX_FILES];
	int n_weights;
	int random_weights;
	uint64_t weights_seed;
	const char *inputs;
	const char *dim_names[MAX_DIMS];
	int64_t dim_values[MAX_DIMS];
	int n_dims;
	uint64_t seed;
	const char *outputs;
	const char *compare;
	double rtol, atol;
	double norm_tol; /* > 0: compare normwise instead */
	int io_device;   /* cuda: pass device tensors (default) */
	int bench;
	int threads;
	int verbosity; /* 0 quiet, 1 normal, 2 verbose */
	int profile;   /* --profile: print the table */
	const char *trace; /* --profile=FILE: and write the Chrome trace */
} Opts;

/* Everything to release at exit. */
typedef struct Run {
	const SlapoApi *api;
	SlapoModel *m;
	SlapoWeights *w;
	SlapoSession *s;
	const SlapoModelInfo *info;
	int32_t n_in, n_out;
	DLTensor *in, *out; /* [n_in], [n_out] */
	int64_t *shapes;    /* room for all dims */
	int64_t *sym;       /* [n_symbols], -1 = unknown */
	RtStFile in_file;
	int have_in_file;
	/* --device cuda with device I/O: device copies of in/out */
	const RtCuda *cu;
	CUcontext ctx;
	CUdevice dev;
	DLTensor *din, *dout; /* [n_in], [n_out] */
	FILE *trace;          /* --profile=FILE, opened before running */
	const char *trace_path;
} Run;

/* profile_out.c */
void profile_print(FILE *f, const SlapoProfile *p);
int profile_write_trace(FILE *f, const SlapoProfile *p, const char *model);

static int verbosity = 1;

static int fail(const char *fmt, ...) RT_PRINTF(1, 2);

static int fail(const char *fmt, ...)
{
	va_list ap;
	fputs("slapo-run: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* Prints the API's last error. */
static int api_fail(const Run *r, const char *what)
{
	const SlapoError *e = r->api->last_error();
	return fail("%s: %s: %s", what, r->api->status_name(e->code), e->message);
}

/* The runtime's log: warnings always, info unless -q, debug with -v.
 * Errors are printed by us from last_error instead. */
static void on_log(int32_t level, const char *msg, void *ud)
{
	static const char *const names[] = {"", "error", "warning", "info", "debug"};
	(void)ud;
	if (level <= SLAPO_LOG_ERROR || level > SLAPO_LOG_DEBUG ||
	    level > SLAPO_LOG_WARN + verbosity)
		return;
	fprintf(stderr, "slapo: %s: %s\n", names[level], msg);
}

static void usage(FILE *f)
{
	fputs("usage: slapo-run MODEL.so [options]\n"
	      "  --device cpu|cuda[:N]    device for the weights (default cpu)\n"
	      "  --weights FILE...        safetensors checkpoint (all shards)\n"
	      "  --random-weights SEED    random parameters instead of a file\n"
	      "  --inputs FILE            inputs by name (safetensors)\n"
	      "  --batch B, --seq S       random inputs of this size\n"
	      "  --dim NAME=VALUE         set any symbolic dim\n"
	      "  --seed N                 seed of random inputs (default 0)\n"
	      "  --outputs FILE           write the outputs (safetensors)\n"
	      "  --compare FILE           compare outputs with reference tensors\n"
	      "  --rtol R, --atol A       tolerance of --compare (1e-4, 1e-5)\n"
	      "  --norm-tol X             --compare by the normwise relative error\n"
	      "                           ||got - ref|| / ||ref|| <= X instead\n"
	      "  --io host|device         with --device cuda: tensors in host or GPU\n"
	      "                           memory (default device: --bench times the model,\n"
	      "                           not the copies)\n"
	      "  --bench N                time N runs after warm-up\n"
	      "  --threads T              threads per session (default: cores); GEMMs\n"
	      "                           use them too unless OPENBLAS_NUM_THREADS is set\n"
	      "  --profile, --profile=FILE  time every kernel of the run (of the --bench\n"
	      "                           runs) and print a table; FILE: also a Chrome\n"
	      "                           trace (JSON)\n"
	      "  -q, --quiet / -v, --verbose\n",
	      f);
}

/* ---- options --------------------------------------------------------- */

static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;
	if (!s || !*s)
		return 0;
	v = strtoll(s, &end, 10);
	if (*end)
		return 0;
	*out = v;
	return 1;
}

static int takes_value(const char *opt)
{
	static const char *const opts[] = {
	        "--device", "--weights", "--random-weights", "--inputs",  "--batch",
	        "--seq",    "--dim",     "--seed",           "--outputs", "--compare",
	        "--rtol",   "--atol",    "--bench",          "--threads", "--norm-tol",
	        "--io",
	};
	size_t i;
	for (i = 0; i < sizeof opts / sizeof opts[0]; i++)
		if (!strcmp(opt, opts[i]))
			return 1;
	return 0;
}

static int parse_opts(int argc, char **argv, Opts *o)
{
	int i;
	int64_t v;
	memset(o, 0, sizeof *o);
	o->device = "cpu";
	o->rtol = 1e-4;
	o->atol = 1e-5;
	o->verbosity = 1;
	o->io_device = 1;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			o->verbosity = 0;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			o->verbosity = 2;
		} else if (takes_value(a) && !val) {
			return fail("option %s needs a value (see --help)", a);
		} else if (!strcmp(a, "--weights")) {
			while (i + 1 < argc && argv[i + 1][0] != '-') {
				if (o->n_weights == MAX_FILES)
					return fail("too many --weights files");
				o->weights[o->n_weights++] = argv[++i];
			}
			if (!o->n_weights)
				return fail("--weights needs a file");
		} else if (!strcmp(a, "--random-weights")) {
			o->random_weights = 1;
			o->weights_seed = strtoull(argv[++i], &end, 10);
			if (*end)
				return fail("--random-weights takes an integer seed");
		} else if (!strcmp(a, "--seed")) {
			o->seed = strtoull(argv[++i], &end, 10);
			if (*end)
				return fail("--seed takes an integer");
		} else if (!strcmp(a, "--device")) {
			o->device = argv[++i];
		} else if (!strcmp(a, "--inputs")) {
			o->inputs = argv[++i];
		} else if (!strcmp(a, "--outputs")) {
			o->outputs = argv[++i];
		} else if (!strcmp(a, "--compare")) {
			o->compare = argv[++i];
		} else if (!strcmp(a, "--batch") || !strcmp(a, "--seq") ||
		           !strcmp(a, "--dim")) {
			const char *name = !strcmp(a, "--batch") ? "B"
			                   : !strcmp(a, "--seq") ? "S"
			                                         : NULL;
			const char *num = argv[++i];
			if (!name) {
				char *eq = strchr(argv[i], '=');
				if (!eq)
					return fail("--dim takes NAME=VALUE");
				*eq = '\0';
				name = argv[i];
				num = eq + 1;
			}
			if (!parse_i64(num, &v) || v < 0)
				return fail("%s takes a non-negative integer", a);
			if (o->n_dims == MAX_DIMS)
				return fail("too many dims given");
			o->dim_names[o->n_dims] = name;
			o->dim_values[o->n_dims++] = v;
		} else if (!strcmp(a, "--norm-tol")) {
			double d = strtod(argv[++i], &end);
			if (*end || d <= 0)
				return fail("%s takes a positive number", a);
			o->norm_tol = d;
		} else if (!strcmp(a, "--io")) {
			const char *v = argv[++i];
			if (strcmp(v, "host") && strcmp(v, "device"))
				return fail("--io takes host or device");
			o->io_device = !strcmp(v, "device");
		} else if (!strcmp(a, "--rtol") || !strcmp(a, "--atol")) {
			double d = strtod(argv[++i], &end);
			if (*end || d < 0)
				return fail("%s takes a non-negative number", a);
			*(a[2] == 'r' ? &o->rtol : &o->atol) = d;
		} else if (!strcmp(a, "--profile")) {
			o->profile = 1;
		} else if (!strncmp(a, "--profile=", 10)) {
			o->profile = 1;
			o->trace = a + 10;
			if (!*o->trace)
				return fail("--profile= needs a file name");
		} else if (!strcmp(a, "--bench") || !strcmp(a, "--threads")) {
			if (!parse_i64(argv[++i], &v) || v < 1 || v > 100000)
				return fail("%s takes a positive integer", a);
			*(a[2] == 'b' ? &o->bench : &o->threads) = (int)v;
		} else if (a[0] == '-') {
			return fail("unknown option %s (see --help)", a);
		} else if (!o->model) {
			o->model = a;
		} else {
			return fail("unexpected argument %s (see --help)", a);
		}
	}
	if (!o->model) {
		usage(stderr);
		return 1;
	}
	if (o->n_weights && o->random_weights)
		return fail("give --weights or --random-weights, not both");
	if (!o->n_weights && !o->random_weights)
		return fail("no weights: give --weights FILE or --random-weights "
		            "SEED");
	return 0;
}

/* ---- model ----------------------------------------------------------- */

static int open_model(const Opts *o, Run *r)
{
	char path[4096];
	void *lib;
	SlapoGetApiFn get;
	SlapoStatus st;
	/* dlopen searches the library path for names without a slash */
	snprintf(path, sizeof path, "%s%s", strchr(o->model, '/') ? "" : "./", o->model);
	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return fail("cannot load %s: %s", o->model, dlerror());
	*(void **)&get = dlsym(lib, SLAPO_GET_API_SYMBOL);
	if (!get)
		return fail("%s is not a slapo model library (no %s)", o->model,
		            SLAPO_GET_API_SYMBOL);
	r->api = get(SLAPO_ABI_MAJOR);
	if (!r->api)
		return fail("%s does not speak slapo ABI %d", o->model, SLAPO_ABI_MAJOR);
	if ((st = r->api->model_open(&r->m)) != SLAPO_OK)
		return api_fail(r, "cannot open the model");
	r->api->model_info(r->m, &r->info);
	r->n_in = r->info->n_inputs;
	r->n_out = r->info->n_outputs;
	return 0;
}

static const SlapoTensorSpec *spec(const Run *r, SlapoTensorKind k, int32_t i)
{
	const SlapoTensorSpec *sp = NULL;
	r->api->model_tensor(r->m, k, i, &sp);
	return sp;
}

static void print_spec(const SlapoTensorSpec *sp)
{
	char dt[24], sh[256];
	printf("  %-28s %s%s", sp->name, rt_dtype_name(sp->dtype, dt),
	       rt_shape_str(sh, sizeof sh, sp->ndim, sp->shape, sp->dim_names));
	if (sp->value_max > 0)
		printf("  values in [0, %lld)", (long long)sp->value_max);
	if (sp->default_fill)
		printf("  default %s",
		       sp->default_fill == SLAPO_FILL_ONES ? "ones" : "zeros");
	printf("\n");
}

static void print_model(const Run *r)
{
	int32_t i, n_tied = 0;
	printf("model %s (slapoc %s, ABI %u.%u)\n", r->info->name,
	       r->info->slapoc_version, r->api->abi_major, r->api->abi_minor);
	printf("inputs:\n");
	for (i = 0; i < r->n_in; i++)
		print_spec(spec(r, SLAPO_INPUT, i));
	printf("outputs:\n");
	for (i = 0; i < r->n_out; i++)
		print_spec(spec(r, SLAPO_OUTPUT, i));
	for (i = 0; i < r->info->n_params; i++)
		n_tied += spec(r, SLAPO_PARAM, i)->tied_to != NULL;
	printf("params: %d tensors (%d tied), %llu elements\n", (int)r->info->n_params,
	       (int)n_tied, (unsigned long long)r->info->n_param_elements);
}

static int load_weights(const Opts *o, Run *r)
{
	SlapoWeightsParams wp = SLAPO_WEIGHTS_PARAMS_INIT;
	if (!strncmp(o->device, "cuda", 4)) {
		wp.device.device_type = kDLCUDA;
		wp.device.device_id = o->device[4] == ':' ? atoi(o->device + 5) : 0;
	} else if (strcmp(o->device, "cpu") != 0) {
		return fail("unknown device %s (cpu or cuda[:N])", o->device);
	}
	wp.n_threads = o->threads;
	wp.log = on_log;
	if (r->api->weights_create(r->m, &wp, &r->w) != SLAPO_OK)
		return api_fail(r, "cannot create the weights");
	if (o->random_weights) {
		if (r->api->weights_init_random(r->w, o->weights_seed) != SLAPO_OK)
			return api_fail(r, "cannot initialise the weights");
	} else if (r->api->weights_load_safetensors(r->w, o->weights, o->n_weights, 0) !=
	           SLAPO_OK) {
		return api_fail(r, "cannot load the weights");
	}
	return 0;
}

/* ---- inputs ---------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* The exclusive bound of an integer input: its spec, else (for token
 * ids) the rows of the word-embedding table. 0 if unknown. */
static int64_t value_bound(const Run *r, const SlapoTensorSpec *sp)
{
	int32_t i;
	if (sp->value_max > 0)
		return sp->value_max;
	if (!strstr(sp->name, "input_ids"))
		return 0;
	for (i = 0; i < r->info->n_params; i++) {
		const SlapoTensorSpec *p = spec(r, SLAPO_PARAM, i);
		if (strstr(p->name, "word_embeddings.weight") && p->ndim == 2)
			return p->shape[0];
	}
	return 0;
}

/* How to fill a missing input: its spec, else HF conventions by name. */
static int fill_kind(const SlapoTensorSpec *sp)
{
	if (sp->default_fill)
		return sp->default_fill;
	if (!strcmp(sp->name, "attention_mask"))
		return SLAPO_FILL_ONES;
	if (!strcmp(sp->name, "token_type_ids"))
		return SLAPO_FILL_ZEROS;
	return SLAPO_FILL_NONE;
}

static int alloc_tensor(DLTensor *t, DLDataType dt, int32_t ndim, int64_t *shape)
{
	int64_t n = rt_numel(ndim, shape);
	memset(t, 0, sizeof *t);
	t->device.device_type = kDLCPU;
	t->dtype = dt;
	t->ndim = ndim;
	t->shape = shape;
	if (n < 0 || (uint64_t)n > SIZE_MAX / 16)
		return fail("tensor too large");
	t->data = rt_aligned_alloc((size_t)n * rt_dtype_size(dt));
	return t->data ? 0 : fail("out of memory");
}

/* Input i from the --inputs file, converted to the model's dtype. */
static int input_from_file(Run *r, int32_t i, const RtStTensor *ft)
{
	const SlapoTensorSpec *sp = spec(r, SLAPO_INPUT, i);
	int64_t *shape = r->shapes + i * MAX_DIMS;
	char a[24], b[24];
	int32_t d;
	if (!rt_can_convert(sp->dtype, ft->dtype))
		return fail("input '%s' in %s is %s; the model takes %s", sp->name,
		            r->in_file.path, ft->dtype_name, rt_dtype_name(sp->dtype, a));
	if (ft->ndim > MAX_DIMS)
		return fail("input '%s' has too many dims", sp->name);
	for (d = 0; d < ft->ndim; d++)
		shape[d] = ft->shape[d];
	if (alloc_tensor(&r->in[i], sp->dtype, ft->ndim, shape))
		return 1;
	rt_convert(sp->dtype, r->in[i].data, ft->dtype, ft->data,
	           rt_numel(ft->ndim, ft->shape));
	if (!rt_dtype_eq(sp->dtype, ft->dtype) && verbosity >= 1)
		printf("note: input '%s' converted from %s to %s\n", sp->name,
		       ft->dtype_name, rt_dtype_name(sp->dtype, b));
	for (d = 0; d < ft->ndim && d < sp->ndim; d++)
		if (sp->dim_symbols[d] >= 0 && r->sym[sp->dim_symbols[d]] < 0)
			r->sym[sp->dim_symbols[d]] = ft->shape[d];
	return 0;
}

/* Input i made up: filled by convention, or random. */
static int input_made(const Opts *o, Run *r, int32_t i, uint64_t *rng)
{
	const SlapoTensorSpec *sp = spec(r, SLAPO_INPUT, i);
	int64_t *shape = r->shapes + i * MAX_DIMS, n, k, bound = 0;
	int fill = fill_kind(sp), is_int;
	int32_t d;
	for (d = 0; d < sp->ndim; d++) {
		int32_t s = sp->dim_symbols[d];
		if (s >= 0 && r->sym[s] < 0)
			return fail("cannot make input '%s': dim %s is unknown (give "
			            "--dim %s=N%s)",
			            sp->name, sp->dim_names[d], sp->dim_names[d],
			            !strcmp(sp->dim_names[d], "B")   ? " or --batch"
			            : !strcmp(sp->dim_names[d], "S") ? " or --seq"
			                                             : "");
		shape[d] = s >= 0 ? r->sym[s] : sp->shape[d];
	}
	is_int = sp->dtype.code == kDLInt || sp->dtype.code == kDLUInt ||
	         sp->dtype.code == kDLBool;
	if (!fill && is_int && (bound = value_bound(r, sp)) <= 0)
		return fail("cannot make input '%s': its valid values are unknown "
		            "(give --inputs)",
		            sp->name);
	if (alloc_tensor(&r->in[i], sp->dtype, sp->ndim, shape))
		return 1;
	n = rt_numel(sp->ndim, shape);
	for (k = 0; k < n; k++) {
		double v = fill == SLAPO_FILL_ONES ? 1 : 0;
		int64_t iv = (int64_t)v;
		void *dst = (char *)r->in[i].data + k * (int64_t)rt_dtype_size(sp->dtype);
		if (!fill && is_int)
			iv = (int64_t)(rng_next(rng) % (uint64_t)bound);
		else if (!fill)
			v = (double)(rng_next(rng) >> 11) / 4503599627370496.0 - 1.0;
		if (is_int)
			rt_convert(sp->dtype, dst, RT_I64, &iv, 1);
		else
			rt_convert(sp->dtype, dst, (DLDataType){kDLFloat, 64, 1}, &v, 1);
	}
	if (verbosity >= 1) {
		if (fill)
			printf("note: input '%s' %sfilled with %s\n", sp->name,
			       o->inputs ? "is not in the inputs file: " : "",
			       fill == SLAPO_FILL_ONES ? "ones" : "zeros");
		else if (is_int)
			printf("note: input '%s' random in [0, %lld)\n", sp->name,
			       (long long)bound);
		else
			printf("note: input '%s' random in [-1, 1)\n", sp->name);
	}
	return 0;
}

static int make_inputs(const Opts *o, Run *r)
{
	uint64_t rng = o->seed;
	int32_t i, s, k;
	for (s = 0; s < r->info->n_symbols; s++)
		r->sym[s] = -1;
	for (k = 0; k < o->n_dims; k++) {
		for (s = 0; s < r->info->n_symbols; s++)
			if (!strcmp(r->info->symbol_names[s], o->dim_names[k]))
				break;
		if (s == r->info->n_symbols)
			return fail("the model has no symbolic dim %s", o->dim_names[k]);
		r->sym[s] = o->dim_values[k];
	}
	if (o->inputs) {
		if (rt_st_open(o->inputs, &r->in_file) != SLAPO_OK)
			return fail("%s", rt_last_error()->message);
		r->have_in_file = 1;
		for (i = 0; i < r->n_in; i++) {
			const RtStTensor *ft =
			        rt_st_find(&r->in_file, spec(r, SLAPO_INPUT, i)->name);
			if (ft && input_from_file(r, i, ft))
				return 1;
		}
	}
	for (i = 0; i < r->n_in; i++) {
		if (r->in[i].data || r->in[i].ndim)
			continue;
		if (o->inputs && !fill_kind(spec(r, SLAPO_INPUT, i)))
			return fail("input '%s' is not in %s and has no default",
			            spec(r, SLAPO_INPUT, i)->name, o->inputs);
		if (input_made(o, r, i, &rng))
			return 1;
	}
	return 0;
}

/* ---- outputs --------------------------------------------------------- */

static int make_outputs(Run *r)
{
	const DLTensor **ins = rt_calloc((size_t)r->n_in + 1, sizeof *ins);
	int32_t i;
	int rc = 0;
	if (!ins)
		return fail("out of memory");
	for (i = 0; i < r->n_in; i++)
		ins[i] = &r->in[i];
	for (i = 0; i < r->n_out && !rc; i++) {
		const SlapoTensorSpec *sp = spec(r, SLAPO_OUTPUT, i);
		int64_t *shape = r->shapes + (r->n_in + i) * MAX_DIMS;
		if (r->api->model_output_shape(r->m, ins, r->n_in, i, shape)) {
			rc = api_fail(r, "bad inputs");
		} else if (!(rc = alloc_tensor(&r->out[i], sp->dtype, sp->ndim, shape))) {
			/* poison: elements the model fails to write show up */
			memset(r->out[i].data, 0xff,
			       (size_t)rt_numel(sp->ndim, shape) *
			               rt_dtype_size(sp->dtype));
		}
	}
	rt_free(ins);
	return rc;
}

/* --device cuda with --io device: the inputs copied to the GPU, the
 * outputs allocated there (poisoned like the host ones). */
static int to_device(const Opts *o, Run *r)
{
	int id;
	int32_t i;
	if (strncmp(o->device, "cuda", 4) || !o->io_device)
		return 0;
	id = o->device[4] == ':' ? atoi(o->device + 5) : 0;
	if (!(r->cu = rt_cuda_load()))
		return fail("%s", rt_last_error()->message);
	if (r->cu->cuDeviceGet(&r->dev, id) || r->cu->cuDevicePrimaryCtxRetain(&r->ctx, r->dev)) {
		r->cu = NULL;
		return fail("cannot use CUDA device %d", id);
	}
	if (r->cu->cuCtxPushCurrent(r->ctx))
		return fail("cannot use CUDA device %d", id);
	r->din = rt_calloc((size_t)r->n_in + 1, sizeof *r->din);
	r->dout = rt_calloc((size_t)r->n_out + 1, sizeof *r->dout);
	if (!r->din || !r->dout)
		return fail("out of memory");
	for (i = 0; i < r->n_in + r->n_out; i++) {
		int is_in = i < r->n_in;
		const DLTensor *h = is_in ? &r->in[i] : &r->out[i - r->n_in];
		DLTensor *dt = is_in ? &r->din[i] : &r->dout[i - r->n_in];
		size_t bytes = (size_t)rt_numel(h->ndim, h->shape) * rt_dtype_size(h->dtype);
		CUdeviceptr p = 0;
		*dt = *h;
		dt->device = (DLDevice){kDLCUDA, id};
		if (r->cu->cuMemAlloc(&p, bytes + 4))
			return fail("cannot allocate %zu bytes on cuda:%d", bytes, id);
		dt->data = (void *)(uintptr_t)p;
		if (is_in ? r->cu->cuMemcpyHtoD(p, h->data, bytes)
		          : r->cu->cuMemsetD32Async(p, 0xffffffffu, bytes / 4 + 1, NULL) ||
		                    r->cu->cuStreamSynchronize(NULL))
			return fail("cannot copy to cuda:%d", id);
	}
	return 0;
}

/* The device outputs back into the host ones. */
static int from_device(Run *r)
{
	int32_t j;
	for (j = 0; r->dout && j < r->n_out; j++) {
		size_t bytes = (size_t)rt_numel(r->out[j].ndim, r->out[j].shape) *
		               rt_dtype_size(r->out[j].dtype);
		if (r->cu->cuMemcpyDtoH(r->out[j].data, (CUdeviceptr)(uintptr_t)r->dout[j].data,
		                        bytes))
			return fail("cannot copy the outputs back from the GPU");
	}
	return 0;
}

/* Output i as doubles (a new array). */
static double *as_f64(const DLTensor *t, int64_t *n)
{
	double *v;
	*n = rt_numel(t->ndim, t->shape);
	v = rt_malloc((size_t)(*n ? *n : 1) * sizeof *v);
	if (v)
		rt_convert((DLDataType){kDLFloat, 64, 1}, v, t->dtype, t->data, *n);
	return v;
}

static void summarize(const DLTensor *t, const char *name)
{
	char dt[24], sh[256];
	int64_t n, k, bad = 0;
	double lo = INFINITY, hi = -INFINITY, sum = 0;
	double *v = as_f64(t, &n);
	if (!v)
		return;
	for (k = 0; k < n; k++) {
		if (!isfinite(v[k])) {
			bad++;
			continue;
		}
		lo = v[k] < lo ? v[k] : lo;
		hi = v[k] > hi ? v[k] : hi;
		sum += v[k];
	}
	printf("output %s: %s%s", name, rt_dtype_name(t->dtype, dt),
	       rt_shape_str(sh, sizeof sh, t->ndim, t->shape, NULL));
	if (n > bad)
		printf("  min %.6g  max %.6g  mean %.6g", lo, hi,
		       sum / (double)(n - bad));
	if (bad)
		printf("  non-finite %lld", (long long)bad);
	printf("\n  [");
	for (k = 0; k < n && k < 8; k++)
		printf("%s%.6g", k ? ", " : "", v[k]);
	printf("%s]\n", n > 8 ? ", ..." : "");
	rt_free(v);
}

/* Compares output j with the reference; 1 if out of tolerance. */
static int compare_one(const Opts *o, const Run *r, const RtStFile *ref, int32_t j)
{
	const SlapoTensorSpec *sp = spec(r, SLAPO_OUTPUT, j);
	const RtStTensor *rt = rt_st_find(ref, sp->name);
	const DLTensor *t = &r->out[j];
	char a[256], b[256];
	double *got, *want, max_abs = 0, max_rel = 0;
	int64_t n, k, nbad = 0, worst = -1;
	if (!rt) {
		printf("compare %s: FAIL: not in %s\n", sp->name, o->compare);
		return 1;
	}
	if (rt->ndim != t->ndim ||
	    memcmp(rt->shape, t->shape, (size_t)t->ndim * sizeof *t->shape)) {
		printf("compare %s: FAIL: shape %s, reference %s\n", sp->name,
		       rt_shape_str(a, sizeof a, t->ndim, t->shape, NULL),
		       rt_shape_str(b, sizeof b, rt->ndim, rt->shape, NULL));
		return 1;
	}
	if (!rt_can_convert((DLDataType){kDLFloat, 64, 1}, rt->dtype)) {
		printf("compare %s: FAIL: reference dtype %s\n", sp->name,
		       rt->dtype_name);
		return 1;
	}
	got = as_f64(t, &n);
	want = rt_malloc((size_t)(n ? n : 1) * sizeof *want);
	if (!got || !want) {
		rt_free(got);
		rt_free(want);
		return fail("out of memory");
	}
	rt_convert((DLDataType){kDLFloat, 64, 1}, want, rt->dtype, rt->data, n);
	if (o->norm_tol > 0) { /* ||got - want|| / ||want||, NaN only where wanted */
		double num = 0, den = 0, rel;
		int64_t nan_bad = 0;
		for (k = 0; k < n; k++) {
			if (isnan(got[k]) || isnan(want[k]) || isinf(got[k]) || isinf(want[k])) {
				nan_bad += !(got[k] == want[k] || (isnan(got[k]) && isnan(want[k])));
				continue;
			}
			num += (got[k] - want[k]) * (got[k] - want[k]);
			den += want[k] * want[k];
		}
		rel = den > 0 ? sqrt(num / den) : sqrt(num);
		printf("compare %s: normwise rel err %.3g (tolerance %g)%s: %s\n", sp->name, rel,
		       o->norm_tol, nan_bad ? ", non-finite mismatches" : "",
		       rel <= o->norm_tol && !nan_bad ? "ok" : "FAIL");
		rt_free(got);
		rt_free(want);
		return !(rel <= o->norm_tol) || nan_bad;
	}
	for (k = 0; k < n; k++) {
		double d = fabs(got[k] - want[k]);
		int ok = d <= o->atol + o->rtol * fabs(want[k]);
		if (isnan(got[k]) || isnan(want[k])) { /* NaN matches only NaN */
			ok = isnan(got[k]) && isnan(want[k]);
			d = ok ? 0 : INFINITY;
		}
		if (!ok && (worst < 0 || d > fabs(got[worst] - want[worst])))
			worst = k;
		nbad += !ok;
		max_abs = d > max_abs ? d : max_abs;
		if (want[k] != 0 && d / fabs(want[k]) > max_rel)
			max_rel = d / fabs(want[k]);
	}
	printf("compare %s: max abs err %.3g, max rel err %.3g: ", sp->name, max_abs,
	       max_rel);
	if (nbad)
		printf("FAIL (%lld of %lld elements out of rtol %g atol %g; worst "
		       "at flat index %lld: got %.9g, want %.9g)\n",
		       (long long)nbad, (long long)n, o->rtol, o->atol, (long long)worst,
		       got[worst], want[worst]);
	else
		printf("ok (rtol %g atol %g)\n", o->rtol, o->atol);
	rt_free(got);
	rt_free(want);
	return nbad != 0;
}

static int write_outputs(const Opts *o, const Run *r)
{
	RtStWriteTensor *ts = rt_calloc((size_t)r->n_out + 1, sizeof *ts);
	const char *meta[] = {"format", "pt", "producer", "slapo-run"};
	int32_t j;
	SlapoStatus st;
	if (!ts)
		return fail("out of memory");
	for (j = 0; j < r->n_out; j++) {
		ts[j].name = spec(r, SLAPO_OUTPUT, j)->name;
		ts[j].dtype = r->out[j].dtype;
		ts[j].ndim = r->out[j].ndim;
		ts[j].shape = r->out[j].shape;
		ts[j].data = r->out[j].data;
	}
	st = rt_st_write(o->outputs, r->n_out, ts, 2, meta);
	rt_free(ts);
	if (st != SLAPO_OK)
		return fail("%s", rt_last_error()->message);
	if (verbosity >= 1)
		printf("wrote %d outputs to %s\n", (int)r->n_out, o->outputs);
	return 0;
}

/* ---- running --------------------------------------------------------- */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* ---- profiles -------------------------------------------------------- */

/* --profile needs the profile entries of the table (ABI 1.2). */
static int profile_supported(const Opts *o, const Run *r)
{
	if (r->api->abi_minor >= 2)
		return 1;
	fail("%s is a library of ABI %u.%u: --profile needs 1.2 (compile it again with "
	     "this slapoc)",
	     o->model, r->api->abi_major, r->api->abi_minor);
	return 0;
}

/* Before the trace is needed: a file we cannot write fails now, not after
 * a long run. */
static int open_trace(const Opts *o, Run *r)
{
	if (!o->profile)
		return 0;
	if (!profile_supported(o, r))
		return 1;
	if (!o->trace)
		return 0;
	r->trace = fopen(o->trace, "w");
	r->trace_path = o->trace;
	if (!r->trace)
		return fail("cannot write the profile trace %s: %s", o->trace,
		            strerror(errno));
	return 0;
}

static int start_profile(const Opts *o, Run *r)
{
	uint32_t flags = SLAPO_PROFILE_ON | (o->trace ? SLAPO_PROFILE_EVENTS : 0);
	if (r->api->session_profile(r->s, flags) != SLAPO_OK)
		return api_fail(r, "cannot profile");
	return 0;
}

static int finish_profile(const Opts *o, Run *r)
{
	const SlapoProfile *p;
	if (r->api->session_profile_read(r->s, &p) != SLAPO_OK)
		return api_fail(r, "cannot read the profile");
	profile_print(stdout, p);
	if (!r->trace)
		return 0;
	int bad = profile_write_trace(r->trace, p, r->info->name) != 0;
	bad |= fclose(r->trace) != 0;
	r->trace = NULL;
	if (bad)
		return fail("cannot write the profile trace %s: %s", o->trace,
		            strerror(errno));
	if (verbosity >= 1)
		printf("profile: wrote %lld events to %s\n", (long long)p->n_events,
		       o->trace);
	return 0;
}

static int run_model(const Opts *o, Run *r)
{
	SlapoSessionParams sp = SLAPO_SESSION_PARAMS_INIT;
	const DLTensor **ins = rt_calloc((size_t)r->n_in + 1, sizeof *ins);
	DLTensor **outs = rt_calloc((size_t)r->n_out + 1, sizeof *outs);
	double *times = NULL;
	int32_t i;
	int rc = 0, k;
	if (!ins || !outs)
		rc = fail("out of memory");
	for (i = 0; !rc && i < r->n_in; i++)
		ins[i] = r->din ? &r->din[i] : &r->in[i];
	for (i = 0; !rc && i < r->n_out; i++)
		outs[i] = r->dout ? &r->dout[i] : &r->out[i];
	sp.n_threads = o->threads;
	if (!rc && r->api->session_create(r->w, &sp, &r->s) != SLAPO_OK)
		rc = api_fail(r, "cannot create a session");
	/* the profile: of the one run, or of the timed runs of --bench */
	if (!rc && o->profile && !o->bench && start_profile(o, r))
		rc = 1;
	if (!rc && r->api->session_run(r->s, ins, r->n_in, outs, r->n_out))
		rc = api_fail(r, "forward failed");
	if (!rc && o->bench > 0) {
		int warm = o->bench < 3 ? o->bench : 3;
		times = rt_malloc((size_t)o->bench * sizeof *times);
		if (!times)
			rc = fail("out of memory");
		for (k = 0; !rc && k < warm + o->bench; k++) {
			double t0;
			if (o->profile && k == warm && start_profile(o, r)) {
				rc = 1;
				break;
			}
			t0 = now_ms();
			if (r->api->session_run(r->s, ins, r->n_in, outs, r->n_out))
				rc = api_fail(r, "forward failed");
			if (k >= warm)
				times[k - warm] = now_ms() - t0;
		}
		if (!rc) {
			qsort(times, (size_t)o->bench, sizeof *times, cmp_double);
			printf("bench: %d runs after %d warm-up: median %.3f ms, min "
			       "%.3f ms, max %.3f ms\n",
			       o->bench, warm, times[o->bench / 2], times[0],
			       times[o->bench - 1]);
		}
	}
	if (!rc && o->profile)
		rc = finish_profile(o, r);
	rt_free(times);
	rt_free(ins);
	rt_free(outs);
	return rc;
}

static void cleanup(Run *r)
{
	int32_t i;
	if (r->api) {
		r->api->session_free(r->s);
		r->api->weights_free(r->w);
		r->api->model_close(r->m);
	}
	for (i = 0; r->cu && r->din && i < r->n_in; i++)
		if (r->din[i].data)
			r->cu->cuMemFree((CUdeviceptr)(uintptr_t)r->din[i].data);
	for (i = 0; r->cu && r->dout && i < r->n_out; i++)
		if (r->dout[i].data)
			r->cu->cuMemFree((CUdeviceptr)(uintptr_t)r->dout[i].data);
	if (r->cu) {
		CUcontext prev;
		r->cu->cuCtxPopCurrent(&prev);
		r->cu->cuDevicePrimaryCtxRelease(r->dev);
	}
	if (r->trace) { /* opened, never written: the run failed */
		fclose(r->trace);
		remove(r->trace_path);
	}
	rt_free(r->din);
	rt_free(r->dout);
	for (i = 0; r->in && i < r->n_in; i++)
		rt_free(r->in[i].data);
	for (i = 0; r->out && i < r->n_out; i++)
		rt_free(r->out[i].data);
	rt_free(r->in);
	rt_free(r->out);
	rt_free(r->shapes);
	rt_free(r->sym);
	if (r->have_in_file)
		rt_st_close(&r->in_file);
}

static int main2(const Opts *o, Run *r)
{
	RtStFile ref;
	int32_t j;
	int bad = 0;
	/* One thread pool, the session's: OpenBLAS threads of its own would
	 * fight it for the cores (runtime/blas.c). Read when it loads. */
	if (!getenv("OPENBLAS_NUM_THREADS"))
		setenv("OPENBLAS_NUM_THREADS", "1", 1);
	if (open_model(o, r) || open_trace(o, r))
		return 1;
	if (verbosity >= 1)
		print_model(r);
	r->in = rt_calloc((size_t)r->n_in + 1, sizeof *r->in);
	r->out = rt_calloc((size_t)r->n_out + 1, sizeof *r->out);
	r->shapes =
	        rt_calloc((size_t)(r->n_in + r->n_out + 1) * MAX_DIMS, sizeof *r->shapes);
	r->sym = rt_calloc((size_t)r->info->n_symbols + 1, sizeof *r->sym);
	if (!r->in || !r->out || !r->shapes || !r->sym)
		return fail("out of memory");
	if (load_weights(o, r) || make_inputs(o, r) || make_outputs(r) || to_device(o, r) ||
	    run_model(o, r) || from_device(r))
		return 1;
	for (j = 0; verbosity >= 1 && j < r->n_out; j++)
		summarize(&r->out[j], spec(r, SLAPO_OUTPUT, j)->name);
	if (o->outputs && write_outputs(o, r))
		return 1;
	if (o->compare) {
		if (rt_st_open(o->compare, &ref) != SLAPO_OK)
			return fail("%s", rt_last_error()->message);
		for (j = 0; j < r->n_out; j++)
			bad |= compare_one(o, r, &ref, j);
		rt_st_close(&ref);
		if (bad)
			return fail("outputs differ from %s", o->compare);
	}
	return 0;
}

int main(int argc, char **argv)
{
	Opts o;
	Run r;
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc;
	verbosity = o.verbosity;
	memset(&r, 0, sizeof r);
	rc = main2(&o, &r);
	cleanup(&r);
	return rc;
}
