#!/usr/bin/env bash
# Crash consistency under SIGKILL (issue 11 item 2, DESIGN §6: "a crash at
# any point leaves the index and the files consistent"). The daemon, and
# separately `prefetch`, are killed at fault-injection points (af_hook,
# policy/af.h; built into the make check builds) and at random moments:
# after N chunks landed or were recorded, while the digest is fed, in the
# final hash, before the verified commit, inside an LMDB write transaction
# (any of them: the Nth), in the middle of an eviction, while a resumed
# fetch re-checks what an earlier run left. After each kill:
#   - the LMDB environment opens and a write transaction can be taken;
#   - no blob is verified whose bytes do not hash to its digest, no chunk
#     is recorded whose bytes do not match its xxh3 (tests/tools/
#     af_lib_idxcheck.c checks the cache from outside);
#   - a restarted daemon reads every artifact right;
#   - the origin (nginx's access log) sent no byte of a chunk that was
#     recorded right or of a blob that was verified: only what was missing.
# The distribution of kill points is printed at the end.
#
# AF_CRASH_ROUNDS=N repeats the whole matrix N times (make bench: a soak).
. "$(dirname "$0")/lib.sh"
CHECK=$AF_BUILD/tests/af_lib_idxcheck
af_world 64K
ROUNDS=${AF_CRASH_ROUNDS:-1}

# A probe: a build without test hooks cannot run this test.
AF_HOOK="idx.commit=exit" "$AF" cache -c "$T/artifactfs.conf" gc >/dev/null 2>&1
if [ $? -ne 3 ]; then
	log "SKIP: $AF has no test hooks (build with SAN=1 or HOOKS=1)"
	exit 0
fi

# Three blobs: 17 + 9 + 4 chunks of 64 KiB, odd tails.
make_blob a.bin $((1024 * 1024 + 4321))
make_blob b.bin $((512 * 1024 + 99))
make_blob c.bin $((256 * 1024))
declare -A dig size
for n in a b c; do
	dig[$n]=$(register $n.bin)
	size[$n]=$(stat -c %s "$T/www/$n.bin")
done
REFS="vision/a.bin@${dig[a]} vision/b.bin@${dig[b]} vision/c.bin@${dig[c]}"
cp "$T/artifactfs.conf" "$T/base.conf"
declare -A dist		# kill point -> runs
runs=0 kills=0 state_v=0 state_p=0 state_orphans=0

# conf_for RUN [MAX_SIZE]: a config with its own fresh cache folder.
conf_for() {
	local c=$T/run$1.conf
	cp "$T/base.conf" "$c"
	conf_set "$c" cache dir "$T/cache.$1"
	[ -n "${2:-}" ] && conf_set "$c" cache max_size "$2"
	echo "$c"
}

# read_all: reads every artifact through the mount, in order, ignoring
# errors (the daemon may die under it).
read_all() {
	for n in a b c; do
		cat "$T/mnt/vision/$n.bin@${dig[$n]}" >/dev/null 2>&1
	done
}

