# lib.sh - shared by the integration tests: a temp world with nginx on
# 127.0.0.1, a config, a registry, a policy and a real FUSE mount, all torn
# down by a trap whatever happens. Source it, then call af_world.
#
# Every process started here is stopped by its PID; every mount unmounted.

set -u
AF_BUILD=${AF_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
AF=$AF_BUILD/artifactfs
PROBE=$AF_BUILD/tests/afprobe
FAULTD=$AF_BUILD/tests/faultd
CPD=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)/cpd.py
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

T=""
NGINX_PID=""
NGINX_PORT=""
AF_PID=""
FAULTD_PID=""
FAULTD_PORT=""
EXTRA_PIDS=""	# more processes a test started, stopped by PID at cleanup
EXTRA_MOUNTS=""	# more mount points a test made (a small tmpfs), unmounted at cleanup
SQUID_PID=""
SQUID_PORT=""
TIER_PID=""	# start_slice_tier: nginx proxy_cache + slice in front of the origin
TIER_PORT=""
FLEET_PIDS=()	# fleet_up: one daemon per node, node i at index i-1
FLEET_N=0
FLEET_MS=0	# fleet_read_all: milliseconds until the last node finished
TEST_NAME=$(basename "$0" .sh)
FAILS=0
CHECKS=0

log() { printf '  %s\n' "$*"; }

fail() {
	FAILS=$((FAILS + 1))
	printf '  FAIL: %s\n' "$*"
}

# ok DESCRIPTION COMMAND...: runs the command, counts a check.
ok() {
	local what=$1; shift
	CHECKS=$((CHECKS + 1))
	if "$@" >/dev/null 2>&1; then
		printf '  ok: %s\n' "$what"
	else
		fail "$what"
	fi
}

# expect DESCRIPTION WANT COMMAND...: the command's stdout must equal WANT.
expect() {
	local what=$1 want=$2 got; shift 2
	CHECKS=$((CHECKS + 1))
	got=$("$@" 2>/dev/null)
	if [ "$got" = "$want" ]; then
		printf '  ok: %s\n' "$what"
	else
		fail "$what: want '$want', got '$got'"
	fi
}

af_cleanup() {
	local rc=$?
	set +e
	if [ -n "$AF_PID" ] && kill -0 "$AF_PID" 2>/dev/null; then
		kill -TERM "$AF_PID" 2>/dev/null
		for _ in $(seq 1 50); do kill -0 "$AF_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$AF_PID" 2>/dev/null
	fi
	if [ -n "$T" ] && mountpoint -q "$T/mnt" 2>/dev/null; then
		fusermount3 -u -z "$T/mnt" 2>/dev/null || umount -l "$T/mnt" 2>/dev/null
	fi
	fleet_down >/dev/null 2>&1
	for m in $EXTRA_MOUNTS; do
		mountpoint -q "$m" 2>/dev/null && umount -l "$m" 2>/dev/null
	done
	[ -n "$TIER_PID" ] && kill -TERM "$TIER_PID" 2>/dev/null
	if [ -n "$SQUID_PID" ]; then
		kill -TERM "$SQUID_PID" 2>/dev/null
		for _ in $(seq 1 50); do kill -0 "$SQUID_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$SQUID_PID" 2>/dev/null
	fi
	[ -n "$NGINX_PID" ] && kill -TERM "$NGINX_PID" 2>/dev/null
	[ -n "$FAULTD_PID" ] && kill -TERM "$FAULTD_PID" 2>/dev/null
	for p in $EXTRA_PIDS; do kill -TERM "$p" 2>/dev/null; done
	# A sanitizer report in any daemon's log fails the test, whatever the
	# checks saw (ASan, UBSan, TSan all say so in their first line).
	if [ -n "$T" ] && grep -lE 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' \
		"$T"/daemon*.log >/dev/null 2>&1; then
		fail "sanitizer report in $(grep -lE 'Sanitizer|runtime error:' "$T"/daemon*.log | head -n 1)"
		grep -hE -A 30 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' \
			"$T"/daemon*.log | head -n 60
	fi
	if [ -n "$T" ] && [ -f "$T/.users" ]; then
		while read -r u; do userdel "$u" 2>/dev/null; done <"$T/.users"
	fi
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ "$FAILS" -gt 0 ] || [ "$rc" -ne 0 ]; then
			for f in "$T"/daemon*.log; do
				[ -f "$f" ] || continue
				echo "  --- $f (last 40 lines)"; tail -n 40 "$f"
			done
		fi
		if [ -n "${AF_KEEP:-}" ]; then echo "  kept $T"; else rm -rf "$T"; fi
	fi
	if [ "$rc" -eq 0 ] && [ "$FAILS" -gt 0 ]; then rc=1; fi
	echo "$TEST_NAME: $((CHECKS - FAILS)) passed, $FAILS failed"
	exit "$rc"
}

