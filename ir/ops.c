/* ops.c - the op table, built from ops.def, and dtype names.
 *
 * The shape rules live in shape.c and the interpreters in interp.c; the
 * table below declares and collects them, so adding an op is adding a
 * row to ops.def and writing its two functions.
 */
#include <string.h>

#include "ir/ir.h"

/* Declare every shape rule and interpreter named in ops.def (a function
 * named by several rows is simply declared several times). */
#define OP(id, name, arity, flags, shape, interp)                                        \
	bool shape(IrCtx *c, IrNode *n);                                                 \
	bool interp(IrInterp *it, const IrNode *n, IrTensor **in, IrTensor *out);
#include "ir/ops.def"
#undef OP

const IrOpInfo ir_ops[OP_COUNT] = {
#define OP(id, name_, arity_, flags_, shape_, interp_)                                   \
	[OP_##id] = {.name = name_,                                                      \
	             .arity = arity_,                                                    \
	             .flags = flags_,                                                    \
	             .shape = shape_,                                                    \
	             .interp = interp_},
#include "ir/ops.def"
#undef OP
};

bool ir_op_lookup(const char *name, IrOp *op)
{
	for (int i = 0; i < OP_COUNT; i++) {
		if (strcmp(ir_ops[i].name, name) == 0) {
			*op = (IrOp)i;
			return true;
		}
	}
	return false;
}

static const char *const dtype_names[IR_DTYPE_COUNT] = {
        [IR_F32] = "f32", [IR_F64] = "f64", [IR_F16] = "f16",   [IR_BF16] = "bf16",
        [IR_I64] = "i64", [IR_I32] = "i32", [IR_BOOL] = "bool",
};

const char *ir_dtype_name(IrDType t)
{
	if ((unsigned)t >= IR_DTYPE_COUNT)
		return "?";
	return dtype_names[t];
}

bool ir_dtype_parse(const char *s, IrDType *t)
{
	for (int i = 0; i < IR_DTYPE_COUNT; i++) {
		if (strcmp(dtype_names[i], s) == 0) {
			*t = (IrDType)i;
			return true;
		}
	}
	return false;
}

bool ir_dtype_is_float(IrDType t)
{
	return t == IR_F32 || t == IR_F64 || t == IR_F16 || t == IR_BF16;
}
