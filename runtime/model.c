/* model.c - the SlapoModel handle: checks the generated descriptor once,
 * builds the introspection records (SlapoModelInfo, SlapoTensorSpec),
 * resolves parameter names (exact, HF legacy renames, base-model prefix),
 * and binds symbolic dims from input shapes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

/* ---- descriptor checks ----------------------------------------------- */

static SlapoStatus bad_desc(const char *object, const char *what)
{
	return rt_error(SLAPO_INTERNAL, object,
	                "invalid model descriptor: %s%s%s (a slapoc bug)",
	                object ? object : "", object ? ": " : "", what);
}

static SlapoStatus check_tensors(const RtModelDesc *d, const RtTensorDesc *ts, int32_t n,
                                 int is_param)
{
	int32_t i, j, k;
	if (n < 0 || (n > 0 && !ts))
		return bad_desc(NULL, "bad tensor list");
	for (i = 0; i < n; i++) {
		const RtTensorDesc *t = &ts[i];
		if (!t->name)
			return bad_desc(NULL, "tensor without a name");
		if (t->ndim < 0 || t->ndim > RT_MAX_NDIM || (t->ndim > 0 && !t->dims))
			return bad_desc(t->name, "bad ndim or dims");
		if (rt_dtype_size(t->dtype) == 0)
			return bad_desc(t->name, "dtype has no byte size");
		if (is_param && !rt_can_convert(t->dtype, RT_F32))
			return bad_desc(t->name, "parameter dtype is not a float");
		for (k = 0; k < t->ndim; k++) {
			int64_t dim = t->dims[k];
			if (RT_DIM_IS_SYM(dim) &&
			    (is_param || RT_DIM_SYM(dim) >= d->n_syms))
				return bad_desc(t->name, is_param ? "symbolic param dim"
				                                  : "bad symbol index");
		}
		if (is_param && rt_numel(t->ndim, t->dims) < 0)
			return bad_desc(t->name, "parameter too large");
		for (j = 0; j < i; j++)
			if (strcmp(ts[j].name, t->name) == 0)
				return bad_desc(t->name, "name used twice");
	}
	return SLAPO_OK;
}

static int32_t find_param(const RtModelDesc *d, const char *name)
{
	int32_t i;
	for (i = 0; name && i < d->n_params; i++)
		if (strcmp(d->params[i].name, name) == 0)
			return i;
	return -1;
}

