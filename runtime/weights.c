/* weights.c - the SlapoWeights handle: parameter storage on a device,
 * loading from HuggingFace safetensors checkpoints (legacy renames, ties,
 * expected extras, missing/shape/dtype errors), explicit random init,
 * setting one parameter from a DLTensor, and read-only DLPack views.
 *
 * Loading is all-or-nothing: every file is opened and validated and every
 * tensor matched and checked before a single byte is copied.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

static const SlapoModel *model_of(const SlapoWeights *w)
{
	return w->model;
}

SlapoStatus rt_weights_fail(const SlapoWeights *w, SlapoStatus st)
{
	if (st != SLAPO_OK && w && w->log)
		rt_log(w->log, w->log_user_data, SLAPO_LOG_ERROR, "%s: %s",
		       rt_status_name(st), rt_last_error()->message);
	return st;
}

/* ---- create / free --------------------------------------------------- */

static SlapoStatus check_device(const SlapoModel *m, DLDevice dev)
{
	if (dev.device_type == kDLCPU) {
		if (dev.device_id != 0)
			return rt_error(SLAPO_INVALID_ARGUMENT, "",
			                "the CPU device id must be 0, not %d",
			                (int)dev.device_id);
		if (!(m->desc->devices & SLAPO_DEVICE_BIT_CPU))
			return rt_error(SLAPO_UNSUPPORTED, "",
			                "model %s was compiled without CPU code",
			                m->desc->name);
		return SLAPO_OK;
	}
	if (dev.device_type == kDLCUDA)
		return SLAPO_OK; /* rt_gpu_weights_create checks the rest */
	return rt_error(SLAPO_UNSUPPORTED, "",
	                "device type %d is not supported; use {kDLCPU, 0} or "
	                "{kDLCUDA, n}",
	                (int)dev.device_type);
}

SlapoStatus rt_weights_create(SlapoModel *m, const SlapoWeightsParams *p,
                              SlapoWeights **out)
{
	SlapoWeightsParams q = SLAPO_WEIGHTS_PARAMS_INIT;
	const RtModelDesc *d;
	SlapoWeights *w;
	RtGpuWeights *gpu = NULL;
	uint64_t total = 0, at = 0;
	int32_t i;
	SlapoStatus st;
	if (!m || !out)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "weights_create: model or out is NULL");
	*out = NULL;
	if (p) {
		size_t need = offsetof(SlapoWeightsParams, device) + sizeof q.device;
		if (p->struct_size < need)
			return rt_error(SLAPO_INVALID_ARGUMENT, "",
			                "weights_create: params->struct_size is %zu; "
			                "set it to sizeof(SlapoWeightsParams)",
			                p->struct_size);
		memcpy(&q, p, p->struct_size < sizeof q ? p->struct_size : sizeof q);
	}
	if ((st = check_device(m, q.device)) != SLAPO_OK)
		return st;
	if (q.n_threads < 0)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "weights_create: n_threads is %d", (int)q.n_threads);
	if (q.device.device_type == kDLCUDA &&
	    (st = rt_gpu_weights_create(m, q.device.device_id, &gpu)) != SLAPO_OK)
		return st;
	d = m->desc;
	for (i = 0; i < d->n_params; i++) {
		uint64_t b =
		        (m->param_bytes[i] + RT_ALIGN - 1) & ~(uint64_t)(RT_ALIGN - 1);
		if (m->storage_of[i] != i)
			continue;
		if (total > UINT64_MAX - b || b < m->param_bytes[i]) {
			rt_gpu_weights_free(gpu);
			return rt_error(SLAPO_OUT_OF_MEMORY, "", "parameters too large");
		}
		total += b;
	}
	w = rt_calloc(1, sizeof *w);
	if (!w) {
		rt_gpu_weights_free(gpu);
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	}
	w->data = rt_calloc((size_t)d->n_params, sizeof *w->data);
	w->is_set = rt_calloc((size_t)d->n_params, 1);
	w->block = total <= SIZE_MAX ? rt_aligned_alloc((size_t)total) : NULL;
	if (!gpu && w->block) /* the CPU's packed GEMM operands, made on first use */
		w->packs = rt_packs_new(w->block, total, q.log, q.log_user_data);
	if (!w->data || !w->is_set || !w->block || (!gpu && !w->packs)) {
		rt_free(w->data);
		rt_free(w->is_set);
		rt_free(w->block);
		rt_packs_free(w->packs);
		rt_free(w);
		rt_gpu_weights_free(gpu);
		return rt_error(SLAPO_OUT_OF_MEMORY, "",
		                "out of memory allocating %llu bytes of parameters",
		                (unsigned long long)total);
	}
	for (i = 0; i < d->n_params; i++) {
		if (m->storage_of[i] != i)
			continue;
		w->data[i] = (char *)w->block + at;
		at += (m->param_bytes[i] + RT_ALIGN - 1) & ~(uint64_t)(RT_ALIGN - 1);
	}
	for (i = 0; i < d->n_params; i++)
		w->data[i] = w->data[m->storage_of[i]];
	atomic_init(&w->refs, 1);
	atomic_init(&w->n_sessions, 0);
	w->model = m;
	w->device = q.device;
	w->n_threads = q.n_threads;
	w->log = q.log;
	w->log_user_data = q.log_user_data;
	w->gpu = gpu;
	if (gpu)
		rt_log(w->log, w->log_user_data, SLAPO_LOG_INFO, "weights of %s on cuda:%d (%s)",
		       d->name, (int)q.device.device_id, rt_gpu_device_name(gpu));
	rt_model_retain(m);
	*out = w;
	return SLAPO_OK;
}

