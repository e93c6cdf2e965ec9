/* model.h - the interpreter runs of the fuzz targets (model.c). */
#ifndef SLAPO_FUZZ_MODEL_H
#define SLAPO_FUZZ_MODEL_H

#include "ir/ir.h"

/* One model under test and the tensors made for it. Zero-initialise,
 * set ev, batch, seq (values of the symbols B and of every other symbol)
 * and max_numel (0: no limit). */
typedef struct FuzzModel {
	Eval *ev;
	int batch, seq;
	int64_t max_numel;   /* skip graphs with a larger tensor (or dim) */
	PtrVec owned;        /* IrTensor*: freed by fuzz_model_free */
	PtrVec cache_paths;  /* parameter values by path, made once */
	PtrVec cache_vals;
	char error[256];     /* why the last run failed */
} FuzzModel;

typedef enum {
	FUZZ_RUN_OK,
	FUZZ_RUN_TOO_BIG, /* not run: a tensor exceeds max_numel */
	FUZZ_RUN_FAILED,  /* the interpreter failed: fm->error says why */
} FuzzRunStatus;

/* Trace root as `build` would (trace_model: errors unwind through the
 * Diag's bail) and run it. *outs (from the arena, tensors owned by fm)
 * gets the *nout outputs. */
FuzzRunStatus fuzz_model_run(FuzzModel *fm, Module *root, Span sp, IrTensor ***outs,
                             int *nout);
/* The two halves of fuzz_model_run. The trace's *hash (if hash is not
 * NULL) covers everything the run's outputs depend on (structure,
 * attributes, parameter paths, shapes evaluated for fm's batch and
 * sequence sizes), not node names: two graphs with the same hash give
 * the same outputs. */
IrGraph *fuzz_model_trace(FuzzModel *fm, Module *root, Span sp, uint64_t *hash);
FuzzRunStatus fuzz_model_run_graph(FuzzModel *fm, IrGraph *g, IrTensor ***outs,
                                   int *nout);
/* Frees every tensor made so far (and forgets the parameter cache). */
void fuzz_model_free(FuzzModel *fm);
/* Largest over outputs of max|a-b| / max|a| (NaN in both: equal); inf
 * when counts or shapes differ. */
double fuzz_max_rel(IrTensor **a, int na, IrTensor **b, int nb);

#endif
