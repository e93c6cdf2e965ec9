/* test_plan.c - the workspace planner (cg_plan_make) on random programs:
 * buffers of a few monomials (1, S, B*S, B*S^2) with random coefficients
 * and lifetimes. For every B and S tried, each buffer placed as the
 * generated code places it (its region's offset plus a * M + b rounded up
 * to the alignment) must be aligned, lie inside the workspace, and not
 * overlap any buffer live at the same time; the workspace must be no
 * larger than all buffers side by side plus the slack, and buffers whose
 * lifetimes never meet must share memory (a chain of them takes the
 * room of the largest). Also a planner that ignored lifetimes or
 * alignment fails here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/codegen.h"

enum { NB = 64, ALIGN = 256 };

static int fails;

static int64_t eval(IrDim d, int64_t B, int64_t S)
{
	int64_t v = d.coef;
	for (int e = 0; e < d.pow[0]; e++)
		v *= B;
	for (int e = 0; e < d.pow[1]; e++)
		v *= S;
	return v;
}

static int64_t up(int64_t v)
{
	return (v + ALIGN - 1) / ALIGN * ALIGN;
}

/* One random program: checks the plan at several shapes. */
static void one(unsigned seed, int nb, bool chain)
{
	Arena a = {0};
	srand(seed);
	CgBuf **bufs = ARENA_ARRAY(&a, CgBuf *, nb);
	IrDim *bytes = ARENA_ARRAY(&a, IrDim, nb);
	int *def = ARENA_ARRAY(&a, int, nb), *last = ARENA_ARRAY(&a, int, nb);
	for (int i = 0; i < nb; i++) {
		bufs[i] = ARENA_NEW(&a, CgBuf);
		bufs[i]->id = i;
		bufs[i]->kind = rand() % 8 ? CG_BUF_TEMP : CG_BUF_PARAM;
		IrDim d = ir_dim_const(1 + rand() % 5000);
		int m = rand() % 4; /* 1, S, B*S, B*S^2 */
		d.pow[0] = m >= 2;
		d.pow[1] = m == 1 || m == 2 ? 1 : m == 3 ? 2 : 0;
		bytes[i] = d;
		def[i] = chain ? i : rand() % 40;
		last[i] = chain ? i : def[i] + rand() % 6;
		if (rand() % 16 == 0)
			def[i] = last[i] = -1; /* unused */
	}
	CgPlan pl;
	cg_plan_make(&a, bufs, bytes, nb, def, last, ALIGN, &pl);
	static const int64_t shapes[][2] = {{1, 1}, {1, 7}, {2, 8}, {3, 129}, {8, 512}};
	for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
		int64_t B = shapes[s][0], S = shapes[s][1];
		int64_t total = 0, *base = ARENA_ARRAY(&a, int64_t, pl.nregions + 1);
		for (int r = 0; r < pl.nregions; r++) {
			base[r] = total;
			total += up(eval(pl.size[r], B, S) + pl.size_slack[r]);
		}
		int64_t *at = ARENA_ARRAY(&a, int64_t, nb), side = 0, largest = 0;
		for (int i = 0; i < nb; i++) {
			bool temp = bufs[i]->kind == CG_BUF_TEMP && def[i] >= 0;
			if (temp != (pl.region[i] >= 0)) {
				printf("FAIL seed %u: buffer %d %s\n", seed, i,
				       temp ? "not placed" : "placed but not a used temp");
				fails++;
			}
			if (!temp)
				continue;
			int64_t n = eval(bytes[i], B, S);
			side += up(n) + ALIGN;
			largest = n > largest ? n : largest;
			at[i] = base[pl.region[i]] + up(eval(pl.off[i], B, S) + pl.slack[i]);
			if (at[i] % ALIGN || at[i] + n > total) {
				printf("FAIL seed %u B=%lld S=%lld: buffer %d at %lld (+%lld) of %lld\n",
				       seed, (long long)B, (long long)S, i, (long long)at[i],
				       (long long)n, (long long)total);
				fails++;
			}
		}
		for (int i = 0; i < nb; i++)
			for (int j = i + 1; j < nb; j++) {
				if (pl.region[i] < 0 || pl.region[j] < 0 || last[i] < def[j] ||
				    last[j] < def[i])
					continue;
				int64_t ni = eval(bytes[i], B, S), nj = eval(bytes[j], B, S);
				if (at[i] < at[j] + nj && at[j] < at[i] + ni) {
					printf("FAIL seed %u B=%lld S=%lld: live buffers %d and %d "
					       "overlap\n", seed, (long long)B, (long long)S, i, j);
					fails++;
				}
			}
		int64_t slack = 0;
		for (int r = 0; r < pl.nregions; r++)
			slack += pl.size_slack[r] + ALIGN;
		if (total > side + slack) {
			printf("FAIL seed %u: workspace %lld larger than side by side %lld\n", seed,
			       (long long)total, (long long)side);
			fails++;
		}
		/* lifetimes that never meet: at most the largest buffer of each
		 * of the four monomials */
		if (chain && total > 4 * (up(largest) + 2 * ALIGN)) {
			printf("FAIL seed %u: a chain of lifetimes takes %lld bytes (largest "
			       "%lld)\n", seed, (long long)total, (long long)largest);
			fails++;
		}
	}
	arena_free(&a);
}

int main(void)
{
	int n = 0;
	for (unsigned seed = 1; seed <= 300; seed++, n++)
		one(seed, 1 + (int)(seed % NB), seed % 5 == 0);
	printf("%d random plans: %s\n", n, fails ? "FAILED" : "ok");
	return fails != 0;
}