void rt_weights_retain(SlapoWeights *w)
{
	atomic_fetch_add(&w->refs, 1);
}

void rt_weights_free(SlapoWeights *w)
{
	if (!w || atomic_fetch_sub(&w->refs, 1) != 1)
		return;
	rt_gpu_weights_free(w->gpu);
	rt_packs_free(w->packs);
	rt_free(w->block);
	rt_free(w->data);
	rt_free(w->is_set);
	rt_model_close(w->model);
	rt_free(w);
}

/* SLAPO_OK when no session uses the weights, which are then about to
 * change: their packed copies go. */
static SlapoStatus check_frozen(const SlapoWeights *w, const char *what)
{
	int n = atomic_load(&w->n_sessions);
	if (n > 0)
		return rt_error(SLAPO_BUSY, "",
		                "%s: the weights are in use by %d session(s); free "
		                "them first",
		                what, n);
	rt_packs_clear(w->packs);
	return SLAPO_OK;
}

SlapoStatus rt_weights_check(const SlapoWeights *w)
{
	const SlapoModel *m;
	int32_t i, missing = 0, first = -1;
	if (!w)
		return rt_error(SLAPO_INVALID_ARGUMENT, "", "weights is NULL");
	m = model_of(w);
	for (i = 0; i < m->desc->n_params; i++)
		if (m->storage_of[i] == i && !w->is_set[i]) {
			if (first < 0)
				first = i;
			missing++;
		}
	if (missing == 0)
		return SLAPO_OK;
	return rt_error(SLAPO_MISSING_PARAMS, m->desc->params[first].name,
	                "parameter '%s' has not been loaded (%d of %d "
	                "parameters are missing)",
	                m->desc->params[first].name, (int)missing, (int)m->n_distinct);
}

/* ---- loading --------------------------------------------------------- */

/* Where a parameter's data comes from in this load. */
typedef struct Source {
	const RtStTensor *t;
	const char *path;
} Source;

/* Whether pattern matches the start of name; '*' in the pattern stands
 * for one dot-free run of characters (a layer index: "h.*.attn.bias"). */
static int prefix_match(const char *pat, const char *name)
{
	for (; *pat; pat++) {
		if (*pat == '*') {
			if (!*name || *name == '.')
				return 0;
			while (*name && *name != '.')
				name++;
		} else if (*pat != *name++) {
			return 0;
		}
	}
	return 1;
}

