/* test_gpu_desc.c - the GPU part's sm_90a module (Hopper's kernels: the
 * last n_kernels_sm90a of kernel_names).
 *
 *   test_gpu_desc OK.so BAD.so [EMU_H.so EMU.so]
 *
 * When a model is opened, the module's kernel count must lie within
 * n_kernels: a library with 1 of its 2 kernels there opens (no GPU needed),
 * one that claims 3 of 2 is refused with SLAPO_INTERNAL, saying what is
 * wrong. With fake_cuda.c (compute capability 9.0) and two stand-ins for
 * the kernels, EMU_H.so with the Hopper kernel and EMU.so without it, a
 * session on OK.so: loads the module (and says so in the log), runs
 * without it when it cannot load (a warning; no error left behind),
 * fails when SLAPO_CUDA_SM90A=1 requires it, and leaves it alone when
 * SLAPO_CUDA_SM90A=0; on an sm_80 GPU (FAKE_CC_MAJOR=8) it is left
 * alone silently, and requiring it is an error naming the GPU's
 * compute capability.
 */
#include <dlfcn.h>
#include <stdlib.h>

#include "testlib.h"

static char logbuf[4096];
static char errmsg[512], errobj[128]; /* session_create's error */

static void on_log(int32_t level, const char *msg, void *user)
{
	(void)user;
	size_t n = strlen(logbuf);
	snprintf(logbuf + n, sizeof logbuf - n, "%d: %s\n", (int)level, msg);
}

/* A session on CUDA weights of api's model with the kernels of emu and
 * SLAPO_CUDA_SM90A=mode ("" for unset): its status; the log in logbuf. */
static SlapoStatus session(const SlapoApi *api, const char *emu, const char *mode)
{
	SlapoModel *m = NULL;
	SlapoWeights *w = NULL;
	SlapoSession *s = NULL;
	SlapoWeightsParams wp = SLAPO_WEIGHTS_PARAMS_INIT;
	SlapoStatus st;
	logbuf[0] = '\0';
	setenv("SLAPO_EMU_KERNELS", emu, 1);
	if (*mode)
		setenv("SLAPO_CUDA_SM90A", mode, 1);
	else
		unsetenv("SLAPO_CUDA_SM90A");
	wp.device.device_type = kDLCUDA;
	wp.log = on_log;
	CHECK_ST(api, api->model_open(&m), SLAPO_OK);
	CHECK_ST(api, api->weights_create(m, &wp, &w), SLAPO_OK);
	CHECK_ST(api, api->weights_init_random(w, 1), SLAPO_OK);
	st = api->session_create(w, NULL, &s);
	snprintf(errmsg, sizeof errmsg, "%s", api->last_error()->message);
	snprintf(errobj, sizeof errobj, "%s", api->last_error()->object_name);
	if (st == SLAPO_OK)
		CHECK(api->last_error()->code == SLAPO_OK);
	api->session_free(s);
	api->weights_free(w);
	api->model_close(m);
	return st;
}

static void check_log(const char *want, int present)
{
	if (!!strstr(logbuf, want) != present) {
		fprintf(stderr, "the log %s \"%s\":\n%s", present ? "lacks" : "has", want,
		        logbuf);
		CHECK(0);
	}
}

int main(int argc, char **argv)
{
	void *h_ok, *h_bad;
	SlapoModel *m = NULL;
	if (argc != 3 && argc != 5) {
		fprintf(stderr, "usage: test_gpu_desc OK.so BAD.so [EMU_H.so EMU.so]\n");
		return 99;
	}
	const SlapoApi *ok = t_load(argv[1], &h_ok), *bad = t_load(argv[2], &h_bad);
	if (!ok || !bad)
		return 1;
	CHECK_ST(ok, ok->model_open(&m), SLAPO_OK);
	ok->model_close(m);
	m = NULL;
	CHECK_ST(bad, bad->model_open(&m), SLAPO_INTERNAL);
	CHECK(m == NULL);
	CHECK_ERR(bad, "invalid model descriptor: bad sm_90a module in the GPU part",
	          NULL);
	if (argc == 5) {
		const char *loaded = "loaded the sm_90a module of FakeMLP on cuda:0";
		const char *left = "the sm_90a module of FakeMLP did not load on cuda:0";
		CHECK_ST(ok, session(ok, argv[3], ""), SLAPO_OK);
		check_log(loaded, 1);
		check_log("1 Hopper kernels", 1);
		CHECK_ST(ok, session(ok, argv[4], ""), SLAPO_OK);
		check_log(left, 1);
		check_log("h1_fake: finding a kernel in the PTX", 1);
		CHECK_ST(ok, session(ok, argv[4], "1"), SLAPO_DEVICE);
		CHECK(strstr(errmsg, "finding a kernel in the PTX") != NULL);
		CHECK(strcmp(errobj, "h1_fake") == 0);
		CHECK_ST(ok, session(ok, argv[3], "0"), SLAPO_OK);
		check_log(loaded, 0);
		check_log(left, 0);
		/* an sm_80 GPU: the portable kernels, without a word; required,
		 * the error names the device's compute capability */
		setenv("FAKE_CC_MAJOR", "8", 1);
		CHECK_ST(ok, session(ok, argv[3], ""), SLAPO_OK);
		check_log("sm_90a", 0);
		CHECK_ST(ok, session(ok, argv[3], "1"), SLAPO_DEVICE);
		CHECK(strstr(errmsg, "SLAPO_CUDA_SM90A=1, but fake CUDA device") != NULL);
		CHECK(strstr(errmsg, "has compute capability 8.0, not 9.0") != NULL);
		unsetenv("FAKE_CC_MAJOR");
	}
	dlclose(h_ok);
	dlclose(h_bad);
	return t_done("test_gpu_desc");
}