# af_user PREFIX: creates a system user PREFIX<random> (no home, no shell),
# prints its name; it is removed at cleanup.
af_user() {
	local u
	u="$1$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
	useradd --system --no-create-home --shell /usr/sbin/nologin "$u" >/dev/null 2>&1 || return 1
	echo "$u" >>"$T/.users"
	echo "$u"
}

# A free TCP port on 127.0.0.1 (checked with ss; callers retry on a race).
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

# af_world [CHUNK]: temp folders, nginx serving $T/www, config, policy.
af_world() {
	local chunk=${1:-8M}
	T=$(mktemp -d /tmp/aftest.XXXXXX)
	chmod 0755 "$T"
	trap af_cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$T/www" "$T/cache" "$T/registry" "$T/mnt" "$T/nginx/logs" "$T/nginx/tmp"
	start_nginx
	cat >"$T/artifactfs.conf" <<EOF
; integration test config ($TEST_NAME)
[cache]
dir = $T/cache
chunk_size = $chunk

[registry]
dir = $T/registry
refresh = 1s

[policy]
file = $T/policy.json

[fetch]
connections = 4
retries = 2
connect_timeout = 5s
low_speed_timeout = 5s

[audit]
log = $T/audit.jsonl
EOF
	write_policy
}

# write_policy [EXTRA_SOURCES_JSON]: allow http://127.0.0.1:PORT/ok-ish paths.
write_policy() {
	local extra=${1:-}
	cat >"$T/policy.json" <<EOF
{
  "digest_algorithms": ["sha256", "sha512"],
  "readable_lifecycle_states": ["active", "deprecated"],
  "min_trust_state": "verified",
  "sources": [
    {"source_type": "https", "uri_prefix": "http://127.0.0.1:$NGINX_PORT/blobs/"},
    {"source_type": "https", "uri_prefix": "http://127.0.0.1:$NGINX_PORT/slow/"},
    {"source_type": "https", "uri_prefix": "http://127.0.0.1:$NGINX_PORT/norange/"}$extra
  ],
  "projects": {}
}
EOF
}

start_nginx() {
	local conf=$T/nginx/nginx.conf
	for _ in 1 2 3 4 5; do
		NGINX_PORT=$(free_port) || return 1
		cat >"$conf" <<EOF
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log warn;
events { worker_connections 256; }
http {
    access_log $T/nginx/logs/access.log;
    client_body_temp_path $T/nginx/tmp;
    proxy_temp_path $T/nginx/tmp;
    fastcgi_temp_path $T/nginx/tmp;
    uwsgi_temp_path $T/nginx/tmp;
    scgi_temp_path $T/nginx/tmp;
    sendfile on;
    keepalive_requests 100000;
    log_format bytes '\$request_method \$uri \$status \$body_bytes_sent "\$http_range"';
    server {
        listen 127.0.0.1:$NGINX_PORT;
        access_log $T/nginx/logs/access.log bytes;
        location /blobs/ { alias $T/www/; autoindex on; }
        location /slow/ { alias $T/www/; limit_rate 512k; }
        location /norange/ { alias $T/www/; max_ranges 0; }
        # A registry-shaped path by digest (mirror_blob), for the tiers.
        location /v2/vision/blobs/ { alias $T/www/oci/; }
    }
}
EOF
		if nginx -c "$conf" -p "$T/nginx" 2>"$T/nginx/start.err"; then
			for _ in $(seq 1 50); do [ -s "$T/nginx/nginx.pid" ] && break; sleep 0.1; done
			NGINX_PID=$(cat "$T/nginx/nginx.pid")
			return 0
		fi
	done
	cat "$T/nginx/start.err" >&2
	return 1
}

