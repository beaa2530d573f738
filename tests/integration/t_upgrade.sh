#!/usr/bin/env bash
# Live upgrade (issue 13, DESIGN §13): `artifactfs upgrade` takes the FUSE
# connection and the state the kernel holds references to over from the
# running daemon, which exits. Through the real mount: a reader holding a
# blob open (pread at random offsets, and an mmap) straddles upgrades and
# sees no error; a cold open waiting on a fetch straddles one and succeeds
# with the fetch resumed (origin bytes <= 1.2x); inode numbers stay; a new
# binary that fails, is killed, or speaks another hand-over version
# leaves the old daemon serving; the control socket is root's; 20 upgrades
# in a row under reads: no error, no fd or memory growth.
. "$(dirname "$0")/lib.sh"
af_world 1M
mport=$(free_port)
cat >>"$T/artifactfs.conf" <<EOF2
[log]
file = $T/daemon-detached.log

[metrics]
listen = 127.0.0.1:$mport
EOF2
size=$((9 * 1024 * 1024 + 7))
make_blob a.bin $size
make_blob slow.bin $((6 * 1024 * 1024 + 11))
da=$(register a.bin)
ds=$(register slow.bin uri="http://127.0.0.1:$NGINX_PORT/slow/slow.bin")
fa=$T/mnt/vision/a.bin@$da
fs=$T/mnt/vision/slow.bin@$ds
reads() { getfattr --only-values -n user.artifactfs.reads "$T/mnt" 2>/dev/null; }
set_pt() {
	sed -i '/^\[fs\]/,/^passthrough/d' "$T/artifactfs.conf"
	printf '[fs]\npassthrough = %s\n' "$1" >>"$T/artifactfs.conf"
}
# upgrade [ENV...]: runs the upgrade; on success AF_PID becomes the new pid.
upgrade() {
	local out rc new
	out=$(env "$@" "$AF" upgrade -c "$T/artifactfs.conf" "$T/mnt" 2>"$T/upgrade.err")
	rc=$?
	echo "$out" >>"$T/upgrade.out"
	new=$(echo "$out" | sed -n 's/.*-> \([0-9]*\)$/\1/p')
	if [ "$rc" -eq 0 ] && [ -n "$new" ]; then
		# The old daemon was our mount -f job: reap it.
		wait "$AF_PID" 2>/dev/null
		AF_PID=$new
	fi
	return "$rc"
}
# The daemon's fds but the per-worker ones (a /dev/fuse clone and splice
# pipes per FUSE worker thread: their number follows the load, not the
# hand-overs).
fds_of() { ls -l "/proc/$1/fd" | grep -vcE '/dev/fuse|pipe:'; }
# stop_af: SIGTERM to the current daemon (a child or not), wait until it
# is gone, and it must have unmounted.
stop_af() {
	stop_wait "$AF_PID" 30 || return 1
	wait "$AF_PID" 2>/dev/null
	AF_PID=""
	! mountpoint -q "$T/mnt"
}
rss_of() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

if ! "$AF" --version | grep -q "test hooks"; then
	log "note: a build without test hooks: the failure cases are skipped"
fi

set_pt auto
mount_af || exit 1
old=$AF_PID
ok "first open verifies" "$PROBE" open "$fa"
sock=$(ls "$T"/cache/ctl.*.sock 2>/dev/null | head -n 1)
expect "control socket is root's, 0600" "600 root" stat -c '%a %U' "$sock"
ok "a non-root user cannot use it" sh -c "! setpriv --reuid=nobody --regid=nogroup --clear-groups '$AF' upgrade -c '$T/artifactfs.conf' '$T/mnt' 2>/dev/null"
ls -i "$T/mnt/vision" | sort >"$T/ls.before"

# 1. A reader with the blob open (pread, and an mmap) straddles an upgrade.
"$PROBE" hold "$fa" "$T/www/a.bin" "$T/stop1" >"$T/hold1.out" 2>&1 &
h1=$!
"$PROBE" hold "$fa" "$T/www/a.bin" "$T/stop1" mmap >"$T/mmap1.out" 2>&1 &
h2=$!
# 2. A cold open waiting on a (slow) fetch straddles it too.
cat "$fs" >"$T/slow.out" 2>"$T/slow.err" &
c1=$!
sleep 1
ok "upgrade exits 0" upgrade
ok "the old daemon is gone" sh -c "! kill -0 $old 2>/dev/null"
ok "a new daemon serves" sh -c "[ '$AF_PID' != '$old' ] && kill -0 $AF_PID"
wait "$c1"; rc=$?
ok "the cold open that waited across the upgrade succeeded" test "$rc" -eq 0
ok "and read the right bytes" cmp "$T/www/slow.bin" "$T/slow.out"
sent=$(nginx_bytes slow.bin slow)
ok "its fetch resumed, not restarted: origin bytes $sent <= 1.2 x $(stat -c %s "$T/www/slow.bin")" \
	test "$sent" -le $(( $(stat -c %s "$T/www/slow.bin") * 12 / 10 ))
touch "$T/stop1"
wait "$h1"; r1=$?
wait "$h2"; r2=$?
ok "pread loop across the upgrade: no error ($(cat "$T/hold1.out"))" test "$r1" -eq 0
ok "mmap across the upgrade: stays valid ($(cat "$T/mmap1.out"))" test "$r2" -eq 0
ls -i "$T/mnt/vision" | sort >"$T/ls.after"
ok "ls shows the same entries with the same inode numbers" cmp "$T/ls.before" "$T/ls.after"
ok "new opens work" cmp "$T/www/a.bin" "$fa"
ok "the control socket carried over" test -S "$sock"
ok "/metrics answers on the same port after the upgrade" \
	sh -c "curl -sf 'http://127.0.0.1:$mport/metrics' | grep -q '^artifactfs_opens_total'"

