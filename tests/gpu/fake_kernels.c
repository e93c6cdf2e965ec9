/* fake_kernels.c - stand-ins for the kernels of tests/runtime's fake GPU
 * library (fake_model.c, variant 3), for fake_cuda.c to "load": k0_fake in
 * the main module and, with -DWITH_H, h1_fake in the sm_90a module. Never
 * launched; test_gpu_desc.c only creates sessions with them. */
#define API __attribute__((visibility("default")))

API void k0_fake(void)
{
}
#ifdef WITH_H
API void h1_fake(void)
{
}
#endif
