#!/usr/bin/env bash
# One digest, several registrations (issue 10 items 6 and 7): a verified
# blob serves only registrations whose size_bytes is its size (DESIGN §6:
# the other gets EIO and verify_failed, the blob stays verified), cold or
# warm; and a fetch through another project's bogus source does not fail
# an open whose registration names a good one: it fetches with its own.
. "$(dirname "$0")/lib.sh"
af_world 4M
size=$((6 * 1024 * 1024 + 77))
make_blob good.bin $size
cp "$T/www/good.bin" "$T/www/evil.bin"
printf '\x00' | dd of="$T/www/evil.bin" bs=1 seek=$((size - 9)) conv=notrunc status=none
d=$(register good.bin out=good.json)
register good.bin project=team name=short.bin size=$((size - 1)) out=short.json >/dev/null
register good.bin project=evil name=m.bin out=evil.json \
	uri="http://127.0.0.1:$NGINX_PORT/slow/evil.bin" >/dev/null
mount_af || exit 1
m=$T/mnt
# Item 7: the bogus source is slow; the good registration's open joins it.
"$PROBE" open "$m/evil/m.bin@$d" >"$T/evil.out" &
evil_pid=$!
sleep 0.5
expect "good registration served although it joined a bogus fetch" ok "$PROBE" open "$m/vision/good.bin@$d"
wait $evil_pid
expect "the bogus source's own open: EIO" EIO cat "$T/evil.out"
ok "content equal" cmp "$T/www/good.bin" "$m/vision/good.bin@$d"
ok "audit verify_failed names the bogus project" sh -c "grep '\"event\":\"verify_failed\"' '$T/audit.jsonl' | grep -q '\"project\":\"evil\"'"
# Item 6, warm: another size for the verified blob.
expect "warm: other size_bytes: EIO" EIO "$PROBE" open "$m/team/short.bin@$d"
ok "warm: verify_failed for that registration, both sizes" sh -c "grep '\"event\":\"verify_failed\"' '$T/audit.jsonl' | grep '\"project\":\"team\"' | grep '$((size - 1))' | grep -q '$size'"
expect "warm: the blob stays verified" verified getfattr --only-values -n user.artifact.cache_state "$m/vision/good.bin@$d"
ok "warm: still served to the right size" cmp "$T/www/good.bin" "$m/vision/good.bin@$d"
expect "warm: stat shows each registration's size" "$((size - 1))" stat -c %s "$m/team/short.bin@$d"
# Item 6, cold: the wrong size first, then the right one.
ok "evict" "$AF" cache -c "$T/artifactfs.conf" evict "$d"
expect "cold: other size_bytes: EIO" EIO "$PROBE" open "$m/team/short.bin@$d"
ok "cold: the right size is served next" cmp "$T/www/good.bin" "$m/vision/good.bin@$d"
expect "cold: and the wrong one still EIO" EIO "$PROBE" open "$m/team/short.bin@$d"
ok "daemon alive" kill -0 "$AF_PID"
ok "clean unmount" umount_af
