/* sched.h - values, the evaluator, the module tree and the schedule.
 *
 * (This section joins ir/ir.h.) The .slapo program runs at compile time
 * in a small evaluator: configs and modules are instantiated into a
 * module tree (PyTorch names and parameters), the schedule script's
 * primitives rewrite that tree, and `trace` turns a module's forward
 * into a dataflow graph by running it on symbolic tensors.
 */
#ifndef SLAPO_SCHED_H
#define SLAPO_SCHED_H

#include "ir/ir.h"
#include "parser/parser.h"

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
	struct Trace *outer;
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
Value *eval_call_value(Eval *ev, Value *fn, Value **args, int nargs,
                       const char **kwnames, Value **kwargs, int nkw, Span sp);
SUP_NORETURN void eval_error(Eval *ev, Span sp, const char *fmt, ...) SUP_PRINTF(3, 4);
/* Argument helpers for builtins. */
Value *arg_get(Eval *ev, const char *fname, int pos, const char *kw, Value **args,
               int nargs, const char **kwnames, Value **kwargs, int nkw, Span sp,
               bool required);
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
IrNode *trace_raw_node(Eval *ev, IrOp op, IrNode **in, int nin, const IrAttrs *at, Span sp,
                       const char *hint);

/* ---- sched.c: the schedule primitives ---------------------------------------- */

Value *sched_method(Eval *ev, Module *m, const char *name, Span sp);
Value *sched_index(Eval *ev, Module *m, Value *key, Span sp);
Value *sched_create(Eval *ev, Module *root, Span sp);

#endif
