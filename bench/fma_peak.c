/* fma_peak.c - the FMA units' own peak: single-precision GFLOP/s of N
 * threads issuing nothing but independent vector fused multiply-adds.
 *
 *     cc -O2 -pthread bench/fma_peak.c -o fma_peak && ./fma_peak 2
 *
 * Each thread runs twelve independent accumulator chains (more than an
 * FMA's latency times the FMA pipes of any x86-64 core so far), 512-bit
 * when the CPU has AVX-512F, else 256-bit with FMA3. Prints the best of
 * five timed rounds, in GFLOP/s for all threads together (one FMA lane =
 * 2 FLOPs). No GEMM can beat it: bench/cpu_bert.py prints the model's
 * forward beside it as the hard ceiling, beside numpy's sgemm rate. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12
#define STEPS  50000000L /* loop trips a thread a round: 600 M FMAs */

static int wide; /* 1: zmm (16 lanes), 0: ymm (8 lanes) */

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

#if defined(__x86_64__)
/* The instructions one to a line: */
/* clang-format off */
#define ZERO(w, i) "vxorps %%" w #i ", %%" w #i ", %%" w #i "\n"
#define FMA(w, i)  "vfmadd231ps %%" w "14, %%" w "15, %%" w #i "\n"

/* Twelve independent chains of FMAs on w registers ("zmm" or "ymm"), n
 * trips; registers 14 and 15 are the factors. */
#define SPIN(w, n)                                                              \
	__asm__ volatile(                                                       \
		ZERO(w, 0) ZERO(w, 1) ZERO(w, 2) ZERO(w, 3) ZERO(w, 4)          \
		ZERO(w, 5) ZERO(w, 6) ZERO(w, 7) ZERO(w, 8) ZERO(w, 9)          \
		ZERO(w, 10) ZERO(w, 11) ZERO(w, 14) ZERO(w, 15)                 \
		"1:\n"                                                          \
		FMA(w, 0) FMA(w, 1) FMA(w, 2) FMA(w, 3) FMA(w, 4) FMA(w, 5)     \
		FMA(w, 6) FMA(w, 7) FMA(w, 8) FMA(w, 9) FMA(w, 10) FMA(w, 11)   \
		"dec %0\n"                                                      \
		"jnz 1b\n"                                                      \
		: "+r"(n)                                                       \
		:                                                               \
		: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",       \
		  "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm14", "xmm15",   \
		  "cc")
/* clang-format on */

static void *spin(void *arg)
{
	long n = STEPS;
	(void)arg;
	if (wide)
		SPIN("zmm", n);
	else
		SPIN("ymm", n);
	return NULL;
}
#endif

int main(int argc, char **argv)
{
	char *end = NULL;
	long threads = argc > 1 ? strtol(argv[1], &end, 10) : 1;
	int i, round;
	double best = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	wide = __builtin_cpu_supports("avx512f");
	if (!wide && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
		fprintf(stderr, "fma_peak: this CPU has neither AVX-512F nor FMA3\n");
		return 1;
	}
#else
	fprintf(stderr, "fma_peak: measures x86-64 CPUs only\n");
	return 1;
#endif
	if ((end && *end) || threads < 1 || threads > 1024) {
		fprintf(stderr, "fma_peak: threads must be 1..1024, not '%s'\n", argv[1]);
		return 1;
	}
	pthread_t *t = calloc((size_t)threads, sizeof *t);
	if (!t)
		return 1;
	for (round = 0; round < 5; round++) {
		double t0 = now(), rate;
		for (i = 0; i < threads; i++)
			if (pthread_create(&t[i], NULL, spin, NULL) != 0) {
				fprintf(stderr, "fma_peak: cannot start thread %d\n", i);
				return 1;
			}
		for (i = 0; i < threads; i++)
			pthread_join(t[i], NULL);
		rate = (double)threads * STEPS * CHAINS * (wide ? 16 : 8) * 2 /
		       (now() - t0) / 1e9;
		best = rate > best ? rate : best;
	}
	free(t);
	printf("%.1f GFLOP/s (%ld thread%s, %d-bit FMA)\n", best, threads,
	       threads > 1 ? "s" : "", wide ? 512 : 256);
	return 0;
}
