# creds.sh - shared by the integration tests of credentials and object-store
# sources (issue 7): credential files, the emulators (s3rver and Azurite
# from npm, installed once into a cache folder; a gcs location on nginx),
# and the secrets scan. Source it after lib.sh.
#
# Emulators are pinned, installed by `npm install` into
# ${AF_EMU_DIR:-/var/cache/artifactfs-test/npm}/<name>-<version>, started
# on 127.0.0.1 by the test and stopped by PID (EXTRA_PIDS). When npm or
# the registry cannot be reached, the cases that need them print
# "SKIP: <why>" and a test made only of them exits 77 (run.sh counts it as
# skipped, never as passed).

AF_EMU_DIR=${AF_EMU_DIR:-/var/cache/artifactfs-test/npm}
CREDS_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RVER_SPEC=@20minutes/s3rver@5.0.0
AZURITE_SPEC=azurite@3.37.0
# Azurite's well-known development account (public, documented by Microsoft).
AZ_ACCOUNT=devstoreaccount1
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
EMU_SKIP=""
S3_PORT=""
AZ_PORT=""
GCS_PORT=""
SKIPS=0

skip() {
	SKIPS=$((SKIPS + 1))
	printf '  SKIP: %s\n' "$*"
}

# iso_in SECONDS: an RFC 3339 UTC time that many seconds from now.
iso_in() { date -u -d "@$(( $(date +%s) + $1 ))" +%Y-%m-%dT%H:%M:%SZ; }

# cred_file NAME TYPE SCOPE EXPIRES_IN KEY=VALUE...: a credentials.dir file
# (0600), written to a temp name and renamed, as a node agent would.
cred_file() {
	local name=$1 type=$2 scope=$3 exp=$4 extra="" kv
	shift 4
	for kv in "$@"; do
		extra="$extra, \"${kv%%=*}\": \"${kv#*=}\""
	done
	mkdir -p "$T/creds"
	chmod 0700 "$T/creds"
	if [ "$exp" = none ]; then
		printf '{"source_type": "%s", "scope": "%s"%s}\n' "$type" "$scope" \
			"$extra" >"$T/creds/.$name.tmp"
	else
		printf '{"source_type": "%s", "scope": "%s", "expires_at": "%s"%s}\n' \
			"$type" "$scope" "$(iso_in "$exp")" "$extra" >"$T/creds/.$name.tmp"
	fi
	chmod 0600 "$T/creds/.$name.tmp"
	mv "$T/creds/.$name.tmp" "$T/creds/$name"
}

# conf_add SECTION 'key = value': adds a line to a section of the config
# (creating the section at the end when missing).
conf_add() {
	if grep -q "^\[$1\]" "$T/artifactfs.conf"; then
		sed -i "s|^\[$1\]|[$1]\n$2|" "$T/artifactfs.conf"
	else
		printf '\n[%s]\n%s\n' "$1" "$2" >>"$T/artifactfs.conf"
	fi
}