static SlapoStatus check_desc(const RtModelDesc *d)
{
	int32_t i, j, k, s;
	SlapoStatus st;
	if (!d)
		return bad_desc(NULL, "no descriptor");
	if (d->version < RT_DESC_VERSION_MIN || d->version > RT_DESC_VERSION)
		return rt_error(SLAPO_ABI_MISMATCH, "",
		                "model descriptor version %u, but this runtime reads "
		                "versions %u to %u: the library was linked with a "
		                "mismatched libslapo_rt.a",
		                (unsigned)d->version, (unsigned)RT_DESC_VERSION_MIN,
		                (unsigned)RT_DESC_VERSION);
	if (!d->name || !d->forward || !d->workspace_size)
		return bad_desc(NULL, "missing name, forward or workspace_size");
	if (!!(d->devices & SLAPO_DEVICE_BIT_CUDA) != !!d->gpu)
		return bad_desc(NULL, "the CUDA device bit and the GPU part disagree");
	if (d->gpu) {
		const RtGpuDesc *g = d->gpu;
		if (g->version < RT_GPU_VERSION_MIN || g->version > RT_GPU_VERSION)
			return rt_error(SLAPO_ABI_MISMATCH, "",
			                "GPU descriptor version %u, but this runtime reads "
			                "versions %u to %u",
			                (unsigned)g->version, (unsigned)RT_GPU_VERSION_MIN,
			                (unsigned)RT_GPU_VERSION);
		if (!g->ptx || !g->target || !g->forward || !g->workspace_size ||
		    g->n_kernels < 0 || (g->n_kernels && !g->kernel_names) ||
		    g->n_objects < 0 || (g->n_objects && !g->objects) ||
		    (d->n_params && (!g->param_dtypes || !g->param_offsets)) ||
		    g->precision > RT_PREC_FP16)
			return bad_desc(NULL, "bad GPU part");
		if (g->version >= 3 &&
		    (g->n_kernels_sm90a < 0 || g->n_kernels_sm90a > g->n_kernels ||
		     (g->n_kernels_sm90a && !g->ptx_sm90a)))
			return bad_desc(NULL, "bad sm_90a module in the GPU part");
	}
	for (i = 0; i < 2; i++) {
		RtStepTable t;
		if (!rt_step_table(d, i, &t))
			continue;
		if (t.n < 0 || (t.n > 0 && !t.steps))
			return bad_desc(NULL, "bad step table");
		for (k = 0; k < t.n; k++)
			if (!t.steps[k].name || !t.steps[k].kind)
				return bad_desc(NULL, "step without a name or kind");
	}
	if (d->n_syms < 0 || (d->n_syms > 0 && !d->syms))
		return bad_desc(NULL, "bad symbol list");
	for (s = 0; s < d->n_syms; s++)
		if (!d->syms[s].name || d->syms[s].min < 0 ||
		    (d->syms[s].max != -1 && d->syms[s].max < d->syms[s].min))
			return bad_desc(d->syms[s].name, "bad symbol");
	if ((st = check_tensors(d, d->inputs, d->n_inputs, 0)) != SLAPO_OK ||
	    (st = check_tensors(d, d->outputs, d->n_outputs, 0)) != SLAPO_OK ||
	    (st = check_tensors(d, d->params, d->n_params, 1)) != SLAPO_OK)
		return st;
	/* Every symbol of an output is bound by some input. */
	for (i = 0; i < d->n_outputs; i++)
		for (k = 0; k < d->outputs[i].ndim; k++) {
			int64_t dim = d->outputs[i].dims[k];
			int found = !RT_DIM_IS_SYM(dim);
			for (j = 0; !found && j < d->n_inputs; j++)
				for (s = 0; s < d->inputs[j].ndim; s++)
					found |= d->inputs[j].dims[s] == dim;
			if (!found)
				return bad_desc(d->outputs[i].name,
				                "symbol bound by no input");
		}
	if (d->n_ties < 0 || (d->n_ties > 0 && !d->ties) || d->n_ignore < 0 ||
	    (d->n_ignore > 0 && !d->ignore_prefixes))
		return bad_desc(NULL, "bad tie or ignore list");
	for (i = 0; i < d->n_ignore; i++)
		if (!d->ignore_prefixes[i])
			return bad_desc(NULL, "NULL ignore prefix");
	for (i = 0; i < d->n_ties; i++) {
		const RtTensorDesc *a, *b;
		int32_t pa = find_param(d, d->ties[i].param);
		int32_t pb = find_param(d, d->ties[i].tied_to);
		if (pa < 0 || pb < 0 || pa == pb)
			return bad_desc(d->ties[i].param, "tie to an unknown param");
		a = &d->params[pa];
		b = &d->params[pb];
		if (!rt_dtype_eq(a->dtype, b->dtype) || a->ndim != b->ndim ||
		    (a->ndim > 0 &&
		     memcmp(a->dims, b->dims, (size_t)a->ndim * sizeof *a->dims)))
			return bad_desc(a->name, "tied params differ in dtype/shape");
		for (j = 0; j < d->n_ties; j++) {
			if (j != i && strcmp(d->ties[j].param, a->name) == 0)
				return bad_desc(a->name, "param tied twice");
			if (strcmp(d->ties[j].param, b->name) == 0)
				return bad_desc(b->name, "tie target is itself tied");
		}
	}
	return SLAPO_OK;
}

int rt_step_table(const RtModelDesc *d, int gpu, RtStepTable *out)
{
	memset(out, 0, sizeof *out);
	if (gpu && d->gpu && d->gpu->version >= 2) {
		out->n = d->gpu->n_steps;
		out->steps = d->gpu->steps;
		out->costs = d->gpu->step_costs;
	} else if (!gpu && d->version >= 3) {
		out->n = d->n_steps;
		out->steps = d->steps;
		out->costs = d->step_costs;
	}
	return out->n != 0;
}

/* ---- the handle ------------------------------------------------------ */

