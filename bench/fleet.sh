#!/usr/bin/env bash
# bench/fleet.sh - the fleet figure of `make bench` (issue 14 item 3,
# DESIGN §11; docs/BENCHMARKS.md "Fleet"). N daemons on this machine, each
# with its own mount, cache and config, open one cold blob at the same
# moment, per set-up:
#
#   direct  no tier: every node fetches from the origin (the baseline)
#   squid   every node reaches the origin through one Squid ([fetch] proxy)
#   slice   an nginx proxy_cache + slice tier as a template mirror
#           ([fetch] mirrors)
#
# Per set-up and run: the origin's bytes from its access log ÷ the blob
# size (target <= 1.05 with a tier), and the time until all N nodes have
# read the blob ÷ the time of one node alone through the same set-up, both
# cold (fresh tier cache, fresh node caches, page cache dropped; the
# origin's file read back in, as a remote origin serves from memory).
#
# Environment:
#   AF_BUILD        build directory holding artifactfs (make bench sets it)
#   FLEET_N         nodes (default 16)
#   FLEET_SIZE      blob size (default 256M)
#   FLEET_RUNS      runs per set-up (default 3)
#   FLEET_SETUPS    subset of: direct squid slice (default all three)
#   BENCH_OUT       results directory (default $AF_BUILD/bench)
#
# Needs root (FUSE mounts, drop_caches). Network: 127.0.0.1 only. Uses the
# integration tests' lib.sh for the world (origin nginx, Squid, the fleet),
# so every process is stopped by its PID and every mount unmounted at exit.
set -uo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
export AF_BUILD=${AF_BUILD:-$TOP/build}
NODES=${FLEET_N:-16}
FLEET_SIZE=${FLEET_SIZE:-256M}
FLEET_RUNS=${FLEET_RUNS:-3}
FLEET_SETUPS=${FLEET_SETUPS:-direct squid slice}
BENCH_OUT=${BENCH_OUT:-$AF_BUILD/bench}
# Release build: the sanitizer options of lib.sh do not apply.
TEST_NAME=fleet-bench
. "$TOP/tests/integration/lib.sh"

die() { printf 'bench/fleet: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (FUSE mounts, drop_caches)"
[ -x "$AF" ] || die "no $AF: run make first"
sh "$TOP/mk/deps.sh" nginx squid curl fuse3 iproute2 || die "deps"
case $FLEET_SIZE in
*[kK]) size=$(( ${FLEET_SIZE%?} * 1024 )) ;;
*[mM]) size=$(( ${FLEET_SIZE%?} * 1024 * 1024 )) ;;
*[gG]) size=$(( ${FLEET_SIZE%?} * 1024 * 1024 * 1024 )) ;;
*) size=$FLEET_SIZE ;;
esac

mkdir -p "$BENCH_OUT"
RAW=$BENCH_OUT/fleet-raw.txt
RES=$BENCH_OUT/fleet.txt
: >"$RAW"
af_world 8M
conf_set "$T/artifactfs.conf" fetch connections 8
conf_set "$T/artifactfs.conf" fetch low_speed_timeout 30s
cp "$T/artifactfs.conf" "$T/base.conf"
make_blob blob.bin "$size"
digest=$(register blob.bin)
want=${digest#sha256:}
echo "bench/fleet: $(nproc) CPUs; $NODES nodes; blob $FLEET_SIZE ($size bytes); $FLEET_RUNS runs; set-ups: $FLEET_SETUPS"

# tier_up SETUP: a cold tier and the node config that uses it.
tier_up() {
	cp "$T/base.conf" "$T/artifactfs.conf"
	case $1 in
	direct) ;;
	squid)
		rm -rf "$T/squid"
		start_squid || die "squid did not start"
		conf_set "$T/artifactfs.conf" fetch proxy "http://127.0.0.1:$SQUID_PORT"
		;;
	slice)
		rm -rf "$T/tier"
		start_slice_tier || die "the nginx slice tier did not start"
		mirror_blob blob.bin
		conf_set "$T/artifactfs.conf" fetch mirrors "http://127.0.0.1:$TIER_PORT/v2/vision/blobs/{digest}"
		;;
	*) die "unknown set-up $1" ;;
	esac
}

tier_down() {
	case $1 in
	squid) stop_squid ;;
	slice) stop_slice_tier ;;
	*) ;;
	esac
}

# one_run SETUP NODES RUN: a cold open of the blob by NODES nodes at once.
one_run() {
	local setup=$1 n=$2 r=$3 b0 b1 good i
	tier_up "$setup"
	fleet_up "$n" || die "fleet did not come up"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	cat "$T/www/blob.bin" >/dev/null
	b0=$(origin_bytes blob.bin)
	fleet_read_all "vision/blob.bin@$digest"
	b1=$(origin_bytes blob.bin)
	good=$(fleet_count_sum "$want")
	fleet_down || die "a node did not unmount cleanly"
	tier_down "$setup"
	for i in $(seq 1 "$n"); do rm -rf "$T/n$i/cache"; done
	[ "$good" = "$n" ] || die "$setup: only $good of $n nodes read the right bytes"
	echo "$setup.n$n.ms $r $FLEET_MS" >>"$RAW"
	echo "$setup.n$n.origin $r $(ratio $((b1 - b0)) "$size")" >>"$RAW"
	printf '  %-6s run %s: %2d node(s) %6d ms, origin sent %s copies\n' \
		"$setup" "$r" "$n" "$FLEET_MS" "$(ratio $((b1 - b0)) "$size")"
}

median() {
	awk -v k="$1" '$1 == k { print $3 }' "$RAW" | sort -g |
		awk '{ a[NR] = $1 } END {
			if (NR == 0) { print "nan"; exit }
			if (NR % 2) printf "%.3f\n", a[(NR + 1) / 2];
			else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

for r in $(seq 1 "$FLEET_RUNS"); do
	for setup in $FLEET_SETUPS; do
		one_run "$setup" 1 "$r"
		one_run "$setup" "$NODES" "$r"
		t1=$(awk -v k="$setup.n1.ms" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")
		tn=$(awk -v k="$setup.n$NODES.ms" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")
		echo "$setup.time_ratio $r $(ratio "$tn" "$t1")" >>"$RAW"
	done
done

{
	echo "# make bench fleet: $(date -u +%Y-%m-%dT%H:%M:%SZ); $NODES nodes, blob $size bytes, $FLEET_RUNS runs (medians)"
	echo "# setup origin_copies(N nodes) target time_all_N/time_one ms_one ms_all_N"
	for setup in $FLEET_SETUPS; do
		tgt="<=1.05"
		[ "$setup" = direct ] && tgt="(baseline)"
		echo "$setup $(median "$setup.n$NODES.origin") $tgt $(median "$setup.time_ratio") $(median "$setup.n1.ms") $(median "$setup.n$NODES.ms")"
	done
} >"$RES"
echo ""
echo "== fleet: $NODES nodes open one cold $FLEET_SIZE blob at once (median of $FLEET_RUNS runs)"
printf '%-8s %22s %-11s %20s %10s %10s\n' set-up "origin bytes / blob" target "time N / time one" "one (ms)" "N (ms)"
grep -v '^#' "$RES" | while read -r s o t q a b; do
	printf '%-8s %22s %-11s %20s %10.0f %10.0f\n' "$s" "$o" "$t" "$q" "$a" "$b"
done
echo "bench/fleet: results in $RES (raw: $RAW)"
