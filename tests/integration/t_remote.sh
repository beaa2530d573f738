#!/usr/bin/env bash
# The control plane's API (DESIGN §3, issue 9 items 1, 4, 8): registrations
# and policy from registry.url (with a path prefix) with the bearer token
# from registry.token_file, conditional polling, the same gates as from
# files with their audit reasons, project gids from /v1/policy enforced by
# the kernel for real users, duplicates, a policy that fails closed, and
# a token refused or replaced.
. "$(dirname "$0")/lib.sh"
cp_world 1s
for n in good dep rev untr other s512 team; do make_blob "$n.bin" 4096; done
d_good=$(register good.bin)
d_dep=$(register dep.bin lifecycle=deprecated)
d_rev=$(register rev.bin lifecycle=revoked)
d_untr=$(register untr.bin trust=untrusted)
d_other=$(register other.bin uri="http://127.0.0.1:$NGINX_PORT/elsewhere/other.bin")
d_s512="sha512:$(sha512sum "$T/www/s512.bin" | cut -d' ' -f1)"
register s512.bin digest="$d_s512" >/dev/null
d_team=$(register team.bin project=team-a)
# A source allowed for one project only: denied for another (DESIGN §4).
d_proj=$(register good.bin project=other-proj name=scoped.bin)
# Not a blob: not a valid registration, not listed.
register good.bin name=notblob.bin out=notblob.json >/dev/null
sed -i 's/"artifact_kind": "blob"/"artifact_kind": "container"/' "$T/registry/notblob.json"
# The same name@digest twice: the later registered_at wins.
register good.bin name=twice.bin channels='["old"]' registered_at=2026-03-01T00:00:00Z out=twice-a.json >/dev/null
d_twice=$(register good.bin name=twice.bin channels='["new"]' registered_at=2026-03-05T00:00:00Z out=twice-b.json)
gid=$((40000 + RANDOM % 20000))
cat >"$T/policy.json" <<EOF
{
  "digest_algorithms": ["sha256"],
  "readable_lifecycle_states": ["active", "deprecated"],
  "min_trust_state": "verified",
  "sources": [
    {"source_type": "https", "uri_prefix": "http://127.0.0.1:$NGINX_PORT/blobs/", "projects": ["vision", "team-a"]}
  ],
  "projects": {"team-a": {"gid": $gid}}
}
EOF
cp_publish
mount_af || exit 1
m=$T/mnt/vision

# Item 1: listing from /v1/projects and /v1/projects/{p}/blobs, with the token.
expect "projects from /v1/projects" "other-proj team-a vision" sh -c "ls '$T/mnt' | tr '\n' ' ' | sed 's/ \$//'"
ok "good artifact listed" sh -c "ls '$m' | grep -qx 'good.bin@$d_good'"
ok "good artifact reads (fetched, verified)" cmp "$T/www/good.bin" "$m/good.bin@$d_good"
ok "every request carried the token" test "$(cpd_count 'auth=no')" -eq 0
ok "the path prefix of registry.url is kept" test "$(cpd_count '^GET /api/v1/projects/vision/blobs ')" -ge 1
ok "the policy came from /v1/policy" test "$(cpd_count '^GET /api/v1/policy ')" -ge 1
ok "audit registry_loaded" audit_has registry_loaded
ok "audit policy_loaded" audit_has policy_loaded "control plane"

# Item 2 (cost): an unchanged control plane answers 304 to conditional requests.
sleep 2.5
ok "conditional requests (If-None-Match) answered 304" test "$(cpd_count ' 304 auth=yes inm=yes')" -ge 3
ok "an unchanged poll fetches no listing body" sh -c "tail -3 '$T/cpd.log' | grep -vq ' 200 '"

# Item 4: the same gates as from files, each with an audit open_denied reason.
expect "source outside the allowlist for that project: EACCES" EACCES "$PROBE" open "$m/other.bin@$d_other"
ok "  audited with the reason" audit_has open_denied "not allowlisted"
expect "source allowed for other projects only: EACCES" EACCES "$PROBE" open "$T/mnt/other-proj/scoped.bin@$d_proj"
expect "lifecycle revoked: EACCES" EACCES "$PROBE" open "$m/rev.bin@$d_rev"
ok "  audited with the reason" sh -c "grep '\"event\":\"open_denied\"' '$T/audit.jsonl' | grep '$d_rev' | grep -q lifecycle"
expect "trust below the minimum: EACCES" EACCES "$PROBE" open "$m/untr.bin@$d_untr"
ok "  audited with the reason" sh -c "grep '\"event\":\"open_denied\"' '$T/audit.jsonl' | grep '$d_untr' | grep -q trust"
expect "algorithm outside digest_algorithms: EACCES" EACCES "$PROBE" open "$m/s512.bin@$d_s512"
ok "  audited with the reason" sh -c "grep '\"event\":\"open_denied\"' '$T/audit.jsonl' | grep '$d_s512' | grep -q sha512"
ok "artifact_kind not blob: not listed" sh -c "! ls '$m' | grep -q '^notblob.bin@'"
expect "artifact_kind not blob: ENOENT" ENOENT "$PROBE" open "$m/notblob.bin@$d_good"
ok "  reported in the log, naming the record" grep -q "artifact_kind" "$T/daemon.log"
ok "deprecated opens" cmp "$T/www/dep.bin" "$m/dep.bin@$d_dep"
ok "  with an audit warning" audit_wait sh -c "grep '\"event\":\"open\"' '$T/audit.jsonl' | grep '$d_dep' | grep -q '\"warning\":\"deprecated\"'"
ok "nothing fetched for what was denied" test "$(nginx_requests untr.bin)" -eq 0

