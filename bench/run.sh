#!/usr/bin/env bash
# bench/run.sh - `make bench` (issues 3 item 7 and 4 item 4; docs/BENCHMARKS.md).
#
# Starts nginx on 127.0.0.1 serving one random blob and measures artifactfs
# side by side with the tools a user would pick instead. Every figure is a
# ratio: each run measures every contender of a figure once (the order
# alternates run by run), the ratio is taken within the run, and the figure
# is the median over the runs. Absolute medians are printed alongside, never
# as the verdict.
#
# Environment:
#   AF_BUILD          build directory holding artifactfs (make bench sets it)
#   BENCH_SIZE        blob size, e.g. 2G (default), 256M, 512K
#   BENCH_RUNS        runs per figure (default 3)
#   BENCH_FIO_SECS    seconds per fio job (default 3)
#   BENCH_TMP         where the work directory goes (default /var/tmp)
#   BENCH_OUT         results directory (default $AF_BUILD/bench)
#   BENCH_SERVER      hot (default): after the page cache is dropped the
#                     served file is read back into it, so nginx serves from
#                     memory like a remote server would and only the client
#                     side is cold; cold: the server reads the disk too
#   BENCH_ONLY        space-separated subset of: cold warm fio fanout mem
#                     shards attest s3 control (bench/control.sh: 100,000
#                     registrations from a control plane; knobs CP_RUNS,
#                     CP_POLLS, CP_TOTAL, CP_PROJECTS, CP_BIG) fleet
#                     (bench/fleet.sh: N daemons
#                     behind a cache tier, its own world and knobs FLEET_N,
#                     FLEET_SIZE, FLEET_RUNS, FLEET_SETUPS) crash (the
#                     SIGKILL soak: tests/integration/t_crash.sh repeated
#                     CRASH_ROUNDS times, default 10, ~68 kills each, with a
#                     build that has the test hooks in build/hooks)
#   BENCH_S3_SIZE     blob size of the s3 figure (default 256M: s3rver is a
#                     node.js emulator; its own speed bounds both contenders)
#   BENCH_COLD        contenders of the cold figures (default: af af_off
#                     curl curl_sha curl_sync rclone httpdirfs; af_off is
#                     artifactfs with passthrough off)
#   BENCH_AF_OLD      another build's artifactfs binary: contenders af_old
#                     and af_old_off in BENCH_COLD run it side by side
#   BENCH_SHARDS      shards opened at once (default 8)
#   BENCH_SHARD_SIZE  size of each (default 256M)
#   BENCH_CPUS        run everything (daemons, nginx, curl, readers) on
#                     these CPUs only (taskset -c LIST, e.g. 0 or 0,1);
#                     results then go to $AF_BUILD/bench-cpus-LIST
#   BENCH_PERF=1      perf record -g of the daemon during the first cold
#                     fetch, into $BENCH_OUT/perf-cold.data; BENCH_PERF=trace:
#                     strace -f -T of the blocking calls (pread64,
#                     fdatasync, fsync, msync, futex) into
#                     $BENCH_OUT/strace-cold.txt, CPU per thread into
#                     $BENCH_OUT/threads-cold.txt
#   BENCH_KEEP=1      keep the work directory
#
# Needs root (drop_caches, FUSE mounts, passthrough). Network: 127.0.0.1 only.
# Every process it starts is stopped by its PID; every mount unmounted by the
# EXIT trap, also on failure or Ctrl-C.

set -euo pipefail
export LC_ALL=C

# BENCH_CPUS: the whole bench, every process it starts included, under
# taskset (issue 16 item 5: how each figure scales with the cores).
if [ -n "${BENCH_CPUS:-}" ] && [ "${BENCH_CPUS_SET:-}" != "$BENCH_CPUS" ]; then
	case $BENCH_CPUS in *[!0-9,-]*) echo "bench: bad BENCH_CPUS '$BENCH_CPUS'" >&2; exit 1 ;; esac
	export BENCH_CPUS_SET=$BENCH_CPUS
	exec taskset -c "$BENCH_CPUS" bash "$0" "$@"
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
AF_BUILD=${AF_BUILD:-$TOP/build}
AF=$AF_BUILD/artifactfs
BENCH_SIZE=${BENCH_SIZE:-2G}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_FIO_SECS=${BENCH_FIO_SECS:-3}
BENCH_TMP=${BENCH_TMP:-/var/tmp}
BENCH_OUT=${BENCH_OUT:-$AF_BUILD/bench${BENCH_CPUS:+-cpus-$BENCH_CPUS}}
BENCH_SERVER=${BENCH_SERVER:-hot}
BENCH_ONLY=${BENCH_ONLY:-cold warm fio fanout mem shards attest control fleet s3 crash}
BENCH_S3_SIZE=${BENCH_S3_SIZE:-256M}
BENCH_COLD=${BENCH_COLD:-af af_off curl curl_sha curl_sync rclone httpdirfs}
CONNECTIONS=8

say() { printf '%s\n' "$*"; }
note() { printf '  %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
want() { case " $BENCH_ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

[ "$(id -u)" = 0 ] || die "needs root (drop_caches, FUSE mounts, passthrough)"
[ -x "$AF" ] || die "no $AF: run make first"
case $BENCH_RUNS in '' | *[!0-9]* | 0) die "BENCH_RUNS must be a positive integer" ;; esac
case " $BENCH_COLD " in
*" af_old "* | *" af_old_off "*)
	[ -x "${BENCH_AF_OLD:-}" ] || die "BENCH_COLD has af_old: set BENCH_AF_OLD to another build's artifactfs binary" ;;
esac

# The fleet figure (issue 14) brings its own world (bench/fleet.sh).
if want fleet; then
	AF_BUILD=$AF_BUILD BENCH_OUT=$BENCH_OUT bash "$HERE/fleet.sh" || die "the fleet figure failed"
	BENCH_ONLY=$(echo " $BENCH_ONLY " | sed 's/ fleet / /g; s/^ *//; s/ *$//')
	[ -n "$BENCH_ONLY" ] || exit 0
fi

# The control-plane scale figure (issue 9 item 7) brings its own world too.
if want control; then
	AF_BUILD=$AF_BUILD BENCH_OUT=$BENCH_OUT bash "$HERE/control.sh" || die "the control-plane figure failed"
	BENCH_ONLY=$(echo " $BENCH_ONLY " | sed 's/ control / /g; s/^ *//; s/ *$//')
	[ -n "$BENCH_ONLY" ] || exit 0
fi

# The crash soak (issue 11 item 2): the make check matrix of kill points,
# CRASH_ROUNDS times, on a build with the fault-injection points (af_hook).
if want crash; then
	make -C "$TOP" --no-print-directory BUILD=build/hooks HOOKS=1 all >/dev/null ||
		die "cannot build build/hooks"
	mkdir -p "$BENCH_OUT"
	AF_BUILD=$TOP/build/hooks AF_CRASH_ROUNDS=${CRASH_ROUNDS:-10} \
		bash "$TOP/tests/integration/t_crash.sh" >"$BENCH_OUT/crash.txt" 2>&1 ||
		{ tail -n 60 "$BENCH_OUT/crash.txt"; die "the crash soak failed (see $BENCH_OUT/crash.txt)"; }
	sed -n '/kill points/,$p' "$BENCH_OUT/crash.txt"
	BENCH_ONLY=$(echo " $BENCH_ONLY " | sed 's/ crash / /g; s/^ *//; s/ *$//')
	[ -n "$BENCH_ONLY" ] || exit 0
fi

# Tools from Debian; installs what is missing (apt-get, like make deps).
sh "$TOP/mk/deps.sh" nginx curl openssl fuse3 rclone httpdirfs fio util-linux \
	procps coreutils iproute2 attr
want attest && sh "$TOP/mk/deps.sh" python3 python3-cryptography
want s3 && sh "$TOP/mk/deps.sh" nodejs npm
case ${BENCH_PERF:-0} in
1) sh "$TOP/mk/deps.sh" linux-perf ;;
trace) sh "$TOP/mk/deps.sh" strace ;;
esac

to_bytes() {
	local v=$1 n m=1
	case $v in
	*[kK]) m=1024; n=${v%?} ;;
	*[mM]) m=$((1024 * 1024)); n=${v%?} ;;
	*[gG]) m=$((1024 * 1024 * 1024)); n=${v%?} ;;
	*) n=$v ;;
	esac
	case $n in '' | *[!0-9]*) die "bad BENCH_SIZE '$v'" ;; esac
	echo $((n * m))
}
SIZE=$(to_bytes "$BENCH_SIZE")
[ "$SIZE" -gt 0 ] || die "BENCH_SIZE must be > 0"
MIB=$((1024 * 1024))

# ---- work directory, processes, mounts, cleanup ---------------------------

