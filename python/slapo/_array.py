"""`Array`: a small host array of our own, for when numpy is not there.

It owns its memory (or a read-only view of a loaded parameter) and speaks
DLPack both ways as a producer: `torch.from_dlpack(a)`, `np.from_dlpack(a)`
take it without a copy. `tolist()` reads it from plain Python.
"""

import ctypes
import struct

from . import _dlpack as dl

_STRUCT = {  # dtype name -> struct format of one element
    "float16": "e", "float32": "f", "float64": "d", "bool": "?",
    "int8": "b", "int16": "h", "int32": "i", "int64": "q",
    "uint8": "B", "uint16": "H", "uint32": "I", "uint64": "Q",
}
_CELL = {1: ctypes.c_uint8, 2: ctypes.c_uint16, 4: ctypes.c_uint32, 8: ctypes.c_uint64}


class Array:
    """A compact row-major host array: `shape` (tuple), `dtype` ('float32',
    ...), `nbytes`, `tolist()`, and `__dlpack__` / `__dlpack_device__`."""

    def __init__(self, shape, dtype="float32", _view=None):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtype
        self._dt = dl.dtype_from_name(dtype)
        self.itemsize = self._dt.bits // 8
        self.size = 1
        for d in self.shape:
            self.size *= d
        self.nbytes = self.size * self.itemsize
        self._shape = (ctypes.c_int64 * max(1, len(self.shape)))(*self.shape)
        if _view is None:  # zeroed memory aligned to the element size
            self._buffer = (_CELL[self.itemsize] * max(1, self.size))()
            self._data = ctypes.addressof(self._buffer)
            self.read_only = False
        else:  # (address, keep-alive object, read_only)
            self._data, self._buffer, self.read_only = _view

    @classmethod
    def from_nested(cls, data, dtype):
        """An Array holding a nested list of numbers (or one number)."""
        shape, probe = [], data
        while isinstance(probe, (list, tuple)):
            shape.append(len(probe))
            probe = probe[0] if probe else None
        flat = list(_flatten(data, len(shape)))
        a = cls(shape, dtype)
        if len(flat) != a.size:
            raise ValueError("the nested list is ragged, not of shape %s" % shape)
        if dtype not in _STRUCT:
            raise TypeError("cannot make %s from Python numbers" % dtype)
        ctypes.memmove(a._data, struct.pack("<%d%s" % (a.size, _STRUCT[dtype]), *flat),
                       a.nbytes)
        return a

    @property
    def ndim(self):
        return len(self.shape)

    def data_ptr(self):
        return self._data

    def _dltensor(self):
        return dl.DLTensor(self._data, dl.DLDevice(dl.CPU, 0), len(self.shape), self._dt,
                           self._shape, None, 0)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        if stream is not None and stream != -1:
            raise BufferError("a CPU array takes no stream")
        if dl_device is not None and tuple(dl_device) != (dl.CPU, 0):
            raise BufferError("slapo.Array lives on the CPU")
        if copy:
            raise BufferError("slapo.Array does not copy on export")
        versioned = max_version is not None and max_version[0] >= 1
        if self.read_only and not versioned:
            raise BufferError("a read-only array needs DLPack >= 1.0 to export")
        return dl.make_capsule(self._dltensor(), self, versioned, self.read_only)

    def __dlpack_device__(self):
        return (dl.CPU, 0)

    @property
    def __array_interface__(self):  # numpy.asarray(a) without a copy
        typestr = {"float16": "<f2", "float32": "<f4", "float64": "<f8", "bool": "|b1",
                   "bfloat16": "<V2"}.get(self.dtype)
        if typestr is None:
            typestr = "<%s%d" % ("u" if self.dtype.startswith("u") else "i", self.itemsize)
        return {"shape": self.shape, "typestr": typestr, "version": 3,
                "data": (self._data, self.read_only)}

    def tolist(self):
        raw = ctypes.string_at(self._data, self.nbytes)
        if self.dtype == "bfloat16":  # the top half of an f32
            halves = struct.unpack("<%dH" % self.size, raw)
            flat = list(struct.unpack("<%df" % self.size,
                                      struct.pack("<%dI" % self.size, *(h << 16 for h in halves))))
        else:
            flat = list(struct.unpack("<%d%s" % (self.size, _STRUCT[self.dtype]), raw))
        return _nest(flat, self.shape)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self):
        return "slapo.Array(shape=%s, dtype=%s%s)" % (
            list(self.shape), self.dtype, ", read-only" if self.read_only else "")


def _nest(flat, shape):
    """A flat list as nested lists of that shape (a number for shape ())."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _flatten(data, depth):
    if depth == 0:
        yield data
        return
    if not isinstance(data, (list, tuple)):
        raise ValueError("the nested list is ragged")
    for item in data:
        yield from _flatten(item, depth - 1)
