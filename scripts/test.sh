#!/usr/bin/env bash
# Set up and build slapoc (scripts/setup.sh), then run every test suite (tests/run.py).
# Arguments go to tests/run.py: `bash scripts/test.sh -k golden -v`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
build=${SLAPO_BUILD:-build}

exec python3 tests/run.py --build "$build" --no-build "$@"
