#!/usr/bin/env bash
# The huggingface source type (DESIGN §5b; issue 8 item 1) against nginx
# on two ports of 127.0.0.1 playing the Hub: the resolve host demands the
# bearer token, adds X-Repo-Commit, X-Linked-Size and X-Linked-Etag and
# redirects (302) to the CDN host, which serves Range and answers 400 if
# any Authorization header arrives. A small file is answered by the
# resolve host itself, as the Hub does for files kept in git. Every
# disagreement of those headers with the registration is EIO with the
# reason audited; a branch name as source_ref is a registration error that
# check names and that is never readable. Tokens come from credentials.dir
# (org/repo) and from tools/credential-helper-example.sh asking a stand-in
# node agent (org/private); org/closed has none and gets the Hub's 401.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/creds.sh"
. "$(dirname "$0")/lib_servers.sh"
af_world 1M

TOK=hf_tok3n6f1d2e8a
TOK2=hf_agent7c0ffee42
C=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
C2=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
R=$(free_port)
N=$(free_port)
while [ "$N" = "$R" ]; do N=$(free_port); done
cdn=$T/hf/cdn
mkdir -p "$cdn/org/repo" "$cdn/org/private" "$cdn/org/closed"

make_blob big.bin $((3 * 1024 * 1024 + 4321))
make_blob config.json 2000
for f in big.bin config.json; do cp "$T/www/$f" "$cdn/org/repo/$f"; done
for f in commit.bin size.bin etag.bin long.bin gated.bin helped.bin; do
	make_blob "$f" 50000
	cp "$T/www/$f" "$cdn/org/repo/$f"
done
cp "$T/www/gated.bin" "$cdn/org/closed/gated.bin"
cp "$T/www/helped.bin" "$cdn/org/private/helped.bin"
# The CDN's copy of long.bin is longer than registered (X-Linked-Size agrees
# with the registration: only the response's own length tells).
head -c 10 /dev/urandom >>"$cdn/org/repo/long.bin"
size() { stat -c %s "$T/www/$1"; }
sha() { sha256_of "$T/www/$1"; }
nginx_prepare hf
{
	nginx_head hf
	cat <<EOF
http {
$(nginx_temp hf)
    map \$http_authorization \$has_auth { "" 0; default 1; }
    log_format hf '\$server_port \$request_method \$uri \$status auth=\$has_auth range=\$http_range';
    access_log $T/hf/logs/access.log hf;
    # What the Hub says about each file of org/repo at commit $C.
    map \$hf_file \$hf_commit { default $C; commit.bin $C2; }
    map \$hf_file \$hf_size {
        default "";
        big.bin $(size big.bin); commit.bin $(size commit.bin);
        size.bin $(( $(size size.bin) + 1 )); etag.bin $(size etag.bin);
        long.bin $(size long.bin); gated.bin $(size gated.bin);
        helped.bin $(size helped.bin);
    }
    map \$hf_file \$hf_etag {
        default "";
        big.bin '"$(sha big.bin)"'; commit.bin '"$(sha commit.bin)"';
        size.bin '"$(sha size.bin)"'; etag.bin '"$(sha big.bin)"';
        long.bin '"$(sha long.bin)"'; gated.bin '"$(sha gated.bin)"';
        helped.bin '"$(sha helped.bin)"';
    }
    server {
        listen 127.0.0.1:$R;
        # A file kept in git: answered here, no redirect.
        location ~ ^/org/repo/resolve/$C/(?<hf_file>config\.json)\$ {
            if (\$http_authorization != "Bearer $TOK") {
                add_header X-Error-Code GatedRepo always;
                return 401;
            }
            add_header X-Repo-Commit $C always;
            alias $cdn/org/repo/\$hf_file;
        }
        # A file kept in LFS: its facts, then the CDN.
        location ~ ^/org/(?<hf_repo>repo|closed)/resolve/$C/(?<hf_file>[^/]+)\$ {
            if (\$http_authorization != "Bearer $TOK") {
                add_header X-Error-Code GatedRepo always;
                return 401;
            }
            add_header X-Repo-Commit \$hf_commit always;
            add_header X-Linked-Size \$hf_size always;
            add_header X-Linked-Etag \$hf_etag always;
            return 302 http://127.0.0.1:$N/cdn/org/\$hf_repo/\$hf_file;
        }
        # org/private takes the agent's token.
        location ~ ^/org/private/resolve/$C/(?<hf_file>[^/]+)\$ {
            if (\$http_authorization != "Bearer $TOK2") {
                add_header X-Error-Code GatedRepo always;
                return 401;
            }
            add_header X-Repo-Commit \$hf_commit always;
            add_header X-Linked-Size \$hf_size always;
            add_header X-Linked-Etag \$hf_etag always;
            return 302 http://127.0.0.1:$N/cdn/org/private/\$hf_file;
        }
        location / {
            add_header X-Error-Code RevisionNotFound always;
            return 404;
        }
    }
    server {
        listen 127.0.0.1:$N;
        location /cdn/ {
            if (\$http_authorization) { return 400; }
            alias $cdn/;
        }
    }
}
EOF
} >"$T/hf/nginx.conf"
nginx_extra hf || { fail "nginx for the hub did not start"; exit 1; }

