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

# Output a new user expects (issue 12 item 5).
C="-c $T/artifactfs.conf"
last=$("$AF" check $C --json | tail -1)
ok "check --json ends with a summary object when all is well" sh -c "echo '$last' | grep -q '^{\"level\":\"summary\",\"registrations\":1,\"errors\":0,\"warnings\":[0-9]*,\"notes\":[0-9]*,\"ok\":true}\$'"
echo '{"project":"vision"}' >"$T/registry/bad.json"
last=$("$AF" check $C --json | tail -1)
ok "check --json summary counts the error" sh -c "echo '$last' | grep -q '\"level\":\"summary\".*\"errors\":1,.*\"ok\":false'"
rm "$T/registry/bad.json"
"$AF" prefetch $C "vision/a.bin@$d" >/dev/null 2>&1
out=$("$AF" cache $C verify 2>&1); rc=$?
expect "cache verify: exit 0" 0 echo $rc
expect "cache verify: one summary line with the bytes" "verified 1 blob, 2.0 MiB" sh -c "echo '$out' | tail -1"
out=$("$AF" cache $C --json verify --quick | tail -1)
ok "cache verify --json: summary object" sh -c "echo '$out' | grep -q '\"event\":\"summary\",\"action\":\"verify\",\"count\":1,.*\"bytes\":2097157'"
out=$("$AF" cache $C evict "$d" 2>&1); rc=$?
expect "cache evict: exit 0" 0 echo $rc
expect "cache evict: summary line with the bytes" "evicted 1 blob, 2.0 MiB" sh -c "echo '$out' | tail -1"
out=$("$AF" cache $C evict "$d" 2>&1); rc=$?
expect "evicting a digest that is not cached: exit 0" 0 echo $rc
ok "evicting a digest that is not cached says so" sh -c "echo '$out' | grep -q '^not cached $d\$'"
expect "... and the summary counts it" "evicted 0 blobs, 0 B, 1 not cached" sh -c "echo '$out' | tail -1"
orphan_hex=$(printf '%064d' 7)
mkdir -p "$T/cache/blobs/sha256/00"
head -c 8192 /dev/urandom >"$T/cache/blobs/sha256/00/$orphan_hex"
out=$("$AF" cache $C gc 2>&1); rc=$?
expect "cache gc: exit 0" 0 echo $rc
expect "cache gc: summary line" "gc: removed 0 records and 1 orphan data file, 8.0 KiB" sh -c "echo '$out' | tail -1"
ok "cache gc removed the orphan" test ! -e "$T/cache/blobs/sha256/00/$orphan_hex"
out=$("$AF" cache $C gc 2>&1)
expect "cache gc with nothing to do still sums up" "gc: removed 0 records and 0 orphan data files, 0 B" sh -c "echo '$out' | tail -1"
out=$("$AF" mount $C "$T/no-such-dir" 2>&1); rc=$?
expect "missing mount point: exit 1" 1 echo $rc
ok "missing mount point: says it does not exist" sh -c "echo '$out' | grep -q 'mount point $T/no-such-dir does not exist'"
out=$("$AF" prefetch $C "not-a-ref" 2>&1); rc=$?
expect "prefetch with a malformed REF: usage error (exit 2)" 2 echo $rc
ok "... naming the REF" sh -c "echo '$out' | grep -q 'not-a-ref: expected project/name@digest'"
expect "prefetch with a bad digest in the REF: exit 2" 2 sh -c "'$AF' prefetch $C 'vision/a.bin@sha256:12' >/dev/null 2>&1; echo \$?"
expect "prefetch with a bad REF in a list file: exit 2" 2 sh -c "printf 'vision/a.bin@$d\nVision/x@prod\n' >'$T/list'; '$AF' prefetch $C -f '$T/list' >/dev/null 2>&1; echo \$?"
ok "... nothing was fetched" sh -c "! '$AF' cache $C ls --json | grep -q '$d'"
out=$("$AF" prefetch $C "vision/a.bin@staging" 2>&1); rc=$?
expect "prefetch of a channel nobody claims: exit 1" 1 echo $rc
ok "... says no record claims channel staging" sh -c "echo '$out' | grep -q 'vision/a.bin@staging: no record claims channel staging'"
out=$("$AF" prefetch $C "vision/zzz.bin@staging" 2>&1)
ok "a name with no record says not registered" sh -c "echo '$out' | grep -q 'vision/zzz.bin@staging: not registered'"
