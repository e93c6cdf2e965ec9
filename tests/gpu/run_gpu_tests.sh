#!/bin/bash
# run_gpu_tests.sh [PKG]: the GPU test suite, from a package that
# tests/gpu/make_pkg.sh made (PKG defaults to this script's directory).
# Needs on this machine: an NVIDIA GPU of compute capability >= 8.0, its
# driver (libcuda.so.1) and cuBLAS/cuBLASLt 12 or 13 (a CUDA toolkit, or
# PyTorch's nvidia-cublas wheel: found below). Nothing is compiled here.
#
#   1. every op and fused kernel on the GPU against the interpreter, at
#      fp32 (elementwise rtol/atol of each case), tf32 (normwise 2e-3) and
#      bf16 (normwise 1e-2); outputs poisoned first; host and device
#      tensors; each shape run eagerly, captured into a CUDA graph, replayed
#   2. tiny BERT against the interpreter (fp32: rtol/atol 1e-4; bf16:
#      normwise 2e-2), with device and host tensors; bf16 also with every
#      GEMM on cuBLAS (SLAPO_GEMM_NO_LT=1: the bias and GELU epilogues by
#      our kernels)
#   2b. the fused attention kernel (bert_attn.slapo, head size 64, at bf16
#      and fp16; fp32 unfused; and bert_attn_flash.slapo, the attention
#      swapped in by replace(); sdpa_bool.slapo, head size 32 and a bool
#      mask, against the CPU path) against the interpreter, normwise 2e-2,
#      at sequence lengths 1, 7, 64, 70 and 150 with padded rows, with each
#      of the kernel's forms (on Hopper wgmma, required there by
#      SLAPO_CUDA_SM90A=1; and mma.sync with 128-query blocks,
#      SLAPO_ATT_SMALL_GRID=0, and 64-query ones); its LM head
#      (1001 columns) split into classes of rows (SLAPO_GEMM_SPLIT_ROWS=1)
#   3. bert-base on the GPU against the library's own CPU path (fp32
#      rtol 1e-3 atol 2e-3; tf32 normwise 5e-3; bf16 normwise 2e-2)
#   4. the zoo models against HuggingFace's outputs (fp32, rtol 1e-4; the
#      base models also at bf16 and fp16, normwise 2e-2)
#   5. a sticky CUDA error poisons the session (SLAPO_DEVICE_LOST twice)
# Exit status: 0 all passed, 1 a failure, 77 no usable GPU.
set -uo pipefail
pkg=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
bin=$pkg/bin
fails=0

# cuBLAS: the CUDA toolkit's, else a pip wheel's (PyTorch brings one)
if ! ls /usr/local/cuda/lib64/libcublasLt.so.1[23] >/dev/null 2>&1 &&
	! ldconfig -p 2>/dev/null | grep -q 'libcublasLt.so.1[23]'; then
	lib=$(python3 - <<'EOF' 2>/dev/null
import glob, os, site, sys
for d in site.getsitepackages() + [site.getusersitepackages()]:
    for f in glob.glob(os.path.join(d, "nvidia", "**", "libcublasLt.so.1[23]"), recursive=True):
        print(os.path.dirname(f)); sys.exit(0)
EOF
)
	[ -n "$lib" ] && export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

"$bin/run_cases" --probe --device cuda:0 || exit $?
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

check() { # check NAME COMMAND...: run; on failure count it and show the output
	local name=$1 log
	shift
	log=$("$@" 2>&1)
	local rc=$?
	if [ $rc -ne 0 ]; then
		echo "FAIL $name (exit $rc)"
		printf '%s\n' "$log" | tail -25 | sed 's/^/    /'
		fails=$((fails + 1))
	else
		echo "ok   $name"
		printf '%s\n' "$log" | grep -E '^(compare|bench|[0-9]+ of)' | sed 's/^/    /'
	fi
}

# one_step NAME LIB: LIB's scaled_dot_product_attention runs as the fused
# kernel, one profile row for both products and the softmax
one_step() {
	check "$1: one attention step" bash -c \
		'"$1" "$2" --device cuda:0 --random-weights 1 --batch 2 --seq 70 --profile |
		grep -E "^matmul_?[0-9]*\+AttentionSoftmax_0\+matmul_[0-9]+ "' _ \
		"$bin/slapo-run" "$2"
}

