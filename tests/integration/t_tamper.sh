#!/usr/bin/env bash
# A source that does not match its registration is refused (DESIGN §6, §7):
# one byte flipped, truncated, one byte appended. open fails with EIO, no
# byte is readable, the cache holds nothing servable, verify_failed audited.
. "$(dirname "$0")/lib.sh"
af_world 1M
size=$((3 * 1024 * 1024 + 17))
for n in flip trunc append flipnosize; do make_blob "$n.bin" $size; done
d_flip=$(register flip.bin)
d_trunc=$(register trunc.bin)
d_append=$(register append.bin)
d_nosize=$(register flipnosize.bin size=none)
# Tamper with the served bytes after registration.
cp "$T/www/flip.bin" "$T/flip.orig"
printf '\xff' | dd of="$T/www/flip.bin" bs=1 seek=1234567 conv=notrunc status=none
printf '\x00' | dd of="$T/www/flipnosize.bin" bs=1 seek=5 conv=notrunc status=none
truncate -s $((size - 1)) "$T/www/trunc.bin"
printf 'x' >>"$T/www/append.bin"
mount_af || exit 1
for c in "flip:$d_flip" "trunc:$d_trunc" "append:$d_append" "flipnosize:$d_nosize"; do
	n=${c%%:*}; d=${c#*:}
	f="$T/mnt/vision/$n.bin@$d"
	expect "$n: open fails with EIO" EIO "$PROBE" open "$f"
	expect "$n: read fails with EIO" EIO "$PROBE" read-first "$f"
	expect "$n: cache_state quarantined" quarantined getfattr --only-values -n user.artifact.cache_state "$f"
	ok "$n: audit verify_failed" audit_has verify_failed "$d"
	hex=${d#sha256:}
	ok "$n: no data file kept" test ! -s "$T/cache/blobs/sha256/${hex:0:2}/$hex"
done
ok "audit names both sizes for a truncated source" sh -c "grep verify_failed '$T/audit.jsonl' | grep '${d_trunc}' | grep -q '$((size - 1))'"
ok "cache ls shows nothing verified" sh -c "! '$AF' cache -c '$T/artifactfs.conf' ls --json | grep -q '\"state\":\"verified\"'"
ok "daemon still alive" kill -0 "$AF_PID"
# The source fixed: within the failure backoff (DESIGN §6) the open still
# fails at once; cache evict DIGEST clears it and the next open fetches.
cp "$T/flip.orig" "$T/www/flip.bin"
expect "fixed source: still backing off" EIO "$PROBE" open "$T/mnt/vision/flip.bin@$d_flip"
ok "cache evict clears the backoff" "$AF" cache -c "$T/artifactfs.conf" evict "$d_flip"
ok "fixed source: content equal on the next open" cmp "$T/www/flip.bin" "$T/mnt/vision/flip.bin@$d_flip"
ok "clean unmount" umount_af
