#!/usr/bin/env python3
"""slapo-run --profile on a tiny BERT compiled by slapoc, on the CPU and through
the CUDA path on tests/gpu/fake_cuda.c (where it is built).

  - the table has one row per step of the plan (`slapoc --dump-after=lower` on the
    CPU), and names every kernel `slapoc --explain` lists
  - calls equal the profiled runs; the totals add up to the total line and the
    shares to 100%
  - sources point at real .slapo lines (the fused kernel at its `fuse` line), module
    paths are the model's (a fused kernel: the module it was fused in)
  - the Chrome trace is valid JSON with one X event per step per run
  - outputs are bit-identical with and without profiling
  - an unwritable trace file is a one-line error before anything runs

Skips (77) without a code generator. Python 3 standard library only.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import buildtools as bt  # noqa: E402

SRC = os.path.join(bt.ROOT, "tests", "codegen", "bert_tiny.slapo")
RUNS = 3
ROW = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%$")
TOTAL = re.compile(r"^total\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%$")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def run(argv, env=None, ok=True):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, env=env)
    if ok and r.returncode != 0:
        raise SystemExit("FAIL: %s exited %d\n%s%s" % (" ".join(argv), r.returncode,
                                                     r.stdout[-3000:], r.stderr[-3000:]))
    return r


def parse_table(out):
    """(rows, total): rows {name: (source, module, calls, total_ms, mean_us, share)}."""
    rows, total, inside = {}, None, False
    for line in out.splitlines():
        if line.startswith("kernel "):
            inside = True
            continue
        if not inside:
            continue
        m = TOTAL.match(line)
        if m:
            total = (int(m.group(1)), float(m.group(2)), float(m.group(3)), float(m.group(4)))
            break
        m = ROW.match(line)
        if check(m, "not a table row: %r" % line):
            check(m.group(1) not in rows, "row %s twice" % m.group(1))
            rows[m.group(1)] = (m.group(2), m.group(3), int(m.group(4)), float(m.group(5)),
                                float(m.group(6)), float(m.group(7)))
    check(total is not None, "no total line in:\n" + out)
    return rows, total


def base_names(row):
    """'linear+linear_1+linear_2' -> the three; 'linear_3.bias' -> linear_3."""
    return [part.split(".")[0] for part in row.split("+")]


def source_line(src):
    """The text of FILE:LINE, or None when there is no such line."""
    path, _, line = src.rpartition(":")
    if not path or not line.isdigit() or not os.path.isfile(path):
        return None
    lines = open(path, encoding="utf-8").read().splitlines()
    n = int(line)
    return lines[n - 1] if 1 <= n <= len(lines) else None


def check_profile(label, out, trace_path, n_steps, explain_names, lower_names):
    rows, total = parse_table(out)
    if not rows or total is None:
        return rows
    if n_steps is not None:
        check(len(rows) == n_steps, "%s: %d rows, the plan has %d steps" % (label, len(rows),
                                                                          n_steps))
    covered = {b for r in rows for b in base_names(r)}
    missing = sorted(explain_names - covered)
    check(not missing, "%s: kernels of --explain not in the table: %s" % (label, missing))
    unknown = sorted(covered - explain_names - lower_names)
    check(not unknown, "%s: rows that are no kernel of the plan: %s" % (label, unknown))
    for name, (src, module, calls, tot, mean, share) in rows.items():
        check(calls == RUNS, "%s: %s ran %d times, not %d" % (label, name, calls, RUNS))
        check(abs(mean * calls / 1e3 - tot) <= 0.002 + 0.01 * tot,
              "%s: %s: mean %.2f us x %d calls is not %.3f ms" % (label, name, mean, calls, tot))
        check(module != "-" and module.split(".")[0] in ("bert", "cls"),
              "%s: %s: module %r is not a path of the model" % (label, name, module))
    check(total[0] == RUNS, "%s: the total line says %d runs" % (label, total[0]))
    shares = sum(r[5] for r in rows.values())
    check(abs(shares - 100) <= 0.05 * len(rows) + 0.1,
          "%s: shares add up to %.1f%%" % (label, shares))
    msum = sum(r[3] for r in rows.values())
    check(abs(msum - total[1]) <= 0.0005 * len(rows) + 0.001,
          "%s: totals add up to %.3f ms, the total line says %.3f" % (label, msum, total[1]))
    check(total[3] == 100.0, "%s: total share %.1f%%" % (label, total[3]))

    # the fused kernel: made by the fuse call of bert_tiny.slapo, in the
    # module it was fused in
    for i in (0, 1):
        fused = rows.get("FusedBiasGeLU_%d" % i)
        if check(fused, "%s: no FusedBiasGeLU_%d row" % (label, i)):
            check(fused[0] == "bert_tiny.slapo:18", "%s: FusedBiasGeLU_%d from %s" %
                  (label, i, fused[0]))
            check(fused[1] == "bert.encoder.layer.%d.intermediate" % i,
                  "%s: FusedBiasGeLU_%d in module %s" % (label, i, fused[1]))
    dec = rows.get("linear_13")
    if check(dec, "%s: no linear_13 (the decoder) row" % label):
        check(dec[1] == "cls.predictions.decoder", "%s: linear_13 in %s" % (label, dec[1]))

    # the Chrome trace
    try:
        trace = json.load(open(trace_path, encoding="utf-8"))
    except (OSError, ValueError) as e:
        check(False, "%s: %s is not valid JSON: %s" % (label, trace_path, e))
        return rows
    xs = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    check(len(xs) == len(rows) * RUNS, "%s: %d X events for %d steps x %d runs" %
          (label, len(xs), len(rows), RUNS))
    seen = {}
    for e in xs:
        for key in ("name", "ts", "dur", "pid", "tid", "args"):
            check(key in e, "%s: event without %s: %s" % (label, key, e))
        if "args" not in e or "name" not in e:
            continue
        if not check(e["name"] in rows, "%s: event of a kernel not in the table: %s" %
                     (label, e["name"])):
            continue
        check(e["ts"] >= 0 and e["dur"] >= 0, "%s: negative time in %s" % (label, e))
        seen[e["name"]] = seen.get(e["name"], 0) + 1
        src = e["args"].get("source", "")
        text = source_line(src)
        if check(text is not None and text.strip(),
                 "%s: %s: source %r is no .slapo line" % (label, e["name"], src)):
            check(os.path.basename(src) == rows[e["name"]][0],
                  "%s: %s: trace source %s, table %s" % (label, e["name"], src,
                                                         rows[e["name"]][0]))
            if e["name"].startswith("FusedBiasGeLU"):
                check(".fuse(" in text, "%s: the fused kernel's line is %r" % (label, text))
        check(e["args"].get("module") == rows[e["name"]][1],
              "%s: %s: trace module %s" % (label, e["name"], e["args"].get("module")))
    check(all(n == RUNS for n in seen.values()), "%s: events per kernel: %s" % (label, seen))
    for r in range(RUNS):  # each run's steps one after another
        ts = [(e["ts"], e["dur"]) for e in xs if e["args"]["run"] == r]
        check(all(b[0] >= a[0] + a[1] - 0.002 for a, b in zip(ts, ts[1:])),
              "%s: run %d: events overlap or are out of order" % (label, r))
    return rows


def explain(cc):
    """Names of the kernels, library calls and ops of --explain (dropout is the
    identity at inference: no kernel)."""
    out = run([cc, SRC, "--explain"]).stdout
    names = set()
    for line in out.split("\nkernels of", 1)[1].splitlines()[1:]:
        parts = line.split()
        if len(parts) > 2 and parts[0] in ("op", "BLAS", "kernel") and parts[2] != "dropout":
            names.add(parts[1])
    return names


def lowered(cc):
    """(steps, names) of --dump-after=lower, less the linears' bias passes:
    both drivers fold them into their GEMMs, so no profile has them."""
    out = run([cc, SRC, "--dump-after=lower"]).stdout
    steps = re.findall(r"^\s+k\d+\s+\S+\s+%(\S+) \((\S+)\)", out, re.M)
    check(any(what == "bias" for _, what in steps), "no bias pass in the plan to fold")
    steps = [name for name, what in steps if what != "bias"]
    return len(steps), set(steps)


def profile_run(slapo_run, lib, tmp, tag, extra, env=None):
    """Two runs of RUNS timed runs, with and without --profile; returns the
    profiled run's stdout and the trace path after checking the outputs agree."""
    base = [slapo_run, lib, "--random-weights", "1", "--batch", "2", "--seq", "8",
            "--seed", "3", "--bench", str(RUNS), "-q"] + extra
    trace = os.path.join(tmp, tag + ".trace.json")
    on = run(base + ["--profile=" + trace, "--outputs", os.path.join(tmp, tag + ".on.st")],
             env=env)
    run(base + ["--outputs", os.path.join(tmp, tag + ".off.st")], env=env)
    a = open(os.path.join(tmp, tag + ".on.st"), "rb").read()
    b = open(os.path.join(tmp, tag + ".off.st"), "rb").read()
    check(a == b, "%s: outputs differ with and without --profile" % tag)
    return on.stdout, trace