mkdir -p "$BENCH_TMP"
BENCH_SHARDS=${BENCH_SHARDS:-8}
BENCH_SHARD_SIZE=${BENCH_SHARD_SIZE:-256M}
SHARD_SIZE=$(to_bytes "$BENCH_SHARD_SIZE")
case $BENCH_SHARDS in '' | *[!0-9]* | 0) die "BENCH_SHARDS must be a positive integer" ;; esac
# Peak use: served blob, up to three cache copies (warm mounts) and one
# contender's copy at a time, plus slack; the shards (served, cached,
# curl's copies) come after the blob's copies are gone.
need=$((SIZE * 5 + 512 * MIB))
if want shards && [ $((SHARD_SIZE * BENCH_SHARDS * 3)) -gt $((SIZE * 4)) ]; then
	need=$((SHARD_SIZE * BENCH_SHARDS * 3 + SIZE + 512 * MIB))
fi
avail=$(( $(df -Pk "$BENCH_TMP" | awk 'NR == 2 { print $4 }') * 1024 ))
[ "$avail" -ge "$need" ] ||
	die "$BENCH_TMP: $((avail / MIB)) MiB free, need $((need / MIB)) MiB (set BENCH_TMP)"
W=$(mktemp -d "$BENCH_TMP/afbench.XXXXXX")
chmod 0755 "$W"
mkdir -p "$W/www" "$W/nginx/logs" "$W/nginx/tmp" "$W/registry/vision" "$W/mnt" \
	"$W/out"
mkdir -p "$BENCH_OUT"
rm -f "$BENCH_OUT/raw.txt" "$BENCH_OUT/results.txt" "$BENCH_OUT/perf-cold.data" \
	"$BENCH_OUT/strace-cold.txt" "$BENCH_OUT/threads-cold.txt"
RAW=$BENCH_OUT/raw.txt
: >"$RAW"

NGINX_PID=""
PIDS=()		# FUSE daemons we started (artifactfs, rclone, httpdirfs)
MOUNTS=()	# mountpoints we used

# is_mounted MNT: listed in the mount table (mountpoint(1) says no for a
# FUSE mount whose daemon died: ENOTCONN).
is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }

cleanup() {
	local rc=$? p m
	set +e
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for m in "${MOUNTS[@]}"; do
		if is_mounted "$m"; then
			fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		fi
	done
	if [ -n "$NGINX_PID" ]; then
		kill -TERM "$NGINX_PID" 2>/dev/null
		for _ in $(seq 1 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
	fi
	if [ "$rc" -ne 0 ]; then
		for f in "$W"/*.log "$W"/nginx/logs/error.log; do
			[ -s "$f" ] || continue
			echo "--- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2
		done
	fi
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench: kept $W" >&2
	else
		rm -rf "$W"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

drop_pid() {
	local p=$1 i keep=()
	for i in "${PIDS[@]}"; do [ "$i" = "$p" ] || keep+=("$i"); done
	PIDS=("${keep[@]+"${keep[@]}"}")
}

# stop_fuse PID MNT: SIGTERM the daemon, wait for it, make sure MNT is gone.
stop_fuse() {
	local p=$1 m=$2
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$p" 2>/dev/null; then
		note "warning: PID $p ignored SIGTERM; killing it"
		kill -KILL "$p" 2>/dev/null || true
	fi
	wait "$p" 2>/dev/null || true
	drop_pid "$p"
	if is_mounted "$m"; then
		fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	fi
}

# wait_mount PID MNT LOG: until MNT is a mount point (or the daemon died).
wait_mount() {
	local p=$1 m=$2 log=$3
	for _ in $(seq 1 200); do
		mountpoint -q "$m" && return 0
		kill -0 "$p" 2>/dev/null || break
		sleep 0.05
	done
	cat "$log" >&2
	die "mount at $m did not come up"
}

free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$(( (RANDOM % 30000) + 20000 ))
		if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"; return 0
		fi
	done
	return 1
}

start_nginx() {
	local conf=$W/nginx/nginx.conf
	for _ in 1 2 3 4 5; do
		PORT=$(free_port) || die "no free port"
		cat >"$conf" <<EOF
worker_processes 2;
pid $W/nginx/nginx.pid;
error_log $W/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path $W/nginx/tmp;
    proxy_temp_path $W/nginx/tmp;
    fastcgi_temp_path $W/nginx/tmp;
    uwsgi_temp_path $W/nginx/tmp;
    scgi_temp_path $W/nginx/tmp;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    log_format bytes '\$request_method \$uri \$status \$body_bytes_sent "\$http_range"';
    server {
        listen 127.0.0.1:$PORT;
        access_log $W/nginx/logs/access.log bytes;
        # no trailing slash: httpdirfs asks for /blobs (nginx redirects it to /blobs/)
        location /blobs { alias $W/www; autoindex on; }
    }
}
EOF
		if nginx -c "$conf" -p "$W/nginx" 2>"$W/nginx/start.err"; then
			for _ in $(seq 1 50); do [ -s "$W/nginx/nginx.pid" ] && break; sleep 0.1; done
			NGINX_PID=$(cat "$W/nginx/nginx.pid")
			return 0
		fi
	done
	cat "$W/nginx/start.err" >&2
	die "nginx did not start"
}

# Bytes nginx sent for the blob so far.
nginx_bytes() {
	awk -v p="/blobs/blob.bin" '$2 == p { s += $4 } END { printf "%.0f\n", s }' \
		"$W/nginx/logs/access.log"
}

# ---- measurement helpers --------------------------------------------------

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f\n", b - a }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || a == "" || b + 0 == 0) print "nan"; else printf "%.4f\n", a / b }'; }

# rec NAME RUN VALUE: one raw measurement. val NAME RUN: read it back.
rec() { printf '%s %s %s\n' "$1" "$2" "$3" >>"$RAW"; }
val() { awk -v k="$1" -v r="$2" '$1 == k && $2 == r { v = $3 } END { print (v == "" ? "nan" : v) }' "$RAW"; }

median() {
	awk -v k="$1" '$1 == k { print $3 }' "$RAW" | sort -g |
		awk '{ a[NR] = $1 } END {
			if (NR == 0) { print "nan"; exit }
			if (NR % 2) printf "%.4f\n", a[(NR + 1) / 2];
			else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
maxof() {
	awk -v k="$1" '$1 == k { if (n++ == 0 || $3 > m) m = $3 } END { if (n) printf "%.4f\n", m; else print "nan" }' "$RAW"
}
minmax() {
	awk -v k="$1" '$1 == k { if (n++ == 0 || $3 < lo) lo = $3; if (n == 1 || $3 > hi) hi = $3 }
		END { if (n) printf "%.3f-%.3f\n", lo, hi; else print "-" }' "$RAW"
}

# Cold: flush dirty pages, drop the page cache. drop_caches server: with
# BENCH_SERVER=hot read the served file back in (the server is "remote":
# only the client side is cold).
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	if [ "${1:-}" = server ] && [ "$BENCH_SERVER" = hot ]; then
		cat "${SERVED[@]}" >/dev/null
	fi
}

SERVED=("$W/www/blob.bin")	# what drop_caches server reads back

# readall FILE: sequential read, 1 MiB at a time, the same reader everywhere.
readall() { dd if="$1" of=/dev/null bs=1M status=none; }

# time_cmd CMD...: prints seconds.
time_cmd() {
	local t0 t1
	t0=$(now)
	"$@" >/dev/null || return 1
	t1=$(now)
	elapsed "$t0" "$t1"
}

# order N ITEMS...: the items, reversed when run N is even (alternating).
order() {
	local n=$1; shift
	if [ $((n % 2)) -eq 0 ]; then
		local i out=()
		for ((i = $#; i >= 1; i--)); do out+=("${!i}"); done
		echo "${out[@]}"
	else
		echo "$@"
	fi
}

# ---- the world: blob, nginx, config, registration -------------------------

say "bench: $(nproc) CPUs${BENCH_CPUS:+ (taskset -c $BENCH_CPUS)}, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo) RAM, kernel $(uname -r)"
say "bench: blob $BENCH_SIZE ($SIZE bytes), $BENCH_RUNS runs, work dir $W, server page cache $BENCH_SERVER, load average $(cut -d" " -f1-3 /proc/loadavg)"
head -c "$SIZE" /dev/urandom >"$W/www/blob.bin"
HEX=$(sha256sum "$W/www/blob.bin" | cut -d' ' -f1)
DIGEST=sha256:$HEX
start_nginx
URL=http://127.0.0.1:$PORT/blobs/blob.bin
curl -fsS -o /dev/null -r 0-0 "$URL" || die "nginx does not serve $URL"

cat >"$W/policy.json" <<EOF
{
  "digest_algorithms": ["sha256"],
  "readable_lifecycle_states": ["active"],
  "min_trust_state": "verified",
  "sources": [{"source_type": "https", "uri_prefix": "http://127.0.0.1:$PORT/blobs/"}],
  "projects": {}
}
EOF
cat >"$W/registry/vision/blob.json" <<EOF
{
  "project": "vision",
  "name": "blob.bin",
  "artifact_kind": "blob",
  "digest": "$DIGEST",
  "source": {"source_type": "https", "uri": "$URL", "source_ref": null,
             "size_bytes": $SIZE, "content_encoding": "identity"},
  "lifecycle_state": "active",
  "trust_state": "verified",
  "channels": [],
  "allowlist_decision": {"decision": "allow", "policy": "default", "decided_at": "2026-03-09T12:00:00Z"},
  "attestation": null,
  "registered_at": "2026-03-09T12:00:00Z"
}
EOF

# write_conf NAME PASSTHROUGH: $W/NAME.conf with its own cache dir.
write_conf() {
	cat >"$W/$1.conf" <<EOF
; make bench ($1)
[cache]
dir = $W/cache-$1
chunk_size = 8M

[registry]
dir = $W/registry
refresh = 60s

[policy]
file = $W/policy.json

[fetch]
connections = $CONNECTIONS
retries = 2
connect_timeout = 10s
low_speed_timeout = 30s

[audit]
log = $W/audit-$1.jsonl

[fs]
passthrough = $2
EOF
}

# af_mount NAME: mounts $W/mnt/NAME with $W/NAME.conf; sets AFPID.
af_mount() {
	local name=$1 m=$W/mnt/$1
	mkdir -p "$m"
	MOUNTS+=("$m")
	"${AF_BIN:-$AF}" mount -f -c "$W/$name.conf" "$m" >>"$W/daemon-$name.log" 2>&1 &
	AFPID=$!
	PIDS+=("$AFPID")
	wait_mount "$AFPID" "$m" "$W/daemon-$name.log"
}

# Path of the blob through mount NAME, and of its cache data file.
af_path() { echo "$W/mnt/$1/vision/blob.bin@$DIGEST"; }
cache_file() { echo "$W/cache-$1/blobs/sha256/${HEX:0:2}/$HEX"; }

write_conf cold auto
write_conf coldoff off
write_conf coldold auto
write_conf coldoldoff off
write_conf on on
write_conf off off
write_conf fan auto
: >"$W/rclone.conf"

# Sanity: one cold read through the mount gives the right bytes.
af_mount cold
got=$(sha256sum <"$(af_path cold)" | cut -d' ' -f1)
[ "$got" = "$HEX" ] || die "artifactfs served wrong bytes"
grep -q 'passthrough: on' "$W/daemon-cold.log" && PT_AUTO=on || PT_AUTO=off
stop_fuse "$AFPID" "$W/mnt/cold"
rm -rf "$W/cache-cold"
say "bench: artifactfs sanity read ok; [fs] passthrough = auto resolves to: $PT_AUTO"

# ---- 1-3, 7: cold fetch against curl, rclone, httpdirfs -------------------

# Each cold_* runs one contender once, page cache dropped, and records
# seconds under cold.NAME (run $1). Setup (mount) and teardown are untimed.

# CPU seconds (user+system) used so far by PID, or by nginx's workers.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat"; }
nginx_cpu() {
	local p s=0
	for p in $(pgrep -P "$NGINX_PID"); do s=$(awk -v a="$s" -v b="$(cpu_of "$p")" 'BEGIN { print a + b }'); done
	echo "$s"
}

# cold_af_in RUN CONF KEY: one cold open+read through a fresh mount with
# $W/CONF.conf; records cold.KEY, rss.KEY_kib, cpu.KEY.daemon, cpu.KEY.nginx.
# hash_cpu LOG HEX...: seconds of CPU the daemon's hashing threads spent on
# these blobs (its "verified (..., hashing N ms CPU)" log lines), summed.
hash_cpu() {
	local log=$1; shift
	local h pat=""
	for h in "$@"; do pat="$pat${pat:+|}$h"; done
	grep -E "cache: sha256:($pat): verified" "$log" 2>/dev/null |
		sed -n 's/.*hashing \([0-9]*\) ms CPU.*/\1/p' |
		awk '{ s += $1 } END { printf "%.2f\n", s / 1000 }'
}

cold_af_in() {
	local r=$1 conf=$2 key=$3 t hwm n0 perf=""
	rm -rf "$W/cache-$conf"
	: >"$W/daemon-$conf.log"
	af_mount "$conf"
	drop_caches server
	if [ "$key" = af ] && [ "${BENCH_PERF:-0}" = 1 ] && [ "$r" = 1 ]; then
		perf record -q -g -p "$AFPID" -o "$BENCH_OUT/perf-cold.data" 2>>"$W/perf.log" &
		perf=$!
		sleep 0.5
	elif [ "$key" = af ] && [ "${BENCH_PERF:-0}" = trace ] && [ "$r" = 1 ]; then
		# Blocking calls of every thread (the job thread is created
		# later, so strace -f), with times; pwrite/recv are left out.
		strace -f --seccomp-bpf -tt -T -e trace=pread64,fdatasync,fsync,msync,futex \
			-p "$AFPID" -o "$BENCH_OUT/strace-cold.txt" 2>>"$W/perf.log" &
		perf=$!
		sleep 0.5
	fi
	n0=$(nginx_cpu)
	t=$(time_cmd readall "$(af_path "$conf")")
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$AFPID/status")
	rec "cold.$key" "$r" "$t"
	rec "rss.${key}_kib" "$r" "$hwm"
	rec "cpu.$key.daemon" "$r" "$(cpu_of "$AFPID")"
	rec "cpu.$key.nginx" "$r" "$(awk -v a="$n0" -v b="$(nginx_cpu)" 'BEGIN { print b - a }')"
	rec "cpu.$key.hash" "$r" "$(hash_cpu "$W/daemon-$conf.log" "$HEX")"
	# The fetch alone (the daemon's "verified (..., N ms" line): the rest
	# of cold.KEY is the mount's open and the read after it.
	rec "fetch.$key" "$r" "$(sed -n "s/.*cache: $DIGEST: verified ([^,]*, [^,]*, \([0-9]*\) ms.*/\1/p" \
		"$W/daemon-$conf.log" | awk '{ printf "%.4f\n", $1 / 1000 }' | tail -n 1)"
	if [ -n "$perf" ]; then
		kill -INT "$perf"; wait "$perf" || true
		# CPU seconds per thread (name, tid, user+system).
		for task in /proc/"$AFPID"/task/*; do
			awk -v hz="$(getconf CLK_TCK)" -v t="${task##*/}" \
				'{ printf "%s %s %.2f\n", $2, t, ($14 + $15) / hz }' "$task/stat"
		done >"$BENCH_OUT/threads-cold.txt"
	fi
	stop_fuse "$AFPID" "$W/mnt/$conf"
	rm -rf "$W/cache-$conf"
	note "$(printf '%-12s %ss  (fetch %ss, daemon VmHWM %d MiB, CPU %ss, hashing %ss)' "$key" "$t" \
		"$(val "fetch.$key" "$r")" $((hwm / 1024)) "$(val "cpu.$key.daemon" "$r")" \
		"$(val "cpu.$key.hash" "$r")")"
}
cold_af() { cold_af_in "$1" cold af; }
# The same with passthrough off: the read after the open goes through the daemon.
cold_af_off() { cold_af_in "$1" coldoff af_off; }
# BENCH_AF_OLD: the same cold open+read with another build's binary, side
# by side (what a change cost or bought, measured in the same runs).
cold_af_old() { AF_BIN=$BENCH_AF_OLD cold_af_in "$1" coldold af_old; }
cold_af_old_off() { AF_BIN=$BENCH_AF_OLD cold_af_in "$1" coldoldoff af_old_off; }

# curl -o, and its CPU seconds (from the shell's children times) in curl.cpu.
curl_cpu() {
	( curl -fsS -o "$W/out/curl.bin" "$URL" && times ) | tail -n 1 |
		awk '{ split($0, f, /[ms ]+/); printf "%.2f\n", f[1] * 60 + f[2] + f[3] * 60 + f[4] }' \
		>"$W/out/curl.cpu"
	[ -s "$W/out/curl.cpu" ]
}
cold_curl() {
	local r=$1 t n0
	rm -f "$W/out/curl.bin"
	drop_caches server
	n0=$(nginx_cpu)
	t=$(time_cmd curl_cpu)
	rec cold.curl "$r" "$t"
	rec cpu.curl.curl "$r" "$(cat "$W/out/curl.cpu")"
	rec cpu.curl.nginx "$r" "$(awk -v a="$n0" -v b="$(nginx_cpu)" 'BEGIN { print b - a }')"
	rm -f "$W/out/curl.bin"
	note "curl         ${t}s"
}

# children_cpu CMD...: runs CMD, prints its children's CPU seconds
# (user + system, from the shell's times), fails when CMD fails.
children_cpu() {
	( "$@" >/dev/null && times ) | tail -n 1 |
		awk '{ split($0, f, /[ms ]+/); printf "%.2f\n", f[1] * 60 + f[2] + f[3] * 60 + f[4] }'
}
curl_sha() {
	children_cpu curl -fsS -o "$W/out/curl.bin" "$URL" >"$W/out/curl.cpu" &&
		children_cpu openssl dgst -sha256 "$W/out/curl.bin" >"$W/out/dgst.cpu" &&
		[ -s "$W/out/curl.cpu" ] && [ -s "$W/out/dgst.cpu" ]
}
cold_curl_sha() {
	local r=$1 t
	rm -f "$W/out/curl.bin"
	drop_caches server
	t=$(time_cmd curl_sha)
	rec cold.curl_sha "$r" "$t"
	# CPU per verified byte (issue 16 item 4): what curl and openssl spend.
	rec cpu.curl_sha.curl "$r" "$(cat "$W/out/curl.cpu")"
	rec cpu.curl_sha.dgst "$r" "$(cat "$W/out/dgst.cpu")"
	rm -f "$W/out/curl.bin"
	note "curl+sha256  ${t}s  (CPU curl $(cat "$W/out/curl.cpu")s, openssl $(cat "$W/out/dgst.cpu")s)"
}

# Informational: the same download made durable like artifactfs makes it
# (fdatasync before "verified"); shows what the disk costs.
curl_sync() { curl -fsS -o "$W/out/curl.bin" "$URL" && sync -d "$W/out/curl.bin"; }
cold_curl_sync() {
	local r=$1 t
	rm -f "$W/out/curl.bin"
	drop_caches server
	t=$(time_cmd curl_sync)
	rec cold.curl_sync "$r" "$t"
	rm -f "$W/out/curl.bin"
	note "curl+fdatasync ${t}s"
}

# peer_run NAME PID MNT: read MNT/blob.bin cold, then sha256 of what was read.
peer_run() {
	local r=$1 name=$2 p=$3 m=$4 t0 t1 t2 h
	drop_caches server
	t0=$(now)
	readall "$m/blob.bin"
	t1=$(now)
	h=$(openssl dgst -sha256 -r "$m/blob.bin" | cut -d' ' -f1)
	t2=$(now)
	[ "$h" = "$HEX" ] || die "$name served wrong bytes ($h)"
	rec "cold.$name.read" "$r" "$(elapsed "$t0" "$t1")"
	rec "cold.$name" "$r" "$(elapsed "$t0" "$t2")"
	stop_fuse "$p" "$m"
	note "$(printf '%-12s %ss  (read %ss + sha256 %ss)' "$name" "$(elapsed "$t0" "$t2")" \
		"$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")")"
}

