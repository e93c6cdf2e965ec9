"""The C ABI of a model library (include/slapo/slapo.h) in ctypes, and
opening a library: `open_library(path)` returns its `SlapoApi` table.

Only what slapo.h declares is used. Entries are read from the table the
library returns; the table only grows at its end, so a library of a later
ABI minor works with these declarations.
"""

import ctypes
import os

from ._dlpack import DLDataType, DLDevice, DLManagedTensorVersioned, DLTensor
from ._errors import SlapoError, Status

ABI_MAJOR = 1
ABI_MINOR = 0

INPUT, OUTPUT, PARAM = 0, 1, 2  # SlapoTensorKind
LOAD_ALLOW_MISSING, LOAD_STRICT = 1, 2  # weights_load_safetensors flags
FILL_NONE, FILL_ZEROS, FILL_ONES = 0, 1, 2  # SlapoTensorSpec.default_fill

_p = ctypes.POINTER
_i32, _i64, _u32, _u64 = ctypes.c_int32, ctypes.c_int64, ctypes.c_uint32, ctypes.c_uint64
_str = ctypes.c_char_p
_void = ctypes.c_void_p
_status = ctypes.c_int32


class SlapoErrorStruct(ctypes.Structure):
    _fields_ = [("code", _i32), ("device_error", _i32), ("message", _str),
                ("object_name", _str)]


class SlapoModelInfo(ctypes.Structure):
    _fields_ = [
        ("name", _str), ("slapoc_version", _str),
        ("n_inputs", _i32), ("n_outputs", _i32), ("n_params", _i32), ("n_symbols", _i32),
        ("symbol_names", _p(_str)), ("symbol_min", _p(_i64)), ("symbol_max", _p(_i64)),
        ("n_param_elements", _u64), ("devices", _u32), ("reserved", _u32),
    ]


class SlapoTensorSpec(ctypes.Structure):
    _fields_ = [
        ("name", _str), ("dtype", DLDataType), ("ndim", _i32), ("shape", _p(_i64)),
        ("dim_names", _p(_str)), ("dim_symbols", _p(_i32)), ("tied_to", _str),
        ("value_max", _i64), ("default_fill", _i32), ("flags", _u32),
    ]


LogFn = ctypes.CFUNCTYPE(None, _i32, _str, _void)


class SlapoWeightsParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("device", DLDevice),
                ("n_threads", _i32), ("log", LogFn), ("log_user_data", _void)]


class SlapoSessionParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("n_threads", _i32)]


_F = ctypes.CFUNCTYPE  # calls through these release the GIL
_tensors_in = _p(_p(DLTensor))

# (name, restype, argtypes) of each entry, in the table's order (minor 0).
_ENTRIES = [
    ("last_error", _p(SlapoErrorStruct), []),
    ("status_name", _str, [_status]),
    ("model_open", _status, [_p(_void)]),
    ("model_close", None, [_void]),
    ("model_info", _status, [_void, _p(_p(SlapoModelInfo))]),
    ("model_tensor", _status, [_void, _i32, _i32, _p(_p(SlapoTensorSpec))]),
    ("model_find", _status, [_void, _i32, _str, _p(_i32)]),
    ("model_output_shape", _status, [_void, _tensors_in, _i32, _i32, _p(_i64)]),
    ("weights_create", _status, [_void, _p(SlapoWeightsParams), _p(_void)]),
    ("weights_free", None, [_void]),
    ("weights_load_safetensors", _status, [_void, _p(_str), _i32, _u32]),
    ("weights_init_random", _status, [_void, _u64]),
    ("weights_set", _status, [_void, _str, _p(DLTensor)]),
    ("weights_get", _status, [_void, _str, _p(_p(DLManagedTensorVersioned))]),
    ("weights_check", _status, [_void]),
    ("session_create", _status, [_void, _p(SlapoSessionParams), _p(_void)]),
    ("session_free", None, [_void]),
    ("session_run", _status, [_void, _tensors_in, _i32, _tensors_in, _i32]),
    ("testing_fail_alloc", _i64, [_i64]),
]


PROFILE_OFF, PROFILE_ON, PROFILE_EVENTS = 0, 1, 2


class SlapoProfileStep(ctypes.Structure):
    _fields_ = [("name", _str), ("kind", _str), ("source", _str), ("module", _str),
                ("calls", _u64), ("total_ns", _u64), ("min_ns", _u64), ("max_ns", _u64),
                ("flops", ctypes.c_double), ("bytes", ctypes.c_double)]


class SlapoProfileEvent(ctypes.Structure):
    _fields_ = [("step", _i32), ("run", _i32), ("start_ns", _u64), ("dur_ns", _u64)]


class SlapoProfile(ctypes.Structure):
    _fields_ = [("device", _u32), ("n_steps", _i32), ("steps", _p(SlapoProfileStep)),
                ("n_runs", _i64), ("n_events", _i64), ("events", _p(SlapoProfileEvent)),
                ("dropped_events", _i64)]


# entries of minor 2 (read only from libraries that have them)
_ENTRIES_2 = [
    ("session_profile", _status, [_void, _u32]),
    ("session_profile_read", _status, [_void, _p(_p(SlapoProfile))]),
]


class SlapoApi(ctypes.Structure):
    _fields_ = [("abi_major", _u32), ("abi_minor", _u32), ("struct_size", _u32),
                ("reserved", _u32), ("slapoc_version", _str)] + [
        (name, _F(res, *args)) for name, res, args in _ENTRIES + _ENTRIES_2]


class Api:
    """One library's table, with its entries as bound callables."""

    def __init__(self, path, lib, table):
        self.path = path
        self.lib = lib  # the CDLL: keeps the library loaded
        self.table = table
        self.abi = (table.abi_major, table.abi_minor)
        self.slapoc_version = (table.slapoc_version or b"").decode()
        for name, _, _ in _ENTRIES:
            setattr(self, name, getattr(table, name))
        for name, _, _ in _ENTRIES_2:  # None where the library is older
            setattr(self, name, getattr(table, name) if self.abi[1] >= 2 else None)

    def error(self, prefix=""):
        """The calling thread's last error as a SlapoError."""
        e = self.last_error().contents
        msg = (e.message or b"").decode("utf-8", "replace")
        obj = (e.object_name or b"").decode("utf-8", "replace")
        return SlapoError(e.code or Status.INTERNAL, prefix + msg, obj, e.device_error)

    def check(self, status):
        if status != Status.OK:
            raise self.error()


def open_library(path):
    """dlopens a model library (RTLD_LOCAL, so several load side by side)
    and returns its Api. Errors are SlapoError: IO (cannot load), FORMAT
    (not a slapo model library), ABI_MISMATCH (another ABI major)."""
    path = os.fspath(path)
    # dlopen searches the library path for a name without a slash
    target = os.path.abspath(path) if os.path.exists(path) else path
    try:
        lib = ctypes.CDLL(target, mode=os.RTLD_NOW | os.RTLD_LOCAL)
    except OSError as e:
        raise SlapoError(Status.IO, "cannot load %s: %s" % (path, e), path) from None
    try:
        get_api = lib.slapo_get_api
    except AttributeError:
        raise SlapoError(Status.FORMAT, "%s is not a slapo model library (no "
                         "slapo_get_api)" % path, path) from None
    get_api.restype = _p(SlapoApi)
    get_api.argtypes = [_u32]
    table = get_api(ABI_MAJOR)
    if not table:
        raise SlapoError(Status.ABI_MISMATCH, "%s does not speak slapo ABI %d" %
                         (path, ABI_MAJOR), path)
    return Api(path, lib, table.contents)
