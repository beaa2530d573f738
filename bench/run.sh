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
#   BENCH_ONLY        space-separated subset of: cold warm fio fanout mem attest s3
#                     fleet (bench/fleet.sh: N daemons behind a cache tier,
#                     its own world and knobs FLEET_N, FLEET_SIZE,
#                     FLEET_RUNS, FLEET_SETUPS) crash (the SIGKILL soak:
#                     tests/integration/t_crash.sh repeated CRASH_ROUNDS
#                     times, default 10, ~68 kills each, with a build that
#                     has the test hooks in build/hooks)
#   BENCH_S3_SIZE     blob size of the s3 figure (default 256M: s3rver is a
#                     node.js emulator; its own speed bounds both contenders)
#   BENCH_COLD        contenders of the cold figures (default: af curl
#                     curl_sha curl_sync rclone httpdirfs)
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

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
AF_BUILD=${AF_BUILD:-$TOP/build}
AF=$AF_BUILD/artifactfs
BENCH_SIZE=${BENCH_SIZE:-2G}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_FIO_SECS=${BENCH_FIO_SECS:-3}
BENCH_TMP=${BENCH_TMP:-/var/tmp}
BENCH_OUT=${BENCH_OUT:-$AF_BUILD/bench}
BENCH_SERVER=${BENCH_SERVER:-hot}
BENCH_ONLY=${BENCH_ONLY:-cold warm fio fanout mem attest fleet s3 crash}
BENCH_S3_SIZE=${BENCH_S3_SIZE:-256M}
BENCH_COLD=${BENCH_COLD:-af curl curl_sha curl_sync rclone httpdirfs}
CONNECTIONS=8

say() { printf '%s\n' "$*"; }
note() { printf '  %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
want() { case " $BENCH_ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

[ "$(id -u)" = 0 ] || die "needs root (drop_caches, FUSE mounts, passthrough)"
[ -x "$AF" ] || die "no $AF: run make first"
case $BENCH_RUNS in '' | *[!0-9]* | 0) die "BENCH_RUNS must be a positive integer" ;; esac

# The fleet figure (issue 14) brings its own world (bench/fleet.sh).
if want fleet; then
	AF_BUILD=$AF_BUILD BENCH_OUT=$BENCH_OUT bash "$HERE/fleet.sh" || die "the fleet figure failed"
	BENCH_ONLY=$(echo " $BENCH_ONLY " | sed 's/ fleet / /g; s/^ *//; s/ *$//')
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
# Peak use: served blob, up to two cache copies (warm mounts) and one
# contender's copy at a time, plus slack.
need=$((SIZE * 4 + 512 * MIB))
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
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "nan"; else printf "%.4f\n", a / b }'; }

# rec NAME RUN VALUE: one raw measurement.
rec() { printf '%s %s %s\n' "$1" "$2" "$3" >>"$RAW"; }

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
		cat "$W/www/blob.bin" >/dev/null
	fi
}

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

say "bench: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo) RAM, kernel $(uname -r)"
say "bench: blob $BENCH_SIZE ($SIZE bytes), $BENCH_RUNS runs, work dir $W, server page cache $BENCH_SERVER"
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
	"$AF" mount -f -c "$W/$name.conf" "$m" >>"$W/daemon-$name.log" 2>&1 &
	AFPID=$!
	PIDS+=("$AFPID")
	wait_mount "$AFPID" "$m" "$W/daemon-$name.log"
}

# Path of the blob through mount NAME, and of its cache data file.
af_path() { echo "$W/mnt/$1/vision/blob.bin@$DIGEST"; }
cache_file() { echo "$W/cache-$1/blobs/sha256/${HEX:0:2}/$HEX"; }

write_conf cold auto
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

cold_af() {
	local r=$1 t hwm n0 perf=""
	rm -rf "$W/cache-cold"
	af_mount cold
	drop_caches server
	if [ "${BENCH_PERF:-0}" = 1 ] && [ "$r" = 1 ]; then
		perf record -q -g -p "$AFPID" -o "$BENCH_OUT/perf-cold.data" 2>>"$W/perf.log" &
		perf=$!
		sleep 0.5
	elif [ "${BENCH_PERF:-0}" = trace ] && [ "$r" = 1 ]; then
		# Blocking calls of every thread (the job thread is created
		# later, so strace -f), with times; pwrite/recv are left out.
		strace -f --seccomp-bpf -tt -T -e trace=pread64,fdatasync,fsync,msync,futex \
			-p "$AFPID" -o "$BENCH_OUT/strace-cold.txt" 2>>"$W/perf.log" &
		perf=$!
		sleep 0.5
	fi
	n0=$(nginx_cpu)
	t=$(time_cmd readall "$(af_path cold)")
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$AFPID/status")
	rec cold.af "$r" "$t"
	rec rss.af_kib "$r" "$hwm"
	rec cpu.af.daemon "$r" "$(cpu_of "$AFPID")"
	rec cpu.af.nginx "$r" "$(awk -v a="$n0" -v b="$(nginx_cpu)" 'BEGIN { print b - a }')"
	if [ -n "$perf" ]; then
		kill -INT "$perf"; wait "$perf" || true
		# CPU seconds per thread (name, tid, user+system).
		for task in /proc/"$AFPID"/task/*; do
			awk -v hz="$(getconf CLK_TCK)" -v t="${task##*/}" \
				'{ printf "%s %s %.2f\n", $2, t, ($14 + $15) / hz }' "$task/stat"
		done >"$BENCH_OUT/threads-cold.txt"
	fi
	stop_fuse "$AFPID" "$W/mnt/cold"
	rm -rf "$W/cache-cold"
	note "artifactfs   ${t}s  (daemon VmHWM $((hwm / 1024)) MiB)"
}

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