RCLONE_ARGS=(--vfs-cache-mode full --read-only)
cold_rclone() {
	local r=$1 m=$W/mnt/rclone p
	rm -rf "$W/rclone-cache"
	mkdir -p "$m"
	MOUNTS+=("$m")
	rclone --config "$W/rclone.conf" mount :http: "$m" \
		--http-url "http://127.0.0.1:$PORT/blobs/" "${RCLONE_ARGS[@]}" \
		--cache-dir "$W/rclone-cache" >>"$W/rclone.log" 2>&1 &
	p=$!
	PIDS+=("$p")
	wait_mount "$p" "$m" "$W/rclone.log"
	ls "$m" >/dev/null	# the listing is not part of the read
	peer_run "$r" rclone "$p" "$m"
	rm -rf "$W/rclone-cache"
}

cold_httpdirfs() {
	local r=$1 m=$W/mnt/httpdirfs p
	rm -rf "$W/httpdirfs-cache"
	mkdir -p "$m" "$W/httpdirfs-cache"
	MOUNTS+=("$m")
	httpdirfs -f --cache --cache-location "$W/httpdirfs-cache" --no-range-check \
		"http://127.0.0.1:$PORT/blobs/" "$m" >>"$W/httpdirfs.log" 2>&1 &
	p=$!
	PIDS+=("$p")
	wait_mount "$p" "$m" "$W/httpdirfs.log"
	ls "$m" >/dev/null
	peer_run "$r" httpdirfs "$p" "$m"
	rm -rf "$W/httpdirfs-cache"
}

if want cold; then
	say ""
	say "== cold: open+read through the mount vs curl, rclone, httpdirfs"
	for r in $(seq 1 "$BENCH_RUNS"); do
		say " run $r/$BENCH_RUNS"
		for c in $(order "$r" $BENCH_COLD); do
			"cold_$c" "$r"
		done
		for k in $BENCH_COLD rclone.read httpdirfs.read; do
			case $k in af | af_off | af_old | af_old_off) continue ;; esac
			case " $BENCH_COLD " in *" ${k%.read} "*) ;; *) continue ;; esac
			rec "ratio.cold_vs_$k" "$r" "$(div "$(val cold.af "$r")" "$(val "cold.$k" "$r")")"
		done
		# Passthrough off (issue 16 item 1): the read after the open
		# goes through the daemon.
		rec ratio.cold_off_vs_curl "$r" "$(div "$(val cold.af_off "$r")" "$(val cold.curl "$r")")"
		rec ratio.cold_old_vs_curl "$r" "$(div "$(val cold.af_old "$r")" "$(val cold.curl "$r")")"
		rec ratio.cold_old_off_vs_curl "$r" "$(div "$(val cold.af_old_off "$r")" "$(val cold.curl "$r")")"
		rec ratio.cold_vs_old "$r" "$(div "$(val cold.af "$r")" "$(val cold.af_old "$r")")"
		# CPU per verified byte (issue 16 item 4): the daemon's CPU for
		# the cold fetch (+ read) / (curl -o + openssl dgst) on the same
		# bytes.
		rec ratio.cpu_per_byte "$r" "$(div "$(val cpu.af.daemon "$r")" \
			"$(awk -v a="$(val cpu.curl_sha.curl "$r")" -v b="$(val cpu.curl_sha.dgst "$r")" 'BEGIN { print a + b }')")"
	done
fi

# ---- 4, 5, 8: warm reads, passthrough on and off --------------------------

# The warm mounts: passthrough on, off, and "ns": a daemon in a user
# namespace (unshare -Urm), where the kernel refuses passthrough (no
# CAP_SYS_ADMIN in the initial namespace) and, as for a rootless daemon,
# sysfs refuses the readahead (a tmpfs over /sys/class/bdi stands for
# that): the fallback of an unprivileged or containerised daemon. Its mount
# lives in its own mount namespace: it is read through nsenter.
WARM_MODES="on off"
USERNS=0
if unshare -Urm true 2>/dev/null; then
	WARM_MODES="on off ns"
	USERNS=1
fi
write_conf ns auto

# af_mount_ns: mounts $W/mnt/ns from a user namespace; sets AFPID.
af_mount_ns() {
	local m=$W/mnt/ns
	mkdir -p "$m"
	MOUNTS+=("$m")
	unshare -Urm --propagation private sh -c \
		'mount -t tmpfs none /sys/class/bdi && exec "$0" mount -f -c "$1" "$2"' \
		"$AF" "$W/ns.conf" "$m" >>"$W/daemon-ns.log" 2>&1 &
	AFPID=$!
	PIDS+=("$AFPID")
	for _ in $(seq 1 200); do
		in_ns "$AFPID" mountpoint -q "$m" && return 0
		kill -0 "$AFPID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$W/daemon-ns.log" >&2
	die "mount at $m (user namespace) did not come up"
}
# in_ns PID CMD...: CMD in PID's user and mount namespaces (a FUSE mount
# made in a user namespace admits only processes inside it).
in_ns() { local p=$1; shift; nsenter -t "$p" -U -m --preserve-credentials "$@"; }

# rd READER MODE FILE: reads FILE to the end with dd bs=1M or cat (128 KiB
# reads, coreutils' size), inside the user namespace for mode ns.
rd() {
	local reader=$1 mode=$2 f=$3 pre=()
	[ "$mode" = ns ] && pre=(in_ns "$PID_NS")
	case $reader in
	dd) "${pre[@]}" dd if="$f" of=/dev/null bs=1M status=none ;;
	cat) "${pre[@]}" cat "$f" >/dev/null ;;
	*) die "unknown reader $reader" ;;
	esac
}

if want warm || want fio || want mem; then
	af_mount on
	PID_ON=$AFPID
	af_mount off
	PID_OFF=$AFPID
	readall "$(af_path on)"	# fetch and verify once
	readall "$(af_path off)"
	if [ "$USERNS" = 1 ]; then
		af_mount_ns
		PID_NS=$AFPID
		rd dd ns "$(af_path ns)"
		grep -q 'passthrough: cannot register a backing file' "$W/daemon-ns.log" ||
			die "the user-namespace daemon did not fall back (see $W/daemon-ns.log)"
	else
		note "user namespaces unavailable: no \"ns\" figures"
	fi
	for mode in $WARM_MODES; do
		f=$(cache_file "$mode")
		[ -f "$f" ] || die "no cache file $f"
		[ "$(stat -c %s "$f")" = "$SIZE" ] || die "cache file $f has the wrong size"
	done
	grep -q 'passthrough: on' "$W/daemon-on.log" ||
		die "passthrough = on did not come up (see $W/daemon-on.log)"
	for mode in $WARM_MODES; do
		[ "$mode" = on ] && continue
		if [ "$mode" = ns ]; then
			ra=$(cat "/sys/class/bdi/$(in_ns "$PID_NS" mountpoint -d "$W/mnt/ns")/read_ahead_kb")
		else
			ra=$(cat "/sys/class/bdi/$(mountpoint -d "$W/mnt/$mode")/read_ahead_kb")
		fi
		note "passthrough $mode: the mount reads ahead $ra KiB"
	done
