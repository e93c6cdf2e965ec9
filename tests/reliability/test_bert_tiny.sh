#!/usr/bin/env bash
# The reliability tests (out-of-memory sweep, eight threads, free while
# running) on a tiny BERT compiled by `slapoc -o` from bert_tiny.slapo:
# the same contract as the fake model's, on generated code; the sweep and
# the threads also on the same model with bf16 logits (--output-dtype,
# which the runtime stages and rounds from the CPU code's f32).
#
# Skips (77) while slapoc has no code generator. Needs SLAPO_BUILD (set by
# tests/run.py) with tests/reliability built.
set -u
root=${SLAPO_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${SLAPO_BUILD:-$root/build}
cd "$root"

slapoc=$build/tools/slapoc
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
compile() { "$1" tests/reliability/bert_tiny.slapo -o "$tmp/bert_tiny.so" >"$tmp/log" 2>&1; }
if ! compile "$slapoc" && grep -q "without the code generator" "$tmp/log"; then
	# until tools/slapoc links the code generator: codegen/slapoc-cg
	slapoc=$build/codegen/slapoc-cg
	[ -x "$slapoc" ] || { echo "slapoc was built without the code generator"; exit 77; }
	compile "$slapoc"
fi
if [ ! -f "$tmp/bert_tiny.so" ]; then
	tail -n 20 "$tmp/log"
	echo "$slapoc could not compile tests/reliability/bert_tiny.slapo"
	exit 1
fi

if ! "$slapoc" tests/reliability/bert_tiny.slapo --precision=bf16 --output-dtype=bf16 \
	-o "$tmp/bert_tiny_bf16.so" >"$tmp/log" 2>&1; then
	tail -n 20 "$tmp/log"
	echo "$slapoc could not compile tests/reliability/bert_tiny.slapo with bf16 outputs"
	exit 1
fi

status=0
for run in "oom bert_tiny" "threads8 bert_tiny" "free_race bert_tiny" "oom bert_tiny_bf16" \
	"threads8 bert_tiny_bf16"; do
	set -- $run
	exe=$build/tests/reliability/test_rel_$1
	[ -x "$exe" ] || { echo "$exe is not built"; exit 1; }
	if ! "$exe" "$tmp/$2.so"; then
		echo "FAIL: test_rel_$1 on $2.so"
		status=1
	fi
done
exit $status
