# lib_servers.sh - more servers on 127.0.0.1 for the source tests (issue 8):
# extra nginx instances with their own config, a private CA, and Debian's
# docker-registry (distribution 2.8). Source it after lib.sh and af_world;
# everything started here is stopped by PID at cleanup (EXTRA_PIDS).

# nginx_prepare NAME: the folders of an nginx living in $T/NAME.
nginx_prepare() {
	mkdir -p "$T/$1/tmp" "$T/$1/logs"
}

# nginx_head NAME: the common head of an nginx config living in $T/NAME
# (pid file, logs, temp paths), after nginx_prepare NAME; the caller
# appends the "http { … }" body.
nginx_head() {
	local d=$T/$1
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

# fetch_line DIGEST: the last fetch_failed/verify_failed audit line of
# that digest (JSON).
fetch_line() {
	grep -E '"event":"(fetch_failed|verify_failed)"' "$T/audit.jsonl" 2>/dev/null |
		grep -F "$1" | tail -n 1
}

# reason_has DIGEST TEXT: the reason of fetch_line DIGEST contains TEXT
# (quotes in TEXT as they read, unescaped).
reason_has() {
	local want=${2//\\/\\\\}
	want=${want//\"/\\\"}
	fetch_line "$1" | grep -o '"reason":"\([^"\\]\|\\.\)*"' | grep -qF -- "$want"
}

# start_registry NAME [REDIRECT_BASEURL]: Debian's docker-registry
# (distribution 2.8) on a free port of 127.0.0.1 with its data in
# $T/NAME/data, optionally with the redirect storage middleware pointing
# at REDIRECT_BASEURL; sets REG_PORT.
start_registry() {
	local d=$T/$1 mw="" pid
	command -v docker-registry >/dev/null || { echo "docker-registry is not installed (make deps)" >&2; return 1; }
	mkdir -p "$d/data"
	if [ -n "${2:-}" ]; then
		mw="middleware:
  storage:
    - name: redirect
      options:
        baseurl: $2"
	fi
	for _ in 1 2 3 4 5; do
		REG_PORT=$(free_port) || return 1
		cat >"$d/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $d/data
  delete:
    enabled: false
$mw
http:
  addr: 127.0.0.1:$REG_PORT
  secret: artifactfs-test
EOF
		docker-registry serve "$d/config.yml" >"$d/registry.log" 2>&1 &
		pid=$!
		EXTRA_PIDS="$EXTRA_PIDS $pid"
		for _ in $(seq 1 100); do
			curl -s -o /dev/null "http://127.0.0.1:$REG_PORT/v2/" && return 0
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	done
	cat "$d/registry.log" >&2
	return 1
}

# oci_push REGISTRY_URL REPOSITORY FILE: the OCI monolithic upload (POST
# to open an upload session, then PUT the bytes with ?digest=).
oci_push() {
	local url=$1 repo=$2 f=$3 d loc
	d=sha256:$(sha256_of "$f")
	loc=$(curl -sS -i -X POST "$url/v2/$repo/blobs/uploads/" | tr -d '\r' |
		sed -n 's/^[Ll]ocation: //p')
	[ -n "$loc" ] || return 1
	case $loc in /*) loc=$url$loc ;; esac
	case $loc in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
	test "$(curl -sS -o /dev/null -w '%{http_code}' -X PUT \
		-H 'Content-Type: application/octet-stream' --data-binary "@$f" "$loc")" = 201
}

# start_hf_hub TOKEN COMMIT: the Hugging Face Hub on two ports of
# 127.0.0.1, for every file $T/hf-hub/cdn/ORG/REPO/FILE present now:
# GET /ORG/REPO/resolve/COMMIT/FILE with "Authorization: Bearer TOKEN"
# answers 302 to the CDN port with X-Repo-Commit, X-Linked-Size and
# X-Linked-Etag (its sha256), as the Hub does for LFS files; without the
# token 401 with X-Error-Code GatedRepo. The CDN serves Range and answers
# 400 to any Authorization. Sets HF_PORT and HF_CDN_PORT; the access log
# ($T/hf-hub/logs/access.log) says "PORT METHOD URI STATUS auth=0|1".
start_hf_hub() {
	local tok=$1 commit=$2 f rel sizes="" etags=""
	nginx_prepare hf-hub
	for f in $(cd "$T/hf-hub/cdn" && find . -type f | sed 's|^\./||'); do
		rel=/$f
		sizes="$sizes        \"/cdn$rel\" $(stat -c %s "$T/hf-hub/cdn/$f");
"
		etags="$etags        \"/cdn$rel\" '\"$(sha256_of "$T/hf-hub/cdn/$f")\"';
"
	done
	HF_PORT=$(free_port)
	HF_CDN_PORT=$(free_port)
	while [ "$HF_CDN_PORT" = "$HF_PORT" ]; do HF_CDN_PORT=$(free_port); done
	{
		nginx_head hf-hub
		cat <<EOF
http {
$(nginx_temp hf-hub)
    map \$http_authorization \$has_auth { "" 0; default 1; }
    log_format hf '\$server_port \$request_method \$uri \$status auth=\$has_auth';
    access_log $T/hf-hub/logs/access.log hf;
    map \$hf_cdn \$hf_size {
        default "";
$sizes    }
    map \$hf_cdn \$hf_etag {
        default "";
$etags    }
    server {
        listen 127.0.0.1:$HF_PORT;
        location ~ ^/(?<hf_repo>[^/]+/[^/]+)/resolve/$commit/(?<hf_file>.+)\$ {
            set \$hf_cdn /cdn/\$hf_repo/\$hf_file;
            if (\$http_authorization != "Bearer $tok") {
                add_header X-Error-Code GatedRepo always;
                return 401;
            }
            add_header X-Repo-Commit $commit always;
            add_header X-Linked-Size \$hf_size always;
            add_header X-Linked-Etag \$hf_etag always;
            return 302 http://127.0.0.1:$HF_CDN_PORT\$hf_cdn;
        }
    }
    server {
        listen 127.0.0.1:$HF_CDN_PORT;
        location /cdn/ {
            if (\$http_authorization) { return 400; }
            alias $T/hf-hub/cdn/;
        }
    }
}
EOF
	} >"$T/hf-hub/nginx.conf"
	nginx_extra hf-hub
}

# start_registry_front TOKEN REGISTRY_PORT: nginx on a free port in front
# of a registry, passing only requests with "Authorization: Bearer TOKEN"
# and answering others 401 with "WWW-Authenticate: Bearer realm=…"
# (STORE_REALM). Sets STORE_PORT; access log $T/store-front/logs/access.log
# says "METHOD URI STATUS auth=0|1 range=RANGE".
STORE_REALM=http://127.0.0.1:9/token
start_registry_front() {
	local tok=$1 reg=$2
	nginx_prepare store-front
	STORE_PORT=$(free_port)
	{
		nginx_head store-front
		cat <<EOF
http {
$(nginx_temp store-front)
    map \$http_authorization \$has_auth { "" 0; default 1; }
    log_format front '\$request_method \$request_uri \$status auth=\$has_auth range=\$http_range';
    access_log $T/store-front/logs/access.log front;
    server {
        listen 127.0.0.1:$STORE_PORT;
        location /v2/ {
            if (\$http_authorization != "Bearer $tok") {
                add_header WWW-Authenticate 'Bearer realm="$STORE_REALM",service="artifact-store.test",scope="repository:other/models:pull"' always;
                add_header Docker-Distribution-Api-Version registry/2.0 always;
                return 401 '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}';
            }
            proxy_pass http://127.0.0.1:$reg;
        }
$(cat "$T/store-front/extra.conf" 2>/dev/null)
    }
}
EOF
	} >"$T/store-front/nginx.conf"
	nginx_extra store-front
}
