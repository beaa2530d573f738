#!/usr/bin/env bash
# Running as a node service (DESIGN §13, §10 [log]; issue 12 items 1, 3):
# sd_notify readiness against a listener that stands in for systemd (a
# unix datagram socket with SO_PASSCRED, tests/integration/notify_listen.py):
# READY=1 only once the mount answers, from the main process (the one
# started: the daemon with -f, the mount command when detached, with
# MAINPID= of the daemon and a barrier), STATUS= lines, STOPPING=1 from
# the daemon; no READY=1 when the mount fails. Logs: [log] file for a
# detached daemon, reopened on SIGHUP (logrotate), format = json; what the
# daemon says after its command returned goes to the log, never to the
# terminal the command ran on.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob s.bin 50000
d=$(register s.bin)
LISTEN="$(dirname "$0")/notify_listen.py"

# start_listener NAME: a listener at $T/NAME.sock writing $T/NAME.jsonl.
start_listener() {
	python3 "$LISTEN" "$T/$1.sock" "$T/$1.jsonl" 120 &
	EXTRA_PIDS="$EXTRA_PIDS $!"
	for _ in $(seq 1 50); do [ -S "$T/$1.sock" ] && break; sleep 0.1; done
}
# msgs NAME: the messages received, one per line, "PID MSG" (newlines as |).
msgs() {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    print(o["pid"], o["msg"].replace("\n", "|"))' "$T/$1.jsonl"
}
before() {	# before FILE A B: a line matching A comes before one matching B
	awk -v a="$2" -v b="$3" '$0 ~ a && !ia { ia = NR } $0 ~ b && !ib { ib = NR }
		END { exit !(ia && ib && ia < ib) }' "$1"
}
wait_for() {	# wait_for FILE PATTERN: up to 10 s
	for _ in $(seq 1 100); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}

# 1. Foreground (-f, Type=notify): this process is the main one.
start_listener fg
NOTIFY_SOCKET="$T/fg.sock" "$AF" mount -f -c "$T/artifactfs.conf" "$T/mnt" \
	>>"$T/daemon.log" 2>&1 &
AF_PID=$!
ok "foreground: READY=1 arrives" wait_for "$T/fg.jsonl" 'READY=1'
ok "foreground: the mount answers when READY=1 arrives" cmp "$T/www/s.bin" "$T/mnt/vision/s.bin@$d"
msgs fg >"$T/fg.msgs"
ok "foreground: READY=1 comes from the daemon (the main process)" grep -q "^$AF_PID READY=1|STATUS=serving 1 artifacts on $T/mnt\$" "$T/fg.msgs"
ok "foreground: STATUS= while loading, before READY=1" before "$T/fg.msgs" 'STATUS=loading the registry' 'READY=1'
ok "foreground: STATUS= while mounting, before READY=1" before "$T/fg.msgs" 'STATUS=mounting' 'READY=1'
ok "foreground: the probe is what made it ready (the daemon saw the mount answer)" grep -q "mounted: serving 1 artifacts on $T/mnt" "$T/daemon.log"
expect "foreground: one READY=1" 1 grep -c 'READY=1' "$T/fg.msgs"
# A reload changes STATUS= (the catalog hook), not READY.
make_blob s2.bin 1000
register s2.bin >/dev/null
kill -HUP "$AF_PID"
ok "foreground: STATUS= after a reload counts the new artifact" wait_for "$T/fg.jsonl" 'STATUS=serving 2 artifacts'
# The registry cannot be read: STATUS= says so, the node serves what it saw.
mv "$T/registry" "$T/registry.away"
kill -HUP "$AF_PID"
ok "foreground: STATUS= when the registry cannot be read" wait_for "$T/fg.jsonl" 'STATUS=registry folder unreadable: serving the 2 artifacts last seen'
ok "... and it still serves them" cmp "$T/www/s.bin" "$T/mnt/vision/s.bin@$d"
mv "$T/registry.away" "$T/registry"
kill -HUP "$AF_PID"
ok "foreground: STATUS= back to normal once it reads again" sh -c "
	for i in \$(seq 1 100); do
		tail -n 1 '$T/fg.jsonl' | grep -q '\"STATUS=serving 2 artifacts' && exit 0; sleep 0.1
	done; exit 1"
ok "foreground: SIGTERM unmounts" umount_af
msgs fg >"$T/fg.msgs"
ok "foreground: STOPPING=1 from the daemon" grep -q "^[0-9]* STOPPING=1|STATUS=unmounting $T/mnt\$" "$T/fg.msgs"

# A mount that cannot come up sends no READY=1.
start_listener bad
sed "s|^\[cache\]|[fs]\npassthrough = bogus\n[cache]|" "$T/artifactfs.conf" >"$T/bad.conf"
NOTIFY_SOCKET="$T/bad.sock" "$AF" mount -f -c "$T/bad.conf" "$T/mnt" >"$T/bad.out" 2>&1
expect "a failing mount: exit 1" 1 echo $?
sleep 0.3
ok "a failing mount: no READY=1" sh -c "! grep -q READY=1 '$T/bad.jsonl'"

# 2. Detached (the fstab path, or Type=notify without -f): the command
# is the main process; it reports READY=1 for the daemon, with MAINPID=,
# and waits for the manager (BARRIER=1) before it exits.
start_listener bg
cat >>"$T/artifactfs.conf" <<EOF

