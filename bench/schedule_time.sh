#!/usr/bin/env bash
# Times slapoc running the quick start's schedule on bert-large (module
# tree of 24 layers, decompose, trace, find, fuse), as a benchmark rather
# than a test: prints the median, min and max wall time of N runs.
# Budget: under 1 s on the 2-core build machine.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SLAPO_BUILD:-build}
n=${1:-21}
times=()
for _ in $(seq "$n"); do
	s=$(date +%s%N)
	"$build/tools/slapoc" examples/quick-start.slapo >/dev/null
	e=$(date +%s%N)
	times+=($(( (e - s) / 1000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
awk -v n="$n" -v med="${sorted[$((n / 2))]}" -v lo="${sorted[0]}" -v hi="${sorted[$((n - 1))]}" 'BEGIN {
	printf "slapoc examples/quick-start.slapo (bert-large), %d runs: median %.1f ms, min %.1f ms, max %.1f ms (budget 1000 ms)\n", n, med / 1000, lo / 1000, hi / 1000 }'
