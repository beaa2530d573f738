#!/usr/bin/env bash
# A full cache filesystem (issue 11 item 3, DESIGN §6): the cache on a
# small tmpfs. A blob larger than the free space gives its reader ENOSPC
# (or EIO) and an audit line saying so, leaves nothing behind (no chunk, no
# data file, no verified record) and starts no failure backoff; smaller
# blobs keep working; once space is freed the large one reads, with the
# same daemon. With cache.max_size below the filesystem's size, eviction
# makes room before a fetch, so the filesystem never fills.
. "$(dirname "$0")/lib.sh"
CHECK=$AF_BUILD/tests/af_lib_idxcheck
af_world 64K

# tmpfs_at DIR SIZE: a tmpfs of SIZE on DIR, unmounted at cleanup.
tmpfs_at() {
	mkdir -p "$1"
	mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$1" || return 1
	EXTRA_MOUNTS="$EXTRA_MOUNTS $1"
}

free_kib() { df -k --output=avail "$1" | tail -n 1 | tr -d ' '; }

# 1. No max_size: a 4 MiB filesystem, 2.5 MiB of it taken by something else.
tmpfs_at "$T/fs" 4M || { fail "cannot mount a tmpfs"; exit 1; }
conf_set "$T/artifactfs.conf" cache dir "$T/fs/cache"
head -c $((2560 * 1024)) /dev/zero >"$T/fs/ballast"
make_blob big.bin $((2 * 1024 * 1024 + 777))
make_blob small.bin $((256 * 1024 + 5))
make_blob small2.bin $((300 * 1024))
d_big=$(register big.bin)
d_small=$(register small.bin)
d_small2=$(register small2.bin)
hex=${d_big#sha256:}
mount_af || exit 1
pid=$AF_PID
m=$T/mnt/vision
log "free before: $(free_kib "$T/fs") KiB; big.bin is $(( $(stat -c %s "$T/www/big.bin") / 1024 )) KiB"

got=$("$PROBE" open "$m/big.bin@$d_big")
CHECKS=$((CHECKS + 1))
case $got in
ENOSPC | EIO) log "ok: a blob larger than the free space: $got" ;;
*) fail "a blob larger than the free space: want ENOSPC or EIO, got $got" ;;
esac
ok "the open's audit line says so" sh -c "grep '\"event\":\"open_denied\"' '$T/audit.jsonl' | grep '$d_big' | grep -q 'No space left on device'"
ok "audit fetch_failed says the disk is full" sh -c "grep '\"event\":\"fetch_failed\"' '$T/audit.jsonl' | grep '$d_big' | grep -q 'No space left on device'"
ok "and starts no backoff" sh -c "! grep '$d_big' '$T/audit.jsonl' | grep -q 'backing off'"
ok "no data file left for it" test ! -e "$T/fs/cache/blobs/sha256/${hex:0:2}/$hex"
out=$("$CHECK" "$T/fs/cache" 2>"$T/check.err")
ok "the cache is consistent (af_lib_idxcheck)" test $? -eq 0
[ -s "$T/check.err" ] && cat "$T/check.err" >&2
ok "no chunk of it recorded, not verified" sh -c "echo '$out' | grep '^$d_big ' | grep -q ' good=0 .* chunks=0'"
ok "the space is given back" test "$(free_kib "$T/fs")" -ge 1024
before=$(nginx_requests big.bin)
expect "a second open tries again (no backoff)" "$got" "$PROBE" open "$m/big.bin@$d_big"
ok "... and asked the source again" test "$(nginx_requests big.bin)" -gt "$before"
ok "a smaller blob still reads" cmp "$T/www/small.bin" "$m/small.bin@$d_small"
ok "another smaller blob still reads" cmp "$T/www/small2.bin" "$m/small2.bin@$d_small2"

rm -f "$T/fs/ballast"
ok "after space is freed the large blob reads" cmp "$T/www/big.bin" "$m/big.bin@$d_big"
ok "with the same daemon (no restart)" test "$AF_PID" = "$pid"
expect "and it is verified" verified getfattr --only-values -n user.artifact.cache_state "$m/big.bin@$d_big"
ok "the cache is consistent afterwards" "$CHECK" "$T/fs/cache"
ok "clean unmount" umount_af

# 2. max_size = 3M on a 4 MiB filesystem, 1.5 MiB blobs: a third one would
# not fit beside two, unless eviction makes room before it is fetched.
tmpfs_at "$T/fs2" 4M || { fail "cannot mount a tmpfs"; exit 1; }
conf_set "$T/artifactfs.conf" cache dir "$T/fs2/cache"
conf_set "$T/artifactfs.conf" cache max_size 3M
: >"$T/audit.jsonl"
logline=$(wc -l <"$T/daemon.log")
for i in 1 2 3 4 5; do
	make_blob "m$i.bin" $((1536 * 1024))
	dm[$i]=$(register "m$i.bin")
done
mount_af || exit 1
for i in 1 2 3 4 5; do
	ok "m$i.bin reads under max_size" cmp "$T/www/m$i.bin" "$m/m$i.bin@${dm[$i]}"
done
ok "no ENOSPC: eviction made room first" sh -c "! tail -n +$((logline + 1)) '$T/daemon.log' | cat - '$T/audit.jsonl' | grep -q 'No space left'"
ok "evictions happened" test "$(audit_count evict)" -ge 3
used=$("$AF" cache -c "$T/artifactfs.conf" stats --json | sed -n 's/.*"bytes":\([0-9]*\).*/\1/p')
ok "the cache holds at most max_size (${used:-?} bytes)" test "${used:-999999999}" -le $((3 * 1024 * 1024))
ok "the cache is consistent" "$CHECK" "$T/fs2/cache"
ok "clean unmount" umount_af
