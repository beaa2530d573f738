#!/usr/bin/env bash
# gcs (DESIGN §5b; issue 7 item 4): the JSON API media download with a
# bearer token, against an nginx location on 127.0.0.1 that maps
# /storage/v1/b/<bucket>/o/<object>?alt=media to files, supports Range,
# answers 401 (GCS's error body) to a missing or wrong token and 400
# unless the object name arrives encoded whole ('/' as %2F).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/creds.sh"
af_world 256K

TOK=ya29.gcs-token-4e81c
WRONG=ya29.wrong-token-77
start_gcs "$TOK" || { fail "nginx for gcs did not start"; exit 1; }
conf_add gcs "endpoint = http://127.0.0.1:$GCS_PORT"
conf_add credentials "dir = $T/creds"
policy_allow gcs "gs://ml-weights/" "gs://other-bucket/"

make_blob g.bin $((1024 * 1024 + 77))
make_blob w.bin 3000
mkdir -p "$T/gcs/ml-weights/models/v1" "$T/gcs/other-bucket"
cp "$T/www/g.bin" "$T/gcs/ml-weights/models/v1/g x.bin"
cp "$T/www/w.bin" "$T/gcs/other-bucket/w.bin"
cred_file gcs.json gcs "gs://ml-weights/" 600 bearer_token=$TOK
cred_file other.json gcs "gs://other-bucket" 600 bearer_token=$WRONG
d_g=$(register g.bin source_type=gcs uri="gs://ml-weights/models/v1/g%20x.bin")
d_w=$(register w.bin source_type=gcs uri="gs://other-bucket/w.bin")

mount_af || exit 1
m=$T/mnt/vision
ok "bearer token, object name with '/': bytes equal" cmp "$T/www/g.bin" "$m/g.bin@$d_g"
ok "... asked as one encoded name with alt=media" grep -q "GET /storage/v1/b/ml-weights/o/models%2Fv1%2Fg%20x.bin?alt=media 206" "$T/nginx-gcs/access.log"
ok "... in ranges" sh -c "test \$(grep -c 'o/models%2Fv1%2Fg%20x.bin?alt=media 206' '$T/nginx-gcs/access.log') -ge 4"
expect "wrong token: EIO" EIO "$PROBE" open "$m/w.bin@$d_w"
ok "... 401 and GCS's reason in the audit" sh -c "grep fetch_failed '$T/audit.jsonl' | grep '$d_w' | grep -q 'HTTP 401 Unauthorized (authError)'"
ok "clean unmount" umount_af
secrets_scan "gcs" "$TOK" "$WRONG"