# alive PID: running (a process killed but not yet waited for is a zombie,
# and kill -0 still succeeds on it).
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null)
	[ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

# victim_daemon CONF HOOK: mounts with AF_HOOK=HOOK (or, with HOOK
# "random:MS", kills it MS milliseconds after the reads start), reads
# everything; returns 0 when the daemon died by SIGKILL. Unmounted after.
victim_daemon() {
	local conf=$1 hook=$2 rc
	if [ "${hook%%:*}" = random ]; then
		"$AF" mount -f -c "$conf" "$T/mnt" >>"$T/daemon.log" 2>&1 &
	else
		AF_HOOK=$hook "$AF" mount -f -c "$conf" "$T/mnt" >>"$T/daemon.log" 2>&1 &
	fi
	AF_PID=$!
	for _ in $(seq 1 100); do
		mountpoint -q "$T/mnt" && break
		alive "$AF_PID" || break
		sleep 0.05
	done
	if [ "${hook%%:*}" = random ]; then
		read_all &
		local reader=$!
		sleep "$(awk -v ms="${hook#random:}" 'BEGIN { printf "%.3f", ms / 1000 }')"
		kill -KILL "$AF_PID" 2>/dev/null
		wait "$reader"
	else
		read_all
		# Every hook fires on the way to a verified cache: if the reads
		# finished and the daemon still runs, the hook never fired.
		alive "$AF_PID" && sleep 0.5
		alive "$AF_PID" && kill -TERM "$AF_PID"
	fi
	wait "$AF_PID"; rc=$?
	AF_PID=""
	if mountpoint -q "$T/mnt"; then
		fusermount3 -u -z "$T/mnt" 2>/dev/null || umount -l "$T/mnt" 2>/dev/null
	fi
	mountpoint -q "$T/mnt" && fail "$T/mnt still mounted after the kill"
	[ "$rc" -eq 137 ]
}

# victim_prefetch CONF HOOK: prefetch of every artifact, -j 2.
victim_prefetch() {
	local conf=$1 hook=$2 pid rc
	if [ "${hook%%:*}" = random ]; then
		"$AF" prefetch -c "$conf" $REFS >/dev/null 2>>"$T/daemon-prefetch.log" &
		pid=$!
		sleep "$(awk -v ms="${hook#random:}" 'BEGIN { printf "%.3f", ms / 1000 }')"
		kill -KILL "$pid" 2>/dev/null
		wait "$pid"; rc=$?
	else
		AF_HOOK=$hook "$AF" prefetch -c "$conf" $REFS >/dev/null 2>>"$T/daemon-prefetch.log"
		rc=$?
	fi
	[ "$rc" -eq 137 ]
}

# crash_run WHO HOOK [PRE_HOOK] [MAX_SIZE]: one run in a fresh cache. With
# PRE_HOOK, a first run of the same victim killed there leaves a partial
# cache for the run that counts; with MAX_SIZE, b and c are prefetched first
# (so fetching a evicts) under that cache.max_size.
crash_run() {
	local who=$1 hook=$2 pre=${3:-} max=${4:-} conf out lines n before sent limit good
	runs=$((runs + 1))
	conf=$(conf_for "$runs" "$max")
	if [ -n "$max" ]; then
		"$AF" prefetch -c "$conf" "vision/c.bin@${dig[c]}" >/dev/null 2>&1
		"$AF" prefetch -c "$conf" "vision/b.bin@${dig[b]}" >/dev/null 2>&1
	fi
	[ -n "$pre" ] && "victim_$who" "$conf" "$pre"
	if ! "victim_$who" "$conf" "$hook"; then
		# A random kill may come after everything was done.
		if [ "${hook%%:*}" != random ]; then
			fail "run $runs ($who, $hook): not killed by the hook"
			return
		fi
		dist["$who random (after the end)"]=$(( ${dist["$who random (after the end)"]:-0} + 1 ))
	else
		kills=$((kills + 1))
		local key="$who ${hook%%=*}"
		[ "${hook%%:*}" = random ] && key="$who random"
		[ -n "$pre" ] && key="$key (resuming)"
		dist[$key]=$(( ${dist[$key]:-0} + 1 ))
	fi
	# The cache, from outside, before anyone touches it again.
	CHECKS=$((CHECKS + 1))
	if ! out=$("$CHECK" "$T/cache.$runs" 2>"$T/check.err"); then
		fail "run $runs ($who, $hook): cache inconsistent after the kill"
		cat "$T/check.err" >&2
		return
	fi
	state_v=$((state_v + $(echo "$out" | grep -c ' verified good=[1-9]')))
	state_p=$((state_p + $(echo "$out" | grep -c ' partial ')))
	state_orphans=$((state_orphans + $(echo "$out" | grep -c '^orphan ')))
	# Restart (the daemon, whoever was killed) and read everything.
	lines=$(wc -l <"$T/nginx/logs/access.log")
	cp "$conf" "$T/artifactfs.conf"
	conf_set "$T/artifactfs.conf" cache max_size 0
	mount_af || return
	for n in a b c; do
		CHECKS=$((CHECKS + 1))
		cmp -s "$T/www/$n.bin" "$T/mnt/vision/$n.bin@${dig[$n]}" ||
			fail "run $runs ($who, $hook): $n.bin reads wrong after the restart"
	done
	CHECKS=$((CHECKS + 1))
	umount_af || fail "run $runs: unclean unmount after the restart"
	# Nothing that was there right came again from the origin.
	for n in a b c; do
		good=$(echo "$out" | awk -v d="${dig[$n]}" '$1 == d { sub("good=", "", $3); print $3 }')
		good=${good:-0}
		sent=$(tail -n +$((lines + 1)) "$T/nginx/logs/access.log" |
			awk -v p="/blobs/$n.bin" '$2 == p { s += $4 } END { printf "%.0f\n", s }')
		limit=$(( size[$n] - good ))
		CHECKS=$((CHECKS + 1))
		if [ "$sent" -gt "$limit" ]; then
			fail "run $runs ($who, $hook): $n.bin: $sent bytes fetched again, only $limit were missing"
		fi
	done
	log "run $runs: $who killed at $hook${pre:+ after $pre}: $(echo "$out" | awk '$1 == "summary:" { next } $1 == "orphan" { printf "orphan %s; ", substr($2, 8, 8); next } { printf "%s %s %s; ", substr($1, 8, 8), $2, $3 }')"
}

for _ in $(seq 1 "$ROUNDS"); do
	for who in daemon prefetch; do
		# After the Nth chunk's bytes landed in the data file (not yet recorded).
		for n in 1 4 9 15 22 29; do crash_run $who "cache.chunk.landed=kill@$n"; done
		# After the Nth batch of chunks was recorded in the index.
		for n in 1 2 3; do crash_run $who "cache.chunk.recorded=kill@$n"; done
		# While the digest is fed, chunk by chunk, beside the download.
		for n in 1 10 20 29; do crash_run $who "cache.hash.chunk=kill@$n"; done
		# The final hash, and between it (plus fdatasync) and the verified commit.
		for n in 1 2 3; do crash_run $who "cache.hash.final=kill@$n"; done
		for n in 1 3; do crash_run $who "cache.commit=kill@$n"; done
		# Inside the Nth LMDB write transaction: everything put, nothing committed.
		for n in 1 2 3 5 7 9 12; do crash_run $who "idx.commit=kill@$n"; done
		# Resuming: the chunks a killed run recorded are checked again.
		for n in 1 3; do crash_run $who "cache.resume.hash=kill@$n" "cache.chunk.recorded=kill@4"; done
		# LRU eviction (cache.max_size): file unlinked, transaction not committed.
		# LRU eviction (cache.max_size): inside its write transaction, and
		# between its commit and the unlink of the data file.
		crash_run $who "cache.evict.txn=kill@1" "" 1200K
		crash_run $who "cache.evict.committed=kill@1" "" 1200K
		crash_run $who "idx.commit=kill@7" "" 1200K
		# Random moments.
		for _ in 1 2 3 4; do
			if [ $who = daemon ]; then ms=$((RANDOM % 120)); else ms=$((30 + RANDOM % 120)); fi
			crash_run $who "random:$ms"
		done
	done
done

log "kill points ($kills kills in $runs runs):"
for k in "${!dist[@]}"; do printf '    %3d  %s\n' "${dist[$k]}" "$k"; done | sort -k2
log "state found after the kills: $state_v verified blobs intact, $state_p partial, $state_orphans data files no record claims (gc removes them)"
ok "at least 50 runs" test "$runs" -ge 50
ok "every kill left a consistent cache (see above)" test "$FAILS" -eq 0
