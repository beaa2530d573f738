#!/bin/sh
# mk/fuzz-run.sh SECONDS TARGET... - runs each libFuzzer target of
# build/fuzz/ for SECONDS over its seed corpus (tests/fuzz/corpus/NAME,
# read only) and its own work corpus (build/fuzz/work/fuzz_NAME, where new
# inputs go), and prints one line per target: runs, executions per second
# and the coverage reached (libFuzzer's cov: edges and ft: features).
# A crash stops everything with the reproducer's path and the log's tail:
# make it a regression test (its input goes into the seed corpus).
set -u
secs=$1
shift
for f in "$@"; do
	n=$(basename "$f" .c)
	c=tests/fuzz/corpus/${n#fuzz_}
	mkdir -p "build/fuzz/work/$n"
	if ! "build/fuzz/$n" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="build/fuzz/$n-" "build/fuzz/work/$n" "$c" \
		>"build/fuzz/$n.log" 2>&1; then
		echo "FUZZ FAILED: $n (build/fuzz/$n.log)"
		tail -n 30 "build/fuzz/$n.log"
		exit 1
	fi
	awk -v n="$n" '
		/^#[0-9]+/ && / cov: / {
			for (i = 1; i <= NF; i++) {
				if ($i == "cov:") cov = $(i + 1)
				if ($i == "ft:") ft = $(i + 1)
				if ($i == "corp:") corp = $(i + 1)
			}
		}
		/^stat::number_of_executed_units:/ { runs = $2 }
		/^stat::average_exec_per_sec:/ { eps = $2 }
		END {
			printf "  fuzz    %-20s %9s runs %7s exec/s  cov: %s ft: %s corpus: %s, no crash\n",
				n, runs, eps, cov, ft, corp
		}' "build/fuzz/$n.log"
done
