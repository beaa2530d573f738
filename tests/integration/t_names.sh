#!/usr/bin/env bash
# Long names (issue 10 item 12): a 200-byte name with a sha512 digest is a
# 336-byte file name. statfs reports that maximum (not 255), such a file is
# listed, stat'ed and read, and a longer name is ENAMETOOLONG, not ENOENT.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob long.bin 4321
name=$(printf 'n%.0s' $(seq 1 196)).bin
d512="sha512:$(sha512sum "$T/www/long.bin" | cut -d' ' -f1)"
register long.bin name="$name" digest="$d512" out=long.json >/dev/null
mount_af || exit 1
f="$T/mnt/vision/$name@$d512"
expect "the file name is 336 bytes" 336 sh -c "printf %s '$name@$d512' | wc -c"
expect "statfs reports the longest name" 336 stat -f -c %l "$T/mnt"
ok "listed" sh -c "ls '$T/mnt/vision' | grep -qx '$name@$d512'"
expect "stat" 4321 stat -c %s "$f"
ok "read" cmp "$T/www/long.bin" "$f"
long="$T/mnt/vision/$(printf 'x%.0s' $(seq 1 337))"
expect "a 337-byte name: ENAMETOOLONG" ENAMETOOLONG "$PROBE" open "$long"
long="$T/mnt/vision/$(printf 'x%.0s' $(seq 1 400))@$d512"
expect "a longer one too" ENAMETOOLONG "$PROBE" open "$long"
expect "a short unknown name is still ENOENT" ENOENT "$PROBE" open "$T/mnt/vision/nope.bin@$d512"
ok "clean unmount" umount_af