# 1. op cases (a precision whose cases a package left out, to travel
#    lighter, is named as skipped)
for p in fp32 tf32 bf16 fp16; do
	tol=()
	case $p in tf32 | fp16) tol=(--norm-tol 2e-3) ;; bf16) tol=(--norm-tol 1e-2) ;; esac
	if [ -f "$pkg/ops/$p/manifest" ]; then
		check "ops $p" "$bin/run_cases" "$pkg/ops/$p" --device cuda:0 "${tol[@]}"
	else
		echo "skip ops $p: not in this package"
	fi
done

# 2. tiny BERT vs the interpreter
for k in 0 1 2 3; do
	for io in device host; do
		check "tiny BERT fp32 shape $k ($io tensors)" "$bin/slapo-run" "$pkg/bert/tiny.fp32.so" \
			--device cuda:0 --io $io --weights "$pkg/bert/tiny.w.$k.st" \
			--inputs "$pkg/bert/tiny.in.$k.st" --compare "$pkg/bert/tiny.ref.$k.st" \
			--rtol 1e-4 --atol 1e-4 --bench 2 -q
	done
	check "tiny BERT bf16 shape $k" "$bin/slapo-run" "$pkg/bert/tiny.bf16.so" --device cuda:0 \
		--weights "$pkg/bert/tiny.w.$k.st" --inputs "$pkg/bert/tiny.in.$k.st" \
		--compare "$pkg/bert/tiny.ref.$k.st" --norm-tol 2e-2 --bench 2 -q
	# cuBLAS without cuBLASLt's epilogues: bias and GELU by our kernels
	SLAPO_GEMM_NO_LT=1 check "tiny BERT bf16 shape $k, cuBLAS" "$bin/slapo-run" \
		"$pkg/bert/tiny.bf16.so" --device cuda:0 --weights "$pkg/bert/tiny.w.$k.st" \
		--inputs "$pkg/bert/tiny.in.$k.st" --compare "$pkg/bert/tiny.ref.$k.st" \
		--norm-tol 2e-2 --bench 2 -q
done

# 2b. the fused attention kernel (bf16, fp16; fp32 runs unfused) in a small
#     BERT with head size 64, against the interpreter; its LM head's rows
#     (1001 f32) are not 16-byte aligned, and SLAPO_GEMM_SPLIT_ROWS=1 makes
#     the runtime split it by rows at every size (gemm_split); -out16: the
#     logits in the 16-bit type (--output-dtype), rows of 1001 bf16 / f16
export SLAPO_GEMM_SPLIT_ROWS=1
# on Hopper (compute capability 9.0) the library's sm_90a module must load:
# the checks below then run its wgmma attention kernel
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1)
[ "$cc" = "9.0" ] && export SLAPO_CUDA_SM90A=1
for k in 0 1 2 3 4; do
	w=(--weights "$pkg/bert/attn.w.$k.st" --inputs "$pkg/bert/attn.in.$k.st"
		--compare "$pkg/bert/attn.ref.$k.st")
	check "attention BERT fp32 shape $k" "$bin/slapo-run" "$pkg/bert/attn.fp32.so" \
		--device cuda:0 "${w[@]}" --rtol 1e-4 --atol 1e-4 -q
	# tf32: attention as the f16 kernel (f16 copies of Q, K, V)
	check "attention BERT tf32 shape $k" "$bin/slapo-run" "$pkg/bert/attn.tf32.so" \
		--device cuda:0 "${w[@]}" --norm-tol 5e-3 --bench 2 -q
	for p in bf16 fp16 fp16-unfused bf16-flash fp16-flash bf16-out16 fp16-out16 bf16-res; do
		check "attention BERT $p shape $k" "$bin/slapo-run" "$pkg/bert/attn.$p.so" \
			--device cuda:0 "${w[@]}" --norm-tol 2e-2 --bench 2 -q
	done
	# --gpu-residual=epilogue on cuBLAS without cuBLASLt: the residual of
	# the GEMMs before each LayerNorm added by our bias kernel
	SLAPO_GEMM_NO_LT=1 check "attention BERT bf16-res shape $k, cuBLAS" "$bin/slapo-run" \
		"$pkg/bert/attn.bf16-res.so" --device cuda:0 "${w[@]}" --norm-tol 2e-2 -q
	for p in bf16 fp16; do
		SLAPO_CUDA_SM90A=0 SLAPO_ATT_SMALL_GRID=0 check \
			"attention BERT $p shape $k, mma.sync 128-query blocks" \
			"$bin/slapo-run" "$pkg/bert/attn.$p.so" --device cuda:0 "${w[@]}" \
			--norm-tol 2e-2 --bench 2 -q
		[ "$cc" = "9.0" ] && SLAPO_CUDA_SM90A=0 check \
			"attention BERT $p shape $k, mma.sync 64-query blocks" \
			"$bin/slapo-run" "$pkg/bert/attn.$p.so" --device cuda:0 "${w[@]}" \
			--norm-tol 2e-2 --bench 2 -q
	done
