/* ir.h - the intermediate representation: symbolic shapes, dataflow
 * graphs, the op table, the reference interpreter, the pattern matcher,
 * the module tree and the schedule that rewrites it.
 *
 * Sections follow the source files. Graph nodes and module-tree objects
 * are allocated from the arena of the IrCtx that owns them.
 */
#ifndef SLAPO_IR_H
#define SLAPO_IR_H

#include "parser/parser.h"
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
/* Whether d is one symbol (coefficient 1, power 1); *sym gets it. */
bool ir_dim_plain_sym(IrDim d, int *sym);
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
/* (shape.c) A slice bound made absolute for a dim of `size`: negative
 * constants count from the end (only when the dim is a constant), constant
 * bounds clamp to a constant dim, INT64_MAX means the end. False when it
 * cannot be resolved (a negative bound on a symbolic dim). */
bool ir_slice_bound(IrDim v, IrDim size, IrDim *out);

/* ---- graph.c: dataflow graphs ------------------------------------------- */

/* One op application. Inputs point at earlier nodes of the same graph. */
struct IrNode {
	IrOp op;
	int id;               /* unique in its graph, in creation order */
	const char *name;     /* unique in its graph: "linear", "add_1", "dense_weight" */
	IrDType dtype;
	IrShape shape;
	Span span;            /* the .slapo expression (or primitive) that made it */
	/* dotted path of the module whose forward made it, from the tree's
	 * root ("bert.encoder.layer.0.attention.self"; "" for the root, NULL
	 * if unknown); a fused node: its region's common ancestor */
	const char *module;
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
	const char *module;   /* IrNode.module (not copied: arena strings) */
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
/* The attributes of n, as ir_build takes them (to rebuild a copy). */
IrAttrs ir_node_attrs(const IrNode *n);
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

/* fixed.c: values for a graph's parameter node n and its input idx (node
 * in), the same in every run, under the symbols' values (new tensors; NULL
 * when ir_tensor_new fails); FNV-1a of a string. */
IrTensor *ir_fixed_param(const IrNode *n, const int64_t *sym_values);
IrTensor *ir_fixed_input(const IrGraph *g, const IrNode *in, int idx,
                         const int64_t *sym_values);
uint64_t ir_hash_str(const char *s);

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
/* The first i such that no fused or call node of g is named NAME_j for
 * any j >= i: the number the next one of that name takes. */
int ir_next_kernel_index(const IrGraph *g, const char *name);
/* The deepest module path (IrNode.module) all of nodes' modules lie
 * under, whole segments only: "a.b.c" and "a.b.d" give "a.b"; NULL if
 * one is unknown. */
const char *ir_common_module(IrCtx *c, IrNode *const *nodes, int nnodes);


/* =========================================================================
 * The evaluator, the module tree and the schedule (value.c, eval.c,
 * builtins.c, module.c, trace.c, sched.c).
 *
 * The .slapo program runs at compile time in a small evaluator: configs
 * and modules are instantiated into a module tree (PyTorch names and
 * parameters), the schedule script's primitives rewrite that tree, and
 * `trace` turns a module's forward into a dataflow graph by running it on
 * symbolic tensors.
 * ========================================================================= */

typedef struct Value Value;
typedef struct Env Env;
typedef struct Module Module;
typedef struct Eval Eval;

/* ---- value.c ------------------------------------------------------------ */

typedef enum {
	V_NONE, V_INT, V_FLOAT, V_BOOL, V_STR, V_LIST,
	V_DIM,       /* a symbolic dimension (IrDim) */
	V_DTYPE,     /* f32, i64, ... used as a value */
	V_CONFIG_CLASS, V_CONFIG,
	V_MODULE_CLASS, V_MODULE,
	V_SCHEDULE,  /* a schedule handle on a module of the tree */
	V_TENSOR,    /* a node of the graph being traced */
	V_TENSOR_TYPE, /* f32[B, S, 768]: a type used as a value */
	V_FUNC,      /* fn or pattern declared in .slapo */
	V_BUILTIN,   /* a C function */
	V_NODEREF,   /* ('path', node): what find() returns */
	V_GRAPH,     /* a traced module's graph, from sch.mod */
} ValueKind;

typedef Value *(*BuiltinFn)(Eval *ev, Value *self, Value **args, int nargs,
                            const char **kwnames, Value **kwargs, int nkw, Span sp);

/* A config class (`config BertConfig {...}`) or instance (record). */
typedef struct ConfigRec {
	const Ast *decl;   /* AST_CONFIG */
	Env *fields;       /* instance: field -> value */
} ConfigRec;

struct Value {
	ValueKind k;
	union {
		int64_t i;
		double f;
		bool b;
		const char *s;
		struct { Value **items; int len; } list;
		IrDim dim;
		IrDType dtype;
		ConfigRec cfg;
		const Ast *decl;              /* V_MODULE_CLASS (user), V_FUNC */
		Module *mod;                  /* V_MODULE, V_SCHEDULE */
		IrNode *node;                 /* V_TENSOR */
		struct { IrDType dt; IrShape shape; } ttype;
		struct { BuiltinFn fn; const char *name; Value *self; } builtin;
		struct { const char *path; IrNode *node; IrGraph *graph; } ref;
		IrGraph *graph;
	};
	int builtin_module;  /* V_MODULE_CLASS: BuiltinKind, 0 for user modules */
	Env *closure;        /* V_FUNC, V_MODULE_CLASS: defining scope */
};

Value *val_new(Eval *ev, ValueKind k);
Value *val_int(Eval *ev, int64_t i);
Value *val_float(Eval *ev, double f);
Value *val_bool(Eval *ev, bool b);
Value *val_str(Eval *ev, const char *s);
Value *val_none(Eval *ev);
Value *val_list(Eval *ev, Value **items, int n);
Value *val_dim(Eval *ev, IrDim d); /* V_INT when constant */
const char *val_kind_name(ValueKind k);
const char *val_type_name(const Value *v); /* "int", "module BertLayer", ... */
bool val_truthy(const Value *v);
/* print(): str() of a value, Python-style (repr inside lists). */
void val_str_into(Eval *ev, StrBuf *b, const Value *v, bool repr);

/* Scopes: a chain of name -> value bindings. */
struct Env {
	struct Binding *head;
	Env *parent;
};
Env *env_new(Eval *ev, Env *parent);
Value *env_get(Env *e, const char *name);       /* NULL if unbound */
Value *env_get_local(Env *e, const char *name); /* this scope only */
void env_set(Eval *ev, Env *e, const char *name, Value *v);

/* ---- module.c: the module tree -------------------------------------------- */

typedef enum {
	BM_NONE,
	BM_LINEAR, BM_LINEAR_SEP_BIAS, BM_LAYER_NORM, BM_EMBEDDING, BM_DROPOUT,
	BM_GELU, BM_NEW_GELU, BM_RELU, BM_TANH, BM_SOFTMAX, BM_CONV1D,
	BM_MODULE_LIST, BM_SEQUENTIAL, BM_IDENTITY,
	BM_COUNT
} BuiltinKind;

/* A parameter owned by a module. */
typedef struct Param {
	const char *name;  /* local name: "weight" */
	IrDType dtype;
	IrShape shape;
} Param;

struct Module {
	const char *cls;       /* class name as printed: "BertLayer", "Linear" */
	BuiltinKind builtin;   /* BM_NONE for modules declared in .slapo */
	const Ast *decl;       /* AST_MODULE for user modules */
	Env *attrs;            /* members that are not modules, and ctor args */
	Env *closure;          /* scope the module class was declared in */
	Module *parent;
	const char *name;      /* name in the parent ("0" in a ModuleList) */
	PtrVec children;       /* Module*, in registration order */
	PtrVec params;         /* Param*, in registration order */
	/* builtin fields (Linear: in/out/bias; LayerNorm: dim, eps; ...) */
	int64_t in_features, out_features, num_embeddings, padding_idx;
	bool bias, has_padding_idx;
	double eps, p;
	int64_t softmax_dim;
	/* schedule state */
	IrGraph *graph;        /* set by trace: the forward as a graph */
	bool flattened;        /* children were inlined into graph */
	bool checkpointed;
	PtrVec annotations;    /* "param:key=value" strings */
	/* shapes of the arguments of the first call seen while tracing
	 * the root, used to trace this module on its own */
	bool probed;
	int nprobe;
	IrDType probe_dt[IR_MAX_DIMS];
	IrShape probe_shape[IR_MAX_DIMS];
	Span made_at;          /* where it was instantiated */
};

Module *mod_new(Eval *ev, const char *cls, Span sp);
void mod_add_child(Eval *ev, Module *m, const char *name, Module *child);
Module *mod_child(const Module *m, const char *name);
void mod_add_param(Eval *ev, Module *m, const char *name, IrDType dt, IrShape shape);
Param *mod_param(const Module *m, const char *name);
/* Dotted path from the root ("bert.encoder.layer.0"); "" for the root. */
const char *mod_path(Eval *ev, const Module *m);
/* Path relative to an ancestor. */
const char *mod_relpath(Eval *ev, const Module *m, const Module *anc);
/* PyTorch's repr of a module tree. */
void mod_repr(Eval *ev, StrBuf *b, const Module *m, int indent);
/* Instantiate a builtin module from constructor arguments. */
Module *mod_builtin(Eval *ev, BuiltinKind k, Value **args, int nargs,
                    const char **kwnames, Value **kwargs, int nkw, Span sp);
const char *mod_builtin_name(BuiltinKind k);
bool mod_builtin_lookup(const char *name, BuiltinKind *k);
/* Walk the tree: every parameter with its full path. */
typedef void (*ParamVisit)(void *user, const char *path, const Param *p, const Module *m);
void mod_each_param(Eval *ev, const Module *m, const char *prefix, ParamVisit fn, void *user);

/* ---- eval.c: the evaluator -------------------------------------------------- */

/* A tracing session: where tensor ops go while a forward runs. */
typedef struct Trace {
	IrGraph *g;
	Module *root;          /* module being traced; params relative to it */
	bool flatten;          /* inline child modules */
	PtrVec leaves;         /* const char*: class names or paths kept as calls */
	bool probe;            /* record call signatures of every module */
	bool pattern;          /* building a pattern: no shape inference */
	const char *module;    /* path of the module being called (IrNode.module) */
	struct Trace *outer;
	struct TraceParams *params; /* trace.c: g's OP_PARAM nodes by path */
} Trace;

struct Eval {
	Arena *arena;
	Diag *diag;
	IrCtx *ir;
	Env *globals;
	PtrVec import_dirs;    /* const char*: where `import` looks */
	PtrVec imported;       /* const char*: files already imported */
	Trace *trace;          /* innermost trace, or NULL */
	bool returning;
	Value *ret;
	int depth;             /* call depth (recursion limit) */
	int expr_depth;        /* eval_expr nesting across calls (bounds the C stack) */
	int64_t steps;         /* statements and expressions evaluated */
	int64_t max_steps;     /* limit on steps, so no script runs forever */
	FILE *out;             /* print() goes here */
	Module *self;          /* module whose body/forward is running */
	PtrVec schedules;      /* roots passed to create_schedule */
	PtrVec builds;         /* Module* roots passed to build() */
	const char *build_precision; /* build(sch, precision="bf16"), or NULL */
	const char *build_output_dtype; /* build(sch, output_dtype="bf16"), or NULL */
	PtrVec ties;           /* pairs of const char*: param, tied_to */
	/* --verify support: called after each primitive */
	void (*after_primitive)(Eval *ev, const char *prim, Span sp, void *user);
	void *after_user;
	Span cur_span;         /* span of the call running now */
	const char *cur_builtin; /* name of the builtin running now */
	StrBuf *explain;       /* --explain: what each primitive did, or NULL */
};

void eval_init(Eval *ev, Arena *a, Diag *d, IrCtx *ir, FILE *out);
/* Run a whole program. Errors are fatal (diag_fatal unwinds). */
void eval_program(Eval *ev, const Ast *prog);
/* The model the program builds: the root last given to build(), else the
 * last create_schedule root; NULL (and an error naming `what`) if none. */
Module *eval_model_root(Eval *ev, const char *what);
/* A module's forward declaration (NULL for built-ins), its parameters'
 * type annotations (NULL entries where none), and a call of it with its
 * members in scope. */
const Ast *eval_forward_decl(const Module *m);
Value **eval_forward_types(Eval *ev, Module *m, int *n);
Value *eval_forward(Eval *ev, Module *m, Value **args, int nargs, const char **kwn,
                    Value **kw, int nkw, Span sp);
Value *eval_call_value(Eval *ev, Value *fn, Value **args, int nargs,
                       const char **kwnames, Value **kwargs, int nkw, Span sp);
SUP_NORETURN void eval_error(Eval *ev, Span sp, const char *fmt, ...) SUP_PRINTF(3, 4);
/* Argument helpers for builtins. */
Value *arg_get(Eval *ev, const char *fname, int pos, const char *kw, Value **args,
               int nargs, const char **kwnames, Value **kwargs, int nkw, Span sp,
               bool required);
/* Fails ("NAME() got an unexpected keyword argument 'K'") unless every
 * keyword is in allowed (NULL-terminated; NULL: none allowed). */
void arg_check_kwargs(Eval *ev, const char *fname, const char *const *allowed,
                      const char **kwn, int nkw, Span sp);
int64_t val_as_int(Eval *ev, Value *v, const char *what, Span sp);
double val_as_float(Eval *ev, Value *v, const char *what, Span sp);
IrDim val_as_dim(Eval *ev, Value *v, const char *what, Span sp);

/* ---- builtins.c: the prelude of functions and tensor ops ------------------- */

void builtins_install(Eval *ev, Env *e);
/* Attribute or method of a value (tensor methods, schedule methods, ...). */
Value *builtins_attr(Eval *ev, Value *obj, const char *name, Span sp);
/* Binary operator on values that may be tensors or dims. */
Value *builtins_binop(Eval *ev, AstOp op, Value *a, Value *b, Span sp);

/* ---- trace.c: forward bodies into graphs ----------------------------------- */

/* Call a module with values (tensors while tracing). */
Value *trace_call_module(Eval *ev, Module *m, Value **args, int nargs,
                         const char **kwnames, Value **kwargs, int nkw, Span sp);
/* Trace m's forward into a new graph. */
IrGraph *trace_module(Eval *ev, Module *m, bool flatten, PtrVec *leaves, Span sp);
/* The whole model, flattened, with every schedule decision applied. */
IrGraph *trace_model(Eval *ev, Module *root, Span sp);
/* Emit an op into the current trace (error if none). */
Value *trace_op(Eval *ev, IrOp op, Value **in, int nin, const IrAttrs *at, Span sp,
                const char *hint);
IrNode *trace_tensor(Eval *ev, Value *v, Span sp, const char *what);
/* The tensors v[0..n) of the current trace (a connected region, v[n - 1]
 * its one output, already used) as one fused kernel node NAME_i, which
 * takes v[n - 1]'s uses; in a pattern, v[n - 1] as it is. */
Value *trace_fuse(Eval *ev, Value **v, int n, const char *name, Span sp);
/* The node of parameter `name` of m in the current trace (made once). */
Value *trace_param(Eval *ev, Module *m, const char *name, Span sp);
/* x[:, none, 0, 1:3]: slices, selects and unsqueezes. */
Value *trace_index(Eval *ev, Value *t, Value **idx, int n, Span sp);
/* A pattern's body as a graph of wildcard inputs (no shape inference). */
IrGraph *trace_pattern(Eval *ev, const Ast *decl, Env *closure, Span sp);
/* m traced (flattened) on inputs of the given types; m's own input types
 * (a built-in module's: those the model calls it with; false if none). */
IrGraph *trace_with_types(Eval *ev, Module *m, IrDType *dt, IrShape *shapes, int n, Span sp);
bool trace_module_types(Eval *ev, Module *m, IrDType *dt, IrShape *shapes, int *n, Span sp);
IrNode *trace_raw_node(Eval *ev, IrOp op, IrNode **in, int nin, const IrAttrs *at, Span sp,
                       const char *hint);

/* ---- sched.c: the schedule primitives ---------------------------------------- */

Value *sched_method(Eval *ev, Module *m, const char *name, Span sp);
Value *sched_index(Eval *ev, Module *m, Value *key, Span sp);
Value *sched_create(Eval *ev, Module *root, Span sp);

#endif
