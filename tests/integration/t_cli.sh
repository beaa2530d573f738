#!/usr/bin/env bash
# The command line (DESIGN §9, §10): bad config → clear error naming key
# and line, non-zero exit; check lists problems; usage errors exit 2;
# options before or after the subcommand; cache and prefetch.
. "$(dirname "$0")/lib.sh"
af_world 1M
make_blob a.bin $((2 * 1024 * 1024 + 5))
d=$(register a.bin)
cp "$T/artifactfs.conf" "$T/bad.conf"
printf '[fetch]\nconnectionz = 4\n' >>"$T/bad.conf"
out=$("$AF" check -c "$T/bad.conf" 2>&1); rc=$?
expect "check with unknown key exits 1" 1 echo $rc
ok "error names the key and the line" sh -c "echo '$out' | grep -q 'bad.conf:2[0-9]: unknown key \"connectionz\"'"
"$AF" mount -f -c "$T/bad.conf" "$T/mnt" >"$T/m.out" 2>&1; rc=$?
expect "mount with bad config exits 1" 1 echo $rc
ok "mount error names the key" grep -q connectionz "$T/m.out"
ok "not mounted after bad config" sh -c "! mountpoint -q '$T/mnt'"
"$AF" mount -c "$T/nonexistent.conf" "$T/mnt" >"$T/m.out" 2>&1; rc=$?
expect "missing config exits 1" 1 echo $rc
ok "missing config named" grep -q nonexistent.conf "$T/m.out"
"$AF" bogus >/dev/null 2>&1; rc=$?
expect "unknown command exits 2" 2 echo $rc
"$AF" mount >/dev/null 2>&1; rc=$?
expect "mount without mountpoint exits 2" 2 echo $rc
ok "--help exits 0" "$AF" --help
ok "mount --help exits 0" "$AF" mount --help
expect "check on a good setup exits 0" 0 sh -c "'$AF' check -c '$T/artifactfs.conf' >/dev/null 2>&1; echo \$?"
echo '{"project":"vision"}' >"$T/registry/bad.json"
out=$("$AF" check -c "$T/artifactfs.conf" 2>&1); rc=$?
expect "check with a bad registration exits 1" 1 echo $rc
ok "check names the bad file" sh -c "echo '$out' | grep -q 'bad.json'"
ok "check --json is JSON lines" sh -c "'$AF' --json check -c '$T/artifactfs.conf' | head -1 | grep -q '^{'"
rm "$T/registry/bad.json"
# prefetch (no daemon), then cache admin, options on either side.
ok "prefetch by digest" "$AF" prefetch -c "$T/artifactfs.conf" "vision/a.bin@$d"
ok "prefetch --json emits verified" sh -c "'$AF' prefetch --json -c '$T/artifactfs.conf' 'vision/a.bin@$d' | grep -q '\"event\":\"verified\"'"
ok "cache ls --json after the subcommand" sh -c "'$AF' cache ls -c '$T/artifactfs.conf' --json | grep -q '\"state\":\"verified\"'"
ok "cache ls --json before the subcommand" sh -c "'$AF' cache -c '$T/artifactfs.conf' --json ls | grep -q '$d'"
ok "cache stats" sh -c "'$AF' cache -c '$T/artifactfs.conf' stats | grep -q 'verified'"
ok "cache verify" "$AF" cache -c "$T/artifactfs.conf" verify
ok "cache verify --quick" "$AF" cache -c "$T/artifactfs.conf" verify --quick "$d"
mount_af || exit 1
before=$(nginx_bytes a.bin)
ok "prefetched blob served" cmp "$T/www/a.bin" "$T/mnt/vision/a.bin@$d"
expect "served without a new download" "$before" nginx_bytes a.bin
ok "clean unmount" umount_af
ok "cache evict by digest" "$AF" cache -c "$T/artifactfs.conf" evict "$d"
ok "evicted blob gone from ls" sh -c "! '$AF' cache -c '$T/artifactfs.conf' ls --json | grep -q '$d'"
expect "evict without a selector exits 2" 2 sh -c "'$AF' cache -c '$T/artifactfs.conf' evict >/dev/null 2>&1; echo \$?"
expect "prefetch of an unregistered ref exits 1" 1 sh -c "'$AF' prefetch -c '$T/artifactfs.conf' 'vision/a.bin@sha256:$(printf '%064d' 0)' >/dev/null 2>&1; echo \$?"
