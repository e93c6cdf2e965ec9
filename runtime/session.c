/* session.c - the SlapoSession handle and session_run: checks inputs and
 * outputs against the model, binds symbolic dims, stages tensors whose
 * layout generated code cannot take (strided, misaligned), checks index
 * inputs' value ranges, sizes the workspace, and calls forward().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

/* A scratch copy of one input or output. */
typedef struct Stage {
	void *buf;
	size_t cap;
} Stage;

struct SlapoSession {
	SlapoWeights *w;
	const SlapoModel *m;
	RtPool *pool;
	atomic_int busy;      /* set while session_run runs */
	void *ws;             /* workspace */
	uint64_t ws_cap;      /* its size */
	uint64_t ws_need;     /* what this run needs */
	int64_t *sym;         /* [n_syms + 1] */
	const void **in_ptrs; /* [n_inputs + 1] what forward sees */
	void **out_ptrs;      /* [n_outputs + 1] */
	Stage *in_stage;      /* [n_inputs + 1] */
	Stage *out_stage;     /* [n_outputs + 1] */
	int64_t *out_shape;   /* [RT_MAX_NDIM] scratch */
	RtErrorSlot err;
	RtGpuSession *gpu;    /* CUDA weights: the device state */
	RtProf *prof;         /* the last profile, or NULL */
	int prof_on;          /* runs are profiled into it */
};

SlapoStatus rt_session_create(SlapoWeights *w, const SlapoSessionParams *p,
                              SlapoSession **out)
{
	SlapoSessionParams q = SLAPO_SESSION_PARAMS_INIT;
	const RtModelDesc *d;
	SlapoSession *s;
	int32_t n_threads;
	SlapoStatus st;
	if (!w || !out)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "session_create: weights or out is NULL");
	*out = NULL;
	if (p) {
		if (p->struct_size < sizeof(size_t))
			return rt_error(SLAPO_INVALID_ARGUMENT, "",
			                "session_create: params->struct_size is %zu; "
			                "set it to sizeof(SlapoSessionParams)",
			                p->struct_size);
		memcpy(&q, p, p->struct_size < sizeof q ? p->struct_size : sizeof q);
	}
	if (q.n_threads < 0)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "session_create: n_threads is %d", (int)q.n_threads);
	if ((st = rt_weights_check(w)) != SLAPO_OK)
		return st;
	n_threads = q.n_threads ? q.n_threads : w->n_threads;
	if (n_threads == 0)
		n_threads = rt_cpu_count();
	d = w->model->desc;
	s = rt_calloc(1, sizeof *s);
	if (!s)
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	s->w = w;
	s->m = w->model;
	s->sym = rt_calloc((size_t)d->n_syms + 1, sizeof *s->sym);
	s->in_ptrs = rt_calloc((size_t)d->n_inputs + 1, sizeof *s->in_ptrs);
	s->out_ptrs = rt_calloc((size_t)d->n_outputs + 1, sizeof *s->out_ptrs);
	s->in_stage = rt_calloc((size_t)d->n_inputs + 1, sizeof *s->in_stage);
	s->out_stage = rt_calloc((size_t)d->n_outputs + 1, sizeof *s->out_stage);
	s->out_shape = rt_calloc(RT_MAX_NDIM, sizeof *s->out_shape);
	if (!s->sym || !s->in_ptrs || !s->out_ptrs || !s->in_stage || !s->out_stage ||
	    !s->out_shape) {
		st = rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
		goto fail;
	}
	if (w->gpu) {
		void *stream = p && p->struct_size >= offsetof(SlapoSessionParams, cuda_stream) +
		                                               sizeof p->cuda_stream
		                       ? p->cuda_stream
		                       : NULL;
		if ((st = rt_gpu_session_create(w, stream, &s->gpu)) != SLAPO_OK)
			goto fail;
		n_threads = 1; /* host work is staging only */
	}
	s->pool = rt_pool_new(n_threads);
	if (!s->pool) {
		st = rt_last_error()->code;
		rt_gpu_session_free(s->gpu);
		goto fail;
	}
	atomic_init(&s->busy, 0);
	rt_weights_retain(w);
	atomic_fetch_add(&w->n_sessions, 1);
	*out = s;
	return SLAPO_OK;
