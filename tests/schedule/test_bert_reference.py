#!/usr/bin/env python3
"""The reference interpreter's BERT against BERT computed by hand.

A tiny BertLMHeadModel (bert_ref.slapo) gets seeded random weights in a
HuggingFace-style model.safetensors (LayerNorms under their legacy
gamma/beta names, the tied decoder weight absent, the decoder bias only
as cls.predictions.bias, and an extra pooler tensor), and inputs with
padding in one row. `slapoc --interp` runs it; this file computes the
same forward independently, in plain Python, following HF's
modeling_bert.py, and the two must agree to f32 precision."""
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile

root = os.environ.get("SLAPO_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
slapoc = os.path.join(root, os.environ.get("SLAPO_BUILD", "build"), "tools", "slapoc")

V, H, L, NH, I, P = 23, 8, 2, 2, 12, 16
B, S = 2, 5
EPS = 1e-12


def write_st(path, tensors):
    """tensors: name -> (dtype, shape, flat list)"""
    header, blobs, off = {}, [], 0
    for name, (dt, shape, vals) in sorted(tensors.items()):
        fmt = {"F32": "f", "I64": "q"}[dt]
        blob = struct.pack("<%d%s" % (len(vals), fmt), *vals)
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_st(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, d in header.items():
        if name == "__metadata__":
            continue
        b, e = d["data_offsets"]
        out[name] = (d["shape"], list(struct.unpack("<%df" % ((e - b) // 4),
                                                      data[8 + n + b:8 + n + e])))
    return out


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def main():
    rnd = random.Random(7)
    W = {}

    def param(name, shape, kind="normal"):
        n = 1
        for d in shape:
            n *= d
        if kind == "ones":
            vals = [f32(1 + 0.1 * rnd.uniform(-1, 1)) for _ in range(n)]
        else:
            vals = [f32(rnd.gauss(0, 0.3)) for _ in range(n)]
        W[name] = ("F32", list(shape), vals)
        return vals

    def ln(prefix):  # legacy TF names, as old checkpoints store them
        param(prefix + ".gamma", [H], "ones")
        param(prefix + ".beta", [H])

    e = "bert.embeddings."
    param(e + "word_embeddings.weight", [V, H])
    param(e + "position_embeddings.weight", [P, H])
    param(e + "token_type_embeddings.weight", [2, H])
    ln(e + "LayerNorm")
    for l in range(L):
        p = "bert.encoder.layer.%d." % l
        for m in ("query", "key", "value"):
            param(p + "attention.self.%s.weight" % m, [H, H])
            param(p + "attention.self.%s.bias" % m, [H])
        param(p + "attention.output.dense.weight", [H, H])
        param(p + "attention.output.dense.bias", [H])
        ln(p + "attention.output.LayerNorm")
        param(p + "intermediate.dense.weight", [I, H])
        param(p + "intermediate.dense.bias", [I])
        param(p + "output.dense.weight", [H, I])
        param(p + "output.dense.bias", [H])
        ln(p + "output.LayerNorm")
    param("cls.predictions.transform.dense.weight", [H, H])
    param("cls.predictions.transform.dense.bias", [H])
    ln("cls.predictions.transform.LayerNorm")
    param("cls.predictions.bias", [V])
    param("bert.pooler.dense.weight", [H, H])  # not part of BertLMHeadModel

    ids = [[rnd.randrange(V) for _ in range(S)] for _ in range(B)]
    mask = [[1] * S, [1] * (S - 2) + [0, 0]]
    types = [[rnd.randrange(2) for _ in range(S)] for _ in range(B)]

    tmp = tempfile.mkdtemp()
    wpath, ipath, opath = (os.path.join(tmp, n) for n in ("w.st", "in.st", "out.st"))
    write_st(wpath, W)
    flat = lambda m: [v for row in m for v in row]
    write_st(ipath, {"input_ids": ("I64", [B, S], flat(ids)),
                     "attention_mask": ("I64", [B, S], flat(mask)),
                     "token_type_ids": ("I64", [B, S], flat(types))})
    r = subprocess.run([slapoc, "--interp", "tests/schedule/bert_ref.slapo", "--weights", wpath,
                        "--inputs", ipath, "--outputs", opath], cwd=root,
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        print("slapoc --interp failed:\n" + r.stdout + r.stderr)
        return 1
    got_shape, got = read_st(opath)["logits"]

    # ---- BERT by hand (HF modeling_bert.py, eval mode) ----
    def w(name):
        return W[name][2]

    def mat(name, rows, cols):
        v = w(name)
        return [v[r * cols:(r + 1) * cols] for r in range(rows)]

    def linear(x, wname, bname, out, inp):
        Wm, b = mat(wname, out, inp), w(bname)
        return [[sum(xi[k] * Wm[o][k] for k in range(inp)) + b[o] for o in range(out)]
                for xi in x]

    def layer_norm(x, prefix):
        g, be = w(prefix + ".gamma"), w(prefix + ".beta")
        out = []
        for row in x:
            mu = sum(row) / len(row)
            var = sum((v - mu) ** 2 for v in row) / len(row)
            out.append([(v - mu) / math.sqrt(var + EPS) * g[i] + be[i] for i, v in enumerate(row)])
        return out

    gelu = lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2)))
    logits = []
    for b in range(B):
        we, pe, te = (mat(e + n, r, H) for n, r in (("word_embeddings.weight", V),
                      ("position_embeddings.weight", P), ("token_type_embeddings.weight", 2)))
        h = [[we[ids[b][s]][k] + te[types[b][s]][k] + pe[s][k] for k in range(H)]
             for s in range(S)]
        h = layer_norm(h, e + "LayerNorm")
        ext = [(1.0 - mask[b][j]) * -3.4028234663852886e+38 for j in range(S)]
        hd = H // NH
        for l in range(L):
            p = "bert.encoder.layer.%d." % l
            q, k, v = (linear(h, p + "attention.self.%s.weight" % m, p + "attention.self.%s.bias" % m,
                              H, H) for m in ("query", "key", "value"))
            ctx = [[0.0] * H for _ in range(S)]
            for hh in range(NH):
                sl = range(hh * hd, (hh + 1) * hd)
                for i in range(S):
                    sc = [sum(q[i][c] * k[j][c] for c in sl) / math.sqrt(hd) + ext[j]
                          for j in range(S)]
                    m = max(sc)
                    ex = [math.exp(x - m) for x in sc]
                    z = sum(ex)
                    for c in sl:
                        ctx[i][c] = sum(ex[j] / z * v[j][c] for j in range(S))
            a = linear(ctx, p + "attention.output.dense.weight", p + "attention.output.dense.bias", H, H)
            a = layer_norm([[a[i][c] + h[i][c] for c in range(H)] for i in range(S)],
                           p + "attention.output.LayerNorm")
            it = [[gelu(x) for x in row] for row in
                  linear(a, p + "intermediate.dense.weight", p + "intermediate.dense.bias", I, H)]
            o = linear(it, p + "output.dense.weight", p + "output.dense.bias", H, I)
            h = layer_norm([[o[i][c] + a[i][c] for c in range(H)] for i in range(S)],
                           p + "output.LayerNorm")
        t = linear(h, "cls.predictions.transform.dense.weight",
                   "cls.predictions.transform.dense.bias", H, H)
        t = layer_norm([[gelu(x) for x in row] for row in t], "cls.predictions.transform.LayerNorm")
        dec, bias = mat(e + "word_embeddings.weight", V, H), w("cls.predictions.bias")
        logits += [sum(t[i][c] * dec[o][c] for c in range(H)) + bias[o]
                   for i in range(S) for o in range(V)]

    if got_shape != [B, S, V]:
        print("logits shape", got_shape, "expected", [B, S, V])
        return 1
    err = max(abs(a - b) for a, b in zip(got, logits))
    scale = max(abs(b) for b in logits)
    print("max abs error %.3e, max |logit| %.3f, relative %.3e" % (err, scale, err / scale))
    return 0 if err / scale < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