# Duplicates: the later registered_at wins; check reports it.
expect "duplicate name@digest: the later registered_at wins" "twice.bin@$d_twice" readlink "$m/twice.bin@new"
expect "  the earlier one's channel is gone" ENOENT "$PROBE" open "$m/twice.bin@old"
"$AF" check -c "$T/artifactfs.conf" >"$T/check.out" 2>&1
ok "check reads registry.url and reports the duplicate" grep -q "duplicate.*twice.bin" "$T/check.out"

# Project gids from /v1/policy: 0440 root:gid, enforced by the kernel.
expect "gid project dir" "550 0 $gid" stat -c '%a %u %g' "$T/mnt/team-a"
expect "gid project file" "440 0 $gid" stat -c '%a %u %g' "$T/mnt/team-a/team.bin@$d_team"
u_in=$(af_user afin) && u_out=$(af_user afout) || fail "useradd"
uid_in=$(id -u "$u_in")
uid_out=$(id -u "$u_out")
ok "a user in the group reads" setpriv --reuid="$uid_in" --regid="$gid" --clear-groups \
	cmp "$T/www/team.bin" "$T/mnt/team-a/team.bin@$d_team"
ok "a user outside the group cannot list the project" sh -c \
	"! setpriv --reuid=$uid_out --regid=$(id -g "$u_out") --clear-groups ls '$T/mnt/team-a' >/dev/null 2>&1"
ok "a user outside the group cannot read" sh -c \
	"! setpriv --reuid=$uid_out --regid=$(id -g "$u_out") --clear-groups cat '$T/mnt/team-a/team.bin@$d_team' >/dev/null 2>&1"
ok "  the open carried the requester's uid in the audit" audit_wait sh -c \
	"grep '\"event\":\"open\"' '$T/audit.jsonl' | grep '$d_team' | grep -q '\"uid\":$uid_in,\"gid\":$gid,\"pid\":'"

# A policy document with an unknown field fails closed, loudly, until a
# valid one arrives.
good_policy=$(cat "$T/policy.json")
sed -i 's/"min_trust_state"/"min_trust_stat"/' "$T/policy.json"
cp_publish
sleep 2.5
expect "invalid policy: everything denied" EACCES "$PROBE" open "$m/good.bin@$d_good"
ok "  said loudly" grep -q "every open is denied until a valid policy arrives" "$T/daemon.log"
ok "  the registrations stay listed" sh -c "ls '$m' | grep -q '^good.bin@'"
echo "$good_policy" >"$T/policy.json"
cp_publish
sleep 2.5
ok "valid policy again: readable" cmp "$T/www/good.bin" "$m/good.bin@$d_good"

# Item 1: a refused token still serves what the node has, loudly, and the
# token is re-read when its file is replaced by rename.
echo "tok-rotated-$RANDOM" >"$T/cp-token"
sleep 2.5
ok "refused token: logged loudly" grep -q "401 Unauthorized: the control plane refused the token" "$T/daemon.log"
ok "  and the node still serves what it kept" cmp "$T/www/good.bin" "$m/good.bin@$d_good"
ok "  and still lists" sh -c "ls '$m' | grep -q '^dep.bin@'"
cp "$T/cp-token" "$T/token.new" && mv "$T/token.new" "$T/token"
n401=$(cpd_count ' 401 ')
sleep 2.5
ok "token replaced by rename: re-read" grep -q "token file .* changed: re-read" "$T/daemon.log"
ok "  accepted again (no new 401)" test "$(cpd_count ' 401 ')" -eq "$n401"
ok "  answers again, said" grep -q "answers again" "$T/daemon.log"
ok "the token never appears in the log" sh -c "! grep -q '$(cat "$T/token")' '$T/daemon.log' '$T/audit.jsonl'"

umount_af
ok "clean unmount" test $? -eq 0

# A wrong token at startup: the node still mounts and serves what it kept.
echo "tok-wrong" >"$T/token"
mount_af || exit 1
ok "wrong token at mount: mounted, serving what was kept" cmp "$T/www/good.bin" "$m/good.bin@$d_good"
ok "  refusal logged" sh -c "grep -c 'refused the token' '$T/daemon.log' | grep -qv '^0$'"
umount_af

# registry.url with a query string or userinfo: refused at startup.
cp "$T/artifactfs.conf" "$T/bad.conf"
sed -i "s|^url = .*|url = http://127.0.0.1:$CPD_PORT/api?x=1|" "$T/bad.conf"
ok "registry.url with a query string: refused" sh -c "! '$AF' mount -f -c '$T/bad.conf' '$T/mnt' >'$T/bad.out' 2>&1"
ok "  naming the key" grep -q "url: a query string" "$T/bad.out"
sed -i "s|^url = .*|url = http://user:pw@127.0.0.1:$CPD_PORT/api|" "$T/bad.conf"
ok "registry.url with userinfo: refused" sh -c "! '$AF' mount -f -c '$T/bad.conf' '$T/mnt' >'$T/bad.out' 2>&1"
ok "  naming the problem, not the secret" sh -c "grep -q userinfo '$T/bad.out' && ! grep -q pw@ '$T/bad.out'"
sed -i "s|^url = .*|url = http://10.1.2.3/api|" "$T/bad.conf"
ok "registry.url over cleartext to a non-loopback host: refused" sh -c "! '$AF' check -c '$T/bad.conf' >'$T/bad.out' 2>&1"
ok "nothing stayed mounted" sh -c "! mountpoint -q '$T/mnt'"
