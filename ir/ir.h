/* ir.h - the intermediate representation: symbolic shapes, dataflow
 * graphs, the op table, the reference interpreter, the pattern matcher,
 * the module tree and the schedule that rewrites it.
 *
 * Sections follow the source files. Graph nodes and module-tree objects
 * are allocated from the arena of the IrCtx that owns them.
 */
#ifndef SLAPO_IR_H
#define SLAPO_IR_H

#include "support/support.h"

enum {
	IR_MAX_DIMS = 8, /* rank limit of every tensor */
	IR_MAX_SYMS = 8, /* distinct symbolic dims (B, S, ...) in one compile */
};

/* ---- ctx.c --------------------------------------------------------------- */

/* Everything one compilation's IR hangs from. */
typedef struct IrCtx {
	Arena *arena; /* owns all graphs, nodes, modules */
	Diag *diag;   /* where IR errors go */
	const char *sym_names[IR_MAX_SYMS]; /* symbolic dims by index */
	int nsyms;
} IrCtx;

void ir_ctx_init(IrCtx *c, Arena *a, Diag *d); /* zeroes c, then sets arena and diag */
/* Index of symbol `name`, created if new; -1 (and an error) if full. */
int ir_sym(IrCtx *c, const char *name, Span sp);

/* ---- dim.c: symbolic dimensions ------------------------------------------ */

/* A dimension: coef * prod(sym_i ^ pow[i]). Constants have all pow 0.
 * Products and exact quotients stay in this form; sums only of like terms. */
typedef struct IrDim {
	int64_t coef;
	uint8_t pow[IR_MAX_SYMS];
} IrDim;

typedef struct IrShape {
	int ndim;
	IrDim d[IR_MAX_DIMS];
} IrShape;

IrDim ir_dim_const(int64_t v);
IrDim ir_dim_sym(int sym);
bool ir_dim_is_const(IrDim d);
bool ir_dim_eq(IrDim a, IrDim b);
IrDim ir_dim_mul(IrDim a, IrDim b);
/* a / b when exact; false if not divisible (symbolically or numerically). */
bool ir_dim_div(IrDim a, IrDim b, IrDim *out);
/* a + b when like terms (or constants); false otherwise. */
bool ir_dim_add(IrDim a, IrDim b, IrDim *out);
/* The value under a binding of symbols (values[i] for symbol i). */
int64_t ir_dim_eval(IrDim d, const int64_t *values);
void ir_dim_print(StrBuf *b, const IrCtx *c, IrDim d);   /* 768, B, 12*S, B*S */
void ir_shape_print(StrBuf *b, const IrCtx *c, const IrShape *s); /* [B, S, 768] */
bool ir_shape_eq(const IrShape *a, const IrShape *b);
IrDim ir_shape_numel(const IrShape *s);

/* ---- ops.c: the op table --------------------------------------------------- */

typedef enum {
	IR_F32, IR_F64, IR_F16, IR_BF16, IR_I64, IR_I32, IR_BOOL,
	IR_DTYPE_COUNT
} IrDType;

const char *ir_dtype_name(IrDType t);           /* "f32", "i64", ... */
bool ir_dtype_parse(const char *s, IrDType *t); /* inverse of the above */
bool ir_dtype_is_float(IrDType t);

enum {
	OPF_SOURCE = 1 << 0,      /* no inputs: input, param, const, arange */
	OPF_ELEMWISE = 1 << 1,    /* pointwise with broadcasting */
	OPF_COMMUTATIVE = 1 << 2, /* binary, inputs may swap (pattern matching) */
	OPF_REDUCE = 1 << 3,      /* reduces or normalises along dims */
	OPF_LIBCALL = 1 << 4,     /* lowered to BLAS / cuBLAS */
	OPF_VIEW = 1 << 5,        /* moves or reinterprets data */
	OPF_GATHER = 1 << 6,      /* indexed reads */
	OPF_CALL = 1 << 7,        /* has a body graph (fused kernel, leaf call) */
};

typedef enum {
#define OP(id, name, arity, flags, shape, interp) OP_##id,
#include "ir/ops.def"
#undef OP
	OP_COUNT
} IrOp;

typedef struct IrNode IrNode;
typedef struct IrGraph IrGraph;
typedef struct IrTensor IrTensor;
typedef struct IrInterp IrInterp;

/* Sets n->dtype and n->shape from its inputs and attributes; on a
 * mismatch reports an error at n->span and returns false. */
typedef bool (*IrShapeFn)(IrCtx *c, IrNode *n);
/* Computes out (allocated by interp_run with the node's shape under the
 * run's symbol values) from the node's input tensors; on failure sets
 * it->error and returns false (see interp.c). */
typedef bool (*IrInterpFn)(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out);

typedef struct IrOpInfo {
	const char *name;
	int arity;
	unsigned flags;
	IrShapeFn shape;
	IrInterpFn interp;
} IrOpInfo;

