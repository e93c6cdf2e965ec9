#!/usr/bin/env bash
# Run one fuzz target with the options the campaigns use.
#
#   bash fuzz/run.sh TARGET [RUNS] [WORKERS]      TARGET: slapo, schedule or safetensors
#
# Builds the targets first (fuzz/build.sh). The working corpus is
# build-fuzz/corpus/TARGET/ (created from fuzz/corpus/TARGET/, kept between
# runs); crashes, leaks and timeouts are written to build-fuzz/findings/TARGET/.
# RUNS (default 1000000) is the number of inputs per worker (-1: no limit,
# with FUZZ_ARGS=-max_total_time=SECONDS); WORKERS
# (default 1) processes share the corpus. libFuzzer's final statistics
# (executions, edge coverage `cov:`) end each worker's log,
# build-fuzz/fuzz-TARGET-N.log.
#
# Environment: SLAPO_FUZZ_BUILD  build directory (default: build-fuzz)
#              FUZZ_ARGS         more libFuzzer options (e.g. -max_total_time=600)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=${1:?usage: fuzz/run.sh slapo|schedule|safetensors [RUNS] [WORKERS]}
runs=${2:-1000000}
workers=${3:-1}
build=${SLAPO_FUZZ_BUILD:-build-fuzz}

case $target in
slapo) opts=(-dict=fuzz/slapo.dict -max_len=8192 -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=2048) ;;
schedule) opts=(-max_len=256 -timeout=30 -rss_limit_mb=3072) ;;
safetensors) opts=(-dict=fuzz/safetensors.dict -max_len=65536 -timeout=10 -rss_limit_mb=2048) ;;
*) echo "fuzz/run.sh: unknown target '$target'" >&2; exit 2 ;;
esac

log=$(mktemp)
trap 'rm -f "$log"' EXIT
bash fuzz/build.sh >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
corpus=$build/corpus/$target
findings=$build/findings/$target
mkdir -p "$corpus" "$findings"
cp -n fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true

pids=()
for ((w = 0; w < workers; w++)); do
	# shellcheck disable=SC2086
	"$build/tests/fuzz/fuzz_$target" "${opts[@]}" -runs="$runs" -seed=$((w + 1)) \
		-print_final_stats=1 -artifact_prefix="$findings/" ${FUZZ_ARGS:-} \
		"$corpus" >"$build/fuzz-$target-$w.log" 2>&1 &
	pids+=($!)
done
status=0
for p in "${pids[@]}"; do
	wait "$p" || status=1
done
for ((w = 0; w < workers; w++)); do
	echo "== worker $w: $build/fuzz-$target-$w.log"
	grep -E '^#[0-9]+ +DONE|^stat::|ERROR|==[0-9]+== ' "$build/fuzz-$target-$w.log" | tail -n 8 || true
done
ls "$findings"
exit $status
