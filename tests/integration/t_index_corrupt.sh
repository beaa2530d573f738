#!/usr/bin/env bash
# A damaged cache index never crashes the daemon (issue 11 item 4): values
# that do not decode (a record of garbage, an unknown record version, a
# record cut short, a lease, a chunk entry and a backoff entry of the wrong
# size; tests/tools/af_lib_idxpoke.c writes them with no daemon running)
# are dropped and their blobs fetched again: every artifact reads right,
# the cache tools keep working, and the index is consistent afterwards.
. "$(dirname "$0")/lib.sh"
CHECK=$AF_BUILD/tests/af_lib_idxcheck
POKE=$AF_BUILD/tests/af_lib_idxpoke
af_world 64K
C="-c $T/artifactfs.conf"
declare -A d
for n in a b c dd e; do
	make_blob $n.bin $((256 * 1024 + 17))
	d[$n]=$(register $n.bin)
done
cp "$T/www/e.bin" "$T/e.orig"
printf '\xff' | dd of="$T/www/e.bin" bs=1 seek=1000 conv=notrunc status=none
mount_af || exit 1
m=$T/mnt/vision
for n in a b c dd; do cat "$m/$n.bin@${d[$n]}" >/dev/null; done
expect "e tampered: EIO (quarantined, backing off)" EIO "$PROBE" open "$m/e.bin@${d[e]}"
ok "clean unmount" umount_af
cp "$T/e.orig" "$T/www/e.bin"

ok "poke: a's record is garbage" "$POKE" "$T/cache" blob "${d[a]}" deadbeef
ok "poke: b's record has version 99" "$POKE" "$T/cache" blob "${d[b]}" \
	63000000$(printf '%080d' 0)
ok "poke: dd's record is cut short" "$POKE" "$T/cache" blob-cut "${d[dd]}" 30
ok "poke: c's lease is 5 bytes" "$POKE" "$T/cache" lease "${d[c]}" 0102030405
ok "poke: c's chunk 1 is 3 bytes" "$POKE" "$T/cache" chunk "${d[c]}" 1 abcdef
ok "poke: e's backoff entry is 1 byte" "$POKE" "$T/cache" fails "${d[e]}" 01

# The tools first, with no daemon.
ok "cache ls works" "$AF" cache $C ls --json
expect "cache ls lists what decodes" 2 sh -c "'$AF' cache $C ls --json | grep -c '\"state\"'"
out=$("$AF" cache $C verify --quick "${d[c]}" 2>&1)
ok "cache verify --quick finds c's damaged chunk entry" sh -c "echo '$out' | grep -q 'chunk 1 missing'"

lines=$(wc -l <"$T/nginx/logs/access.log")
mount_af || exit 1
for n in a b c dd e; do
	ok "$n reads right" cmp "$T/www/$n.bin" "$m/$n.bin@${d[$n]}"
done
ok "the daemon says what it dropped" grep -q "index record does not decode: dropped, fetched again" "$T/daemon.log"
for n in a b dd e; do
	sent=$(tail -n +$((lines + 1)) "$T/nginx/logs/access.log" |
		awk -v p="/blobs/$n.bin" '$2 == p { s += $4 } END { printf "%.0f\n", s }')
	ok "$n was fetched again ($sent bytes)" test "$sent" -ge $((256 * 1024 + 17))
done
ok "daemon alive" kill -0 "$AF_PID"
ok "clean unmount" umount_af
ok "the index is consistent afterwards" "$CHECK" "$T/cache"

# prefetch drops such a record the same way; gc takes away what is left.
ok "poke: a's record is garbage again" "$POKE" "$T/cache" blob "${d[a]}" 00
ok "prefetch fetches it again" "$AF" prefetch $C "vision/a.bin@${d[a]}"
ok "poke: b's record is garbage again" "$POKE" "$T/cache" blob "${d[b]}" 0100
ok "cache gc drops a record that does not decode" sh -c "'$AF' cache $C gc | grep -q 'removed 1 record'"
ok "cache evict takes one too" sh -c "'$POKE' '$T/cache' blob '${d[c]}' 02 && '$AF' cache $C evict '${d[c]}'"
ok "the index is consistent at the end" "$CHECK" "$T/cache"
