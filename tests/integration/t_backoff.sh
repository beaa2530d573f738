#!/usr/bin/env bash
# The failure backoff (DESIGN §6, issue 10 item 3): a tampered source must
# not turn every open into a full download. After a failed fetch, opens of
# that blob fail at once with EIO for [fetch] failure_backoff (doubling on
# each further failure), audited "backing off"; SIGHUP, a changed
# registration or `cache evict DIGEST` clears it.
. "$(dirname "$0")/lib.sh"
af_world 256K
sed -i 's/^retries = 2$/retries = 2\nfailure_backoff = 3s/' "$T/artifactfs.conf"
size=$((2 * 1024 * 1024 + 5))
make_blob bad.bin $size
make_blob other.bin $size
d=$(register bad.bin)
d_other=$(register other.bin)
cp "$T/www/bad.bin" "$T/bad.orig"
cp "$T/www/other.bin" "$T/other.orig"
printf '\xff' | dd of="$T/www/bad.bin" bs=1 seek=777 conv=notrunc status=none
printf '\xff' | dd of="$T/www/other.bin" bs=1 seek=777 conv=notrunc status=none
mount_af || exit 1
f="$T/mnt/vision/bad.bin@$d"
g="$T/mnt/vision/other.bin@$d_other"
expect "tampered: EIO" EIO "$PROBE" open "$f"
sent=$(nginx_bytes bad.bin)
ok "the first open downloaded it" test "$sent" -ge "$size"
for i in 1 2 3 4 5; do "$PROBE" open "$f" >/dev/null; done
expect "opens in the backoff: EIO at once" EIO "$PROBE" open "$f"
expect "no byte downloaded again" "$sent" nginx_bytes bad.bin
ok "audit open_denied says backing off" audit_has open_denied "backing off"
expect "cache_state quarantined" quarantined getfattr --only-values -n user.artifact.cache_state "$f"
ok "the failure itself names the backoff" sh -c "grep '\"event\":\"verify_failed\"' '$T/audit.jsonl' | grep '$d' | grep -q 'backing off 3 s'"
# After it, one more download, then twice as long.
sleep 3.5
expect "after the backoff: fetched again (and fails again)" EIO "$PROBE" open "$f"
sent2=$(nginx_bytes bad.bin)
ok "one more download" test "$sent2" -ge $((sent + size))
ok "the backoff doubled" sh -c "grep '\"event\":\"verify_failed\"' '$T/audit.jsonl' | grep '$d' | grep -q 'backing off 6 s'"
sleep 3.5
expect "3.5 s into a 6 s backoff: still EIO at once" EIO "$PROBE" open "$f"
expect "still no new download" "$sent2" nginx_bytes bad.bin
# The source is fixed: cache evict DIGEST clears the backoff.
cp "$T/bad.orig" "$T/www/bad.bin"
expect "fixed, but backing off" EIO "$PROBE" open "$f"
ok "cache evict DIGEST" "$AF" cache -c "$T/artifactfs.conf" evict "$d"
ok "after evict: served" cmp "$T/bad.orig" "$f"
# SIGHUP clears it.
expect "other: EIO" EIO "$PROBE" open "$g"
cp "$T/other.orig" "$T/www/other.bin"
expect "other fixed, but backing off" EIO "$PROBE" open "$g"
kill -HUP "$AF_PID"
sleep 1
ok "after SIGHUP: served" cmp "$T/other.orig" "$g"
# A changed registration clears it (its own backoff is another's).
printf '\xff' | dd of="$T/www/other.bin" bs=1 seek=99 conv=notrunc status=none
"$AF" cache -c "$T/artifactfs.conf" evict "$d_other" >/dev/null
expect "other tampered again: EIO" EIO "$PROBE" open "$g"
cp "$T/other.orig" "$T/www/other.bin"
expect "fixed, backing off" EIO "$PROBE" open "$g"
register other.bin registered_at=2026-03-10T00:00:00Z >/dev/null
sleep 2.5
ok "after the registration changed: served" cmp "$T/other.orig" "$g"
ok "daemon alive" kill -0 "$AF_PID"
ok "clean unmount" umount_af