extern const IrOpInfo ir_ops[OP_COUNT];
/* Op by its .slapo/printed name; false if unknown. */
bool ir_op_lookup(const char *name, IrOp *op);
/* (shape.c) A dim index as written (may be negative, -1 = last) made
 * absolute for a tensor of rank ndim; -1 if out of range. Attributes keep
 * the index as written (softmax dim=-1); users normalise with this. */
int ir_axis(int64_t dim, int ndim);

/* ---- graph.c: dataflow graphs ------------------------------------------- */

/* One op application. Inputs point at earlier nodes of the same graph. */
struct IrNode {
	IrOp op;
	int id;               /* unique in its graph, in creation order */
	const char *name;     /* unique in its graph: "linear", "add_1", "dense_weight" */
	IrDType dtype;
	IrShape shape;
	Span span;            /* the .slapo expression (or primitive) that made it */
	IrNode **in;          /* inputs */
	int nin;
	/* attributes; which ones an op reads is listed in ops.def */
	int64_t iattr[IR_MAX_DIMS];
	int niattr;
	IrDim dattr[IR_MAX_DIMS];
	int ndattr;
	double fattr;
	int64_t flags;
	const char *sattr;
	IrGraph *sub;         /* OP_FUSED / OP_CALL body */
	IrNode *prev, *next;  /* position in the graph's node list (topological) */
	void *aux;            /* scratch for the pass running now */
};

/* A graph: nodes in a topologically ordered list, inputs and outputs. */
struct IrGraph {
	IrCtx *ctx;
	const char *name;     /* module class or kernel name, for printing */
	IrNode *first, *last;
	int nnodes, next_id;
	PtrVec inputs;        /* OP_INPUT nodes, in argument order */
	PtrVec outputs;       /* nodes returned, in order */
	PtrVec output_names;  /* const char*: name of each output ("logits") */
	void *names;          /* graph.c: names in use and suffix counters; name
	                       * nodes only through ir_build/ir_unique_name */
};

/* Attributes for ir_build; zero-initialise and set what the op reads. */
typedef struct IrAttrs {
	int64_t iattr[IR_MAX_DIMS];
	int niattr;
	IrDim dattr[IR_MAX_DIMS];
	int ndattr;
	double fattr;
	int64_t flags;
	const char *sattr;
	IrGraph *sub;
	IrDType dtype;        /* for sources (input, param, const) */
	IrShape shape;        /* for sources (input, param) */
} IrAttrs;

IrGraph *ir_graph_new(IrCtx *c, const char *name);
/* Append a node and infer its shape; NULL if shape inference failed
 * (the error is reported at sp) or an input is NULL (an earlier error).
 * `hint` names the node (made unique); NULL names it after sattr for
 * input/param/call/fused, else after the op. An OP_INPUT node's sattr
 * defaults to its name; the caller appends it to g->inputs. */
IrNode *ir_build(IrGraph *g, IrOp op, IrNode **in, int nin,
                 const IrAttrs *at, Span sp, const char *hint);
/* Node and graph helpers. */
int ir_node_uses(const IrGraph *g, const IrNode *n, IrNode ***users); /* users array from ctx arena */
void ir_node_remove(IrGraph *g, IrNode *n);     /* must be unused */
/* Every use of `from` (inputs of g's nodes other than `to` itself, and
 * g's outputs) becomes a use of `to`. */
void ir_replace_uses(IrGraph *g, IrNode *from, IrNode *to);
/* Move n (already in g, or not yet linked) just before pos; NULL = end. */
void ir_insert_before(IrGraph *g, IrNode *pos, IrNode *n);
/* A name unique in g derived from hint, the way torch.fx makes them
 * ("dense.weight" -> dense_weight; add, add_1, add_2), now reserved. Names
 * of removed nodes stay reserved. */
const char *ir_unique_name(IrGraph *g, const char *hint);
/* Append n to g's outputs under `name` (NULL: the node's name). */
void ir_add_output(IrGraph *g, IrNode *n, const char *name);
/* Reorder the node list so that every node follows its inputs, moving
 * only what must move (a no-op when the list is already topological). */
void ir_toposort(IrGraph *g);
/* Deep copy of a graph (nodes renamed only where they clash). */
IrGraph *ir_graph_clone(IrCtx *c, const IrGraph *g);
/* Copy the body of `sub` into g before `pos`, binding its inputs to
 * args; returns the copies of sub's outputs in outs. Param paths of the
 * copied nodes are prefixed with `prefix` ("" for none). */
bool ir_inline(IrGraph *g, IrNode *pos, const IrGraph *sub, IrNode **args,
               const char *prefix, IrNode **outs);
/* Remove nodes with no uses that are not outputs. */
void ir_dce(IrGraph *g);

/* ---- print.c ------------------------------------------------------------- */

/* Our text form of a graph:
 *   graph BertIntermediate(%hidden_states: f32[B, S, 1024]) {
 *     %dense_weight = param "dense.weight" : f32[4096, 1024]
 *     %linear = linear(%hidden_states, %dense_weight) : f32[B, S, 4096]
 *     ...
 *     return %gelu
 *   }
 * Fused kernels' bodies are printed after the graph that calls them. */
