#!/usr/bin/env bash
# The audit log under pressure (DESIGN §8, issue 10 item 10): a flood of
# lookups of wrong names by one user is rate-limited per uid, with one line
# per interval carrying the count suppressed, and does not silence another
# user; and an audit log that does not take writes (a pipe nobody reads)
# never blocks the FUSE workers, nor the stop: opens go on, the daemon
# exits at once.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob a.bin 4000
d=$(register a.bin)
u=$(af_user afaud) || { log "SKIP: cannot create a user"; exit 0; }
uid=$(id -u "$u")
mount_af || exit 1
m=$T/mnt/vision
zero=$(printf '%064d' 0)
N=300
cat >"$T/flood.sh" <<EOS
for i in \$(seq 1 $N); do stat "$m/nope\$i.bin@sha256:$zero" >/dev/null 2>&1; done
EOS
setpriv --reuid="$uid" --regid="$uid" --clear-groups sh "$T/flood.sh"
expect "root's wrong name is audited too" ENOENT "$PROBE" open "$m/rootnope.bin@sha256:$zero"
sleep 11.5	# the 10 s interval ends, its count is written
lines=$(grep '"event":"lookup_unregistered"' "$T/audit.jsonl" | grep -c "\"uid\":$uid,")
log "$N wrong lookups by uid $uid: $lines audit lines"
ok "the flood is rate-limited (at most 20 lines and the count)" test "$lines" -le 21
ok "at least the first ones are audited" test "$lines" -ge 10
sup=$(grep '"event":"lookup_unregistered"' "$T/audit.jsonl" | grep "\"uid\":$uid," | grep -o '[0-9]* more lookup_unregistered events suppressed' | awk '{ s += $1 } END { print s + 0 }')
allowed=$(grep '"event":"lookup_unregistered"' "$T/audit.jsonl" | grep "\"uid\":$uid," | grep -vc 'suppressed')
log "allowed $allowed, suppressed $sup"
ok "allowed + suppressed = every lookup (a lookup may be repeated by stat)" test $((allowed + sup)) -ge $N
ok "root's line is there" sh -c "grep '\"event\":\"lookup_unregistered\"' '$T/audit.jsonl' | grep '\"uid\":0,' | grep -q rootnope"
ok "clean unmount" umount_af

# An audit log that blocks: a FIFO held open, never read.
ok "prefetch (its own audit log)" sh -c "sed 's|^log = .*|log = $T/prefetch-audit.jsonl|' '$T/artifactfs.conf' >'$T/prefetch.conf' && '$AF' prefetch -c '$T/prefetch.conf' 'vision/a.bin@$d' >/dev/null"
mkfifo "$T/audit.fifo"
# A process of its own holds the pipe open and never reads (the daemon
# must not inherit a reader: it would keep the pipe from ever breaking).
sleep 3600 <>"$T/audit.fifo" &
holder=$!
EXTRA_PIDS="$EXTRA_PIDS $holder"
sed -i "s|^log = .*|log = $T/audit.fifo|" "$T/artifactfs.conf"
mount_af || exit 1
ok "1000 opens with the audit pipe full" timeout 60 sh -c "for i in \$(seq 1 1000); do cat '$m/a.bin@$d' >/dev/null || exit 1; done"
ok "stat still answers" timeout 10 stat "$m/a.bin@$d"
ok "daemon alive" kill -0 "$AF_PID"
# The stop does not wait for the reader either: what is queued is lost,
# counted, and said (a line waits AUDIT_STALL_MS at most, then none do).
UMOUNT_WAIT=20
ok "clean unmount with the pipe still full, within 20 s" umount_af
UMOUNT_WAIT=
ok "the daemon said audit events were lost" grep -q "audit.fifo: write failed: its reader takes no writes" "$T/daemon.log"
ok "and how many" grep -q "audit.fifo: [0-9]* events could not be written" "$T/daemon.log"
kill -TERM "$holder"
