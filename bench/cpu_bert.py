#!/usr/bin/env python3
"""BERT on the CPU: slapoc's compiled model library beside PyTorch eager and
ONNX Runtime.

    python3 bench/cpu_bert.py [--model base|large] [--batch 1] [--seq 128]
                              [--runs 20] [--rounds 3] [--threads N]
                              [--build DIR] [--python PY] [--no-ort]

Compiles examples/bert-<model>.slapo with slapoc (fp32, random weights),
times forward with `slapo-run --bench`, and -- when PyTorch can be
imported by --python (default: this interpreter) -- times HuggingFace's
BertLMHeadModel (or, without transformers, an equivalent module written
here) in eval mode under torch.inference_mode() with the same sizes and
thread count, in the same run; and, when --python also has onnxruntime,
that model exported to ONNX (torch.onnx.export, opset 17) and run by ONNX
Runtime's CPU execution provider with every graph optimisation on
(ORT_ENABLE_ALL, which fuses attention, GELU and LayerNorm) and the same
intra-op thread count. They are timed in alternating rounds so machine
noise hits all; the medians of all runs and the ratios are printed, with
the machine, dtype, batch and sequence length, the GEMM roofline
(model FLOPs over a large square sgemm's rate measured through numpy) and
the hard ceiling (model FLOPs over the FMA units' own rate, measured by
bench/fma_peak.c).

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from the environment
of the runs: they force an older kernel.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFIGS = {
    "base": dict(hidden=768, layers=12, heads=12, inter=3072),
    "large": dict(hidden=1024, layers=24, heads=16, inter=4096),
}
VOCAB, MAXPOS = 30522, 512

TORCH_SCRIPT = r'''
import json, statistics, sys, time
import torch
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
torch.manual_seed(0)
try:
    from transformers import BertConfig, BertLMHeadModel
    conf = BertConfig(vocab_size=cfg["vocab"], hidden_size=cfg["hidden"],
                      num_hidden_layers=cfg["layers"], num_attention_heads=cfg["heads"],
                      intermediate_size=cfg["inter"], max_position_embeddings=cfg["maxpos"],
                      is_decoder=False)
    model = BertLMHeadModel(conf).eval()
    kind = "transformers BertLMHeadModel"
except Exception as e:  # no transformers: the same computation, written out
    import math
    from torch import nn
    H, I, A = cfg["hidden"], cfg["inter"], cfg["heads"]
    class Layer(nn.Module):
        def __init__(s):
            super().__init__()
            s.q, s.k, s.v, s.o = (nn.Linear(H, H) for _ in range(4))
            s.ln1, s.ln2 = nn.LayerNorm(H, eps=1e-12), nn.LayerNorm(H, eps=1e-12)
            s.fc1, s.fc2 = nn.Linear(H, I), nn.Linear(I, H)
        def forward(s, h, mask):
            b, n, _ = h.shape
            sp = lambda t: t.view(b, n, A, H // A).permute(0, 2, 1, 3)
            q, k, v = sp(s.q(h)), sp(s.k(h)), sp(s.v(h))
            p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(H // A) + mask, -1)
            c = (p @ v).permute(0, 2, 1, 3).reshape(b, n, H)
            h = s.ln1(s.o(c) + h)
            return s.ln2(s.fc2(nn.functional.gelu(s.fc1(h))) + h)
    class Model(nn.Module):
        def __init__(s):
            super().__init__()
            s.word = nn.Embedding(cfg["vocab"], H)
            s.pos = nn.Embedding(cfg["maxpos"], H)
            s.typ = nn.Embedding(2, H)
            s.ln = nn.LayerNorm(H, eps=1e-12)
            s.layers = nn.ModuleList(Layer() for _ in range(cfg["layers"]))
            s.tr, s.tln = nn.Linear(H, H), nn.LayerNorm(H, eps=1e-12)
            s.dec = nn.Linear(H, cfg["vocab"])
        def forward(s, input_ids, attention_mask, token_type_ids):
            n = input_ids.shape[1]
            h = s.ln(s.word(input_ids) + s.typ(token_type_ids) +
                     s.pos(torch.arange(n)[None]))
            mask = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
            for l in s.layers:
                h = l(h, mask)
            return s.dec(s.tln(nn.functional.gelu(s.tr(h))))
    model = Model().eval()
    kind = "PyTorch module equivalent to BertLMHeadModel (no transformers: %s)" % e
b, n = cfg["batch"], cfg["seq"]
ids = torch.randint(0, cfg["vocab"], (b, n))
inputs = dict(input_ids=ids, attention_mask=torch.ones(b, n, dtype=torch.long),
              token_type_ids=torch.zeros(b, n, dtype=torch.long))
if cfg.get("export"):
    class Logits(torch.nn.Module):  # the three inputs in, the logits out
        def __init__(s, m):
            super().__init__()
            s.m = m
        def forward(s, input_ids, attention_mask, token_type_ids):
            out = s.m(input_ids=input_ids, attention_mask=attention_mask,
                      token_type_ids=token_type_ids)
            return out.logits if hasattr(out, "logits") else out
    torch.onnx.export(Logits(model), tuple(inputs.values()), cfg["export"], opset_version=17,
                      input_names=list(inputs), output_names=["logits"], dynamo=False)
    print(json.dumps(dict(kind=kind, version=torch.__version__, times=[])))
    sys.exit(0)
times = []
with torch.inference_mode():
    for _ in range(3):
        model(**inputs)
    for _ in range(cfg["runs"]):
        t = time.perf_counter()
        model(**inputs)
        times.append((time.perf_counter() - t) * 1e3)
print(json.dumps(dict(kind=kind, version=torch.__version__, times=times)))
'''


ORT_SCRIPT = r'''
import json, sys, time
import numpy as np
import onnxruntime as ort
cfg = json.loads(sys.argv[1])
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
so.intra_op_num_threads = cfg["threads"]
so.inter_op_num_threads = 1
sess = ort.InferenceSession(cfg["model"], so, providers=["CPUExecutionProvider"])
b, n = cfg["batch"], cfg["seq"]
rng = np.random.default_rng(0)
feed = dict(input_ids=rng.integers(0, cfg["vocab"], (b, n), dtype=np.int64),
            attention_mask=np.ones((b, n), np.int64),
            token_type_ids=np.zeros((b, n), np.int64))
feed = {i.name: feed[i.name] for i in sess.get_inputs()}
for _ in range(3):
    sess.run(None, feed)
times = []
for _ in range(cfg["runs"]):
    t = time.perf_counter()
    sess.run(None, feed)
    times.append((time.perf_counter() - t) * 1e3)
print(json.dumps(dict(version=ort.__version__, times=times)))
'''


def peer(python, script, cfg, env):
    """Runs a peer's timing script: (its JSON result, None) or (None, why not)."""
    import json
    p = subprocess.run([python, "-c", script, json.dumps(cfg)], capture_output=True,
                       text=True, env=env)
    if p.returncode == 0 and p.stdout.strip():
        return json.loads(p.stdout.strip().splitlines()[-1]), None
    return None, (p.stderr.strip().splitlines() or ["?"])[-1]


