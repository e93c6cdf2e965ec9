#!/bin/bash
# suite.sh BUILD RUN_CASES: the whole GPU test suite on this machine's GPU
# (exit 77 without one): a package made from BUILD (make_pkg.sh, without
# the benchmark's libraries), then run_gpu_tests.sh on it.
set -uo pipefail
build=$1 run=$2
"$run" --probe --device cuda:0 || exit $?
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
here=$(dirname "${BASH_SOURCE[0]}")
SLAPO_PKG_NO_BENCH=1 bash "$here/make_pkg.sh" "$build" "$dir/pkg" || exit 1
exec bash "$dir/pkg/run_gpu_tests.sh" "$dir/pkg"