fail:
	rt_free(s->sym);
	rt_free((void *)s->in_ptrs);
	rt_free(s->out_ptrs);
	rt_free(s->in_stage);
	rt_free(s->out_stage);
	rt_free(s->out_shape);
	rt_free(s);
	return st;
}

void rt_session_free(SlapoSession *s)
{
	int32_t i;
	if (!s)
		return;
	rt_gpu_session_free(s->gpu);
	rt_pool_free(s->pool);
	rt_prof_free(s->prof);
	for (i = 0; i < s->m->desc->n_inputs; i++)
		rt_free(s->in_stage[i].buf);
	for (i = 0; i < s->m->desc->n_outputs; i++)
		rt_free(s->out_stage[i].buf);
	rt_free(s->ws);
	rt_free(s->sym);
	rt_free((void *)s->in_ptrs);
	rt_free(s->out_ptrs);
	rt_free(s->in_stage);
	rt_free(s->out_stage);
	rt_free(s->out_shape);
	atomic_fetch_sub(&s->w->n_sessions, 1);
	rt_weights_free(s->w);
	rt_free(s);
}

/* ---- checks ---------------------------------------------------------- */

SlapoStatus rt_check_tensor_device(const char *kind, const char *name, const DLTensor *t,
                                   int32_t device_id)
{
	if (t->device.device_type == kDLCPU || t->device.device_type == kDLCUDAHost)
		return SLAPO_OK;
	if (device_id >= 0 && t->device.device_type == kDLCUDA &&
	    t->device.device_id == device_id)
		return SLAPO_OK;
	if (device_id >= 0)
		return rt_error(SLAPO_DEVICE_MISMATCH, name,
		                "%s '%s' is on device type %d (id %d); this session runs "
		                "on cuda:%d and takes host memory or memory of that GPU",
		                kind, name, (int)t->device.device_type,
		                (int)t->device.device_id, (int)device_id);
	return rt_error(SLAPO_DEVICE_MISMATCH, name,
	                "%s '%s' is on device type %d (id %d); this session runs "
	                "on the CPU and takes host memory",
	                kind, name, (int)t->device.device_type, (int)t->device.device_id);
}

static SlapoStatus check_device(const char *kind, const char *name, const DLTensor *t)
{
	return rt_check_tensor_device(kind, name, t, -1);
}

static SlapoStatus check_outputs(SlapoSession *s, DLTensor *const *outputs,
                                 int32_t n_outputs)
{
	return rt_check_outputs(s->m, s->sym, outputs, n_outputs, -1, s->out_shape);
}

