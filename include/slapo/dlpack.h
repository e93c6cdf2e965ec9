/* dlpack.h - DLPack tensor structs, declared by slapo to the published
 * DLPack v1.1 layout (dmlc/dlpack include/dlpack/dlpack.h).
 *
 * These are our own declarations of a public data layout: a DLTensor made
 * here is bit-for-bit a DLTensor to PyTorch, JAX, CuPy, NumPy or TVM.
 * The include guard is the one dmlc/dlpack uses, so whichever of the two
 * headers a program includes first wins and the other is skipped; the two
 * declare the same layout, checked below for LP64 targets.
 *
 * Summary of the conventions (from the DLPack documentation):
 *   - strides are counted in elements, not bytes; strides == NULL means
 *     compact row-major (C order);
 *   - the address of element 0 is (char *)data + byte_offset;
 *   - data "should" be 256-byte aligned, but producers (PyTorch, CuPy, ...)
 *     do not do it: consumers must not rely on alignment;
 *   - endianness is native; lanes > 1 are vector types (slapo uses 1).
 */
#ifndef DLPACK_DLPACK_H_
#define DLPACK_DLPACK_H_

#include <stddef.h>
#include <stdint.h>

#define DLPACK_MAJOR_VERSION 1
#define DLPACK_MINOR_VERSION 1

