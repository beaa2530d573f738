#!/usr/bin/env bash
# FUSE passthrough (issue 4): with passthrough on, reads and mmap of a
# verified blob never reach the daemon (its read counter stays 0); with off
# the daemon serves them; content equal in every mode; an evicted blob's
# open handle keeps reading the right bytes; a daemon without
# CAP_SYS_ADMIN in the initial namespace (user namespace) falls back.
# Without passthrough (issue 16): the mount reads ahead 1008 KiB, so a
# sequential read costs one request per 1008 KiB, and the cache file's
# pages are dropped behind the reader (one copy in the page cache).
. "$(dirname "$0")/lib.sh"
af_world 1M
size=$((16 * 1024 * 1024 + 77))
make_blob pt.bin $size
d=$(register pt.bin)
f=$T/mnt/vision/pt.bin@$d
reads() { getfattr --only-values -n user.artifactfs.reads "$T/mnt" 2>/dev/null; }
set_mode() {
	sed -i '/^\[fs\]/,$d' "$T/artifactfs.conf"
	printf '[fs]\npassthrough = %s\n' "$1" >>"$T/artifactfs.conf"
}

set_mode on
mount_af || exit 1
ok "on: first open fetches and verifies" "$PROBE" open "$f"
r0=$(reads)
ok "on: cat equal" cmp "$T/www/pt.bin" "$f"
ok "on: mmap equal" sh -c "'$PROBE' mmap '$f' '$T/mm.out' && cmp '$T/www/pt.bin' '$T/mm.out'"
expect "on: the daemon saw no read" "$r0" reads
ok "on: passthrough said in the log" grep -q "passthrough: on" "$T/daemon.log"
# Many opens of one blob share the backing file; eviction does not break them.
exec 7<"$f" 8<"$f"
ok "on: evict while open" "$AF" cache -c "$T/artifactfs.conf" evict "$d"
ok "on: open handle still reads the right bytes" cmp "$T/www/pt.bin" /dev/fd/7
ok "on: second handle too" cmp "$T/www/pt.bin" /dev/fd/8
exec 7<&- 8<&-
expect "on: still no daemon read" "$r0" reads
ok "on: clean unmount" umount_af

set_mode off
mount_af || exit 1
ok "off: content equal" cmp "$T/www/pt.bin" "$f"
ok "off: mmap equal" sh -c "'$PROBE' mmap '$f' '$T/mm.out' && cmp '$T/www/pt.bin' '$T/mm.out'"
ok "off: the daemon served reads" test "$(reads)" -gt 0
ok "off: clean unmount" umount_af
# A fresh mount has an empty page cache of its own: count what one read costs.
mount_af || exit 1
bdi=/sys/class/bdi/$(mountpoint -d "$T/mnt")/read_ahead_kb
expect "off: the mount reads ahead 1008 KiB" 1008 cat "$bdi"
r0=$(reads)
ok "off: sequential read equal" cmp "$T/www/pt.bin" "$f"
n=$(( $(reads) - r0 ))
log "off: $n read requests for $size bytes"
ok "off: requests of up to 1008 KiB (17 and the ramp-up for 16 MiB), not 128 of 128 KiB" test "$n" -le 40
cf=$T/cache/blobs/sha256/${d:7:2}/${d#sha256:}
if [ "$(stat -f -c %T "$cf")" != tmpfs ]; then
	held=$(fincore --bytes --noheadings --output RES "$cf" | awk '{ print $1 }')
	log "off: cache file pages left after the read: $held bytes"
	ok "off: the cache file's pages were dropped behind the reader" test "$held" -le $((4 * 1024 * 1024))
	ok "off: a second read is served from the mount's page cache" sh -c "r=\$(getfattr --only-values -n user.artifactfs.reads '$T/mnt'); cmp '$T/www/pt.bin' '$f' && test \"\$(getfattr --only-values -n user.artifactfs.reads '$T/mnt')\" = \"\$r\""
else
	log "skip: the cache is on tmpfs (it keeps pages on POSIX_FADV_DONTNEED)"
fi
ok "off: clean unmount" umount_af

# auto without CAP_SYS_ADMIN in the initial user namespace: falls back.
set_mode auto
if unshare -Urm true 2>/dev/null; then
	unshare -Urm --propagation private bash -c "
		'$AF' mount -f -c '$T/artifactfs.conf' '$T/mnt' >>'$T/daemon-userns.log' 2>&1 &
		pid=\$!
		for _ in \$(seq 1 100); do mountpoint -q '$T/mnt' && break; sleep 0.1; done
		cmp '$T/www/pt.bin' '$f' && echo equal >'$T/userns.cmp'
		getfattr --only-values -n user.artifactfs.reads '$T/mnt' >'$T/userns.reads' 2>/dev/null
		kill -TERM \$pid; wait \$pid
	"
	expect "auto fallback (no CAP_SYS_ADMIN): content equal" equal cat "$T/userns.cmp"
	ok "auto fallback: the daemon served the reads" test "$(cat "$T/userns.reads" 2>/dev/null || echo 0)" -gt 0
	ok "auto fallback said once in the log" test "$(grep -c 'reads go through the daemon' "$T/daemon-userns.log")" -eq 1
else
	log "skip: user namespaces unavailable here"
fi
