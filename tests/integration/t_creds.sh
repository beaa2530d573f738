#!/usr/bin/env bash
# Credentials (DESIGN §5, §5b; issue 7 item 1) on plain nginx with the
# https type: "Authorization: Bearer" when a credential's scope matches and
# nothing otherwise; credentials.dir with the longest scope winning, a
# malformed file named while the others still work, an expired one
# refused; credentials.helper answering, exiting non-zero, printing
# garbage, hanging (killed after helper_timeout); a 10 s helper delaying
# only the blob that needs its answer; 5-second tokens renewed during a
# slow fetch that outlives several of them; check naming the bad files;
# and no secret anywhere.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/creds.sh"
af_world 64K

TOK_DIR=dirtok-7f3a9c1e5b
TOK_OUTER=outer-wrong-2d8e4
TOK_HELPER=helpertok-91be02
ROT=rotsecret

# nginx with authenticated locations.
AP=$(free_port)
mkdir -p "$T/nginx-auth/tmp"
cat >"$T/nginx-auth/nginx.conf" <<EOF
worker_processes 1;
pid $T/nginx-auth/nginx.pid;
error_log $T/nginx-auth/error.log warn;
events { worker_connections 64; }
http {
    map \$http_authorization \$rot_exp {
        "~^Bearer $ROT-(?<e>[0-9]+)-[0-9]+\$" \$e;
        default none;
    }
    log_format auth '\$msec \$uri \$status rot=\$rot_exp auth=\$http_authorization';
    access_log $T/nginx-auth/access.log auth;
    client_body_temp_path $T/nginx-auth/tmp;
    proxy_temp_path $T/nginx-auth/tmp;
    fastcgi_temp_path $T/nginx-auth/tmp;
    uwsgi_temp_path $T/nginx-auth/tmp;
    scgi_temp_path $T/nginx-auth/tmp;
    server {
        listen 127.0.0.1:$AP;
        location /auth/ {
            if (\$http_authorization != "Bearer $TOK_DIR") { return 401; }
            alias $T/www/;
        }
        location /noauth/ {
            if (\$http_authorization) { return 400; }
            alias $T/www/;
        }
        location /h/ {
            if (\$http_authorization != "Bearer $TOK_HELPER") { return 401; }
            alias $T/www/;
        }
        location /rot/ {
            if (\$rot_exp = none) { return 401; }
            limit_rate 48k;
            alias $T/www/;
        }
    }
}
EOF
nginx -c "$T/nginx-auth/nginx.conf" -p "$T/nginx-auth" || { fail "nginx did not start"; exit 1; }
for _ in $(seq 1 50); do [ -s "$T/nginx-auth/nginx.pid" ] && break; sleep 0.1; done
EXTRA_PIDS="$EXTRA_PIDS $(cat "$T/nginx-auth/nginx.pid")"
# Sanitize the access log: tokens are logged there on purpose (to count
# them), so it is not one of the places the secrets scan looks at.
B=http://127.0.0.1:$AP
policy_allow https "$B/"

