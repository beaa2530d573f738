#!/usr/bin/env bash
# No stale bytes after a change on disk (issue 10 item 5): the mount served
# a blob; its cache file is then corrupted on disk and `cache verify` (a
# process of its own) quarantines it. A new open must never return the
# corrupt bytes: not from pages the kernel kept (keep_cache), not through
# the old passthrough backing file while an earlier open still holds it.
. "$(dirname "$0")/lib.sh"
af_world 256K
size=$((2 * 1024 * 1024 + 99))
make_blob s.bin $size
d=$(register s.bin)
hex=${d#sha256:}
data="$T/cache/blobs/sha256/${hex:0:2}/$hex"
f="$T/mnt/vision/s.bin@$d"
C="-c $T/artifactfs.conf"
corrupt() {	# one byte at 1 MiB + 5, in the cache file itself
	printf '\x5a' | dd of="$data" bs=1 seek=$((1048576 + 5)) conv=notrunc status=none
}
page_at_1m() {	# the 4 KiB page at 1 MiB, read through the mount
	dd if="$f" bs=4096 skip=256 count=1 status=none | sha256sum | cut -d' ' -f1
}
good_page=$(dd if="$T/www/s.bin" bs=4096 skip=256 count=1 status=none | sha256sum | cut -d' ' -f1)

# 1. Reads through the daemon, pages kept by the kernel (keep_cache).
printf '[fs]\npassthrough = off\n' >>"$T/artifactfs.conf"
mount_af || exit 1
ok "first read: the first page only" sh -c "head -c 4096 '$f' | cmp - '$T/www/s.bin' -n 4096"
corrupt
# Read before anyone noticed: the daemon serves the corrupt page, and the
# kernel keeps it (nothing can tell yet).
bad_page=$(page_at_1m)
ok "the corruption is visible before verify (the test works)" test "$bad_page" != "$good_page"
ok "cache verify quarantines the corrupt file" sh -c "! '$AF' cache $C verify '$d' >/dev/null 2>&1"
expect "quarantined" quarantined getfattr --only-values -n user.artifact.cache_state "$f"
expect "a new open: the page at 1 MiB is right (no kept page)" "$good_page" page_at_1m
ok "and every byte" cmp "$T/www/s.bin" "$f"
ok "clean unmount" umount_af

# 2. Passthrough (where the kernel offers it): an open held across.
sed -i '/^\[fs\]$/d; /^passthrough = off$/d' "$T/artifactfs.conf"
mount_af || exit 1
expect "read: right page" "$good_page" page_at_1m
exec 3<"$f"		# an earlier open, still holding the file
corrupt
ok "cache verify quarantines the corrupt file" sh -c "! '$AF' cache $C verify '$d' >/dev/null 2>&1"
ok "a new open while the old one is held reads the right bytes" cmp "$T/www/s.bin" "$f"
expect "page at 1 MiB right" "$good_page" page_at_1m
exec 3<&-
sleep 0.2
ok "after the old open is gone, right bytes too" cmp "$T/www/s.bin" "$f"
ok "daemon alive" kill -0 "$AF_PID"
ok "clean unmount" umount_af
