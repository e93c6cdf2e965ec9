#!/bin/bash
# fake_bert.sh SLAPOC SLAPO_RUN BERT_FIXTURES FAKE_CUDA BERT.slapo [BATCH SEQ]:
# a small BERT through the whole CUDA path on tests/gpu/fake_cuda.c (no GPU
# needed), fp32 and bf16, against the reference interpreter: slapo-run with
# device tensors and with host tensors, CUDA graphs captured and replayed
# (--bench); bf16 logits (--output-dtype=bf16). Batch and sequence length default to 2 and 7. The fused
# attention kernel is inline PTX, which the emulator does not run: unfused.
set -uo pipefail
slapoc=$1 run=$2 fix=$3 fake=$4 src=$5 batch=${6:-2} seq=${7:-7}
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
export SLAPO_LIBCUDA=$fake SLAPO_LIBCUBLAS=$fake SLAPO_LIBCUBLASLT=$fake
fails=0
# report NAME STATUS: ok (with the comparison line) or FAIL (with the output)
report() {
	if [ "$2" = 0 ]; then
		echo "ok   $1: $(grep compare "$dir/out")"
	else
		echo "FAIL $1"
		sed 's/^/    /' "$dir/out"
		fails=$((fails + 1))
	fi
}
# refused NAME STATUS MESSAGE ARGS...: slapoc ARGS exits with STATUS,
# printing exactly MESSAGE
refused() {
	local name=$1 want_rc=$2 want=$3
	shift 3
	"$slapoc" "$src" "$@" -o "$dir/x.so" >"$dir/out" 2>&1
	local rc=$?
	if [ $rc = "$want_rc" ] && [ "$(cat "$dir/out")" = "$want" ]; then
		echo "ok   $name refused"
	else
		echo "FAIL $name: exit $rc, printed: $(cat "$dir/out")"
		fails=$((fails + 1))
	fi
}
for p in fp32 bf16; do
	"$slapoc" "$src" --gpu=on --precision=$p --gpu-attention=unfused -o "$dir/bert.$p.so" --gpu-emu="$dir/bert.$p.emu.so" || exit 1
done
"$fix" make "$dir/bert.fp32.so" "$dir/w.st" "$dir/in.st" "$batch" "$seq" 7 || exit 1
"$slapoc" "$src" --interp --weights "$dir/w.st" --inputs "$dir/in.st" --outputs "$dir/ref.st" || exit 1
for p in fp32 bf16; do
	tol=(--rtol 1e-4 --atol 1e-4)
	[ $p = bf16 ] && tol=(--norm-tol 2e-2)
	for io in device host; do
		SLAPO_EMU_KERNELS="$dir/bert.$p.emu.so" "$run" "$dir/bert.$p.so" --device cuda:0 \
			--io $io --weights "$dir/w.st" --inputs "$dir/in.st" --compare "$dir/ref.st" \
			"${tol[@]}" --bench 2 -q >"$dir/out" 2>&1
		report "$p $io" $?
	done
done
# --output-dtype=bf16: the logits in bf16, written so by the GPU code
# (device and host tensors) and converted from the CPU code's f32 (the
# same library on the CPU); the output file holds BF16
"$slapoc" "$src" --gpu=on --precision=bf16 --gpu-attention=unfused --output-dtype=bf16 \
	-o "$dir/o16.so" --gpu-emu="$dir/o16.emu.so" || exit 1
for dev in "cuda:0 --io device" "cuda:0 --io host" cpu; do
	# shellcheck disable=SC2086
	SLAPO_EMU_KERNELS="$dir/o16.emu.so" "$run" "$dir/o16.so" --device $dev \
		--weights "$dir/w.st" --inputs "$dir/in.st" --compare "$dir/ref.st" \
		--norm-tol 2e-2 --outputs "$dir/o16.st" --bench 2 -q >"$dir/out" 2>&1 &&
		head -c 200 "$dir/o16.st" | grep -q '"logits":{"dtype":"BF16"'
	report "bf16 outputs on $dev" $?
done
refused "--output-dtype=bf16 at fp32" 1 \
	"slapoc: error: outputs in bf16 need the GPU code in that precision (--precision=bf16)" \
	--precision=fp32 --output-dtype=bf16
# bf16: each GEMM before a bias + GeLU takes it as its cuBLASLt epilogue
# (one step, named for both; the LM head's transform too, whose bias the
# GEMM already adds: linear_N+gelu), and where cuBLASLt has no algorithm
# for that epilogue the fallback (cuBLAS, then our bias and GeLU kernels)
# computes the same
gelus=$(grep -c FusedBiasGeLU "$src")
for no in none 36; do
	FAKE_LT_NO_EPILOGUE=$no SLAPO_EMU_KERNELS="$dir/bert.bf16.emu.so" "$run" \
		"$dir/bert.bf16.so" --device cuda:0 --weights "$dir/w.st" --inputs "$dir/in.st" \
		--compare "$dir/ref.st" --norm-tol 2e-2 --profile >"$dir/out" 2>&1 &&
		{ [ "$gelus" = 0 ] || grep -q '^linear[_0-9]*+FusedBiasGeLU' "$dir/out"; } &&
		grep -q '^linear[_0-9]*+gelu ' "$dir/out"
	report "bf16 GeLU epilogue (no algorithm for: $no)" $?
