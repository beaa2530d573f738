#!/usr/bin/env bash
# Inode lifetime (issue 9 item 6, FUSE forget): inodes go when the kernel
# forgets them, names that leave the registry are invalidated so the kernel
# does forget them, numbers are never reused for another artifact, and
# `ls -l` is served by readdirplus. Registry from files here; the same
# churn against the control plane is in t_remote_churn.
. "$(dirname "$0")/lib.sh"
af_world
inodes() { getfattr --only-values -n user.artifactfs.inodes "$T/mnt" 2>/dev/null; }
# gen ROUND: 1000 registrations named rROUND-*, replacing the last round's.
gen() {
	python3 "$CPD" gen --project churn --count 1000 --name-prefix "r$1-" \
		--seed "$1" >"$T/churn.tmp" && mv "$T/churn.tmp" "$T/registry/churn.json"
}
# wait_listed NAME: until the project lists NAME (reload within refresh).
wait_listed() {
	for _ in $(seq 1 100); do
		ls "$T/mnt/churn" 2>/dev/null | grep -q "^$1@" && return 0
		sleep 0.1
	done
	return 1
}
make_blob a.bin 4096
d_a=$(register a.bin)
gen 0
mount_af || exit 1

# The root's counter exists and starts small (root, nothing looked up).
ok "inode counter on the root" test -n "$(inodes)"
base=$(inodes)
ok "ls -l of 1000 entries" sh -c "ls -l '$T/mnt/churn' | grep -c '^-r' | grep -qx 1000"
after_ls=$(inodes)
ok "readdirplus handed out the listed inodes ($base -> $after_ls)" test "$after_ls" -ge 1000

# stat gives the number the listing gave (one inode per name while held).
first=$(ls "$T/mnt/churn" | head -1)
i1=$(stat -c %i "$T/mnt/churn/$first")
i2=$(ls -i "$T/mnt/churn" | awk -v n="$first" '$2 == n { print $1 }')
expect "ls -i and stat agree" "$i1" echo "$i2"

# Churn: 20 rounds, each replacing the 1000 registrations with 1000 new
# ones, each listed with ls -l. What left the registry leaves memory.
for r in $(seq 1 20); do
	gen "$r"
	wait_listed "r$r-000000.bin" || { fail "round $r not listed"; break; }
	ls -l "$T/mnt/churn" >/dev/null
done
sleep 1.5	# the last reload's invalidations, and the kernel's forgets
n=$(inodes)
ok "after 20 rounds of churn the daemon holds about one round of inodes ($n)" \
	test "$n" -le 1200

# A forgotten number is never given to another artifact.
old_ino=$i1
gen 99
wait_listed "r99-000000.bin"
sync; echo 2 >/proc/sys/vm/drop_caches	# the kernel forgets what it can
new_first=$(ls "$T/mnt/churn" | head -1)
new_ino=$(stat -c %i "$T/mnt/churn/$new_first")
ok "a new artifact gets a new number ($old_ino then $new_ino)" test "$new_ino" -gt "$old_ino"
# The same name looked up again after a forget: the same artifact, fine.
ok "the artifact registered from the start still reads" cmp "$T/www/a.bin" "$T/mnt/vision/a.bin@$d_a"

# An open file survives its name leaving the registry; the inode stays
# while open and goes after the close.
exec 7<"$T/mnt/vision/a.bin@$d_a"
rm -f "$T/registry/"vision-a.bin-*.json
for _ in $(seq 1 50); do
	[ -e "$T/mnt/vision/a.bin@$d_a" ] || break
	sleep 0.1
done
expect "unregistered: ENOENT" ENOENT "$PROBE" open "$T/mnt/vision/a.bin@$d_a"
ok "an open handle still reads after unregistration" sh -c "cmp '$T/www/a.bin' - <&7"
exec 7<&-

umount_af
ok "clean unmount" test $? -eq 0
