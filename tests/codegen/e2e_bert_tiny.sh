#!/bin/bash
# e2e_bert_tiny.sh - the tiny BERT of bert_tiny.slapo (decompose + bias-GeLU
# fusion in every layer) compiled to a model library and compared with the
# reference interpreter (slapoc --interp) on the same random weights and
# inputs: through the C API (bert_fixtures check) and through slapo-run.
#
# usage: e2e_bert_tiny.sh SLAPOC SLAPO_RUN BERT_FIXTURES BERT_TINY.slapo [SLAPOC FLAGS...]
set -uo pipefail
slapoc=$1
run=$2
fix=$3
src=$4
shift 4
flags=("$@")
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
fails=0

step() { # step NAME COMMAND...: run, show the output on failure
	local name=$1
	shift
	if ! "$@" >"$dir/out" 2>&1; then
		echo "FAIL $name"
		sed 's/^/    /' "$dir/out"
		fails=$((fails + 1))
		return 1
	fi
	return 0
}

step compile "$slapoc" "$src" "${flags[@]}" -o "$dir/bert.so" || exit 1
for shape in "1 1" "2 7" "3 33" "1 64"; do
	set -- $shape
	tag="B=$1 S=$2"
	step "$tag: fixtures" "$fix" make "$dir/bert.so" "$dir/w.st" "$dir/in.st" "$1" "$2" 7 || continue
	step "$tag: interpreter" "$slapoc" "$src" --interp --weights "$dir/w.st" \
		--inputs "$dir/in.st" --outputs "$dir/ref.st" || continue
	if step "$tag: C API" "$fix" check "$dir/bert.so" "$dir/w.st" "$dir/in.st" "$dir/ref.st" 1e-4 1e-4; then
		echo "ok   $tag C API: $(cat "$dir/out")"
	fi
	if step "$tag: slapo-run" "$run" "$dir/bert.so" --weights "$dir/w.st" --inputs "$dir/in.st" \
		--compare "$dir/ref.st" --rtol 1e-4 --atol 1e-4; then
		echo "ok   $tag slapo-run: $(grep compare "$dir/out")"
	fi
done
exit $((fails > 0))
