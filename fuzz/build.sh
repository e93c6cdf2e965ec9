#!/usr/bin/env bash
# Build the libFuzzer targets into build-fuzz/ (clang-14, ASan + UBSan,
# coverage instrumentation of the whole compiler and runtime).
#
#   bash fuzz/build.sh            configure build-fuzz/ if needed, build the targets
#
# The targets land in build-fuzz/tests/fuzz/fuzz_{slapo,schedule,safetensors};
# fuzz/README.md says how to run them. Needs clang-14 and libclang-rt-14-dev
# (scripts/setup.sh installs both).
#
# Environment: SLAPO_FUZZ_BUILD  build directory (default: build-fuzz)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${SLAPO_FUZZ_BUILD:-build-fuzz}
cc=${CC:-clang-14}
cxx=${CXX:-clang++-14}

command -v "$cc" >/dev/null || { echo "fuzz/build.sh: $cc not found (apt install clang-14)" >&2; exit 1; }

if [ ! -f "$build/build.ninja" ]; then
	# -fsanitize=fuzzer-no-link: coverage for libFuzzer everywhere; the
	# targets add -fsanitize=fuzzer when linking (tests/fuzz/meson.build).
	# -fno-sanitize-recover: a UBSan report is a crash libFuzzer keeps.
	CC=$cc CXX=$cxx meson setup "$build" \
		-Dbuildtype=debugoptimized \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		-Dcpp_args="-fsanitize=fuzzer-no-link" >&2
fi

targets=(tests/fuzz/fuzz_slapo tests/fuzz/fuzz_schedule tests/fuzz/fuzz_replay_slapo
	tests/fuzz/fuzz_replay_schedule)
if [ -f runtime/meson.build ]; then
	targets+=(tests/fuzz/fuzz_safetensors tests/fuzz/fuzz_replay_safetensors)
fi
ninja -C "$build" "${targets[@]}" >&2
for t in "${targets[@]}"; do
	echo "$build/$t"
done
