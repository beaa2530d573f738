#!/usr/bin/env bash
# artifactfs check on what a new user trips over (issue 10): a cache.dir
# that is a regular file is an error; two records claiming one channel
# with the same registered_at are reported whatever the policy says; an
# unknown field in a registration is accepted (forward compatibility) but
# warned about, naming the file and the field.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob a.bin 100
make_blob b.bin 200
make_blob c.bin 300
d_a=$(register a.bin name=m.bin channels='["prod"]' out=a.json)
d_b=$(register b.bin name=m.bin channels='["prod"]' out=b.json)
d_c=$(register c.bin name=n.bin out=c.json)
# An unknown top-level field and an unknown source field.
sed -i 's/"trust_state"/"mystery_field": 1, "trust_state"/' "$T/registry/c.json"
sed -i 's/"source_ref": null,/"source_ref": null, "region_hint": "x",/' "$T/registry/c.json"
out=$("$AF" check -c "$T/artifactfs.conf" 2>&1); rc=$?
expect "warnings alone: exit 0" 0 echo $rc
ok "tie reported with both digests" sh -c "echo '$out' | grep 'm.bin@prod' | grep 'tie' | grep '$d_a' | grep -q '$d_b'"
ok "unknown field named with its file" sh -c "echo '$out' | grep 'c.json' | grep -q 'mystery_field'"
ok "unknown source field named" sh -c "echo '$out' | grep 'c.json' | grep -q 'source.region_hint'"
ok "unknown field is a warning" sh -c "echo '$out' | grep 'mystery_field' | grep -q '^warning'"
ok "the record is still valid" sh -c "echo '$out' | grep -q '^3 registrations, 0 errors'"
ok "--json carries the level" sh -c "'$AF' check --json -c '$T/artifactfs.conf' | grep 'mystery_field' | grep -q '\"level\":\"warning\"'"
# The tie is reported even when no policy is known (every open denied).
sed -i '/^\[policy\]/,/^file/d' "$T/artifactfs.conf"
out=$("$AF" check -c "$T/artifactfs.conf" 2>&1)
ok "tie reported without a policy" sh -c "echo '$out' | grep 'm.bin@prod' | grep -q 'tie'"
# A later record breaks the tie: nothing to report.
register b.bin name=m.bin channels='["prod"]' out=b.json registered_at=2026-03-10T00:00:00Z >/dev/null
out=$("$AF" check -c "$T/artifactfs.conf" 2>&1)
ok "no tie once one record is later" sh -c "! echo '$out' | grep -q 'tie'"
# cache.dir that is a regular file.
rm -rf "$T/cache"; echo x >"$T/cache"
out=$("$AF" check -c "$T/artifactfs.conf" 2>&1); rc=$?
expect "cache.dir a regular file: exit 1" 1 echo $rc
ok "error names cache.dir and the path" sh -c "echo '$out' | grep '^error' | grep 'cache.dir' | grep -q '$T/cache'"
