#!/usr/bin/env bash
# No secret anywhere (DESIGN §5; issue 7 item 6): every kind of secret the
# credential paths handle goes through success and failure here (a bearer
# token used, refused for an unknown field, expired; a helper printing a
# secret as garbage; a secret in a registration URI and in the config
# file; an s3 secret that fails SigV4 while the server echoes the key id
# and the string to sign), then the audit log, every xattr, the daemon's
# output and the output of check and prefetch (text and --json) are
# scanned for each of them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/creds.sh"
. "$(dirname "$0")/lib_servers.sh"
af_world 64K

S_DIR=tok-used-0b5e2f9d
S_UNK=tok-unknownfield-8c21
S_EXP=tok-expired-3fa0
S_GARBAGE=tok-garbage-d41d
S_URI=sig-in-uri-7e5c
S_CONF=sas-in-config-aa19
S_AKID=S3RVER  # s3rver knows only this key id; it echoes it in its error body
S_S3=s3-secret-key-61b0
GCS_TOK=ya29.secret-gcs-90f1
HF_TOK=hf_secret-hub-3d7a
HF_BAD=hf_secret-wrong-c4e2
ST_TOK=as-secret-store-8b1f
ST_BAD=as-secret-wrong-6e0d

start_gcs "$GCS_TOK" || { fail "nginx for gcs did not start"; exit 1; }
B=http://127.0.0.1:$NGINX_PORT/blobs
printf '#!/bin/sh\ncat >/dev/null\necho "token=%s"\n' "$S_GARBAGE" >"$T/helper.sh"
chmod 0755 "$T/helper.sh"
conf_add credentials "dir = $T/creds"
conf_add credentials "helper = $T/helper.sh"
conf_add gcs "endpoint = http://127.0.0.1:$GCS_PORT"
policy_allow gcs "gs://sec-bucket/"
mkdir -p "$T/www/ok" "$T/www/unk" "$T/www/exp" "$T/www/hlp" "$T/gcs/sec-bucket"
for d in ok unk exp hlp; do make_blob $d/f.bin 3000; done
cp "$T/www/ok/f.bin" "$T/gcs/sec-bucket/f.bin"
cred_file ok.json https "$B/ok/" 600 bearer_token=$S_DIR
cred_file unk.json https "$B/unk/" 600 bearer_token=$S_DIR password=$S_UNK
cred_file exp.json https "$B/exp/" -5 bearer_token=$S_EXP
cred_file gcs.json gcs "gs://sec-bucket/" 600 bearer_token=$GCS_TOK
d_ok=$(register ok/f.bin name=ok.bin uri="$B/ok/f.bin" out=ok.json)
d_unk=$(register unk/f.bin name=unk.bin uri="$B/unk/f.bin" out=unk.json)
d_exp=$(register exp/f.bin name=exp.bin uri="$B/exp/f.bin" out=exp.json)
d_hlp=$(register hlp/f.bin name=hlp.bin uri="$B/hlp/f.bin" out=hlp.json)
d_gcs=$(register ok/f.bin name=gcs.bin source_type=gcs uri="gs://sec-bucket/f.bin" out=gcs.json)
register ok/f.bin name=uri.bin uri="$B/ok/f.bin?sig=$S_URI&X-Amz-Signature=$S_URI" out=uri.json >/dev/null
# huggingface and artifact_store (issue 8): a token used, a wrong one
# refused by the server (the Hub's 401, the registry's challenge).
HF_C=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$T/hf-hub/cdn/sec/ok" "$T/hf-hub/cdn/sec/bad"
cp "$T/www/ok/f.bin" "$T/hf-hub/cdn/sec/ok/f.bin"
cp "$T/www/ok/f.bin" "$T/hf-hub/cdn/sec/bad/f.bin"
start_hf_hub "$HF_TOK" "$HF_C" || { fail "nginx for the hub did not start"; exit 1; }
conf_add huggingface "endpoint = http://127.0.0.1:$HF_PORT"
policy_allow huggingface "hf://sec/"
cred_file hf.json huggingface "hf://sec/ok/" 600 bearer_token=$HF_TOK
cred_file hfbad.json huggingface "hf://sec/bad/" 600 bearer_token=$HF_BAD
d_hf=$(register ok/f.bin name=hf.bin source_type=huggingface uri="hf://sec/ok/f.bin" out=hf.json)
make_blob hfbad.bin 3001
d_hfbad=$(register hfbad.bin source_type=huggingface uri="hf://sec/bad/f.bin" out=hfbad.json)
sed -i "s|\"source_ref\": null|\"source_ref\": \"$HF_C\"|" "$T/registry/hf.json" "$T/registry/hfbad.json"
start_registry secreg || { fail "docker-registry did not start"; exit 1; }
oci_push "http://127.0.0.1:$REG_PORT" sec/ok "$T/www/ok/f.bin" || fail "upload to the registry"
start_registry_front "$ST_TOK" "$REG_PORT" || { fail "nginx in front of the registry did not start"; exit 1; }
conf_add artifact_store "endpoint = http://127.0.0.1:$STORE_PORT"
policy_allow artifact_store "artifact-store://sec/"
cred_file st.json artifact_store "artifact-store://sec/ok" 600 bearer_token=$ST_TOK
cred_file stbad.json artifact_store "artifact-store://sec/bad" 600 bearer_token=$ST_BAD
d_st=$(register ok/f.bin name=st.bin source_type=artifact_store uri="artifact-store://sec/ok" out=st.json)
make_blob stbad.bin 3002
d_stbad=$(register stbad.bin source_type=artifact_store uri="artifact-store://sec/bad" out=stbad.json)