done
# a bool attention mask (true: attend) in the fused kernel, against the
# library's CPU path
for p in bf16 fp16; do
	check "bool-mask attention $p" "$bin/slapo-run" "$pkg/bert/sdpa_bool.$p.so" \
		--device cuda:0 --random-weights 1 --batch 2 --seq 70 --seed 3 \
		--compare "$pkg/bert/sdpa_bool.ref.st" --norm-tol 2e-2 -q
	one_step "bool-mask attention $p" "$pkg/bert/sdpa_bool.$p.so"
done
# the swapped-in attention runs as the fused kernel: one step for both
# products and the softmax in the profile
for p in bf16 fp16; do
	one_step "attention BERT $p-flash" "$pkg/bert/attn.$p-flash.so"
done
# at tf32 too (the f16 kernel between conversions of Q, K, V and O)
check "attention BERT tf32: one attention step" bash -c \
	'"$1" "$2" --device cuda:0 --random-weights 1 --batch 2 --seq 70 --profile |
	grep -E "^matmul\+FusedScaleMaskSoftmax_0\+matmul_1 "' _ "$bin/slapo-run" "$pkg/bert/attn.tf32.so"

unset SLAPO_GEMM_SPLIT_ROWS

# 2c. the Python package on the GPU (needs torch and safetensors there):
#     torch CUDA tensors in, logits out on the same GPU; numpy in and out
if python3 -c 'import torch, safetensors, numpy' 2>/dev/null; then
	check "python package on cuda:0" python3 "$pkg/py_cuda.py" "$pkg"
else
	echo "skip python package on cuda:0: no torch/safetensors/numpy for python3"
fi

# 3. bert-base: GPU vs the CPU path of the same library
base=(--device cuda:0 --random-weights 1 --batch 2 --seq 24 --seed 3
	--compare "$pkg/bert/base.ref.st" --bench 3 -q)
check "bert-base fp32 vs CPU" "$bin/slapo-run" "$pkg/bert/base.fp32.so" "${base[@]}" \
	--rtol 1e-3 --atol 2e-3
check "bert-base tf32 vs CPU" "$bin/slapo-run" "$pkg/bert/base.tf32.so" "${base[@]}" \
	--norm-tol 5e-3
check "bert-base bf16 vs CPU" "$bin/slapo-run" "$pkg/bert/base.bf16.so" "${base[@]}" \
	--norm-tol 2e-2

# 4. the zoo: HuggingFace's outputs (tests/zoo/fixtures) from the GPU, fp32,
#    with the CPU parity test's tolerance
for dir in "$pkg"/zoo/*/; do
	[ -d "$dir" ] || continue
	for so in "$dir"*.so; do
		check "zoo $(basename "$dir") $(basename "$so" .so)" "$bin/slapo-run" "$so" \
			--device cuda:0 --weights "$dir/model.safetensors" --inputs "$dir/inputs.safetensors" \
			--compare "$dir/outputs.safetensors" --rtol 1e-4 --atol 1e-5 -q
	done
done

#    and the base models in 16 bits against the same outputs (normwise)
for dir in "$pkg"/zoo16/*/; do
	[ -d "$dir" ] || continue
	f=$(basename "$dir")
	for p in bf16 fp16; do
		check "zoo $f $p" "$bin/slapo-run" "$dir$p.so" --device cuda:0 \
			--weights "$pkg/zoo/$f/model.safetensors" --inputs "$pkg/zoo/$f/inputs.safetensors" \
			--compare "$pkg/zoo/$f/outputs.safetensors" --norm-tol 2e-2 -q
	done
done

# 5. poisoning (last: it leaves this process's context unusable; own process)
ops=$(dirname "$(ls "$pkg"/ops/*/manifest 2>/dev/null | head -n 1)")
if [ -f "$ops/fused_layer_norm.so" ]; then
	check "sticky error poisons the session" "$bin/run_cases" "$ops" --device cuda:0 \
		--fault fused_layer_norm
else
	echo "skip sticky error: no op cases in this package"
fi

echo "GPU suite: $fails failure(s)"
exit $((fails > 0))