done
# --gpu-residual=epilogue: the GEMMs before a bias + residual + LayerNorm
# add both (the bias epilogue, the residual as cuBLASLt's C input; where
# cuBLASLt has no algorithm for the bias epilogue, 4, our bias kernel adds
# the residual too), fp32 and bf16, with the same result; the default
# leaves them to the LayerNorm
if grep -q FusedBiasResidualLayerNorm "$src"; then
	for p in fp32 bf16; do
		"$slapoc" "$src" --gpu=on --precision=$p --gpu-attention=unfused \
			--gpu-residual=epilogue -o "$dir/res.so" --gpu-emu="$dir/res.emu.so" || exit 1
		for no in none 4; do
			FAKE_LT_NO_EPILOGUE=$no SLAPO_EMU_KERNELS="$dir/res.emu.so" "$run" \
				"$dir/res.so" --device cuda:0 --weights "$dir/w.st" --inputs "$dir/in.st" \
				--compare "$dir/ref.st" --norm-tol 2e-2 -q >"$dir/out" 2>&1 &&
				"$slapoc" "$src" --precision=$p --gpu-residual=epilogue --dump-after=gpu |
				grep -q 'epilogue: bias, residual' &&
				! "$slapoc" "$src" --precision=$p --dump-after=gpu | grep -q residual
			report "$p --gpu-residual=epilogue (no algorithm for: $no)" $?
		done
	done
fi
# cuBLASLt's answers timed (SLAPO_GEMM_TUNE=2: every GEMM): of three
# answers whose first is slow (FAKE_LT_SLOW_ALGO=0) every GEMM takes
# another, with the same result, each timed in the first run only (-v: a
# debug line a GEMM; as many after one run as after six eager ones); the
# default, 1, times only GEMMs bound by their arithmetic, which this
# model's are not; 0 times nothing
tuned() { # tuned TUNE BENCH...: the debug lines of the timed GEMMs
	SLAPO_GEMM_TUNE=$1 FAKE_LT_ALGOS=3 FAKE_LT_SLOW_ALGO=0 \
		SLAPO_EMU_KERNELS="$dir/bert.bf16.emu.so" "$run" "$dir/bert.bf16.so" --device cuda:0 \
		--weights "$dir/w.st" --inputs "$dir/in.st" --compare "$dir/ref.st" --norm-tol 2e-2 \
		"${@:2}" -v >"$dir/out" 2>&1 || return 2
	grep 'cuBLASLt algorithm' "$dir/out"
}
one=$(tuned 2) && six=$(SLAPO_CUDA_GRAPHS=0 tuned 2 --bench 3) &&
	[ -n "$one" ] && ! grep -q 'algorithm 0 of 3' <<<"$six" &&
	[ "$(wc -l <<<"$one")" = "$(wc -l <<<"$six")" ]
report "bf16 GEMM algorithms timed" $?
for tune in 1 0; do
	tuned $tune --bench 3 >/dev/null
	[ $? = 1 ]
	report "bf16 GEMM algorithms not timed (SLAPO_GEMM_TUNE=$tune)" $?
done
refused "--gpu-residual=gemm" 2 "slapoc: error: --gpu-residual expects layernorm or epilogue" \
	--gpu-residual=gemm
# --gpu-gelu=exact keeps the GeLU a kernel of its own (its own profile
# row), with the same result; a bad value is refused
if [ "$gelus" != 0 ]; then
	"$slapoc" "$src" --gpu=on --precision=bf16 --gpu-attention=unfused --gpu-gelu=exact \
		-o "$dir/exact.so" --gpu-emu="$dir/exact.emu.so" >"$dir/out" 2>&1 &&
		SLAPO_EMU_KERNELS="$dir/exact.emu.so" "$run" "$dir/exact.so" --device cuda:0 \
			--weights "$dir/w.st" --inputs "$dir/in.st" --compare "$dir/ref.st" \
			--norm-tol 2e-2 --profile >"$dir/out" 2>&1 &&
		grep -q '^FusedBiasGeLU_0 ' "$dir/out" && ! grep -q '+FusedBiasGeLU' "$dir/out"
	report "bf16 --gpu-gelu=exact" $?
	refused "--gpu-gelu=fast" 2 "slapoc: error: --gpu-gelu expects epilogue or exact" \
		--gpu-gelu=fast
fi
exit $((fails > 0))
