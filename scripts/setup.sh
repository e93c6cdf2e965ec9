#!/usr/bin/env bash
# Set up a Debian 12 machine to build slapoc, then build it.
#
# Idempotent: installs only the Debian packages that are missing (running
# `apt-get update` only then), configures the build directory only if it is not
# configured yet, and runs ninja (a no-op when nothing changed; ninja re-runs
# meson itself when a meson.build changed).  Stdout stays clean for the caller:
# progress goes to stderr.
#
# Environment: SLAPO_BUILD  build directory, relative to the repository root
#                           (default: build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${SLAPO_BUILD:-build}

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# quietly CMD...: run CMD with its output kept aside, shown only if it fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
quietly() {
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		die "failed (output above): $*"
	fi
}

# build-essential brings gcc and make; llvm-14-tools brings FileCheck;
# libclang-rt-14-dev brings the sanitizer and libFuzzer runtimes.
packages=(
	build-essential meson ninja-build flex bison pkg-config
	libopenblas-dev llvm-14-dev llvm-14-tools clang-14 libclang-rt-14-dev
	python3 python3-numpy
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null ||
			die "not root and no sudo; install these first: ${missing[*]}"
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	quietly "${sudo[@]}" apt-get update -q
	quietly "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -f "$build/build.ninja" ]; then
	if [ -f "$build/meson-private/coredata.dat" ]; then
		args=(--reconfigure)
	else
		args=()
	fi
	say "configuring $build/ (meson setup)"
	quietly meson setup "${args[@]}" "$build"
fi

say "building $build/"
ninja -C "$build" --quiet 2>&1 |
	sed -e '/^ninja: Entering directory/d' -e '/^ninja: no work to do/d' >&2 ||
	die "build failed (ninja -C $build)"
