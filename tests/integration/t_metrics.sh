#!/usr/bin/env bash
# Prometheus metrics (DESIGN §13, issue 12 item 2): [metrics] listen serves
# /metrics; promtool check metrics accepts it (promtool extracted from
# Debian's prometheus package into a cache folder, mk/promtool.sh); the
# counters move by the right amounts as the test drives opens, denials,
# unregistered names, O_NONBLOCK, fetches that verify, fail verification
# or fail at the source, and evictions; the gauges follow the cache; a
# scrape answers while opens are blocked on a slow fetch; a bare port
# listens on loopback only, another address only when given; a busy port
# fails the mount command.
. "$(dirname "$0")/lib.sh"
af_world 64K
SRC=$(cd "$(dirname "$0")/../.." && pwd)

PORT=$(free_port)
cat >>"$T/artifactfs.conf" <<EOF

[metrics]
listen = $PORT
EOF
# max_size: three 200 KiB blobs fit, a fourth evicts the least recently used.
sed -i "s|^chunk_size = 64K|chunk_size = 64K\nmax_size = 700K|" "$T/artifactfs.conf"

for b in a b c d; do make_blob $b.bin $((200 * 1024)); done
da=$(register a.bin); db=$(register b.bin); dc=$(register c.bin); dd=$(register d.bin)
make_blob bad.bin 70000
dbad="sha256:$(printf '%064d' 1)"
register bad.bin digest="$dbad" >/dev/null
make_blob gone.bin 1000
dgone=$(register gone.bin uri="http://127.0.0.1:$NGINX_PORT/blobs/no-such-file")
make_blob deny.bin 1000
ddeny=$(register deny.bin uri="http://127.0.0.1:$NGINX_PORT/elsewhere/deny.bin")
# A fetch that keeps its opens waiting: the first range stalls 3 s.
start_faultd
write_policy ",{\"source_type\": \"https\", \"uri_prefix\": \"http://127.0.0.1:$FAULTD_PORT/\"}"
make_blob slow.bin $((256 * 1024))
dslow=$(register slow.bin uri="http://127.0.0.1:$FAULTD_PORT/stall/slow.bin?s=3&n=3")
make_blob nb.bin 5000
dnb=$(register nb.bin)

mount_af || exit 1
M=$T/mnt/vision
URL="http://127.0.0.1:$PORT/metrics"

scrape() { curl -s --max-time 5 "$URL" >"$T/m.txt"; }
# val 'NAME{labels}': the sample's value in the last scrape ("" if absent).
val() { awk -v k="$1" '$1 == k { print $2 }' "$T/m.txt"; }
# eventually WHAT 'SERIES' WANT: scrape until the series equals WANT (5 s).
eventually() {
	local what=$1 key=$2 want=$3 got=""
	CHECKS=$((CHECKS + 1))
	for _ in $(seq 1 50); do
		scrape; got=$(val "$key")
		[ "$got" = "$want" ] && { printf '  ok: %s\n' "$what"; return 0; }
		sleep 0.1
	done
	fail "$what: $key = '$got', want '$want'"
}

scrape
ok "GET /metrics answers" test -s "$T/m.txt"
ok "content type is the text format 0.0.4" sh -c "curl -s -D - -o /dev/null '$URL' | grep -qi '^content-type: text/plain; version=0.0.4'"
for fam in artifactfs_opens_total artifactfs_fetch_bytes_total artifactfs_fetches_total \
	artifactfs_verify_failures_total artifactfs_cache_bytes artifactfs_cache_max_bytes \
	artifactfs_cache_blobs artifactfs_evictions_total artifactfs_fetch_seconds \
	artifactfs_registry_last_success_timestamp_seconds; do
	ok "$fam has HELP and TYPE" sh -c "grep -q '^# HELP $fam ' '$T/m.txt' && grep -q '^# TYPE $fam ' '$T/m.txt'"