[log]
file = $T/daemon-bg.log
format = json
EOF
NOTIFY_SOCKET="$T/bg.sock" "$AF" mount -c "$T/artifactfs.conf" "$T/mnt" >"$T/cmd.out" 2>&1
rc=$?
expect "detached: the command exits 0" 0 echo $rc
ok "detached: mounted and answering as soon as the command returned" cmp "$T/www/s.bin" "$T/mnt/vision/s.bin@$d"
msgs bg >"$T/bg.msgs"
dpid=$(sed -n 's/.*MAINPID=\([0-9]*\).*/\1/p' "$T/bg.msgs" | head -1)
[ -n "$dpid" ] && EXTRA_PIDS="$EXTRA_PIDS $dpid"
ok "detached: MAINPID= names the running daemon" sh -c "[ -n '$dpid' ] && kill -0 '$dpid' && grep -q 'artifactfs' /proc/$dpid/cmdline"
ok "detached: READY=1 from the command, with MAINPID=" sh -c "grep -q '^[0-9]* MAINPID=$dpid|READY=1|STATUS=serving 2 artifacts' '$T/bg.msgs' && ! grep -q '^$dpid .*READY=1' '$T/bg.msgs'"
ok "detached: the command waited for the manager (BARRIER=1)" grep -q 'BARRIER=1' "$T/bg.msgs"
ok "detached: the command's output has the startup lines" grep -q '"msg":"mounted: serving 2 artifacts' "$T/cmd.out"
ok "detached: [log] file has them too" grep -q '"msg":"mounted: serving 2 artifacts' "$T/daemon-bg.log"
ok "detached: format = json: every log line is a JSON object" sh -c "! grep -v '^{\"ts\":\"[^\"]*\",\"level\":\"[a-z]*\",\"msg\":\".*\"}\$' '$T/daemon-bg.log'"
# After the command returned, messages go to the log file only.
lines_out=$(wc -l <"$T/cmd.out")
mv "$T/daemon-bg.log" "$T/daemon-bg.log.1"	# what logrotate does
kill -HUP "$dpid"
ok "SIGHUP: the log file is reopened (a new one appears)" wait_for "$T/daemon-bg.log" 'SIGHUP: reloading'
ok "SIGHUP: later lines go to the new file, not the rotated one" sh -c "! grep -q 'SIGHUP: reloading' '$T/daemon-bg.log.1'"
expect "after the command returned, nothing more on its terminal" "$lines_out" sh -c "wc -l <'$T/cmd.out'"
# logrotate with the shipped snippet (its path and signal pointed at this
# test's file and daemon: never a pkill of daemons this test did not start).
SNIP="$(dirname "$0")/../../tools/artifactfs.logrotate"
ok "the shipped logrotate snippet parses" sh -c "logrotate -d -s '$T/lr.state' '$SNIP' 2>&1 | grep -q '/var/log/artifactfs/artifactfs.log' && ! logrotate -d -s '$T/lr.state' '$SNIP' 2>&1 | grep -qi error"
sed -e "s|/var/log/artifactfs/artifactfs.log|$T/daemon-bg.log|" \
	-e "s|pkill -HUP -f .*|kill -HUP $dpid|" "$SNIP" >"$T/logrotate.conf"
ok "logrotate -f with the snippet" logrotate -f -s "$T/lr.state" "$T/logrotate.conf"
ok "logrotate: the old log was rotated" test -s "$T/daemon-bg.log.1"
ok "logrotate: the daemon made a new log file after its SIGHUP" wait_for "$T/daemon-bg.log" 'SIGHUP: reloading'
ok "umount" umount "$T/mnt"
for _ in $(seq 1 50); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
ok "detached: the daemon exits after umount" sh -c "! kill -0 $dpid 2>/dev/null"
ok "detached: STOPPING=1 from the daemon (MAINPID)" sh -c "python3 -c '
import json
for l in open(\"$T/bg.jsonl\"):
    o = json.loads(l)
    if o[\"msg\"].startswith(\"STOPPING=1\"): print(o[\"pid\"])' | grep -qx '$dpid'"
ok "the unmount is logged in the file" wait_for "$T/daemon-bg.log" 'unmounting'

# 3. Detached without a log file: after the command returned, nothing on
# its terminal either (syslog only).
sed -i '/^\[log\]/,$d' "$T/artifactfs.conf"
"$AF" mount -c "$T/artifactfs.conf" "$T/mnt" >"$T/cmd2.out" 2>&1
expect "detached without NOTIFY_SOCKET: exit 0" 0 echo $?
dpid=$(pgrep -f "artifactfs mount -c $T/artifactfs.conf" | head -1)
[ -n "$dpid" ] && EXTRA_PIDS="$EXTRA_PIDS $dpid"
ok "text startup lines on the command's stderr" grep -q '^artifactfs: info: mounted: serving 2 artifacts' "$T/cmd2.out"
lines_out=$(wc -l <"$T/cmd2.out")
kill -HUP "$dpid"; sleep 0.5
ok "umount" umount "$T/mnt"
for _ in $(seq 1 50); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
expect "no line on the terminal after the command returned" "$lines_out" sh -c "wc -l <'$T/cmd2.out'"