conf_add huggingface "endpoint = http://127.0.0.1:$R"
conf_add credentials "dir = $T/creds"
policy_allow huggingface "hf://org/"
cred_file hf.json huggingface "hf://org/repo/" 600 bearer_token=$TOK
# The helper protocol: the example helper asks the agent, which grants
# org/private only.
cat >"$T/grants.json" <<EOF
[{"source_type": "huggingface", "scope": "hf://org/private/", "bearer_token": "$TOK2", "ttl": 600}]
EOF
python3 "$(dirname "$0")/../tools/agent.py" "$T/grants.json" "$T/agent.port" "$T/agent.log" \
	>"$T/agent.out" 2>&1 &
EXTRA_PIDS="$EXTRA_PIDS $!"
for _ in $(seq 1 50); do [ -s "$T/agent.port" ] && break; sleep 0.1; done
export ARTIFACTFS_AGENT_URL="http://127.0.0.1:$(cat "$T/agent.port")/v1/credentials"
conf_add credentials "helper = $(cd "$(dirname "$0")/../.." && pwd)/tools/credential-helper-example.sh"

# register_hf FILE REF [key=value…]: a huggingface registration.
register_hf() {
	local f=$1 ref=$2 out
	shift 2
	out=$(register "$f" source_type=huggingface uri="hf://org/repo/$f" "$@")
	sed -i "s|\"source_ref\": null|\"source_ref\": \"$ref\"|" \
		"$T/registry/vision-$f-${out#sha256:}.json"
	echo "$out"
}
d_big=$(register_hf big.bin "$C")
d_cfg=$(register_hf config.json "$C")
d_commit=$(register_hf commit.bin "$C")
d_size=$(register_hf size.bin "$C")
d_etag=$(register_hf etag.bin "$C")
d_long=$(register_hf long.bin "$C")
d_gated=$(register "gated.bin" source_type=huggingface uri="hf://org/closed/gated.bin")
d_helped=$(register "helped.bin" source_type=huggingface uri="hf://org/private/helped.bin")
sed -i "s|\"source_ref\": null|\"source_ref\": \"$C\"|" "$T/registry/vision-helped.bin-${d_helped#sha256:}.json"
sed -i "s|\"source_ref\": null|\"source_ref\": \"$C\"|" "$T/registry/vision-gated.bin-${d_gated#sha256:}.json"
# Not pinned: a branch, a tag, 39 and 41 hex, uppercase hex.
upper=$(echo "$C" | tr a-f A-F)
i=0
for ref in main v1.0 "${C:0:39}" "${C}0" "$upper"; do
	i=$((i + 1))
	make_blob "ref$i.bin" 100
	register_hf "ref$i.bin" "$ref" >/dev/null