done
expect "all counters start at 0" 0 sh -c "grep -E '^artifactfs_(opens|fetches|fetch_bytes|evictions|verify_failures)_total' '$T/m.txt' | awk '{ s += \$2 } END { print s }'"
expect "cache_max_bytes is cache.max_size" $((700 * 1024)) val artifactfs_cache_max_bytes
now=$(date +%s)
ok "registry_last_success_timestamp_seconds is recent" sh -c "t=\$(awk '\$1 == \"artifactfs_registry_last_success_timestamp_seconds\" { print \$2 }' '$T/m.txt'); [ \$t -gt $((now - 60)) ] && [ \$t -le $((now + 1)) ]"
ok "registry_artifacts counts the registrations" test "$(val artifactfs_registry_artifacts)" = 9
if PROMTOOL=$(sh "$SRC/mk/promtool.sh" 2>"$T/promtool.err"); then
	ok "promtool check metrics accepts the output" sh -c "'$PROMTOOL' check metrics <'$T/m.txt' >'$T/promtool.out' 2>&1"
else
	echo "  SKIP: promtool check metrics: $(cat "$T/promtool.err")"
fi

# Opens: ok, denied, enoent, eagain, eio (verification and source failures).
ok "open a.bin" cmp "$T/www/a.bin" "$M/a.bin@$da"
ok "open b.bin" cmp "$T/www/b.bin" "$M/b.bin@$db"
eventually "opens{ok} = 2" 'artifactfs_opens_total{result="ok"}' 2
eventually "fetches{ok} = 2" 'artifactfs_fetches_total{result="ok"}' 2
expect "fetch_bytes{https} = the bytes of both blobs" $((2 * 200 * 1024)) val 'artifactfs_fetch_bytes_total{source_type="https"}'
expect "fetch_bytes{s3} stays 0" 0 val 'artifactfs_fetch_bytes_total{source_type="s3"}'
expect "fetch_seconds_count = fetches" 2 val artifactfs_fetch_seconds_count
expect "fetch_seconds +Inf bucket = count" 2 val 'artifactfs_fetch_seconds_bucket{le="+Inf"}'
eventually "cache_blobs{verified} = 2 (sampled)" 'artifactfs_cache_blobs{state="verified"}' 2
eventually "cache_bytes = both blobs" artifactfs_cache_bytes $((2 * 200 * 1024))
expect "reading a verified blob again: no new fetch" "ok" sh -c "cmp -s '$T/www/a.bin' '$M/a.bin@$da' && echo ok"
eventually "opens{ok} = 3" 'artifactfs_opens_total{result="ok"}' 3
expect "... fetches{ok} still 2" 2 val 'artifactfs_fetches_total{result="ok"}'

expect "open of a blob policy denies: EACCES" EACCES "$PROBE" open "$M/deny.bin@$ddeny"
eventually "opens{denied} = 1" 'artifactfs_opens_total{result="denied"}' 1
expect "open of an unregistered name: ENOENT" ENOENT "$PROBE" open "$M/a.bin@sha256:$(printf '%064d' 9)"
eventually "opens{enoent} = 1" 'artifactfs_opens_total{result="enoent"}' 1
expect "O_NONBLOCK open of a cold blob: EAGAIN" EAGAIN "$PROBE" open-nonblock "$M/nb.bin@$dnb"
eventually "opens{eagain} = 1" 'artifactfs_opens_total{result="eagain"}' 1
eventually "the background fetch counts as a fetch" 'artifactfs_fetches_total{result="ok"}' 3

expect "open of a blob whose bytes do not match: EIO" EIO "$PROBE" open "$M/bad.bin@$dbad"
eventually "fetches{verify_failed} = 1" 'artifactfs_fetches_total{result="verify_failed"}' 1
expect "verify_failures = 1" 1 val artifactfs_verify_failures_total
eventually "cache_blobs{quarantined} = 1" 'artifactfs_cache_blobs{state="quarantined"}' 1
expect "open of a blob the source does not have: EIO" EIO "$PROBE" open "$M/gone.bin@$dgone"
eventually "fetches{source_failed} = 1" 'artifactfs_fetches_total{result="source_failed"}' 1
eventually "opens{eio} = 2" 'artifactfs_opens_total{result="eio"}' 2
expect "... verify_failures still 1" 1 val artifactfs_verify_failures_total