curl_sha() { curl -fsS -o "$W/out/curl.bin" "$URL" && openssl dgst -sha256 "$W/out/curl.bin"; }
cold_curl_sha() {
	local r=$1 t
	rm -f "$W/out/curl.bin"
	drop_caches server
	t=$(time_cmd curl_sha)
	rec cold.curl_sha "$r" "$t"
	rm -f "$W/out/curl.bin"
	note "curl+sha256  ${t}s"
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
			[ "$k" != af ] || continue
			case " $BENCH_COLD " in *" ${k%.read} "*) ;; *) continue ;; esac
			rec "ratio.cold_vs_$k" "$r" "$(div \
				"$(awk -v r="$r" '$1 == "cold.af" && $2 == r { print $3 }' "$RAW")" \
				"$(awk -v k="cold.$k" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")")"
		done
	done
fi

# ---- 4, 5, 8: warm reads, passthrough on and off --------------------------

if want warm || want fio || want mem; then
	af_mount on
	PID_ON=$AFPID
	af_mount off
	PID_OFF=$AFPID
	readall "$(af_path on)"	# fetch and verify once
	readall "$(af_path off)"
	for mode in on off; do
		f=$(cache_file "$mode")
		[ -f "$f" ] || die "no cache file $f"
		[ "$(stat -c %s "$f")" = "$SIZE" ] || die "cache file $f has the wrong size"
	done
	grep -q 'passthrough: on' "$W/daemon-on.log" ||
		die "passthrough = on did not come up (see $W/daemon-on.log)"
fi
reads_of() { getfattr --only-values -n user.artifactfs.reads "$W/mnt/$1" 2>/dev/null || echo 0; }

