#!/usr/bin/env bash
# Content through a real mount equals the source, for the edge sizes
# (DESIGN §7; issue 2 item 6): 0, 1, chunk-1, chunk, chunk+1 and 64 MiB.
# stat and ls -l cost no download; xattrs describe the artifact.
. "$(dirname "$0")/lib.sh"
af_world 1M
chunk=$((1024 * 1024))
declare -A dig
for spec in empty:0 one:1 cm1:$((chunk - 1)) c:$chunk cp1:$((chunk + 1)) big:$((64 * 1024 * 1024)); do
	n=${spec%%:*}; s=${spec#*:}
	make_blob "$n.bin" "$s"
	dig[$n]=$(register "$n.bin")
done
mount_af || exit 1

# Listing and stat fetch nothing.
expect "root lists the project" "vision" ls "$T/mnt"
expect "project lists six artifacts" 6 sh -c "ls '$T/mnt/vision' | wc -l"
expect "stat gives the registered size" $((64 * 1024 * 1024)) stat -c %s "$T/mnt/vision/big.bin@${dig[big]}"
expect "ls -l shows 0444 files" "-r--r--r--" sh -c "ls -l '$T/mnt/vision/one.bin@${dig[one]}' | cut -c1-10"
expect "nothing fetched by listing and stat" 0 sh -c "cat '$T/nginx/logs/access.log' | wc -l"
expect "cache_state none before open" none getfattr --only-values -n user.artifact.cache_state "$T/mnt/vision/big.bin@${dig[big]}"

for n in empty one cm1 c cp1 big; do
	ok "content of $n.bin equal" cmp "$T/www/$n.bin" "$T/mnt/vision/$n.bin@${dig[$n]}"
done
f="$T/mnt/vision/big.bin@${dig[big]}"
expect "xattr digest" "${dig[big]}" getfattr --only-values -n user.artifact.digest "$f"
expect "xattr source_type" https getfattr --only-values -n user.artifact.source_type "$f"
expect "xattr uri" "http://127.0.0.1:$NGINX_PORT/blobs/big.bin" getfattr --only-values -n user.artifact.uri "$f"
expect "xattr size" $((64 * 1024 * 1024)) getfattr --only-values -n user.artifact.size "$f"
expect "xattr lifecycle_state" active getfattr --only-values -n user.artifact.lifecycle_state "$f"
expect "xattr trust_state" verified getfattr --only-values -n user.artifact.trust_state "$f"
expect "xattr cache_state verified" verified getfattr --only-values -n user.artifact.cache_state "$f"
ok "xattr verified_at is RFC 3339" sh -c "getfattr --only-values -n user.artifact.verified_at '$f' | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'"
expect "no denied_reason when allowed" "" sh -c "getfattr --only-values -n user.artifact.denied_reason '$f' 2>/dev/null"
# Only the user namespace exists: other namespaces are not supported
# (ls -l learns it once, instead of two requests per file), and a user.
# name that is not ours is absent.
expect "security.selinux: not supported" EOPNOTSUPP "$PROBE" getxattr "$f" security.selinux
expect "system.posix_acl_access: not supported" EOPNOTSUPP "$PROBE" getxattr "$f" system.posix_acl_access
expect "trusted.x on the project: not supported" EOPNOTSUPP "$PROBE" getxattr "$T/mnt/vision" trusted.x
expect "user.artifact.nope: absent" ENODATA "$PROBE" getxattr "$f" user.artifact.nope
expect "user.other on the root: absent" ENODATA "$PROBE" getxattr "$T/mnt" user.other
expect "ls -l: no ACL or label mark" "-r--r--r-- " sh -c "ls -l '$f' | cut -c1-11"
ok "audit has verify_ok" audit_has verify_ok "${dig[big]}"
ok "audit has open with pid" sh -c "grep '\"event\":\"open\"' '$T/audit.jsonl' | grep -q '\"pid\":'"
# A second read is served from the cache: no new bytes from nginx.
before=$(nginx_bytes big.bin)
ok "second read equal" cmp "$T/www/big.bin" "$f"
expect "second read fetched nothing" "$before" nginx_bytes big.bin
ok "clean unmount on SIGTERM" umount_af
# Verified state survives a restart.
mount_af || exit 1
ok "after restart content equal" cmp "$T/www/big.bin" "$f"
expect "after restart nothing fetched" "$before" nginx_bytes big.bin
ok "clean unmount" umount_af
