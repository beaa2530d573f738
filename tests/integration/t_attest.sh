#!/usr/bin/env bash
# Attested artifacts (DESIGN §12, issue 15) through the real mount: the
# node checks the DSSE envelope itself. With min_trust_state attested,
# only records whose evidence verifies (a key allowed for the project, a
# subject naming project/name and digest) open; every other case is
# EACCES with the reason audited, stays listed, and shows why in
# user.artifact.attestation while user.artifact.trust_state keeps the
# registered value. check lists them; a policy change re-checks them.
. "$(dirname "$0")/lib.sh"
af_world
. "$(dirname "$0")/attest.sh"
attest_keys

# attest FILE ENVELOPE_JSON [trust]: register $T/www/FILE as attested, with evidence.
attest() {
	local file=$1 env=$2 trust=${3:-attested} d
	d=$(register "$file" trust="$trust")
	set_attestation "$T/registry/vision-$file-${d#sha256:}.json" "$env"
	echo "$d"
}

# write_keys [EXTRA_KEYS_JSON]: policy with min attested and the keys.
write_keys() {
	python3 - "$T/policy.json" "$K" "${1:-}" <<'EOF'
import json, sys
path, k, drop = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path) as f:
    pol = json.load(f)
keys = [{"keyid": "k-ed", "public_key": open(k + "/ed.pub").read()},
        {"keyid": "k-ec", "public_key": open(k + "/ec.pub").read(), "projects": ["vision"]},
        {"keyid": "k-nlp", "public_key": open(k + "/other.pub").read(), "projects": ["nlp"]}]
pol["attestation_keys"] = [x for x in keys if x["keyid"] != drop]
pol["min_trust_state"] = "attested"
with open(path, "w") as f:
    json.dump(pol, f)
EOF
}
write_keys

for n in good ec multi badsig unknown notallowed wrongdigest wrongname nottoto b64 claim plain; do
	make_blob "$n.bin" 4096
done
hex() { sha256_of "$T/www/$1"; }
other=$(printf '%064d' 7)
d_good=$(attest good.bin "$(envelope "$(statement vision/good.bin "$(hex good.bin)")" ed k-ed)")
d_ec=$(attest ec.bin "$(envelope "$(statement vision/ec.bin "$(hex ec.bin)")" ec k-ec)")
d_multi=$(attest multi.bin "$(envelope "$(statement vision/x.bin "$other" vision/multi.bin "$(hex multi.bin)" vision/y.bin "$(hex multi.bin)")" ed k-ed)")
d_badsig=$(attest badsig.bin "$(envelope "$(statement vision/badsig.bin "$(hex badsig.bin)")" other k-ed)")
d_unknown=$(attest unknown.bin "$(envelope "$(statement vision/unknown.bin "$(hex unknown.bin)")" other k-stranger)")
d_notallowed=$(attest notallowed.bin "$(envelope "$(statement vision/notallowed.bin "$(hex notallowed.bin)")" other k-nlp)")
d_wrongdigest=$(attest wrongdigest.bin "$(envelope "$(statement vision/wrongdigest.bin "$other")" ed k-ed)")
d_wrongname=$(attest wrongname.bin "$(envelope "$(statement vision/good.bin "$(hex wrongname.bin)")" ed k-ed)")
d_nottoto=$(attest nottoto.bin "$(envelope "$(statement vision/nottoto.bin "$(hex nottoto.bin)")" ed k-ed application/json)")
d_b64=$(attest b64.bin '{"payloadType":"application/vnd.in-toto+json","payload":"%%%","signatures":[{"keyid":"k-ed","sig":"AAAA"}]}')
d_claim=$(attest claim.bin "$(envelope "$(statement vision/claim.bin "$(hex claim.bin)")" ed k-ed)" verified)
d_plain=$(register plain.bin trust=attested)

out=$("$AF" check -c "$T/artifactfs.conf" 2>&1); rc=$?
expect "check exits 1 when attested evidence fails" 1 echo $rc
for n in badsig unknown notallowed wrongdigest wrongname nottoto b64 plain; do
	ok "check lists $n.bin" sh -c "echo '$out' | grep -q 'vision/$n.bin@.*trust_state attested, but the attestation does not verify'"
