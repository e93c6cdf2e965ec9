#!/bin/bash
# make_pkg.sh BUILD OUT: everything the GPU test suite and the GPU benchmark
# need, made where slapoc runs (LLVM, CUDA headers not needed), for a GPU
# machine that has only the NVIDIA driver, cuBLAS and (for the benchmark)
# PyTorch: run OUT/run_gpu_tests.sh there (docs/gpu.md).
#
#   OUT/bin/            slapo-run, run_cases (need libc only)
#   OUT/ops/P/          every op case at precision P (fp32, tf32, bf16):
#                       model libraries, inputs, interpreter references
#   OUT/bert/           tiny BERT (interpreter references at 4 shapes), the
#                       attention BERT of bert_attn.slapo (head size 64, 5
#                       shapes) and bert-base (CPU-path references) at each
#                       precision
#   OUT/zoo/F/          each zoo fixture F of tests/zoo/fixtures (HF weights,
#                       inputs and outputs) and its models compiled for CUDA
#   OUT/zoo16/F/        the base models (F = *Model) at bf16 and fp16
#   OUT/bench/          bert-large libraries for bench/gpu_bert.py (bf16 with
#                       bf16 logits, tf32, fp32; bf16 also with f32 logits
#                       and with --gpu-residual=epilogue)
#   OUT/run_gpu_tests.sh, OUT/py_cuda.py, OUT/gpu_bert.py, OUT/gpu_memory.py
# Environment: SLAPO_PKG_NO_BENCH=1 leaves bench/ out.
set -euo pipefail
build=$(cd "$1" && pwd)
out=$2
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
say() { printf 'make_pkg: %s\n' "$*" >&2; }

# slapoc with the code generator: tools/slapoc once it links codegen,
# until then codegen/slapoc-cg
slapoc=$build/codegen/slapoc-cg
[ -x "$slapoc" ] || slapoc=$build/tools/slapoc
run=$build/tools/slapo-run
[ -x "$run" ] || run=$build/runtime/slapo-run
export SLAPO_RT_LIB=$build/runtime/libslapo_rt.a
rm -rf "$out"
mkdir -p "$out/bin" "$out/ops" "$out/bert" "$out/zoo" "$out/zoo16" "$out/bench"
cp "$run" "$build/tests/gpu/run_cases" "$out/bin/"
strip "$out/bin/"* 2>/dev/null || true
cp "$src/tests/gpu/run_gpu_tests.sh" "$src/tests/gpu/py_cuda.py" "$src/bench/gpu_bert.py" \
	"$src/bench/gpu_memory.py" "$out/"
cp -r "$src/python" "$out/python" # bench/gpu_bert.py --memory loads the library in-process

for p in fp32 tf32 bf16 fp16; do
	say "op cases ($p)"
	"$build/tests/gpu/gen_cases" "$out/ops/$p" --precision "$p" >/dev/null
	rm -f "$out/ops/$p"/*.ptx
	# the data do not depend on the precision: one copy (hard links)
	if [ "$p" != fp32 ]; then
		for f in "$out/ops/$p"/*.safetensors; do
			g=$out/ops/fp32/${f##*/}
			cmp -s "$f" "$g" && ln -f "$g" "$f"
		done
	fi
done

fix=$build/tests/codegen/bert_fixtures
# fixtures NAME SRC SEED "B S"...: weights, inputs and interpreter outputs
# bert/NAME.{w,in,ref}.K.st for each shape K (NAME.fp32.so made first)
fixtures() {
	local name=$1 src=$2 seed=$3 k=0
	shift 3
	for shape in "$@"; do
		set -- $shape
		"$fix" make "$out/bert/$name.fp32.so" "$out/bert/$name.w.$k.st" \
			"$out/bert/$name.in.$k.st" "$1" "$2" "$seed"
		"$slapoc" "$src" --interp --weights "$out/bert/$name.w.$k.st" \
			--inputs "$out/bert/$name.in.$k.st" --outputs "$out/bert/$name.ref.$k.st"
		k=$((k + 1))
	done
}

say "tiny BERT"
tiny=$src/tests/codegen/bert_tiny.slapo
for p in fp32 bf16; do
	"$slapoc" "$tiny" --gpu=on --precision="$p" -o "$out/bert/tiny.$p.so"
done
fixtures tiny "$tiny" 7 "1 1" "2 7" "3 33" "2 64"

say "attention BERT (the fused attention kernel)"
attn=$src/tests/gpu/bert_attn.slapo
for p in fp32 tf32 bf16 fp16; do
	"$slapoc" "$attn" --gpu=on --precision="$p" -o "$out/bert/attn.$p.so"
