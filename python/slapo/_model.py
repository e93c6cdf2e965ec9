"""`load()` and `Model`: a compiled model library as a Python callable.

    model = slapo.load("bert.so", weights="model.safetensors")
    out = model(input_ids=ids)          # ids: numpy, torch, ... (DLPack)
    out.logits                          # also out[0], out["logits"]

One model handle and one weights handle per Model; one session per Python
thread that calls it (a session serves one thread at a time), made on the
first call.
"""

import ctypes
import logging
import os
import struct
import sys
import threading
import weakref

from . import _abi as abi
from . import _dlpack as dl
from ._array import Array
from ._errors import SlapoError, Status

log = logging.getLogger("slapo")
# The library logs each failed call at ERROR too; here that failure is
# raised as a SlapoError, so its log line goes to DEBUG, not to stderr.
_LEVELS = {1: logging.DEBUG, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG}


class RandomWeights:
    """Ask for weights_init_random(seed) instead of a checkpoint."""

    def __init__(self, seed=0):
        self.seed = int(seed)

    def __repr__(self):
        return "slapo.random_weights(%d)" % self.seed


def random_weights(seed=0):
    """`slapo.load(lib, weights=slapo.random_weights(0))`: deterministic
    random parameters (normal(0, 0.02) weights, zero biases, unit norm
    scales), for demos and benchmarks. Never a silent fallback."""
    return RandomWeights(seed)


class TensorSpec:
    """An input, output or parameter: `name`, `dtype` ('float32', 'int64',
    ...), `shape` (ints, and symbol names such as 'B' and 'S' for the
    dims chosen at run time), `value_max` (integer inputs take values in
    [0, value_max); 0 = any), `default` ('ones', 'zeros' or None: what a
    missing input is filled with), `tied_to` (params sharing storage)."""

    def __init__(self, s):
        self.name = s.name.decode()
        self.dtype = dl.dtype_name(s.dtype)
        self.shape = tuple(
            s.dim_names[d].decode() if s.dim_symbols[d] >= 0 else int(s.shape[d])
            for d in range(s.ndim))
        self.symbols = tuple(int(s.dim_symbols[d]) for d in range(s.ndim))
        self.value_max = int(s.value_max)
        self.default = {abi.FILL_ONES: "ones", abi.FILL_ZEROS: "zeros"}.get(s.default_fill)
        self.tied_to = s.tied_to.decode() if s.tied_to else None

    def __repr__(self):
        return "%s: %s[%s]" % (self.name, self.dtype, ", ".join(str(d) for d in self.shape))


class Outputs(tuple):
    """The outputs in the model's order, also by name: `out.logits`,
    `out["logits"]`, `out[0]`, `dict(out.items())`."""

    def __new__(cls, names, values):
        self = super().__new__(cls, values)
        self._names = tuple(names)
        return self

    def __reduce__(self):  # copy and pickle
        return (Outputs, (self._names, tuple(self)))

    def keys(self):
        return self._names

    def items(self):
        return zip(self._names, self)

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                key = self._names.index(key)
            except ValueError:
                raise KeyError(key) from None
        return super().__getitem__(key)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self):
        return "Outputs(%s)" % ", ".join("%s=%r" % kv for kv in self.items())


def _s(b):
    """A C string from the library as str ('' for NULL)."""
    return (b or b"").decode("utf-8", "replace")


def parse_device(device):
    """'cpu', 'cuda', 'cuda:1', a torch.device, or a (type, id) pair."""
    if isinstance(device, tuple):
        return dl.DLDevice(int(device[0]), int(device[1]))
    text = str(device)
    kind, _, index = text.partition(":")
    types = {"cpu": dl.CPU, "cuda": dl.CUDA}
    if kind not in types or (index and not index.isdigit()):
        raise SlapoError(Status.INVALID_ARGUMENT,
                         "unknown device '%s' (cpu, cuda or cuda:N)" % text)
    return dl.DLDevice(types[kind], int(index or 0))


def load(path, weights=None, device="cpu", threads=None, strict=False):
    """Opens the model library at `path` and makes its weights on `device`.

    weights  a safetensors file (HF model.safetensors), a list of shards or a
             model.safetensors.index.json, slapo.random_weights(seed), or
             None (set them later with load_weights / init_random)
    device   'cpu', or 'cuda:N' for an NVIDIA GPU (the library opens the
             CUDA libraries then; torch CUDA tensors are exchanged in place)
    threads  threads per session; None = all usable cores
    strict   fail on checkpoint tensors the model has no parameter for
    """
    return Model(path, weights, device, threads, strict)


