#!/usr/bin/env bash
# How nodes run it (DESIGN §9): mount.artifactfs as mount(8) calls it (the
# daemon detaches once mounted and exits when unmounted), SIGINT unmounts
# cleanly, --log-format json gives JSON lines, bad mount points fail.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob m.bin 70000
d=$(register m.bin)

# mount(8) style: SPEC MOUNTPOINT -o OPTIONS; fstab-only options dropped.
PATH=$AF_BUILD:$PATH "$AF_BUILD/mount.artifactfs" "$T/artifactfs.conf" "$T/mnt" \
	-o defaults,_netdev,nofail,x-systemd.automount >"$T/helper.out" 2>&1
rc=$?
expect "mount.artifactfs exits 0 once mounted" 0 echo $rc
ok "mounted (detached daemon)" mountpoint -q "$T/mnt"
dpid=$(pgrep -f "artifactfs mount -c $T/artifactfs.conf" | head -1)
[ -n "$dpid" ] && EXTRA_PIDS="$dpid"
ok "content through the helper's mount" cmp "$T/www/m.bin" "$T/mnt/vision/m.bin@$d"
ok "umount" umount "$T/mnt"
for _ in $(seq 1 50); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
ok "the daemon exits after umount" sh -c "! kill -0 $dpid 2>/dev/null"
ok "helper with config=FILE option" sh -c "PATH='$AF_BUILD':\$PATH '$AF_BUILD/mount.artifactfs' artifactfs '$T/mnt' -f -o config='$T/artifactfs.conf',allow_root 2>&1 | grep -q -- '-c $T/artifactfs.conf -o allow_root $T/mnt'"

# SIGINT, JSON logs. A script's background job starts with SIGINT ignored,
# which libfuse rightly leaves alone: restore the default as a terminal or
# systemd would.
env --default-signal=INT "$AF" mount -f --log-format json -c "$T/artifactfs.conf" "$T/mnt" >"$T/daemon.log" 2>&1 &
AF_PID=$!
for _ in $(seq 1 100); do mountpoint -q "$T/mnt" && break; sleep 0.1; done
ok "mounted with --log-format json" mountpoint -q "$T/mnt"
kill -INT "$AF_PID"
for _ in $(seq 1 100); do kill -0 "$AF_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$AF_PID" 2>/dev/null; then rc=timeout; else wait "$AF_PID"; rc=$?; AF_PID=""; fi
expect "SIGINT: exit 0" 0 echo $rc
ok "SIGINT: unmounted" sh -c "! mountpoint -q '$T/mnt'"
ok "every log line is a JSON object" sh -c "test -s '$T/daemon.log' && ! grep -v '^{\"ts\":\"[^\"]*\",\"level\":\"[a-z]*\",\"msg\":' '$T/daemon.log'"

"$AF" mount -f -c "$T/artifactfs.conf" "$T/nonexistent" >"$T/bad.out" 2>&1; rc=$?
expect "mount point missing: exit 1" 1 echo $rc
ok "the error names it" grep -q nonexistent "$T/bad.out"

# A cache that cannot open fails the mount command itself (not a detached
# daemon after the fact), and nothing stays mounted.
sed "s|^dir = $T/cache|dir = /proc/artifactfs-cannot-be-here|" "$T/artifactfs.conf" >"$T/badcache.conf"
"$AF" mount -c "$T/badcache.conf" "$T/mnt" >"$T/badcache.out" 2>&1; rc=$?
expect "unusable cache.dir: exit 1" 1 echo $rc
ok "the error names the cache dir" grep -q "artifactfs-cannot-be-here" "$T/badcache.out"
ok "nothing mounted" sh -c "! mountpoint -q '$T/mnt'"

# SIGTERM to the process lands on any thread that does not block it. Sent
# to each thread of ours in turn (tgkill), not only the main one or a
# FUSE worker, it must end the session at once: it once left the loop
# waiting for the next FUSE request, and a stop hanging for minutes.
tgkill() {
	python3 -c 'import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); sys.exit(0 if libc.syscall(234, int(sys.argv[1]), int(sys.argv[2]), 15) == 0 else 1)' "$1" "$2"
}
k=0
while :; do
	mount_af || break
	cat "$T/mnt/vision/m.bin@$d" >/dev/null
	tids=$(for t in /proc/"$AF_PID"/task/*; do
		tid=${t##*/}
		[ "$tid" = "$AF_PID" ] && continue
		grep -qx fuse_worker "$t/comm" 2>/dev/null && continue
		echo "$tid"
	done | sort -n)
	tid=$(echo "$tids" | sed -n "$((k + 1))p")
	if [ -z "$tid" ]; then
		ok "clean unmount" umount_af
		break
	fi
	comm=$(cat /proc/"$AF_PID"/task/"$tid"/comm 2>/dev/null)
	tgkill "$AF_PID" "$tid"
	pid=$AF_PID
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		fail "SIGTERM on thread $((k + 1)) ($comm): the daemon did not exit within 10 s"
		umount_af
		break
	fi
	wait "$pid"; rc=$?
	AF_PID=""
	ok "SIGTERM on thread $((k + 1)) ($comm): exit 0, unmounted" sh -c "test $rc = 0 && ! mountpoint -q '$T/mnt'"
	k=$((k + 1))
done
ok "SIGTERM tried on several threads of ours" test "$k" -ge 4
