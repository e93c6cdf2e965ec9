/* fuzz_safetensors.c - libFuzzer target for the safetensors reader and
 * its JSON parser: any bytes must give SLAPO_OK or an error status, never
 * a crash, a hang or a leak; accepted files must have consistent tensors.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -Iruntime -Iinclude $(pkg-config --cflags openblas) \
 *     tests/runtime/fuzz_safetensors.c runtime/[a-z]*.c \
 *     $(pkg-config --libs openblas) -lm -o fuzz_safetensors
 *   ./fuzz_safetensors CORPUS_DIR
 *
 * Built without -DSLAPO_FUZZ_MAIN it is only the target; with it, a main()
 * replays the files named on the command line (no libFuzzer needed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"

/* The model descriptor api.c refers to; never used here. */
const RtModelDesc slapo_model_desc;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	RtStFile f;
	int32_t i;
	if (rt_st_parse("fuzz", data, size, &f) != SLAPO_OK)
		return 0;
	for (i = 0; i < f.n_tensors; i++) {
		const RtStTensor *t = &f.tensors[i];
		if (t->end < t->begin || t->data < data ||
		    t->data + (t->end - t->begin) > data + size ||
		    rt_st_find(&f, t->name) != t)
			abort();
	}
	rt_st_close(&f);
	return 0;
}

#ifdef SLAPO_FUZZ_MAIN
int main(int argc, char **argv)
{
	int i;
	for (i = 1; i < argc; i++) {
		FILE *fp = fopen(argv[i], "rb");
		static uint8_t buf[1 << 20];
		size_t n;
		if (!fp)
			return 1;
		n = fread(buf, 1, sizeof buf, fp);
		fclose(fp);
		LLVMFuzzerTestOneInput(buf, n);
	}
	return 0;
}
#endif