done
"$slapoc" "$attn" --gpu=on --precision=fp16 --gpu-attention=unfused -o "$out/bert/attn.fp16-unfused.so"
"$slapoc" "$attn" --gpu=on --precision=bf16 --output-dtype=bf16 -o "$out/bert/attn.bf16-out16.so"
"$slapoc" "$attn" --gpu=on --precision=bf16 --gpu-residual=epilogue -o "$out/bert/attn.bf16-res.so"
"$slapoc" "$attn" --gpu=on --precision=fp16 --output-dtype=f16 -o "$out/bert/attn.fp16-out16.so"
# a bool attention mask through the fused kernel, against the library's
# own CPU path
for p in bf16 fp16; do
	"$slapoc" "$src/tests/gpu/sdpa_bool.slapo" --gpu=on --precision="$p" -o "$out/bert/sdpa_bool.$p.so"
done
OPENBLAS_NUM_THREADS=1 "$run" "$out/bert/sdpa_bool.bf16.so" --random-weights 1 \
	--batch 2 --seq 70 --seed 3 --outputs "$out/bert/sdpa_bool.ref.st" -q >/dev/null
# the same model with attention swapped in by replace() (checked against
# the same references)
for p in bf16 fp16; do
	"$slapoc" "$src/tests/gpu/bert_attn_flash.slapo" --gpu=on --precision="$p" \
		-o "$out/bert/attn.$p-flash.so"
done
fixtures attn "$attn" 11 "1 1" "2 7" "3 64" "2 70" "2 150"

say "bert-base (CPU reference)"
for p in fp32 tf32 bf16; do
	"$slapoc" "$src/examples/bert-base.slapo" --gpu=on --precision="$p" -o "$out/bert/base.$p.so"
done
OPENBLAS_NUM_THREADS=1 "$run" "$out/bert/base.fp32.so" --random-weights 1 \
	--batch 2 --seq 24 --seed 3 --outputs "$out/bert/base.ref.st" -q >/dev/null

say "zoo (HuggingFace fixtures)"
# each fixture with the model files tests/zoo/test_parity.py pairs it with
python3 -c 'import sys; sys.path.insert(0, sys.argv[1])
from test_parity import CASES
for fixture, files in CASES: print(fixture, *files)' "$src/tests/zoo" |
	while read -r fixture models; do
		mkdir -p "$out/zoo/$fixture"
		cp "$src/tests/zoo/fixtures/$fixture"/{model,inputs,outputs}.safetensors "$out/zoo/$fixture/"
		for m in $models; do
			"$slapoc" "$src/tests/golden/zoo/$m" --gpu=on -o "$out/zoo/$fixture/${m%.slapo}.so" >/dev/null
		done
		# the base models also in 16 bits (zoo16/: run against the same
		# outputs, normwise)
		case $fixture in *LMHeadModel) ;; *Model)
			mkdir -p "$out/zoo16/$fixture"
			for p in bf16 fp16; do
				"$slapoc" "$src/tests/golden/zoo/${models%% *}" --gpu=on --precision=$p \
					-o "$out/zoo16/$fixture/$p.so" >/dev/null
			done ;;
		esac
	done

if [ "${SLAPO_PKG_NO_BENCH:-0}" != 1 ]; then
	say "bert-large"
	# bf16 with bf16 logits (as PyTorch's bf16 model gives)
	"$slapoc" "$src/examples/bert-large.slapo" --gpu=on --precision=bf16 --output-dtype=bf16 \
		-o "$out/bench/bert-large.bf16.so"
	for p in tf32 fp32; do
		"$slapoc" "$src/examples/bert-large.slapo" --gpu=on --precision="$p" -o "$out/bench/bert-large.$p.so"
	done
	"$slapoc" "$src/examples/bert-large.slapo" --gpu=on --precision=tf32 --gpu-attention=unfused \
		-o "$out/bench/bert-large.tf32-unfused.so"
	# the same with f32 logits, and with bias and residual added by the
	# GEMMs before the LayerNorms, for comparison
	"$slapoc" "$src/examples/bert-large.slapo" --gpu=on --precision=bf16 \
		-o "$out/bench/bert-large.bf16-f32out.so"
	"$slapoc" "$src/examples/bert-large.slapo" --gpu=on --precision=bf16 --output-dtype=bf16 \
		--gpu-residual=epilogue -o "$out/bench/bert-large.bf16-res.so"
fi
strip --strip-unneeded "$out"/ops/*/*.so "$out"/bert/*.so "$out"/zoo/*/*.so "$out"/zoo16/*/*.so "$out"/bench/*.so 2>/dev/null || true
du -sh "$out" >&2