if want warm; then
	say ""
	say "== warm sequential read of a verified blob: through the mount vs the cache file"
	for r in $(seq 1 "$BENCH_RUNS"); do
		say " run $r/$BENCH_RUNS"
		for state in cold hot; do
			for c in $(order "$r" direct.on via.on direct.off via.off); do
				mode=${c#*.}
				if [ "${c%.*}" = direct ]; then f=$(cache_file "$mode"); else f=$(af_path "$mode"); fi
				if [ "$state" = cold ]; then
					drop_caches
					t=$(time_cmd readall "$f")
				else
					readall "$f"	# make it hot
					ts=()
					for _ in 1 2 3; do ts+=("$(time_cmd readall "$f")"); done
					t=$(printf '%s\n' "${ts[@]}" | sort -g | sed -n 2p)
				fi
				rec "warm.$state.$c" "$r" "$t"
			done
			for mode in on off; do
				# throughput ratio = direct time / through-the-mount time
				rec "ratio.warm.$state.$mode" "$r" "$(div \
					"$(awk -v k="warm.$state.direct.$mode" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")" \
					"$(awk -v k="warm.$state.via.$mode" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")")"
			done
			note "$(printf '%-4s direct(on) %ss via(on) %ss | direct(off) %ss via(off) %ss' "$state" \
				"$(awk -v k="warm.$state.direct.on" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")" \
				"$(awk -v k="warm.$state.via.on" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")" \
				"$(awk -v k="warm.$state.direct.off" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")" \
				"$(awk -v k="warm.$state.via.off" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")")"
		done
	done
	r0=$(reads_of on)
	readall "$(af_path on)"
	rec pt.on.daemon_reads 1 $(( $(reads_of on) - r0 ))
fi

# fio: random 4 KiB reads, one job, psync, the same offsets (randrepeat) for
# every contender; the page cache is managed here (invalidate=0). fio splits
# --filename at ':' (the digest has one): escaped.
fio_iops() {
	local iops
	iops=$(fio --name=rand4k --filename="${1//:/\\:}" --readonly --rw=randread --bs=4k \
		--ioengine=psync --iodepth=1 --numjobs=1 --invalidate=0 --randrepeat=1 \
		--time_based --runtime="$BENCH_FIO_SECS" --output-format=terse \
		--terse-version=3 2>>"$W/fio.log" | awk -F';' '{ printf "%.0f\n", $8 }')
	[ -n "$iops" ] && [ "$iops" != 0 ] || { echo "bench: fio on $1 failed:" >&2; tail -n 5 "$W/fio.log" >&2; return 1; }
	echo "$iops"
}

if want fio; then
	say ""
	say "== fio random 4 KiB reads: through the mount vs the cache file (${BENCH_FIO_SECS}s each)"
	for r in $(seq 1 "$BENCH_RUNS"); do
		say " run $r/$BENCH_RUNS"
		for state in cold hot; do
			for c in $(order "$r" direct.on via.on direct.off via.off); do
				mode=${c#*.}
				if [ "${c%.*}" = direct ]; then f=$(cache_file "$mode"); else f=$(af_path "$mode"); fi
				if [ "$state" = cold ]; then drop_caches; else readall "$f"; fi
				rec "fio.$state.$c" "$r" "$(fio_iops "$f")"
			done
			for mode in on off; do
				rec "ratio.fio.$state.$mode" "$r" "$(div \
					"$(awk -v k="fio.$state.via.$mode" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")" \
					"$(awk -v k="fio.$state.direct.$mode" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")")"
			done
			note "$(printf '%-4s IOPS direct(on) %s via(on) %s | direct(off) %s via(off) %s' "$state" \
				"$(awk -v k="fio.$state.direct.on" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")" \
				"$(awk -v k="fio.$state.via.on" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")" \
				"$(awk -v k="fio.$state.direct.off" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")" \
				"$(awk -v k="fio.$state.via.off" -v r="$r" '$1 == k && $2 == r { print $3 }' "$RAW")")"
		done
	done
fi

# Page-cache memory held after reading the blob once through the mount, from
# a dropped page cache: the Cached delta of /proc/meminfo in blob sizes, and
# fincore of the cache file and of the file in the mount.
cached_kib() { awk '/^Cached:/ { print $2 }' /proc/meminfo; }
fincore_bytes() { fincore --bytes --noheadings --output RES "$1" 2>/dev/null | awk '{ printf "%.0f\n", $1 }'; }
if want mem; then
	say ""
	say "== page cache held after one read through the mount"
	for r in $(seq 1 "$BENCH_RUNS"); do
		for mode in $(order "$r" on off); do
			sync
			echo 3 >/proc/sys/vm/drop_caches
			c0=$(cached_kib)
			readall "$(af_path "$mode")"
			c1=$(cached_kib)
			fc=$(fincore_bytes "$(cache_file "$mode")")
			fm=$(fincore_bytes "$(af_path "$mode")")
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
	rm -rf "$W/cache-on" "$W/cache-off"
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
	echo "# machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), kernel $(uname -r)"
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
fi
if want warm; then
	row warm_cold_on "4 warm seq, cache dropped, passthrough on: via/direct" "$(median ratio.warm.cold.on)" ge 0.95
	row warm_cold_off "4 warm seq, cache dropped, passthrough off: via/direct" "$(median ratio.warm.cold.off)" ge 0.85
	row warm_hot_on "4 warm seq, cache hot, passthrough on: via/direct" "$(median ratio.warm.hot.on)" ge 0.95
	row warm_hot_off "4 warm seq, cache hot, passthrough off: via/direct" "$(median ratio.warm.hot.off)" ge 0.9
	row pt_on_daemon_reads "  info: daemon read requests, 1 read with passthrough on" "$(median pt.on.daemon_reads)" - -
fi
if want fio; then
	row fio_cold_on "5 fio 4K randread IOPS, cache dropped, pt on: via/direct" "$(median ratio.fio.cold.on)" ge 0.9
	row fio_cold_off "5 fio 4K randread IOPS, cache dropped, pt off: via/direct" "$(median ratio.fio.cold.off)" - -
	row fio_hot_on "5 fio 4K randread IOPS, cache hot, pt on: via/direct" "$(median ratio.fio.hot.on)" ge 0.9
	row fio_hot_off "5 fio 4K randread IOPS, cache hot, pt off: via/direct" "$(median ratio.fio.hot.off)" - -
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
	row mem_copies_on "8 page cache after 1 read, pt on: Cached delta / size" "$(median mem.on.copies)" le 1.1
	row mem_copies_off "8 page cache after 1 read, pt off: Cached delta / size" "$(median mem.off.copies)" - -
	row mem_cachefile_on "  info: pt on: fincore(cache file) / size" "$(median mem.on.cachefile)" - -
	row mem_mountfile_on "  info: pt on: fincore(mount file) / size" "$(median mem.on.mountfile)" - -
	row mem_cachefile_off "  info: pt off: fincore(cache file) / size" "$(median mem.off.cachefile)" - -
	row mem_mountfile_off "  info: pt off: fincore(mount file) / size" "$(median mem.off.mountfile)" - -
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
