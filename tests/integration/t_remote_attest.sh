#!/usr/bin/env bash
# Attestation with the registry from the control plane (DESIGN §12, §3):
# the evidence of a listing is checked when the listing is loaded, once
# per record version (an unchanged poll checks nothing, a changed listing
# checks only its new records), and a policy from /v1/policy that drops a
# key denies what it signed within one interval.
. "$(dirname "$0")/lib.sh"
refresh=2
cp_world "${refresh}s"
. "$(dirname "$0")/attest.sh"
attest_keys
# attest FILE KEY: registers $T/www/FILE as attested, signed with KEY as k-ed.
attest() {
	local d
	d=$(register "$1" trust=attested)
	set_attestation "$T/registry/vision-$1-${d#sha256:}.json" \
		"$(envelope "$(statement "vision/$1" "${d#sha256:}")" "$2" k-ed)"
	echo "$d"
}
# keys on|off: the policy's attestation keys (k-ed, or none), min attested.
keys() {
	python3 - "$T/policy.json" "$K/ed.pub" "$1" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    pol = json.load(f)
pol["attestation_keys"] = [{"keyid": "k-ed", "public_key": open(sys.argv[2]).read()}] if sys.argv[3] == "on" else []
pol["min_trust_state"] = "attested"
with open(sys.argv[1], "w") as f:
    json.dump(pol, f)
EOF
}
keys on
for n in good bad new; do make_blob "$n.bin" 4096; done
d_good=$(attest good.bin ed)
d_bad=$(attest bad.bin other)
cp_publish
mount_af || exit 1
m=$T/mnt/vision
checked() { grep -o 'attestation: [0-9]* envelopes checked' "$T/daemon.log" | awk '{ s += $2 } END { print s + 0 }'; }
ok "evidence from the control plane verifies: open" cmp "$T/www/good.bin" "$m/good.bin@$d_good"
expect "  user.artifact.attestation" "verified:k-ed" getfattr --only-values -n user.artifact.attestation "$m/good.bin@$d_good"
expect "a bad signature: EACCES" EACCES "$PROBE" open "$m/bad.bin@$d_bad"
ok "  audited with the reason" audit_wait sh -c "grep '\"event\":\"open_denied\"' '$T/audit.jsonl' | grep '$d_bad' | grep -q attestation"
expect "checked when the listing was loaded: 2 envelopes" 2 checked

n=$(cpd_count ' 304 ')
sleep $((refresh * 2 + 1))
ok "unchanged polls (304)" test "$(cpd_count ' 304 ')" -gt "$n"
expect "  checked nothing again" 2 checked

d_new=$(attest new.bin ed)
cp_publish
ok "a new attested registration arrives with the next listing" sh -c \
	"for i in \$(seq 1 $((refresh * 10 + 30))); do grep -q 'loaded 3 registrations' '$T/daemon.log' && exit 0; sleep 0.1; done; exit 1"
expect "  only its envelope was checked (the others' results lent)" 3 checked
ok "  it opens" cmp "$T/www/new.bin" "$m/new.bin@$d_new"

keys off
cp_publish
ok "the policy drops the key: what it signed is denied within one interval" sh -c \
	"for i in \$(seq 1 $((refresh * 10 + 30))); do [ \"\$('$PROBE' open '$m/good.bin@$d_good')\" = EACCES ] && exit 0; sleep 0.1; done; exit 1"
keys on
cp_publish
ok "the key back: it opens again" sh -c \
	"for i in \$(seq 1 $((refresh * 10 + 30))); do cmp -s '$T/www/good.bin' '$m/good.bin@$d_good' && exit 0; sleep 0.1; done; exit 1"
umount_af
ok "clean unmount" test $? -eq 0