/* Whether name (or it with the base prefix added or removed) starts
 * with one of the model's expected-extra prefixes. */
static int is_expected_extra(const SlapoModel *m, const char *name)
{
	const RtModelDesc *d = m->desc;
	const char *pre = d->base_prefix;
	size_t pn = pre ? strlen(pre) : 0;
	int32_t i;
	for (i = 0; i < d->n_ignore; i++) {
		const char *x = d->ignore_prefixes[i];
		if (prefix_match(x, name))
			return 1;
		if (pn && strncmp(x, pre, pn) == 0 && x[pn] == '.' &&
		    prefix_match(x + pn + 1, name))
			return 1; /* "bert.pooler." matches "pooler.dense.weight" */
		if (pn && strncmp(name, pre, pn) == 0 && name[pn] == '.' &&
		    prefix_match(x, name + pn + 1))
			return 1;
	}
	return 0;
}

typedef struct Plan {
	Source *src;   /* [n_params] for storage owners */
	Source *alias; /* [n_params] for tied aliases */
	int n_renamed, n_expected, n_unexpected, n_tied;
} Plan;

/* Matches one file tensor to a parameter and checks it. */
static SlapoStatus plan_tensor(SlapoWeights *w, Plan *pl, const char *path,
                               const RtStTensor *t, uint32_t flags)
{
	const SlapoModel *m = model_of(w);
	const RtTensorDesc *pd;
	Source *slot;
	char a[256], b[256];
	int renamed;
	int32_t i = rt_model_param_lookup(m, t->name, &renamed);
	if (i < 0) {
		if (is_expected_extra(m, t->name)) {
			pl->n_expected++;
			rt_log(w->log, w->log_user_data, SLAPO_LOG_DEBUG,
			       "%s: ignoring '%s' (not used by %s)", path, t->name,
			       m->desc->name);
			return SLAPO_OK;
		}
		if (flags & SLAPO_LOAD_STRICT)
			return rt_error(SLAPO_NOT_FOUND, t->name,
			                "%s: tensor '%s' matches no parameter of %s "
			                "(SLAPO_LOAD_STRICT)",
			                path, t->name, m->desc->name);
		pl->n_unexpected++;
		rt_log(w->log, w->log_user_data, SLAPO_LOG_WARN,
		       "%s: ignoring unexpected tensor '%s': %s has no such "
		       "parameter",
		       path, t->name, m->desc->name);
		return SLAPO_OK;
	}
	pd = &m->desc->params[i];
	slot = m->storage_of[i] == i ? &pl->src[i] : &pl->alias[i];
	if (slot->t)
		return rt_error(SLAPO_FORMAT, pd->name,
		                "parameter '%s' is given twice: as '%s' in %s and "
		                "as '%s' in %s",
		                pd->name, slot->t->name, slot->path, t->name, path);
	if (!rt_dtype_is_float(t->dtype) || !rt_can_convert(pd->dtype, t->dtype))
		return rt_error(SLAPO_DTYPE_MISMATCH, pd->name,
		                "parameter '%s': %s holds %s data, which cannot be "
		                "loaded into a %s parameter",
		                pd->name, path, t->dtype_name,
		                rt_dtype_name(pd->dtype, a));
	if (t->ndim != pd->ndim ||
	    (t->ndim > 0 &&
	     memcmp(t->shape, pd->dims, (size_t)t->ndim * sizeof *t->shape)))
		return rt_error(SLAPO_SHAPE_MISMATCH, pd->name,
		                "parameter '%s': %s has shape %s, the model expects "
		                "%s",
		                pd->name, path,
		                rt_shape_str(a, sizeof a, t->ndim, t->shape, NULL),
		                rt_shape_str(b, sizeof b, pd->ndim, pd->dims, NULL));
	if (renamed) {
		pl->n_renamed++;
		rt_log(w->log, w->log_user_data, SLAPO_LOG_DEBUG,
		       "%s: legacy name '%s' loaded as '%s'", path, t->name, pd->name);
	}
	slot->t = t;
	slot->path = path;
	return SLAPO_OK;
}

