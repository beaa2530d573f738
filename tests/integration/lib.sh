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
	awk -v p="/${2:-blobs}/$1" '$2 == p { s += $4 } END { print s + 0 }' "$T/nginx/logs/access.log"
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

# umount_af: SIGTERM, which must unmount cleanly and exit 0.
umount_af() {
	local rc
	[ -n "$AF_PID" ] || return 0
	kill -TERM "$AF_PID"
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
