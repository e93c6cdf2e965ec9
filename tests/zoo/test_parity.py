#!/usr/bin/env python3
"""The model zoo against HuggingFace transformers.

For every fixture under tests/zoo/fixtures/ (made by make_fixtures.py with
HF transformers + PyTorch; this test needs neither) and every tiny .slapo
file that builds that model (tests/golden/zoo/, configs equal to the
fixtures'):

  repr      `slapoc FILE` (the unscheduled file's print(sch.mod)) equals
            HF's print(model) in repr.txt, normalised to the PyTorch repr
            slapoc follows (the seed's: ModuleList items one by one, no
            `bias=True` on LayerNorm; newer PyTorch folds identical items
            into `(0-1): 2 x Layer(` and prints LayerNorm's bias flag)
  interp    `slapoc --interp FILE --weights model.safetensors --inputs ...`
            (double precision) equals HF's f32 output: max abs error over
            the max magnitude of HF's output <= 1e-4
  compiled  `slapoc FILE -o X.so`, then `slapo-run X.so --weights ...
            --inputs ... --compare outputs.safetensors --rtol 1e-4` exits 0.
            Skipped (and said so) while slapoc has no code generator or
            slapo-run is not built.

Exit 0 when everything ran passes, 77 only when slapoc is not built, 1 on
any failure. Python 3 standard library only. SLAPO_BUILD names the build
directory (default `build`).
"""

import json
import os
import re
import struct
import subprocess
import sys
import tempfile