# 3. A new binary that fails, is killed, or speaks another version.
if "$AF" --version | grep -q "test hooks"; then
	keep=$AF_PID
	upgrade AF_HOOK=upgrade.new.before_ready=exit; rc=$?
	ok "a new daemon that exits before it is ready: upgrade exits 1" test "$rc" -eq 1
	ok "  the old daemon serves on" sh -c "[ $AF_PID = $keep ] && kill -0 $keep && cmp '$T/www/a.bin' '$fa'"
	upgrade AF_HOOK=upgrade.new.before_ready=kill; rc=$?
	ok "a new daemon killed in the middle: upgrade exits 1" test "$rc" -eq 1
	ok "  the old daemon serves on" sh -c "[ $AF_PID = $keep ] && kill -0 $keep && cmp '$T/www/a.bin' '$fa'"
	upgrade AF_UPGRADE_TEST_VERSION=99; rc=$?
	ok "another hand-over version: refused, exit 1" test "$rc" -eq 1
	ok "  the refusal says why" grep -q "hand-over version" "$T/upgrade.err"
	ok "  the old daemon serves on" sh -c "[ $AF_PID = $keep ] && kill -0 $keep && cmp '$T/www/a.bin' '$fa'"
	ok "and a real upgrade still works after all that" upgrade
fi

# 4. Passthrough off: reads in flight through the daemon during 20 upgrades.
ok "an upgraded daemon unmounts cleanly on SIGTERM" stop_af
set_pt off
mount_af || exit 1
"$PROBE" hold "$fa" "$T/www/a.bin" "$T/stop2" >"$T/hold2.out" 2>&1 &
h3=$!
sleep 0.5
ok "the daemon serves the reader's reads (passthrough off)" test "$(reads)" -gt 0
errors=0
for i in $(seq 1 20); do
	upgrade || errors=$((errors + 1))
	cat "$fa" >/dev/null || errors=$((errors + 1))
	if [ "$i" -eq 2 ]; then sleep 0.3; fd2=$(fds_of "$AF_PID"); rss2=$(rss_of "$AF_PID"); fi
done
sleep 0.3	# a release of the last cat may still be on its way
fd20=$(fds_of "$AF_PID"); rss20=$(rss_of "$AF_PID")
touch "$T/stop2"
wait "$h3"; r3=$?
ok "20 upgrades in a row: 0 failed" test "$errors" -eq 0
ok "the reader through the daemon saw no error ($(cat "$T/hold2.out"))" test "$r3" -eq 0
ok "no fd growth: $fd2 after upgrade 2, $fd20 after 20" test "$fd20" -le "$fd2"
ok "no memory growth: ${rss2} kB after upgrade 2, ${rss20} kB after 20" \
	test "$rss20" -le $((rss2 * 13 / 10))
ok "clean unmount by the last daemon" stop_af

# 5. With [daemon] run_as: the new daemon drops too, and its helper may
#    close the backing ids the old helper registered.
user=$(af_user afup) || { fail "cannot create a test user"; exit 1; }
set_pt auto
printf '[daemon]\nrun_as = %s\n' "$user" >>"$T/artifactfs.conf"
mount_af || exit 1
exec 7<"$fa"
ok "run_as: a file held open across the upgrade" cmp "$T/www/a.bin" /dev/fd/7
ok "run_as: upgrade exits 0" upgrade
expect "run_as: the new daemon runs as the user" "$(id -u "$user")" \
	awk '/^Uid:/ { print $2 }' "/proc/$AF_PID/status"
expect "run_as: with no capability" 0000000000000000 \
	awk '/^CapEff:/ { print $2 }' "/proc/$AF_PID/status"
ok "run_as: the held file still reads" cmp "$T/www/a.bin" /dev/fd/7
exec 7<&-
sleep 0.3
ok "run_as: its backing id closed by the new helper (no error)" \
	sh -c "! grep -q 'closing backing id' '$T/daemon-detached.log'"
ok "run_as: new opens work" cmp "$T/www/a.bin" "$fa"
ok "run_as: clean unmount through the new helper" stop_af
sed -i '/^\[daemon\]/,/^run_as/d' "$T/artifactfs.conf"

# 6. mount.artifactfs (fstab) mounts stay upgradable, and umount(8) ends
#    an upgraded daemon.
PATH=$AF_BUILD:$PATH "$AF_BUILD/mount.artifactfs" "$T/artifactfs.conf" "$T/mnt" \
	-o defaults,_netdev >"$T/helper.out" 2>&1
AF_PID=$(pgrep -f "artifactfs mount -c $T/artifactfs.conf" | head -n 1)
ok "fstab-style mount is up" mountpoint -q "$T/mnt"
ok "fstab-style mount: upgrade exits 0" upgrade
ok "fstab-style mount: reads after the upgrade" cmp "$T/www/a.bin" "$fa"
ok "umount(8) of an upgraded mount" umount "$T/mnt"
for _ in $(seq 1 50); do kill -0 "$AF_PID" 2>/dev/null || break; sleep 0.1; done
ok "the upgraded daemon exits after umount(8)" sh -c "! kill -0 $AF_PID 2>/dev/null"
AF_PID=""