class Model:
    """A loaded model: call it with its inputs (positional in the model's
    order, or by name). See load()."""

    def __init__(self, path, weights=None, device="cpu", threads=None, strict=False):
        self._model = self._weights = None
        self._sessions = weakref.WeakSet()  # live _Session holders, freed on close()
        self._local = threading.local()
        self._lock = threading.Lock()
        self.path = os.fspath(path)
        self.api = abi.open_library(self.path)
        self._log_fn = abi.LogFn(_on_log)  # kept alive as long as the weights
        self.threads = 0 if threads is None else int(threads)
        handle = abi._void()
        self.api.check(self.api.model_open(handle))
        self._model = handle
        info = abi._p(abi.SlapoModelInfo)()
        self.api.check(self.api.model_info(self._model, info))
        info = info.contents
        self.name = info.name.decode()
        self.slapoc_version = info.slapoc_version.decode()
        self.symbols = {info.symbol_names[i].decode():
                        (int(info.symbol_min[i]), None if info.symbol_max[i] < 0
                         else int(info.symbol_max[i]))
                        for i in range(info.n_symbols)}
        self.n_param_elements = int(info.n_param_elements)
        self.inputs = self._specs(abi.INPUT, info.n_inputs)
        self.outputs = self._specs(abi.OUTPUT, info.n_outputs)
        self.params = self._specs(abi.PARAM, info.n_params)
        self._sym_names = list(self.symbols)
        self.device = parse_device(device)
        params = abi.SlapoWeightsParams(ctypes.sizeof(abi.SlapoWeightsParams), self.device,
                                        self.threads, self._log_fn, None)
        handle = abi._void()
        self.api.check(self.api.weights_create(self._model, params, handle))
        self._weights = handle
        if isinstance(weights, RandomWeights):
            self.init_random(weights.seed)
        elif weights is not None:
            self.load_weights(weights, strict=strict)

    def _specs(self, kind, n):
        out = []
        for i in range(n):
            s = abi._p(abi.SlapoTensorSpec)()
            self.api.check(self.api.model_tensor(self._model, kind, i, s))
            out.append(TensorSpec(s.contents))
        return tuple(out)

    # ---- weights ----------------------------------------------------------

    def load_weights(self, paths, strict=False, allow_missing=False):
        """Loads HF safetensors: one file, the shards of one checkpoint, or
        its model.safetensors.index.json (SLAPO_LOAD_* semantics)."""
        if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
            paths = [paths]
        files = [os.fsencode(p) for p in paths]
        arr = (abi._str * max(1, len(files)))(*files)
        flags = abi.LOAD_STRICT if strict else 0
        flags |= abi.LOAD_ALLOW_MISSING if allow_missing else 0
        self._free_sessions()
        self.api.check(self.api.weights_load_safetensors(self._weights, arr, len(files), flags))

    def init_random(self, seed=0):
        self._free_sessions()
        self.api.check(self.api.weights_init_random(self._weights, int(seed)))

    def set_param(self, name, tensor):
        """Copies one parameter from any host float tensor (DLPack)."""
        self._free_sessions()
        b = dl.borrow(tensor, None, "parameter '%s'" % name, name)
        try:
            self.api.check(self.api.weights_set(self._weights, name.encode(),
                                                ctypes.pointer(b.tensor)))
        finally:
            b.release()

    def param(self, name):
        """A read-only, zero-copy view of a loaded parameter (a slapo.Array:
        numpy.asarray(), torch.from_dlpack() take it)."""
        view = abi._p(dl.DLManagedTensorVersioned)()
        self.api.check(self.api.weights_get(self._weights, name.encode(), view))
        t = view.contents.dl_tensor
        keep = _WeightsView(view)
        shape = [t.shape[d] for d in range(t.ndim)]
        return Array(shape, dl.dtype_name(t.dtype), _view=(t.data + t.byte_offset, keep, True))

    # ---- running ----------------------------------------------------------

    def __call__(self, *args, **kwargs):
        """model(ids), model(input_ids=ids, attention_mask=mask): run() with
        the inputs in the model's order and/or by name."""
        return self._run(self._bind(args, kwargs), None, None, "auto")

    def run(self, inputs, out=None, stream=None, output="auto"):
        """Runs forward and returns Outputs.

        inputs  a sequence (the model's order) or a dict by name; each value
                anything with __dlpack__ (numpy >= 1.22, torch, cupy, jax, a
                slapo.Array) or, with numpy, a nested list. Missing inputs
                with a default (attention_mask: ones, token_type_ids: zeros)
                are filled in.
        out     optional output tensors to write into (a sequence or dict)
        stream  the caller's CUDA stream, passed to GPU producers' __dlpack__
                (the session runs on its own stream and has finished when
                run returns)
        output  'auto' (torch tensors if an input is one, else numpy arrays,
                else slapo.Array), 'numpy', 'torch' or 'array'; torch
                tensors are made on the model's device
        """
        if isinstance(inputs, dict):
            given = self._bind((), inputs)
        else:
            given = self._bind(tuple(inputs), {})
        return self._run(given, out, stream, output)

    def _run(self, given, out, stream, output):
        if self._model is None:
            raise SlapoError(Status.INVALID_ARGUMENT, "the model is closed")
        borrowed, keep = [], []
        try:
            tensors = [None] * len(self.inputs)
            for i, value in given.items():
                b = self._borrow_input(i, value, stream)
                borrowed.append(b)
                tensors[i] = b.tensor
            kind = _output_kind(output, [given[i] for i in given])
            for i, spec in enumerate(self.inputs):
                if tensors[i] is None:
                    filled = self._fill(spec, tensors, kind)
                    keep.append(filled)
                    b = dl.borrow(filled, None, "input '%s'" % spec.name, spec.name)
                    borrowed.append(b)
                    tensors[i] = b.tensor
            in_ptrs = _pointers(tensors)
            results, out_tensors = self._outputs(in_ptrs, out, kind, stream, borrowed)
            out_ptrs = _pointers(out_tensors)
            session = self._session()
            self.api.check(self.api.session_run(session, in_ptrs, len(self.inputs),
                                                out_ptrs, len(self.outputs)))
            return Outputs([s.name for s in self.outputs], results)
        finally:
            for b in borrowed:
                b.release()

    def _bind(self, inputs, by_name):
        """{input index: value}; raises for unknown, repeated or extra inputs."""
        names = [s.name for s in self.inputs]
        if len(inputs) > len(names):
            raise SlapoError(Status.INVALID_ARGUMENT, "%s takes %d inputs (%s), %d given" %
                             (self.name, len(names), ", ".join(names), len(inputs)))
        given = dict(enumerate(inputs))
        for name, value in by_name.items():
            if name not in names:
                raise SlapoError(Status.NOT_FOUND, "%s has no input '%s'; its inputs are %s" %
                                 (self.name, name, ", ".join(names)), name)
            i = names.index(name)
            if i in given:
                raise SlapoError(Status.INVALID_ARGUMENT,
                                 "input '%s' given twice" % name, name)
            given[i] = value
        for i, spec in enumerate(self.inputs):
            if i not in given and spec.default is None:
                raise SlapoError(Status.INVALID_ARGUMENT, "missing input '%s' (%r)" %
                                 (spec.name, spec), spec.name)
        return given

    def _borrow_input(self, i, value, stream):
        spec = self.inputs[i]
        what = "input '%s'" % spec.name
        if isinstance(value, (list, tuple, int, float, bool)):  # made in the model's dtype
            try:
                value = _from_python(value, spec.dtype)
            except (TypeError, ValueError) as e:
                raise SlapoError(Status.INVALID_ARGUMENT, "%s: %s" % (what, e),
                                 spec.name) from None
        return dl.borrow(value, stream, what, spec.name)

    def _symbol_values(self, tensors):
        values = {}
        for spec, t in zip(self.inputs, tensors):
            if t is None or t.ndim != len(spec.shape):
                continue
            for d, k in enumerate(spec.symbols):
                if k >= 0:
                    values.setdefault(k, t.shape[d])
        return values

    def _fill(self, spec, tensors, kind):
        """A missing defaultable input, sized from the symbols of the others
        (a symbol none gives means a malformed input: the library says which)."""
        values = self._symbol_values(tensors)
        shape = [values.get(k, 1) if k >= 0 else d for d, k in zip(spec.shape, spec.symbols)]
        return _allocate(kind, shape, spec.dtype, 1 if spec.default == "ones" else 0,
                         dl.device_str(self.device))

    def _outputs(self, in_ptrs, out, kind, stream, borrowed):
        """Allocates (or takes from `out`) the outputs, borrows them (added
        to `borrowed`, released by the caller); returns (objects, DLTensors)."""
        if isinstance(out, dict):
            out = [out.get(s.name) for s in self.outputs]
        results, tensors = [], []
        for j, spec in enumerate(self.outputs):
            shape = (abi._i64 * max(1, len(spec.shape)))()
            self.api.check(self.api.model_output_shape(self._model, in_ptrs, len(self.inputs),
                                                       j, shape))
            given = out[j] if out is not None and j < len(out) else None
            value = given if given is not None else _allocate(
                kind, list(shape[:len(spec.shape)]), spec.dtype, None,
                dl.device_str(self.device))
            b = dl.borrow(value, stream, "output '%s'" % spec.name, spec.name)
            borrowed.append(b)
            if b.read_only:
                raise SlapoError(Status.INVALID_ARGUMENT,
                                 "output '%s' is read-only" % spec.name, spec.name)
            results.append(value)
            tensors.append(b.tensor)
        return results, tensors

    def _session(self):
        """This thread's session, made on its first call."""
        holder = getattr(self._local, "session", None)
        if holder is None or holder.handle is None:
            if self._weights is None:
                raise SlapoError(Status.INVALID_ARGUMENT, "the model is closed")
            handle = abi._void()
            params = abi.SlapoSessionParams(ctypes.sizeof(abi.SlapoSessionParams), self.threads)
            self.api.check(self.api.session_create(self._weights, params, handle))
            holder = self._local.session = _Session(self.api, handle)
            if getattr(self, "_profile_flags", 0):
                self.api.check(self.api.session_profile(handle, self._profile_flags))
            with self._lock:
                self._sessions.add(holder)
        return holder.handle

    # ---- profiles -----------------------------------------------------------

    def profile(self, enable=True, events=False):
        """Starts (or with enable=False stops) timing every kernel of the
        runs that follow, on this model's sessions (one per thread); starting
        drops earlier records. events=True also keeps a timeline. Outputs are
        the same as without it; on a GPU, profiled runs do not use CUDA
        graphs."""
        if self.api.session_profile is None:
            raise SlapoError(Status.UNSUPPORTED, "%s was made by a slapoc older than "
                             "ABI 1.2: it has no profile" % self.path)
        flags = abi.PROFILE_OFF if not enable else (
            abi.PROFILE_ON | (abi.PROFILE_EVENTS if events else 0))
        self._profile_flags = flags
        with self._lock:
            holders = list(self._sessions)
        for h in holders:
            if h.handle:
                self.api.check(self.api.session_profile(h.handle, flags))

    def profile_report(self):
        """The kernels of the runs profiled so far, in the order forward runs
        them, summed over this model's sessions: a list of dicts with name,
        kind, source (the .slapo line), module, calls, total_ms, mean_us,
        min_us, max_us, flops and bytes (estimates of one run)."""
        with self._lock:
            holders = [h for h in self._sessions if h.handle]
        steps = None
        for h in holders:
            out = abi._p(abi.SlapoProfile)()
            if self.api.session_profile_read is None or \
                    self.api.session_profile_read(h.handle, out) != 0:
                continue
            prof = out.contents
            if steps is None:
                steps = [dict(name=_s(st.name), kind=_s(st.kind), source=_s(st.source),
                              module=_s(st.module), calls=0, total_ns=0, min_ns=None,
                              max_ns=0, flops=st.flops, bytes=st.bytes)
                         for st in prof.steps[:prof.n_steps]]
            for d, st in zip(steps, prof.steps[:prof.n_steps]):
                if st.calls:
                    d["min_ns"] = st.min_ns if d["min_ns"] is None else min(d["min_ns"],
                                                                            st.min_ns)
                    d["max_ns"] = max(d["max_ns"], st.max_ns)
                d["calls"] += st.calls
                d["total_ns"] += st.total_ns
        report = []
        for d in steps or []:
            ns, calls = d.pop("total_ns"), d["calls"]
            lo, hi = d.pop("min_ns") or 0, d.pop("max_ns")
            d.update(total_ms=ns / 1e6, mean_us=ns / 1e3 / calls if calls else 0.0,
                     min_us=lo / 1e3, max_us=hi / 1e3)
            report.append(d)
        return report

    def _free_sessions(self):
        with self._lock:
            holders = list(self._sessions)
        for h in holders:
            h.free()

    # ---- lifetime and printing --------------------------------------------

    def close(self):
        """Frees the sessions, weights and model (also done when collected)."""
        if getattr(self, "_model", None) is None:
            return
        self._free_sessions()
        self.api.weights_free(self._weights)
        self.api.model_close(self._model)
        self._weights = self._model = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        lines = ["%s (slapoc %s, ABI %d.%d, %s) from %s" % (
            self.name, self.slapoc_version, self.api.abi[0], self.api.abi[1],
            dl.device_str(self.device), self.path)]
        lines += ["  input  %r" % s for s in self.inputs]
        lines += ["  output %r" % s for s in self.outputs]
        lines.append("  params: %d tensors, %d elements" % (len(self.params),
                                                             self.n_param_elements))
        return "\n".join(lines)


