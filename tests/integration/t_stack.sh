#!/usr/bin/env bash
# Two daemons never stack on one mount point (DESIGN §7, issue 10 item
# 11): mounting where a mount already is (artifactfs or anything else) is
# refused at once with a clear error and exit 1; the first mount goes on.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob a.bin 3000
d=$(register a.bin)
mount_af || exit 1
timeout 20 "$AF" mount -f -c "$T/artifactfs.conf" "$T/mnt" >"$T/second.out" 2>&1; rc=$?
expect "a second mount on it: exit 1" 1 echo $rc
ok "the error says why" grep -q "already holds a mount" "$T/second.out"
timeout 20 "$AF" mount -c "$T/artifactfs.conf" "$T/mnt" >"$T/second.out" 2>&1; rc=$?
expect "detached too: exit 1" 1 echo $rc
expect "one artifactfs mount, not two" 1 sh -c "grep -c ' $T/mnt ' /proc/self/mounts"
ok "the first mount still serves" cmp "$T/www/a.bin" "$T/mnt/vision/a.bin@$d"
ok "clean unmount" umount_af
# Another filesystem there: refused as well.
mkdir -p "$T/tmpfs"
if mount -t tmpfs -o size=1m none "$T/tmpfs" 2>/dev/null; then
	timeout 20 "$AF" mount -f -c "$T/artifactfs.conf" "$T/tmpfs" >"$T/third.out" 2>&1; rc=$?
	expect "on a tmpfs mount: exit 1" 1 echo $rc
	umount "$T/tmpfs"
else
	log "SKIP: cannot mount a tmpfs here (not root?)"
fi
# Free again: mounts.
mount_af || exit 1
ok "mounts once the mount point is free" cmp "$T/www/a.bin" "$T/mnt/vision/a.bin@$d"
ok "clean unmount" umount_af