# start_faultd: the fault-injecting server on 127.0.0.1 serving $T/www.
start_faultd() {
	"$FAULTD" --root "$T/www" --port-file "$T/faultd.port" --log "$T/faultd.log" \
		>"$T/faultd.out" 2>&1 &
	FAULTD_PID=$!
	for _ in $(seq 1 50); do [ -s "$T/faultd.port" ] && break; sleep 0.1; done
	FAULTD_PORT=$(cat "$T/faultd.port")
}

# Bytes nginx sent for /blobs/NAME (or DIR/NAME with a second argument).
nginx_bytes() {
	awk -v p="/${2:-blobs}/$1" '$2 == p { s += $4 } END { printf "%.0f\n", s }' "$T/nginx/logs/access.log"
}

nginx_requests() {
	awk -v p="/blobs/$1" '$2 == p { n++ } END { print n + 0 }' "$T/nginx/logs/access.log"
}

# make_blob NAME SIZE: random bytes in $T/www/NAME.
make_blob() {
	head -c "$2" /dev/urandom >"$T/www/$1"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# register FILE_NAME [key=value ...]: a registration for $T/www/FILE_NAME.
# Keys: project name uri digest size lifecycle trust channels source_type
# registered_at out (registry file name).
register() {
	local file=$1; shift
	local project=vision name=$file digest="sha256:$(sha256_of "$T/www/$file")"
	local uri="http://127.0.0.1:$NGINX_PORT/blobs/$file" size
	local lifecycle=active trust=verified channels='[]' source_type=https
	local registered_at=2026-03-09T12:00:00Z out=""
	size=$(stat -c %s "$T/www/$file")
	for kv in "$@"; do
		case $kv in
		project=*) project=${kv#*=} ;;
		name=*) name=${kv#*=} ;;
		uri=*) uri=${kv#*=} ;;
		digest=*) digest=${kv#*=} ;;
		size=*) size=${kv#*=} ;;
		lifecycle=*) lifecycle=${kv#*=} ;;
		trust=*) trust=${kv#*=} ;;
		channels=*) channels=${kv#*=} ;;
		source_type=*) source_type=${kv#*=} ;;
		registered_at=*) registered_at=${kv#*=} ;;
		out=*) out=${kv#*=} ;;
		*) echo "register: unknown $kv" >&2; return 1 ;;
		esac
	done
	local size_field=""
	[ "$size" != none ] && size_field="\"size_bytes\": $size,"
	[ -n "$out" ] || out="$project-$name-${digest#*:}.json"
	mkdir -p "$(dirname "$T/registry/$out")"
	cat >"$T/registry/$out" <<EOF
{
  "project": "$project",
  "name": "$name",
  "artifact_kind": "blob",
  "digest": "$digest",
  "source": {"source_type": "$source_type", "uri": "$uri", "source_ref": null,
             $size_field "content_encoding": "identity"},
  "lifecycle_state": "$lifecycle",
  "trust_state": "$trust",
  "channels": $channels,
  "allowlist_decision": {"decision": "allow", "policy": "default", "decided_at": "2026-03-09T12:00:00Z"},
  "attestation": null,
  "registered_at": "$registered_at"
}
EOF
	echo "$digest"
}

# mount_af [EXTRA ARGS]: mount in the foreground (background job), wait.
mount_af() {
	"$AF" mount -f -c "$T/artifactfs.conf" "$@" "$T/mnt" >>"$T/daemon.log" 2>&1 &
	AF_PID=$!
	for _ in $(seq 1 100); do
		mountpoint -q "$T/mnt" && return 0
		kill -0 "$AF_PID" 2>/dev/null || break
		sleep 0.1
	done
	fail "mount did not come up"
	cat "$T/daemon.log" >&2
	return 1
}

