#!/usr/bin/env python3
"""Device memory of one BERT forward in a process of its own: what PyTorch
eager (HF BertLMHeadModel) or our model library adds to the GPU, measured
the same way for both.

    python3 bench/gpu_memory.py eager --weights DIR --batch 8 --seq 512 [--dtype bf16]
    python3 bench/gpu_memory.py ours --weights DIR --batch 8 --seq 512 \\
        --model bert-large.bf16.so --python-pkg python

Both start a fresh process, initialise CUDA through PyTorch (context, the
caching allocator) and read the free device memory; then load the weights
onto the GPU, run three forwards (ours: the first eagerly, the second
captured into a CUDA graph, the third replayed) with token ids, mask and
token types already on the device, synchronise and read it again. The
difference is what the model costs the process: weights, activations,
outputs, workspaces (cuBLAS's included), kernels loaded and allocator
rounding, for either side. PyTorch's own counters
(torch.cuda.max_memory_allocated, max_memory_reserved) are printed too.
Prints one JSON object.
"""

import argparse
import json
import os
import sys

MIB = 2 ** 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("side", choices=["eager", "ours"])
    ap.add_argument("--weights", required=True,
                    help="eager: a saved HF model directory; ours: its model.safetensors")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--model", help="ours: the model library")
    ap.add_argument("--python-pkg", help="ours: the directory holding the slapo package")
    args = ap.parse_args()

    import torch
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    free0 = torch.cuda.mem_get_info()[0]
    g = torch.Generator().manual_seed(args.batch * 1000 + args.seq)
    ids = torch.randint(0, 30522, (args.batch, args.seq), generator=g).cuda()
    mask = torch.ones_like(ids)
    tt = torch.zeros_like(ids)
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        if args.side == "eager":
            from transformers import BertLMHeadModel
            dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
            model = BertLMHeadModel.from_pretrained(args.weights, dtype=dtype)
            model = model.eval().to("cuda")
            for _ in range(3):
                out = model(input_ids=ids, attention_mask=mask, token_type_ids=tt).logits
                del out
        else:
            sys.path.insert(0, args.python_pkg)
            import slapo
            weights = os.path.join(args.weights, "model.safetensors")
            m = slapo.load(args.model, weights=weights, device="cuda:0")
            for _ in range(3):
                out = m(ids, attention_mask=mask, token_type_ids=tt)
                del out
    torch.cuda.synchronize()
    used = free0 - torch.cuda.mem_get_info()[0]
    print(json.dumps({"side": args.side, "process_mib": used / MIB,
                      "torch_allocated_mib": torch.cuda.max_memory_allocated() / MIB,
                      "torch_reserved_mib": torch.cuda.max_memory_reserved() / MIB}))


if __name__ == "__main__":
    main()