class _Session:
    """One thread's session: freed when that thread ends (its thread-local
    storage goes), when the weights change, or when the model is closed."""

    def __init__(self, api, handle):
        self.api, self.handle = api, handle

    def free(self):
        handle, self.handle = self.handle, None
        if handle:
            self.api.session_free(handle)

    def __del__(self):
        try:
            self.free()
        except Exception:  # interpreter shutdown
            pass


class _WeightsView:
    """Holds a weights_get view; its deleter runs when this is collected."""

    def __init__(self, managed):
        self.managed = managed

    def __del__(self):
        m, self.managed = self.managed, None
        if m and m.contents.deleter:
            m.contents.deleter(m)


def _on_log(level, message, _user):
    log.log(_LEVELS.get(level, logging.DEBUG), "%s", message.decode("utf-8", "replace"))


def _pointers(tensors):
    arr = (abi._p(dl.DLTensor) * max(1, len(tensors)))()
    for i, t in enumerate(tensors):
        arr[i] = ctypes.pointer(t)
    return arr


def _is_torch(x):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _output_kind(output, values):
    if output != "auto":
        if output not in ("numpy", "torch", "array"):
            raise SlapoError(Status.INVALID_ARGUMENT,
                             "output must be 'auto', 'numpy', 'torch' or 'array'")
        return output
    if any(_is_torch(v) for v in values):
        return "torch"
    try:
        import numpy  # noqa: F401
    except ImportError:
        return "array"
    return "numpy"