fi
reads_of() {
	if [ "$1" = ns ]; then
		in_ns "$PID_NS" getfattr --only-values -n user.artifactfs.reads "$W/mnt/ns" 2>/dev/null || echo 0
	else
		getfattr --only-values -n user.artifactfs.reads "$W/mnt/$1" 2>/dev/null || echo 0
	fi
}

# warm_ratio RUN STATE MODE SUFFIX: direct time / via time (throughput ratio).
warm_ratio() {
	local r=$1 state=$2 mode=$3 sfx=$4
	rec "ratio.warm.$state.$mode$sfx" "$r" "$(div "$(val "warm.$state.direct.$mode$sfx" "$r")" \
		"$(val "warm.$state.via.$mode$sfx" "$r")")"
}

if want warm; then
	say ""
	say "== warm sequential read of a verified blob: through the mount vs the cache file"
	for r in $(seq 1 "$BENCH_RUNS"); do
		say " run $r/$BENCH_RUNS"
		for reader in dd cat; do
			# dd keeps the keys of the earlier tables; cat gets .cat.
			sfx=""; [ "$reader" = cat ] && sfx=.cat
			for state in cold hot; do
				cs=()
				for mode in $WARM_MODES; do cs+=("direct.$mode" "via.$mode"); done
				for c in $(order "$r" "${cs[@]}"); do
					mode=${c#*.}
					if [ "${c%.*}" = direct ]; then f=$(cache_file "$mode"); m=direct; else f=$(af_path "$mode"); m=$mode; fi
					if [ "$state" = cold ]; then
						drop_caches
						t=$(time_cmd rd "$reader" "$m" "$f")
					else
						rd "$reader" "$m" "$f"	# make it hot
						ts=()
						for _ in 1 2 3; do ts+=("$(time_cmd rd "$reader" "$m" "$f")"); done
						t=$(printf '%s\n' "${ts[@]}" | sort -g | sed -n 2p)
					fi
					rec "warm.$state.$c$sfx" "$r" "$t"
				done
				line="$(printf '%-4s %-3s' "$state" "$reader")"
				for mode in $WARM_MODES; do
					warm_ratio "$r" "$state" "$mode" "$sfx"
					line="$line$(printf ' | %s: direct %ss via %ss' "$mode" \
						"$(val "warm.$state.direct.$mode$sfx" "$r")" "$(val "warm.$state.via.$mode$sfx" "$r")")"
				done
				note "$line"
			done
		done
	done
	r0=$(reads_of on)
	readall "$(af_path on)"
	rec pt.on.daemon_reads 1 $(( $(reads_of on) - r0 ))
	# Requests per full read without passthrough, page cache dropped.
	for mode in $WARM_MODES; do
		[ "$mode" = on ] && continue
		drop_caches
		r0=$(reads_of "$mode")
		rd dd "$mode" "$(af_path "$mode")"
		rec "reads.$mode.per_gib" 1 "$(div $(( $(reads_of "$mode") - r0 )) "$(div "$SIZE" $((1024 * MIB)))")"
	done
fi

# fio: random 4 KiB reads, one job, psync, the same offsets (randrepeat) for
# every contender; the page cache is managed here (invalidate=0). fio splits
# --filename at ':' (the digest has one): escaped.
# fio_iops MODE FILE (MODE ns: inside the user namespace; else "direct" or
# a mode: as is).
fio_iops() {
	local mode=$1 f=$2 iops pre=()
	[ "$mode" = ns ] && pre=(in_ns "$PID_NS")
	iops=$("${pre[@]}" fio --name=rand4k --filename="${f//:/\\:}" --readonly --rw=randread --bs=4k \
		--ioengine=psync --iodepth=1 --numjobs=1 --invalidate=0 --randrepeat=1 \
		--time_based --runtime="$BENCH_FIO_SECS" --output-format=terse \
		--terse-version=3 2>>"$W/fio.log" | awk -F';' '{ printf "%.0f\n", $8 }')
	[ -n "$iops" ] && [ "$iops" != 0 ] || { echo "bench: fio on $f failed:" >&2; tail -n 5 "$W/fio.log" >&2; return 1; }
	echo "$iops"
}

if want fio; then
	say ""
	say "== fio random 4 KiB reads: through the mount vs the cache file (${BENCH_FIO_SECS}s each)"
	for r in $(seq 1 "$BENCH_RUNS"); do
		say " run $r/$BENCH_RUNS"
		for state in cold hot; do
			cs=()
			for mode in $WARM_MODES; do cs+=("direct.$mode" "via.$mode"); done
			for c in $(order "$r" "${cs[@]}"); do
				mode=${c#*.}
				if [ "${c%.*}" = direct ]; then f=$(cache_file "$mode"); m=direct; else f=$(af_path "$mode"); m=$mode; fi
				if [ "$state" = cold ]; then drop_caches; else rd dd "$m" "$f"; fi
				rec "fio.$state.$c" "$r" "$(fio_iops "$m" "$f")"
			done
			line="$(printf '%-4s IOPS' "$state")"
			for mode in $WARM_MODES; do
				rec "ratio.fio.$state.$mode" "$r" "$(div "$(val "fio.$state.via.$mode" "$r")" \
					"$(val "fio.$state.direct.$mode" "$r")")"
				line="$line$(printf ' | %s: direct %s via %s' "$mode" \
					"$(val "fio.$state.direct.$mode" "$r")" "$(val "fio.$state.via.$mode" "$r")")"
			done
			note "$line"
		done
	done
fi

# Page-cache memory held after reading the blob once through the mount, from
# a dropped page cache: the Cached delta of /proc/meminfo in blob sizes, and
# fincore of the cache file and of the file in the mount.
cached_kib() { awk '/^Cached:/ { print $2 }' /proc/meminfo; }
fincore_bytes() {
	local pre=()
	[ "${2:-}" = ns ] && pre=(in_ns "$PID_NS")
	"${pre[@]}" fincore --bytes --noheadings --output RES "$1" 2>/dev/null | awk '{ printf "%.0f\n", $1 }'
}
if want mem; then
	say ""
	say "== page cache held after one read through the mount"
	for r in $(seq 1 "$BENCH_RUNS"); do
		for mode in $(order "$r" $WARM_MODES); do
			sync
			echo 3 >/proc/sys/vm/drop_caches
			c0=$(cached_kib)
			rd dd "$mode" "$(af_path "$mode")"
			c1=$(cached_kib)
			fc=$(fincore_bytes "$(cache_file "$mode")")
			fm=$(fincore_bytes "$(af_path "$mode")" "$mode")
			rec "mem.$mode.copies" "$r" "$(div $(( (c1 - c0) * 1024 )) "$SIZE")"
			rec "mem.$mode.cachefile" "$r" "$(div "$fc" "$SIZE")"
			rec "mem.$mode.mountfile" "$r" "$(div "$fm" "$SIZE")"
			note "$(printf '%-3s run %s: Cached +%d MiB (%s blob sizes); fincore cache file %d MiB, mount file %d MiB' \
				"$mode" "$r" $(( (c1 - c0) / 1024 )) "$(div $(( (c1 - c0) * 1024 )) "$SIZE")" \
				$((fc / MIB)) $((fm / MIB)))"
		done
	done
fi

if want warm || want fio || want mem; then
	stop_fuse "$PID_ON" "$W/mnt/on"
	stop_fuse "$PID_OFF" "$W/mnt/off"
	[ "$USERNS" = 1 ] && stop_fuse "$PID_NS" "$W/mnt/ns"
	rm -rf "$W/cache-on" "$W/cache-off" "$W/cache-ns"
fi

# ---- 6: 16 concurrent cold readers, one transfer --------------------------

if want fanout; then
	say ""
	say "== 16 concurrent cold readers of one blob"
	rm -rf "$W/cache-fan"
	af_mount fan
	PID_FAN=$AFPID
	drop_caches server
	b0=$(nginx_bytes)
	t0=$(now)
	rpids=()
	for i in $(seq 1 16); do
		( readall "$(af_path fan)" && touch "$W/out/fan.$i.ok" ) &
		rpids+=($!)
	done
	wait "${rpids[@]}" || true
	t1=$(now)
	b1=$(nginx_bytes)
	okn=$(find "$W/out" -name 'fan.*.ok' | wc -l)
	[ "$okn" = 16 ] || die "only $okn of 16 concurrent readers read the right bytes"
	rec fan.bytes_ratio 1 "$(div $((b1 - b0)) "$SIZE")"
	rec fan.seconds 1 "$(elapsed "$t0" "$t1")"
	rec rss.fan_kib 1 "$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID_FAN/status")"
	note "16 readers: $((b1 - b0)) bytes sent by nginx for a $SIZE-byte blob, $(elapsed "$t0" "$t1")s, all 16 read to the end"
	stop_fuse "$PID_FAN" "$W/mnt/fan"
	rm -rf "$W/cache-fan"
fi

# ---- 12: shards opened together (issue 16 item 3) --------------------------
# BENCH_SHARDS blobs of BENCH_SHARD_SIZE, opened at once as a loader opens a
# sharded checkpoint (model-000NN-of-000MM): the time until all are verified
# and open, against BENCH_SHARDS parallel `curl -o`, then BENCH_SHARDS
# parallel `openssl dgst -sha256`. The daemon's peak RSS with all in
# flight, its CPU, and its hashing threads' CPU (its log lines).

if want shards; then
	say ""
	say "== $BENCH_SHARDS shards of $BENCH_SHARD_SIZE opened at once"
	mkdir -p "$W/registry/shards"
	SHARD_HEX=()
	SHARD_FILES=()
	for i in $(seq 1 "$BENCH_SHARDS"); do
		n=$(printf 'model-%05d-of-%05d.safetensors' "$i" "$BENCH_SHARDS")
		head -c "$SHARD_SIZE" /dev/urandom >"$W/www/$n"
		h=$(sha256sum "$W/www/$n" | cut -d' ' -f1)
		SHARD_HEX+=("$h")
		SHARD_FILES+=("$n")
		cat >"$W/registry/shards/$n.json" <<EOF
{"project": "shards", "name": "$n", "artifact_kind": "blob", "digest": "sha256:$h",
 "source": {"source_type": "https", "uri": "http://127.0.0.1:$PORT/blobs/$n", "source_ref": null,
            "size_bytes": $SHARD_SIZE, "content_encoding": "identity"},
 "lifecycle_state": "active", "trust_state": "verified", "channels": [],
 "allowlist_decision": {"decision": "allow", "policy": "default", "decided_at": "2026-03-09T12:00:00Z"},
 "attestation": null, "registered_at": "2026-03-09T12:00:00Z"}
EOF
	done
	SERVED=()
	for n in "${SHARD_FILES[@]}"; do SERVED+=("$W/www/$n"); done
	write_conf shard auto

	# One open per shard, all at once; each opener exits at once.
	shard_af() {
		local r=$1 t0 t1 hwm i pids=() ok=0
		rm -rf "$W/cache-shard" "$W/out"/shard.*.ok
		: >"$W/daemon-shard.log"
		af_mount shard
		drop_caches server
		t0=$(now)
		for i in "${!SHARD_FILES[@]}"; do
			( exec 3<"$W/mnt/shard/shards/${SHARD_FILES[$i]}@sha256:${SHARD_HEX[$i]}" &&
				touch "$W/out/shard.$i.ok" ) &
			pids+=($!)
		done
		wait "${pids[@]}" || true
		t1=$(now)
		ok=$(find "$W/out" -name 'shard.*.ok' | wc -l)
		[ "$ok" = "$BENCH_SHARDS" ] || die "only $ok of $BENCH_SHARDS shards opened"
		hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$AFPID/status")
		rec shards.af "$r" "$(elapsed "$t0" "$t1")"
		rec rss.shards_kib "$r" "$hwm"
		rec cpu.shards.daemon "$r" "$(cpu_of "$AFPID")"
		rec cpu.shards.hash "$r" "$(hash_cpu "$W/daemon-shard.log" "${SHARD_HEX[@]}")"
		stop_fuse "$AFPID" "$W/mnt/shard"
		rm -rf "$W/cache-shard"
		note "$(printf 'artifactfs   %ss until all %s verified and open (VmHWM %d MiB, daemon CPU %ss, hashing threads %ss)' \
			"$(val shards.af "$r")" "$BENCH_SHARDS" $((hwm / 1024)) "$(val cpu.shards.daemon "$r")" \
			"$(val cpu.shards.hash "$r")")"
	}
	shard_curl_all() {
		local i pids=()
		for i in "${!SHARD_FILES[@]}"; do
			curl -fsS -o "$W/out/${SHARD_FILES[$i]}" "http://127.0.0.1:$PORT/blobs/${SHARD_FILES[$i]}" &
			pids+=($!)
		done
		wait "${pids[@]}" || return 1
		pids=()
		for i in "${!SHARD_FILES[@]}"; do
			openssl dgst -sha256 "$W/out/${SHARD_FILES[$i]}" >"$W/out/dgst.$i" &
			pids+=($!)
		done
		wait "${pids[@]}" || return 1
		for i in "${!SHARD_FILES[@]}"; do
			grep -q "${SHARD_HEX[$i]}" "$W/out/dgst.$i" || return 1
		done
	}
	shard_curl() {
		local r=$1 t0 t1 cpu
		rm -f "$W/out"/model-*
		drop_caches server
		t0=$(now)
		cpu=$(children_cpu shard_curl_all) || die "parallel curl of the shards failed"
		t1=$(now)
		rec shards.curl "$r" "$(elapsed "$t0" "$t1")"
		rec cpu.shards.curl "$r" "$cpu"
		rm -f "$W/out"/model-* "$W/out"/dgst.*
		note "$(printf 'curl+sha256  %ss (%s parallel curl -o, then %s parallel openssl dgst; CPU %ss)' \
			"$(val shards.curl "$r")" "$BENCH_SHARDS" "$BENCH_SHARDS" "$cpu")"
	}
	for r in $(seq 1 "$BENCH_RUNS"); do
		say " run $r/$BENCH_RUNS"
		for c in $(order "$r" af curl); do "shard_$c" "$r"; done
		rec ratio.shards "$r" "$(div "$(val shards.af "$r")" "$(val shards.curl "$r")")"
	done
	for n in "${SHARD_FILES[@]}"; do rm -f "$W/www/$n"; done
	SERVED=("$W/www/blob.bin")
fi

# ---- 9: 10,000 attested registrations load (issue 15) ---------------------
# The same 10,000 registrations three ways: no evidence (trust verified),
# each with a DSSE envelope signed by an Ed25519 key, by an ECDSA P-256 key
# (trust attested). `artifactfs check` loads and checks them all (registry
# parse, policy, one signature check per envelope, as the daemon's load
# does); the added time is the difference with the plain registry, within
# each run. The daemon's own figure is its log line "attestation: N
# envelopes checked in T ms" at mount, and a reload of the unchanged
# registry must check none again (cached with the record).

ATTEST_N=${BENCH_ATTEST_N:-10000}
# gen_attest DIR KIND KEYFILE KEYID: DIR/*.json, ATTEST_N registrations.
gen_attest() {
	python3 - "$@" "$ATTEST_N" "$PORT" <<'PY'
import base64, hashlib, json, os, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
out, kind, keyfile, keyid, n, port = sys.argv[1:7]
n = int(n)
key = None
if kind != "plain":
    with open(keyfile, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
T = b"application/vnd.in-toto+json"
os.makedirs(out, exist_ok=True)
per_file = 1000
for start in range(0, n, per_file):
    recs = []
    for i in range(start, min(n, start + per_file)):
        name = "m%05d.bin" % i
        hexd = hashlib.sha256(name.encode()).hexdigest()
        reg = {"project": "vision", "name": name, "artifact_kind": "blob",
               "digest": "sha256:" + hexd,
               "source": {"source_type": "https",
                          "uri": "http://127.0.0.1:%s/blobs/%s" % (port, name),
                          "size_bytes": 4096},
               "lifecycle_state": "active", "trust_state": "verified",
               "attestation": None, "registered_at": "2026-03-09T12:00:00Z"}
        if key is not None:
            st = json.dumps({"_type": "https://in-toto.io/Statement/v1",
                             "subject": [{"name": "vision/" + name, "digest": {"sha256": hexd}}],
                             "predicateType": "https://example.com/artifact-publication/v1",
                             "predicate": {}}, separators=(",", ":")).encode()
            pae = b"DSSEv1 %d %s %d %s" % (len(T), T, len(st), st)
            sig = key.sign(pae) if kind == "ed25519" else key.sign(pae, ec.ECDSA(hashes.SHA256()))
            reg["trust_state"] = "attested"
            reg["attestation"] = {"payloadType": T.decode(),
                                  "payload": base64.b64encode(st).decode(),
                                  "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}]}
        recs.append(reg)
    with open(os.path.join(out, "r%05d.json" % start), "w") as f:
        json.dump(recs, f)
PY
}

if want attest; then
	say ""
	say "== $ATTEST_N attested registrations: load and check"
	A=$W/attest
	mkdir -p "$A"
	openssl genpkey -algorithm ed25519 -out "$A/ed.key" 2>/dev/null
	openssl pkey -in "$A/ed.key" -pubout -out "$A/ed.pub"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$A/ec.key" 2>/dev/null
	openssl pkey -in "$A/ec.key" -pubout -out "$A/ec.pub"
	gen_attest "$A/reg-plain" plain - -
	gen_attest "$A/reg-ed25519" ed25519 "$A/ed.key" bench-ed
	gen_attest "$A/reg-p256" p256 "$A/ec.key" bench-ec
	python3 - "$W/policy.json" "$A" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    pol = json.load(f)
pol["attestation_keys"] = [
    {"keyid": "bench-ed", "public_key": open(sys.argv[2] + "/ed.pub").read()},
    {"keyid": "bench-ec", "public_key": open(sys.argv[2] + "/ec.pub").read(), "projects": ["vision"]}]
with open(sys.argv[2] + "/policy.json", "w") as f:
    json.dump(pol, f)
PY
	for k in plain ed25519 p256; do
		sed -e "s|^dir = $W/registry\$|dir = $A/reg-$k|" \
		    -e "s|^file = $W/policy.json\$|file = $A/policy.json|" "$W/cold.conf" >"$A/$k.conf"
		out=$("$AF" check -c "$A/$k.conf" 2>&1 | tail -1)
		case $out in
		"$ATTEST_N registrations, 0 errors, 0 notes") ;;
		*) die "attest bench: check on the $k registry: $out" ;;
		esac
	done
	for run in $(seq 1 "$BENCH_RUNS"); do
		for k in $(order "$run" plain ed25519 p256); do
			rec "attest.check.$k" "$run" "$(time_cmd "$AF" check -c "$A/$k.conf")"
		done
		for k in ed25519 p256; do
			rec "attest.added.$k" "$run" "$(awk -v a="$(awk -v k="attest.check.$k" -v r="$run" '$1 == k && $2 == r { print $3 }' "$RAW")" \
				-v b="$(awk -v r="$run" '$1 == "attest.check.plain" && $2 == r { print $3 }' "$RAW")" 'BEGIN { printf "%.4f\n", a - b }')"
		done
		# The daemon: envelopes checked at mount, none at a reload of the same records.
		sed "s|^dir = $W/cache-cold\$|dir = $A/cache|" "$A/ed25519.conf" >"$A/mount.conf"
		m=$W/mnt/attest
		mkdir -p "$m"
		MOUNTS+=("$m")
		: >"$W/daemon-attest.log"
		"$AF" mount -f -c "$A/mount.conf" "$m" >>"$W/daemon-attest.log" 2>&1 &
		AFPID=$!
		PIDS+=("$AFPID")
		wait_mount "$AFPID" "$m" "$W/daemon-attest.log"
		ms=$(sed -n 's/.*attestation: \([0-9]*\) envelopes checked in \([0-9]*\) ms.*/\1 \2/p' "$W/daemon-attest.log" | head -1)
		[ "${ms%% *}" = "$ATTEST_N" ] || die "attest bench: the daemon did not check $ATTEST_N envelopes at mount: '$ms'"
		rec attest.daemon_ms "$run" "${ms##* }"
		kill -HUP "$AFPID"
		for _ in $(seq 1 100); do
			[ "$(grep -c 'registry: loaded' "$W/daemon-attest.log")" -ge 2 ] && break
			sleep 0.1
		done
		rec attest.reload_rechecked "$run" "$(grep -c 'envelopes checked' "$W/daemon-attest.log" | awk '{ print $1 - 1 }')"
		stop_fuse "$AFPID" "$m"
		rm -rf "$A/cache"
	done
	note "check, $ATTEST_N registrations: plain $(median attest.check.plain)s, Ed25519 $(median attest.check.ed25519)s, P-256 $(median attest.check.p256)s"
	note "daemon: $ATTEST_N Ed25519 envelopes checked in $(median attest.daemon_ms) ms at mount; re-checked at an unchanged reload: $(maxof attest.reload_rechecked)"
fi

# ---- 10: s3 cold read against s3rver (issue 7) ----------------------------
# One blob in s3rver (npm @20minutes/s3rver, installed like the integration
# tests install it, into $AF_EMU_DIR), read cold through an s3 registration
# (path-style on the [s3] endpoint, every 8M range signed with SigV4) and by
# curl --aws-sigv4 with the same signed request (UNSIGNED-PAYLOAD, the whole
# object in one GET). s3rver is a node.js emulator: its own speed bounds
# both, so the ratio says what artifactfs adds, not what S3 would give.

if want s3; then
	say ""
	say "== s3: cold open+read through the mount vs curl --aws-sigv4 (s3rver)"
	# shellcheck source=/dev/null
	. "$TOP/tests/integration/creds.sh"
	S3_SIZE=$(to_bytes "$BENCH_S3_SIZE")
	if ! S3DIR=$(emu_install s3rver-5.0.0 "$S3RVER_SPEC"); then
		note "SKIP: s3 figure: $EMU_SKIP"
	else
		mkdir -p "$W/s3rver" "$W/s3creds" "$W/registry-s3/vision"
		head -c "$S3_SIZE" "$W/www/blob.bin" >"$W/s3.bin"
		S3HEX=$(sha256sum "$W/s3.bin" | cut -d' ' -f1)
		node "$TOP/tests/integration/s3rver.js" "$S3DIR" "$W/s3rver" "$W/s3rver.port" \
			bench-bucket >"$W/s3rver.log" 2>&1 &
		S3PID=$!
		PIDS+=("$S3PID")
		for _ in $(seq 1 100); do [ -s "$W/s3rver.port" ] && break; sleep 0.1; done
		S3PORT=$(cat "$W/s3rver.port" 2>/dev/null) || die "s3rver did not start"
		S3URL=http://127.0.0.1:$S3PORT/bench-bucket/s3.bin
		s3curl() {
			curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
				-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
		}
		s3curl -o /dev/null -T "$W/s3.bin" "$S3URL" || die "upload to s3rver failed"
		printf '{"source_type": "s3", "scope": "s3://bench-bucket/", "expires_at": "%s", "access_key_id": "S3RVER", "secret_access_key": "S3RVER"}\n' \
			"$(date -u -d '+6 hours' +%Y-%m-%dT%H:%M:%SZ)" >"$W/s3creds/s3.json"
		chmod 0700 "$W/s3creds"
		sed -e "s|\"sha256:$HEX\"|\"sha256:$S3HEX\"|" \
		    -e "s|\"source_type\": \"https\", \"uri\": \"$URL\"|\"source_type\": \"s3\", \"uri\": \"s3://bench-bucket/s3.bin\"|" \
		    -e "s|\"size_bytes\": $SIZE|\"size_bytes\": $S3_SIZE|" \
			"$W/registry/vision/blob.json" >"$W/registry-s3/vision/s3.json"
		sed 's|"sources": \[|"sources": [{"source_type": "s3", "uri_prefix": "s3://bench-bucket/"}, |' \
			"$W/policy.json" >"$W/policy-s3.json"
		sed -e "s|^dir = $W/registry\$|dir = $W/registry-s3|" \
		    -e "s|^file = $W/policy.json\$|file = $W/policy-s3.json|" \
		    -e "s|^dir = $W/cache-cold\$|dir = $W/cache-s3|" "$W/cold.conf" >"$W/s3.conf"
		printf '\n[credentials]\ndir = %s\n\n[s3]\nendpoint = http://127.0.0.1:%s\n' \
			"$W/s3creds" "$S3PORT" >>"$W/s3.conf"
		s3path=$W/mnt/s3/vision/blob.bin@sha256:$S3HEX
		for r in $(seq 1 "$BENCH_RUNS"); do
			say " run $r/$BENCH_RUNS"
			for c in $(order "$r" af curl); do
				rm -rf "$W/cache-s3" "$W/out/s3curl.bin"
				if [ "$c" = af ]; then
					af_mount s3
					drop_caches
					t=$(time_cmd readall "$s3path")
					got=$(sha256sum <"$s3path" | cut -d' ' -f1)
					stop_fuse "$AFPID" "$W/mnt/s3"
					[ "$got" = "$S3HEX" ] || die "s3: artifactfs served wrong bytes"
				else
					drop_caches
					t=$(time_cmd s3curl -o "$W/out/s3curl.bin" "$S3URL")
				fi
				rec "s3.$c" "$r" "$t"
				note "$(printf '%-12s %ss' "$c" "$t")"
			done
			rec ratio.s3_vs_curl "$r" "$(div \
				"$(awk -v r="$r" '$1 == "s3.af" && $2 == r { print $3 }' "$RAW")" \
				"$(awk -v r="$r" '$1 == "s3.curl" && $2 == r { print $3 }' "$RAW")")"
		done
		rm -rf "$W/cache-s3" "$W/out/s3curl.bin" "$W/s3rver"
		kill -TERM "$S3PID" 2>/dev/null || true
		wait "$S3PID" 2>/dev/null || true
		drop_pid "$S3PID"
	fi
fi

# ---- the table -------------------------------------------------------------

RES=$BENCH_OUT/results.txt
{
	echo "# make bench results: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# machine: $(nproc) CPUs${BENCH_CPUS:+ (taskset -c $BENCH_CPUS)}, load $(cut -d' ' -f1-3 /proc/loadavg), $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), kernel $(uname -r)"
	echo "# blob: $SIZE bytes; runs: $BENCH_RUNS; fio: ${BENCH_FIO_SECS}s; server page cache: $BENCH_SERVER; passthrough auto -> $PT_AUTO"
	echo "# key value (medians over runs; ratios are taken within each run)"
} >"$RES"
ROWS=()
# row KEY LABEL VALUE OP TARGET [UNIT]: OP is le, lt, ge, or "-" (no target).
row() {
	local key=$1 label=$2 v=$3 op=$4 target=$5 verdict
	[ "$v" = nan ] && return 0
	case $op in
	le) verdict=$(awk -v a="$v" -v b="$target" 'BEGIN { print (a <= b) ? "met" : "MISSED" }'); tgt="<= $target" ;;
	lt) verdict=$(awk -v a="$v" -v b="$target" 'BEGIN { print (a < b) ? "met" : "MISSED" }'); tgt="< $target" ;;
	ge) verdict=$(awk -v a="$v" -v b="$target" 'BEGIN { print (a >= b) ? "met" : "MISSED" }'); tgt=">= $target" ;;
	*) verdict="(info)"; tgt="-" ;;
	esac
	echo "$key $v $op $target $verdict" >>"$RES"
	ROWS+=("$(printf '%-58s %10s  %-8s %s' "$label" "$v" "$tgt" "$verdict")")
}
abs() { echo "$1=$(median "$1")s"; }