def main():
    with tempfile.TemporaryDirectory(prefix="slapo-profile-") as tmp:
        return main2(tmp)


def main2(tmp):
    cc, why = bt.compiler(tmp)
    slapo_run = bt.slapo_run()
    if not cc or not slapo_run:
        print("skip: %s" % (why or "slapo-run is not built"))
        return bt.SKIP
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    explain_names = explain(cc)
    n_steps, lower_names = lowered(cc)
    check(n_steps > 20 and len(explain_names) > 20, "too few kernels: %d steps, %d names" %
          (n_steps, len(explain_names)))

    # CPU
    lib = os.path.join(tmp, "cpu.so")
    run([cc, SRC, "--no-gpu", "-o", lib])
    out, trace = profile_run(slapo_run, lib, tmp, "cpu", [], env)
    check("on the CPU" in out, "cpu: the header does not say CPU:\n" + out)
    rows = check_profile("cpu", out, trace, n_steps, explain_names, lower_names)
    check(not any(r.endswith(".bias") for r in rows),
          "cpu: bias passes that the GEMMs should take: %s" %
          [r for r in rows if r.endswith(".bias")])
    print("cpu: %d kernels, %d runs, %d failures so far" % (len(rows), RUNS, len(failures)))

    # errors: an unwritable trace fails at once, in one line
    bad = run([slapo_run, lib, "--random-weights", "1", "--batch", "2", "--seq", "8",
               "--profile=" + os.path.join(tmp, "no", "such", "dir", "t.json")], env=env,
              ok=False)
    check(bad.returncode == 1 and bad.stdout == "" and
          bad.stderr.count("\n") == 1 and "cannot write the profile trace" in bad.stderr,
          "unwritable trace: exit %d, stdout %r, stderr %r" % (bad.returncode, bad.stdout,
                                                              bad.stderr))
    bad = run([slapo_run, lib, "--random-weights", "1", "--profile="], env=env, ok=False)
    check(bad.returncode == 1 and "--profile= needs a file name" in bad.stderr,
          "--profile=: %r" % bad.stderr)

    # the CUDA path on the fake driver, fp32 (its steps: bias epilogues folded)
    fake = os.path.join(bt.BUILD, "tests", "gpu", "fake_cuda.so")
    glib, emu = os.path.join(tmp, "gpu.so"), os.path.join(tmp, "gpu.emu.so")
    if not os.path.isfile(fake):
        print("gpu (fake CUDA): skipped, %s is not built" % fake)
    elif run([cc, SRC, "--gpu=on", "-o", glib, "--gpu-emu=" + emu], ok=False).returncode:
        print("gpu (fake CUDA): skipped, slapoc cannot make GPU code here")
    else:
        genv = dict(env, SLAPO_LIBCUDA=fake, SLAPO_LIBCUBLAS=fake, SLAPO_LIBCUBLASLT=fake,
                    SLAPO_EMU_KERNELS=emu)
        out, trace = profile_run(slapo_run, glib, tmp, "gpu", ["--device", "cuda:0"], genv)
        check("on the GPU" in out, "gpu: the header does not say GPU:\n" + out)
        rows = check_profile("gpu", out, trace, None, explain_names, lower_names)
        check(not any(r.endswith(".bias") for r in rows),
              "gpu: bias passes that cuBLASLt epilogues should take: %s" %
              [r for r in rows if r.endswith(".bias")])
        print("gpu (fake CUDA): %d kernels, %d runs" % (len(rows), RUNS))

    for f in failures:
        print("FAIL " + f)
    print("profile: %d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
