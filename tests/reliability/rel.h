/* rel.h - helpers of the reliability tests: any model library, driven
 * only through its public API and introspection (so the same tests run on
 * the runtime's fake model and on a model compiled by `slapoc -o`).
 *
 * The tests link tests/runtime's testlib (checks, t_load, TTensor, temporary
 * files) and, through it, a private copy of libslapo_rt used only for
 * writing checkpoints (rt_st_write): the model library under test has its
 * own runtime inside.
 */
#ifndef SLAPO_REL_H
#define SLAPO_REL_H

#include "testlib.h"

/* Inputs made from the model's specs and outputs shaped for them. */
typedef struct RelIo {
	int n_in, n_out;
	TTensor *in, *out;
	const DLTensor **pin; /* [n_in]: &in[i].t */
	DLTensor **pout;      /* [n_out]: &out[j].t */
} RelIo;

/* Symbols named "B" take the value B, every other symbol S (clamped to
 * the symbol's range). Integer inputs with value_max get ids in range;
 * inputs marked SLAPO_FILL_ONES are masks with two padding zeros at the
 * end; other integer inputs 0/1; float inputs uniform in [-1, 1). Returns
 * 0 on success (prints why otherwise). */
int rel_io_init(const SlapoApi *api, const SlapoModel *m, int64_t B, int64_t S,
                uint64_t seed, RelIo *io);
void rel_io_free(RelIo *io);
/* Fills every output with a poison pattern (NaN bytes). */
void rel_io_poison(RelIo *io);
/* Whether every output of a and b is byte for byte equal. */
int rel_io_same(const RelIo *a, const RelIo *b);
/* Copies the outputs of src into dst (same shapes). */
void rel_io_copy_out(RelIo *dst, const RelIo *src);

/* Writes a checkpoint holding every untied parameter, with values of
 * weights_init_random(seed), to path. Returns SLAPO_OK or the failure. */
SlapoStatus rel_write_checkpoint(const SlapoApi *api, SlapoModel *m, uint64_t seed,
                                 const char *path);

/* Loads the library (argv[1]) and opens the model; exits 1 on failure. */
const SlapoApi *rel_open(const char *lib, SlapoModel **m);

#endif
