#!/usr/bin/env bash
# Least privilege (issue 11, DESIGN §13): with [daemon] run_as the daemon
# mounts as root, then runs as that user with no capability and not
# dumpable; a helper that keeps only CAP_SYS_ADMIN registers passthrough
# backing files (reads still bypass the daemon) and unmounts at the end;
# the cache belongs to the user (0700), also after a root prefetch; users
# the policy allows still read; the helper never outlives the daemon.
# Forged requests to the helper are refused: test_tools_privsep.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob a.bin $((5 * 1024 * 1024 + 3))
make_blob b.bin $((2 * 1024 * 1024 + 1))
da=$(register a.bin)
db=$(register b.bin)
fa=$T/mnt/vision/a.bin@$da
fb=$T/mnt/vision/b.bin@$db
reads() { getfattr --only-values -n user.artifactfs.reads "$T/mnt" 2>/dev/null; }
field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/status"; }

ok "check warns when run_as is unset" sh -c "'$AF' check -c '$T/artifactfs.conf' | grep -q 'run_as is not set'"

user=$(af_user afpriv) || { fail "cannot create a test user"; exit 1; }
uid=$(id -u "$user")
printf '[daemon]\nrun_as = %s\n' "$user" >>"$T/artifactfs.conf"
ok "check is quiet about run_as once set" sh -c "! '$AF' check -c '$T/artifactfs.conf' | grep -q 'run_as'"

# A root prefetch before any mount still leaves the cache to the user.
ok "prefetch as root with run_as" "$AF" prefetch -c "$T/artifactfs.conf" "vision/b.bin@$db"
expect "cache.dir owned by run_as" "$user 700" stat -c '%U %a' "$T/cache"
expect "no root-owned file in the cache after prefetch" "" \
	find "$T/cache" ! -user "$user"

mount_af || exit 1
expect "daemon uids are run_as" "$uid" field Uid "$AF_PID"
expect "daemon CapEff all zero" 0000000000000000 field CapEff "$AF_PID"
expect "daemon CapPrm all zero" 0000000000000000 field CapPrm "$AF_PID"
expect "daemon not dumpable (/proc owned by root)" root stat -c %U "/proc/$AF_PID/status"
helper=$(pgrep -P "$AF_PID" | head -n 1)
ok "a privileged helper runs beside the daemon" test -n "$helper"
expect "helper is root" 0 field Uid "$helper"
expect "helper keeps CAP_SYS_ADMIN only" 0000000000200000 field CapEff "$helper"
expect "helper bounding set CAP_SYS_ADMIN only" 0000000000200000 field CapBnd "$helper"
expect "helper holds no network socket" 0 sh -c "ls -l /proc/$helper/fd | grep -c 'socket:' | awk '{print \$1 - 1}'"

ok "open verifies as run_as" "$PROBE" open "$fa"
r0=$(reads)
ok "cat equal" cmp "$T/www/a.bin" "$fa"
ok "mmap equal" sh -c "'$PROBE' mmap '$fa' '$T/mm.out' && cmp '$T/www/a.bin' '$T/mm.out'"
if grep -q "passthrough: on" "$T/daemon.log"; then
	expect "passthrough through the helper: the daemon saw no read" "$r0" reads
else
	log "skip: this kernel does not offer passthrough"
fi
ok "blob prefetched by root reads" cmp "$T/www/b.bin" "$fb"
ok "another user the policy allows reads" \
	setpriv --reuid=nobody --regid=nogroup --clear-groups cmp "$T/www/a.bin" "$fa"
expect "blob files belong to run_as" "" find "$T/cache" ! -user "$user"
ok "clean unmount through the helper" umount_af
ok "helper gone after the daemon" sh -c "! kill -0 $helper 2>/dev/null"
ok "no unmount error in the log" sh -c "! grep -qi 'unmount.*failed' '$T/daemon.log'"

# The helper never keeps a dead daemon's FUSE connection alive.
mount_af || exit 1
helper=$(pgrep -P "$AF_PID" | head -n 1)
kill -KILL "$AF_PID"; wait "$AF_PID" 2>/dev/null; AF_PID=""
for _ in $(seq 1 30); do kill -0 "$helper" 2>/dev/null || break; sleep 0.1; done
ok "helper exits when the daemon is killed" sh -c "! kill -0 $helper 2>/dev/null"
ok "the dead mount says so (ENOTCONN), it does not hang" \
	sh -c "timeout 5 stat '$T/mnt/vision' 2>&1 | grep -q 'not connected'"
umount -l "$T/mnt" 2>/dev/null

# An unknown user fails the mount command itself, before mounting.
sed -i "s/^run_as = .*/run_as = no-such-user-af/" "$T/artifactfs.conf"
ok "unknown run_as: mount exits 1" sh -c "! '$AF' mount -c '$T/artifactfs.conf' '$T/mnt' 2>'$T/bad.err'"
ok "unknown run_as: the error names the user" grep -q 'no-such-user-af' "$T/bad.err"
ok "unknown run_as: nothing mounted" sh -c "! mountpoint -q '$T/mnt'"
sed -i "s/^run_as = .*/run_as = root/" "$T/artifactfs.conf"
ok "run_as = root is refused by the config" sh -c "! '$AF' check -c '$T/artifactfs.conf' >/dev/null 2>&1"
