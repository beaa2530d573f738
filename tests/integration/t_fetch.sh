#!/usr/bin/env bash
# The fetch engine (issue 3): one fetch per blob for many concurrent
# readers, O_NONBLOCK → EAGAIN with the fetch going on, an interrupted
# waiting open → EINTR at once while the fetch goes on, and resume after
# kill -9 fetching only the missing chunks.
. "$(dirname "$0")/lib.sh"
af_world 1M
size=$((32 * 1024 * 1024))
make_blob shared.bin $size
make_blob nb.bin $((8 * 1024 * 1024))
make_blob intr.bin $((24 * 1024 * 1024))
make_blob resume.bin $((24 * 1024 * 1024))
d_shared=$(register shared.bin)
d_nb=$(register nb.bin)
d_intr=$(register intr.bin uri="http://127.0.0.1:$NGINX_PORT/slow/intr.bin")
d_res=$(register resume.bin uri="http://127.0.0.1:$NGINX_PORT/slow/resume.bin")
mount_af || exit 1
m=$T/mnt/vision

# 16 concurrent cold readers share one transfer.
pids=""
for i in $(seq 1 16); do
	( cmp -s "$T/www/shared.bin" "$m/shared.bin@$d_shared" && touch "$T/reader.$i.ok" ) &
	pids="$pids $!"
done
wait $pids
expect "16 concurrent readers all read equal bytes" 16 sh -c "ls '$T'/reader.*.ok | wc -l"
sent=$(nginx_bytes shared.bin)
ok "bytes sent ($sent) <= 1.05 x blob size" test "$sent" -le $((size * 105 / 100))
expect "one fetch_start for the shared blob" 1 sh -c "grep fetch_start '$T/audit.jsonl' | grep -c '$d_shared'"

# O_NONBLOCK: EAGAIN at once, the fetch goes on in the background.
expect "O_NONBLOCK open of a cold blob: EAGAIN" EAGAIN "$PROBE" open-nonblock "$m/nb.bin@$d_nb"
for _ in $(seq 1 100); do
	[ "$(getfattr --only-values -n user.artifact.cache_state "$m/nb.bin@$d_nb" 2>/dev/null)" = verified ] && break
	sleep 0.1
done
expect "background fetch verified it" verified getfattr --only-values -n user.artifact.cache_state "$m/nb.bin@$d_nb"
expect "O_NONBLOCK open of a verified blob: ok" ok "$PROBE" open-nonblock "$m/nb.bin@$d_nb"

# Ctrl-C on a waiting open: EINTR at once; the fetch goes on for others.
t0=$(date +%s%N)
timeout -s INT 1 cat "$m/intr.bin@$d_intr" >/dev/null 2>&1
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
ok "interrupted open returned promptly (${ms} ms)" test "$ms" -lt 3000
ok "after the interrupt the fetch completes and reads equal" cmp "$T/www/intr.bin" "$m/intr.bin@$d_intr"
expect "one fetch for the interrupted blob" 1 sh -c "grep fetch_start '$T/audit.jsonl' | grep -c '$d_intr'"

# kill -9 mid-fetch, restart: only the missing chunks are fetched again.
( cat "$m/resume.bin@$d_res" >/dev/null 2>&1 ) &
reader=$!
sleep 2.5
kill -KILL "$AF_PID"; wait "$AF_PID" 2>/dev/null; AF_PID=""
wait "$reader" 2>/dev/null
umount -l "$T/mnt" 2>/dev/null || fusermount3 -u -z "$T/mnt"
present=$("$AF" cache -c "$T/artifactfs.conf" ls --json | grep "$d_res" | sed -n 's/.*"bytes_present":\([0-9]*\).*/\1/p')
present=${present:-0}
log "after kill -9: $present of $((24 * 1024 * 1024)) bytes recorded"
ok "some chunks were recorded before the kill" test "$present" -gt 0
ok "not everything was fetched before the kill" test "$present" -lt $((24 * 1024 * 1024))
before=$(nginx_bytes resume.bin slow)
mount_af || exit 1
ok "after restart the blob reads equal" cmp "$T/www/resume.bin" "$m/resume.bin@$d_res"
after=$(nginx_bytes resume.bin slow)
refetched=$((after - before))
log "refetched after restart: $refetched bytes (missing: $((24 * 1024 * 1024 - present)))"
ok "only the missing chunks were fetched again" test "$refetched" -le $((24 * 1024 * 1024 - present))
ok "clean unmount" umount_af
ok "verified state survives" sh -c "'$AF' cache -c '$T/artifactfs.conf' ls --json | grep '$d_res' | grep -q '\"state\":\"verified\"'"