#ifdef __cplusplus
extern "C" {
#endif

/* The DLPack ABI version a DLManagedTensorVersioned was made with. */
typedef struct DLPackVersion {
	uint32_t major;
	uint32_t minor;
} DLPackVersion;

/* Where the memory lives. Values are fixed by DLPack. */
typedef enum {
	kDLCPU = 1,      /* host memory */
	kDLCUDA = 2,     /* CUDA device memory */
	kDLCUDAHost = 3, /* pinned host memory (cudaMallocHost) */
	kDLOpenCL = 4,
	kDLVulkan = 7,
	kDLMetal = 8,
	kDLVPI = 9,
	kDLROCM = 10,
	kDLROCMHost = 11,
	kDLExtDev = 12,
	kDLCUDAManaged = 13, /* CUDA unified memory */
	kDLOneAPI = 14,
	kDLWebGPU = 15,
	kDLHexagon = 16,
	kDLMAIA = 17
} DLDeviceType;

/* A device: its kind and its index (0 for the CPU). */
typedef struct {
	DLDeviceType device_type;
	int32_t device_id;
} DLDevice;

/* Element type codes (DLDataType.code). Values are fixed by DLPack. */
typedef enum {
	kDLInt = 0U,
	kDLUInt = 1U,
	kDLFloat = 2U,
	kDLOpaqueHandle = 3U,
	kDLBfloat = 4U,
	kDLComplex = 5U,
	kDLBool = 6U,
	kDLFloat8_e3m4 = 7U,
	kDLFloat8_e4m3 = 8U,
	kDLFloat8_e4m3b11fnuz = 9U,
	kDLFloat8_e4m3fn = 10U,
	kDLFloat8_e4m3fnuz = 11U,
	kDLFloat8_e5m2 = 12U,
	kDLFloat8_e5m2fnuz = 13U,
	kDLFloat8_e8m0fnu = 14U,
	kDLFloat6_e2m3fn = 15U,
	kDLFloat6_e3m2fn = 16U,
	kDLFloat4_e2m1fn = 17U
} DLDataTypeCode;

/* An element type: f32 is {kDLFloat, 32, 1}, i64 is {kDLInt, 64, 1},
 * bool is {kDLBool, 8, 1}. code holds a DLDataTypeCode. */
typedef struct {
	uint8_t code;
	uint8_t bits;
	uint16_t lanes;
} DLDataType;

/* A borrowed view of an N-d array; it owns nothing. */
typedef struct {
	void *data;           /* base pointer (device pointer for GPUs) */
	DLDevice device;      /* where data lives */
	int32_t ndim;         /* number of dimensions */
	DLDataType dtype;     /* element type */
	int64_t *shape;       /* [ndim] extents */
	int64_t *strides;     /* [ndim] in elements, or NULL for row-major */
	uint64_t byte_offset; /* bytes from data to element 0 */
} DLTensor;

/* Legacy owned tensor (deprecated by DLPack in favour of the versioned
 * struct below); declared for completeness. */
typedef struct DLManagedTensor {
	DLTensor dl_tensor;
	void *manager_ctx;
	void (*deleter)(struct DLManagedTensor *self);
} DLManagedTensor;

/* Flags of DLManagedTensorVersioned.flags. */
#define DLPACK_FLAG_BITMASK_READ_ONLY              (UINT64_C(1) << 0)
#define DLPACK_FLAG_BITMASK_IS_COPIED              (UINT64_C(1) << 1)
#define DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED (UINT64_C(1) << 2)

/* An owned tensor: the consumer calls deleter(self) when done (deleter may
 * be NULL). Everything up to and including flags stays fixed across DLPack
 * major versions, so the deleter can always be called. */
typedef struct DLManagedTensorVersioned {
	DLPackVersion version;
	void *manager_ctx;
	void (*deleter)(struct DLManagedTensorVersioned *self);
	uint64_t flags;
	DLTensor dl_tensor;
} DLManagedTensorVersioned;

/* Layout checks for LP64 targets (x86-64, aarch64): the published
 * offsets, so a change here can never go unnoticed. */
#if defined(__LP64__) || defined(_LP64)
#ifdef __cplusplus
#define DLPACK_SLAPO_ASSERT_(c, m) static_assert(c, m)
#else
#define DLPACK_SLAPO_ASSERT_(c, m) _Static_assert(c, m)
#endif
DLPACK_SLAPO_ASSERT_(sizeof(DLPackVersion) == 8, "DLPackVersion size");
DLPACK_SLAPO_ASSERT_(sizeof(DLDevice) == 8, "DLDevice size");
DLPACK_SLAPO_ASSERT_(sizeof(DLDataType) == 4, "DLDataType size");
DLPACK_SLAPO_ASSERT_(offsetof(DLTensor, device) == 8, "DLTensor.device");
DLPACK_SLAPO_ASSERT_(offsetof(DLTensor, ndim) == 16, "DLTensor.ndim");
DLPACK_SLAPO_ASSERT_(offsetof(DLTensor, dtype) == 20, "DLTensor.dtype");
DLPACK_SLAPO_ASSERT_(offsetof(DLTensor, shape) == 24, "DLTensor.shape");
DLPACK_SLAPO_ASSERT_(offsetof(DLTensor, strides) == 32, "DLTensor.strides");
DLPACK_SLAPO_ASSERT_(offsetof(DLTensor, byte_offset) == 40, "DLTensor.byte_offset");
DLPACK_SLAPO_ASSERT_(sizeof(DLTensor) == 48, "DLTensor size");
DLPACK_SLAPO_ASSERT_(sizeof(DLManagedTensor) == 64, "DLManagedTensor size");
DLPACK_SLAPO_ASSERT_(offsetof(DLManagedTensorVersioned, manager_ctx) == 8,
                     "DLManagedTensorVersioned.manager_ctx");
DLPACK_SLAPO_ASSERT_(offsetof(DLManagedTensorVersioned, deleter) == 16,
                     "DLManagedTensorVersioned.deleter");
DLPACK_SLAPO_ASSERT_(offsetof(DLManagedTensorVersioned, flags) == 24,
                     "DLManagedTensorVersioned.flags");
DLPACK_SLAPO_ASSERT_(offsetof(DLManagedTensorVersioned, dl_tensor) == 32,
                     "DLManagedTensorVersioned.dl_tensor");
DLPACK_SLAPO_ASSERT_(sizeof(DLManagedTensorVersioned) == 80,
                     "DLManagedTensorVersioned size");
#undef DLPACK_SLAPO_ASSERT_
#endif

#ifdef __cplusplus
}
#endif

#endif /* DLPACK_DLPACK_H_ */