# The helper: its answer depends on the uri of the request.
cat >"$T/helper.sh" <<EOF
#!/bin/sh
echo \$\$ >>"$T/helper.pids"
req=\$(cat)
uri=\$(printf '%s' "\$req" | sed 's/.*"uri":"\\([^"]*\\)".*/\\1/')
now=\$(date +%s)
exp=\$(date -u -d @\$((now + 600)) +%Y-%m-%dT%H:%M:%SZ)
tok=$TOK_HELPER
case \$uri in
*/rot/*) e=\$((now + 5)); exp=\$(date -u -d @\$e +%Y-%m-%dT%H:%M:%SZ); tok=$ROT-\$e-\$\$ ;;
*/slowcred/*) sleep 10; tok=$TOK_HELPER ;;
*/exit/*) exit 2 ;;
*/garbage/*) echo "here is your token: $TOK_HELPER"; exit 0 ;;
*/hang/*) sleep 60; exit 0 ;;
*/h/*) ;;
*) echo null; exit 0 ;;
esac
printf '{"source_type": "https", "scope": "%s", "expires_at": "%s", "bearer_token": "%s"}\n' "\$uri" "\$exp" "\$tok"
EOF
chmod 0755 "$T/helper.sh"
conf_add credentials "dir = $T/creds"
conf_add credentials "helper = $T/helper.sh"
conf_add credentials "helper_timeout = 12s"
conf_add credentials "max_lifetime = 1h"
sed -i 's/^connections = 4/connections = 2/' "$T/artifactfs.conf"

cred_file outer.json https "$B/auth" 600 bearer_token=$TOK_OUTER
cred_file inner.json https "$B/auth/team/" 600 bearer_token=$TOK_DIR
cred_file expired.json https "$B/auth/old/" -60 bearer_token=$TOK_DIR
printf '{"source_type": "https", "scope": "%s/", "bearer_token": "%s"' "$B" "$TOK_DIR" >"$T/creds/bad.json"

mkdir -p "$T/www/team" "$T/www/old" "$T/www/slowcred"
make_blob team/a.bin 300000
make_blob team/a2.bin 1000
make_blob b.bin 1000
make_blob c.bin 200000
make_blob old/e.bin 1000
make_blob r.bin $((1024 * 1024))
for n in f f2 x g hg; do make_blob $n.bin 5000; done
make_blob slowcred/s.bin 5000
reg() { register "$1" name="$2" uri="$3" out="$2.json"; }
d_a=$(reg team/a.bin a.bin "$B/auth/team/a.bin")
d_a2=$(reg team/a2.bin a2.bin "$B/auth/team/a2.bin")
d_b=$(reg b.bin b.bin "$B/auth/b.bin")
d_c=$(reg c.bin c.bin "$B/noauth/c.bin")
d_e=$(reg old/e.bin e.bin "$B/auth/old/e.bin")
d_f=$(reg f.bin f.bin "$B/h/f.bin")
d_f2=$(reg f2.bin f2.bin "$B/h/f2.bin")
d_s=$(reg slowcred/s.bin s.bin "$B/h/slowcred/s.bin")
d_x=$(reg x.bin x.bin "$B/h/exit/x.bin")
d_g=$(reg g.bin g.bin "$B/h/garbage/g.bin")
d_hg=$(reg hg.bin hg.bin "$B/h/hang/hg.bin")
d_r=$(reg r.bin r.bin "$B/rot/r.bin")

"$AF" check -c "$T/artifactfs.conf" >"$T/check.out" 2>&1
expect "check exits 1 on bad credentials" 1 sh -c "'$AF' check -c '$T/artifactfs.conf' >/dev/null 2>&1; echo \$?"
ok "check names the malformed file" grep -q "creds/bad.json: document: not valid JSON" "$T/check.out"
ok "check names the expired file" grep -q "creds/expired.json: expires_at: expired at" "$T/check.out"

mount_af || exit 1
m=$T/mnt/vision

# The longest scope wins; a malformed file does not stop the others.
ok "longest scope's token: served" cmp "$T/www/team/a.bin" "$m/a.bin@$d_a"
expect "shorter scope's (wrong) token: EIO" EIO "$PROBE" open "$m/b.bin@$d_b"
ok "the server's answer is the reason" sh -c "grep fetch_failed '$T/audit.jsonl' | grep '$d_b' | grep -q 'HTTP 401 Unauthorized'"
ok "malformed file audited as credential_refused, named" sh -c "grep credential_refused '$T/audit.jsonl' | grep -q 'creds/bad.json: document: not valid JSON'"
# No scope matches (the helper answers null): no Authorization at all.
ok "no credential: nothing sent, served" cmp "$T/www/c.bin" "$m/c.bin@$d_c"
expect "no credential: nginx saw no Authorization" 0 sh -c "grep -c ' /noauth/c.bin 400 ' '$T/nginx-auth/access.log'"
# Refused: expired.
expect "expired credential: EIO" EIO "$PROBE" open "$m/e.bin@$d_e"
ok "expired: credential_refused names the file and why" sh -c "grep credential_refused '$T/audit.jsonl' | grep '\"name\":\"e.bin\"' | grep -q 'creds/expired.json: expires_at: expired at'"
ok "expired: nothing was asked without it" sh -c "! grep -q ' /auth/old/e.bin ' '$T/nginx-auth/access.log'"

# The helper, asked only when no file matches.
ok "helper's token: served" cmp "$T/www/f.bin" "$m/f.bin@$d_f"
expect "helper exits non-zero: EIO" EIO "$PROBE" open "$m/x.bin@$d_x"
ok "... credential_refused names the helper and the status" sh -c "grep credential_refused '$T/audit.jsonl' | grep '\"name\":\"x.bin\"' | grep -q 'credentials.helper $T/helper.sh: exited with status 2'"
expect "helper prints garbage: EIO" EIO "$PROBE" open "$m/g.bin@$d_g"
ok "... credential_refused says not JSON" sh -c "grep credential_refused '$T/audit.jsonl' | grep '\"name\":\"g.bin\"' | grep -q 'not valid JSON'"
# A helper that takes 10 s delays only the blob that needs its answer; a
# helper that hangs is killed after helper_timeout (12 s), both at once.
t0=$(date +%s%N)
"$PROBE" open "$m/s.bin@$d_s" >"$T/slow.res" 2>&1 &
slow=$!
"$PROBE" open "$m/hg.bin@$d_hg" >"$T/hang.res" 2>&1 &
hang=$!
sleep 0.3
ok "meanwhile another helper answer: served" cmp "$T/www/f2.bin" "$m/f2.bin@$d_f2"
ok "meanwhile a file credential: served" cmp "$T/www/team/a2.bin" "$m/a2.bin@$d_a2"
dt=$(( ($(date +%s%N) - t0) / 1000000 ))
ok "... both within 5 s while the slow helper runs (${dt} ms)" test "$dt" -lt 5000
ok "the slow one is still waiting" kill -0 $slow
wait $slow
dt=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "the slow one opens once its answer came" ok cat "$T/slow.res"
ok "... bytes equal" cmp "$T/www/slowcred/s.bin" "$m/s.bin@$d_s"
ok "... after the helper's 10 s (${dt} ms)" test "$dt" -ge 9500
wait $hang
dt=$(( ($(date +%s%N) - t0) / 1000000 ))
expect "helper hangs: EIO" EIO cat "$T/hang.res"
ok "... after the timeout, not much later (${dt} ms)" test "$dt" -ge 11500 -a "$dt" -lt 17000
ok "... credential_refused says killed" sh -c "grep credential_refused '$T/audit.jsonl' | grep '\"name\":\"hg.bin\"' | grep -q 'no answer within 12s (killed)'"
ok "... and the helper is gone" sh -c "for p in \$(cat '$T/helper.pids'); do kill -0 \$p 2>/dev/null && exit 1; done; exit 0"

# 5-second tokens, a fetch of ~8 s: renewed before expiry, never failing.
t0=$(date +%s%N)
ok "slow fetch across several 5 s tokens: served" cmp "$T/www/r.bin" "$m/r.bin@$d_r"
dt=$(( ($(date +%s%N) - t0) / 1000000 ))
ok "... it outlived one token (${dt} ms)" test "$dt" -gt 5500
ntok=$(awk '$2 == "/rot/r.bin" && $3 == 206 { print $4 }' "$T/nginx-auth/access.log" | sort -u | wc -l)
ok "... $ntok distinct tokens were used" test "$ntok" -ge 2
# nginx logs when a response ends: a request started before that, so a
# token used for it must outlive the request's start (msec - duration is
# not logged; the token must be valid at least until the log time minus
# the longest response, one chunk at 48 KiB/s, under 2 s).
ok "... each request carried a token still valid" sh -c "awk '\$2 == \"/rot/r.bin\" { if (\$4 !~ /^rot=[0-9]+\$/) exit 1; e = substr(\$4, 5); if (e + 2 < \$1) exit 1 } END { exit 0 }' '$T/nginx-auth/access.log'"
expect "... and none was refused" 0 sh -c "grep -c ' /rot/r.bin 401 ' '$T/nginx-auth/access.log'"

"$AF" prefetch -c "$T/artifactfs.conf" "vision/x.bin@$d_x" >"$T/prefetch.out" 2>&1
secrets_scan "credentials" "$TOK_DIR" "$TOK_OUTER" "$TOK_HELPER" "$ROT"
ok "clean unmount" umount_af
secrets_scan "credentials (after unmount)" "$TOK_DIR" "$TOK_OUTER" "$TOK_HELPER" "$ROT"
