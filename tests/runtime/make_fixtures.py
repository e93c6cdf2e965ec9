#!/usr/bin/env python3
"""make_fixtures.py - files for check_slapo_run.sh, made without slapo code.

    make_fixtures.py DIR          write the fixtures into DIR
    make_fixtures.py --check OUT REF
                                  read OUT (written by slapo-run) with this
                                  independent reader and compare it to REF

Pure Python (json, struct, math): an independent safetensors writer and
reader, and an independent reference of the fake model in fake_model.c
(variant 1), so slapo-run and the runtime are checked against code that
shares nothing with them.

Fixtures: weights.safetensors (HF style: "fake." prefix, LayerNorm
gamma/beta, a pooler and an NSP head to ignore, one unexpected tensor,
no tied decoder), weights_missing.safetensors (no fc2.bias),
inputs.safetensors (input_ids and attention_mask; token_type_ids left
for slapo-run to fill with zeros), ref.safetensors (expected outputs),
ref_bad.safetensors (one value off), lfs.safetensors (a git-lfs pointer),
truncated.safetensors.
"""
import json
import math
import random
import struct
import sys

V, H, I, B, S = 50, 16, 32, 2, 5

FORMATS = {"F32": "f", "I64": "q", "F64": "d"}
SIZES = {"F32": 4, "I64": 8, "F64": 8}


def write(path, tensors):
    """tensors: list of (name, dtype, shape, flat values)."""
    header, blobs, off = {}, [], 0
    for name, dtype, shape, vals in tensors:
        blob = struct.pack("<%d%s" % (len(vals), FORMATS[dtype]), *vals)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read(path):
    """Returns {name: (dtype, shape, values)}; checks the layout rules."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    assert (8 + n) % 8 == 0, "header not padded to 8 bytes"
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n:]
    out, end = {}, 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, e = info["data_offsets"]
        assert b == end, "gap or overlap at " + name
        assert b % SIZES[info["dtype"]] == 0, "misaligned " + name
        count = (e - b) // SIZES[info["dtype"]]
        vals = struct.unpack("<%d%s" % (count, FORMATS[info["dtype"]]), body[b:e])
        out[name] = (info["dtype"], info["shape"], list(vals))
        end = e
    assert end == len(body), "trailing bytes"
    return out


def params(seed):
    r = random.Random(seed)
    u = lambda n, scale, off=0.0: [off + scale * r.uniform(-1, 1) for _ in range(n)]
    return {
        "word": u(V * H, 1.0), "type": u(2 * H, 1.0),
        "ln_w": u(H, 0.2, 1.0), "ln_b": u(H, 0.2),
        "fc1_w": u(I * H, 0.3), "fc1_b": u(I, 0.1),
        "fc2_w": u(H * I, 0.3), "fc2_b": u(H, 0.1), "head_b": u(V, 0.1),
    }


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def reference(p, ids, types, mask):
    logits, hidden, scores = [], [], []
    for r in range(B * S):
        e = [p["word"][ids[r] * H + j] + p["type"][types[r] * H + j] for j in range(H)]
        mean = sum(e) / H
        var = sum((x - mean) ** 2 for x in e) / H
        e = [(x - mean) / math.sqrt(var + 1e-12) * p["ln_w"][j] + p["ln_b"][j]
             for j, x in enumerate(e)]
        h1 = []
        for j in range(I):
            v = sum(e[k] * p["fc1_w"][j * H + k] for k in range(H)) + p["fc1_b"][j]
            h1.append(0.5 * v * (1 + math.erf(v / math.sqrt(2))))
        hid = [(sum(h1[k] * p["fc2_w"][j * I + k] for k in range(I)) + p["fc2_b"][j] + e[j])
               * mask[r] for j in range(H)]
        hidden += hid
        logits += [sum(hid[k] * p["word"][j * H + k] for k in range(H)) + p["head_b"][j]
                   for j in range(V)]
    for b in range(B):
        for s1 in range(S):
            for s2 in range(S):
                scores.append(sum(hidden[(b * S + s1) * H + k] * hidden[(b * S + s2) * H + k]
                                  for k in range(H)))
    return logits, hidden, scores


def make(d):
    p = {k: [f32(x) for x in v] for k, v in params(1234).items()}
    weights = [
        ("fake.emb.word_embeddings.weight", "F32", [V, H], p["word"]),
        ("fake.emb.token_type_embeddings.weight", "F32", [2, H], p["type"]),
        ("fake.emb.LayerNorm.gamma", "F32", [H], p["ln_w"]),
        ("fake.emb.LayerNorm.beta", "F32", [H], p["ln_b"]),
        ("fake.fc1.weight", "F32", [I, H], p["fc1_w"]),
        ("fake.fc1.bias", "F32", [I], p["fc1_b"]),
        ("fake.fc2.weight", "F32", [H, I], p["fc2_w"]),
        ("fake.fc2.bias", "F32", [H], p["fc2_b"]),
        ("fake.head.bias", "F32", [V], p["head_b"]),
        ("fake.pooler.dense.weight", "F32", [2, 2], [0.0] * 4),
        ("cls.seq_relationship.bias", "F32", [2], [0.0, 0.0]),
        ("mystery.weight", "F64", [1], [1.0]),
    ]
    write(d + "/weights.safetensors", weights)
    write(d + "/weights_missing.safetensors",
          [t for t in weights if t[0] != "fake.fc2.bias"])
    r = random.Random(99)
    ids = [r.randrange(V) for _ in range(B * S)]
    mask = [1 if s < S - b else 0 for b in range(B) for s in range(S)]
    write(d + "/inputs.safetensors",
          [("input_ids", "I64", [B, S], ids), ("attention_mask", "I64", [B, S], mask)])
    logits, hidden, scores = reference(p, ids, [0] * (B * S), mask)
    outs = [("logits", "F32", [B, S, V], logits), ("hidden", "F32", [B, S, H], hidden),
            ("scores", "F32", [B, S, S], scores)]
    write(d + "/ref.safetensors", outs)
    bad = list(hidden)
    bad[7] += 0.5
    write(d + "/ref_bad.safetensors",
          [outs[0], ("hidden", "F32", [B, S, H], bad), outs[2]])
    with open(d + "/lfs.safetensors", "w") as f:
        f.write("version https://git-lfs.github.com/spec/v1\n"
                "oid sha256:0123456789abcdef\nsize 1234\n")
    whole = open(d + "/weights.safetensors", "rb").read()
    with open(d + "/truncated.safetensors", "wb") as f:
        f.write(whole[:-10])


def check(out_path, ref_path):
    out, ref = read(out_path), read(ref_path)
    assert sorted(out) == sorted(ref), (sorted(out), sorted(ref))
    for name, (dtype, shape, vals) in ref.items():
        odt, oshape, ovals = out[name]
        assert odt == "F32" and oshape == shape, (name, odt, oshape, shape)
        for a, b in zip(ovals, vals):
            assert abs(a - b) <= 1e-4 + 1e-4 * abs(b), (name, a, b)
    print("check ok:", ", ".join(sorted(out)))


if __name__ == "__main__":
    if sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3])
    else:
        make(sys.argv[1])
