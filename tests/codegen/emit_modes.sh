#!/bin/bash
# emit_modes.sh - slapoc's code generation options: --emit=llvm|asm|obj
# write what they say, --cpu=x86-64-v3 makes a library that runs and
# agrees with the host build, the library exports slapo_get_api only, and
# a missing runtime archive is a clear error.
#
# usage: emit_modes.sh SLAPOC SLAPO_RUN MODEL.slapo
set -uo pipefail
slapoc=$1
run=$2
src=$3
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
fails=0
check() { # check NAME CONDITION...
	local name=$1
	shift
	if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}

"$slapoc" "$src" -o "$dir/m.ll" --emit=llvm
check "emit=llvm: kernels and the descriptor" grep -q "define internal void @k" "$dir/m.ll"
check "emit=llvm: slapo_model_desc is hidden" grep -q "@slapo_model_desc = hidden .*constant" "$dir/m.ll"
"$slapoc" "$src" -o "$dir/m.s" --emit=asm
check "emit=asm: assembly" grep -q "slapo_forward" "$dir/m.s"
"$slapoc" "$src" -o "$dir/m.o" --emit=obj
check "emit=obj: an object defining slapo_model_desc" \
	bash -c "nm '$dir/m.o' | grep -q ' [DdRr] slapo_model_desc'"
"$slapoc" "$src" -o "$dir/host.so"
check "so: exports slapo_get_api only" \
	bash -c "[ \"\$(nm -D --defined-only '$dir/host.so' | awk '{print \$3}')\" = slapo_get_api ]"
if grep -q avx2 /proc/cpuinfo; then
	"$slapoc" "$src" -o "$dir/v3.so" --cpu=x86-64-v3
	"$run" "$dir/host.so" --random-weights 3 --batch 2 --seq 9 --outputs "$dir/host.st" -q
	check "cpu=x86-64-v3: same outputs as the host build" \
		"$run" "$dir/v3.so" --random-weights 3 --batch 2 --seq 9 --compare "$dir/host.st" \
		--rtol 1e-5 --atol 1e-6 -q
fi
out=$(SLAPO_RT_LIB=/nonexistent/libslapo_rt.a "$slapoc" "$src" -o "$dir/x.so" 2>&1)
rc=$?
check "missing runtime archive: exit 1" [ "$rc" = 1 ]
check "missing runtime archive: the linker's error is reported" \
	bash -c "printf '%s' \"\$1\" | grep -q 'linking'" _ "$out"
exit $((fails > 0))