void ir_graph_print(StrBuf *b, const IrGraph *g);
/* One node as in a graph body, without indent or newline:
 *   %add = add(%linear, %dense_bias) : f32[B, S, 4096] */
void ir_node_print(StrBuf *b, const IrCtx *c, const IrNode *n);
/* A tensor type: f32[B, S, 768], f32[] for scalars. */
void ir_type_print(StrBuf *b, const IrCtx *c, IrDType t, const IrShape *s);

/* ---- dot.c ------------------------------------------------------------------ */

/* Graphviz DOT of a graph: nodes, edges labelled with dtype and shape,
 * fused kernels as clusters labelled with their name. */
void ir_graph_dot(StrBuf *b, const IrGraph *g);

/* ---- verify.c -------------------------------------------------------------- */

/* Structural checks: inputs precede users, names unique, arity, shapes
 * re-inferred equal, outputs in the graph. Reports through ctx->diag
 * naming `after` (the pass or primitive just run). */
bool ir_verify(const IrGraph *g, const char *after);

/* ---- interp.c: the reference interpreter ------------------------------------ */

/* A host tensor in double precision (integers and bools stored as
 * doubles, exactly). Row-major, contiguous. */
struct IrTensor {
	IrDType dtype;
	int ndim;
	int64_t shape[IR_MAX_DIMS];
	int64_t numel;
	double *data; /* malloc'd; ir_tensor_free releases it */
};

/* Zero-filled; NULL if a dim is negative, the size is absurd (over 2^36
 * elements) or memory runs out. */
IrTensor *ir_tensor_new(IrDType t, int ndim, const int64_t *shape);
IrTensor *ir_tensor_copy(const IrTensor *t);
void ir_tensor_free(IrTensor *t);
/* max over elements of |a-b| / max(|a|, |b|) (0 where both are 0, inf
 * where exactly one is NaN); inf if the shapes differ. */
double ir_tensor_max_rel_diff(const IrTensor *a, const IrTensor *b);

/* Supplies the value of a parameter node (by n->sattr path). Inside the
 * body of a call node the path is prefixed with the call's sattr
 * ("dense" + "weight" -> "dense.weight"); the node passed may be a
 * temporary copy, so keep neither it nor its sattr. */
typedef IrTensor *(*IrParamFn)(void *user, const IrNode *n);

struct IrInterp {
	const int64_t *sym_values; /* value of each symbolic dim; NULL: bind
	                            * them from the inputs' shapes */
	IrParamFn param;           /* the tensor it returns stays the caller's */
	void *param_user;
	char error[256];           /* set when interp_run fails */
};

/* Run g on inputs (one per g->inputs; they stay the caller's); outputs
 * (one per g->outputs) are newly allocated. False with it->error set on
 * failure (bad sizes, out-of-range indices, missing params): never a crash. */
bool interp_run(IrInterp *it, const IrGraph *g, IrTensor **inputs, IrTensor **outputs);
/* For the op functions (interp_ops.c) and calls into bodies: run g with
 * symbols bound from the inputs, falling back to parent_vals (-1 = none;
 * NULL: use it->sym_values, as interp_run does). */
bool interp_graph(IrInterp *it, const IrGraph *g, IrTensor **inputs, IrTensor **outputs,
                  const int64_t *parent_vals);
/* Set it->error (printf-style) and return false. */
bool interp_fail(IrInterp *it, const char *fmt, ...) SUP_PRINTF(2, 3);
/* d under the run's symbol values (it->sym_values); false if unbound. */
bool interp_dim(IrInterp *it, const IrNode *n, IrDim d, int64_t *out);

/* ---- match.c: pattern matching ------------------------------------------- */

/* One match: the graph nodes matched, in pattern order (the pattern's
 * non-input nodes in its node order). */
typedef struct IrMatch {
	IrNode **nodes;
	int nnodes;
} IrMatch;

/* Find every non-overlapping occurrence of the pattern graph in g.
 * Structural (independent of node order), commutative ops match either
 * way round, multi-input and diamond patterns supported. A pattern's
 * inputs match any node; its output nodes may have uses outside, inner
 * nodes may not. Returns the number of matches. */
int ir_match(IrCtx *c, const IrGraph *g, const IrGraph *pattern, IrMatch **out);

/* ---- fuse.c ------------------------------------------------------------------ */

/* Replace the nodes of m (one connected region of g) by one node of
 * kind `op` (OP_FUSED or OP_CALL) named `name` whose body is a new
 * graph holding copies of those nodes. Fails (error at sp) if the region
 * is not convex (some path leaves and re-enters it: a cycle) or has more
 * than one output. Returns the new node. */
IrNode *ir_fuse(IrGraph *g, IrNode **nodes, int nnodes, IrOp op,
                const char *name, Span sp);

#endif