# stop_wait PID SECS: SIGTERM to PID, then up to SECS seconds for it to
# end. 1 when it did not, after saying where each of its threads waits:
# a stop that hangs is named, not left to the test's timeout.
stop_wait() {
	local pid=$1 secs=$2 t
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 $((secs * 10))); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "daemon $pid still runs $secs s after SIGTERM: $(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)"
	for t in /proc/"$pid"/task/*; do
		log "  thread $(basename "$t") $(cat "$t/comm" 2>/dev/null) in $(cat "$t/wchan" 2>/dev/null)"
	done
	return 1
}

# umount_af: SIGTERM, which must unmount cleanly and exit 0, within
# UMOUNT_WAIT seconds (60); a daemon still there then is killed.
umount_af() {
	local rc
	[ -n "$AF_PID" ] || return 0
	if ! stop_wait "$AF_PID" "${UMOUNT_WAIT:-60}"; then
		fail "the daemon did not exit within ${UMOUNT_WAIT:-60} s of SIGTERM"
		kill -KILL "$AF_PID"
		wait "$AF_PID" 2>/dev/null
		AF_PID=""
		umount -l "$T/mnt" 2>/dev/null
		return 1
	fi
	wait "$AF_PID"; rc=$?
	AF_PID=""
	if mountpoint -q "$T/mnt"; then
		fail "still mounted after SIGTERM"
		return 1
	fi
	return "$rc"
}

# audit_has EVENT [FIELD=VALUE]: an audit line with that event (and text).
audit_has() {
	local ev=$1 extra=${2:-}
	grep "\"event\":\"$ev\"" "$T/audit.jsonl" 2>/dev/null | grep -q -- "$extra"
}

audit_count() {
	grep -c "\"event\":\"$1\"" "$T/audit.jsonl" 2>/dev/null || true
}

# conf_set FILE SECTION KEY VALUE: sets KEY = VALUE in [SECTION] of an INI
# file (replacing the key, else adding it right after the section header,
# else appending the section).
conf_set() {
	local f=$1 sec=$2 key=$3 val=$4
	awk -v sec="[$sec]" -v key="$key" -v val="$val" '
		function flush() { if (insec && !done) { print key " = " val; done = 1 } }
		/^\[/ { if (insec) flush(); insec = ($0 == sec); if (insec) seen = 1; print; next }
		insec && $1 == key && $2 == "=" { if (!done) print key " = " val; done = 1; next }
		{ print }
		END { if (insec) flush(); if (!seen) { print ""; print sec; print key " = " val } }
	' "$f" >"$f.new" && mv "$f.new" "$f"
}

# squid_conf DIR PORT: a Squid configuration for a caching forward proxy on
# 127.0.0.1:PORT whose files all live in DIR (docs/FLEET.md explains every
# setting; keep the two in step).
squid_conf() {
	local d=$1 port=$2
	cat <<EOF
# artifactfs fleet tier: a caching forward proxy (docs/FLEET.md)
http_port 127.0.0.1:$port
pid_filename $d/squid.pid
cache_effective_user proxy
cache_dir ufs $d/cache 2048 16 256
coredump_dir $d/cache
cache_log $d/logs/cache.log
access_log stdio:$d/logs/access.log squid
cache_store_log none
logfile_rotate 0
netdb_filename none
pinger_enable off
acl fleet src 127.0.0.1/32
http_access allow fleet
http_access deny all
collapsed_forwarding on
range_offset_limit -1
quick_abort_min -1 KB
maximum_object_size 4 GB
cache_mem 256 MB
maximum_object_size_in_memory 64 MB
refresh_pattern . 1440 100% 10080
shutdown_lifetime 1 seconds
EOF
}

# start_squid: Debian's squid as a caching proxy on 127.0.0.1:$SQUID_PORT,
# its config, cache, logs and pid file in $T/squid; stopped at cleanup.
start_squid() {
	local d=$T/squid
	mkdir -p "$d/cache" "$d/logs"
	chown -R proxy:proxy "$d/cache" "$d/logs"
	for _ in 1 2 3 4 5; do
		SQUID_PORT=$(free_port) || return 1
		squid_conf "$d" "$SQUID_PORT" >"$d/squid.conf"
		squid -N -z -f "$d/squid.conf" >"$d/logs/init.out" 2>&1 || { cat "$d/logs/init.out" >&2; return 1; }
		squid -N -f "$d/squid.conf" >>"$d/logs/squid.out" 2>&1 &
		SQUID_PID=$!
		for _ in $(seq 1 100); do
			ss -Htln "sport = :$SQUID_PORT" 2>/dev/null | grep -q . && return 0
			kill -0 "$SQUID_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -TERM "$SQUID_PID" 2>/dev/null
		wait "$SQUID_PID" 2>/dev/null
		SQUID_PID=""
	done
	tail -n 20 "$d/logs/cache.log" >&2
	return 1
}

# stop_squid: SIGTERM, wait until it exited (shutdown_lifetime is 1 s).
stop_squid() {
	[ -n "$SQUID_PID" ] || return 0
	kill -TERM "$SQUID_PID" 2>/dev/null
	wait "$SQUID_PID" 2>/dev/null
	SQUID_PID=""
}

# Requests Squid answered for /blobs/NAME, and how many it had to fetch
# (a miss that went to the origin itself; collapsed ones are TCP_CF_MISS).
squid_requests() {
	awk -v p="/blobs/$1" 'index($7, p) { n++ } END { print n + 0 }' "$T/squid/logs/access.log"
}

# fleet_up N: N daemons on one machine, node i with its own config
# ($T/nI/artifactfs.conf: $T/artifactfs.conf with its own cache.dir and
# audit log), cache ($T/nI/cache), mount ($T/nI/mnt) and log
# ($T/daemon-nI.log); all share the origin, registry and policy of the
# world. Waits until every mount answers.
fleet_up() {
	local n=$1 i p
	FLEET_N=$n
	FLEET_PIDS=()
	for i in $(seq 1 "$n"); do
		mkdir -p "$T/n$i/cache" "$T/n$i/mnt"
		sed -e "s|^dir = $T/cache\$|dir = $T/n$i/cache|" \
			-e "s|^log = $T/audit.jsonl\$|log = $T/n$i/audit.jsonl|" \
			"$T/artifactfs.conf" >"$T/n$i/artifactfs.conf"
		"$AF" mount -f -c "$T/n$i/artifactfs.conf" "$T/n$i/mnt" >>"$T/daemon-n$i.log" 2>&1 &
		FLEET_PIDS+=("$!")
	done
	for i in $(seq 1 "$n"); do
		p=${FLEET_PIDS[$((i - 1))]}
		for _ in $(seq 1 200); do
			mountpoint -q "$T/n$i/mnt" && continue 2
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		fail "fleet: node $i did not mount"
		tail -n 20 "$T/daemon-n$i.log" >&2
		return 1
	done
}

# fleet_down: SIGTERM every node; each must unmount cleanly and exit 0.
fleet_down() {
	local i p rc=0
	for i in $(seq 1 "$FLEET_N"); do
		p=${FLEET_PIDS[$((i - 1))]:-}
		[ -n "$p" ] && kill -TERM "$p" 2>/dev/null
	done
	for i in $(seq 1 "$FLEET_N"); do
		p=${FLEET_PIDS[$((i - 1))]:-}
		[ -n "$p" ] || continue
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null && rc=1
		wait "$p" 2>/dev/null || rc=1
		if mountpoint -q "$T/n$i/mnt" 2>/dev/null; then
			fusermount3 -u -z "$T/n$i/mnt" 2>/dev/null || umount -l "$T/n$i/mnt" 2>/dev/null
			rc=1
		fi
	done
	FLEET_PIDS=()
	FLEET_N=0
	return "$rc"
}

# fleet_read_all PATH: every node opens PATH (below its mount) at the same
# moment and reads it to the end; node i's SHA-256 of what it read goes to
# $T/nI/sum (empty when open or read failed). FLEET_MS: milliseconds from
# the start until the last node finished.
fleet_read_all() {
	local path=$1 i pids=() t0 t1
	[ "$FLEET_N" -gt 0 ] || return 1
	rm -f "$T/fleet.go"
	for i in $(seq 1 "$FLEET_N"); do
		rm -f "$T/n$i/sum"
		(
			while [ ! -e "$T/fleet.go" ]; do sleep 0.005; done
			sha256sum <"$T/n$i/mnt/$path" 2>"$T/n$i/sum.err" | cut -d' ' -f1 >"$T/n$i/sum"
		) &
		pids+=("$!")
	done
	sleep 0.3
	t0=$(date +%s%N)
	touch "$T/fleet.go"
	wait "${pids[@]}"
	t1=$(date +%s%N)
	FLEET_MS=$(( (t1 - t0) / 1000000 ))
}

# fleet_count_sum HEX: how many nodes read bytes with that SHA-256.
fleet_count_sum() {
	local i n=0
	for i in $(seq 1 "$FLEET_N"); do
		[ "$(cat "$T/n$i/sum" 2>/dev/null)" = "$1" ] && n=$((n + 1))
	done
	echo "$n"
}

# fleet_audit_count EVENT [TEXT]: nodes whose audit log has such an event.
fleet_audit_count() {
	local i n=0
	for i in $(seq 1 "$FLEET_N"); do
		grep "\"event\":\"$1\"" "$T/n$i/audit.jsonl" 2>/dev/null | grep -q -- "${2:-}" && n=$((n + 1))
	done
	echo "$n"
}

# ratio_ok A B MAX: A / B <= MAX (decimal MAX, e.g. 1.05).
ratio_ok() { awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN { exit !(b > 0 && a / b <= m) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f\n", a / b; else print "nan" }'; }

# mirror_blob NAME: the origin also serves $T/www/NAME by digest, at
# /v2/vision/blobs/sha256:HEX (a hard link in $T/www/oci).
mirror_blob() {
	mkdir -p "$T/www/oci"
	ln -f "$T/www/$1" "$T/www/oci/sha256:$(sha256_of "$T/www/$1")"
}

# origin_bytes NAME: body bytes the origin sent for NAME, by name and by
# digest (mirror_blob) together.
origin_bytes() {
	local by_name by_digest
	by_name=$(nginx_bytes "$1")
	by_digest=$(awk -v p="/v2/vision/blobs/sha256:$(sha256_of "$T/www/$1")" \
		'$2 == p { s += $4 } END { printf "%.0f\n", s }' "$T/nginx/logs/access.log")
	echo $((by_name + by_digest))
}

# slice_tier_conf DIR PORT ORIGIN_PORT: an nginx cache tier on
# 127.0.0.1:PORT in front of the origin: proxy_cache + slice, one origin
# request per slice however many nodes miss at once (docs/FLEET.md
# explains every setting; keep the two in step).
slice_tier_conf() {
	local d=$1 port=$2 origin=$3
	cat <<EOF
# artifactfs fleet tier: nginx proxy_cache + slice (docs/FLEET.md)
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path $d/tmp;
    proxy_temp_path $d/tmp;
    fastcgi_temp_path $d/tmp;
    uwsgi_temp_path $d/tmp;
    scgi_temp_path $d/tmp;
    sendfile on;
    log_format tier '\$request_method \$uri \$status \$body_bytes_sent "\$http_range" \$upstream_cache_status';
    access_log $d/logs/access.log tier;
    proxy_cache_path $d/cache levels=1:2 keys_zone=blobs:16m max_size=8g
                     inactive=7d use_temp_path=off;
    server {
        listen 127.0.0.1:$port;
        location /v2/ {
            slice 1m;
            proxy_cache blobs;
            proxy_cache_key \$uri\$slice_range;
            proxy_set_header Range \$slice_range;
            proxy_cache_valid 200 206 7d;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 5m;
            proxy_cache_lock_age 5m;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://127.0.0.1:$origin;
        }
    }
}
EOF
}

# start_slice_tier: the tier above on $TIER_PORT, files in $T/tier.
start_slice_tier() {
	local d=$T/tier
	mkdir -p "$d/cache" "$d/tmp" "$d/logs"
	chown nobody:nogroup "$d/cache" "$d/tmp"
	for _ in 1 2 3 4 5; do
		TIER_PORT=$(free_port) || return 1
		slice_tier_conf "$d" "$TIER_PORT" "$NGINX_PORT" >"$d/nginx.conf"
		if nginx -c "$d/nginx.conf" -p "$d" 2>"$d/start.err"; then
			for _ in $(seq 1 50); do [ -s "$d/nginx.pid" ] && break; sleep 0.1; done
			TIER_PID=$(cat "$d/nginx.pid")
			return 0
		fi
	done
	cat "$d/start.err" >&2
	return 1
}

stop_slice_tier() {
	[ -n "$TIER_PID" ] || return 0
	kill -TERM "$TIER_PID" 2>/dev/null
	for _ in $(seq 1 50); do kill -0 "$TIER_PID" 2>/dev/null || break; sleep 0.1; done
	TIER_PID=""
}

# ---- the control plane (DESIGN §3): tests/tools/cpd.py on 127.0.0.1 ----

CPD_PID=""
CPD_PORT=""

# start_cpd NAME ROOT [ARGS...]: a control plane serving ROOT, its port in
# $T/NAME.port, its request log $T/NAME.log, its pid in $T/NAME.pid (and
# EXTRA_PIDS, stopped at cleanup). For NAME "cpd" also CPD_PID, CPD_PORT.
start_cpd() {
	local name=$1 root=$2 pid; shift 2
	rm -f "$T/$name.port"
	python3 "$CPD" serve --root "$root" --port-file "$T/$name.port" \
		--log "$T/$name.log" "$@" >>"$T/$name.out" 2>&1 &
	pid=$!
	EXTRA_PIDS="$EXTRA_PIDS $pid"
	echo "$pid" >"$T/$name.pid"
	for _ in $(seq 1 100); do [ -s "$T/$name.port" ] && break; sleep 0.05; done
	[ -s "$T/$name.port" ] || { fail "control plane $name did not start"; return 1; }
	if [ "$name" = cpd ]; then CPD_PID=$pid; CPD_PORT=$(cat "$T/$name.port"); fi
	touch "$T/$name.log"
}

# stop_cpd NAME: stops it by PID (the control plane goes down).
stop_cpd() {
	local pid
	pid=$(cat "$T/$1.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	rm -f "$T/$1.pid"
}

# cp_publish: the registry folder and policy.json become the control
# plane's documents ($T/cp), as a real control plane would serve them.
cp_publish() {
	python3 "$CPD" publish --from "$T/registry" --policy "$T/policy.json" --root "$T/cp"
}

# cp_world [REFRESH]: af_world, then a control plane with a token check
# at /api, and the config pointed at it (registry.url, token_file; the
# policy from /v1/policy, no policy file).
cp_world() {
	local refresh=${1:-1s}
	af_world
	mkdir -p "$T/cp/projects"
	echo "tok-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$T/cp-token"
	cp "$T/cp-token" "$T/token"
	cp_publish
	start_cpd cpd "$T/cp" --token-file "$T/cp-token" --prefix /api || return 1
	sed -i -e "/^\[registry\]/,/^\[/ { /^dir = /d; /^refresh = /d }" \
		-e "/^\[policy\]/,/^\[/ { /^file = /d }" "$T/artifactfs.conf"
	sed -i "s|^\[registry\]|[registry]\nurl = http://127.0.0.1:$CPD_PORT/api\ntoken_file = $T/token\nrefresh = $refresh|" \
		"$T/artifactfs.conf"
}

# cpd_count PATTERN [NAME]: requests in the control plane's log matching
# the extended regex PATTERN.
cpd_count() {
	grep -cE -- "$1" "$T/${2:-cpd}.log" 2>/dev/null || true
}

# audit_wait CMD...: retries the check CMD for up to 2 s (an open's audit
# line is written right after the reply the reader already has).
audit_wait() {
	for _ in $(seq 1 20); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	"$@"
}
