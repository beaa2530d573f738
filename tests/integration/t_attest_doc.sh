#!/usr/bin/env bash
# docs/ATTESTATION.md is true (issue 15 item 5): its ```sh blocks, run as
# written in a folder holding a blob and its registration, make evidence
# (Ed25519, and the ECDSA P-256 variant) and a policy that a real mount
# accepts as attested.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/attest.sh"
doc=$(cd "$(dirname "$0")/../.." && pwd)/docs/ATTESTATION.md
af_world
W=$T/publisher
mkdir -p "$W"
make_blob resnet50.safetensors 65536
d=$(register resnet50.safetensors)
reg=$T/registry/vision-resnet50.safetensors-${d#sha256:}.json
mv "$reg" "$W/registration.json"
cp "$T/www/resnet50.safetensors" "$W/"
awk '/^```sh$/ { f = 1; next } /^```$/ { f = 0 } f' "$doc" >"$T/doc.sh"
expect "the doc has its seven command blocks" 7 grep -c '^```sh$' "$doc"
ok "the doc's commands run" sh -c "cd '$W' && POLICY='$T/policy.json' bash -e '$T/doc.sh' >'$T/doc.out' 2>&1"
cat "$T/doc.out"
mv "$W/registration.json" "$reg"
ok "check accepts the result" "$AF" check -c "$T/artifactfs.conf"
mount_af || exit 1
f=$T/mnt/vision/resnet50.safetensors@$d
ok "attested artifact opens under min_trust_state attested" cmp "$T/www/resnet50.safetensors" "$f"
expect "attestation xattr" "verified:publisher-2026" getfattr --only-values -n user.artifact.attestation "$f"
expect "trust_state xattr" "attested" getfattr --only-values -n user.artifact.trust_state "$f"
# The P-256 envelope of the doc, in place of the Ed25519 one.
set_attestation "$reg" "$(cat "$W/envelope-p256.json")"
kill -HUP "$AF_PID"; sleep 2.5
expect "P-256 envelope: attestation xattr" "verified:publisher-p256" getfattr --only-values -n user.artifact.attestation "$f"
ok "P-256 envelope: opens" cmp "$T/www/resnet50.safetensors" "$f"
# The same envelope for another blob proves nothing about it.
make_blob other.bin 100
d2=$(register other.bin name=resnet50.safetensors trust=attested)
sleep 2.5
expect "no evidence for another digest: EACCES" EACCES "$PROBE" open "$T/mnt/vision/resnet50.safetensors@$d2"
ok "clean unmount" umount_af
