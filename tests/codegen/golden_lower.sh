#!/bin/bash
# golden_lower.sh - `slapoc --dump-after=lower` (the kernel graph and its
# memory plan) must print exactly the .expected file beside each model.
# To accept a change: golden_lower.sh SLAPOC DIR --update
#
# usage: golden_lower.sh SLAPOC DIR [--update]
set -uo pipefail
slapoc=$1
dir=$2
fails=0
for src in "$dir"/*.slapo; do
	exp="${src%.slapo}.lower.expected"
	[ -f "$exp" ] || continue
	out=$("$slapoc" --dump-after=lower "$src" 2>&1)
	if [ "${3:-}" = --update ]; then
		printf '%s\n' "$out" >"$exp"
		echo "updated $exp"
	elif ! diff -u "$exp" <(printf '%s\n' "$out") >/tmp/golden_lower.$$ 2>&1; then
		echo "FAIL $(basename "$src"): the kernel graph differs from $(basename "$exp")"
		head -60 /tmp/golden_lower.$$ | sed 's/^/    /'
		fails=$((fails + 1))
	else
		echo "ok   $(basename "$src")"
	fi
	rm -f /tmp/golden_lower.$$
done
exit $((fails > 0))