if want cold; then
	row cold_vs_curl "1 cold open+read / curl -o" "$(median ratio.cold_vs_curl)" le 1.15
	row cold_vs_curl_sha "2 cold open+read / (curl -o && openssl dgst)" "$(median ratio.cold_vs_curl_sha)" le 0.8
	row cold_vs_rclone "3 cold open+read / (rclone mount read && dgst)" "$(median ratio.cold_vs_rclone)" lt 1
	row cold_vs_httpdirfs "3 cold open+read / (httpdirfs read && dgst)" "$(median ratio.cold_vs_httpdirfs)" lt 1
	row cold_vs_rclone_readonly "  info: / rclone read alone (no dgst)" "$(median ratio.cold_vs_rclone.read)" - -
	row cold_vs_httpdirfs_readonly "  info: / httpdirfs read alone (no dgst)" "$(median ratio.cold_vs_httpdirfs.read)" - -
	row cold_vs_curl_fdatasync "  info: / (curl -o && sync -d: durable like us)" "$(median ratio.cold_vs_curl_sync)" - -
	row cold_off_vs_curl "1 cold open+read, passthrough off / curl -o" "$(median ratio.cold_off_vs_curl)" le 1.15
	if [ -n "${BENCH_AF_OLD:-}" ]; then
		row cold_old_vs_curl "  info: BENCH_AF_OLD cold open+read / curl -o" "$(median ratio.cold_old_vs_curl)" - -
		row cold_old_off_vs_curl "  info: BENCH_AF_OLD, passthrough off / curl -o" "$(median ratio.cold_old_off_vs_curl)" - -
		row cold_vs_old "  info: cold open+read / BENCH_AF_OLD's (same runs)" "$(median ratio.cold_vs_old)" - -
	fi
