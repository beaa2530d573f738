#!/usr/bin/env bash
# Runs every integration test (tests/integration/t_*.sh), each in its own
# world, and prints one closing tally. Needs root and /dev/fuse.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export AF_BUILD=${AF_BUILD:-$here/../../build}
pass=0; fail=0; failed=""
only=${AF_TESTS:-}
for t in "$here"/t_*.sh; do
	name=$(basename "$t" .sh)
	if [ -n "$only" ] && ! echo " $only " | grep -q " $name "; then continue; fi
	echo "== $name"
	start=$(date +%s)
	if timeout --kill-after=10 600 bash "$t"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1)); failed="$failed $name"
	fi
	echo "   ($(( $(date +%s) - start )) s)"
done
[ -n "$failed" ] && echo "failed:$failed"
echo "integration: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