# Evictions: c and d make 4 x 200 KiB > 700K: LRU evicts.
expect "evictions = 0 so far" 0 val artifactfs_evictions_total
ok "open c.bin" cmp "$T/www/c.bin" "$M/c.bin@$dc"
ok "open d.bin (cache over max_size: LRU evicts)" cmp "$T/www/d.bin" "$M/d.bin@$dd"
scrape
ev=$(val artifactfs_evictions_total)
ok "evictions moved (evicted $ev)" test "${ev:-0}" -ge 1
ok "the audit log has as many evict events" test "$(audit_count evict)" = "$ev"
eventually "cache_bytes back under max_size" artifactfs_cache_bytes $(( (4 - ev) * 200 * 1024 + 5000 ))

# A scrape never waits on what an open waits on: readers blocked on a
# stalled fetch, scrapes answer at once meanwhile.
readers=""
for i in 1 2 3; do
	"$PROBE" read "$M/slow.bin@$dslow" "$T/slow.$i" >/dev/null 2>&1 &
	readers="$readers $!"
done
EXTRA_PIDS="$EXTRA_PIDS $readers"
sleep 0.5
slowest=0
for i in $(seq 1 20); do
	t0=$(date +%s%N); scrape; t1=$(date +%s%N)
	ms=$(( (t1 - t0) / 1000000 )); [ $ms -gt $slowest ] && slowest=$ms
done
ok "20 scrapes while 3 opens wait on a fetch: slowest ${slowest} ms (< 1000)" test $slowest -lt 1000
ok "... and the opens were still waiting" sh -c "! cmp -s '$T/www/slow.bin' '$T/slow.1'"
for p in $readers; do wait "$p"; done
ok "the blocked opens complete" cmp "$T/www/slow.bin" "$T/slow.1"
if [ -n "${PROMTOOL:-}" ]; then
	scrape
	ok "promtool check metrics after all of it" sh -c "'$PROMTOOL' check metrics <'$T/m.txt' >'$T/promtool.out' 2>&1"
	[ -s "$T/promtool.out" ] && sed 's/^/    /' "$T/promtool.out"
fi
ok "other paths: 404" sh -c "curl -s -o /dev/null -w '%{http_code}' 'http://127.0.0.1:$PORT/' | grep -qx 404"
ok "other methods: 405" sh -c "curl -s -X POST -o /dev/null -w '%{http_code}' '$URL' | grep -qx 405"

# A bare port listens on loopback only, never on every interface.
ok "listen = PORT binds 127.0.0.1 only" sh -c "ss -Htln 'sport = :$PORT' | awk '{ print \$4 }' | grep -qx '127.0.0.1:$PORT'"
ok "umount" umount_af

# Another address only when given: 0.0.0.0 explicitly (nothing is sent
# off this host: the test connects over loopback).
PORT2=$(free_port)
sed -i "s|^listen = .*|listen = 0.0.0.0:$PORT2|" "$T/artifactfs.conf"
mount_af || exit 1
ok "listen = 0.0.0.0:PORT binds every interface, as asked" sh -c "ss -Htln 'sport = :$PORT2' | awk '{ print \$4 }' | grep -qx '0.0.0.0:$PORT2'"
ok "... and serves" sh -c "curl -s 'http://127.0.0.1:$PORT2/metrics' | grep -q '^artifactfs_opens_total'"
# The same port again: the second mount command fails, names the address,
# mounts nothing.
mkdir -p "$T/mnt2"
"$AF" mount -c "$T/artifactfs.conf" "$T/mnt2" >"$T/busy.out" 2>&1
expect "a busy metrics port fails the mount command" 1 echo $?
ok "... naming the address" grep -q "listen 0.0.0.0:$PORT2: Address already in use" "$T/busy.out"
ok "... and nothing is mounted there" sh -c "! mountpoint -q '$T/mnt2'"
ok "umount" umount_af
sed -i "s|^listen = .*|listen = :$PORT2|" "$T/artifactfs.conf"
"$AF" mount -c "$T/artifactfs.conf" "$T/mnt2" >"$T/bad.out" 2>&1
expect "listen = :PORT (no address) is refused" 1 echo $?
ok "... saying to give the address" grep -q 'give the address to listen on' "$T/bad.out"
