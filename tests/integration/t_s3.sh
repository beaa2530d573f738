#!/usr/bin/env bash
# s3 (DESIGN §5b; issue 7 item 2) against s3rver from npm on 127.0.0.1,
# which checks AWS Signature V4: path-style on the [s3] endpoint, a key
# with '/' and a space, a credential with a session token, a wrong
# secret (EIO, SignatureDoesNotMatch in the audit reason, not retried: a
# 403 is an answer), and the names S3 forbids or an s3:// URI without a
# key refused as registrations (check names them; never listed).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/creds.sh"
af_world 256K

SECRET_OK=S3RVER
WRONG=wrong-secret-5c1d
TOKEN=FQoGZXIvYXdzEXAMPLEsessiontoken9a7
if ! start_s3rver ml-weights other; then
	[ -n "$EMU_SKIP" ] && { skip "s3 against s3rver: $EMU_SKIP"; exit 77; }
	exit 1
fi
conf_add s3 "endpoint = http://127.0.0.1:$S3_PORT"
conf_add s3 "region = us-east-1"
conf_add credentials "dir = $T/creds"
policy_allow s3 "s3://ml-weights/" "s3://other/" "s3://nokey" "s3://Bad_Bucket/"

make_blob m.bin $((1024 * 1024 + 4321))
make_blob t.bin 100000
make_blob w.bin 5000
s3_put "$T/www/m.bin" ml-weights "models/v1/m%20x.bin" || fail "upload m.bin"
s3_put "$T/www/t.bin" ml-weights "tok/t.bin" || fail "upload t.bin"
s3_put "$T/www/w.bin" other "w.bin" || fail "upload w.bin"
cred_file s3.json s3 "s3://ml-weights/" 600 access_key_id=S3RVER secret_access_key=$SECRET_OK
cred_file s3tok.json s3 "s3://ml-weights/tok/" 600 access_key_id=S3RVER \
	secret_access_key=$SECRET_OK session_token=$TOKEN
cred_file other.json s3 "s3://other/" 600 access_key_id=S3RVER secret_access_key=$WRONG

d_m=$(register m.bin source_type=s3 uri="s3://ml-weights/models/v1/m%20x.bin")
d_t=$(register t.bin source_type=s3 uri="s3://ml-weights/tok/t.bin")
d_w=$(register w.bin source_type=s3 uri="s3://other/w.bin")
register w.bin name=nokey.bin source_type=s3 uri="s3://nokey/" out=nokey.json >/dev/null
register w.bin name=badname.bin source_type=s3 uri="s3://Bad_Bucket/x" out=badname.json >/dev/null

"$AF" check -c "$T/artifactfs.conf" >"$T/check.out" 2>&1
ok "check: an s3:// URI without a key is named" grep -q "nokey.json.*s3 uri has no object key" "$T/check.out"
ok "check: a bucket name S3 forbids is named" grep -q "badname.json.*bucket name" "$T/check.out"

mount_af || exit 1
m=$T/mnt/vision
ok "SigV4, path-style, key with '/' and a space: bytes equal" cmp "$T/www/m.bin" "$m/m.bin@$d_m"
expect "... digest" "${d_m#sha256:}" sh -c "sha256sum '$m/m.bin@$d_m' | cut -d' ' -f1"
ok "... fetched from s3, audited" sh -c "grep fetch_done '$T/audit.jsonl' | grep '$d_m' | grep -q '\"source_type\":\"s3\"'"
ok "with a session token (signed): served" cmp "$T/www/t.bin" "$m/t.bin@$d_t"
expect "wrong secret: EIO" EIO "$PROBE" open "$m/w.bin@$d_w"
ok "... SignatureDoesNotMatch in the audit reason" sh -c "grep fetch_failed '$T/audit.jsonl' | grep '$d_w' | grep -q 'HTTP 403 Forbidden (SignatureDoesNotMatch)'"
ok "... not retried (a 403 is an answer)" sh -c "grep fetch_failed '$T/audit.jsonl' | grep '$d_w' | grep -vq 'attempts'"
expect "no key, no bad bucket listed" 0 sh -c "ls '$m' | grep -c 'nokey.bin\|badname.bin'"
ok "clean unmount" umount_af
secrets_scan "s3" "$WRONG" "$TOKEN"
