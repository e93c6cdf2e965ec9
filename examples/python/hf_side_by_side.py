#!/usr/bin/env python3
"""HuggingFace's BertLMHeadModel and the same model compiled by slapoc, side by side.

    python3 examples/python/hf_side_by_side.py [--layers 2] [--hidden 128] [--batch 2] [--seq 32]

1. builds a random BertLMHeadModel (a tiny config) with transformers + torch
   and saves it with save_pretrained (model.safetensors, as HF writes it);
2. writes the same model in .slapo with the schedule of examples/bert-base.slapo
   (in every layer: decompose, trace, fuse bias+GeLU, bias+residual+LayerNorm
   and scale+mask+softmax) and compiles it with `slapoc -o`;
3. loads the library with `slapo.load(..., weights="model.safetensors")`,
   runs both on the same torch inputs (zero-copy through DLPack) and prints
   the max difference and both timings.

Needs torch and transformers (`pip install torch transformers`) and a
slapoc that compiles (--slapoc, else slapoc on PATH, else the build tree's).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

# As slapo-run does: OpenBLAS single-threaded, so that the model's own
# thread pool splits the GEMMs and no idle BLAS threads spin beside torch's
# (docs/abi.md §3). It is read when the library loads, so set it first.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

import slapo  # noqa: E402

SCHEDULED = """\
import "models/bert.slapo"
config = BertConfig(vocab_size={vocab}, hidden_size={hidden}, num_hidden_layers={layers},
                    num_attention_heads={heads}, intermediate_size={inter},
                    max_position_embeddings={positions}, is_decoder=true)
model = BertLMHeadModel(config)
sch = create_schedule(model)
pattern bias_gelu(x, bias) {{ return gelu(x + bias) }}
pattern bias_residual_layer_norm(x, bias, residual, weight, beta) {{
    return layer_norm(dropout(x + bias) + residual, weight, beta)
}}
pattern scale_mask_softmax(scores, scale, mask) {{
    return softmax(scores / scale + mask, dim=-1)
}}
for i in 0 .. config.num_hidden_layers {{
    layer = sch["bert.encoder.layer.{{i}}"]
    layer["intermediate.dense"].decompose()
    layer["output.dense"].decompose()
    layer["attention.output.dense"].decompose()
    layer.trace(flatten=true)
    layer.fuse(layer.find(bias_gelu), compiler="llvm", name="FusedBiasGeLU")
    layer.fuse(layer.find(bias_residual_layer_norm), compiler="llvm",
               name="FusedBiasResidualLayerNorm")
    layer.fuse(layer.find(scale_mask_softmax), compiler="llvm", name="FusedScaleMaskSoftmax")
}}
build(sch)
"""


def find_slapoc(given):
    if given:
        return given
    for cand in (shutil.which("slapoc"), os.path.join(ROOT, "build", "tools", "slapoc"),
                 os.path.join(ROOT, "build", "codegen", "slapoc-cg")):
        if cand and os.access(cand, os.X_OK):
            return cand
    sys.exit("no slapoc found: build it (meson setup build && ninja -C build) or pass --slapoc")


def timed(fn, runs):
    """(median, min) seconds of `runs` calls after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--slapoc", help="the compiler (default: slapoc on PATH, then build/)")
    args = ap.parse_args()

    import torch
    from transformers import BertConfig, BertLMHeadModel

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    config = BertConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                        num_hidden_layers=args.layers, num_attention_heads=args.heads,
                        intermediate_size=4 * args.hidden, max_position_embeddings=512,
                        is_decoder=True, attn_implementation="eager")
    hf = BertLMHeadModel(config).eval()

    with tempfile.TemporaryDirectory(prefix="slapo-hf-") as tmp:
        hf.save_pretrained(tmp)  # model.safetensors, tied decoder left out as HF does
        src = os.path.join(tmp, "bert.slapo")
        with open(src, "w") as f:
            f.write(SCHEDULED.format(vocab=args.vocab, hidden=args.hidden, layers=args.layers,
                                     heads=args.heads, inter=4 * args.hidden, positions=512))
        so = os.path.join(tmp, "bert.so")
        cc = find_slapoc(args.slapoc)
        t = time.perf_counter()
        subprocess.run([cc, src, "-o", so], check=True, stdout=subprocess.DEVNULL)
        compile_s = time.perf_counter() - t
        model = slapo.load(so, weights=os.path.join(tmp, "model.safetensors"),
                           threads=args.threads)

    ids = torch.randint(0, args.vocab, (args.batch, args.seq))
    mask = torch.ones(args.batch, args.seq, dtype=torch.int64)
    mask[-1, args.seq // 2:] = 0  # one padded row
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).logits
        got = model(input_ids=ids, attention_mask=mask).logits  # a torch tensor
        diff = (got - want).abs().max().item()
        t_hf = timed(lambda: hf(input_ids=ids, attention_mask=mask), args.runs)
        t_slapo = timed(lambda: model(input_ids=ids, attention_mask=mask), args.runs)

    print(model)
    print("compiled in %.2f s with %s" % (compile_s, cc))
    print("BertLMHeadModel: %d layers, hidden %d, vocab %d; batch %d, seq %d, %d threads, f32 CPU"
          % (args.layers, args.hidden, args.vocab, args.batch, args.seq, args.threads))
    print("max |slapo - HF| = %.3g (largest |logit| %.3g)" % (diff, want.abs().max().item()))
    print("forward, median (min) of %d runs:" % args.runs)
    print("  HF eager (torch %s) %8.3f ms (%.3f)" % (torch.__version__, 1e3 * t_hf[0],
                                                   1e3 * t_hf[1]))
    print("  slapo compiled %s %8.3f ms (%.3f)  median ratio HF/slapo %.2f" % (
        " " * len(torch.__version__), 1e3 * t_slapo[0], 1e3 * t_slapo[1], t_hf[0] / t_slapo[0]))
    return 0 if diff <= 1e-4 * max(1.0, want.abs().max().item()) else 1


if __name__ == "__main__":
    sys.exit(main())
