"""DLPack in ctypes: the structs of include/slapo/dlpack.h and the Python
capsule protocol, both ways.

Consuming (inputs and caller-given outputs): `borrow(obj)` calls
`obj.__dlpack__`, takes the `dltensor_versioned` (DLPack >= 1.0) or legacy
`dltensor` capsule, renames it `used_...` as the protocol asks, and returns a
`Borrowed` whose `tensor` is the DLTensor to hand to the library. `release()`
calls the producer's deleter; until then the producer's memory stays valid.

Producing (our own `Array`, weight views): `make_capsule(dltensor, owner)`
wraps a DLTensor in a fresh DLManagedTensor(Versioned) and a capsule; the
deleter drops the reference to `owner`, the object that keeps the memory.
"""

import ctypes
import threading

from ._errors import SlapoError, Status

# ---- the structs (dlpack.h; layouts checked there by _Static_assert) -----

CPU, CUDA, CUDA_HOST = 1, 2, 3  # DLDeviceType values slapo cares about
INT, UINT, FLOAT, BFLOAT, BOOL = 0, 1, 2, 4, 6  # DLDataTypeCode values
READ_ONLY = 1  # DLPACK_FLAG_BITMASK_READ_ONLY


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8),
                ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    pass


DLManagedTensor._fields_ = [
    ("dl_tensor", DLTensor),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))),
]


class DLManagedTensorVersioned(ctypes.Structure):
    pass


DLManagedTensorVersioned._fields_ = [
    ("version", DLPackVersion),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensorVersioned))),
    ("flags", ctypes.c_uint64),
    ("dl_tensor", DLTensor),
]

assert ctypes.sizeof(DLTensor) == 48 and ctypes.sizeof(DLManagedTensorVersioned) == 80

# ---- dtypes ---------------------------------------------------------------

_NAMES = {
    (FLOAT, 16): "float16", (FLOAT, 32): "float32", (FLOAT, 64): "float64",
    (BFLOAT, 16): "bfloat16", (BOOL, 8): "bool",
    (INT, 8): "int8", (INT, 16): "int16", (INT, 32): "int32", (INT, 64): "int64",
    (UINT, 8): "uint8", (UINT, 16): "uint16", (UINT, 32): "uint32", (UINT, 64): "uint64",
}
_CODES = {name: key for key, name in _NAMES.items()}


def dtype_name(dt):
    """'float32', 'int64', ... for a DLDataType (or 'code:bits' if unknown)."""
    name = _NAMES.get((dt.code, dt.bits))
    if dt.lanes != 1 or name is None:
        return "dl(%d,%d,%d)" % (dt.code, dt.bits, dt.lanes)
    return name


def dtype_from_name(name):
    code, bits = _CODES[name]
    return DLDataType(code, bits, 1)


def device_str(dev):
    kinds = {CPU: "cpu", CUDA: "cuda", CUDA_HOST: "cuda_host"}
    kind = kinds.get(dev.device_type, "dldevice%d" % dev.device_type)
    return kind if dev.device_type == CPU else "%s:%d" % (kind, dev.device_id)


# ---- the capsule API, through ctypes.pythonapi ----------------------------

_api = ctypes.pythonapi
_get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", _api))
_set_name = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_SetName", _api))
_is_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_IsValid", _api))
_CapsuleDestructor = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_new_capsule = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p,
                                 _CapsuleDestructor)(("PyCapsule_New", _api))
# In a destructor the capsule is being freed: pass it as a raw pointer.
_raw_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p)(("PyCapsule_GetName", _api))
_raw_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", _api))
_clear_error = ctypes.PYFUNCTYPE(None)(("PyErr_Clear", _api))

# Capsule names. PyCapsule keeps the pointer, not a copy: these bytes
# objects live as long as the module, so the names stay valid.
LEGACY, VERSIONED = b"dltensor", b"dltensor_versioned"
USED_LEGACY, USED_VERSIONED = b"used_dltensor", b"used_dltensor_versioned"

# ---- consuming ------------------------------------------------------------


class Borrowed:
    """A producer's tensor, taken from its capsule, until release()."""

    def __init__(self, producer, capsule, managed, versioned):
        self.producer = producer  # kept alive during the call
        self.capsule = capsule
        self.managed = managed  # POINTER(DLManagedTensor[Versioned])
        self.versioned = versioned
        self.tensor = managed.contents.dl_tensor  # a view into the struct
        self.read_only = bool(versioned and managed.contents.flags & READ_ONLY)

    def release(self):
        """Calls the producer's deleter once (the capsule is 'used_': its
        destructor will not)."""
        managed, self.managed = self.managed, None
        if managed is not None and managed.contents.deleter:
            managed.contents.deleter(managed)
        self.producer = self.capsule = self.tensor = None