done

"$AF" check -c "$T/artifactfs.conf" >"$T/check.out" 2>&1
rc=$?
ok "check fails on unpinned revisions (exit 1)" test "$rc" -eq 1
for i in 1 2 3 4 5; do
	ok "check names ref$i.bin's source_ref" sh -c "grep 'ref$i.bin' '$T/check.out' | grep -q 'source.source_ref'"
done
ok "check names the branch" grep -q '"main" is not a commit sha' "$T/check.out"

mount_af || exit 1
m=$T/mnt/vision
ok "LFS file through the CDN: bytes equal" cmp "$T/www/big.bin" "$m/big.bin@$d_big"
log=$T/hf/logs/access.log
ok "the resolve host got the token" grep -q "^$R GET /org/repo/resolve/$C/big.bin 302 auth=1" "$log"
ok "the CDN was read in ranges" sh -c "test \$(grep -c '^$N GET /cdn/org/repo/big.bin 206 auth=0 range=bytes=' '$log') -ge 4"
ok "the CDN never saw Authorization" sh -c "! grep -q '^$N .* auth=1' '$log'"
ok "the CDN never had to refuse" sh -c "! grep -q '^$N .* 400 ' '$log'"
ok "file kept in git, answered by the resolve host: bytes equal" cmp "$T/www/config.json" "$m/config.json@$d_cfg"
expect "another commit in X-Repo-Commit: EIO" EIO "$PROBE" open "$m/commit.bin@$d_commit"
ok "... the reason names both revisions" reason_has "$d_commit" "X-Repo-Commit $C2 is not the registered revision $C"
expect "X-Linked-Size off by one: EIO" EIO "$PROBE" open "$m/size.bin@$d_size"
ok "... the reason says so" reason_has "$d_size" "X-Linked-Size $(( $(size size.bin) + 1 )) differs from size_bytes $(size size.bin)"
expect "X-Linked-Etag of another file: EIO" EIO "$PROBE" open "$m/etag.bin@$d_etag"
ok "... the reason says so" reason_has "$d_etag" "X-Linked-Etag names sha256:$(sha big.bin), not the registered digest"
expect "the CDN's copy is longer: EIO" EIO "$PROBE" open "$m/long.bin@$d_long"
ok "... the reason says so" reason_has "$d_long" "differs from size_bytes $(size long.bin)"
ok "these failures were audited fetch_failed" sh -c "test \$(grep '\"event\":\"fetch_failed\"' '$T/audit.jsonl' | grep -c -e '$d_commit' -e '$d_size' -e '$d_etag' -e '$d_long') -ge 4"
expect "no credential for that repository: EIO" EIO "$PROBE" open "$m/gated.bin@$d_gated"
ok "... the Hub's error code in the reason" reason_has "$d_gated" "HTTP 401 Unauthorized (GatedRepo)"
ok "... the helper was asked, and the agent had nothing" grep -q "^huggingface hf://org/closed/gated.bin null" "$T/agent.log"
ok "token from the example helper and the agent: bytes equal" cmp "$T/www/helped.bin" "$m/helped.bin@$d_helped"
ok "... the agent granted org/private" grep -q "^huggingface hf://org/private/helped.bin hf://org/private/" "$T/agent.log"
ok "... the resolve host got that token" grep -q "^$R GET /org/private/resolve/$C/helped.bin 302 auth=1" "$log"
ok "... a file in credentials.dir wins: the helper was never asked for org/repo" sh -c "! grep -q 'hf://org/repo/' '$T/agent.log'"
ok "unpinned revisions are not listed" sh -c "! ls '$m' | grep -q '^ref'"
ok "clean unmount" umount_af
secrets_scan "huggingface" "$TOK" "$TOK2"