SlapoStatus rt_check_outputs(const SlapoModel *m, const int64_t *sym,
                             DLTensor *const *outputs, int32_t n_outputs,
                             int32_t device_id, int64_t *out_shape)
{
	const RtModelDesc *d = m->desc;
	char a[256], b[256];
	int32_t j;
	SlapoStatus st;
	if (n_outputs != d->n_outputs || (n_outputs > 0 && !outputs))
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "model %s makes %d outputs, got %d%s", d->name,
		                (int)d->n_outputs, (int)n_outputs,
		                n_outputs > 0 && !outputs ? " (outputs is NULL)" : "");
	for (j = 0; j < n_outputs; j++) {
		const RtTensorDesc *od = &d->outputs[j];
		const DLTensor *t = outputs[j];
		if (!t)
			return rt_error(SLAPO_INVALID_ARGUMENT, od->name,
			                "output '%s' (index %d) is NULL", od->name,
			                (int)j);
		if ((st = rt_check_tensor_device("output", od->name, t, device_id)) !=
		    SLAPO_OK)
			return st;
		if (!rt_dtype_eq(t->dtype, od->dtype))
			return rt_error(SLAPO_DTYPE_MISMATCH, od->name,
			                "output '%s' has dtype %s, the model makes %s",
			                od->name, rt_dtype_name(t->dtype, a),
			                rt_dtype_name(od->dtype, b));
		rt_output_shape(m, j, sym, out_shape);
		if (t->ndim != od->ndim || (t->ndim > 0 && !t->shape) ||
		    (t->ndim > 0 &&
		     memcmp(t->shape, out_shape, (size_t)t->ndim * sizeof *t->shape)))
			return rt_error(
			        SLAPO_SHAPE_MISMATCH, od->name,
			        "output '%s' has shape %s; for these inputs the "
			        "model makes %s",
			        od->name,
			        t->ndim >= 0 && t->ndim <= RT_MAX_NDIM && t->shape
			                ? rt_shape_str(a, sizeof a, t->ndim, t->shape,
			                               NULL)
			                : "(invalid)",
			        rt_shape_str(b, sizeof b, od->ndim, out_shape, NULL));
		if (rt_numel(t->ndim, t->shape) < 0)
			return rt_error(SLAPO_SHAPE_MISMATCH, od->name,
			                "output '%s' has too many elements", od->name);
		if (!t->data && rt_numel(t->ndim, t->shape) > 0)
			return rt_error(SLAPO_INVALID_ARGUMENT, od->name,
			                "output '%s' has NULL data", od->name);
	}
	return SLAPO_OK;
}

/* Points *ptr at t's data, or at a compact aligned copy of type `code`
 * (what the CPU code reads or writes) when t is strided or misaligned or
 * of another type (copy_in: fill the copy from t). */
static SlapoStatus stage(Stage *sg, const DLTensor *t, DLDataType code, const char *name,
                         int copy_in, const void **ptr)
{
	size_t esz = rt_dtype_size(code);
	void *p = rt_tensor_ptr(t);
	int64_t n = rt_numel(t->ndim, t->shape);
	size_t bytes;
	if (n == 0 || (rt_dtype_eq(code, t->dtype) && rt_tensor_compact(t) &&
	               (uintptr_t)p % esz == 0)) {
		*ptr = p;
		return SLAPO_OK;
	}
	if ((uint64_t)n > SIZE_MAX / esz)
		return rt_error(SLAPO_OUT_OF_MEMORY, name, "'%s' is too large", name);
	bytes = (size_t)n * esz;
	if (bytes > sg->cap) {
		void *nb = rt_aligned_alloc(bytes);
		if (!nb)
			return rt_error(SLAPO_OUT_OF_MEMORY, name,
			                "out of memory staging '%s' (%zu bytes)", name,
			                bytes);
		rt_free(sg->buf);
		sg->buf = nb;
		sg->cap = bytes;
	}
	if (copy_in)
		rt_copy_nd(code, sg->buf, NULL, t->dtype, p, t->strides, t->ndim, t->shape);
	*ptr = sg->buf;
	return SLAPO_OK;
}

static SlapoStatus check_values(const RtTensorDesc *d, const void *p, int64_t n)
{
	return rt_check_values(d, p, n);
}

/* Index inputs (e.g. token ids) must lie in [0, value_max). */
SlapoStatus rt_check_values(const RtTensorDesc *d, const void *p, int64_t n)
{
	int64_t i, v = 0;
	if (d->value_max <= 0 || (d->dtype.code != kDLInt && d->dtype.code != kDLUInt))
		return SLAPO_OK;
	for (i = 0; i < n; i++) {
		if (d->dtype.bits == 64 && d->dtype.code == kDLInt)
			v = ((const int64_t *)p)[i];
		else if (d->dtype.bits == 32 && d->dtype.code == kDLInt)
			v = ((const int32_t *)p)[i];
		else
			rt_convert(RT_I64, &v, d->dtype,
			           (const char *)p + (size_t)i * rt_dtype_size(d->dtype),
			           1);
		if (v < 0 || v >= d->value_max)
			return rt_error(SLAPO_INVALID_ARGUMENT, d->name,
			                "input '%s' holds %lld at flat index %lld, "
			                "outside the model's range [0, %lld)",
			                d->name, (long long)v, (long long)i,
			                (long long)d->value_max);
	}
	return SLAPO_OK;
}

