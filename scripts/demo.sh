#!/usr/bin/env bash
# The Quick-start demo: set up and build slapoc, then compile the quick-start
# model and schedule (examples/quick-start.slapo), which prints what the
# schedule prints: the module tree, the traced graph, the matched subgraphs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
build=${SLAPO_BUILD:-build}

"$build/tools/slapoc" examples/quick-start.slapo