/* Fills owners that the files lack from a file copy of a tied alias. */
static void resolve_ties(SlapoWeights *w, Plan *pl)
{
	const SlapoModel *m = model_of(w);
	int32_t i;
	for (i = 0; i < m->desc->n_params; i++) {
		int32_t o = m->storage_of[i];
		if (o == i || !pl->alias[i].t)
			continue;
		if (!pl->src[o].t) {
			pl->src[o] = pl->alias[i];
			rt_log(w->log, w->log_user_data, SLAPO_LOG_INFO,
			       "'%s' loaded from its tied copy '%s'",
			       m->desc->params[o].name, pl->alias[i].t->name);
		} else {
			rt_log(w->log, w->log_user_data, SLAPO_LOG_DEBUG,
			       "'%s' is tied to '%s': its copy in %s is not used",
			       m->desc->params[i].name, m->desc->params[o].name,
			       pl->alias[i].path);
		}
	}
	for (i = 0; i < m->desc->n_params; i++)
		if (m->storage_of[i] != i)
			pl->n_tied++;
}

/* MISSING_PARAMS listing up to 8 names, unless allowed. */
static SlapoStatus check_missing(SlapoWeights *w, const Plan *pl, const char *where,
                                 uint32_t flags)
{
	const SlapoModel *m = model_of(w);
	char list[RT_MSG_MAX / 2];
	size_t at = 0;
	int32_t i, n = 0, first = -1;
	list[0] = '\0';
	for (i = 0; i < m->desc->n_params; i++) {
		if (m->storage_of[i] != i || pl->src[i].t || w->is_set[i])
			continue;
		if (first < 0)
			first = i;
		if (n < 8 && at < sizeof list)
			at += (size_t)snprintf(list + at, sizeof list - at, "%s'%s'",
			                       n ? ", " : "", m->desc->params[i].name);
		n++;
	}
	if (n == 0)
		return SLAPO_OK;
	if (flags & SLAPO_LOAD_ALLOW_MISSING) {
		rt_log(w->log, w->log_user_data, SLAPO_LOG_INFO,
		       "%d parameters are still unset: %s%s", (int)n, list,
		       n > 8 ? ", ..." : "");
		return SLAPO_OK;
	}
	return rt_error(SLAPO_MISSING_PARAMS, m->desc->params[first].name,
	                "%d of %d parameters of %s are missing from %s: %s%s", (int)n,
	                (int)m->n_distinct, m->desc->name, where, list,
	                n > 8 ? ", ..." : "");
}

