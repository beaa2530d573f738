#!/usr/bin/env bash
# Dot segments never pass the allowlist (DESIGN §2, issue 10 item 1): a rule
# for /blobs/ must not let "/blobs/../private/x" (or its %2e%2e form) fetch
# from /private/. Such a URI is not a valid registration: not listed,
# ENOENT, nothing fetched, and check names it.
. "$(dirname "$0")/lib.sh"
af_world 1M
cat >"$T/policy.json" <<EOF
{
  "digest_algorithms": ["sha256"],
  "readable_lifecycle_states": ["active"],
  "min_trust_state": "verified",
  "sources": [{"source_type": "https", "uri_prefix": "http://127.0.0.1:$NGINX_PORT/blobs/"}]
}
EOF
make_blob ok.bin 5000
make_blob secret.bin 5000
d_ok=$(register ok.bin)
base="http://127.0.0.1:$NGINX_PORT/blobs"
d_dots=$(register secret.bin name=dots.bin uri="$base/../slow/secret.bin")
d_enc=$(register secret.bin name=enc.bin uri="$base/%2e%2e/slow/secret.bin")
d_mixed=$(register secret.bin name=mixed.bin uri="$base/.%2E/slow/secret.bin")
d_dot=$(register secret.bin name=dot.bin uri="$base/./secret.bin")
d_bs=$(register secret.bin name=bs.bin uri="$base/..\\\\slow\\\\secret.bin")
"$AF" check -c "$T/artifactfs.conf" >"$T/check.out" 2>&1; rc=$?
expect "check exits 1" 1 echo $rc
for n in dots enc mixed dot; do
	ok "check names $n.bin's dot segment" sh -c "grep '$n.bin' '$T/check.out' | grep -q 'dot segment'"
done
ok "check names the backslash" sh -c "grep 'bs.bin' '$T/check.out' | grep -q 'backslash'"
mount_af || exit 1
m=$T/mnt/vision
ok "a good record is served" cmp "$T/www/ok.bin" "$m/ok.bin@$d_ok"
for c in "dots:$d_dots" "enc:$d_enc" "mixed:$d_mixed" "dot:$d_dot" "bs:$d_bs"; do
	n=${c%%:*}; d=${c#*:}
	ok "$n.bin not listed" sh -c "! ls '$m' | grep -q '^$n.bin@'"
	expect "$n.bin: ENOENT" ENOENT "$PROBE" open "$m/$n.bin@$d"
done
expect "nothing fetched outside /blobs/" 0 sh -c "grep -c 'secret.bin' '$T/nginx/logs/access.log' || true"
ok "clean unmount" umount_af
