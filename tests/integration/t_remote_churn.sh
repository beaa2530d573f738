#!/usr/bin/env bash
# Memory stays bounded while registrations churn (issue 9 item 6): 1,000
# registrations listed, then 20 polls, each replacing the 1,000 with 1,000
# new ones, each listed with ls -l; the daemon's RSS after the last poll is
# within 20% of its RSS after the first. What leaves the control plane leaves memory:
# the catalog drops the old records, the kernel is told to forget their
# names, and their inodes go.
. "$(dirname "$0")/lib.sh"
cp_world 1s
inodes() { getfattr --only-values -n user.artifactfs.inodes "$T/mnt" 2>/dev/null; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$AF_PID/status"; }
# round N: the project's 1000 registrations become rN-000000..rN-000999.
round() {
	python3 "$CPD" gen --project churn --count 1000 --name-prefix "r$1-" \
		--seed "$1" >"$T/churn.tmp"
	mkdir -p "$T/cp/projects/churn"
	mv "$T/churn.tmp" "$T/cp/projects/churn/blobs.json"
	for _ in $(seq 1 60); do
		ls "$T/mnt/churn" 2>/dev/null | grep -q "^r$1-000999.bin@" && break
		sleep 0.1
	done
	ls -l "$T/mnt/churn" | grep -c '^-r'
}
make_blob a.bin 4096
d_a=$(register a.bin)
cp_publish
# The allocator's quarantine (ASan builds) would hold every freed byte:
# measure what the daemon keeps, not what the sanitizer delays.
ASAN_OPTIONS="${ASAN_OPTIONS}:quarantine_size_mb=0:thread_local_quarantine_size_kb=0" mount_af || exit 1
expect "the first 1000 listed" 1000 round 0
expect "the first poll replacing them" 1000 round 1
sleep 1.5
rss1=$(rss)
ino1=$(inodes)
for r in $(seq 2 20); do
	n=$(round "$r")
	[ "$n" = 1000 ] || fail "round $r: $n entries listed"
done
sleep 2.5	# the last reload's invalidations and the kernel's forgets
rss20=$(rss)
ino20=$(inodes)
log "RSS after the first poll: $rss1 KiB, after the 20th: $rss20 KiB; inodes $ino1 then $ino20"
ok "RSS after 20 polls within 20% of after the first ($rss1 -> $rss20 KiB)" \
	test $((rss20 * 100)) -le $((rss1 * 120))
# At most one round's names (the kernel may have forgotten more: another
# test's drop_caches, memory pressure), never the history of 20 rounds.
ok "inodes follow the control plane, not its history ($ino1 -> $ino20)" \
	test "$ino20" -le 1100
ok "a still reads" cmp "$T/www/a.bin" "$T/mnt/vision/a.bin@$d_a"
ok "the old names are gone" sh -c "! ls '$T/mnt/churn' | grep -q '^r1-'"
umount_af
ok "clean unmount" test $? -eq 0