SlapoStatus rt_weights_load(SlapoWeights *w, const char *const *paths, int32_t n,
                            uint32_t flags)
{
	const SlapoModel *m;
	RtStFile *files = NULL;
	RtPathList list = {NULL, 0};
	Plan pl;
	int32_t i, k, n_open = 0, n_loaded = 0;
	SlapoStatus st = SLAPO_OK;
	if (!w)
		return rt_error(SLAPO_INVALID_ARGUMENT, "", "weights is NULL");
	m = model_of(w);
	if (!paths || n < 1)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "weights_load_safetensors: no files given");
	for (i = 0; i < n; i++)
		if (!paths[i])
			return rt_error(SLAPO_INVALID_ARGUMENT, "",
			                "weights_load_safetensors: paths[%d] is NULL",
			                (int)i);
	if (flags & ~(uint32_t)(SLAPO_LOAD_ALLOW_MISSING | SLAPO_LOAD_STRICT))
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "weights_load_safetensors: unknown flags 0x%x",
		                (unsigned)flags);
	if ((st = check_frozen(w, "weights_load_safetensors")) != SLAPO_OK)
		return st;
	memset(&pl, 0, sizeof pl);
	if ((st = rt_expand_paths(paths, n, &list)) != SLAPO_OK)
		return st;
	if (list.n == 0) {
		st = rt_error(SLAPO_FORMAT, paths[0], "%s lists no shard files",
		              paths[0]);
		goto done;
	}
	files = rt_calloc((size_t)list.n, sizeof *files);
	pl.src = rt_calloc((size_t)m->desc->n_params, sizeof *pl.src);
	pl.alias = rt_calloc((size_t)m->desc->n_params, sizeof *pl.alias);
	if (!files || !pl.src || !pl.alias) {
		st = rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
		goto done;
	}
	for (n_open = 0; n_open < list.n; n_open++)
		if ((st = rt_st_open(list.paths[n_open], &files[n_open])) != SLAPO_OK)
			goto done;
	for (i = 0; i < list.n && st == SLAPO_OK; i++)
		for (k = 0; k < files[i].n_tensors && st == SLAPO_OK; k++)
			st = plan_tensor(w, &pl, list.paths[i], &files[i].tensors[k],
			                 flags);
	if (st != SLAPO_OK)
		goto done;
	resolve_ties(w, &pl);
	st = check_missing(w, &pl, n == 1 ? paths[0] : "the given files", flags);
	if (st != SLAPO_OK)
		goto done;
	for (i = 0; i < m->desc->n_params; i++) {
		const RtStTensor *t = pl.src[i].t;
		if (m->storage_of[i] != i || !t)
			continue;
		rt_convert(m->desc->params[i].dtype, w->data[i], t->dtype, t->data,
		           rt_numel(t->ndim, t->shape));
		w->is_set[i] = 1;
		n_loaded++;
	}
	if (w->gpu)
		rt_gpu_weights_dirty(w->gpu);
	rt_log(w->log, w->log_user_data, SLAPO_LOG_INFO,
	       "loaded %d parameters of %s from %d file(s): %d legacy names "
	       "renamed, %d tied, %d expected extras and %d unexpected tensors "
	       "ignored",
	       (int)n_loaded, m->desc->name, (int)list.n, pl.n_renamed, pl.n_tied,
	       pl.n_expected, pl.n_unexpected);
done:
	for (i = 0; i < n_open; i++)
		rt_st_close(&files[i]);
	rt_free(files);
	rt_free(pl.src);
	rt_free(pl.alias);
	rt_free_paths(&list);
	return st;
}

/* ---- random init ----------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static float unit(uint64_t *s)
{
	return ((float)(splitmix64(s) >> 40) + 1.0f) / 16777216.0f;
}

static uint64_t hash_name(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
	return h;
}

/* Elements per independently seeded block: the values do not depend on
 * how blocks are spread over threads. Even, so pairs never straddle. */
#define INIT_BLOCK 65536

/* One random-init job: blocks of every owned parameter, numbered
 * globally, so the pool balances big and small parameters. */
typedef struct InitJob {
	SlapoWeights *w;
	uint64_t seed;
	int64_t *first_block; /* [n_params + 1] block index where each starts */
} InitJob;

static void init_block(const InitJob *job, int32_t i, int64_t b)
{
	const RtTensorDesc *pd = &job->w->model->desc->params[i];
	size_t esz = rt_dtype_size(pd->dtype);
	int64_t n = rt_numel(pd->ndim, pd->dims), j = b * INIT_BLOCK;
	int64_t end = j + INIT_BLOCK < n ? j + INIT_BLOCK : n;
	float std = pd->init_std > 0 ? pd->init_std : 0.02f;
	uint64_t s = job->seed ^ hash_name(pd->name) ^ ((uint64_t)b << 32);
	float *f32 = rt_dtype_eq(pd->dtype, RT_F32) ? job->w->data[i] : NULL;
	for (; j < end; j += 2) {
		float v[2];
		v[0] = v[1] = pd->init == RT_INIT_ONES ? 1.0f : 0.0f;
		if (pd->init == RT_INIT_NORMAL) { /* Box-Muller, both halves */
			float r = std * sqrtf(-2.0f * logf(unit(&s)));
			float th = 6.2831853f * unit(&s);
			v[0] = r * cosf(th);
			v[1] = r * sinf(th);
		}
		if (f32 && end - j >= 2) { /* the common case, kept tight */
			f32[j] = v[0];
			f32[j + 1] = v[1];
		} else {
			rt_convert(pd->dtype, (char *)job->w->data[i] + (size_t)j * esz,
			           RT_F32, v, end - j < 2 ? 1 : 2);
		}
	}
}

