#!/usr/bin/env bash
# bench/control.sh - the control-plane scale figure of `make bench` (issue 9
# item 7, DESIGN §3; docs/BENCHMARKS.md "Control plane at scale"). A
# control plane (tests/tools/cpd.py, real HTTP on 127.0.0.1, with ETags)
# serves 100,000 registrations in 100 projects: one of 10,000 and 99 of
# about 909. Reported:
#
#   mount_ms   from `artifactfs mount` to a full listing (every project
#              read with readdir, 100,000 names counted); the daemon asks
#              the control plane before it serves, so this is the cold
#              load: 101 documents fetched, parsed, published
#   ls_ratio   `ls -l` of the 10,000-entry project ÷ `ls -l` of a tmpfs
#              directory with as many files, each with the kernel's
#              dentries and inodes dropped first (target <= 2), per run,
#              median
#   rss_mib    the daemon's RSS after all of that (target < 256 MiB), and
#              its peak (VmHWM)
#   poll_cpu   the daemon's CPU (user + system) for one unchanged poll:
#              its CPU over CP_POLLS intervals with nothing else to do,
#              divided by the polls seen (102 conditional requests, each
#              answered 304)
#
# Environment:
#   AF_BUILD        build directory holding artifactfs (make bench sets it)
#   CP_RUNS         runs of the ls -l ratio (default 5)
#   CP_POLLS        polls measured for the poll CPU (default 10)
#   CP_TOTAL        registrations (default 100000), CP_PROJECTS (default
#                   100), CP_BIG (entries of the big project, default 10000)
#   BENCH_OUT       results directory (default $AF_BUILD/bench)
#
# Needs root (FUSE mounts, drop_caches). Network: 127.0.0.1 only. Uses the
# integration tests' lib.sh for the world (control plane, mount), so every
# process is stopped by its PID and every mount unmounted at exit.
set -uo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
export AF_BUILD=${AF_BUILD:-$TOP/build}
CP_RUNS=${CP_RUNS:-5}
CP_POLLS=${CP_POLLS:-10}
CP_TOTAL=${CP_TOTAL:-100000}
CP_PROJECTS=${CP_PROJECTS:-100}
CP_BIG=${CP_BIG:-10000}
BENCH_OUT=${BENCH_OUT:-$AF_BUILD/bench}
TEST_NAME=control-bench
. "$TOP/tests/integration/lib.sh"

die() { printf 'bench/control: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (FUSE mounts, drop_caches)"
[ -x "$AF" ] || die "no $AF: run make first"
sh "$TOP/mk/deps.sh" nginx python3 curl fuse3 attr procps linux-perf || die "deps"

mkdir -p "$BENCH_OUT"
RAW=$BENCH_OUT/control-raw.txt
RES=$BENCH_OUT/control.txt
: >"$RAW"
refresh=2
cp_world "${refresh}s" || die "no control plane"
# The documents: p000 with CP_BIG records, the rest spread over the others.
python3 - "$T/cp/projects" "$CP_TOTAL" "$CP_PROJECTS" "$CP_BIG" <<'EOF' || die "cannot write the listings"
import json, os, random, sys
root, total, nproj, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(9)
rest = total - big
for p in range(nproj):
    n = big if p == 0 else rest // (nproj - 1) + (1 if p - 1 < rest % (nproj - 1) else 0)
    name = 'p%03d' % p
    recs = []
    for i in range(n):
        f = 'model-%06d.safetensors' % i
        recs.append({
            'project': name, 'name': f, 'artifact_kind': 'blob',
            'digest': 'sha256:%064x' % rnd.getrandbits(256),
            'source': {'source_type': 'https',
                       'uri': 'https://models.example.internal/%s/%s' % (name, f),
                       'source_ref': None, 'size_bytes': 1048576 + i,
                       'content_encoding': 'identity'},
            'lifecycle_state': 'active', 'trust_state': 'verified',
            'channels': ['prod'] if i == 0 else [],
            'allowlist_decision': {'decision': 'allow', 'policy': 'default',
                                   'decided_at': '2026-03-09T12:00:00Z'},
            'attestation': None, 'registered_at': '2026-03-09T12:00:00Z'})
    os.makedirs(os.path.join(root, name), exist_ok=True)
    with open(os.path.join(root, name, 'blobs.json'), 'w') as f:
        json.dump(recs, f, separators=(',', ':'))
EOF
bytes=$(du -sb "$T/cp/projects" | cut -f1)
echo "bench/control: $(nproc) CPUs; $CP_TOTAL registrations in $CP_PROJECTS projects (one of $CP_BIG), $((bytes / 1048576)) MiB of listings; refresh ${refresh}s; $CP_RUNS runs"

# A tmpfs directory with as many files, for the ls -l baseline.
mkdir -p "$T/tmpfs"
mount -t tmpfs -o size=64m tmpfs "$T/tmpfs" || die "cannot mount a tmpfs"
EXTRA_MOUNTS="${EXTRA_MOUNTS:-} $T/tmpfs"
python3 - "$T/tmpfs/big" "$CP_BIG" <<'EOF' || die "cannot fill the tmpfs"
import os, sys
os.makedirs(sys.argv[1])
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], 'model-%06d.safetensors@sha256:%064x' % (i, i)), 'w'):
        pass
