#!/usr/bin/env bash
# The artifact_store source type (DESIGN §5b; issue 8 item 2) against
# Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a
# filesystem root, seeded with the OCI monolithic upload (POST, then PUT
# with the digest):
#   1. behind an nginx that demands the bearer token (a 401 with
#      "WWW-Authenticate: Bearer realm=…" otherwise): blobs read in ranges
#      with the token; a repository the node has no token for is EIO with
#      the realm in the reason; a registry answering 200 with another blob
#      is EIO and verify_failed; a tag or digest in the URI is a
#      registration error that check names;
#   2. with the registry's redirect storage middleware pointing at an nginx
#      that serves its data root: the 307 is followed, without
#      Authorization (that nginx answers 400 if one arrives).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/creds.sh"
. "$(dirname "$0")/lib_servers.sh"
af_world 1M
command -v docker-registry >/dev/null || { fail "docker-registry is not installed (make deps)"; exit 1; }

TOK=as-t0ken-51c9e2
REALM=$STORE_REALM

make_blob w.bin $((3 * 1024 * 1024 + 999))
make_blob other.bin 40000
make_blob swap.bin 40000
make_blob asked.bin 40000
make_blob small.bin 1234
make_blob gone.bin 5000

# 1. The registry behind nginx demanding the bearer token.
start_registry reg1 || { fail "docker-registry did not start"; exit 1; }
P1=$REG_PORT
for f in w.bin swap.bin small.bin; do
	ok "seed team/models with $f (POST, then PUT)" oci_push "http://127.0.0.1:$P1" team/models "$T/www/$f"
done
ok "seed other/models with other.bin" oci_push "http://127.0.0.1:$P1" other/models "$T/www/other.bin"
# A registry that answers 200 with another blob (same size) for
# team/swapped: Range dropped, the request sent for swap.bin.
nginx_prepare store-front
cat >"$T/store-front/extra.conf" <<EOF
        location /v2/team/swapped/blobs/ {
            if (\$http_authorization != "Bearer $TOK") { return 401; }
            proxy_set_header Range "";
            rewrite ^ /v2/team/models/blobs/sha256:$(sha256_of "$T/www/swap.bin") break;
            proxy_pass http://127.0.0.1:$P1;
        }
EOF
start_registry_front "$TOK" "$P1" || { fail "nginx in front of the registry did not start"; exit 1; }
E1=$STORE_PORT

conf_add artifact_store "endpoint = http://127.0.0.1:$E1"
conf_add credentials "dir = $T/creds"
policy_allow artifact_store "artifact-store://team/" "artifact-store://other/"
cred_file store.json artifact_store "artifact-store://team/" 600 bearer_token=$TOK
d_w=$(register w.bin source_type=artifact_store uri="artifact-store://team/models")
d_small=$(register small.bin source_type=artifact_store uri="artifact-store://team/models")
# Registered, never pushed.
d_gone=$(register gone.bin source_type=artifact_store uri="artifact-store://team/models")
d_other=$(register other.bin source_type=artifact_store uri="artifact-store://other/models")
# asked.bin, of swap.bin's size, under team/swapped: that registry answers
# swap.bin's bytes.
d_swap=$(register asked.bin name=swapped.bin source_type=artifact_store uri="artifact-store://team/swapped")
make_blob tag.bin 100
register tag.bin source_type=artifact_store uri="artifact-store://team/models:v1" >/dev/null
make_blob dig.bin 100
register dig.bin source_type=artifact_store uri="artifact-store://team/models@$d_w" >/dev/null

"$AF" check -c "$T/artifactfs.conf" >"$T/check.out" 2>&1
rc=$?
ok "check fails on a tag or digest in the uri (exit 1)" test "$rc" -eq 1
ok "check names tag.bin" sh -c "grep 'tag.bin' '$T/check.out' | grep -q 'tag or digest'"
ok "check names dig.bin" sh -c "grep 'dig.bin' '$T/check.out' | grep -q 'tag or digest'"