static void model_free(SlapoModel *m)
{
	int k;
	for (k = 0; k < 3; k++) {
		if (m->specs[k] && m->counts[k] > 0) {
			/* shape arrays of a kind are one block, at spec 0 */
			rt_free((void *)m->specs[k][0].shape);
			rt_free((void *)m->specs[k][0].dim_names);
			rt_free((void *)m->specs[k][0].dim_symbols);
		}
		rt_free(m->specs[k]);
	}
	rt_free((void *)m->info.symbol_names);
	rt_free((void *)m->info.symbol_min);
	rt_free((void *)m->info.symbol_max);
	rt_free(m->storage_of);
	rt_free(m->by_name);
	rt_free(m->param_bytes);
	rt_free(m);
}

/* Builds the specs of one kind; returns 0 on out of memory. */
static int build_specs(SlapoModel *m, int kind, const RtTensorDesc *ts, int32_t n)
{
	const RtModelDesc *d = m->desc;
	int32_t i, k, total = 0, at = 0;
	int64_t *shapes;
	const char **names;
	int32_t *syms;
	m->counts[kind] = n;
	m->specs[kind] = rt_calloc((size_t)n, sizeof *m->specs[kind]);
	if (!m->specs[kind])
		return 0;
	if (n == 0) /* no shape block: model_free frees it only when n > 0 */
		return 1;
	for (i = 0; i < n; i++)
		total += ts[i].ndim;
	shapes = rt_calloc((size_t)total, sizeof *shapes);
	names = rt_calloc((size_t)total, sizeof *names);
	syms = rt_calloc((size_t)total, sizeof *syms);
	if (!shapes || !names || !syms) {
		rt_free(shapes);
		rt_free(names);
		rt_free(syms);
		m->counts[kind] = 0; /* nothing for model_free to look at */
		return 0;
	}
	for (i = 0; i < n; i++) {
		SlapoTensorSpec *sp = &m->specs[kind][i];
		sp->name = ts[i].name;
		sp->dtype = ts[i].dtype;
		sp->ndim = ts[i].ndim;
		sp->shape = shapes + at;
		sp->dim_names = names + at;
		sp->dim_symbols = syms + at;
		sp->value_max = kind == SLAPO_INPUT ? ts[i].value_max : 0;
		sp->default_fill = kind == SLAPO_INPUT ? ts[i].fill : 0;
		for (k = 0; k < ts[i].ndim; k++, at++) {
			int64_t dim = ts[i].dims[k];
			shapes[at] = RT_DIM_IS_SYM(dim) ? -1 : dim;
			names[at] =
			        RT_DIM_IS_SYM(dim) ? d->syms[RT_DIM_SYM(dim)].name : NULL;
			syms[at] = RT_DIM_IS_SYM(dim) ? RT_DIM_SYM(dim) : -1;
		}
	}
	return 1;
}

/* The descriptor whose params qsort is ordering. */
static _Thread_local const RtModelDesc *sort_desc;

static int cmp_param_names(const void *a, const void *b)
{
	return strcmp(sort_desc->params[*(const int32_t *)a].name,
	              sort_desc->params[*(const int32_t *)b].name);
}

static int build_params(SlapoModel *m)
{
	const RtModelDesc *d = m->desc;
	int32_t i, n = d->n_params;
	m->storage_of = rt_calloc((size_t)n, sizeof *m->storage_of);
	m->by_name = rt_calloc((size_t)n, sizeof *m->by_name);
	m->param_bytes = rt_calloc((size_t)n, sizeof *m->param_bytes);
	if (!m->storage_of || !m->by_name || !m->param_bytes)
		return 0;
	for (i = 0; i < n; i++) {
		const RtTensorDesc *t = &d->params[i];
		m->storage_of[i] = i;
		m->by_name[i] = i;
		m->param_bytes[i] =
		        (uint64_t)rt_numel(t->ndim, t->dims) * rt_dtype_size(t->dtype);
	}
	for (i = 0; i < d->n_ties; i++) {
		int32_t a = find_param(d, d->ties[i].param);
		int32_t b = find_param(d, d->ties[i].tied_to);
		m->storage_of[a] = b;
		m->specs[SLAPO_PARAM][a].tied_to = d->params[b].name;
	}
	for (i = 0; i < n; i++)
		if (m->storage_of[i] == i) {
			m->n_distinct++;
			m->info.n_param_elements +=
			        (uint64_t)rt_numel(d->params[i].ndim, d->params[i].dims);
		}
	sort_desc = d;
	qsort(m->by_name, (size_t)n, sizeof *m->by_name, cmp_param_names);
	return 1;
}

