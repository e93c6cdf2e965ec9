#!/bin/bash
# sm90a_ptx.sh - the sm_90a module (Hopper's wgmma attention kernel) is
# made where it should be and nowhere else: bert_attn.slapo (head size 64)
# at bf16, fp16 and tf32 gets one, with PTX ISA 8.0 for sm_90a, the kernel
# (eight wgmma: four k-steps of scores, four of P V) and its proxy fence,
# the softmax prologue's scale and mask add contracted into one FMA a
# score, while its main module stays sm_80 without wgmma; head size 32
# (sdpa_bool.slapo) and fp32 (attention unfused) get none. Where ptxas is
# installed (CUDA_HOME, /usr/local/cuda), the module must assemble for
# sm_90a, spilling at most 32 bytes under its register cap (12 today: the
# cap of 128 that lets four blocks share an SM was measured faster than
# room for everything at three).
#
# usage: sm90a_ptx.sh SLAPOC SRCDIR
set -uo pipefail
slapoc=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
ptxas=${CUDA_HOME:-/usr/local/cuda}/bin/ptxas
[ -x "$ptxas" ] || ptxas=$(command -v ptxas || true)

for p in bf16 fp16 tf32; do
	out=$tmp/attn.$p.ptx
	"$slapoc" "$src/tests/gpu/bert_attn.slapo" --gpu=on --precision=$p -o "$tmp/a.so" \
		--ptx="$out" || { fail "$p: slapoc"; continue; }
	h=$out.sm90a
	if [ ! -f "$h" ]; then
		fail "$p: no sm_90a module"
		continue
	fi
	grep -qx '.version 8.0' "$h" || fail "$p: sm_90a module not PTX ISA 8.0"
	grep -qx '.target sm_90a' "$h" || fail "$p: sm_90a module not for sm_90a"
	n=$(grep -c 'wgmma.mma_async.sync.aligned.m64n64k16' "$h")
	[ "$n" = 8 ] || fail "$p: $n wgmma in the sm_90a module, not 8"
	grep -q 'fence.proxy.async.shared::cta' "$h" || fail "$p: no proxy fence"
	# the prologue's scale (1/8) and mask add as one FMA a score: 32 a
	# thread in each of the key loop's two paths (inside, past the end)
	n=$(grep -c 'fma.rn.f32 .*, 0f3E000000, ' "$h")
	[ "$n" = 64 ] || fail "$p: $n scale+mask FMAs in the sm_90a module, not 64"
	! grep -q 'mul.rn.f32 .*, 0f3E000000;' "$h" || fail "$p: the scale as a multiply"
	grep -q '^.visible .entry h0_attention(' "$h" || fail "$p: no h0_attention entry"
	grep -qx '.target sm_80' "$out" || fail "$p: main module not sm_80"
	! grep -q wgmma "$out" || fail "$p: wgmma in the main module"
	if [ -n "$ptxas" ]; then
		log=$("$ptxas" -arch=sm_90a -v "$h" -o "$tmp/h.cubin" 2>&1) ||
			fail "$p: ptxas rejects the sm_90a module: $log"
		spill=$(sed -n 's/.* \([0-9]*\) bytes spill stores.*/\1/p' <<<"$log" | head -n 1)
		[ -n "$spill" ] && [ "$spill" -le 32 ] ||
			fail "$p: the wgmma kernel spills ${spill:-?} bytes (at most 32): $log"
	fi
	echo "ok   $p: sm_90a module${ptxas:+ (assembled by ptxas)}"
done
"$slapoc" "$src/tests/gpu/sdpa_bool.slapo" --gpu=on --precision=bf16 -o "$tmp/b.so" \
	--ptx="$tmp/b.ptx" || fail "sdpa_bool: slapoc"
[ ! -e "$tmp/b.ptx.sm90a" ] || fail "head size 32 made an sm_90a module"
"$slapoc" "$src/tests/gpu/bert_attn.slapo" --gpu=on --precision=fp32 -o "$tmp/c.so" \
	--ptx="$tmp/c.ptx" || fail "fp32: slapoc"
[ ! -e "$tmp/c.ptx.sm90a" ] || fail "fp32 made an sm_90a module"
echo "sm90a_ptx: $fails failure(s)"
[ $fails = 0 ]
