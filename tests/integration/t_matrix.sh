#!/usr/bin/env bash
# The source matrix (issue 7 item 6, issue 8 item 4): one random blob read
# through https, file, s3 (s3rver), gcs (nginx), azure_blob (Azurite),
# huggingface (nginx as the Hub and its CDN) and artifact_store (Debian's
# docker-registry behind a token-checking nginx), each from a cold cache,
# bytes and digest compared, each fetch audited with its source type; then
# no secret anywhere. A type whose emulator cannot be installed from npm
# prints SKIP with the reason; the others still run.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/creds.sh"
. "$(dirname "$0")/lib_servers.sh"
af_world 256K

GCS_TOK=ya29.matrix-4b7d1
HF_TOK=hf_matrix5e1a0c
STORE_TOK=as-matrix-71c3b
HF_C=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
make_blob blob.bin $((2 * 1024 * 1024 + 12345))
D="sha256:$(sha256_of "$T/www/blob.bin")"
types="https file gcs"
conf_add credentials "dir = $T/creds"

policy_allow file "file://$T/www/"
register blob.bin name=m-https.bin out=https.json >/dev/null
register blob.bin name=m-file.bin source_type=file uri="file://$T/www/blob.bin" out=file.json >/dev/null

start_gcs "$GCS_TOK" || { fail "nginx for gcs did not start"; exit 1; }
mkdir -p "$T/gcs/mx-bucket/a"
cp "$T/www/blob.bin" "$T/gcs/mx-bucket/a/blob.bin"
conf_add gcs "endpoint = http://127.0.0.1:$GCS_PORT"
policy_allow gcs "gs://mx-bucket/"
cred_file gcs.json gcs "gs://mx-bucket/" 600 bearer_token=$GCS_TOK
register blob.bin name=m-gcs.bin source_type=gcs uri="gs://mx-bucket/a/blob.bin" out=gcs.json >/dev/null

if start_s3rver mx-bucket; then
	s3_put "$T/www/blob.bin" mx-bucket "a/blob.bin" || fail "upload to s3rver"
	conf_add s3 "endpoint = http://127.0.0.1:$S3_PORT"
	policy_allow s3 "s3://mx-bucket/"
	cred_file s3.json s3 "s3://mx-bucket/" 600 access_key_id=S3RVER secret_access_key=S3RVER
	register blob.bin name=m-s3.bin source_type=s3 uri="s3://mx-bucket/a/blob.bin" out=s3.json >/dev/null
	types="$types s3"
elif [ -n "$EMU_SKIP" ]; then
	skip "s3 in the matrix: $EMU_SKIP"
fi

mkdir -p "$T/hf-hub/cdn/mx-org/mx-repo/a"
cp "$T/www/blob.bin" "$T/hf-hub/cdn/mx-org/mx-repo/a/blob.bin"
start_hf_hub "$HF_TOK" "$HF_C" || { fail "nginx for the hub did not start"; exit 1; }
conf_add huggingface "endpoint = http://127.0.0.1:$HF_PORT"
policy_allow huggingface "hf://mx-org/mx-repo/"
cred_file hf.json huggingface "hf://mx-org/" 600 bearer_token=$HF_TOK
register blob.bin name=m-huggingface.bin source_type=huggingface uri="hf://mx-org/mx-repo/a/blob.bin" out=hf.json >/dev/null
sed -i "s|\"source_ref\": null|\"source_ref\": \"$HF_C\"|" "$T/registry/hf.json"
types="$types huggingface"

start_registry mxreg || { fail "docker-registry did not start"; exit 1; }
oci_push "http://127.0.0.1:$REG_PORT" mx/models "$T/www/blob.bin" || fail "upload to the registry"
start_registry_front "$STORE_TOK" "$REG_PORT" || { fail "nginx in front of the registry did not start"; exit 1; }
conf_add artifact_store "endpoint = http://127.0.0.1:$STORE_PORT"
policy_allow artifact_store "artifact-store://mx/models"
cred_file store.json artifact_store "artifact-store://mx/models" 600 bearer_token=$STORE_TOK
register blob.bin name=m-artifact_store.bin source_type=artifact_store uri="artifact-store://mx/models" out=store.json >/dev/null
types="$types artifact_store"

AZ_SAS=""
if start_azurite; then
	az_put "$T/www/blob.bin" mx-container "a/blob.bin" || fail "upload to azurite"
	AZ_SAS=$(az_sas blob 600 mx-container "a/blob.bin")
	H=https://$AZ_ACCOUNT.blob.core.windows.net
	conf_add azure_blob "endpoint = http://127.0.0.1:$AZ_PORT/{account}"
	policy_allow azure_blob "$H/mx-container/"
	cred_file az.json azure_blob "$H/mx-container/" 600 "sas_token=$AZ_SAS"
	register blob.bin name=m-azure.bin source_type=azure_blob uri="$H/mx-container/a/blob.bin" out=az.json >/dev/null
	types="$types azure_blob"
elif [ -n "$EMU_SKIP" ]; then
	skip "azure_blob in the matrix: $EMU_SKIP"
fi

mount_af || exit 1
m=$T/mnt/vision
for t in $types; do
	case $t in azure_blob) n=m-azure.bin ;; *) n=m-$t.bin ;; esac
	ok "$t: cold cache" sh -c "'$AF' cache -c '$T/artifactfs.conf' evict '$D' >/dev/null 2>&1; ! '$AF' cache -c '$T/artifactfs.conf' ls --json | grep -q '$D'"
	before=$(grep -c '"event":"fetch_done"' "$T/audit.jsonl")
	ok "$t: bytes equal" cmp "$T/www/blob.bin" "$m/$n@$D"
	expect "$t: digest" "${D#sha256:}" sh -c "sha256sum '$m/$n@$D' | cut -d' ' -f1"
	ok "$t: fetched through $t" sh -c "grep '\"event\":\"fetch_done\"' '$T/audit.jsonl' | tail -n +$((before + 1)) | grep -q '\"source_type\":\"$t\"'"
done
ok "huggingface: the CDN never saw Authorization" sh -c "grep -q '^$HF_CDN_PORT GET /cdn/mx-org/mx-repo/a/blob.bin 206 auth=0' '$T/hf-hub/logs/access.log' && ! grep -q '^$HF_CDN_PORT .* auth=1' '$T/hf-hub/logs/access.log'"
ok "artifact_store: blobs asked by digest with the token" grep -q "GET /v2/mx/models/blobs/$D 206 auth=1" "$T/store-front/logs/access.log"
secrets_scan "matrix" "$GCS_TOK" "$HF_TOK" "$STORE_TOK" ${AZ_SAS:+"$AZ_SAS"}
ok "clean unmount" umount_af