done
for n in good ec multi claim; do
	ok "check does not list $n.bin" sh -c "! echo '$out' | grep -q 'vision/$n.bin@.*does not verify'"
done

mount_af || exit 1
m=$T/mnt/vision
xa() { getfattr --only-values -n "user.artifact.$1" "$2" 2>/dev/null; }
ok "Ed25519 evidence verifies: open" cmp "$T/www/good.bin" "$m/good.bin@$d_good"
expect "attestation xattr: verified:<keyid>" "verified:k-ed" xa attestation "$m/good.bin@$d_good"
ok "ECDSA P-256 evidence verifies: open" cmp "$T/www/ec.bin" "$m/ec.bin@$d_ec"
expect "attestation xattr (P-256)" "verified:k-ec" xa attestation "$m/ec.bin@$d_ec"
ok "several subjects, one matches: open" cmp "$T/www/multi.bin" "$m/multi.bin@$d_multi"

# case NAME DIGEST WANT_TEXT: EACCES, audited, listed, xattrs.
denied_case() {
	local n=$1 d=$2 want=$3
	expect "$n: EACCES" EACCES "$PROBE" open "$m/$n.bin@$d"
	ok "$n: listed" sh -c "ls '$m' | grep -q '^$n.bin@'"
	ok "$n: audit open_denied with the reason" sh -c "grep '\"event\":\"open_denied\"' '$T/audit.jsonl' | grep '$d' | grep -q 'attestation not verified: $want'"
	ok "$n: attestation xattr says why" sh -c "getfattr --only-values -n user.artifact.attestation '$m/$n.bin@$d' | grep -q '$want'"
	expect "$n: trust_state xattr keeps the registered value" attested xa trust_state "$m/$n.bin@$d"
	ok "$n: denied_reason names the attestation" sh -c "getfattr --only-values -n user.artifact.denied_reason '$m/$n.bin@$d' | grep -q 'counts as verified, below minimum attested'"
	expect "$n: nothing fetched" 0 nginx_requests "$n.bin"
}
denied_case badsig "$d_badsig" 'bad signature (keyid'
denied_case unknown "$d_unknown" 'unknown key (keyid'
denied_case notallowed "$d_notallowed" 'key .*k-nlp.* not allowed for project vision'
denied_case wrongdigest "$d_wrongdigest" 'subject mismatch'
denied_case wrongname "$d_wrongname" 'subject mismatch'
denied_case nottoto "$d_nottoto" 'payload type is not in-toto'
denied_case b64 "$d_b64" 'malformed evidence: payload is not base64'
denied_case plain "$d_plain" 'none: no attestation'
expect "verified claim with good evidence: below minimum attested" EACCES "$PROBE" open "$m/claim.bin@$d_claim"
expect "its attestation xattr still verifies" "verified:k-ed" xa attestation "$m/claim.bin@$d_claim"

# A policy change re-checks: k-ed removed → good.bin no longer attested.
write_keys k-ed
kill -HUP "$AF_PID"; sleep 2.5
expect "after the key is removed: EACCES" EACCES "$PROBE" open "$m/good.bin@$d_good"
expect "and the xattr says unknown key" 'unknown key (keyid "k-ed")' xa attestation "$m/good.bin@$d_good"
ok "ECDSA record still attested" cmp "$T/www/ec.bin" "$m/ec.bin@$d_ec"
# With min_trust_state verified, unconfirmed attested records count as verified.
sed -i 's/"min_trust_state": "attested"/"min_trust_state": "verified"/' "$T/policy.json"
kill -HUP "$AF_PID"; sleep 2.5
ok "min verified: a bad signature counts as verified and opens" cmp "$T/www/badsig.bin" "$m/badsig.bin@$d_badsig"
ok "min verified: a payload that is not in-toto too" cmp "$T/www/nottoto.bin" "$m/nottoto.bin@$d_nottoto"
expect "its attestation xattr still says why not" 'payload type is not in-toto ("application/json")' xa attestation "$m/nottoto.bin@$d_nottoto"
ok "the load logs the envelopes checked once" grep -q "attestation: [0-9]* envelopes checked" "$T/daemon.log"
ok "clean unmount" umount_af
