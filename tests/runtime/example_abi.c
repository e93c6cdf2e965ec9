/* example_abi.c - the complete example of docs/abi.md: load a model
 * library, load HF weights (or random ones), run a BERT-style model on
 * one sentence of 8 token ids, print the outputs. Built and run by the
 * test suite on the fake model.
 *
 *     cc -std=c11 example_abi.c -I include -ldl -o example
 *     ./example bert.so [model.safetensors]
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <slapo/slapo.h>

static const SlapoApi *api;

static int fail(const char *what)
{
	const SlapoError *e = api->last_error();
	fprintf(stderr, "%s: %s: %s (%s)\n", what, api->status_name(e->code), e->message,
	        e->object_name);
	return 1;
}

int main(int argc, char **argv)
{
	SlapoModel *model = NULL;
	SlapoWeights *weights = NULL;
	SlapoSession *session = NULL;
	const SlapoModelInfo *info;
	SlapoGetApiFn get_api;
	int64_t in_shape[2] = {1, 8}, out_shapes[8][4];
	int64_t ids[8] = {1, 7, 3, 9, 2, 4, 4, 5}, ones[8], zeros[8];
	DLTensor in[8], out[8];
	const DLTensor *in_ptrs[8];
	DLTensor *out_ptrs[8];
	int32_t i, k, rc = 1;
	void *lib;

	memset(out, 0, sizeof out);
	if (argc < 2) {
		fprintf(stderr, "usage: %s MODEL.so [WEIGHTS.safetensors]\n", argv[0]);
		return 2;
	}
	lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	*(void **)&get_api = dlsym(lib, SLAPO_GET_API_SYMBOL);
	api = get_api ? get_api(SLAPO_ABI_MAJOR) : NULL;
	if (!api) {
		fprintf(stderr, "%s: not a slapo model of ABI %d\n", argv[1],
		        SLAPO_ABI_MAJOR);
		return 1;
	}

	/* model -> weights (on the CPU) -> session */
	if (api->model_open(&model) != SLAPO_OK)
		return fail("model_open");
	api->model_info(model, &info);
	if (api->weights_create(model, NULL, &weights) != SLAPO_OK) {
		fail("weights_create");
		goto out;
	}
	if (argc > 2) {
		const char *files[1];
		files[0] = argv[2];
		if (api->weights_load_safetensors(weights, files, 1, 0) != SLAPO_OK) {
			fail("weights_load_safetensors");
			goto out;
		}
	} else if (api->weights_init_random(weights, 1) != SLAPO_OK) {
		fail("weights_init_random");
		goto out;
	}
	if (api->session_create(weights, NULL, &session) != SLAPO_OK) {
		fail("session_create");
		goto out;
	}

	/* inputs: every input of a BERT-style model is i64 [B, S] */
	for (k = 0; k < 8; k++) {
		ones[k] = 1;
		zeros[k] = 0;
	}
	if (info->n_inputs > 8 || info->n_outputs > 8)
		goto out;
	for (i = 0; i < info->n_inputs; i++) {
		const SlapoTensorSpec *spec;
		api->model_tensor(model, SLAPO_INPUT, i, &spec);
		in[i] = (DLTensor){
		        .data = spec->default_fill == SLAPO_FILL_ONES    ? (void *)ones
		                : spec->default_fill == SLAPO_FILL_ZEROS ? (void *)zeros
		                                                         : (void *)ids,
		        .device = {kDLCPU, 0},
		        .ndim = 2,
		        .dtype = {kDLInt, 64, 1},
		        .shape = in_shape,
		};
		in_ptrs[i] = &in[i];
	}
	/* outputs: allocated by the caller, shapes from the model */
	for (i = 0; i < info->n_outputs; i++) {
		const SlapoTensorSpec *spec;
		int64_t n = 1;
		api->model_tensor(model, SLAPO_OUTPUT, i, &spec);
		if (spec->ndim > 4 ||
		    api->model_output_shape(model, in_ptrs, info->n_inputs, i,
		                            out_shapes[i]) != SLAPO_OK) {
			fail("model_output_shape");
			goto out;
		}
		for (k = 0; k < spec->ndim; k++)
			n *= out_shapes[i][k];
		out[i] = (DLTensor){
		        .data = calloc((size_t)n, sizeof(float)),
		        .device = {kDLCPU, 0},
		        .ndim = spec->ndim,
		        .dtype = spec->dtype, /* f32 */
		        .shape = out_shapes[i],
		};
		out_ptrs[i] = &out[i];
	}

	if (api->session_run(session, in_ptrs, info->n_inputs, out_ptrs,
	                     info->n_outputs) != SLAPO_OK) {
		fail("session_run");
	} else {
		for (i = 0; i < info->n_outputs; i++) {
			const SlapoTensorSpec *spec;
			api->model_tensor(model, SLAPO_OUTPUT, i, &spec);
			printf("%s: [", spec->name);
			for (k = 0; k < spec->ndim; k++)
				printf("%s%lld", k ? ", " : "",
				       (long long)out_shapes[i][k]);
			printf("] first value %g\n", ((float *)out[i].data)[0]);
		}
		rc = 0;
	}
out:
	for (i = 0; i < 8; i++)
		free(out[i].data);
	api->session_free(session);
	api->weights_free(weights);
	api->model_close(model);
	return rc;
}
