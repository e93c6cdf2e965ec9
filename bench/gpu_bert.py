#!/usr/bin/env python3
"""BERT-large on an NVIDIA GPU: slapoc's model library beside HuggingFace
transformers' BertLMHeadModel in PyTorch eager and torch.compile (default and
mode="reduce-overhead"), same GPU, same run, same weights.

    python3 bench/gpu_bert.py --slapo-run build/runtime/slapo-run \\
        --model bert-large.bf16.so [--shapes 8x512,1x128] [--runs 50] \\
        [--out DIR] [--no-compile] [--precision tf32]
    python3 bench/gpu_bert.py --pkg PKG     # a tests/gpu/make_pkg.sh package

The weights are BertLMHeadModel's random init (torch.manual_seed(0)), saved
as model.safetensors and loaded by both. Inputs are random token ids (seeded)
with a full attention mask. PyTorch runs in bf16 under inference_mode with
its default attention (SDPA); our library is compiled with
`slapoc examples/bert-large.slapo --precision=bf16 --output-dtype=bf16`
(bf16 weights, activations and logits as PyTorch's, f32 accumulation and
statistics). With
--precision tf32, PyTorch runs in fp32 with TF32 matrix products allowed
(torch.backends.cuda.matmul.allow_tf32, cudnn.allow_tf32) and our library is
the --precision=tf32 one (fp32 storage, GEMMs on the tensor cores in TF32). Times are medians
of --runs runs after warm-up: PyTorch's with CUDA events, ours from
`slapo-run --bench` (one session_run: input copies, the CUDA graph replay,
synchronisation). Outputs are compared with an fp32 PyTorch reference (TF32
off) by the normwise relative error ||x - ref|| / ||ref||.

The roofline: model FLOPs (the matrix products; attention included) over
the GEMM rate measured here at the same precision (8192^3 torch.matmul), the
lower bound for any implementation that runs at that rate.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

VOCAB, HIDDEN, LAYERS, HEADS, INTER, MAXPOS = 30522, 1024, 24, 16, 4096, 512


def flops(b, s):
    """Multiply-adds x 2 of the forward: projections, attention, FFN, LM head."""
    tok = b * s
    per_layer = 2 * tok * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * INTER) + 2 * 2 * b * s * s * HIDDEN
    head = 2 * tok * (HIDDEN * HIDDEN + HIDDEN * VOCAB)
    return LAYERS * per_layer + head


def cuda_median(fn, runs, warm=5):
    import torch
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        a = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        e.record()
        e.synchronize()
        times.append(a.elapsed_time(e))
    return statistics.median(times)


def gemm_peak(torch, dtype):
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    ms = cuda_median(lambda: torch.matmul(a, b), 20, warm=5)
    return 2 * n ** 3 / (ms * 1e-3) / 1e12


def normwise(x, ref):
    import torch
    x = x.float()
    return float(torch.linalg.vector_norm(x - ref) / torch.linalg.vector_norm(ref))


def memory(args, work, b, s, eager, model):
    """Device memory of one forward (MiB). eager_alloc_mib: PyTorch's own
    figure in this process (its weights plus the allocator's peak above what
    was allocated before the forward, its cuBLAS workspace freed first so the
    forward allocates it again). eager_mib and ours_mib: what each adds to a
    process of its own (bench/gpu_memory.py: free device memory before
    loading and after three forwards), measured the same way for both."""
    import torch
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    with torch.inference_mode():
        torch.cuda.synchronize()
        torch._C._cuda_clearCublasWorkspaces()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        out = eager()
        torch.cuda.synchronize()
        r = {"eager_alloc_mib": (params + torch.cuda.max_memory_allocated() - before) / 2**20}
        del out
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu_memory.py")
    for side in ("eager", "ours"):
        cmd = [sys.executable, tool, side, "--weights", work, "--batch", str(b),
               "--seq", str(s), "--dtype", "bf16" if args.precision == "bf16" else "fp32",
               "--model", args.model, "--python-pkg", args.python_pkg]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stdout, p.stderr, file=sys.stderr)
            raise SystemExit("gpu_memory.py failed")
        got = json.loads(p.stdout.strip().splitlines()[-1])
        r[side + "_mib"] = got["process_mib"]
        r[side + "_torch_reserved_mib"] = got["torch_reserved_mib"]
    return r


def run_ours(args, model_so, weights, inputs, out_file):
    cmd = [args.slapo_run, model_so, "--device", "cuda:0", "--weights", weights,
           "--inputs", inputs, "--bench", str(args.runs), "--outputs", out_file, "-q"]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout, p.stderr, file=sys.stderr)
        raise SystemExit("slapo-run failed")
    m = re.search(r"median ([0-9.]+) ms", p.stdout)
    return float(m.group(1)), time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pkg", help="package made by tests/gpu/make_pkg.sh")
    ap.add_argument("--slapo-run", help="slapo-run executable")
    ap.add_argument("--model", help="bert-large model library (of --precision)")
    ap.add_argument("--precision", choices=["bf16", "tf32"], default="bf16",
                    help="bf16 (default): both in bf16; tf32: PyTorch fp32 with TF32 "
                         "matrix products, our --precision=tf32 library")
    ap.add_argument("--shapes", default="8x512,1x128")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--out", default=None, help="where to write gpu_bert.json/.md")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--compile-modes", default="default,reduce-overhead",
                    help="torch.compile modes to time (comma-separated)")
    ap.add_argument("--compile-shapes", default=None,
                    help="shapes to run torch.compile on (default: all)")
    ap.add_argument("--nomask", action="store_true",
                    help="also time eager without attention_mask (an all-ones mask "
                         "lets PyTorch use its flash SDPA kernel)")
    ap.add_argument("--ours-shapes", default=None,
                    help="shapes to run slapoc on (default: all)")
    ap.add_argument("--memory", action="store_true",
                    help="also compare device memory at each shape: what eager and our "
                         "library each add to a process of its own (bench/gpu_memory.py), "
                         "and PyTorch's allocator figure for eager in this process")
    args = ap.parse_args()
    args.python_pkg = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")
    if args.pkg:
        args.python_pkg = os.path.join(args.pkg, "python")
        args.slapo_run = args.slapo_run or os.path.join(args.pkg, "bin", "slapo-run")
        args.model = args.model or os.path.join(args.pkg, "bench",
                                                  f"bert-large.{args.precision}.so")
    if not args.slapo_run or not args.model:
        ap.error("give --pkg, or --slapo-run and --model")

    import torch
    import transformers
    from safetensors.torch import load_file, save_file
    from transformers import BertConfig, BertLMHeadModel

    dev = torch.cuda.get_device_name(0)
    print(f"device: {dev}; torch {torch.__version__}, transformers {transformers.__version__}",
          flush=True)
    work = tempfile.mkdtemp(prefix="gpu_bert.")
    torch.manual_seed(0)
    conf = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                      num_attention_heads=HEADS, intermediate_size=INTER,
                      max_position_embeddings=MAXPOS, is_decoder=False)
    ref_model = BertLMHeadModel(conf).eval()
    ref_model.save_pretrained(work, safe_serialization=True)
    weights = os.path.join(work, "model.safetensors")
    ref_model = ref_model.cuda()
    model = BertLMHeadModel(conf).eval()
    model.load_state_dict(ref_model.state_dict())
    prec = args.precision
    dtype = torch.bfloat16 if prec == "bf16" else torch.float32
    model = model.to(device="cuda", dtype=dtype)

    def tf32(on):
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on

    tf32(prec == "tf32")
    peak = gemm_peak(torch, dtype)
    print(f"{prec} GEMM peak (8192^3 torch.matmul): {peak:.0f} TFLOP/s", flush=True)

    rows = []
    for shape in args.shapes.split(","):
        b, s = (int(v) for v in shape.split("x"))
        g = torch.Generator().manual_seed(b * 1000 + s)
        ids = torch.randint(0, VOCAB, (b, s), generator=g)
        mask = torch.ones(b, s, dtype=torch.int64)
        tt = torch.zeros(b, s, dtype=torch.int64)
        inputs = os.path.join(work, f"in_{b}x{s}.safetensors")
        save_file({"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}, inputs)
        ids_c, mask_c, tt_c = ids.cuda(), mask.cuda(), tt.cuda()
        r = {"batch": b, "seq": s, "gflop": flops(b, s) / 1e9}
        with torch.inference_mode():
            tf32(False)
            ref = ref_model(input_ids=ids_c, attention_mask=mask_c, token_type_ids=tt_c).logits.float()
            tf32(prec == "tf32")

            def eager():
                return model(input_ids=ids_c, attention_mask=mask_c, token_type_ids=tt_c).logits

            r["eager_ms"] = cuda_median(eager, args.runs)
            r["eager_err"] = normwise(eager(), ref)
            print(f"b{b} s{s}: eager {r['eager_ms']:.3f} ms (err {r['eager_err']:.2e})", flush=True)
            if args.nomask:
                def eager_nm():
                    return model(input_ids=ids_c, token_type_ids=tt_c).logits

                r["eager_nomask_ms"] = cuda_median(eager_nm, args.runs)
                print(f"b{b} s{s}: eager without attention_mask {r['eager_nomask_ms']:.3f} ms",
                      flush=True)
            modes = [m for m in args.compile_modes.split(",") if m]
            todo = [(None if m == "default" else m, "compile" if m == "default" else "compile_ro")
                    for m in modes]
            if args.compile_shapes and shape not in args.compile_shapes.split(","):
                todo = []
            if not args.no_compile:
                for mode, key in todo:
                    torch._dynamo.reset()
                    cm = torch.compile(model, mode=mode, dynamic=False)

                    def comp():
                        return cm(input_ids=ids_c, attention_mask=mask_c, token_type_ids=tt_c).logits

                    t0 = time.time()
                    comp()
                    torch.cuda.synchronize()
                    r[key + "_build_s"] = time.time() - t0
                    r[key + "_ms"] = cuda_median(comp, args.runs, warm=3)
                    r[key + "_err"] = normwise(comp(), ref)
                    print(f"b{b} s{s}: torch.compile({mode or 'default'}) {r[key + '_ms']:.3f} ms "
                          f"(err {r[key + '_err']:.2e}, compiled in {r[key + '_build_s']:.0f} s)",
                          flush=True)
                torch._dynamo.reset()
        r["roofline_ms"] = flops(b, s) / (peak * 1e12) * 1e3
        if not args.ours_shapes or shape in args.ours_shapes.split(","):
            out_file = os.path.join(work, f"out_{b}x{s}.safetensors")
            r["ours_ms"], r["ours_wall_s"] = run_ours(args, args.model, weights, inputs, out_file)
            ours = load_file(out_file)["logits"].cuda()
            r["ours_err"] = normwise(ours, ref)
            os.remove(out_file)
            del ours
            print(f"b{b} s{s}: slapoc {r['ours_ms']:.3f} ms (err {r['ours_err']:.2e}); "
                  f"roofline {r['roofline_ms']:.3f} ms", flush=True)
        if args.memory:
            r.update(memory(args, work, b, s, eager, model))
            print(f"b{b} s{s}: device memory of a process of its own: eager "
                  f"{r['eager_mib']:.0f} MiB, slapoc {r['ours_mib']:.0f} MiB "
                  f"(ratio {r['ours_mib'] / r['eager_mib']:.2f}); eager's allocator figure "
                  f"in this process {r['eager_alloc_mib']:.0f} MiB", flush=True)
        del ref
        rows.append(r)

    lines = [f"Card: {dev}. {prec}, torch {torch.__version__}, transformers "
             f"{transformers.__version__}; {prec} GEMM peak measured {peak:.0f} TFLOP/s.", "",
             "| batch x seq | GFLOP | roofline | slapoc | eager | compile | compile (reduce-overhead) "
             "| eager / slapoc | compile-RO / slapoc | slapoc % of roofline | err slapoc / eager |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "ours_ms" not in r:
            continue
        c = f"{r['compile_ms']:.3f} ms" if "compile_ms" in r else "-"
        ro = f"{r['compile_ro_ms']:.3f} ms" if "compile_ro_ms" in r else "-"
        ratio_ro = f"{r['compile_ro_ms'] / r['ours_ms']:.2f}x" if "compile_ro_ms" in r else "-"
        lines.append(
            f"| {r['batch']} x {r['seq']} | {r['gflop']:.0f} | {r['roofline_ms']:.3f} ms "
            f"| {r['ours_ms']:.3f} ms | {r['eager_ms']:.3f} ms | {c} | {ro} "
            f"| {r['eager_ms'] / r['ours_ms']:.2f}x | {ratio_ro} "
            f"| {100 * r['roofline_ms'] / r['ours_ms']:.0f}% "
            f"| {r['ours_err']:.1e} / {r['eager_err']:.1e} |")
    table = "\n".join(lines)
    print()
    print(table)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "gpu_bert.json"), "w") as f:
            json.dump({"device": dev, "precision": prec, "torch": torch.__version__,
                       "transformers": transformers.__version__, "gemm_peak_tflops": peak,
                       "rows": rows}, f, indent=1)
        with open(os.path.join(args.out, "gpu_bert.md"), "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
