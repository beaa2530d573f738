#!/usr/bin/env bash
# Registration and policy gates (DESIGN §3, §4, §7): unregistered → ENOENT,
# outside the allowlist → EACCES, revoked → EACCES, a malformed file never
# hides the others, deprecated opens with a warning, project gid modes,
# channel symlinks.
. "$(dirname "$0")/lib.sh"
af_world
for n in good other dep rev untr p1 p2; do make_blob "$n.bin" 4096; done
d_good=$(register good.bin)
d_dep=$(register dep.bin lifecycle=deprecated)
d_rev=$(register rev.bin lifecycle=revoked)
d_untr=$(register untr.bin trust=untrusted)
d_other=$(register other.bin uri="http://127.0.0.1:$NGINX_PORT/elsewhere/other.bin")
d_p1=$(register p1.bin name=model.bin channels='["prod"]' registered_at=2026-03-01T00:00:00Z)
d_p2=$(register p2.bin name=model.bin channels='["prod","staging"]' registered_at=2026-03-05T00:00:00Z)
d_team=$(register good.bin project=team-a out=team/a.json)
echo '{"project": "vision", "name": "broken"' >"$T/registry/broken.json"
cat >"$T/registry/badalgo.json" <<EOB
{"project":"vision","name":"bad.bin","artifact_kind":"blob","digest":"md5:0123","source":{"source_type":"https","uri":"http://127.0.0.1:$NGINX_PORT/blobs/good.bin"},"lifecycle_state":"active","trust_state":"verified"}
EOB
python_free_policy() {
	sed -i 's/"projects": {}/"projects": {"team-a": {"gid": 4242}}/' "$T/policy.json"
}
python_free_policy
# Secrets never travel in a URI (DESIGN §5): refused, and never echoed.
make_blob q.bin 1000
d_secret=$(register q.bin name=signed.bin uri="http://127.0.0.1:$NGINX_PORT/blobs/q.bin?sig=hunter2secret")
d_query=$(register q.bin name=query.bin uri="http://127.0.0.1:$NGINX_PORT/blobs/q.bin?version=3")
"$AF" check -c "$T/artifactfs.conf" >"$T/check.out" 2>&1
ok "check reports the secret-bearing URI" grep -q "sig" "$T/check.out"
ok "check never echoes the secret" sh -c "! grep -q hunter2secret '$T/check.out'"
mount_af || exit 1
m=$T/mnt/vision
ok "good artifact served despite a malformed file" cmp "$T/www/good.bin" "$m/good.bin@$d_good"
ok "invalid record not listed" sh -c "! ls '$m' | grep -q '^bad.bin@'"
zero="sha256:$(printf '%064d' 0)"
expect "unregistered digest: ENOENT" ENOENT "$PROBE" open "$m/good.bin@$zero"
ok "audit lookup_unregistered" audit_has lookup_unregistered "$zero"
expect "unknown project: ENOENT" ENOENT "$PROBE" open "$T/mnt/nosuch/good.bin@$d_good"
expect "uppercase digest: ENOENT" ENOENT "$PROBE" open "$m/good.bin@$(echo "$d_good" | tr a-f A-F)"
expect "source outside allowlist: EACCES" EACCES "$PROBE" open "$m/other.bin@$d_other"
ok "denied_reason xattr names the source" sh -c "getfattr --only-values -n user.artifact.denied_reason '$m/other.bin@$d_other' | grep -q 'not allowlisted'"
ok "audit open_denied" audit_has open_denied "$d_other"
expect "revoked: EACCES" EACCES "$PROBE" open "$m/rev.bin@$d_rev"
ok "revoked listed" sh -c "ls '$m' | grep -q '^rev.bin@'"
expect "untrusted below minimum: EACCES" EACCES "$PROBE" open "$m/untr.bin@$d_untr"
ok "deprecated readable" cmp "$T/www/dep.bin" "$m/dep.bin@$d_dep"
ok "deprecated open audited with warning" sh -c "grep '\"event\":\"open\"' '$T/audit.jsonl' | grep '$d_dep' | grep -q '\"warning\":\"deprecated\"'"
expect "nothing fetched for denied" 0 nginx_requests other.bin
expect "channel prod → latest registration" "model.bin@$d_p2" readlink "$m/model.bin@prod"
expect "channel staging" "model.bin@$d_p2" readlink "$m/model.bin@staging"
ok "read through channel symlink" cmp "$T/www/p2.bin" "$m/model.bin@prod"
expect "unknown channel: ENOENT" ENOENT "$PROBE" open "$m/model.bin@dev"
expect "gid project dir mode" "550 0 4242" stat -c '%a %u %g' "$T/mnt/team-a"
expect "gid project file mode" "440 0 4242" stat -c '%a %u %g' "$T/mnt/team-a/good.bin@$d_team"
# Reload: revoke the latest prod record → prod falls back; add a new one.
sed -i 's/"lifecycle_state": "active"/"lifecycle_state": "revoked"/' "$T/registry/vision-model.bin-${d_p2#sha256:}.json"
kill -HUP "$AF_PID"; sleep 2.5
expect "after SIGHUP reload: prod → older readable record" "model.bin@$d_p1" readlink "$m/model.bin@prod"
expect "after reload: revoked p2 → EACCES" EACCES "$PROBE" open "$m/model.bin@$d_p2"
make_blob new.bin 100
d_new=$(register new.bin)
sleep 2.5
ok "new registration appears on change (refresh)" cmp "$T/www/new.bin" "$m/new.bin@$d_new"
rm "$T/registry/vision-new.bin-${d_new#sha256:}.json"
sleep 2.5
expect "removed registration: ENOENT" ENOENT "$PROBE" open "$m/new.bin@$d_new"
ok "secret-bearing registration not listed" sh -c "! ls '$T/mnt/vision' | grep -q '^signed.bin@'"
ok "other query parameters are kept: served" cmp "$T/www/q.bin" "$T/mnt/vision/query.bin@$d_query"
expect "and redacted in the uri xattr" "http://127.0.0.1:$NGINX_PORT/blobs/q.bin" getfattr --only-values -n user.artifact.uri "$T/mnt/vision/query.bin@$d_query"
ok "clean unmount" umount_af
ok "the secret is in no log or audit line" sh -c "! grep -rq hunter2secret '$T/daemon.log' '$T/audit.jsonl'"
ok "the redacted query is in no audit line" sh -c "! grep -q 'version=3' '$T/audit.jsonl'"