mount_af || exit 1
m=$T/mnt/vision
log=$T/store-front/logs/access.log
ok "blob through the token-checking nginx: bytes equal" cmp "$T/www/w.bin" "$m/w.bin@$d_w"
ok "... asked by digest with the token" grep -q "GET /v2/team/models/blobs/$d_w 206 auth=1 range=bytes=" "$log"
ok "... in ranges" sh -c "test \$(grep -c 'GET /v2/team/models/blobs/$d_w 206' '$log') -ge 4"
ok "a small blob: bytes equal" cmp "$T/www/small.bin" "$m/small.bin@$d_small"
expect "no token for that repository: EIO" EIO "$PROBE" open "$m/other.bin@$d_other"
ok "... the realm is named in the reason" reason_has "$d_other" "realm \"$REALM\""
ok "... with the scope asked for" reason_has "$d_other" 'scope "repository:other/models:pull"'
ok "... never retried" test "$(grep -c "/v2/other/models/blobs/$d_other 401" "$log")" -eq 1
expect "a blob the registry does not have: EIO" EIO "$PROBE" open "$m/gone.bin@$d_gone"
ok "... the registry's error code in the reason" reason_has "$d_gone" "HTTP 404 Not Found (BLOB_UNKNOWN)"
expect "a registry answering 200 with another blob: EIO" EIO "$PROBE" open "$m/swapped.bin@$d_swap"
ok "... verify_failed" audit_has verify_failed "$d_swap"
ok "... the answer was a 200" grep -q "GET /v2/team/swapped/blobs/$d_swap 200" "$log"
ok "a tag or digest in the uri is not listed" sh -c "! ls '$m' | grep -q -e '^tag.bin' -e '^dig.bin'"
ok "clean unmount" umount_af

# 2. The registry's redirect middleware: 307 to an nginx serving its data
#    root, which refuses any Authorization with 400.
N2=$(free_port)
start_registry reg2 "http://127.0.0.1:$N2/" || { fail "docker-registry (redirect) did not start"; exit 1; }
P2=$REG_PORT
ok "seed the redirecting registry" oci_push "http://127.0.0.1:$P2" team/models "$T/www/w.bin"
nginx_prepare blobs
{
	nginx_head blobs
	cat <<EOF
http {
$(nginx_temp blobs)
    map \$http_authorization \$has_auth { "" 0; default 1; }
    log_format blobs '\$request_method \$uri \$status auth=\$has_auth range=\$http_range';
    access_log $T/blobs/logs/access.log blobs;
    server {
        listen 127.0.0.1:$N2;
        location / {
            if (\$http_authorization) { return 400; }
            root $T/reg2/data;
        }
    }
}
EOF
} >"$T/blobs/nginx.conf"
nginx_extra blobs || { fail "nginx for blob storage did not start"; exit 1; }
sed -i "s|^endpoint = http://127.0.0.1:$E1|endpoint = http://127.0.0.1:$P2|" "$T/artifactfs.conf"
"$AF" cache -c "$T/artifactfs.conf" evict "$d_w" >/dev/null 2>&1
mount_af || exit 1
blog=$T/blobs/logs/access.log
ok "307 to blob storage: bytes equal" cmp "$T/www/w.bin" "$m/w.bin@$d_w"
ok "... read there in ranges" sh -c "test \$(grep -c 'GET /docker/registry/v2/blobs/sha256/.*/data 206 auth=0' '$blog') -ge 4"
ok "... never with Authorization" sh -c "! grep -q 'auth=1' '$blog'"
ok "... never refused" sh -c "! grep -q ' 400 ' '$blog'"
ok "clean unmount" umount_af

# 3. No [artifact_store] endpoint: there is no default. check says so; an
#    open fails with that reason.
sed -i "/^endpoint = http:\/\/127.0.0.1:$P2\$/d" "$T/artifactfs.conf"
"$AF" check -c "$T/artifactfs.conf" >"$T/check-noep.out" 2>&1
ok "no endpoint: check names the registrations" sh -c "grep 'small.bin' '$T/check-noep.out' | grep -q 'needs \[artifact_store\] endpoint'"
"$AF" cache -c "$T/artifactfs.conf" evict "$d_small" >/dev/null 2>&1
mount_af || exit 1
expect "no endpoint: EIO" EIO "$PROBE" open "$m/small.bin@$d_small"
ok "... the reason names the missing key" reason_has "$d_small" "[artifact_store] endpoint is not set"
ok "clean unmount" umount_af
secrets_scan "artifact_store" "$TOK"
