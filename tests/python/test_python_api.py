#!/usr/bin/env python3
"""The Python package (python/slapo) on real model libraries.

  fake      the runtime's hand-written model (build/tests/runtime/fake_mlp_a.so,
            three outputs): introspection, and numerics equal to slapo-run's
            on the same random weights and inputs
  compiled  a tiny scheduled BERT compiled with `slapoc -o` (or the interim
            codegen/slapoc-cg) on the HF fixture tests/zoo/fixtures/BertForMaskedLM:
            equal to `slapoc --interp` (double precision), to slapo-run and to
            HuggingFace's outputs. Skipped, and said so, without a code generator.
  api       errors (dtype, shape, missing or unknown input, value range, bad
            files, CUDA, missing weights, outputs), the DLPack capsule protocol
            (renaming, deleters, legacy producers, strides), slapo.Array,
            threads, parameters, logging
  torch     torch tensors in and out, zero-copy both ways (when torch is there)

Needs numpy: re-executes itself with a python3 that has it, or exits 77.
"""

import copy
import ctypes
import ctypes.util
import gc
import json
import logging
import os
import pickle
import re
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import buildtools as bt  # noqa: E402

bt.reexec_with("numpy")
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(bt.ROOT, "python"))
import slapo  # noqa: E402

failures = []
skipped = []


def check(name, ok, detail=""):
    if not ok:
        failures.append("%s%s" % (name, ": " + str(detail) if detail else ""))


def raises(name, code, fn, has="", obj=None):
    """fn() must raise SlapoError with this code, message holding `has` and
    object_name equal to `obj` (when given)."""
    try:
        fn()
    except slapo.SlapoError as e:
        check(name, e.code == code, "code %s, want %s (%s)" % (e.status_name,
                                                               slapo.status_name(code), e))
        check(name, has in e.message, "message %r lacks %r" % (e.message, has))
        check(name, str(e).startswith(slapo.status_name(code) + ": "), "str %r" % str(e))
        if obj is not None:
            check(name, e.object_name == obj, "object_name %r, want %r" % (e.object_name, obj))
        return
    except Exception as e:  # noqa: BLE001
        check(name, False, "raised %r, not SlapoError" % e)
        return
    check(name, False, "no error")