refs="vision/ok.bin@$d_ok vision/unk.bin@$d_unk vision/exp.bin@$d_exp vision/hlp.bin@$d_hlp vision/gcs.bin@$d_gcs"
refs="$refs vision/hf.bin@$d_hf vision/hfbad.bin@$d_hfbad vision/st.bin@$d_st vision/stbad.bin@$d_stbad"
secrets="$S_DIR $S_UNK $S_EXP $S_GARBAGE $S_URI $S_CONF $GCS_TOK $HF_TOK $HF_BAD $ST_TOK $ST_BAD"

d_s3=""
if start_s3rver sec-bucket; then
	make_blob s3.bin 3000
	s3_put "$T/www/s3.bin" sec-bucket "s3.bin" || fail "upload to s3rver"
	conf_add s3 "endpoint = http://127.0.0.1:$S3_PORT"
	policy_allow s3 "s3://sec-bucket/"
	cred_file s3.json s3 "s3://sec-bucket/" 600 access_key_id=$S_AKID secret_access_key=$S_S3
	d_s3=$(register s3.bin source_type=s3 uri="s3://sec-bucket/s3.bin")
	refs="$refs vision/s3.bin@$d_s3"
	secrets="$secrets $S_AKID $S_S3"
elif [ -n "$EMU_SKIP" ]; then
	skip "s3 secrets: $EMU_SKIP"
fi

# A secret in the config file: check and mount refuse it, without it.
cp "$T/artifactfs.conf" "$T/bad.conf"
printf '\n[azure_blob]\nsas_token = %s\n' "$S_CONF" >>"$T/bad.conf"
"$AF" check -c "$T/bad.conf" >"$T/check-badconf.out" 2>&1
ok "a secret in the config file: check refuses it, naming the line" grep -q "bad.conf:[0-9]*: unknown key \"sas_token\" in \[azure_blob\]: secrets never go in the config file" "$T/check-badconf.out"
"$AF" mount -f -c "$T/bad.conf" "$T/mnt" >"$T/mount-badconf.out" 2>&1
ok "... and mount too" grep -q "secrets never go in the config file" "$T/mount-badconf.out"

"$AF" check -c "$T/artifactfs.conf" >"$T/check.out" 2>&1
"$AF" check --json -c "$T/artifactfs.conf" >"$T/check-json.out" 2>&1
ok "check names the credential file with an unknown field" grep -q "creds/unk.json: password: unknown field" "$T/check.out"
ok "check names the URI with a secret" grep -q "uri.json.*carries a credential" "$T/check.out"
mount_af || exit 1
m=$T/mnt/vision
ok "a used token: served" cmp "$T/www/ok/f.bin" "$m/ok.bin@$d_ok"
ok "gcs token: served" cmp "$T/www/ok/f.bin" "$m/gcs.bin@$d_gcs"
ok "huggingface token: served" cmp "$T/www/ok/f.bin" "$m/hf.bin@$d_hf"
expect "huggingface, wrong token: EIO" EIO "$PROBE" open "$m/hfbad.bin@$d_hfbad"
ok "... the Hub's 401 in the audit" sh -c "grep fetch_failed '$T/audit.jsonl' | grep '$d_hfbad' | grep -q 'HTTP 401 Unauthorized (GatedRepo)'"
ok "artifact_store token: served" cmp "$T/www/ok/f.bin" "$m/st.bin@$d_st"
expect "artifact_store, wrong token: EIO" EIO "$PROBE" open "$m/stbad.bin@$d_stbad"
ok "... the registry's challenge in the audit" sh -c "grep fetch_failed '$T/audit.jsonl' | grep '$d_stbad' | grep -q 'HTTP 401 Unauthorized: a token from realm'"
expect "unknown field: EIO" EIO "$PROBE" open "$m/unk.bin@$d_unk"
expect "expired: EIO" EIO "$PROBE" open "$m/exp.bin@$d_exp"
expect "helper garbage: EIO" EIO "$PROBE" open "$m/hlp.bin@$d_hlp"
if [ -n "$d_s3" ]; then
	expect "s3, wrong secret: EIO" EIO "$PROBE" open "$m/s3.bin@$d_s3"
	ok "... SignatureDoesNotMatch in the reason" sh -c "grep fetch_failed '$T/audit.jsonl' | grep '$d_s3' | grep -q 'HTTP 403 Forbidden (SignatureDoesNotMatch)'"
	ok "... and nothing else of the server's answer" sh -c "! grep -q 'StringToSign\|signature we calculated' '$T/audit.jsonl'"
fi
for r in $refs; do
	n=${r#vision/}
	"$AF" prefetch -c "$T/artifactfs.conf" "$r" >>"$T/prefetch.out" 2>&1
	"$AF" prefetch --json -c "$T/artifactfs.conf" "$r" >>"$T/prefetch-json.out" 2>&1
	getfattr -h -d -m - "$m/$n" >>"$T/xattr.out" 2>&1
done
ok "refusals were audited" test "$(grep -c credential_refused "$T/audit.jsonl")" -ge 3
ok "a secret in a URI: credential_refused naming the file" sh -c "grep credential_refused '$T/audit.jsonl' | grep -q 'uri.json: source.uri: uri query parameter'"
# shellcheck disable=SC2086
secrets_scan "every secret" $secrets
ok "clean unmount" umount_af
# shellcheck disable=SC2086
secrets_scan "every secret, daemon gone" $secrets