def machine():
    name = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
        flags = open("/proc/cpuinfo").read()
        isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "SSE"
    except OSError:
        isa = "?"
    return "%s, %d cores (%s)" % (name, os.cpu_count() or 0, isa)


def model_flops(c, b, s):
    """Multiply-adds x 2 of the model's GEMMs (attention included)."""
    h, i, L = c["hidden"], c["inter"], c["layers"]
    rows = b * s
    per_layer = 2 * rows * (4 * h * h + 2 * h * i) + 2 * 2 * b * s * s * h
    head = 2 * rows * (h * h + h * VOCAB)
    return L * per_layer + head


def clean_env(threads):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def find_tool(build, name):
    for p in (build / "tools" / name, build / "runtime" / name, build / "codegen" / name):
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(CONFIGS), default="base")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--runs", type=int, default=20, help="timed runs per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--build", default=os.environ.get("SLAPO_BUILD", "build"))
    ap.add_argument("--python", default=sys.executable, help="interpreter with torch")
    ap.add_argument("--no-ort", action="store_true", help="leave ONNX Runtime out")
    ap.add_argument("--torch-only", action="store_true",
                    help="time PyTorch only (on a machine without slapoc)")
    a = ap.parse_args()
    c = CONFIGS[a.model]
    if a.torch_only:
        cfg = dict(c, vocab=VOCAB, maxpos=MAXPOS, batch=a.batch, seq=a.seq, runs=a.runs,
                   threads=a.threads)
        res, why = peer(a.python, TORCH_SCRIPT, cfg, clean_env(a.threads))
        if not res:
            sys.exit("bench: PyTorch failed: %s" % why)
        print("PyTorch %s eager (%s): median %.2f ms, min %.2f ms" %
              (res["version"], res["kind"], statistics.median(res["times"]), min(res["times"])))
        return
    build = Path(a.build)
    if not build.is_absolute():
        build = ROOT / build
    compilers = [t for t in (find_tool(build, "slapoc"), find_tool(build, "slapoc-cg")) if t]
    run = find_tool(build, "slapo-run")
    if not compilers or not run:
        sys.exit("bench: build slapoc and slapo-run first (looked in %s)" % build)
    env = clean_env(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        so = Path(tmp) / ("bert-%s.so" % a.model)
        slapoc = None
        for tool in compilers:  # a slapoc built without codegen/ refuses -o
            t = time.perf_counter()
            p = subprocess.run([str(tool), str(ROOT / "examples" / ("bert-%s.slapo" % a.model)),
                                "-o", str(so)], env=env, capture_output=True, text=True)
            compile_s = time.perf_counter() - t
            if p.returncode == 0:
                slapoc = tool
                break
        if not slapoc:
            sys.exit("bench: slapoc failed:\n" + p.stdout + p.stderr)
        import json
        ours, theirs, kind, version = [], [], None, None
        ort_times, ort_version, onnx = [], None, None
        if not a.no_ort:
            onnx = Path(tmp) / "bert.onnx"
            cfg = dict(c, vocab=VOCAB, maxpos=MAXPOS, batch=a.batch, seq=a.seq, runs=0,
                       threads=a.threads, export=str(onnx))
            p = subprocess.run([a.python, "-c", TORCH_SCRIPT, json.dumps(cfg)],
                               capture_output=True, text=True, env=env)
            if p.returncode != 0 or not onnx.exists():
                print("note: no ONNX export (%s)" % (p.stderr.strip().splitlines() or ["?"])[-1])
                onnx = None
        for r in range(a.rounds):
            out = subprocess.run(
                [str(run), str(so), "--random-weights", "1", "--batch", str(a.batch),
                 "--seq", str(a.seq), "--bench", str(a.runs), "--threads", str(a.threads),
                 "-v"], capture_output=True, text=True,
                env=dict(env, OPENBLAS_NUM_THREADS="1"))  # slapo-run's default: the
            # session's threads run the GEMMs; OpenBLAS threads would compete with them
            times = re.findall(r"run \d+: ([0-9.]+) ms", out.stdout + out.stderr)
            if times:
                ours += [float(x) for x in times]
            else:
                m = re.search(r"median ([0-9.]+) ms", out.stdout + out.stderr)
                if not m:
                    sys.exit("bench: slapo-run failed:\n" + out.stdout + out.stderr)
                ours += [float(m.group(1))] * a.runs
            cfg = dict(c, vocab=VOCAB, maxpos=MAXPOS, batch=a.batch, seq=a.seq,
                       runs=a.runs, threads=a.threads)
            res, why = peer(a.python, TORCH_SCRIPT, cfg, env)
            if res:
                theirs += res["times"]
                kind, version = res["kind"], res["version"]
            elif r == 0:
                print("note: PyTorch not available through %s: %s" % (a.python, why))
            if onnx:
                cfg = dict(model=str(onnx), vocab=VOCAB, batch=a.batch, seq=a.seq,
                           runs=a.runs, threads=a.threads)
                res, why = peer(a.python, ORT_SCRIPT, cfg, env)
                if res:
                    ort_times += res["times"]
                    ort_version = res["version"]
                elif r == 0:
                    print("note: ONNX Runtime failed: %s" % why)
    flops = model_flops(c, a.batch, a.seq)
    mo = statistics.median(ours)
    print("machine:  %s" % machine())
    print("model:    bert-%s-uncased BertLMHeadModel, fp32, batch %d, sequence %d, %d threads"
          % (a.model, a.batch, a.seq, a.threads))
    print("compile:  %.1f s (slapoc %s)" % (compile_s, slapoc.name))
    print("%-44s %10s %10s %12s" % ("", "median ms", "min ms", "GFLOP/s"))
    print("%-44s %10.2f %10.2f %12.0f" % ("slapoc (packed GEMMs + LLVM kernels)", mo,
                                          min(ours), flops / mo / 1e6))
    if theirs:
        mt = statistics.median(theirs)
        print("%-44s %10.2f %10.2f %12.0f" % ("PyTorch %s eager" % version, mt, min(theirs),
                                              flops / mt / 1e6))
        print("  (%s)" % kind)
        print("ratio:    PyTorch / slapoc = %.2fx (medians), %.2fx (minimums)"
              % (mt / mo, min(theirs) / min(ours)))
    if ort_times:
        mr = statistics.median(ort_times)
        print("%-44s %10.2f %10.2f %12.0f" % ("ONNX Runtime %s (CPU EP, ORT_ENABLE_ALL)"
                                              % ort_version, mr, min(ort_times),
                                              flops / mr / 1e6))
        print("ratio:    ONNX Runtime / slapoc = %.2fx (medians), %.2fx (minimums)"
              % (mr / mo, min(ort_times) / min(ours)))
    peak = sgemm_peak(a.python, a.threads, env)
    if peak:
        print("roofline: %.1f GFLOP of GEMMs; at the measured sgemm peak here (numpy's "
              "OpenBLAS, 2048^3, %d threads) of %.0f GFLOP/s: %.1f ms; slapoc at %.0f%% of it"
              % (flops / 1e9, a.threads, peak, flops / peak / 1e6, flops / peak / 1e6 / mo * 100))
    else:
        print("roofline: %.1f GFLOP of GEMMs (no numpy to measure the sgemm peak)"
              % (flops / 1e9))
    fma = fma_peak(a.threads, build)
    if fma:
        rate, what = fma
        print("ceiling:  the FMA units' own peak here (bench/fma_peak.c, %s) of %.0f GFLOP/s: "
              "%.1f ms; slapoc at %.0f%% of it" % (what, rate, flops / rate / 1e6,
                                                  flops / rate / 1e6 / mo * 100))


PEAK_SCRIPT = r'''
import time, numpy as np
n = 2048
a = np.random.rand(n, n).astype(np.float32)
b = np.random.rand(n, n).astype(np.float32)
best = 1e9
for _ in range(8):
    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
print(2 * n ** 3 / best / 1e9)
'''


def sgemm_peak(python, threads, env):
    """GFLOP/s of a large square sgemm through numpy's BLAS, or None."""
    for py in dict.fromkeys([python, sys.executable]):
        e = dict(env, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        p = subprocess.run([py, "-c", PEAK_SCRIPT], capture_output=True, text=True, env=e)
        if p.returncode == 0:
            return float(p.stdout.split()[-1])
    return None


def fma_peak(threads, build):
    """(GFLOP/s, description) of bench/fma_peak.c on `threads` threads: the
    build's binary, else compiled here; None without either (no C compiler,
    not x86-64)."""
    import shutil
    with tempfile.TemporaryDirectory() as tmp:
        exe = build / "bench" / "fma_peak"
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
            exe = Path(tmp) / "fma_peak"
            if not cc or subprocess.run([cc, "-O2", "-pthread",
                                         str(ROOT / "bench" / "fma_peak.c"), "-o", str(exe)],
                                        capture_output=True).returncode != 0:
                return None
        p = subprocess.run([str(exe), str(threads)], capture_output=True, text=True)
    m = re.match(r"([0-9.]+) GFLOP/s \((.*)\)", p.stdout)
    return (float(m.group(1)), m.group(2)) if p.returncode == 0 and m else None


if __name__ == "__main__":
    main()
