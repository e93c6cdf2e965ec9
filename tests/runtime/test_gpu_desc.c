/* test_gpu_desc.c - the runtime's check of a library's GPU part when the
 * model is opened: the count of kernels in the sm_90a module (the last
 * n_kernels_sm90a of kernel_names) must lie within n_kernels. A library
 * with 1 of its 2 kernels there opens (no GPU needed to open a model);
 * one that claims 3 of 2 is refused with SLAPO_INTERNAL, saying what is
 * wrong.
 */
#include <dlfcn.h>

#include "testlib.h"

int main(int argc, char **argv)
{
	void *h_ok, *h_bad;
	SlapoModel *m = NULL;
	if (argc < 3) {
		fprintf(stderr, "usage: test_gpu_desc OK.so BAD.so\n");
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
	dlclose(h_ok);
	dlclose(h_bad);
	return t_done("test_gpu_desc");
}
