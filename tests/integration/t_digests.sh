#!/usr/bin/env bash
# sha512 registrations end to end, and a registration without size_bytes
# (DESIGN §2): stat learns the size with one HEAD, never a download.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob s.bin $((2 * 1024 * 1024 + 3))
d="sha512:$(sha512sum "$T/www/s.bin" | cut -d' ' -f1)"
register s.bin digest="$d" >/dev/null
make_blob n.bin 1000
register n.bin size=none >/dev/null
dn="sha256:$(sha256_of "$T/www/n.bin")"
mount_af || exit 1
ok "sha512 content equal" cmp "$T/www/s.bin" "$T/mnt/vision/s.bin@$d"
expect "sha512 xattr digest" "$d" getfattr --only-values -n user.artifact.digest "$T/mnt/vision/s.bin@$d"
expect "no size_bytes: stat learns the size" 1000 stat -c %s "$T/mnt/vision/n.bin@$dn"
expect "with one HEAD, no download" "HEAD 0" sh -c "awk '\$2==\"/blobs/n.bin\"{print \$1, \$4}' '$T/nginx/logs/access.log' | sort -u | tr '\n' ' ' | sed 's/ \$//'"
expect "a known size is not a partial blob" none getfattr --only-values -n user.artifact.cache_state "$T/mnt/vision/n.bin@$dn"
heads=$(nginx_requests n.bin)
ok "clean unmount" umount_af
mount_af || exit 1
expect "after a restart the size comes from the index" 1000 stat -c %s "$T/mnt/vision/n.bin@$dn"
expect "without another request" "$heads" nginx_requests n.bin
ok "no size_bytes: content equal" cmp "$T/www/n.bin" "$T/mnt/vision/n.bin@$dn"
ok "clean unmount" umount_af
