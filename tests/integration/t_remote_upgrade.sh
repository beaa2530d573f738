#!/usr/bin/env bash
# A live upgrade with the registry from the control plane (DESIGN §3,
# §13): the new daemon serves what the old one last heard (kept in the
# cache index), polls at once, and neither side keeps the mount waiting on
# a control plane that does not answer: the old daemon lets go of the
# cache while its poll is stuck, the new one does not ask before it serves.
. "$(dirname "$0")/lib.sh"
refresh=2
cp_world "${refresh}s"
cat >>"$T/artifactfs.conf" <<EOF2
[log]
file = $T/daemon-detached.log
EOF2
make_blob a.bin 4096
make_blob b.bin 4096
d_a=$(register a.bin)
cp_publish
upgrade() {
	local out rc new
	out=$("$AF" upgrade -c "$T/artifactfs.conf" "$T/mnt" 2>"$T/upgrade.err")
	rc=$?
	echo "$out" >>"$T/upgrade.out"
	new=$(echo "$out" | sed -n 's/.*-> \([0-9]*\)$/\1/p')
	# The old daemon (our mount -f job) is reaped later: its exit is
	# checked on its own.
	if [ "$rc" -eq 0 ] && [ -n "$new" ]; then
		AF_PID=$new
	fi
	return "$rc"
}
# A request may stall longer than the control plane's 20 s below.
sed -i 's/^low_speed_timeout = .*/low_speed_timeout = 60s/' "$T/artifactfs.conf"
mount_af || exit 1
m=$T/mnt/vision
ok "a reads" cmp "$T/www/a.bin" "$m/a.bin@$d_a"

# The control plane stops answering for 20 s (cpd logs a request when it
# answers it): the old daemon's next poll hangs in its request.
echo "v1/ delay 20" >"$T/cp/faults"
n=$(wc -l <"$T/cpd.log")
cp "$T/cpd.log" "$T/cpd.log.before"
sleep $((refresh + 1))
old=$AF_PID
ok "upgrade while the old daemon's poll hangs: exit 0" upgrade
ok "  done before the control plane answered anything (the hand-over did not wait for it)" \
	test "$(wc -l <"$T/cpd.log")" -eq "$n"
ok "  a new daemon serves" sh -c "[ '$AF_PID' != '$old' ] && kill -0 $AF_PID"
ok "  listing: what the old daemon last heard" sh -c "ls '$m' | grep -qx 'a.bin@$d_a'"
ok "  a reads" cmp "$T/www/a.bin" "$m/a.bin@$d_a"
# Its poll stopped, the old daemon exits without waiting for an answer.
ok "the old daemon exits while the control plane still holds its request" sh -c \
	"for i in \$(seq 1 50); do kill -0 $old 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
ok "  (still no answer given)" test "$(wc -l <"$T/cpd.log")" -eq "$n"
wait "$old" 2>/dev/null

# The control plane answers again: the new daemon's polls bring changes.
rm -f "$T/cp/faults"
d_b=$(register b.bin)
cp_publish
# (the new daemon's first poll waits for the 20 s answer, then polls on)
ok "a registration made after the upgrade shows" sh -c \
	"for i in \$(seq 1 $((refresh * 10 + 250))); do ls '$m' | grep -qx 'b.bin@$d_b' && exit 0; sleep 0.1; done; exit 1"
ok "  and reads" cmp "$T/www/b.bin" "$m/b.bin@$d_b"
kill -TERM "$AF_PID"
for _ in $(seq 1 100); do kill -0 "$AF_PID" 2>/dev/null || break; sleep 0.1; done
ok "the upgraded daemon unmounts cleanly on SIGTERM" sh -c "! kill -0 $AF_PID 2>/dev/null && ! mountpoint -q '$T/mnt'"
AF_PID=""
