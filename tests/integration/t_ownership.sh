#!/usr/bin/env bash
# Bad neighbours on one blob for a minute (issue 10 item 4): the daemon
# reading it through the mount, prefetch fetching it, cache verify, cache
# gc and cache evict, all in loops in their own processes against the one
# cache. No read may ever return a wrong byte; afterwards every blob the
# index calls verified must hash to its digest, and nothing else may be
# left half-owned (a lease of a dead process, a file without a record).
. "$(dirname "$0")/lib.sh"
af_world 256K
DURATION=${AF_OWNERSHIP_SECONDS:-60}
size=$((1024 * 1024 + 4321))
make_blob one.bin $size
d=$(register one.bin uri="http://127.0.0.1:$NGINX_PORT/blobs/one.bin")
hex=${d#sha256:}
mount_af || exit 1
f="$T/mnt/vision/one.bin@$d"
C="-c $T/artifactfs.conf"
stop_at=$(( $(date +%s) + DURATION ))
: >"$T/wrong"
: >"$T/reads"

loop_reader() {
	while [ "$(date +%s)" -lt "$stop_at" ]; do
		if cat "$f" >"$T/read.$1" 2>/dev/null; then
			if cmp -s "$T/www/one.bin" "$T/read.$1"; then
				echo ok >>"$T/reads"
			else
				echo "reader $1: wrong bytes at $(date +%T.%N)" >>"$T/wrong"
			fi
		fi
	done
}
loop_cmd() {
	while [ "$(date +%s)" -lt "$stop_at" ]; do
		"$AF" "$@" >/dev/null 2>&1
	done
}

loop_reader 1 & EXTRA_PIDS="$EXTRA_PIDS $!"; pids="$!"
loop_reader 2 & EXTRA_PIDS="$EXTRA_PIDS $!"; pids="$pids $!"
loop_cmd prefetch $C "vision/one.bin@$d" & EXTRA_PIDS="$EXTRA_PIDS $!"; pids="$pids $!"
loop_cmd cache $C verify & EXTRA_PIDS="$EXTRA_PIDS $!"; pids="$pids $!"
loop_cmd cache $C verify --quick "$d" & EXTRA_PIDS="$EXTRA_PIDS $!"; pids="$pids $!"
loop_cmd cache $C gc & EXTRA_PIDS="$EXTRA_PIDS $!"; pids="$pids $!"
loop_cmd cache $C evict "$d" & EXTRA_PIDS="$EXTRA_PIDS $!"; pids="$pids $!"
loop_cmd cache $C evict --to 1K & EXTRA_PIDS="$EXTRA_PIDS $!"; pids="$pids $!"
wait $pids
log "$(wc -l <"$T/reads") good reads, $(grep -c '"event":"fetch_start"' "$T/audit.jsonl") fetches, $(grep -c '"event":"evict"' "$T/audit.jsonl") evictions, $(grep -c '"event":"verify_failed"' "$T/audit.jsonl") verify_failed"
ok "no read returned a wrong byte" test ! -s "$T/wrong"
[ -s "$T/wrong" ] && head -5 "$T/wrong"
ok "reads went through" test "$(wc -l <"$T/reads")" -ge 5
ok "no verification failed (the source is sound)" sh -c "! grep -q '\"event\":\"verify_failed\"' '$T/audit.jsonl'"
ok "daemon alive" kill -0 "$AF_PID"
# Settle: one clean read, then the index must tell the truth.
ok "a read after the storm is right" cmp "$T/www/one.bin" "$f"
bad=0
for v in $("$AF" cache $C ls --json | grep '"state":"verified"' | sed 's/.*"digest":"\([^"]*\)".*/\1/'); do
	h=${v#*:}
	got=$(sha256sum "$T/cache/blobs/sha256/${h:0:2}/$h" 2>/dev/null | cut -d' ' -f1)
	[ "$got" = "$h" ] || { bad=$((bad + 1)); log "verified $v hashes to ${got:-nothing}"; }
done
expect "every verified blob hashes to its digest" 0 echo $bad
ok "cache verify (full) finds nothing wrong" "$AF" cache $C verify
ok "clean unmount" umount_af
# No lease left to a process that is gone, no stray file.
ok "gc finds no orphan data file" sh -c "'$AF' cache $C gc | grep -q 'and 0 orphan data files'"
expect "cache ls shows it verified, not fetching" '"state":"verified" "fetching":false' sh -c "'$AF' cache $C ls --json | grep '$hex' | grep -o '\"state\":\"[a-z]*\"\\|\"fetching\":[a-z]*' | tr '\n' ' ' | sed 's/ \$//'"
