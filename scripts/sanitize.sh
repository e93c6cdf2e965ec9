#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer
# (+ LeakSanitizer), or the runtime's tests under valgrind.
#
#   bash scripts/sanitize.sh [RUN.PY ARGS...]   configure and build build-asan/
#                                               (-Db_sanitize=address,undefined),
#                                               then tests/run.py --build build-asan
#   bash scripts/sanitize.sh --valgrind         build build-valgrind/ (no sanitizer)
#                                               and run meson's runtime suite under
#                                               valgrind --error-exitcode=1 --leak-check=full
#
# Any sanitizer report fails the test that made it: the options below make
# ASan, UBSan and LSan print a stack trace and exit non-zero at the first
# error. The output ends, like tests/run.py's, with `N passed, N failed`.
# docs/testing.md says what this covers and why scripts/test.sh does not
# run it.
#
# Environment: SLAPO_ASAN_BUILD     build directory (default: build-asan)
#              SLAPO_VALGRIND_BUILD build directory for --valgrind (default: build-valgrind)
#              CC                   compiler for a new build directory (gcc or clang)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'sanitize: %s\n' "$*" >&2; }

configure() { # DIR MESON-ARGS...
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		say "configuring $dir/"
		meson setup "$dir" -Dbuildtype=debugoptimized "$@" >&2
	fi
	say "building $dir/"
	ninja -C "$dir" --quiet >&2
}

if [ "${1:-}" = "--valgrind" ]; then
	shift
	build=${SLAPO_VALGRIND_BUILD:-build-valgrind}
	command -v valgrind >/dev/null || { say "valgrind is not installed (apt install valgrind)"; exit 1; }
	configure "$build"
	# OpenBLAS's threads hold buffers until exit, which valgrind counts as
	# "possibly lost"; definite and indirect leaks and every error fail.
	vg=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
		--show-leak-kinds=definite,indirect --track-origins=yes --quiet)
	status=0
	meson test -C "$build" --suite runtime --suite reliability --no-rebuild \
		--timeout-multiplier 20 --print-errorlogs --wrap="${vg[*]}" "$@" || status=1
	# The script tests wrap only bash that way: run slapo-run's checks
	# again with slapo-run itself under valgrind.
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	printf '#!/bin/sh\nexec %s "%s" "$@"\n' "${vg[*]}" "$PWD/$build/tools/slapo-run" >"$tmp/slapo-run"
	chmod +x "$tmp/slapo-run"
	say "tests/runtime/check_slapo_run.sh with slapo-run under valgrind"
	bash tests/runtime/check_slapo_run.sh "$tmp/slapo-run" "$build/tests/runtime/fake_mlp_a.so" \
		tests/runtime/make_fixtures.py "$(command -v python3)" >&2 || status=1
	exit $status
fi

build=${SLAPO_ASAN_BUILD:-build-asan}
# b_lundef=false: shared modules (model libraries) get the sanitizer
# runtime from the executable that loads them.
configure "$build" -Db_sanitize=address,undefined -Db_lundef=false

# halt_on_error: the first report ends the process with a non-zero status;
# detect_leaks: LeakSanitizer at exit; abort_on_error=0: exit (1), not
# SIGABRT, so that tests see a failure status rather than a signal.
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:print_stacktrace=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=print_suppressions=0
# Model libraries that `slapoc -o` links against the instrumented runtime
# get the sanitizer runtime from the program that loads them: no -z defs
# (codegen/link.c).
export SLAPO_LINK_ZDEFS=0
# For tests that load instrumented libraries into an uninstrumented program
# (Python through ctypes): what to put in LD_PRELOAD (with detect_leaks=0:
# the interpreter's own allocations are not ours).
cc_exe=$(python3 -c 'import json,sys; print([c["command"].split()[0] for c in json.load(open(sys.argv[1]))
	if c["file"].endswith(".c")][0])' "$build/compile_commands.json" 2>/dev/null || echo cc)
preload=
for lib in libasan.so libubsan.so; do
	p=$("$cc_exe" -print-file-name="$lib" 2>/dev/null || true)
	[ -n "$p" ] && [ "$p" != "$lib" ] && preload="$preload${preload:+ }$(readlink -f "$p")"
done
export SLAPO_SANITIZER_PRELOAD=$preload
exec python3 tests/run.py --build "$build" --no-build "$@"