fi
if want warm; then
	# dd keeps its old keys; cat rows end in _cat. ns: user namespace.
	for reader in dd cat; do
		sfx=""; ksfx=""
		[ "$reader" = cat ] && { sfx=.cat; ksfx=_cat; }
		for mode in $WARM_MODES; do
			for state in cold hot; do
				lab=$([ "$state" = cold ] && echo dropped || echo hot)
				pt=$(case $mode in on) echo "pt on" ;; off) echo "pt off" ;; ns) echo "userns" ;; esac)
				row "warm_${state}_$mode$ksfx" "4 warm seq $reader, cache $lab, $pt: via/direct" \
					"$(median "ratio.warm.$state.$mode$sfx")" ge 0.95
			done
		done
	done
	row pt_on_daemon_reads "  info: daemon read requests, 1 read with passthrough on" "$(median pt.on.daemon_reads)" - -
	for mode in $WARM_MODES; do
		[ "$mode" = on ] && continue
		row "reads_per_gib_$mode" "  info: daemon read requests per GiB, $mode (dd, dropped)" "$(median "reads.$mode.per_gib")" - -
	done
fi
if want fio; then
	for mode in $WARM_MODES; do
		for state in cold hot; do
			lab=$([ "$state" = cold ] && echo dropped || echo hot)
			row "fio_${state}_$mode" "5 fio 4K randread IOPS, cache $lab, $mode: via/direct" \
				"$(median "ratio.fio.$state.$mode")" ge 0.9
		done
	done
