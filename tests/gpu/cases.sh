#!/bin/bash
# cases.sh GEN_CASES RUN_CASES DEVICE PRECISION: make the op cases at a
# precision (gen_cases), check their PTX with ptxas when it is installed,
# and run them on DEVICE (run_cases): cpu, cuda:N, or fake (the CUDA path
# on tests/gpu/fake_cuda.c, whose SLAPO_LIB* variables the caller sets).
# Exit 77 when DEVICE is a GPU and there is none (checked first).
set -uo pipefail
gen=$1 run=$2 device=$3 prec=$4
emu=()
if [ "$device" = fake ]; then
	device=cuda:0 emu=(--emu)
fi
if [ "$device" != cpu ]; then
	"$run" --probe --device "$device" || exit $?
fi
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
"$gen" "$dir" --precision "$prec" "${emu[@]}" || exit 1
if command -v ptxas >/dev/null 2>&1; then
	for f in "$dir"/*.ptx; do
		ptxas -arch=sm_90 "$f" -o "$dir/x.cubin" || { echo "FAIL ptxas $f"; exit 1; }
	done
	echo "ptxas: every kernel assembles for sm_90"
fi
case $prec in
fp32) tol=() ;;
tf32) tol=(--norm-tol 2e-3) ;;
*) tol=(--norm-tol 1e-2) ;;
esac
exec "$run" "$dir" --device "$device" "${emu[@]}" "${tol[@]}"
