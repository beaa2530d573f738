#!/usr/bin/env bash
# Runs every integration test (tests/integration/t_*.sh), each in its own
# world, and prints one closing tally. Needs root and /dev/fuse. A test
# that exits 77 could not run at all (it printed "SKIP: why", e.g. the npm
# registry is unreachable for its emulator): counted as skipped, never as
# passed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export AF_BUILD=${AF_BUILD:-$here/../../build}
pass=0; fail=0; skip=0; failed=""; skipped=""
only=${AF_TESTS:-}
for t in "$here"/t_*.sh; do
	name=$(basename "$t" .sh)
	if [ -n "$only" ] && ! echo " $only " | grep -q " $name "; then continue; fi
	echo "== $name"
	start=$(date +%s)
	timeout --kill-after=10 600 bash "$t"
	rc=$?
	if [ "$rc" -eq 0 ]; then
		pass=$((pass + 1))
	elif [ "$rc" -eq 77 ]; then
		skip=$((skip + 1)); skipped="$skipped $name"
	else
		fail=$((fail + 1)); failed="$failed $name"
	fi
	echo "   ($(( $(date +%s) - start )) s)"
done
[ -n "$skipped" ] && echo "skipped:$skipped"
[ -n "$failed" ] && echo "failed:$failed"
echo "integration: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