ROOT = os.environ.get("SLAPO_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("SLAPO_BUILD", "build"))
FIXTURES = os.path.join(ROOT, "tests", "zoo", "fixtures")
MODELS = os.path.join(ROOT, "tests", "golden", "zoo")
RTOL = 1e-4

# fixture -> the .slapo files that build its model; the first is unscheduled
# and prints sch.mod (compared with repr.txt when the fixture has one)
CASES = [
    ("BertModel", ["bert-model.slapo"]),
    ("BertForMaskedLM", ["bert-unscheduled.slapo", "bert.slapo", "bert-flash.slapo"]),
    ("BertForMaskedLM-legacy-names", ["bert-unscheduled.slapo"]),
    ("BertForMaskedLM-extra-tensors", ["bert-unscheduled.slapo"]),
    ("BertForMaskedLM-f16", ["bert-unscheduled.slapo"]),
    ("BertForMaskedLM-bf16", ["bert-unscheduled.slapo"]),
    ("BertLMHeadModel", ["bert-lm-head.slapo"]),
    ("RobertaModel", ["roberta-model.slapo"]),
    ("RobertaForMaskedLM", ["roberta-unscheduled.slapo", "roberta.slapo", "roberta-flash.slapo"]),
    ("GPT2Model", ["gpt2-model.slapo"]),
    ("GPT2LMHeadModel", ["gpt2-unscheduled.slapo", "gpt2.slapo", "gpt2-flash.slapo"]),
    ("OPTModel", ["opt-model.slapo"]),
    ("OPTForCausalLM", ["opt-unscheduled.slapo", "opt.slapo", "opt-flash.slapo"]),
    ("OPTForCausalLM-post-ln", ["opt-post-ln.slapo"]),
    ("AlbertModel", ["albert-model.slapo"]),
    ("AlbertForMaskedLM", ["albert-unscheduled.slapo", "albert.slapo", "albert-flash.slapo"]),
    ("AlbertForMaskedLM-groups", ["albert-groups.slapo"]),
]

DTYPES = {"F32": ("f", 4), "F64": ("d", 8), "I64": ("q", 8), "I32": ("i", 4)}


def read_safetensors(path):
    """name -> (dtype, shape, flat list of numbers) for the dtypes above."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, d in header.items():
        if name == "__metadata__":
            continue
        fmt, size = DTYPES[d["dtype"]]
        b, e = d["data_offsets"]
        out[name] = (d["dtype"], d["shape"],
                     struct.unpack("<%d%s" % ((e - b) // size, fmt), data[8 + n + b:8 + n + e]))
    return out


def normalise_repr(text):
    """Newer PyTorch's module repr in the form slapoc prints (the seed's)."""
    text = re.sub(r"(LayerNorm\(\(\d+,\), eps=[^,()]+, elementwise_affine=\w+), bias=True\)",
                  r"\1)", text)
    lines = text.rstrip("\n").split("\n")
    folded = re.compile(r"^(\s*)\((\d+)-(\d+)\): (\d+) x (.*)$")
    changed = True
    while changed:
        changed = False
        out, i = [], 0
        while i < len(lines):
            m = folded.match(lines[i])
            if not m:
                out.append(lines[i])
                i += 1
                continue
            indent, lo, hi, rest = m.group(1), int(m.group(2)), int(m.group(3)), m.group(5)
            body, j = [], i + 1
            if rest.endswith("("):
                while j < len(lines) and lines[j] != indent + ")":
                    body.append(lines[j])
                    j += 1
                body.append(lines[j])
                j += 1
            for k in range(lo, hi + 1):
                out.append("%s(%d): %s" % (indent, k, rest))
                out.extend(body)
            i, changed = j, True
        lines = out
    return "\n".join(lines) + "\n"


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=300, **kw)


def rel_error(got, ref):
    """(max abs error, max abs error / max |ref|) over all elements."""
    err = max((abs(a - b) for a, b in zip(got, ref)), default=0.0)
    scale = max((abs(b) for b in ref), default=0.0)
    return err, err / scale if scale else err


def compare_outputs(got_path, ref_path):
    """None when equal within RTOL, else why not; and a summary."""
    got, ref = read_safetensors(got_path), read_safetensors(ref_path)
    notes = []
    for name, (_, shape, vals) in ref.items():
        if name not in got:
            return "output '%s' missing (slapoc wrote %s)" % (name, sorted(got)), ""
        if got[name][1] != shape:
            return "output '%s' has shape %s, HF's %s" % (name, got[name][1], shape), ""
        err, rel = rel_error(got[name][2], vals)
        notes.append("%s max abs %.2e rel %.2e" % (name, err, rel))
        if not rel <= RTOL:
            return "%s: rel error %.2e > %g" % (name, rel, RTOL), ", ".join(notes)
    return None, ", ".join(notes)


def find_tool(*rel):
    for r in rel:
        p = os.path.join(BUILD, r)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def codegen_tools(slapoc, tmp):
    """(compiler, slapo-run) when models can be compiled, else (None, why)."""
    run_tool = find_tool("tools/slapo-run", "runtime/slapo-run")
    if not run_tool:
        return None, "slapo-run is not built"
    probe = os.path.join(MODELS, "bert-model.slapo")
    why = "slapoc -o is not available"
    for cc in (slapoc, find_tool("codegen/slapoc-cg")):
        if not cc:
            continue
        r = run([cc, probe, "-o", os.path.join(tmp, "probe.so")])
        if r.returncode == 0:
            return (cc, run_tool), None
        if "without the code generator" in r.stderr:
            continue
        # a compiler is there but fails: the per-model runs will report it
        return (cc, run_tool), None
    return None, why


def main():
    slapoc = find_tool("tools/slapoc")
    if not slapoc:
        print("slapoc is not built in %s: skipped" % BUILD)
        return 77
    tmp = tempfile.mkdtemp(prefix="slapo-zoo-")
    tools, no_codegen = codegen_tools(slapoc, tmp)
    if tools:
        print("compiled models: %s, run with %s" % (os.path.relpath(tools[0], ROOT),
                                                    os.path.relpath(tools[1], ROOT)))
    else:
        print("compiled models: skipped (%s)" % no_codegen)
    failures, checks, skipped = [], 0, 0

    def check(label, why, note=""):
        nonlocal checks
        checks += 1
        print("%-4s %s%s" % ("ok" if why is None else "FAIL", label,
                             (": " + note) if why is None and note else
                             (": " + why) if why else ""))
        if why is not None:
            failures.append(label)

    for fixture, files in CASES:
        fdir = os.path.join(FIXTURES, fixture)
        weights = os.path.join(fdir, "model.safetensors")
        inputs = os.path.join(fdir, "inputs.safetensors")
        ref = os.path.join(fdir, "outputs.safetensors")
        for idx, name in enumerate(files):
            src = os.path.join(MODELS, name)
            rel = os.path.relpath(src, ROOT)
            label = "%s %s" % (fixture, name)
            if idx == 0 and os.path.exists(os.path.join(fdir, "repr.txt")):
                r = run([slapoc, rel])
                want = normalise_repr(open(os.path.join(fdir, "repr.txt")).read())
                why = None
                if r.returncode != 0:
                    why = "slapoc exited %d: %s" % (r.returncode, r.stderr.strip()[-500:])
                elif r.stdout != want:
                    a, b = r.stdout.split("\n"), want.split("\n")
                    k = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]),
                             min(len(a), len(b)))
                    why = "print(sch.mod) differs from HF's repr at line %d:\n  slapoc: %r\n" \
                          "  HF:     %r" % (k + 1, a[k] if k < len(a) else "<end>",
                                            b[k] if k < len(b) else "<end>")
                check("repr     " + label, why)
            out = os.path.join(tmp, "%s-%s.safetensors" % (fixture, name))
            r = run([slapoc, "--interp", rel, "--weights", weights, "--inputs", inputs,
                     "--outputs", out])
            if r.returncode != 0:
                check("interp   " + label, "slapoc --interp exited %d: %s"
                      % (r.returncode, r.stderr.strip()[-800:]))
            else:
                why, note = compare_outputs(out, ref)
                check("interp   " + label, why, note)
            if not tools:
                skipped += 1
                continue
            so = os.path.join(tmp, "%s-%s.so" % (fixture, name))
            r = run([tools[0], rel, "-o", so])
            if r.returncode != 0:
                check("compiled " + label, "slapoc -o exited %d: %s"
                      % (r.returncode, r.stderr.strip()[-800:]))
                continue
            r = run([tools[1], so, "--weights", weights, "--inputs", inputs,
                     "--compare", ref, "--rtol", str(RTOL)])
            line = [l for l in (r.stdout + r.stderr).split("\n") if l.startswith("compare")]
            check("compiled " + label,
                  None if r.returncode == 0 else "slapo-run exited %d: %s"
                  % (r.returncode, (r.stdout + r.stderr).strip()[-800:]),
                  line[0] if line else "")
    print("zoo parity: %d checks, %d failed%s" % (
        checks, len(failures),
        ", %d compiled checks skipped (%s)" % (skipped, no_codegen) if skipped else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
