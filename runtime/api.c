/* api.c - slapo_get_api, the one symbol a model library exports, and the
 * function table it returns. Each entry resets the calling thread's last
 * error and forwards to the runtime; model_open binds the table to the
 * descriptor the generated code defines (slapo_model_desc). This is the
 * only object of libslapo_rt.a that refers to slapo_model_desc, so tools
 * that link the archive for its other parts (slapo-run) need none.
 */
#include "rt.h"

static const SlapoError *api_last_error(void)
{
	return rt_last_error();
}

static const char *api_status_name(SlapoStatus st)
{
	return rt_status_name(st);
}

static SlapoStatus api_model_open(SlapoModel **out)
{
	rt_clear_error();
	return rt_model_open(&slapo_model_desc, out);
}

static void api_model_close(SlapoModel *m)
{
	rt_clear_error();
	rt_model_close(m);
}

static SlapoStatus api_model_info(const SlapoModel *m, const SlapoModelInfo **out)
{
	rt_clear_error();
	return rt_model_info(m, out);
}

static SlapoStatus api_model_tensor(const SlapoModel *m, SlapoTensorKind kind,
                                    int32_t index, const SlapoTensorSpec **out)
{
	rt_clear_error();
	return rt_model_tensor(m, kind, index, out);
}

static SlapoStatus api_model_find(const SlapoModel *m, SlapoTensorKind kind,
                                  const char *name, int32_t *index)
{
	rt_clear_error();
	return rt_model_find(m, kind, name, index);
}

static SlapoStatus api_model_output_shape(const SlapoModel *m,
                                          const DLTensor *const *inputs, int32_t n_inputs,
                                          int32_t out_index, int64_t *shape)
{
	rt_clear_error();
	return rt_model_output_shape(m, inputs, n_inputs, out_index, shape);
}

static SlapoStatus api_weights_create(SlapoModel *m, const SlapoWeightsParams *p,
                                      SlapoWeights **out)
{
	SlapoStatus st;
	rt_clear_error();
	st = rt_weights_create(m, p, out);
	if (st != SLAPO_OK && p &&
	    p->struct_size >= offsetof(SlapoWeightsParams, log) + sizeof p->log && p->log)
		rt_log(p->log, p->log_user_data, SLAPO_LOG_ERROR, "%s: %s",
		       rt_status_name(st), rt_last_error()->message);
	return st;
}

static void api_weights_free(SlapoWeights *w)
{
	rt_clear_error();
	rt_weights_free(w);
}

static SlapoStatus api_weights_load(SlapoWeights *w, const char *const *paths, int32_t n,
                                    uint32_t flags)
{
	rt_clear_error();
	return rt_weights_fail(w, rt_weights_load(w, paths, n, flags));
}

static SlapoStatus api_weights_init_random(SlapoWeights *w, uint64_t seed)
{
	rt_clear_error();
	return rt_weights_fail(w, rt_weights_init_random(w, seed));
}

static SlapoStatus api_weights_set(SlapoWeights *w, const char *name, const DLTensor *t)
{
	rt_clear_error();
	return rt_weights_fail(w, rt_weights_set(w, name, t));
}

static SlapoStatus api_weights_get(SlapoWeights *w, const char *name,
                                   DLManagedTensorVersioned **out)
{
	rt_clear_error();
	return rt_weights_fail(w, rt_weights_get(w, name, out));
}

static SlapoStatus api_weights_check(const SlapoWeights *w)
{
	rt_clear_error();
	return rt_weights_fail(w, rt_weights_check(w));
}

static SlapoStatus api_session_create(SlapoWeights *w, const SlapoSessionParams *p,
                                      SlapoSession **out)
{
	rt_clear_error();
	return rt_weights_fail(w, rt_session_create(w, p, out));
}

static void api_session_free(SlapoSession *s)
{
	rt_clear_error();
	rt_session_free(s);
}

static SlapoStatus api_session_run(SlapoSession *s, const DLTensor *const *inputs,
                                   int32_t n_inputs, DLTensor *const *outputs,
                                   int32_t n_outputs)
{
	rt_clear_error();
	return rt_session_run(s, inputs, n_inputs, outputs, n_outputs);
}

static SlapoStatus api_session_profile(SlapoSession *s, uint32_t flags)
{
	rt_clear_error();
	return rt_session_profile(s, flags);
}

static SlapoStatus api_session_profile_read(SlapoSession *s, const SlapoProfile **out)
{
	rt_clear_error();
	return rt_session_profile_read(s, out);
}

static int64_t api_testing_fail_alloc(int64_t n)
{
	return rt_testing_fail_alloc(n);
}

static const SlapoApi api_v1 = {
        SLAPO_ABI_MAJOR,
        SLAPO_ABI_MINOR,
        (uint32_t)sizeof(SlapoApi),
        0,
        SLAPO_RT_VERSION,
        api_last_error,
        api_status_name,
        api_model_open,
        api_model_close,
        api_model_info,
        api_model_tensor,
        api_model_find,
        api_model_output_shape,
        api_weights_create,
        api_weights_free,
        api_weights_load,
        api_weights_init_random,
        api_weights_set,
        api_weights_get,
        api_weights_check,
        api_session_create,
        api_session_free,
        api_session_run,
        api_testing_fail_alloc,
        api_session_profile,
        api_session_profile_read,
};

__attribute__((visibility("default"))) const SlapoApi *slapo_get_api(uint32_t abi_major)
{
	return abi_major == SLAPO_ABI_MAJOR ? &api_v1 : NULL;
}
