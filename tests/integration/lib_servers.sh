# lib_servers.sh - more servers on 127.0.0.1 for the source tests (issue 8):
# extra nginx instances with their own config, a private CA, and Debian's
# docker-registry (distribution 2.8). Source it after lib.sh and af_world;
# everything started here is stopped by PID at cleanup (EXTRA_PIDS).

# nginx_head NAME: the common head of an nginx config living in $T/NAME
# (pid file, logs, temp paths); the caller appends the "http { … }" body.
nginx_head() {
	local d=$T/$1
	mkdir -p "$d/tmp" "$d/logs"
	cat <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 256; }
EOF
}

# nginx_temp NAME: the temp path lines for the http block of nginx NAME.
nginx_temp() {
	local d=$T/$1
	cat <<EOF
    client_body_temp_path $d/tmp;
    proxy_temp_path $d/tmp;
    fastcgi_temp_path $d/tmp;
    uwsgi_temp_path $d/tmp;
    scgi_temp_path $d/tmp;
EOF
}

# nginx_extra NAME: starts the nginx configured in $T/NAME/nginx.conf.
nginx_extra() {
	local d=$T/$1 pid
	if ! nginx -c "$d/nginx.conf" -p "$d" 2>"$d/start.err"; then
		cat "$d/start.err" >&2
		return 1
	fi
	for _ in $(seq 1 50); do [ -s "$d/nginx.pid" ] && break; sleep 0.1; done
	pid=$(cat "$d/nginx.pid")
	EXTRA_PIDS="$EXTRA_PIDS $pid"
}

# tls_certs: a private CA ($T/tls/ca.pem) and a certificate for 127.0.0.1
# signed by it ($T/tls/srv.pem, $T/tls/srv.key).
tls_certs() {
	local tls=$T/tls
	mkdir -p "$tls"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=artifactfs test CA" \
		-keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1 || return 1
	openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
		-keyout "$tls/srv.key" -out "$tls/srv.csr" >/dev/null 2>&1 || return 1
	printf 'subjectAltName=IP:127.0.0.1\n' >"$tls/ext"
	openssl x509 -req -in "$tls/srv.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
		-CAcreateserial -days 2 -extfile "$tls/ext" -out "$tls/srv.pem" >/dev/null 2>&1
}

# conf_section SECTION KEY VALUE: appends "[SECTION]\nKEY = VALUE" to the
# test's config.
conf_section() {
	printf '\n[%s]\n%s = %s\n' "$1" "$2" "$3" >>"$T/artifactfs.conf"
}

# fetch_reason DIGEST: the reason of the last fetch_failed/verify_failed
# audit line of that digest.
fetch_reason() {
	grep -E '"event":"(fetch_failed|verify_failed)"' "$T/audit.jsonl" 2>/dev/null |
		grep -F "$1" | tail -n 1 | sed -n 's/.*"reason":"\([^"]*\)".*/\1/p'
}

# reason_has DIGEST TEXT: fetch_reason of DIGEST contains TEXT.
reason_has() {
	fetch_reason "$1" | grep -qF -- "$2"
}
