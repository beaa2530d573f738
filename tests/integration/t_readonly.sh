#!/usr/bin/env bash
# Read-only (DESIGN §7): every write-type op is EROFS; mmap reads equal.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob w.bin $((5 * 1024 * 1024 + 3))
d=$(register w.bin)
mount_af || exit 1
f=$T/mnt/vision/w.bin@$d
ok "mmap read equal" sh -c "'$PROBE' mmap '$f' '$T/mm.out' && cmp '$T/www/w.bin' '$T/mm.out'"
ok "read(2) equal" sh -c "'$PROBE' read '$f' '$T/rd.out' && cmp '$T/www/w.bin' '$T/rd.out'"
expect "open for write: EROFS" EROFS "$PROBE" open-write "$f"
expect "create: EROFS" EROFS "$PROBE" create "$T/mnt/vision/new@sha256:$(printf '%064d' 1)"
expect "unlink: EROFS" EROFS "$PROBE" unlink "$f"
expect "truncate: EROFS" EROFS "$PROBE" truncate "$f"
expect "chmod: EROFS" EROFS "$PROBE" chmod "$f"
expect "mkdir: EROFS" EROFS "$PROBE" mkdir "$T/mnt/newproject"
expect "rmdir: EROFS" EROFS "$PROBE" rmdir "$T/mnt/vision"
expect "rename: EROFS" EROFS "$PROBE" rename "$f" "$T/mnt/vision/x"
expect "symlink: EROFS" EROFS "$PROBE" symlink "$f" "$T/mnt/vision/y"
expect "setxattr: EROFS" EROFS "$PROBE" setxattr "$f"
ok "content unchanged after all that" cmp "$T/www/w.bin" "$f"
ok "clean unmount" umount_af