SlapoStatus rt_model_open(const RtModelDesc *d, SlapoModel **out)
{
	SlapoModel *m;
	SlapoStatus st;
	int32_t s;
	if (!out)
		return rt_error(SLAPO_INVALID_ARGUMENT, "", "model_open: out is NULL");
	*out = NULL;
	if ((st = check_desc(d)) != SLAPO_OK)
		return st;
	m = rt_calloc(1, sizeof *m);
	if (!m)
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	atomic_init(&m->refs, 1);
	m->desc = d;
	m->info.name = d->name;
	m->info.slapoc_version = d->slapoc_version ? d->slapoc_version : "";
	m->info.n_inputs = d->n_inputs;
	m->info.n_outputs = d->n_outputs;
	m->info.n_params = d->n_params;
	m->info.n_symbols = d->n_syms;
	m->info.devices = d->devices;
	{
		const char **names = rt_calloc((size_t)d->n_syms, sizeof *names);
		int64_t *mins = rt_calloc((size_t)d->n_syms, sizeof *mins);
		int64_t *maxs = rt_calloc((size_t)d->n_syms, sizeof *maxs);
		m->info.symbol_names = names;
		m->info.symbol_min = mins;
		m->info.symbol_max = maxs;
		if (names && mins && maxs)
			for (s = 0; s < d->n_syms; s++) {
				names[s] = d->syms[s].name;
				mins[s] = d->syms[s].min;
				maxs[s] = d->syms[s].max;
			}
	}
	if (!m->info.symbol_names || !m->info.symbol_min || !m->info.symbol_max ||
	    !build_specs(m, SLAPO_INPUT, d->inputs, d->n_inputs) ||
	    !build_specs(m, SLAPO_OUTPUT, d->outputs, d->n_outputs) ||
	    !build_specs(m, SLAPO_PARAM, d->params, d->n_params) || !build_params(m)) {
		model_free(m);
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	}
	*out = m;
	return SLAPO_OK;
}

void rt_model_retain(SlapoModel *m)
{
	atomic_fetch_add(&m->refs, 1);
}

void rt_model_close(SlapoModel *m)
{
	if (m && atomic_fetch_sub(&m->refs, 1) == 1)
		model_free(m);
}

/* ---- introspection --------------------------------------------------- */

SlapoStatus rt_model_info(const SlapoModel *m, const SlapoModelInfo **out)
{
	if (!m || !out)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "model_info: model or out is NULL");
	*out = &m->info;
	return SLAPO_OK;
}

static const char *kind_name(SlapoTensorKind kind)
{
	return kind == SLAPO_INPUT ? "input" : kind == SLAPO_OUTPUT ? "output" : "param";
}

SlapoStatus rt_model_tensor(const SlapoModel *m, SlapoTensorKind kind, int32_t index,
                            const SlapoTensorSpec **out)
{
	if (!m || !out || kind < SLAPO_INPUT || kind > SLAPO_PARAM)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "model_tensor: NULL argument or bad kind");
	if (index < 0 || index >= m->counts[kind])
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "model_tensor: %s index %d out of range [0, %d)",
		                kind_name(kind), (int)index, (int)m->counts[kind]);
	*out = &m->specs[kind][index];
	return SLAPO_OK;
}