def close(name, got, want, rtol):
    """max |got - want| <= rtol * max |want|."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return check(name, False, "shape %s, want %s" % (got.shape, want.shape))
    err = float(np.max(np.abs(got - want))) / max(1e-30, float(np.max(np.abs(want))))
    check(name, err <= rtol, "relative error %.3g > %.3g" % (err, rtol))


# ---- safetensors with numpy ------------------------------------------------

ST = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
      "F16": np.float16}


def read_st(path):
    data = open(path, "rb").read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return {k: np.frombuffer(data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
                             ST[v["dtype"]]).reshape(v["shape"]) for k, v in header.items()}


def write_st(path, tensors):
    names = {v: k for k, v in ST.items()}
    header, blobs, off = {}, [], 0
    for k, a in tensors.items():
        b = np.ascontiguousarray(a).tobytes()
        header[k] = {"dtype": names[a.dtype.type], "shape": list(a.shape),
                     "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def run(argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if r.returncode != 0:
        raise RuntimeError("%s exited %d:\n%s" % (" ".join(argv), r.returncode, r.stdout))
    return r.stdout


# ---- the fake model: introspection, numerics vs slapo-run -----------------


def test_fake(tmp, so):
    m = slapo.load(so, weights=slapo.random_weights(3), threads=1)
    check("fake.name", m.name == "FakeMLP", m.name)
    check("fake.inputs", [repr(s) for s in m.inputs] == [
        "input_ids: int64[B, S]", "token_type_ids: int64[B, S]",
        "attention_mask: int64[B, S]"], m.inputs)
    check("fake.defaults", [s.default for s in m.inputs] == [None, "zeros", "ones"])
    check("fake.value_max", m.inputs[0].value_max == 50, m.inputs[0].value_max)
    check("fake.outputs", [(s.name, s.dtype, s.shape) for s in m.outputs] == [
        ("logits", "float32", ("B", "S", 50)), ("hidden", "float32", ("B", "S", 16)),
        ("scores", "float32", ("B", "S", "S"))], m.outputs)
    check("fake.symbols", list(m.symbols) == ["B", "S"], m.symbols)
    tied = [s for s in m.params if s.tied_to]
    check("fake.tied", len(tied) == 2, m.params)
    check("fake.repr", repr(m).startswith("FakeMLP (slapoc "), repr(m))

    rng = np.random.default_rng(1)
    ids = rng.integers(0, 50, (2, 5), dtype=np.int64)
    mask = np.ones((2, 5), np.int64)
    mask[1, 3:] = 0
    write_st(os.path.join(tmp, "fake_in.safetensors"), {"input_ids": ids, "attention_mask": mask})
    run([bt.slapo_run(), so, "--random-weights", "3", "--threads", "1", "-q",
         "--inputs", os.path.join(tmp, "fake_in.safetensors"),
         "--outputs", os.path.join(tmp, "fake_out.safetensors")])
    want = read_st(os.path.join(tmp, "fake_out.safetensors"))
    out = m(ids, attention_mask=mask)  # token_type_ids: filled with zeros
    check("fake.keys", list(out.keys()) == ["logits", "hidden", "scores"], out.keys())
    for name in want:
        close("fake.vs-slapo-run." + name, out[name], want[name], 1e-6)
    check("fake.by-attr", out.scores is out[2] and out["hidden"] is out[1])
    return m, {"input_ids": ids, "attention_mask": mask}


# ---- a compiled tiny BERT vs the interpreter, slapo-run and HF -------------


def test_compiled(tmp, cc):
    fix = os.path.join(bt.ROOT, "tests", "zoo", "fixtures", "BertForMaskedLM")
    src = os.path.join(bt.ROOT, "tests", "golden", "zoo", "bert.slapo")
    so = os.path.join(tmp, "bert.so")
    run([cc, src, "-o", so])
    weights = os.path.join(fix, "model.safetensors")
    inputs = os.path.join(fix, "inputs.safetensors")
    interp = os.path.join(tmp, "interp.safetensors")
    ran = os.path.join(tmp, "slapo-run.safetensors")
    run([cc, "--interp", src, "--weights", weights, "--inputs", inputs, "--outputs", interp])
    run([bt.slapo_run(), so, "--weights", weights, "--inputs", inputs, "--outputs", ran, "-q"])

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("slapo").addHandler(handler)
    logging.getLogger("slapo").setLevel(logging.INFO)
    m = slapo.load(so, weights=weights)
    logging.getLogger("slapo").removeHandler(handler)
    check("compiled.log", any("loaded 42 parameters" in r.getMessage() for r in records),
          [r.getMessage() for r in records])
    check("compiled.inputs", [s.name for s in m.inputs] ==
          ["input_ids", "attention_mask", "token_type_ids"], m.inputs)
    x = read_st(inputs)
    out = m(**x).logits
    close("compiled.vs-interp", out, read_st(interp)["logits"], 1e-4)
    close("compiled.vs-slapo-run", out, read_st(ran)["logits"], 1e-5)
    close("compiled.vs-hf", out, read_st(os.path.join(fix, "outputs.safetensors"))["logits"],
          1e-4)
    check("compiled.param", np.array_equal(
        np.asarray(m.param("bert.embeddings.word_embeddings.weight")),
        read_st(weights)["bert.embeddings.word_embeddings.weight"]))
    test_profile(m, x, out, cc, src, tmp)
    test_bf16_outputs(tmp, cc, src, weights, x, out)
    return m, {k: v for k, v in x.items()}


def test_bf16_outputs(tmp, cc, src, weights, x, want):
    """A library compiled with --output-dtype=bf16 declares and returns
    bf16 logits (the CPU code's f32 rounded): numpy sees two-byte voids,
    tolist() the values, within bf16 rounding of the f32 library's."""
    so = os.path.join(tmp, "bert16.so")
    run([cc, src, "--precision=bf16", "--output-dtype=bf16", "-o", so])
    m = slapo.load(so, weights=weights)
    check("bf16.spec", m.outputs[0].dtype == "bfloat16", m.outputs)
    got = m(**x).logits
    check("bf16.dtype", got.dtype == "bfloat16" and np.asarray(got).dtype == np.dtype("V2"),
          got.dtype)
    close("bf16.values", np.array(got.tolist(), dtype=np.float32), want, 2 ** -8)


def test_profile(m, x, base, cc, src, tmp):
    """model.profile(): every kernel of the plan timed on each run (bias passes
    folded into GEMMs), named as `slapoc --dump-after=lower` lists the steps,
    mapped to .slapo lines;
    outputs unchanged; nothing recorded once stopped."""
    m.profile()
    for _ in range(3):
        out = m(**x).logits
    check("profile.same-outputs", np.array_equal(out, base))
    rep = m.profile_report()
    lowered = run([cc, src, "--dump-after=lower"])
    n_steps = int(re.search(r"steps: (\d+)", lowered).group(1))
    # the linears' bias passes are folded into their GEMMs: no rows of their own
    n_steps -= len(re.findall(r"^\s+k\d+\s+map\s+%\S+ \(bias\)$", lowered, re.M))
    # attention's product, softmax and product run as one step: one row
    kinds = re.findall(r"^\s+k\d+\s+(\w+)\s", lowered, re.M)
    n_steps -= 2 * sum(kinds[i:i + 3] == ["gemm", "softmax", "gemm"] for i in range(len(kinds)))
    check("profile.steps", len(rep) == n_steps, "%d rows, %d steps" % (len(rep), n_steps))
    check("profile.calls", all(r["calls"] == 3 for r in rep), [r["calls"] for r in rep])
    check("profile.times", all(r["total_ms"] > 0 and r["min_us"] <= r["mean_us"] <= r["max_us"]
                               for r in rep))
    check("profile.sources", all(re.fullmatch(r".+\.slapo:\d+", r["source"]) for r in rep),
          [r["source"] for r in rep if not re.fullmatch(r".+\.slapo:\d+", r["source"])])
    check("profile.names", len({r["name"] for r in rep}) == len(rep))
    m.profile(False)
    m(**x)
    check("profile.stopped", all(r["calls"] == 3 for r in m.profile_report()))


# ---- the API: errors, DLPack, Array, threads -------------------------------


class LegacyProducer:
    """A DLPack producer older than 1.0: __dlpack__ takes only stream."""

    def __init__(self, a):
        self.a = a
        self.capsules = []

    def __dlpack__(self, stream=None):
        c = self.a.__dlpack__(stream=stream)
        self.capsules.append(c)
        return c

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


class Recorder:
    """Passes __dlpack__ through and keeps the capsule to inspect."""

    def __init__(self, a):
        self.a = a
        self.capsules = []

    def __dlpack__(self, **kw):
        c = self.a.__dlpack__(**kw)
        self.capsules.append(c)
        return c

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


def capsule_name(c):
    f = ctypes.pythonapi.PyCapsule_GetName
    f.restype, f.argtypes = ctypes.c_char_p, [ctypes.py_object]
    return f(c)


def test_api(tmp, m, x, so):
    x = {k: np.array(v) for k, v in x.items()}  # writable: numpy < 2.1 exports only those
    base = m(**x)
    test_errors(tmp, m, x, so, base)
    test_dlpack(m, x, base)
    test_array(m, x, base)
    test_threads_params(m, x, so, base)


def test_errors(tmp, m, x, so, base):
    ids = x["input_ids"]
    first = m.outputs[0].name
    S = ids.shape[1]
    raises("err.dtype", slapo.Status.DTYPE_MISMATCH, lambda: m(ids.astype(np.int32)),
           "dtype", "input_ids")
    raises("err.shape", slapo.Status.SHAPE_MISMATCH,
           lambda: m(ids, attention_mask=np.ones((ids.shape[0], S + 1), np.int64)),
           "S = %d" % S, "attention_mask")
    raises("err.rank", slapo.Status.SHAPE_MISMATCH, lambda: m(ids[0]), "", "input_ids")
    raises("err.missing", slapo.Status.INVALID_ARGUMENT,
           lambda: m(attention_mask=x["attention_mask"]), "missing input 'input_ids'",
           "input_ids")
    raises("err.unknown", slapo.Status.NOT_FOUND, lambda: m(ids, input_idz=ids),
           "no input 'input_idz'", "input_idz")
    raises("err.twice", slapo.Status.INVALID_ARGUMENT, lambda: m(ids, input_ids=ids),
           "given twice", "input_ids")
    raises("err.too-many", slapo.Status.INVALID_ARGUMENT, lambda: m(ids, ids, ids, ids),
           "4 given")
    raises("err.range", slapo.Status.INVALID_ARGUMENT, lambda: m(ids + 100000),
           "outside the model's range", "input_ids")
    raises("err.not-dlpack", slapo.Status.INVALID_ARGUMENT, lambda: m("text"),
           "no __dlpack__", "input_ids")
    raises("err.out-shape", slapo.Status.SHAPE_MISMATCH,
           lambda: m.run(x, out=[np.empty((1, 1, 1), np.float32)]), "", first)
    raises("err.out-dtype", slapo.Status.DTYPE_MISMATCH,
           lambda: m.run(x, out={first: np.empty(base[0].shape, np.float64)}), "", first)
    raises("err.output-kind", slapo.Status.INVALID_ARGUMENT,
           lambda: m.run(x, output="jax"), "output must be")
    raises("err.no-file", slapo.Status.IO, lambda: slapo.load(os.path.join(tmp, "no.so")),
           "cannot load")
    raises("err.not-a-model", slapo.Status.FORMAT,
           lambda: slapo.load(ctypes.util.find_library("m") or "libm.so.6"),
           "not a slapo model library")
    raises("err.weights-missing", slapo.Status.IO,
           lambda: slapo.load(so, weights=os.path.join(tmp, "none.safetensors")),
           "cannot open", os.path.join(tmp, "none.safetensors"))
    bad = os.path.join(tmp, "bad.safetensors")
    with open(bad, "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    raises("err.weights-format", slapo.Status.FORMAT, lambda: slapo.load(so, weights=bad))
    raises("err.cuda", slapo.Status.UNSUPPORTED, lambda: slapo.load(so, device="cuda:0"),
           "CUDA")
    raises("err.device", slapo.Status.INVALID_ARGUMENT, lambda: slapo.load(so, device="tpu"),
           "unknown device")
    raises("err.no-weights", slapo.Status.MISSING_PARAMS, lambda: slapo.load(so)(**x),
           "has not been loaded")


def test_dlpack(m, x, base):
    """The capsule protocol, producers old and new, strides, `out`, lists."""
    ids = x["input_ids"]
    rest = {k: v for k, v in x.items() if k != "input_ids"}
    first = m.outputs[0].name
    S = ids.shape[1]
    rc = sys.getrefcount(ids)
    for _ in range(3):
        m(**x)
    gc.collect()
    check("dlpack.deleter", sys.getrefcount(ids) == rc,
          "refcount %d -> %d: a deleter was not called" % (rc, sys.getrefcount(ids)))
    rec = Recorder(ids)
    m(rec, **rest)
    check("dlpack.renamed", capsule_name(rec.capsules[0]) in (b"used_dltensor",
                                                              b"used_dltensor_versioned"),
          capsule_name(rec.capsules[0]))
    legacy = LegacyProducer(np.array(ids))  # numpy < 2.1 exports writable arrays only
    out = m(legacy, **rest)
    check("dlpack.legacy", capsule_name(legacy.capsules[0]) == b"used_dltensor")
    close("dlpack.legacy-values", out[0], base[0], 0)
    ro = np.array(ids)
    ro.flags.writeable = False
    close("dlpack.read-only-input", m(ro, **rest)[0], base[0], 0)
    wide = np.zeros((ids.shape[0], 2 * S), np.int64)
    wide[:, ::2] = ids
    close("dlpack.strided", m(wide[:, ::2], **rest)[0], base[0], 0)
    given = np.full(base[0].shape, np.nan, np.float32)
    out = m.run(x, out=[given])
    check("dlpack.out", out[0] is given)
    close("dlpack.out-values", given, base[0], 0)
    fill = {"ones": np.ones_like(ids), "zeros": np.zeros_like(ids)}
    out = m.run([x.get(s.name, fill.get(s.default)) for s in m.inputs])  # a list, in order
    close("run.sequence", out[0], base[0], 0)
    close("run.nested-lists", m(ids.tolist(), **rest)[0], base[0], 0)
    check("outputs.copy", copy.copy(out).keys() == out.keys())
    close("outputs.pickle", pickle.loads(pickle.dumps(out))[first], base[0], 0)


def test_array(m, x, base):
    """slapo.Array as outputs, as inputs, through numpy."""
    ids = x["input_ids"]
    rest = {k: v for k, v in x.items() if k != "input_ids"}
    arr = m.run(x, output="array")
    check("array.type", isinstance(arr[0], slapo.Array), type(arr[0]))
    close("array.tolist", np.array(arr[0].tolist(), np.float32), base[0], 0)
    view = np.asarray(arr[0])
    check("array.zero-copy", view.__array_interface__["data"][0] == arr[0].data_ptr())
    if hasattr(np, "from_dlpack"):
        close("array.from_dlpack", np.from_dlpack(arr[0]), base[0], 0)
    a_ids = slapo.Array(ids.shape, "int64")
    np.asarray(a_ids)[...] = ids
    close("array.input", m(a_ids, **rest)[0], base[0], 0)
    check("array.repr", repr(a_ids) == "slapo.Array(shape=%s, dtype=int64)" % list(ids.shape))


def test_threads_params(m, x, so, base):
    """Threads (a session each), parameter views, ties, set_param, close."""
    results = [None] * 4

    def work(i):
        results[i] = m(**x)[0]

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check("threads", all(r is not None and np.array_equal(r, base[0]) for r in results))
    gc.collect()
    live = [h for h in m._sessions if h.handle]
    check("threads.sessions-freed", len(live) <= 1, "%d sessions live" % len(live))

    # parameters: views, ties, set_param
    p = m.params[0]
    v = m.param(p.name)
    check("param.view", v.read_only and v.shape == p.shape, v)
    tie = next((s for s in m.params if s.tied_to), None)
    if tie:
        check("param.tie", m.param(tie.name).data_ptr() == m.param(tie.tied_to).data_ptr())
    m2 = slapo.load(so, weights=slapo.random_weights(5))
    before = m2(**x)[0]
    m2.set_param(p.name, np.asarray(v) * 2)
    check("param.set", np.array_equal(np.asarray(m2.param(p.name)), np.asarray(v) * 2))
    check("param.changes-output", not np.array_equal(m2(**x)[0], before))
    m2.close()
    raises("closed", slapo.Status.INVALID_ARGUMENT, lambda: m2(**x), "closed")


NO_NUMPY = r"""
import sys, json
sys.modules["numpy"] = sys.modules["torch"] = None  # import numpy: ImportError
sys.path.insert(0, sys.argv[1])
import slapo
m = slapo.load(sys.argv[2], weights=slapo.random_weights(3), threads=1)
ids = %(ids)s
out = m(ids)  # a nested list; attention_mask: ones, token_type_ids: zeros
assert all(isinstance(o, slapo.Array) for o in out), out
ones = [[1] * len(ids[0])] * len(ids)
again = m(slapo.Array.from_nested(ids, "int64"),
          attention_mask=slapo.Array.from_nested(ones, "int64"))
assert again[0].tolist() == out[0].tolist()
print(json.dumps(out[0].tolist()))
"""


def test_no_numpy(tmp, so):
    """Without numpy: slapo.Array inputs and outputs."""
    ids = np.random.default_rng(2).integers(0, 50, (2, 3), dtype=np.int64)
    code = NO_NUMPY % {"ids": ids.tolist()}
    out = run([sys.executable, "-c", code, os.path.join(bt.ROOT, "python"), so])
    want = slapo.load(so, weights=slapo.random_weights(3), threads=1)(ids)[0]
    close("no-numpy", np.array(json.loads(out.splitlines()[-1]), np.float32), want, 1e-6)


def test_torch(m, x):
    import torch

    x = {k: np.array(v) for k, v in x.items()}
    base = m(**x)
    tx = {k: torch.from_numpy(v) for k, v in x.items()}
    rest = {k: v for k, v in tx.items() if k != "input_ids"}
    out = m(**tx)
    check("torch.type", isinstance(out[0], torch.Tensor), type(out[0]))
    close("torch.values", out[0].numpy(), base[0], 0)
    raises("torch.dtype", slapo.Status.DTYPE_MISMATCH,
           lambda: m(tx["input_ids"].int(), **rest), "dtype",
           "input_ids")
    ids_t = tx["input_ids"].t().contiguous().t()  # column-major strides
    close("torch.strided", m(ids_t, **rest)[0].numpy(),
          base[0], 0)
    arr = m.run(x, output="array")[0]
    t = torch.from_dlpack(arr)
    check("torch.from_dlpack", t.data_ptr() == arr.data_ptr())
    close("torch.from_dlpack-values", t.numpy(), base[0], 0)
    dest = torch.empty(tuple(base[0].shape))
    m.run(tx, out=[dest])
    close("torch.out", dest.numpy(), base[0], 0)
    close("torch.output-kind", m.run(x, output="torch")[0].numpy(), base[0], 0)
    if not torch.cuda.is_available():
        if "torch.cuda: no CUDA device" not in skipped:
            skipped.append("torch.cuda: no CUDA device")
        return
    # A GPU tensor: its __dlpack__ gets the caller's stream; a CPU model refuses it.
    ids_gpu = tx["input_ids"].cuda()
    stream = torch.cuda.Stream()
    raises("torch.cuda-input", slapo.Status.DEVICE_MISMATCH,
           lambda: m.run(dict(rest, input_ids=ids_gpu), stream=stream.cuda_stream),
           "device", "input_ids")


def main():
    if not bt.slapo_run() or not bt.fake_model():
        print("skip: the runtime is not built (no slapo-run or fake_mlp_a.so in %s)" % bt.BUILD)
        return bt.SKIP
    with tempfile.TemporaryDirectory(prefix="slapo-py-") as tmp:
        fake, fx = test_fake(tmp, bt.fake_model())
        test_api(tmp, fake, fx, bt.fake_model())
        test_no_numpy(tmp, bt.fake_model())
        cc, why = bt.compiler(tmp)
        if cc:
            bert, bx = test_compiled(tmp, cc)
            test_api(tmp, bert, bx, os.path.join(tmp, "bert.so"))
        else:
            skipped.append("compiled: " + why)
        try:
            import torch  # noqa: F401
        except ImportError:
            skipped.append("torch: not installed for %s" % sys.executable)
        else:
            test_torch(fake, fx)
            if cc:
                test_torch(bert, bx)
    for f in failures:
        print("FAIL " + f)
    for s in skipped:
        print("skipped " + s)
    print("python api (%s, numpy %s): %d failures" % (sys.executable, np.__version__,
                                                       len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
