#!/bin/bash
# golden_lower.sh - `slapoc --dump-after=lower` (the kernel graph and its
# memory plan) must print exactly the .lower.expected file beside each
# model, and `slapoc --dump-after=gpu --precision=P` (the GPU program and
# its device memory plan) exactly a .gpu-P.expected file.
# To accept a change: golden_lower.sh SLAPOC DIR --update
#
# usage: golden_lower.sh SLAPOC DIR [--update]
set -uo pipefail
slapoc=$1
dir=$2
fails=0

# check SRC EXPECTED WHAT ARGS...: compare slapoc ARGS SRC with EXPECTED
check() {
	local src=$1 exp=$2 what=$3
	shift 3
	local out
	out=$("$slapoc" "$@" "$src" 2>&1)
	if [ "${update:-}" = 1 ]; then
		printf '%s\n' "$out" >"$exp"
		echo "updated $exp"
	elif ! diff -u "$exp" <(printf '%s\n' "$out") >/tmp/golden_lower.$$ 2>&1; then
		echo "FAIL $(basename "$src"): $what differs from $(basename "$exp")"
		head -60 /tmp/golden_lower.$$ | sed 's/^/    /'
		fails=$((fails + 1))
	else
		echo "ok   $(basename "$exp")"
	fi
	rm -f /tmp/golden_lower.$$
}

[ "${3:-}" = --update ] && update=1
for src in "$dir"/*.slapo; do
	exp="${src%.slapo}.lower.expected"
	[ -f "$exp" ] && check "$src" "$exp" "the kernel graph" --dump-after=lower
	for exp in "${src%.slapo}".gpu-*.expected; do
		[ -f "$exp" ] || continue
		prec=${exp##*.gpu-}
		prec=${prec%.expected}
		check "$src" "$exp" "the GPU program" --dump-after=gpu --precision="$prec"
	done
done
exit $((fails > 0))