/* ---- run ------------------------------------------------------------- */

static SlapoStatus prepare(SlapoSession *s, const DLTensor *const *inputs,
                           int32_t n_inputs, DLTensor *const *outputs, int32_t n_outputs)
{
	const RtModelDesc *d = s->m->desc;
	uint64_t ws;
	int32_t i;
	SlapoStatus st;
	if ((st = rt_bind_inputs(s->m, inputs, n_inputs, 1, s->sym)) != SLAPO_OK)
		return st;
	for (i = 0; i < n_inputs; i++)
		if ((st = check_device("input", d->inputs[i].name, inputs[i])) !=
		    SLAPO_OK)
			return st;
	if ((st = check_outputs(s, outputs, n_outputs)) != SLAPO_OK)
		return st;
	for (i = 0; i < n_inputs; i++) {
		if ((st = stage(&s->in_stage[i], inputs[i], inputs[i]->dtype,
		                d->inputs[i].name, 1, &s->in_ptrs[i])) != SLAPO_OK)
			return st;
		if ((st = check_values(&d->inputs[i], s->in_ptrs[i],
		                       rt_numel(inputs[i]->ndim, inputs[i]->shape))) !=
		    SLAPO_OK)
			return st;
	}
	for (i = 0; i < n_outputs; i++)
		if ((st = stage(&s->out_stage[i], outputs[i], rt_cpu_dtype(d->outputs[i].dtype),
		                d->outputs[i].name, 0, (const void **)&s->out_ptrs[i])) !=
		    SLAPO_OK)
			return st;
	ws = d->workspace_size(s->sym);
	if (ws == UINT64_MAX || ws > SIZE_MAX)
		return rt_error(SLAPO_OUT_OF_MEMORY, "workspace",
		                "the workspace for these shapes is too large");
	if (ws > s->ws_cap) {
		void *nb = rt_aligned_alloc((size_t)ws);
		if (!nb)
			return rt_error(
			        SLAPO_OUT_OF_MEMORY, "workspace",
			        "out of memory allocating %llu bytes of workspace",
			        (unsigned long long)ws);
		rt_free(s->ws);
		s->ws = nb;
		s->ws_cap = ws;
	}
	s->ws_need = ws;
	return SLAPO_OK;
}

static SlapoStatus run(SlapoSession *s, const DLTensor *const *inputs, int32_t n_inputs,
                       DLTensor *const *outputs, int32_t n_outputs)
{
	const RtModelDesc *d = s->m->desc;
	RtExec ex;
	int32_t j;
	SlapoStatus st = prepare(s, inputs, n_inputs, outputs, n_outputs);
	if (st != SLAPO_OK)
		return st;
	memset(&ex, 0, sizeof ex);
	ex.desc = d;
	ex.sym = s->sym;
	ex.inputs = s->in_ptrs;
	ex.outputs = s->out_ptrs;
	ex.params = (const void *const *)s->w->data;
	ex.workspace = s->ws_need ? s->ws : NULL;
	ex.workspace_size = s->ws_need;
	ex.n_threads = rt_pool_threads(s->pool);
	ex.pool = s->pool;
	ex.packs = s->w->packs;
	ex.err = &s->err;
	if (s->prof_on) {
		rt_prof_begin_run(s->prof, s->sym);
		ex.prof = s->prof;
	}
	atomic_store(&s->err.taken, 0);
	st = d->forward(&ex);
	if (atomic_load(&s->err.taken))
		return rt_error(s->err.code, s->err.object, "%s", s->err.message);
	if (st != SLAPO_OK)
		return rt_error(st, "", "forward of %s failed (%s)", d->name,
		                rt_status_name(st));
	for (j = 0; j < n_outputs; j++) { /* scatter staged outputs */
		const DLTensor *t = outputs[j];
		if (s->out_ptrs[j] != rt_tensor_ptr(t))
			rt_copy_nd(t->dtype, rt_tensor_ptr(t), t->strides,
			           rt_cpu_dtype(d->outputs[j].dtype), s->out_ptrs[j], NULL,
			           t->ndim, t->shape);
	}
	if (ex.prof)
		rt_prof_end_run(s->prof);
	return SLAPO_OK;
}

