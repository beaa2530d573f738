#!/usr/bin/env bash
# A source that ignores Range (DESIGN §5b, issue 10 item 2): nginx with
# max_ranges 0 answers every ranged GET with 200 and the whole body. Read
# once, sequentially: the bytes it sends stay within 1.1x the blob, not
# once per chunk (which is quadratic).
. "$(dirname "$0")/lib.sh"
af_world 256K
size=$((24 * 1024 * 1024 + 333))
make_blob big.bin $size
make_blob nosize.bin $((3 * 1024 * 1024 + 1))
d=$(register big.bin uri="http://127.0.0.1:$NGINX_PORT/norange/big.bin")
dn=$(register nosize.bin size=none uri="http://127.0.0.1:$NGINX_PORT/norange/nosize.bin")
mount_af || exit 1
ok "content equal" cmp "$T/www/big.bin" "$T/mnt/vision/big.bin@$d"
sent=$(nginx_bytes big.bin norange)
log "nginx sent $sent bytes for a $size-byte blob in $(awk '$2 == "/norange/big.bin"' "$T/nginx/logs/access.log" | wc -l) requests"
ok "nginx ignored Range (200s)" sh -c "awk '\$2 == \"/norange/big.bin\" && \$3 == 200' '$T/nginx/logs/access.log' | grep -q ."
ok "bytes sent <= 1.1 x size" test "$sent" -le $((size * 11 / 10))
ok "no size registered: content equal" cmp "$T/www/nosize.bin" "$T/mnt/vision/nosize.bin@$dn"
ok "no size registered: bytes sent <= 1.1 x size + one probe" test "$(nginx_bytes nosize.bin norange)" -le $(( (3 * 1024 * 1024 + 1) * 11 / 10 ))
ok "clean unmount" umount_af