def borrow(obj, stream=None, what="tensor", name=""):
    """Takes obj's DLPack tensor. `stream` is passed to producers on a GPU
    (the consumer's stream, per the protocol); CPU producers get None.
    `what` ("input 'input_ids'") and `name` ("input_ids") go into errors."""
    if not hasattr(obj, "__dlpack__"):
        if hasattr(obj, "__array_interface__"):
            return _from_array_interface(obj, what, name)
        raise SlapoError(Status.INVALID_ARGUMENT,
                         "%s is a %s, which has no __dlpack__ (pass a numpy array, a "
                         "torch tensor or another DLPack array)" % (what, type(obj).__name__),
                         name)
    dev_type = CPU
    if hasattr(obj, "__dlpack_device__"):
        dev_type = int(obj.__dlpack_device__()[0])
    if dev_type in (CPU, CUDA_HOST):
        stream = None
    try:
        try:
            capsule = obj.__dlpack__(stream=stream, max_version=(1, 0))
        except TypeError:  # a producer older than DLPack 1.0 (numpy < 2.1)
            capsule = obj.__dlpack__(stream=stream)
    except BufferError as e:
        # numpy < 2.1 cannot export read-only arrays through DLPack 0.x
        if hasattr(obj, "__array_interface__"):
            return _from_array_interface(obj, what, name)
        raise SlapoError(Status.INVALID_ARGUMENT,
                         "%s cannot be exported through DLPack: %s" % (what, e), name)
    versioned = bool(_is_valid(capsule, VERSIONED))
    if versioned:
        ptr = _get_pointer(capsule, VERSIONED)
        managed = ctypes.cast(ptr, ctypes.POINTER(DLManagedTensorVersioned))
        if managed.contents.version.major > 1:
            # a major version we cannot read: leave the capsule to its destructor
            raise SlapoError(Status.UNSUPPORTED,
                             "%s is DLPack %d.x; slapo reads 1.x" %
                             (what, managed.contents.version.major), name)
        _set_name(capsule, USED_VERSIONED)
    elif _is_valid(capsule, LEGACY):
        ptr = _get_pointer(capsule, LEGACY)
        managed = ctypes.cast(ptr, ctypes.POINTER(DLManagedTensor))
        _set_name(capsule, USED_LEGACY)
    else:
        raise SlapoError(Status.INVALID_ARGUMENT,
                         "%s.__dlpack__() did not return a DLPack capsule" % what, name)
    return Borrowed(obj, capsule, managed, versioned)


class _Interface:
    """A host array seen through numpy's __array_interface__ (no deleter)."""

    def __init__(self, producer, tensor, keep):
        self.producer, self.tensor, self._keep = producer, tensor, keep
        self.read_only = False  # outputs: the library only writes what it is given

    def release(self):
        self.producer = self.tensor = self._keep = None


def _from_array_interface(obj, what, name):
    ai = obj.__array_interface__
    typestr, shape = ai["typestr"], tuple(ai["shape"])
    kinds = {"f": FLOAT, "i": INT, "u": UINT, "b": BOOL}
    size = int(typestr[2:])
    if typestr[0] == ">" and size > 1 or typestr[1] not in kinds:
        raise SlapoError(Status.DTYPE_MISMATCH, "%s has the array type '%s', which slapo "
                         "does not take" % (what, typestr), name)
    dims = (ctypes.c_int64 * max(1, len(shape)))(*shape)
    strides = None
    if ai.get("strides") is not None:
        if any(st % size for st in ai["strides"]):
            raise SlapoError(Status.INVALID_ARGUMENT, "%s has strides that are not a "
                             "multiple of its element size" % what, name)
        strides = (ctypes.c_int64 * max(1, len(shape)))(*(st // size for st in ai["strides"]))
    t = DLTensor(ai["data"][0], DLDevice(CPU, 0), len(shape),
                 DLDataType(kinds[typestr[1]], 8 * size, 1), dims, strides, 0)
    return _Interface(obj, t, (dims, strides))


# ---- producing ------------------------------------------------------------

_live = {}  # address of a managed struct we made -> (struct, owner)
_live_lock = threading.Lock()


def _forget(address):
    with _live_lock:
        entry = _live.pop(address, None)
    del entry  # may free the owner: outside the lock


@ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensorVersioned))
def _deleter_versioned(p):
    _forget(ctypes.addressof(p.contents))


@ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))
def _deleter_legacy(p):
    _forget(ctypes.addressof(p.contents))


@_CapsuleDestructor
def _capsule_destructor(capsule):
    """Frees an unconsumed capsule's tensor (a consumer renames it)."""
    try:
        name = _raw_name(capsule)
        if name in (LEGACY, VERSIONED):
            _forget(_raw_pointer(capsule, name))
        _clear_error()
    except Exception:  # during interpreter shutdown; nothing left to free
        pass


def make_capsule(tensor, owner, versioned=True, read_only=False):
    """A new capsule for `tensor` (a DLTensor whose shape/strides arrays are
    kept alive by `owner`). The capsule's tensor holds `owner` until the
    consumer calls its deleter (or the capsule dies unconsumed)."""
    if versioned:
        m = DLManagedTensorVersioned()
        m.version = DLPackVersion(1, 0)
        m.deleter = _deleter_versioned
        m.flags = READ_ONLY if read_only else 0
        name = VERSIONED
    else:
        m = DLManagedTensor()
        m.deleter = _deleter_legacy
        name = LEGACY
    ctypes.memmove(ctypes.addressof(m.dl_tensor), ctypes.addressof(tensor),
                   ctypes.sizeof(DLTensor))
    address = ctypes.addressof(m)
    with _live_lock:
        _live[address] = (m, owner)
    return _new_capsule(address, name, _capsule_destructor)