fi
if want fanout; then
	row fanout_bytes "6 16 cold readers: nginx bytes sent / blob size" "$(median fan.bytes_ratio)" le 1.05
fi
if want cold; then
	row cpu_af_daemon "  info: CPU s, daemon, one cold fetch+read" "$(median cpu.af.daemon)" - -
	row cpu_af_nginx "  info: CPU s, nginx, serving artifactfs' fetch" "$(median cpu.af.nginx)" - -
	row cpu_curl_curl "  info: CPU s, curl -o" "$(median cpu.curl.curl)" - -
	row cpu_curl_nginx "  info: CPU s, nginx, serving curl" "$(median cpu.curl.nginx)" - -
	row rss_peak_mib "7 daemon VmHWM during cold fetch, MiB (max of runs)" \
		"$(awk -v v="$(maxof rss.af_kib)" 'BEGIN { printf "%.1f\n", v / 1024 }')" lt 64
	row cpu_per_byte "11 CPU per verified byte: daemon / (curl -o + openssl dgst)" "$(median ratio.cpu_per_byte)" le 1.0
	row cpu_af_hash "  info: CPU s, daemon's hashing thread, one cold fetch" "$(median cpu.af.hash)" - -
	row cpu_curl_sha_curl "  info: CPU s, curl -o (curl+dgst run)" "$(median cpu.curl_sha.curl)" - -
	row cpu_curl_sha_dgst "  info: CPU s, openssl dgst -sha256" "$(median cpu.curl_sha.dgst)" - -
	row cpu_af_off_daemon "  info: CPU s, daemon, cold fetch+read, passthrough off" "$(median cpu.af_off.daemon)" - -
fi
if want shards; then
	row shards_vs_curl "12 $BENCH_SHARDS shards open / (parallel curl -o, then dgst)" "$(median ratio.shards)" le 0.8
	row rss_shards_mib "12 daemon VmHWM, $BENCH_SHARDS shards in flight, MiB (max)" \
		"$(awk -v v="$(maxof rss.shards_kib)" 'BEGIN { printf "%.1f\n", v / 1024 }')" lt 128
	row cpu_shards_hash "  info: CPU s, hashing threads, $BENCH_SHARDS shards" "$(median cpu.shards.hash)" - -
	row cpu_shards_daemon "  info: CPU s, daemon, $BENCH_SHARDS shards" "$(median cpu.shards.daemon)" - -
	row cpu_shards_curl "  info: CPU s, parallel curl -o + openssl dgst" "$(median cpu.shards.curl)" - -
fi
if want fanout; then
	row rss_fan_mib "  info: daemon VmHWM, 16 readers, MiB" \
		"$(awk -v v="$(maxof rss.fan_kib)" 'BEGIN { printf "%.1f\n", v / 1024 }')" - -
fi
if want attest; then
	row attest_added_ed25519 "9 load+check $ATTEST_N attested (Ed25519): added s" "$(median attest.added.ed25519)" - -
	row attest_added_p256 "9 load+check $ATTEST_N attested (P-256): added s" "$(median attest.added.p256)" - -
	row attest_daemon_ms "  info: daemon, $ATTEST_N Ed25519 envelopes at mount, ms" "$(median attest.daemon_ms)" - -
	row attest_reload_rechecked "  info: envelopes re-checked at a reload, unchanged" "$(maxof attest.reload_rechecked)" - -
fi
if want s3; then
	row s3_vs_curl "10 s3 cold open+read / curl --aws-sigv4 (s3rver, ${BENCH_S3_SIZE})" "$(median ratio.s3_vs_curl)" - -
fi
if want mem; then
	for mode in $WARM_MODES; do
		row "mem_copies_$mode" "8 page cache after 1 read, $mode: Cached delta / size" "$(median "mem.$mode.copies")" le 1.1
		row "mem_cachefile_$mode" "  info: $mode: fincore(cache file) / size" "$(median "mem.$mode.cachefile")" - -
		row "mem_mountfile_$mode" "  info: $mode: fincore(mount file) / size" "$(median "mem.$mode.mountfile")" - -
	done
fi

# Absolute medians (seconds; IOPS for fio), for reference only.
{
	echo "# absolute medians (seconds; fio: IOPS) and min-max over runs"
	for k in $(awk '{ print $1 }' "$RAW" | grep -v '^ratio\.' | sort -u); do
		echo "abs.$k $(median "$k") $(minmax "$k")"
	done
} >>"$RES"

say ""
say "== results: blob $SIZE bytes, median of $BENCH_RUNS alternating runs (ratios side by side)"
printf '%-58s %10s  %-8s %s\n' "figure" "ratio" "target" "verdict"
printf '%s\n' "${ROWS[@]}"
say ""
say "absolute medians (s; fio IOPS) [min-max]:"
grep '^abs\.' "$RES" | sed 's/^abs\./  /'
say ""
say "bench: results in $RES (raw measurements: $RAW)"
