#!/usr/bin/env bash
# Changes on the control plane reach the node within one registry.refresh
# (issue 9 item 2, DESIGN §3): a new, a changed, a revoked and a removed
# registration, a policy change, a promotion; an open whose fetch is in
# flight when its artifact is revoked, or its source denied by a new
# policy, fails with EACCES and is not served;
# polls come every interval, jittered, never later.
. "$(dirname "$0")/lib.sh"
refresh=2
cp_world "${refresh}s"
make_blob a.bin 4096
make_blob b.bin 4096
make_blob c.bin 4096
make_blob big.bin $((3 * 1024 * 1024))
make_blob big2.bin $((3 * 1024 * 1024))
d_a=$(register a.bin channels='["prod"]' registered_at=2026-03-01T00:00:00Z)
d_big=$(register big.bin uri="http://127.0.0.1:$NGINX_PORT/slow/big.bin")
cp_publish
mount_af || exit 1
m=$T/mnt/vision
ok "a readable" cmp "$T/www/a.bin" "$m/a.bin@$d_a"

# within CMD...: the command must succeed within refresh + 2 s (the
# kernel's second of entry caching and the poll itself), counted from now.
within() {
	local what=$1 start end; shift
	start=$(date +%s%N)
	CHECKS=$((CHECKS + 1))
	while :; do
		if "$@" >/dev/null 2>&1; then
			end=$(( ($(date +%s%N) - start) / 1000000 ))
			printf '  ok: %s (%d ms)\n' "$what" "$end"
			return 0
		fi
		if [ $(( ($(date +%s%N) - start) / 1000000 )) -gt $((refresh * 1000 + 2000)) ]; then
			fail "$what: not within one refresh"
			return 1
		fi
		sleep 0.1
	done
}

# A new registration.
d_b=$(register b.bin)
cp_publish
within "a new registration is listed" sh -c "ls '$m' | grep -qx 'b.bin@$d_b'"
ok "  and reads" cmp "$T/www/b.bin" "$m/b.bin@$d_b"

# A changed registration (the same name@digest, lifecycle now deprecated).
sed -i 's/"lifecycle_state": "active"/"lifecycle_state": "deprecated"/' "$T/registry/vision-b.bin-${d_b#sha256:}.json"
cp_publish
within "a changed registration shows" sh -c "getfattr --only-values -n user.artifact.lifecycle_state '$m/b.bin@$d_b' | grep -qx deprecated"

# A promotion: a newer record claims prod; the symlink moves.
d_c=$(register c.bin name=a.bin channels='["prod"]' registered_at=2026-03-07T00:00:00Z)
cp_publish
within "a promotion moves the channel symlink" sh -c "[ \"\$(readlink '$m/a.bin@prod')\" = 'a.bin@$d_c' ]"
ok "  and it reads the promoted bytes" cmp "$T/www/c.bin" "$m/a.bin@prod"

# A policy change: the source no longer allowed.
cp "$T/policy.json" "$T/policy.good"
sed -i "s|http://127.0.0.1:$NGINX_PORT/blobs/|http://127.0.0.1:$NGINX_PORT/nothing/|" "$T/policy.json"
cp_publish
within "a policy change denies" sh -c "[ \"\$('$PROBE' open '$m/a.bin@$d_a')\" = EACCES ]"
cp "$T/policy.good" "$T/policy.json"
cp_publish
within "the policy restored allows again" cmp "$T/www/a.bin" "$m/a.bin@$d_a"

# A revoked registration: open is EACCES; a handle already open may finish.
exec 7<"$m/b.bin@$d_b"
sed -i 's/"lifecycle_state": "deprecated"/"lifecycle_state": "revoked"/' "$T/registry/vision-b.bin-${d_b#sha256:}.json"
cp_publish
within "a revoked registration: EACCES" sh -c "[ \"\$('$PROBE' open '$m/b.bin@$d_b')\" = EACCES ]"
ok "  a handle already open still reads" sh -c "cmp '$T/www/b.bin' - <&7"
exec 7<&-

# A removed registration: ENOENT, and gone from the listing.
rm -f "$T/registry/vision-a.bin-${d_a#sha256:}.json"
cp_publish
within "a removed registration: ENOENT" sh -c "[ \"\$('$PROBE' open '$m/a.bin@$d_a')\" = ENOENT ]"
ok "  and not listed" sh -c "! ls '$m' | grep -q '^a.bin@$d_a'"

# An open whose fetch is in flight when the artifact is revoked: EACCES
# when the fetch ends, not served (the slow location: 512 KiB/s, 3 MiB).
"$PROBE" open "$m/big.bin@$d_big" >"$T/inflight.out" 2>&1 &
pid=$!
for _ in $(seq 1 50); do audit_has fetch_start "$d_big" && break; sleep 0.1; done
ok "the big fetch started" audit_has fetch_start "$d_big"
sed -i 's/"lifecycle_state": "active"/"lifecycle_state": "revoked"/' "$T/registry/vision-big.bin-${d_big#sha256:}.json"
cp_publish
wait "$pid"
expect "revoked while its fetch was in flight: EACCES when it ends" EACCES cat "$T/inflight.out"
ok "  audited open_denied with the reason" audit_wait sh -c "grep '\"event\":\"open_denied\"' '$T/audit.jsonl' | grep '$d_big' | grep -q lifecycle"
ok "  and no open event for it" sh -c "! grep '\"event\":\"open\"' '$T/audit.jsonl' | grep -q '$d_big'"

# An open whose fetch is in flight when a new policy denies its source:
# EACCES when the fetch ends, not served.
d_big2=$(register big2.bin uri="http://127.0.0.1:$NGINX_PORT/slow/big2.bin")
cp_publish
within "a second slow registration is listed" sh -c "ls '$m' | grep -qx 'big2.bin@$d_big2'"
"$PROBE" open "$m/big2.bin@$d_big2" >"$T/inflight2.out" 2>&1 &
pid=$!
for _ in $(seq 1 50); do audit_has fetch_start "$d_big2" && break; sleep 0.1; done
ok "its fetch started" audit_has fetch_start "$d_big2"
sed -i "s|http://127.0.0.1:$NGINX_PORT/slow/|http://127.0.0.1:$NGINX_PORT/slow-no-more/|" "$T/policy.json"
cp_publish
wait "$pid"
expect "source denied by a new policy while its fetch was in flight: EACCES when it ends" EACCES cat "$T/inflight2.out"
ok "  audited open_denied with the reason" audit_wait sh -c "grep '\"event\":\"open_denied\"' '$T/audit.jsonl' | grep '$d_big2' | grep -q 'not allowlisted'"
ok "  and no open event for it" sh -c "! grep '\"event\":\"open\"' '$T/audit.jsonl' | grep -q '$d_big2'"

# Polls: every interval, jittered, never later than the interval.
sleep $((refresh * 3))
grep '^GET /api/v1/projects ' "$T/cpd.log" | sed 's/.* t=//' | tail -4 >"$T/poll.times"
ok "polls kept coming" test "$(wc -l <"$T/poll.times")" -eq 4
ok "every poll within refresh of the one before (jitter only shortens)" awk -v r="$refresh" '
	NR > 1 { d = $1 - prev; if (d > r + 0.25 || d < r * 0.85) bad = 1 }
	{ prev = $1 } END { exit bad }' "$T/poll.times"
umount_af
ok "clean unmount" test $? -eq 0