EOF

# 1. Mount to full listing.
t0=$(date +%s%N)
mount_af || die "mount failed"
n=0
for p in "$T/mnt"/*; do
	n=$((n + $(ls -f "$p" | grep -c '@sha256:')))
done
t1=$(date +%s%N)
[ "$n" -ge "$CP_TOTAL" ] || die "listed $n of $CP_TOTAL"
mount_ms=$(( (t1 - t0) / 1000000 ))
echo "mount.ms 1 $mount_ms" >>"$RAW"
printf '  mount to a full listing of %d names: %d ms\n' "$n" "$mount_ms"

# 2. ls -l of the big project against the tmpfs directory.
big=$T/mnt/p000
[ "$(ls -f "$big" | grep -c '@sha256:')" -eq "$CP_BIG" ] || die "p000 does not list $CP_BIG files"
lsl() {
	local s e
	sync
	echo 2 >/proc/sys/vm/drop_caches
	s=$(date +%s%N)
	ls -l "$1" >/dev/null || return 1
	e=$(date +%s%N)
	echo $(( (e - s) / 1000 ))
}
for r in $(seq 1 "$CP_RUNS"); do
	if [ $((r % 2)) -eq 1 ]; then
		a=$(lsl "$big") && b=$(lsl "$T/tmpfs/big") || die "ls -l failed"
	else
		b=$(lsl "$T/tmpfs/big") && a=$(lsl "$big") || die "ls -l failed"
	fi
	echo "ls.af.us $r $a" >>"$RAW"
	echo "ls.tmpfs.us $r $b" >>"$RAW"
	echo "ls.ratio $r $(ratio "$a" "$b")" >>"$RAW"
	printf '  run %d: ls -l of %d entries: artifactfs %d ms, tmpfs %d ms, ratio %s\n' \
		"$r" "$CP_BIG" $((a / 1000)) $((b / 1000)) "$(ratio "$a" "$b")"
done

# 2b. The same listing with attributes but without ls's two xattr probes
# per file (lgetxattr security.selinux, getxattr system.posix_acl_access,
# each a FUSE request: see docs/BENCHMARKS.md): find -printf, lstat only.
lst() {
	local s e
	sync
	echo 2 >/proc/sys/vm/drop_caches
	s=$(date +%s%N)
	find "$1" -maxdepth 1 -printf '%M %n %u %g %s %TY-%Tm-%Td %TH:%TM %f\n' >/dev/null || return 1
	e=$(date +%s%N)
	echo $(( (e - s) / 1000 ))
}
for r in $(seq 1 "$CP_RUNS"); do
	if [ $((r % 2)) -eq 1 ]; then
		a=$(lst "$big") && b=$(lst "$T/tmpfs/big") || die "find failed"
	else
		b=$(lst "$T/tmpfs/big") && a=$(lst "$big") || die "find failed"
	fi
	echo "stat.ratio $r $(ratio "$a" "$b")" >>"$RAW"
	printf '  run %d: find -printf (lstat) of %d entries: artifactfs %d ms, tmpfs %d ms, ratio %s\n' \
		"$r" "$CP_BIG" $((a / 1000)) $((b / 1000)) "$(ratio "$a" "$b")"
done

# 3. Memory.
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$AF_PID/status")
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$AF_PID/status")
echo "rss.kib 1 $rss" >>"$RAW"
echo "hwm.kib 1 $hwm" >>"$RAW"
printf '  daemon RSS %d MiB (peak %d MiB)\n' $((rss / 1024)) $((hwm / 1024))

# 4. CPU of one unchanged poll: the daemon's CPU over POLLS intervals in
# which nothing but the polls happens (no reader, no fetch), divided by the
# polls the control plane saw (102 requests each: the policy, the projects
# and 100 listings, all answered 304).
sleep $((refresh + 1))	# the ls -l runs' kernel traffic settles
r0=$(grep -c ' 304 ' "$T/cpd.log")
s0=$(date +%s%N)
# task-clock: the CPU time of every thread of the daemon, exact (the
# clock ticks of /proc/PID/stat miss a thread that runs a few ms at a time).
cpu_ms=$(perf stat -x, -e task-clock -p "$AF_PID" -- sleep $((refresh * CP_POLLS)) 2>&1 >/dev/null |
	awk -F, '$3 == "task-clock" || $3 ~ /^task-clock/ { printf "%.1f", $1 }')
s1=$(date +%s%N)
r1=$(grep -c ' 304 ' "$T/cpd.log")
[ -n "$cpu_ms" ] || die "perf stat gave no task-clock"
polls=$(awk -v n=$((r1 - r0)) -v p="$CP_PROJECTS" 'BEGIN { printf "%.2f", n / (p + 2) }')
per=$(awk -v c="$cpu_ms" -v p="$polls" 'BEGIN { if (p > 0) printf "%.2f", c / p; else print "nan" }')
echo "poll.requests 1 $((r1 - r0))" >>"$RAW"
echo "poll.cpu_ms 1 $per" >>"$RAW"
printf '  %s unchanged polls in %d ms (%d requests answered 304): daemon CPU %s ms, %s ms per poll\n' \
	"$polls" $(( (s1 - s0) / 1000000 )) $((r1 - r0)) "$cpu_ms" "$per"
umount_af || die "unmount failed"

median() {
	awk -v k="$1" '$1 == k { print $3 }' "$RAW" | sort -g |
		awk '{ a[NR] = $1 } END {
			if (NR == 0) { print "nan"; exit }
			if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
{
	echo "control plane at scale: $CP_TOTAL registrations, $CP_PROJECTS projects"
	printf '  mount to full listing       %8s ms\n' "$mount_ms"
	printf '  ls -l %d entries: ratio  %8s (target <= 2; artifactfs %s us, tmpfs %s us, medians of %d)\n' \
		"$CP_BIG" "$(median ls.ratio)" "$(median ls.af.us)" "$(median ls.tmpfs.us)" "$CP_RUNS"
	printf '  same, lstat only (find)  %8s (no xattr probes; information)\n' "$(median stat.ratio)"
	printf '  daemon RSS                  %8s MiB (target < 256; peak %s MiB)\n' $((rss / 1024)) $((hwm / 1024))
	printf '  CPU of one unchanged poll   %8s ms (%d requests, all 304)\n' "$per" $((CP_PROJECTS + 2))
} | tee "$RES"
