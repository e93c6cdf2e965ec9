#!/usr/bin/env bash
# Set up and build slapoc (scripts/setup.sh), then run every test suite (tests/run.py).
# Arguments go to tests/run.py: `bash scripts/test.sh -k golden -v`.
#
# SLAPO_SANITIZE=1 runs the same suites against the ASan+UBSan build instead
# (scripts/sanitize.sh, build-asan/); docs/testing.md says why that is a
# separate run rather than a step of this one.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
if [ "${SLAPO_SANITIZE:-0}" = 1 ]; then
	exec bash scripts/sanitize.sh "$@"
fi
build=${SLAPO_BUILD:-build}

exec python3 tests/run.py --build "$build" --no-build "$@"
