#!/usr/bin/env bash
# Mirrors through the mount (DESIGN §11, issue 14 items 1 and 4): one
# daemon, [fetch] mirrors in front of the origin nginx.
#
# Phase 1, a plain mirror (faultd on 127.0.0.1 serving its own copies by
# digest): a blob the mirror lacks (404) comes from the source; a corrupt
# copy is caught, audited as fetch_failed naming the mirror, fetched again
# from the source in the same open and not quarantined, and the next open
# does not ask that mirror until its backoff expires; the mirror dies in
# the middle of a blob (the source finishes it, bytes sent <= 1.2x); the
# mirror is down from the start (the source serves).
# Phase 2, template mirrors: one that redirects to another host (followed
# under the redirect rules), one that answers 200 to Range (read once,
# sequentially: DESIGN §5b).
# Phase 3, a site proxy that is down and credentials: the mirrors are
# reached directly (a blob a mirror holds is served; one it lacks fails
# with EIO naming the proxy, never fetched directly from the origin); the
# source's credential never goes to a mirror; a mirror whose URL a
# credential's own scope matches gets that credential (DESIGN §11).
# Phase 4, bad [fetch] mirrors entries: refused at startup, naming the key.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/creds.sh"
af_world 1M
conf_set "$T/artifactfs.conf" fetch retries 2
conf_set "$T/artifactfs.conf" fetch low_speed_timeout 2s
conf_set "$T/artifactfs.conf" fetch failure_backoff 4s
size=$((3 * 1024 * 1024 + 4321))
mkdir -p "$T/mirror/sha256" "$T/mirror3/sha256"
declare -A dig hex
for b in miss bad good1 good2 die down rd seq px pxsrc cr; do
	make_blob "$b.bin" $size
	dig[$b]=$(register "$b.bin")
	hex[$b]=${dig[$b]#sha256:}
done
for b in bad good1 good2 die down; do
	cp "$T/www/$b.bin" "$T/mirror/sha256/${hex[$b]}"
done
# The mirror's copy of bad.bin has one byte wrong.
printf '\x00' | dd of="$T/mirror/sha256/${hex[bad]}" bs=1 seek=1500000 conv=notrunc status=none
cmp -s "$T/www/bad.bin" "$T/mirror/sha256/${hex[bad]}" && printf '\x01' |
	dd of="$T/mirror/sha256/${hex[bad]}" bs=1 seek=1500000 conv=notrunc status=none
cp "$T/www/rd.bin" "$T/mirror3/sha256/${hex[rd]}"
cp "$T/www/px.bin" "$T/mirror3/sha256/${hex[px]}"
cp "$T/www/cr.bin" "$T/mirror/sha256/${hex[cr]}"
mirror_blob seq.bin

MPORT=""
MPID=""
# mirror_up ROOT LOG [FAULTD ARGS]: a faultd mirror; the first one picks a
# port, later ones on the same port ($MPORT) replace it.
mirror_up() {
	local root=$1 logf=$2; shift 2
	rm -f "$T/mirror.port"
	"$FAULTD" --root "$root" --port "${MPORT:-0}" --port-file "$T/mirror.port" \
		--log "$logf" "$@" >>"$T/mirror.out" 2>&1 &
	MPID=$!
	EXTRA_PIDS="$EXTRA_PIDS $MPID"
	for _ in $(seq 1 50); do [ -s "$T/mirror.port" ] && break; sleep 0.1; done
	MPORT=$(cat "$T/mirror.port")
}
mirror_gets() { grep -c "GET /ok/sha256/$1" "$T/mirror.log" 2>/dev/null || true; }
opened() { cmp -s "$T/www/$1.bin" "$T/mnt/vision/$1.bin@${dig[$1]}"; }

mirror_up "$T/mirror" "$T/mirror.log"
# A template with a query: the audit and logs name it redacted (no query).
conf_set "$T/artifactfs.conf" fetch mirrors "http://127.0.0.1:$MPORT/ok/sha256/{hex}?site=q7xtier"
mount_af || exit 1

ok "404 at the mirror: the source serves" opened miss
ok "404 at the mirror: it was asked" grep -q "sha256/${hex[miss]}[? ].*status=404" "$T/mirror.log"
expect "404 at the mirror: one copy from the source" $size nginx_bytes miss.bin

ok "corrupt mirror: the open succeeds with the source's bytes" opened bad
ok "corrupt mirror: audit fetch_failed names the mirror" sh -c \
	"grep '\"event\":\"fetch_failed\"' '$T/audit.jsonl' | grep '${dig[bad]}' | grep 'digest mismatch' | grep -q 'mirror http://127.0.0.1:$MPORT/ok/sha256/{hex}'"
ok "corrupt mirror: the mirror is named redacted (no query) in audit and log" sh -c \
	"! grep -q 'q7xtier' '$T/audit.jsonl' '$T/daemon.log'"
ok "corrupt mirror: not quarantined (no verify_failed)" sh -c \
	"! grep '\"event\":\"verify_failed\"' '$T/audit.jsonl' | grep -q '${dig[bad]}'"
expect "corrupt mirror: the blob is verified" verified \
	getfattr --only-values -n user.artifact.cache_state "$T/mnt/vision/bad.bin@${dig[bad]}"
expect "corrupt mirror: fetched again from the source" $size nginx_bytes bad.bin
blamed=$(date +%s%N)
ok "within its backoff the mirror is not asked" opened good1
expect "within its backoff: no request for it at the mirror" 0 mirror_gets "${hex[good1]}"
expect "within its backoff: the source served" $size nginx_bytes good1.bin
while [ $(( ($(date +%s%N) - blamed) / 1000000 )) -lt 4300 ]; do sleep 0.2; done
ok "after its backoff the mirror serves again" opened good2
expect "after its backoff: nothing from the source" 0 nginx_bytes good2.bin
ok "after its backoff: the mirror was asked" test "$(mirror_gets "${hex[good2]}")" -ge 1

# The mirror dies after 40% of the next blob.
kill -TERM "$MPID"; wait "$MPID" 2>/dev/null
mirror_up "$T/mirror" "$T/mirror.log" --die-after $((size * 2 / 5))
ok "mirror dies mid-blob: the open succeeds" opened die
died=$(sed -n 's/^DIED sent_total=//p' "$T/mirror.log" | tail -n 1)
src=$(nginx_bytes die.bin)
log "mirror dies mid-blob: mirror sent ${died:-?}, source sent $src, blob $size: $(ratio $(( ${died:-0} + src )) $size)x"
ok "mirror dies mid-blob: it did die" test -n "$died"
ok "mirror dies mid-blob: bytes sent <= 1.2x the blob" ratio_ok $(( ${died:-0} + src )) $size 1.2
ok "mirror down from the start: the source serves" opened down
expect "mirror down: one copy from the source" $size nginx_bytes down.bin
ok "no blob was quarantined" sh -c "! grep -q '\"event\":\"verify_failed\"' '$T/audit.jsonl'"
ok "clean unmount" umount_af

# Phase 2: a mirror that redirects to another host, then one that answers
# every Range with 200 and the whole body.
MPORT=""
mirror_up "$T/mirror3" "$T/mirror3.log"
M3PORT=$MPORT
MPORT=""
mirror_up "$T/mirror" "$T/mirror2.log"
conf_set "$T/artifactfs.conf" fetch mirrors \
	"http://127.0.0.1:$MPORT/redirect/{algo}/{hex}?to=127.0.0.1:$M3PORT, http://127.0.0.1:$NGINX_PORT/norange/oci/{digest}"
mount_af || exit 1
ok "redirecting mirror: the open succeeds" opened rd
ok "redirecting mirror: it redirected" grep -q "sha256/${hex[rd]}.* status=302" "$T/mirror2.log"
ok "redirecting mirror: the other host served it" grep -q "GET /ok/sha256/${hex[rd]} .*status=206" "$T/mirror3.log"
ok "redirecting mirror: no credential went to either" sh -c "! grep -q 'auth=1' '$T/mirror2.log' '$T/mirror3.log'"
expect "redirecting mirror: nothing from the source" 0 nginx_bytes rd.bin
ok "200 to Range: the open succeeds" opened seq
n=$(awk -v p="/norange/oci/sha256:${hex[seq]}" '$1 == "GET" && $2 == p { n++ } END { print n + 0 }' "$T/nginx/logs/access.log")
log "200 to Range: $n request(s) for $((size / 1048576 + 1)) chunks"
ok "200 to Range: read sequentially (at most 2 requests, not one per chunk)" test "$n" -le 2
expect "200 to Range: nothing from the source" 0 nginx_bytes seq.bin
ok "daemon alive" kill -0 "$AF_PID"
ok "clean unmount" umount_af

# Phase 3: the proxy is down; a credential for the source (its scope is
# the origin's URL) and one for the second mirror (its scope is that
# mirror's URL; faultd's /bearer/ mode serves only "Bearer <tok=...>" and
# answers 401 otherwise).
SRC_TOK=srctok-4be1c0d9a7
MIR_TOK=mirtok-93f0aa
DEAD=$(free_port)
cred_file source.json https "http://127.0.0.1:$NGINX_PORT/" 600 bearer_token=$SRC_TOK
cred_file mirror.json https "http://127.0.0.1:$MPORT/bearer/" 600 bearer_token=$MIR_TOK
conf_set "$T/artifactfs.conf" credentials dir "$T/creds"
conf_set "$T/artifactfs.conf" fetch proxy "http://127.0.0.1:$DEAD"
conf_set "$T/artifactfs.conf" fetch mirrors \
	"http://127.0.0.1:$M3PORT/ok, http://127.0.0.1:$MPORT/bearer/sha256/{hex}?tok=$MIR_TOK"
mount_af || exit 1
ok "proxy down: a blob the mirror holds is served (the mirror is reached directly)" opened px
ok "proxy down: the mirror served it" grep -q "GET /ok/sha256/${hex[px]} .*status=206" "$T/mirror3.log"
expect "proxy down: nothing from the origin for it" 0 nginx_bytes px.bin
expect "proxy down: a blob no mirror holds is EIO" EIO "$PROBE" open "$T/mnt/vision/pxsrc.bin@${dig[pxsrc]}"
ok "proxy down: the mirrors were asked for it" grep -q "sha256/${hex[pxsrc]} .*status=404" "$T/mirror3.log"
ok "proxy down: audit fetch_failed names the proxy" sh -c \
	"grep '\"event\":\"fetch_failed\"' '$T/audit.jsonl' | grep '${dig[pxsrc]}' | grep -q 'proxy http://127.0.0.1:$DEAD'"
expect "proxy down: nothing went to the origin directly" 0 nginx_requests pxsrc.bin
ok "credentials: the open succeeds from the mirror with its own credential" opened cr
ok "credentials: that mirror got its credential and served" grep -q "GET /bearer/sha256/${hex[cr]}?tok=.* status=206 .*auth=1" "$T/mirror2.log"
ok "credentials: that mirror never answered 401 (a request without it)" sh -c "! grep '${hex[cr]}' '$T/mirror2.log' | grep -q 'status=401'"
ok "credentials: the mirror without a matching scope was asked" grep -q "sha256/${hex[cr]} .*status=404" "$T/mirror3.log"
ok "credentials: no Authorization ever reached it (the source's included)" sh -c "! grep -q 'auth=1' '$T/mirror3.log'"
expect "credentials: nothing from the origin" 0 nginx_bytes cr.bin
ok "daemon alive" kill -0 "$AF_PID"
ok "clean unmount" umount_af
secrets_scan "mirrors and credentials" "$SRC_TOK"

# Phase 4: bad entries are refused at startup, naming the key and line.
refused() {
	cp "$T/artifactfs.conf" "$T/bad.conf"
	conf_set "$T/bad.conf" fetch mirrors "$1"
	! timeout 20 "$AF" mount -f -c "$T/bad.conf" "$T/mnt" >"$T/bad.out" 2>&1 &&
		grep -q "bad.conf:[0-9]*: mirrors: .*$2" "$T/bad.out" &&
		! mountpoint -q "$T/mnt"
}
ok "bad mirror: not http(s)" refused "ftp://127.0.0.1/blobs" "not an http:// or https:// url"
ok "bad mirror: http:// off loopback" refused "http://tier.example.org/blobs" "http:// only for a loopback address"
ok "bad mirror: unknown placeholder" refused "http://127.0.0.1:$MPORT/v2/{sha}" "unknown placeholder {sha}"