# policy_allow TYPE PREFIX...: a policy allowing these (type, prefix) pairs
# besides the nginx ones of lib.sh.
policy_allow() {
	local extra="" type=$1
	shift
	for p in "$@"; do
		extra="$extra,
    {\"source_type\": \"$type\", \"uri_prefix\": \"$p\"}"
	done
	POLICY_EXTRA="${POLICY_EXTRA:-}$extra"
	write_policy "$POLICY_EXTRA"
}

# emu_install NAME SPEC: the npm package SPEC installed once into
# $AF_EMU_DIR/NAME (serialized with flock); prints that folder. On failure
# returns 1 with the reason in EMU_SKIP.
emu_install() {
	local name=$1 spec=$2 dir=$AF_EMU_DIR/$1
	if [ -f "$dir/.installed" ]; then
		echo "$dir"
		return 0
	fi
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		EMU_SKIP="node/npm not installed (make deps installs them)"
		return 1
	fi
	mkdir -p "$AF_EMU_DIR" || { EMU_SKIP="cannot create $AF_EMU_DIR"; return 1; }
	if ! (
		flock 9
		[ -f "$dir/.installed" ] && exit 0
		mkdir -p "$dir"
		timeout 600 npm install --prefix "$dir" --no-audit --no-fund \
			--no-save --loglevel=error "$spec" >"$dir.log" 2>&1 &&
			touch "$dir/.installed"
	) 9>"$dir.lock"; then
		EMU_SKIP="npm install $spec failed (npm registry unreachable?): $(tail -n 1 "$dir.log" 2>/dev/null)"
		return 1
	fi
	echo "$dir"
}

# start_s3rver BUCKET...: s3rver on 127.0.0.1 (credentials S3RVER/S3RVER,
# SigV4 checked), data in $T/s3rver; sets S3_PORT. 1 + EMU_SKIP if it
# cannot be installed.
start_s3rver() {
	local dir
	dir=$(emu_install s3rver-5.0.0 "$S3RVER_SPEC") || return 1
	mkdir -p "$T/s3rver"
	node "$CREDS_HERE/s3rver.js" "$dir" "$T/s3rver" "$T/s3rver.port" "$@" \
		>"$T/s3rver.log" 2>&1 &
	EXTRA_PIDS="$EXTRA_PIDS $!"
	for _ in $(seq 1 100); do [ -s "$T/s3rver.port" ] && break; sleep 0.1; done
	S3_PORT=$(cat "$T/s3rver.port" 2>/dev/null)
	[ -n "$S3_PORT" ] || { fail "s3rver did not start"; cat "$T/s3rver.log" >&2; return 2; }
}

# s3_put FILE BUCKET KEY [SECRET]: uploads with curl's own SigV4 signer
# (KEY as it goes in the URL path, percent-encoded).
s3_put() {
	curl -sS -f -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" \
		--user "S3RVER:${4:-S3RVER}" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
		-T "$1" "http://127.0.0.1:$S3_PORT/$2/$3"
}

# start_azurite: Azurite's blob service on 127.0.0.1, data in $T/azurite;
# sets AZ_PORT. 1 + EMU_SKIP if it cannot be installed.
start_azurite() {
	local dir pid
	dir=$(emu_install azurite-3.37.0 "$AZURITE_SPEC") || return 1
	mkdir -p "$T/azurite"
	for _ in 1 2 3 4 5; do
		AZ_PORT=$(free_port) || return 2
		"$dir/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 \
			--blobPort "$AZ_PORT" --location "$T/azurite" \
			--disableTelemetry --silent >"$T/azurite.log" 2>&1 &
		pid=$!
		EXTRA_PIDS="$EXTRA_PIDS $pid"
		for _ in $(seq 1 150); do
			curl -s -o /dev/null "http://127.0.0.1:$AZ_PORT/" && return 0
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	done
	fail "azurite did not start"
	cat "$T/azurite.log" >&2
	return 2
}

# az_sas account|blob EXPIRES_IN [CONTAINER BLOB]: a SAS made with the
# account key (tests/integration/azsas.js).
az_sas() {
	local kind=$1 exp
	exp=$(iso_in "$2")
	shift 2
	node "$CREDS_HERE/azsas.js" "$kind" "$AZ_ACCOUNT" "$AZ_KEY" "$exp" "$@"
}

# az_put FILE CONTAINER BLOB_PATH: creates the container (once) and uploads.
az_put() {
	local sas base=http://127.0.0.1:$AZ_PORT/$AZ_ACCOUNT
	sas=$(az_sas account 3600)
	curl -sS -o /dev/null -X PUT -H "x-ms-version: 2021-08-06" \
		"$base/$2?restype=container&$sas"
	curl -sS -f -o /dev/null -X PUT -H "x-ms-version: 2021-08-06" \
		-H "x-ms-blob-type: BlockBlob" --data-binary "@$1" "$base/$2/$3?$sas"
}

# start_gcs TOKEN: nginx on 127.0.0.1 answering the GCS JSON API media
# download from $T/gcs/<bucket>/<object>: Range served, 401 with GCS's
# error body to a missing or wrong bearer token, 400 unless the object
# name arrives encoded whole (%2F) with alt=media. Sets GCS_PORT.
start_gcs() {
	local tok=$1 conf=$T/nginx-gcs/nginx.conf
	mkdir -p "$T/nginx-gcs/tmp" "$T/gcs"
	for _ in 1 2 3 4 5; do
		GCS_PORT=$(free_port) || return 1
		cat >"$conf" <<EOF
worker_processes 1;
pid $T/nginx-gcs/nginx.pid;
error_log $T/nginx-gcs/error.log warn;
events { worker_connections 64; }
http {
    log_format gcs '\$request_method \$request_uri \$status \$body_bytes_sent';
    access_log $T/nginx-gcs/access.log gcs;
    client_body_temp_path $T/nginx-gcs/tmp;
    proxy_temp_path $T/nginx-gcs/tmp;
    fastcgi_temp_path $T/nginx-gcs/tmp;
    uwsgi_temp_path $T/nginx-gcs/tmp;
    scgi_temp_path $T/nginx-gcs/tmp;
    server {
        listen 127.0.0.1:$GCS_PORT;
        location ~ ^/storage/v1/b/(?<bucket>[a-z0-9._-]+)/o/(?<object>.+)\$ {
            default_type application/json;
            if (\$http_authorization != "Bearer $tok") {
                return 401 '{"error": {"code": 401, "message": "Invalid Credentials", "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError", "locationType": "header", "location": "Authorization"}]}}';
            }
            if (\$request_uri !~ "^/storage/v1/b/[a-z0-9._-]+/o/[^/?]+[?]alt=media\$") {
                return 400 '{"error": {"code": 400, "message": "not a media download of an encoded object name", "errors": [{"reason": "badRequest"}]}}';
            }
            alias $T/gcs/\$bucket/\$object;
        }
    }
}
EOF
		if nginx -c "$conf" -p "$T/nginx-gcs" 2>"$T/nginx-gcs/start.err"; then
			for _ in $(seq 1 50); do [ -s "$T/nginx-gcs/nginx.pid" ] && break; sleep 0.1; done
			EXTRA_PIDS="$EXTRA_PIDS $(cat "$T/nginx-gcs/nginx.pid")"
			return 0
		fi
	done
	cat "$T/nginx-gcs/start.err" >&2
	return 1
}

# secrets_scan WHAT SECRET...: none of the secrets appears in the audit
# log, any daemon log, any saved command output ($T/*.out) or any xattr of
# any file of the mount (when mounted). One check per secret.
secrets_scan() {
	local what=$1 s files x
	shift
	files=$(ls "$T"/audit.jsonl "$T"/daemon*.log "$T"/*.out 2>/dev/null)
	x=$T/xattrs.scan
	: >"$x"
	if mountpoint -q "$T/mnt"; then
		find "$T/mnt" -mindepth 1 2>/dev/null | while read -r f; do
			getfattr -h -d -m - "$f" 2>/dev/null
		done >"$x"
	fi
	for s in "$@"; do
		CHECKS=$((CHECKS + 1))
		# shellcheck disable=SC2086
		if grep -F -q -- "$s" $files "$x" 2>/dev/null; then
			fail "$what: a secret (${#s} chars) leaked into: $(grep -F -l -- "$s" $files "$x" 2>/dev/null | tr '\n' ' ')"
		else
			printf '  ok: %s: secret not in audit, logs, outputs or xattrs\n' "$what"
		fi
	done
}
