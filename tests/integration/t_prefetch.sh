#!/usr/bin/env bash
# prefetch with a running daemon (DESIGN §9): it fills the cache the daemon
# uses, and when both want the same blob at once the index lease makes one
# transfer of it (across processes), not two.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob warm.bin $((6 * 1024 * 1024))
make_blob both.bin $((8 * 1024 * 1024))
d_warm=$(register warm.bin channels='["prod"]')
d_both=$(register both.bin uri="http://127.0.0.1:$NGINX_PORT/slow/both.bin")
mount_af || exit 1

ok "prefetch by channel with the daemon running" "$AF" prefetch -c "$T/artifactfs.conf" "vision/warm.bin@prod"
expect "the daemon sees it verified" verified getfattr --only-values -n user.artifact.cache_state "$T/mnt/vision/warm.bin@$d_warm"
before=$(nginx_bytes warm.bin)
ok "read through the mount equal" cmp "$T/www/warm.bin" "$T/mnt/vision/warm.bin@$d_warm"
expect "and it fetched nothing more" "$before" nginx_bytes warm.bin

# Same blob, at once, from the daemon (a reader) and from prefetch.
( cmp -s "$T/www/both.bin" "$T/mnt/vision/both.bin@$d_both" && touch "$T/reader.ok" ) &
reader=$!
sleep 0.5
ok "prefetch of a blob the daemon is fetching" "$AF" prefetch -c "$T/artifactfs.conf" "vision/both.bin@$d_both"
wait "$reader"
ok "the reader got the right bytes" test -f "$T/reader.ok"
sent=$(nginx_bytes both.bin slow)
ok "one transfer across both processes ($sent bytes)" test "$sent" -le $((8 * 1024 * 1024 * 105 / 100))
ok "clean unmount" umount_af
