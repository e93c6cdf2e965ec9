#!/usr/bin/env bash
# The Quick-start demo: set up and build slapoc, then
#  1. run the user's quick start (examples/quick-start.slapo), which prints
#     what the schedule prints: the module tree, the traced graph, the
#     matched subgraphs, the fused graph;
#  2. compile BERT-base with its schedule (examples/bert-base.slapo) into a
#     model library, and run it with slapo-run on random weights, batch 1,
#     sequence 128: its inputs, outputs, a summary of the logits and the
#     forward's timing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
build=${SLAPO_BUILD:-build}

"$build/tools/slapoc" examples/quick-start.slapo

echo
echo "== slapoc examples/bert-base.slapo -o $build/bert-base.so"
"$build/tools/slapoc" examples/bert-base.slapo -o "$build/bert-base.so"
echo "== slapo-run $build/bert-base.so --random-weights 1 --batch 1 --seq 128 --bench 10"
"$build/tools/slapo-run" "$build/bert-base.so" --random-weights 1 --batch 1 --seq 128 --bench 10
