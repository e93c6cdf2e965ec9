#!/usr/bin/env python3
"""The Python package on a GPU (run by run_gpu_tests.sh from a package of
make_pkg.sh): the attention BERT loaded on cuda:0 and run

  - with torch CUDA tensors: the logits come back as torch tensors on the
    same GPU (bf16 from the --output-dtype=bf16 library, f32 from the f32
    one), within tolerance of the interpreter's reference;
  - with numpy arrays: numpy logits in host memory, the same values.

usage: py_cuda.py PKG   (prints one line per check; exit 1 on a failure)
"""

import os
import sys


def main():
    pkg = sys.argv[1]
    sys.path.insert(0, os.path.join(pkg, "python"))
    import numpy as np
    import torch
    from safetensors.torch import load_file

    import slapo

    bert = os.path.join(pkg, "bert")
    weights = os.path.join(bert, "attn.w.1.st")
    x = load_file(os.path.join(bert, "attn.in.1.st"))
    ref = load_file(os.path.join(bert, "attn.ref.1.st"))["logits"].double()
    fails = 0

    def check(name, ok, detail):
        nonlocal fails
        print("%s %s: %s" % ("ok  " if ok else "FAIL", name, detail))
        fails += not ok

    def err(got):
        got = torch.as_tensor(got).double().cpu()
        return float(torch.linalg.vector_norm(got - ref) / torch.linalg.vector_norm(ref))

    for lib, dtype, tol in (("attn.bf16-out16.so", torch.bfloat16, 2e-2),
                            ("attn.fp32.so", torch.float32, 1e-5)):
        m = slapo.load(os.path.join(bert, lib), weights=weights, device="cuda:0")
        out = m(**{k: v.cuda() for k, v in x.items()}).logits
        e = err(out)
        check("%s, torch CUDA tensors" % lib,
              out.device.type == "cuda" and out.dtype == dtype and e <= tol,
              "logits %s %s on %s, normwise error %.2e (tolerance %g)"
              % (out.dtype, tuple(out.shape), out.device, e, tol))
        if dtype == torch.float32:
            host = m(**{k: v.numpy() for k, v in x.items()}).logits
            e = err(torch.from_numpy(host))
            check("%s, numpy arrays" % lib, isinstance(host, np.ndarray) and e <= tol,
                  "logits %s %s, normwise error %.2e" % (type(host).__name__, host.dtype, e))
        m.close()
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