static void init_range(void *ctx, int64_t begin, int64_t end)
{
	const InitJob *job = ctx;
	int32_t i = 0;
	int64_t b;
	for (b = begin; b < end; b++) {
		while (job->first_block[i + 1] <= b)
			i++;
		init_block(job, i, b - job->first_block[i]);
	}
}

SlapoStatus rt_weights_init_random(SlapoWeights *w, uint64_t seed)
{
	const SlapoModel *m;
	InitJob job;
	RtPool *pool;
	int32_t i, n;
	SlapoStatus st;
	if (!w)
		return rt_error(SLAPO_INVALID_ARGUMENT, "", "weights is NULL");
	if ((st = check_frozen(w, "weights_init_random")) != SLAPO_OK)
		return st;
	m = model_of(w);
	n = m->desc->n_params;
	job.w = w;
	job.seed = seed;
	job.first_block = rt_calloc((size_t)n + 1, sizeof *job.first_block);
	if (!job.first_block)
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	for (i = 0; i < n; i++) { /* tied aliases own no blocks */
		int64_t elems = m->storage_of[i] == i ? rt_numel(m->desc->params[i].ndim,
		                                                 m->desc->params[i].dims)
		                                      : 0;
		job.first_block[i + 1] =
		        job.first_block[i] + (elems + INIT_BLOCK - 1) / INIT_BLOCK;
	}
	pool = rt_pool_new(w->n_threads ? w->n_threads : rt_cpu_count());
	if (!pool) {
		rt_free(job.first_block);
		return rt_last_error()->code;
	}
	rt_pool_run(pool, job.first_block[n], 1, init_range, &job);
	rt_pool_free(pool);
	rt_free(job.first_block);
	for (i = 0; i < n; i++)
		if (m->storage_of[i] == i)
			w->is_set[i] = 1;
	if (w->gpu)
		rt_gpu_weights_dirty(w->gpu);
	rt_log(w->log, w->log_user_data, SLAPO_LOG_INFO,
	       "initialised the %d parameters of %s at random (seed %llu)", (int)n,
	       m->desc->name, (unsigned long long)seed);
	return SLAPO_OK;
}

/* ---- one parameter --------------------------------------------------- */

static int32_t lookup(const SlapoWeights *w, const char *name)
{
	const SlapoModel *m = model_of(w);
	int32_t i = rt_model_param_lookup(m, name, NULL);
	if (i < 0)
		rt_error(SLAPO_NOT_FOUND, name, "model %s has no parameter '%s'",
		         m->desc->name, name);
	return i;
}