/* Takes the session for one call (SLAPO_BUSY if another thread has it). */
static SlapoStatus acquire(SlapoSession *s, const char *what)
{
	int expect = 0;
	if (!s)
		return rt_error(SLAPO_INVALID_ARGUMENT, "", "session is NULL");
	if (!atomic_compare_exchange_strong(&s->busy, &expect, 1))
		return rt_weights_fail(
		        s->w, rt_error(SLAPO_BUSY, "",
		                       "%s: the session is already running on another "
		                       "thread (use one session per thread)",
		                       what));
	return SLAPO_OK;
}

SlapoStatus rt_session_run(SlapoSession *s, const DLTensor *const *inputs,
                           int32_t n_inputs, DLTensor *const *outputs, int32_t n_outputs)
{
	SlapoStatus st = acquire(s, "session_run");
	if (st != SLAPO_OK)
		return st;
	if (s->gpu)
		st = rt_gpu_session_run(s->gpu, s->prof_on ? s->prof : NULL, inputs,
		                        n_inputs, outputs, n_outputs);
	else
		st = run(s, inputs, n_inputs, outputs, n_outputs);
	atomic_store(&s->busy, 0);
	return rt_weights_fail(s->w, st);
}

/* ---- profiles -------------------------------------------------------- */

static SlapoStatus profile(SlapoSession *s, uint32_t flags)
{
	const RtModelDesc *d = s->m->desc;
	RtStepTable t;
	RtProf *p;
	if (flags & ~(uint32_t)(SLAPO_PROFILE_ON | SLAPO_PROFILE_EVENTS) ||
	    (flags && !(flags & SLAPO_PROFILE_ON)))
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "session_profile: flags 0x%x are not SLAPO_PROFILE_OFF, "
		                "or SLAPO_PROFILE_ON with SLAPO_PROFILE_EVENTS or not",
		                (unsigned)flags);
	if (!flags) {
		s->prof_on = 0;
		return SLAPO_OK;
	}
	if (!rt_step_table(d, s->gpu != NULL, &t))
		return rt_error(SLAPO_UNSUPPORTED, "",
		                "model %s has no step table to profile with (a library "
		                "made by a slapoc older than ABI 1.2)",
		                d->name);
	p = rt_prof_new(&t, flags, s->gpu ? SLAPO_DEVICE_BIT_CUDA : SLAPO_DEVICE_BIT_CPU);
	if (!p)
		return rt_last_error()->code;
	rt_prof_free(s->prof);
	s->prof = p;
	s->prof_on = 1;
	return SLAPO_OK;
}

SlapoStatus rt_session_profile(SlapoSession *s, uint32_t flags)
{
	SlapoStatus st = acquire(s, "session_profile");
	if (st != SLAPO_OK)
		return st;
	st = profile(s, flags);
	atomic_store(&s->busy, 0);
	return rt_weights_fail(s->w, st);
}

SlapoStatus rt_session_profile_read(SlapoSession *s, const SlapoProfile **out)
{
	SlapoStatus st;
	if (!out)
		return rt_error(SLAPO_INVALID_ARGUMENT, "", "session_profile_read: out is NULL");
	*out = NULL;
	if ((st = acquire(s, "session_profile_read")) != SLAPO_OK)
		return st;
	if (s->prof)
		*out = rt_prof_read(s->prof);
	else
		st = rt_error(SLAPO_INVALID_ARGUMENT, "",
		              "session_profile_read: the session was never profiled "
		              "(call session_profile first)");
	atomic_store(&s->busy, 0);
	return rt_weights_fail(s->w, st);
}
