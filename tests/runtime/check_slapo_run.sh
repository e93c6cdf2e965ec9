#!/bin/bash
# check_slapo_run.sh - slapo-run on the fake model, against fixtures made by
# an independent Python writer/reference (make_fixtures.py): what it
# prints, what it writes, its comparisons, and its errors (exit 1, one
# clear message, never a crash).
#
# usage: check_slapo_run.sh SLAPO_RUN MODEL.so make_fixtures.py PYTHON3
set -uo pipefail  # not -e: exit statuses are what we test
run=$1
model=$2
fixtures=$3
py=${4:-}
if [ -z "$py" ] || ! "$py" -c 'import json, math, struct' 2>/dev/null; then
	echo "skip: no python3"
	exit 77
fi
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
"$py" "$fixtures" "$dir" || exit 99
fails=0
name=

# t NAME WANT_EXIT COMMAND...: runs COMMAND, output to $dir/out
t() {
	name=$1
	want=$2
	shift 2
	"$@" >"$dir/out" 2>&1
	rc=$?
	if [ "$rc" != "$want" ]; then
		echo "FAIL $name: exit $rc, want $want"
		sed 's/^/    /' "$dir/out"
		fails=$((fails + 1))
	fi
}

# has TEXT / hasnt TEXT: the last command's output (does not) contain TEXT
has() {
	if ! grep -qF -- "$1" "$dir/out"; then
		echo "FAIL $name: output lacks: $1"
		sed 's/^/    /' "$dir/out"
		fails=$((fails + 1))
	fi
}
hasnt() {
	if grep -qF -- "$1" "$dir/out"; then
		echo "FAIL $name: output has: $1"
		fails=$((fails + 1))
	fi
}

W=$dir/weights.safetensors
t full 0 "$run" "$model" --weights "$W" --inputs "$dir/inputs.safetensors" \
	--compare "$dir/ref.safetensors" --outputs "$dir/out.safetensors"
has "model FakeMLP (slapoc 0.1.0-fake, ABI 1.2)"
has "  input_ids                    i64[B, S]  values in [0, 50)"
has "  attention_mask               i64[B, S]  default ones"
has "  scores                       f32[B, S, S]"
has "params: 11 tensors (2 tied), 1986 elements"
has "slapo: warning: $W: ignoring unexpected tensor 'mystery.weight'"
has "slapo: info: loaded 9 parameters of FakeMLP from 1 file(s): 2 legacy names renamed, 2 tied, 2 expected extras and 1 unexpected tensors ignored"
has "note: input 'token_type_ids' is not in the inputs file: filled with zeros"
hasnt "note: input 'attention_mask'"
has "output logits: f32[2, 5, 50]  min "
has "output hidden: f32[2, 5, 16]"
has "compare logits: max abs err"
has "compare hidden: max abs err"
has "compare scores: max abs err"
has "ok (rtol 0.0001 atol 1e-05)"
has "wrote 3 outputs to $dir/out.safetensors"
hasnt "FAIL"

t written 0 "$py" "$fixtures" --check "$dir/out.safetensors" "$dir/ref.safetensors"
has "check ok: hidden, logits, scores"

t compare-fail 1 "$run" "$model" -q --weights "$W" --inputs "$dir/inputs.safetensors" \
	--compare "$dir/ref_bad.safetensors"
has "compare logits: max abs err"
has "compare hidden: max abs err 0.5"
has "FAIL (1 of 160 elements out of rtol 0.0001 atol 1e-05; worst at flat index 7"
has "slapo-run: error: outputs differ from $dir/ref_bad.safetensors"
hasnt "model FakeMLP"

t loose-tolerance 0 "$run" "$model" -q --weights "$W" --inputs "$dir/inputs.safetensors" \
	--compare "$dir/ref_bad.safetensors" --atol 0.6

t random 0 "$run" "$model" --random-weights 7 --batch 3 --seq 4 --bench 5 --threads 1
has "note: input 'input_ids' random in [0, 50)"
has "note: input 'token_type_ids' filled with zeros"
has "note: input 'attention_mask' filled with ones"
has "output logits: f32[3, 4, 50]"
has "bench: 5 runs after 3 warm-up: median "
has "slapo: info: initialised the 11 parameters of FakeMLP at random (seed 7)"

t dim 0 "$run" "$model" -q --random-weights 7 --dim B=1 --dim S=2
t seq-unknown 1 "$run" "$model" --random-weights 7 --batch 2
has "slapo-run: error: cannot make input 'input_ids': dim S is unknown (give --dim S=N or --seq)"
t seq-too-long 1 "$run" "$model" --random-weights 7 --batch 2 --seq 65
has "S = 65 is outside the model's range [1, 64]"
t no-weights 1 "$run" "$model" --batch 1 --seq 1
has "slapo-run: error: no weights: give --weights FILE or --random-weights SEED"
t missing 1 "$run" "$model" --weights "$dir/weights_missing.safetensors" --batch 1 --seq 1
has "slapo-run: error: cannot load the weights: SLAPO_MISSING_PARAMS: 1 of 9 parameters of FakeMLP are missing from $dir/weights_missing.safetensors: 'fc2.bias'"
t lfs 1 "$run" "$model" --weights "$dir/lfs.safetensors" --batch 1 --seq 1
has "SLAPO_FORMAT: $dir/lfs.safetensors is a git-lfs pointer file"
t truncated 1 "$run" "$model" --weights "$dir/truncated.safetensors" --batch 1 --seq 1
has "MetadataIncompleteBuffer: the file is truncated"
t cuda 1 "$run" "$model" --device cuda:0 --random-weights 1 --batch 1 --seq 1
has "SLAPO_UNSUPPORTED: model FakeMLP was compiled without CUDA code"
t no-model 1 "$run" "$dir/nope.so" --random-weights 1
has "slapo-run: error: cannot load $dir/nope.so"
t not-a-model 1 "$run" "$W" --random-weights 1
has "slapo-run: error: cannot load $W"
t bad-option 1 "$run" "$model" --frobnicate
has "unknown option --frobnicate"
t bad-number 1 "$run" "$model" --random-weights 1 --bench zero
has "--bench takes a positive integer"
t no-inputs-file 1 "$run" "$model" --random-weights 1 --inputs "$dir/nope.safetensors"
has "cannot open $dir/nope.safetensors"
t help 0 "$run" --help
has "usage: slapo-run MODEL.so [options]"

if [ "$fails" != 0 ]; then
	echo "test_slapo_run: $fails check(s) failed"
	exit 1
fi
echo "test_slapo_run: all checks passed"