SlapoStatus rt_weights_set(SlapoWeights *w, const char *name, const DLTensor *t)
{
	const SlapoModel *m;
	const RtTensorDesc *pd;
	char a[256], b[256];
	int32_t i, o;
	SlapoStatus st;
	if (!w || !name || !t)
		return rt_error(SLAPO_INVALID_ARGUMENT, name ? name : "",
		                "weights_set: weights, name or tensor is NULL");
	if ((st = check_frozen(w, "weights_set")) != SLAPO_OK)
		return st;
	if ((i = lookup(w, name)) < 0)
		return SLAPO_NOT_FOUND;
	m = model_of(w);
	o = m->storage_of[i];
	pd = &m->desc->params[o];
	if (t->device.device_type != kDLCPU && t->device.device_type != kDLCUDAHost)
		return rt_error(SLAPO_DEVICE_MISMATCH, pd->name,
		                "parameter '%s': the tensor is on device type %d; "
		                "weights_set takes host memory",
		                pd->name, (int)t->device.device_type);
	if (!rt_dtype_is_float(t->dtype))
		return rt_error(SLAPO_DTYPE_MISMATCH, pd->name,
		                "parameter '%s': a %s tensor cannot be loaded into a "
		                "%s parameter",
		                pd->name, rt_dtype_name(t->dtype, a),
		                rt_dtype_name(pd->dtype, b));
	if (t->ndim != pd->ndim || (t->ndim > 0 && !t->shape) ||
	    (t->ndim > 0 &&
	     memcmp(t->shape, pd->dims, (size_t)t->ndim * sizeof *t->shape)))
		return rt_error(
		        SLAPO_SHAPE_MISMATCH, pd->name,
		        "parameter '%s': the tensor has shape %s, the model "
		        "expects %s",
		        pd->name,
		        t->ndim >= 0 && t->ndim <= RT_MAX_NDIM && t->shape
		                ? rt_shape_str(a, sizeof a, t->ndim, t->shape, NULL)
		                : "(invalid)",
		        rt_shape_str(b, sizeof b, pd->ndim, pd->dims, NULL));
	if (!t->data && m->param_bytes[o] > 0)
		return rt_error(SLAPO_INVALID_ARGUMENT, pd->name,
		                "parameter '%s': the tensor's data is NULL", pd->name);
	rt_copy_nd(pd->dtype, w->data[o], NULL, t->dtype, rt_tensor_ptr(t), t->strides,
	           t->ndim, t->shape);
	w->is_set[o] = 1;
	if (w->gpu)
		rt_gpu_weights_dirty(w->gpu);
	return SLAPO_OK;
}

/* A read-only view; keeps the weights alive. */
typedef struct View {
	DLManagedTensorVersioned mt;
	int64_t shape[RT_MAX_NDIM];
	SlapoWeights *w;
} View;

static void view_deleter(DLManagedTensorVersioned *self)
{
	View *v = self ? self->manager_ctx : NULL;
	if (!v)
		return;
	rt_weights_free(v->w);
	rt_free(v);
}

SlapoStatus rt_weights_get(SlapoWeights *w, const char *name,
                           DLManagedTensorVersioned **out)
{
	const SlapoModel *m;
	const RtTensorDesc *pd;
	View *v;
	int32_t i, o;
	if (!w || !name || !out)
		return rt_error(SLAPO_INVALID_ARGUMENT, name ? name : "",
		                "weights_get: weights, name or out is NULL");
	*out = NULL;
	if ((i = lookup(w, name)) < 0)
		return SLAPO_NOT_FOUND;
	m = model_of(w);
	o = m->storage_of[i];
	pd = &m->desc->params[i];
	if (!w->is_set[o])
		return rt_error(SLAPO_MISSING_PARAMS, pd->name,
		                "parameter '%s' has not been loaded", pd->name);
	v = rt_calloc(1, sizeof *v);
	if (!v)
		return rt_error(SLAPO_OUT_OF_MEMORY, pd->name, "out of memory");
	memcpy(v->shape, pd->dims, (size_t)pd->ndim * sizeof *v->shape);
	v->w = w;
	v->mt.version.major = DLPACK_MAJOR_VERSION;
	v->mt.version.minor = DLPACK_MINOR_VERSION;
	v->mt.manager_ctx = v;
	v->mt.deleter = view_deleter;
	v->mt.flags = DLPACK_FLAG_BITMASK_READ_ONLY;
	v->mt.dl_tensor.data = w->data[o];
	/* the host copy, also for CUDA weights (the device copy is the
	 * sessions' and exists only while they do) */
	v->mt.dl_tensor.device = (DLDevice){kDLCPU, 0};
	v->mt.dl_tensor.ndim = pd->ndim;
	v->mt.dl_tensor.dtype = pd->dtype;
	v->mt.dl_tensor.shape = v->shape;
	v->mt.dl_tensor.strides = NULL;
	v->mt.dl_tensor.byte_offset = 0;
	rt_weights_retain(w);
	*out = &v->mt;
	return SLAPO_OK;
}
