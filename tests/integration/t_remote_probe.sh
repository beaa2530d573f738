#!/usr/bin/env bash
# A lookup that the last listing missed (issue 9 item 1, DESIGN §3) asks
# /v1/projects/{p}/blobs/{name}@{digest} before it answers ENOENT: found,
# it is served at once; the wait is bounded (a slow control plane holds no
# FUSE worker for a network timeout, nor the other lookups of its project);
# misses are remembered; `ls` of 1,000
# wrong names costs a bounded number of requests; nothing is asked while
# the control plane is down.
. "$(dirname "$0")/lib.sh"
cp_world 60s		# no poll during the test: only lookups ask
make_blob a.bin 4096
make_blob new.bin 4096
make_blob slow.bin 4096
make_blob b.bin 4096
d_a=$(register a.bin)
d_b=$(register b.bin)
cp_publish
mount_af || exit 1
m=$T/mnt/vision
ok "a reads" cmp "$T/www/a.bin" "$m/a.bin@$d_a"
ms() { echo $(( $(date +%s%N) / 1000000 )); }
probes() { cpd_count '^GET /api/v1/projects/vision/blobs/'; }

# A registration made after the last listing: found by asking for it.
d_new=$(register new.bin)
cp_publish
ok "not in the last listing" sh -c "! ls '$m' | grep -q '^new.bin@'"
ok "a lookup of it finds it on the control plane" cmp "$T/www/new.bin" "$m/new.bin@$d_new"
expect "  one request for that name" 1 cpd_count "^GET /api/v1/projects/vision/blobs/new.bin%40sha256%3A${d_new#sha256:} "
ok "  the name@digest segment is percent-encoded" test "$(cpd_count 'blobs/new.bin@')" -eq 0
stat "$m/new.bin@$d_new" >/dev/null
sleep 1.2
stat "$m/new.bin@$d_new" >/dev/null
expect "  asked again: served from the catalog, no new request" 1 cpd_count "blobs/new.bin%40"

# A wrong name: ENOENT, audited, remembered.
zero="sha256:$(printf '%064d' 0)"
expect "an unregistered name: ENOENT" ENOENT "$PROBE" open "$m/nope.bin@$zero"
ok "  audited lookup_unregistered" audit_has lookup_unregistered "nope.bin"
for _ in $(seq 1 50); do stat "$m/nope.bin@$zero" >/dev/null 2>&1; done
expect "  50 more lookups of it: still one request" 1 cpd_count "blobs/nope.bin%40"

# ls of 1,000 wrong names: a bounded number of requests.
before=$(probes)
t0=$(ms)
(cd "$m" && ls $(for i in $(seq 1 1000); do printf 'w%04d.bin@%s ' "$i" "$zero"; done)) >/dev/null 2>&1
t1=$(ms)
asked=$(( $(probes) - before ))
bound=$(( 20 + 10 * (t1 - t0) / 1000 + 3 ))
ok "ls of 1000 wrong names took $((t1 - t0)) ms and asked $asked times (bound $bound)" test "$asked" -le "$bound"
ok "  the budget spent is said" grep -q "answered ENOENT without asking the control plane" "$T/daemon.log"

# A slow control plane: the lookup waits a bounded time, then ENOENT; the
# late answer still lands; other requests are served meanwhile.
d_slow=$(register slow.bin)
cp_publish
echo 'blobs/slow.bin@ delay 4' >"$T/cp/faults"
sleep 1.5	# the probe budget refills
sync
echo 2 >/proc/sys/vm/drop_caches	# no dentry left: b.bin below is a fresh lookup
t0=$(ms)
"$PROBE" open "$m/slow.bin@$d_slow" >"$T/slow.out" 2>&1 &
pid=$!
sleep 0.3
# b.bin has no dentry: the kernel looks it up in the same directory as the
# lookup that waits (parallel lookups: FUSE_PARALLEL_DIROPS).
ok "  meanwhile another name of that project is looked up and served" cmp "$T/www/b.bin" "$m/b.bin@$d_b"
ok "  while that lookup still waits" kill -0 "$pid"
wait "$pid"
t1=$(ms)
expect "slow control plane: ENOENT after the bounded wait" ENOENT cat "$T/slow.out"
# The server logs a request when it answers (after its 4 s delay): the
# lookup was answered before the control plane was.
expect "  the wait was bounded ($((t1 - t0)) ms): answered before the control plane" \
	0 cpd_count "blobs/slow.bin%40"
sleep 3
rm -f "$T/cp/faults"
n=$(cpd_count "blobs/slow.bin%40")
ok "  the late answer landed: found without a new request" cmp "$T/www/slow.bin" "$m/slow.bin@$d_slow"
expect "  (no new request)" "$n" cpd_count "blobs/slow.bin%40"

# The control plane down: nothing is asked, ENOENT at once.
stop_cpd cpd
kill -HUP "$AF_PID"
for _ in $(seq 1 50); do grep -q "serving the .* registrations kept" "$T/daemon.log" && break; sleep 0.1; done
t0=$(ms)
expect "control plane down: an unknown name is ENOENT" ENOENT "$PROBE" open "$m/down.bin@$zero"
ok "  without the bounded wait ($(( $(ms) - t0 )) ms)" test $(( $(ms) - t0 )) -lt 1900
ok "  and what was found before still reads" cmp "$T/www/new.bin" "$m/new.bin@$d_new"
umount_af
ok "clean unmount" test $? -eq 0
