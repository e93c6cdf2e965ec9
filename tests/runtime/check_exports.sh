#!/bin/bash
# check_exports.sh - a model library exports slapo_get_api and nothing
# else, and needs no runtime symbol from outside (all of libslapo_rt is
# inside it, hidden). Usage: check_exports.sh MODEL.so...
set -uo pipefail  # not -e: exit statuses are what we test
command -v nm >/dev/null 2>&1 || { echo "skip: no nm"; exit 77; }
status=0
for so in "$@"; do
	defined=$(nm -D --defined-only "$so" | awk '{print $3}' | sort | tr '\n' ' ')
	if [ "$defined" != "slapo_get_api " ]; then
		echo "FAIL: $so exports: $defined"
		status=1
	fi
	leaked=$(nm -D --undefined-only "$so" | awk '{print $2}' |
		grep -E '^(rt_|slapo_)' | tr '\n' ' ')
	if [ -n "$leaked" ]; then
		echo "FAIL: $so needs runtime symbols from outside: $leaked"
		status=1
	fi
done
[ $status = 0 ] && echo "exports ok: $*"
exit $status