int32_t rt_model_param_exact(const SlapoModel *m, const char *name)
{
	int32_t lo = 0, hi = m->desc->n_params - 1;
	while (lo <= hi) {
		int32_t mid = lo + (hi - lo) / 2;
		int32_t i = m->by_name[mid];
		int c = strcmp(name, m->desc->params[i].name);
		if (c == 0)
			return i;
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return -1;
}

/* name with a legacy suffix replaced, into buf; 0 if no rule applies. */
static int legacy_rename(const char *name, char *buf, size_t size)
{
	static const char *const rules[][2] = {
	        {"LayerNorm.gamma", "LayerNorm.weight"},
	        {"LayerNorm.beta", "LayerNorm.bias"},
	};
	size_t n = strlen(name), r;
	for (r = 0; r < 2; r++) {
		size_t k = strlen(rules[r][0]);
		if (n >= k && strcmp(name + n - k, rules[r][0]) == 0 &&
		    n - k + strlen(rules[r][1]) < size) {
			memcpy(buf, name, n - k);
			strcpy(buf + n - k, rules[r][1]);
			return 1;
		}
	}
	return 0;
}

/* Tries name, then with base_prefix removed or added. */
static int32_t with_prefix(const SlapoModel *m, const char *name)
{
	const char *pre = m->desc->base_prefix;
	char buf[1024];
	size_t pn;
	int32_t i = rt_model_param_exact(m, name);
	if (i >= 0 || !pre || !*pre)
		return i;
	pn = strlen(pre);
	if (strncmp(name, pre, pn) == 0 && name[pn] == '.')
		return rt_model_param_exact(m, name + pn + 1);
	if (snprintf(buf, sizeof buf, "%s.%s", pre, name) >= (int)sizeof buf)
		return -1;
	return rt_model_param_exact(m, buf);
}

int32_t rt_model_param_lookup(const SlapoModel *m, const char *name, int *renamed)
{
	char buf[1024];
	int32_t i;
	if (renamed)
		*renamed = 0;
	i = with_prefix(m, name);
	if (i >= 0 || !legacy_rename(name, buf, sizeof buf))
		return i;
	i = with_prefix(m, buf);
	if (i >= 0 && renamed)
		*renamed = 1;
	return i;
}

SlapoStatus rt_model_find(const SlapoModel *m, SlapoTensorKind kind, const char *name,
                          int32_t *index)
{
	int32_t i;
	if (!m || !name || !index || kind < SLAPO_INPUT || kind > SLAPO_PARAM)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "model_find: NULL argument or bad kind");
	if (kind == SLAPO_PARAM) {
		i = rt_model_param_lookup(m, name, NULL);
	} else {
		for (i = m->counts[kind] - 1; i >= 0; i--)
			if (strcmp(m->specs[kind][i].name, name) == 0)
				break;
	}
	if (i < 0)
		return rt_error(SLAPO_NOT_FOUND, name, "model %s has no %s named '%s'",
		                m->desc->name, kind_name(kind), name);
	*index = i;
	return SLAPO_OK;
}

/* ---- shapes ---------------------------------------------------------- */

static SlapoStatus shape_error(const SlapoModel *m, int32_t i, const DLTensor *t)
{
	const SlapoTensorSpec *sp = &m->specs[SLAPO_INPUT][i];
	char got[256], want[256];
	rt_shape_str(got, sizeof got, t->ndim, t->shape, NULL);
	rt_shape_str(want, sizeof want, sp->ndim, sp->shape, sp->dim_names);
	return rt_error(SLAPO_SHAPE_MISMATCH, sp->name,
	                "input '%s' has shape %s, the model takes %s", sp->name, got,
	                want);
}

