#!/usr/bin/env python3
"""Write the hand-made part of the seed corpora under fuzz/corpus/.

    python3 fuzz/make_corpus.py

corpus/slapo/        every .slapo of examples/, lang/ and tests/golden/, with
                     imports of the test inputs (inputs/mlp.slapo) inlined, since
                     the target only imports from lang/ (files over the target's
                     32 KiB limit are skipped)
corpus/safetensors/  fake-model checkpoints (F32, F16, BF16, F64; legacy
                     gamma/beta names; "fake." prefix; extras; a tied alias),
                     edge cases of the format, and index.json files
corpus/schedule/     byte strings that decode to schedules of every model
                     variant (see fuzz_schedule.c for the decoding)

Seeds that the campaigns found live beside these, named by their SHA-1 (the
campaign corpus reduced with libFuzzer's -set_cover_merge=1, keeping files up
to 2 KiB for slapo, 4 KiB for safetensors); this script leaves them alone and
rewrites only its own files (named seed-*). Python 3 standard library only.
"""

import json
import random
import re
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "corpus"
MAX_SLAPO = 32 << 10


def clean(d):
    d.mkdir(parents=True, exist_ok=True)
    for f in d.glob("seed-*"):
        f.unlink()


# ---- slapo --------------------------------------------------------------------------

IMPORT_RE = re.compile(r'^import\s+"([^"]*)"\s*$', re.M)


def inline_imports(path, text, depth=0):
    def sub(m):
        rel = m.group(1)
        if rel.startswith("models/"):
            return m.group(0)  # the zoo: the target finds it
        target = (path.parent / rel).resolve()
        if depth > 4 or not target.exists():
            return m.group(0)
        return inline_imports(target, target.read_text(), depth + 1)

    return IMPORT_RE.sub(sub, text)


def slapo_corpus():
    d = OUT / "slapo"
    clean(d)
    files = sorted(ROOT.glob("examples/*.slapo")) + sorted(ROOT.glob("lang/**/*.slapo"))
    files += sorted(ROOT.glob("tests/golden/**/*.slapo"))
    n = 0
    for f in files:
        text = inline_imports(f, f.read_text(errors="replace"))
        data = text.encode()
        if len(data) > MAX_SLAPO:
            continue
        name = "seed-" + f.relative_to(ROOT).as_posix().replace("/", "-")
        (d / name).write_bytes(data)
        n += 1
    return n


# ---- safetensors --------------------------------------------------------------------

FAKE = {  # the fake model of tests/runtime/fake_model.c (variant 1)
    "emb.word_embeddings.weight": [50, 16],
    "emb.token_type_embeddings.weight": [2, 16],
    "emb.LayerNorm.weight": [16],
    "emb.LayerNorm.bias": [16],
    "fc1.weight": [32, 16],
    "fc1.bias": [32],
    "fc2.weight": [16, 32],
    "fc2.bias": [16],
    "head.bias": [50],
}
SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I32": 4, "I64": 8, "U8": 1, "BOOL": 1}


def st_file(tensors, meta=None, pad=True, fill=None):
    """tensors: [(name, dtype, shape)] -> safetensors bytes (data: a pattern)."""
    header, blobs, off = {}, [], 0
    for name, dtype, shape in tensors:
        n = 1
        for s in shape:
            n *= s
        size = n * SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + size]}
        blobs.append(bytes((fill if fill is not None else (i * 7 + 3)) % 251
                           for i in range(size)) if dtype != "F32" else
                     b"".join(struct.pack("<f", ((i % 17) - 8) / 16.0) for i in range(n)))
        off += size
    if meta is not None:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def fake_tensors(dtype="F32", legacy=False, prefix="", extras=False, alias=False, drop=None):
    out = []
    for name, shape in FAKE.items():
        if name == drop:
            continue
        if legacy:
            name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
                "LayerNorm.bias", "LayerNorm.beta")
        if alias and name == "emb.word_embeddings.weight":
            name = "head.decoder.weight"
        out.append((prefix + name, dtype, shape))
    if extras:
        out += [("fake.pooler.dense.weight", "F32", [2, 2]),
                ("cls.seq_relationship.bias", "F32", [2]), ("mystery.weight", "F32", [3])]
    return out


def safetensors_corpus():
    d = OUT / "safetensors"
    clean(d)
    seeds = {
        "f32": st_file(fake_tensors()),
        "f16": st_file(fake_tensors("F16")),
        "bf16": st_file(fake_tensors("BF16")),
        "f64": st_file(fake_tensors("F64")),
        "legacy": st_file(fake_tensors(legacy=True)),
        "prefix": st_file(fake_tensors(prefix="fake.")),
        "extras": st_file(fake_tensors(extras=True), meta={"format": "pt"}),
        "alias": st_file(fake_tensors(alias=True)),
        "missing": st_file(fake_tensors(drop="fc2.bias")),
        "i32": st_file([("fc1.weight", "I32", [32, 16])]),
        "empty-header": struct.pack("<Q", 2) + b"{}",
        "scalar": st_file([("x", "F32", [])]),
        "zero-dim": st_file([("x", "F32", [0, 4])]),
        "u8-bool": st_file([("a", "U8", [3]), ("b", "BOOL", [2])]),
        "meta": st_file([("x", "F32", [2])], meta={"a": "b", "c": "d"}),
        "unpadded": st_file([("x", "F32", [3])], pad=False),
        "lfs": b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 12\n",
        "short": b"\x08\x00\x00",
        "huge-n": struct.pack("<Q", 1 << 40) + b"{}",
        "not-json": struct.pack("<Q", 4) + b"{abc",
        "escapes": struct.pack("<Q", 64) + json.dumps(
            {"\u00e9\\u0041\"": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}
        ).encode().ljust(64),
        "index": json.dumps({"metadata": {"total_size": 1},
                             "weight_map": {k: "model.safetensors" for k in FAKE}}).encode(),
        "index-bad": json.dumps({"weight_map": {"a": "../x"}}).encode(),
        "index-deep": b"{\"weight_map\":" + b"[" * 70 + b"]" * 70 + b"}",
    }
    for name, data in seeds.items():
        (d / ("seed-" + name)).write_bytes(data)
    return len(seeds)


# ---- schedule -------------------------------------------------------------------------


def schedule_corpus():
    """Byte strings: variant, shape, then steps (kind, then choices). The
    decoder reads bytes mod small numbers, so structured and random bytes
    both give programs; these cover every variant and step kind."""
    d = OUT / "schedule"
    clean(d)
    rng = random.Random(2024)
    n = 0
    for variant in range(8):
        for k in range(11):  # one seed per step kind, then a random tail
            data = bytes([variant, rng.randrange(15), k]) + bytes(
                rng.randrange(256) for _ in range(40))
            (d / ("seed-v%d-k%02d" % (variant, k))).write_bytes(data)
            n += 1
    return n


if __name__ == "__main__":
    print("slapo: %d seeds" % slapo_corpus())
    print("safetensors: %d seeds" % safetensors_corpus())
    print("schedule: %d seeds" % schedule_corpus())
