#!/usr/bin/env bash
# azure_blob (DESIGN §5b; issue 7 item 3) against Azurite's blob service
# from npm on 127.0.0.1 (account devstoreaccount1), with [azure_blob]
# endpoint = http://127.0.0.1:PORT/{account}. The test makes the SAS
# itself with the account key: a valid SAS reads (x-ms-version, x-ms-range
# sent); an expired or a tampered one fails with Azurite's error code in
# the reason; the SAS never appears in any output.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/creds.sh"
af_world 256K

if ! start_azurite; then
	[ -n "$EMU_SKIP" ] && { skip "azure_blob against Azurite: $EMU_SKIP"; exit 77; }
	exit 1
fi
conf_add azure_blob "endpoint = http://127.0.0.1:$AZ_PORT/{account}"
conf_add credentials "dir = $T/creds"
H=https://$AZ_ACCOUNT.blob.core.windows.net
policy_allow azure_blob "$H/models/"

make_blob a.bin $((1024 * 1024 + 999))
make_blob x.bin 4000
make_blob y.bin 4000
az_put "$T/www/a.bin" models "dir/a%20b.bin" || fail "upload a.bin"
az_put "$T/www/x.bin" models "expired/x.bin" || fail "upload x.bin"
az_put "$T/www/y.bin" models "tampered/y.bin" || fail "upload y.bin"
SAS_OK=$(az_sas blob 600 models "dir/a b.bin")
SAS_OLD=$(az_sas blob -600 models "expired/x.bin")
SAS_BAD=$(az_sas blob 600 models "tampered/y.bin" | sed 's/sig=\(.\)/sig=Q\1/')
# With and without the leading '?': both are taken.
cred_file a.json azure_blob "$H/models/dir/" 600 "sas_token=?$SAS_OK"
cred_file x.json azure_blob "$H/models/expired/" 600 "sas_token=$SAS_OLD"
cred_file y.json azure_blob "$H/models/tampered/" 600 "sas_token=$SAS_BAD"
d_a=$(register a.bin source_type=azure_blob uri="$H/models/dir/a%20b.bin")
d_x=$(register x.bin source_type=azure_blob uri="$H/models/expired/x.bin")
d_y=$(register y.bin source_type=azure_blob uri="$H/models/tampered/y.bin")

"$AF" check -c "$T/artifactfs.conf" >"$T/check.out" 2>&1
mount_af || exit 1
m=$T/mnt/vision
ok "valid SAS: bytes equal" cmp "$T/www/a.bin" "$m/a.bin@$d_a"
expect "... digest" "${d_a#sha256:}" sh -c "sha256sum '$m/a.bin@$d_a' | cut -d' ' -f1"
expect "expired SAS: EIO" EIO "$PROBE" open "$m/x.bin@$d_x"
ok "... Azurite's error code in the reason" sh -c "grep fetch_failed '$T/audit.jsonl' | grep '$d_x' | grep -q 'HTTP 403 Forbidden (Authentication\\|HTTP 403 Forbidden (Authorization'"
expect "tampered SAS: EIO" EIO "$PROBE" open "$m/y.bin@$d_y"
ok "... Azurite's error code in the reason" sh -c "grep fetch_failed '$T/audit.jsonl' | grep '$d_y' | grep -q 'HTTP 403 Forbidden (Authentication\\|HTTP 403 Forbidden (Authorization'"
expect "uri xattr is the registration's, redacted" "$H/models/dir/a%20b.bin" getfattr --only-values -n user.artifact.uri "$m/a.bin@$d_a"
"$AF" prefetch -c "$T/artifactfs.conf" "vision/y.bin@$d_y" >"$T/prefetch.out" 2>&1
sig_ok=$(printf '%s' "$SAS_OK" | sed 's/.*sig=//')
sig_old=$(printf '%s' "$SAS_OLD" | sed 's/.*sig=//')
sig_bad=$(printf '%s' "$SAS_BAD" | sed 's/.*sig=//')
secrets_scan "azure_blob" "$SAS_OK" "$sig_ok" "$SAS_OLD" "$sig_old" "$sig_bad"
ok "clean unmount" umount_af