/* Checks input i and binds its symbols; who[s] = input that bound s. */
static SlapoStatus bind_one(const SlapoModel *m, int32_t i, const DLTensor *t,
                            int check_data, int64_t *sym, int32_t *who)
{
	const RtTensorDesc *d = &m->desc->inputs[i];
	char a[24], b[24];
	int32_t k;
	if (!t)
		return rt_error(SLAPO_INVALID_ARGUMENT, d->name,
		                "input '%s' (index %d) is NULL", d->name, (int)i);
	if (!rt_dtype_eq(t->dtype, d->dtype))
		return rt_error(SLAPO_DTYPE_MISMATCH, d->name,
		                "input '%s' has dtype %s, the model takes %s", d->name,
		                rt_dtype_name(t->dtype, a), rt_dtype_name(d->dtype, b));
	if (t->ndim != d->ndim || (t->ndim > 0 && !t->shape)) {
		if (t->ndim < 0 || t->ndim > RT_MAX_NDIM || !t->shape)
			return rt_error(SLAPO_SHAPE_MISMATCH, d->name,
			                "input '%s' has %d dims, the model takes %d",
			                d->name, (int)t->ndim, (int)d->ndim);
		return shape_error(m, i, t);
	}
	for (k = 0; k < d->ndim; k++) {
		int64_t want = d->dims[k], got = t->shape[k];
		int32_t s;
		if (got < 0)
			return shape_error(m, i, t);
		if (!RT_DIM_IS_SYM(want)) {
			if (got != want)
				return shape_error(m, i, t);
			continue;
		}
		s = RT_DIM_SYM(want);
		if (who[s] >= 0) {
			if (sym[s] != got) {
				char sh[256];
				rt_shape_str(sh, sizeof sh, t->ndim, t->shape, NULL);
				return rt_error(
				        SLAPO_SHAPE_MISMATCH, d->name,
				        "input '%s' has shape %s, but %s = %lld from "
				        "input '%s'",
				        d->name, sh, m->desc->syms[s].name,
				        (long long)sym[s], m->desc->inputs[who[s]].name);
			}
			continue;
		}
		if (got < m->desc->syms[s].min ||
		    (m->desc->syms[s].max >= 0 && got > m->desc->syms[s].max))
			return rt_error(SLAPO_SHAPE_MISMATCH, d->name,
			                "input '%s' dim %d: %s = %lld is outside the "
			                "model's range [%lld, %s]",
			                d->name, (int)k, m->desc->syms[s].name,
			                (long long)got, (long long)m->desc->syms[s].min,
			                m->desc->syms[s].max >= 0
			                        ? rt_fmt(a, sizeof a, "%lld",
			                                 (long long)m->desc->syms[s].max)
			                        : "unbounded");
		sym[s] = got;
		who[s] = i;
	}
	if (rt_numel(t->ndim, t->shape) < 0)
		return rt_error(SLAPO_SHAPE_MISMATCH, d->name,
		                "input '%s' has too many elements", d->name);
	if (check_data && !t->data && rt_numel(t->ndim, t->shape) > 0)
		return rt_error(SLAPO_INVALID_ARGUMENT, d->name,
		                "input '%s' has NULL data", d->name);
	return SLAPO_OK;
}

SlapoStatus rt_bind_inputs(const SlapoModel *m, const DLTensor *const *inputs,
                           int32_t n_inputs, int check_data, int64_t *sym)
{
	int32_t who[64], *whop = who, i, s, n_syms = m->desc->n_syms;
	SlapoStatus st = SLAPO_OK;
	if (n_inputs != m->desc->n_inputs || (n_inputs > 0 && !inputs))
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "model %s takes %d inputs, got %d%s", m->desc->name,
		                (int)m->desc->n_inputs, (int)n_inputs,
		                n_inputs > 0 && !inputs ? " (inputs is NULL)" : "");
	if (n_syms > 64) {
		whop = rt_malloc((size_t)n_syms * sizeof *whop);
		if (!whop)
			return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	}
	for (s = 0; s < n_syms; s++) {
		sym[s] = 0;
		whop[s] = -1;
	}
	for (i = 0; i < n_inputs && st == SLAPO_OK; i++)
		st = bind_one(m, i, inputs[i], check_data, sym, whop);
	if (whop != who)
		rt_free(whop);
	return st;
}

void rt_output_shape(const SlapoModel *m, int32_t index, const int64_t *sym,
                     int64_t *shape)
{
	const RtTensorDesc *d = &m->desc->outputs[index];
	int32_t k;
	for (k = 0; k < d->ndim; k++)
		shape[k] = RT_DIM_IS_SYM(d->dims[k]) ? sym[RT_DIM_SYM(d->dims[k])]
		                                     : d->dims[k];
}

SlapoStatus rt_model_output_shape(const SlapoModel *m, const DLTensor *const *inputs,
                                  int32_t n_inputs, int32_t out_index, int64_t *shape)
{
	int64_t *sym;
	SlapoStatus st;
	if (!m || !shape)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "model_output_shape: model or shape is NULL");
	if (out_index < 0 || out_index >= m->desc->n_outputs)
		return rt_error(SLAPO_INVALID_ARGUMENT, "",
		                "model_output_shape: output index %d out of range "
		                "[0, %d)",
		                (int)out_index, (int)m->desc->n_outputs);
	sym = rt_malloc((size_t)(m->desc->n_syms + 1) * sizeof *sym);
	if (!sym)
		return rt_error(SLAPO_OUT_OF_MEMORY, "", "out of memory");
	st = rt_bind_inputs(m, inputs, n_inputs, 0, sym);
	if (st == SLAPO_OK)
		rt_output_shape(m, out_index, sym, shape);
	rt_free(sym);
	return st;
}
