#!/usr/bin/env bash
# The audit's who and its delivery (issue 9 item 5, DESIGN §8): open,
# open_denied and lookup_unregistered carry the uid, gid and pid of the
# requesting process as the FUSE request reports them (a real user, a
# known pid); no event is lost on a clean stop, even with opens in flight
# when it comes; a log that cannot be written is reported loudly (at the
# first failure, while it lasts, and when it is over), and one that cannot
# be opened refuses the mount.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob a.bin 4000
make_blob r.bin 4000
d=$(register a.bin)
d_r=$(register r.bin lifecycle=revoked)
u=$(af_user afids) || { log "SKIP: cannot create a user"; exit 77; }
uid=$(id -u "$u")
gid=$((50000 + RANDOM % 10000))
zero=$(printf '%064d' 0)
mount_af || exit 1
m=$T/mnt/vision

# as_user SCRIPT: runs sh -c SCRIPT as the user (uid, gid $gid), its pid
# first written to $T/pid.
as_user() {
	setpriv --reuid="$uid" --regid="$gid" --clear-groups sh -c "echo \$\$ >'$T/pid'; exec $1"
}
ids() { printf '"uid":%s,"gid":%s,"pid":%s' "$uid" "$gid" "$(cat "$T/pid")"; }
as_user "cat '$m/a.bin@$d' >/dev/null"
ok "open: the requester's uid, gid and pid" audit_wait sh -c \
	"grep '\"event\":\"open\"' '$T/audit.jsonl' | grep '$d' | grep -q '$(ids)'"
as_user "cat '$m/r.bin@$d_r'" 2>/dev/null
ok "open_denied: the requester's uid, gid and pid" audit_wait sh -c \
	"grep '\"event\":\"open_denied\"' '$T/audit.jsonl' | grep '$d_r' | grep -q '$(ids)'"
as_user "stat '$m/nope.bin@sha256:$zero'" >/dev/null 2>&1
ok "lookup_unregistered: the requester's uid, gid and pid" audit_wait sh -c \
	"grep '\"event\":\"lookup_unregistered\"' '$T/audit.jsonl' | grep nope.bin | grep -q '$(ids)'"
ok "root's own open says uid 0" audit_wait sh -c \
	"cat '$m/a.bin@$d' >/dev/null && grep '\"event\":\"open\"' '$T/audit.jsonl' | grep -q '\"uid\":0,\"gid\":0,'"

# No event lost on a clean stop: four readers open the file in a loop, and
# the daemon is stopped while they do. Every open that succeeded has its
# line (one more per reader at most: an open answered whose read failed
# when the mount went).
before=$(grep -c '"event":"open"' "$T/audit.jsonl")
for i in 1 2 3 4; do
	( n=0; while cat "$m/a.bin@$d" >/dev/null 2>&1; do n=$((n + 1)); done; echo "$n" >"$T/reader$i" ) &
	EXTRA_PIDS="$EXTRA_PIDS $!"
done
sleep 2
umount_af
ok "clean stop with opens in flight" test $? -eq 0
wait
opened=$(cat "$T"/reader? | awk '{ s += $1 } END { print s }')
logged=$(( $(grep -c '"event":"open"' "$T/audit.jsonl") - before ))
log "opens that succeeded: $opened; open events: $logged"
ok "every open is in the audit log ($logged lines for $opened opens)" \
	sh -c "[ $opened -gt 100 ] && [ $logged -ge $opened ] && [ $logged -le $((opened + 4)) ]"
ok "every line is whole JSON" python3 -c "
import json, sys
for line in open('$T/audit.jsonl'):
    json.loads(line)
"

# A log that cannot be written: loud at the first failure, while it lasts,
# and when it is over; the reads go on.
cp "$T/artifactfs.conf" "$T/good.conf"
sed -i "s|^log = .*|log = /dev/full|" "$T/artifactfs.conf"
mount_af || exit 1
ok "audit log /dev/full: mounted, reads go on" cmp "$T/www/a.bin" "$m/a.bin@$d"
ok "  said loudly, naming the log and what is lost" sh -c \
	"for i in \$(seq 1 20); do grep -q 'audit log /dev/full: .*No space left on device.*events are being lost' '$T/daemon.log' && exit 0; sleep 0.1; done; exit 1"
for _ in $(seq 1 20); do cat "$m/a.bin@$d" >/dev/null; done
umount_af
ok "  and at the stop, with the count lost" grep -Eq "audit log /dev/full: [0-9]+ events could not be written" "$T/daemon.log"

# A log that cannot be opened: the mount is refused, naming it.
sed -i "s|^log = .*|log = /proc/self/nope/audit.jsonl|" "$T/artifactfs.conf"
ok "audit log that cannot be opened: mount refused" sh -c \
	"! '$AF' mount -f -c '$T/artifactfs.conf' '$T/mnt' >'$T/bad.out' 2>&1"
ok "  naming the log" grep -q "audit log /proc/self/nope/audit.jsonl" "$T/bad.out"
ok "  nothing mounted" sh -c "! mountpoint -q '$T/mnt'"
cp "$T/good.conf" "$T/artifactfs.conf"