def _allocate(kind, shape, dtype, fill, device="cpu"):
    """A new tensor of that kind; fill 0/1, or None for uninitialised. Torch
    tensors go on `device` (the model's: a CUDA model's outputs stay on its
    GPU, written there without a copy through the host), the others on the
    host. numpy has no bfloat16: such a tensor is an Array (numpy.asarray
    views its two-byte elements, tolist() and DLPack consumers read them)."""
    if kind == "torch":
        import torch

        make = torch.empty if fill is None else torch.zeros if fill == 0 else torch.ones
        return make(shape, dtype=getattr(torch, dtype), device=device)
    if kind == "numpy" and dtype != "bfloat16":
        import numpy

        make = numpy.empty if fill is None else numpy.zeros if fill == 0 else numpy.ones
        return make(shape, dtype=dtype)
    a = Array(shape, dtype)
    if fill == 1:
        ctypes.memmove(a.data_ptr(), _one(dtype, a.itemsize) * a.size, a.nbytes)
    return a


def _from_python(value, dtype):
    """A nested list (or a number) as a numpy array, or an Array without numpy."""
    try:
        import numpy
    except ImportError:
        return Array.from_nested(value, dtype)
    return numpy.asarray(value, dtype=dtype)


def _one(dtype, itemsize):
    """The bytes of the value 1 in dtype."""
    if dtype.startswith("float"):
        return struct.pack({2: "<e", 4: "<f", 8: "<d"}[itemsize], 1.0)
    if dtype == "bfloat16":
        return struct.pack("<H", 0x3F80)
    return (1).to_bytes(itemsize, "little")
