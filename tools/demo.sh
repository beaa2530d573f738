#!/usr/bin/env bash
# make demo: the main job of artifactfs, end to end, on loopback.
#
# nginx on 127.0.0.1 serves two generated blobs; a temp folder holds the
# config, the policy and a file registry (the embedded default control
# plane); artifactfs mounts, lists, reads one artifact and checks its
# digest against the registration, and refuses the other, whose bytes at
# the source were tampered with after registration. Everything is torn down
# at the end, whatever happens.
set -euo pipefail
AF_BUILD=${AF_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
AF=$AF_BUILD/artifactfs
D=$(mktemp -d /tmp/artifactfs-demo.XXXXXX)
chmod 0755 "$D"
NGINX_PID=""
AF_PID=""

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
	set +e
	if [ -n "$AF_PID" ] && kill -0 "$AF_PID" 2>/dev/null; then
		kill -TERM "$AF_PID"; wait "$AF_PID" 2>/dev/null
	fi
	mountpoint -q "$D/artifacts" 2>/dev/null && umount -l "$D/artifacts"
	[ -n "$NGINX_PID" ] && kill -TERM "$NGINX_PID" 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT

[ -x "$AF" ] || { echo "demo: $AF is missing: run make first" >&2; exit 1; }
[ -e /dev/fuse ] || { echo "demo: /dev/fuse is missing: FUSE is needed" >&2; exit 1; }

mkdir -p "$D/www" "$D/cache" "$D/registry/vision" "$D/artifacts" "$D/nginx/tmp"

say "1. a source: nginx on 127.0.0.1 serving two generated blobs"
head -c $((24 * 1024 * 1024 + 321)) /dev/urandom >"$D/www/resnet50.safetensors"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$D/www/tokenizer.tar"
for _ in 1 2 3 4 5; do
	PORT=$(( (RANDOM % 30000) + 20000 ))
	ss -Htln "sport = :$PORT" | grep -q . && continue
	cat >"$D/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $D/nginx/nginx.pid;
error_log $D/nginx/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $D/nginx/tmp;
    proxy_temp_path $D/nginx/tmp;
    fastcgi_temp_path $D/nginx/tmp;
    uwsgi_temp_path $D/nginx/tmp;
    scgi_temp_path $D/nginx/tmp;
    server { listen 127.0.0.1:$PORT; location /models/ { alias $D/www/; } }
}
EOF
	nginx -c "$D/nginx/nginx.conf" -p "$D/nginx" 2>/dev/null && break
done
for _ in $(seq 1 50); do [ -s "$D/nginx/nginx.pid" ] && break; sleep 0.1; done
NGINX_PID=$(cat "$D/nginx/nginx.pid")
echo "nginx (pid $NGINX_PID) on http://127.0.0.1:$PORT/models/"
ls -l "$D/www"

say "2. control plane: registrations (DESIGN §2) in the file registry"
reg() { # file digest
	cat >"$D/registry/vision/$1.json" <<EOF
{
  "project": "vision",
  "name": "$1",
  "artifact_kind": "blob",
  "digest": "$2",
  "source": {"source_type": "https",
             "uri": "http://127.0.0.1:$PORT/models/$1",
             "source_ref": null, "size_bytes": $(stat -c %s "$D/www/$1"),
             "content_encoding": "identity"},
  "lifecycle_state": "active",
  "trust_state": "verified",
  "channels": ["prod"],
  "allowlist_decision": {"decision": "allow", "policy": "default",
                         "decided_at": "2026-03-09T12:00:00Z"},
  "attestation": null,
  "registered_at": "2026-03-09T12:00:00Z"
}
EOF
}
W_DIGEST="sha256:$(sha256sum "$D/www/resnet50.safetensors" | cut -d' ' -f1)"
T_DIGEST="sha256:$(sha256sum "$D/www/tokenizer.tar" | cut -d' ' -f1)"
reg resnet50.safetensors "$W_DIGEST"
reg tokenizer.tar "$T_DIGEST"
cat "$D/registry/vision/resnet50.safetensors.json"

say "3. policy (DESIGN §4) and config (DESIGN §10)"
cat >"$D/policy.json" <<EOF
{
  "digest_algorithms": ["sha256", "sha512"],
  "readable_lifecycle_states": ["active", "deprecated"],
  "min_trust_state": "verified",
  "sources": [{"source_type": "https", "uri_prefix": "http://127.0.0.1:$PORT/models/"}]
}
EOF
cat >"$D/artifactfs.conf" <<EOF
[cache]
dir = $D/cache
chunk_size = 8M

[registry]
dir = $D/registry

[policy]
file = $D/policy.json

[fetch]
connections = 8
retries = 3

[audit]
log = $D/audit.jsonl
EOF
cat "$D/policy.json" "$D/artifactfs.conf"
run "$AF" check -c "$D/artifactfs.conf"

say "4. tamper with tokenizer.tar at the source, after its registration"
printf '\x42' | dd of="$D/www/tokenizer.tar" bs=1 seek=1000 conv=notrunc status=none
echo "one byte of tokenizer.tar changed on the server"

say "5. mount"
"$AF" mount -f -c "$D/artifactfs.conf" "$D/artifacts" 2>"$D/daemon.log" &
AF_PID=$!
for _ in $(seq 1 100); do mountpoint -q "$D/artifacts" && break; sleep 0.1; done
mountpoint -q "$D/artifacts" || { cat "$D/daemon.log"; exit 1; }
run ls -l "$D/artifacts" "$D/artifacts/vision"

say "6. read the verified artifact"
F="$D/artifacts/vision/resnet50.safetensors@$W_DIGEST"
t0=$(date +%s%N)
GOT="sha256:$(sha256sum "$F" | cut -d' ' -f1)"
t1=$(date +%s%N)
echo "registered digest: $W_DIGEST"
echo "digest of the file: $GOT   (open + read: $(( (t1 - t0) / 1000000 )) ms, cold)"
[ "$GOT" = "$W_DIGEST" ] && echo "=> equal: the bytes served are the registered bytes"
run cmp "$D/www/resnet50.safetensors" "$F"
run getfattr -d -m 'user.artifact' "$F"
run readlink "$D/artifacts/vision/resnet50.safetensors@prod"

say "7. the tampered artifact is refused"
B="$D/artifacts/vision/tokenizer.tar@$T_DIGEST"
if cat "$B" >/dev/null 2>"$D/cat.err"; then
	echo "demo: FAILED: a tampered artifact was served" >&2
	exit 1
fi
echo "\$ cat $B"
cat "$D/cat.err"
echo "audit log:"
grep -E '"event":"(verify_failed|verify_ok|open)"' "$D/audit.jsonl"

say "8. unmount (SIGTERM) and clean up"
kill -TERM "$AF_PID"; wait "$AF_PID"; AF_PID=""
mountpoint -q "$D/artifacts" && { echo "still mounted" >&2; exit 1; }
echo "unmounted cleanly"
echo
echo "demo: OK"
