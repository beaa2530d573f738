#!/usr/bin/env bash
# A fleet pulls one copy (DESIGN §11, issue 14 items 2, 3a, 4): 8 daemons,
# each with its own mount, cache and config, reach the origin through one
# Debian squid (collapsed_forwarding on, whole objects cached for Range
# requests: docs/FLEET.md) and open one cold blob at the same moment. The
# origin's access log must show about one copy; every node must verify
# and read the right bytes. Then the proxy goes down: an open is a clear
# EIO whose audit reason names the proxy (no silent direct fallback).
. "$(dirname "$0")/lib.sh"
N=8
af_world 1M
start_squid || { fail "squid did not start"; exit 1; }
conf_set "$T/artifactfs.conf" fetch proxy "http://127.0.0.1:$SQUID_PORT"
size=$((6 * 1024 * 1024 + 12345))
make_blob w.bin $size
d=$(register w.bin)
want=$(sha256_of "$T/www/w.bin")
make_blob later.bin 300000
d2=$(register later.bin)
fleet_up $N || exit 1

fleet_read_all "vision/w.bin@$d"
log "$N nodes, one cold blob of $size bytes through squid: ${FLEET_MS} ms"
expect "all $N nodes read the right bytes" $N fleet_count_sum "$want"
expect "all $N nodes verified the digest" $N fleet_audit_count verify_ok "$d"
origin=$(nginx_bytes w.bin)
log "origin sent $origin bytes for a $size-byte blob: $(ratio "$origin" "$size") copies"
ok "origin sent at most 1.05 copies" ratio_ok "$origin" "$size" 1.05
ok "the nodes' requests went through squid" test "$(squid_requests w.bin)" -ge $N
ok "squid collapsed or served hits (not one origin fetch per request)" \
	sh -c "grep -c 'TCP_CF_MISS\|TCP_HIT\|TCP_MEM_HIT' '$T/squid/logs/access.log' | grep -qv '^0$'"

# The proxy is down: EIO, said plainly; nothing goes to the origin directly.
stop_squid
before=$(nginx_requests later.bin)
expect "proxy down: open is EIO" EIO "$PROBE" open "$T/n1/mnt/vision/later.bin@$d2"
ok "proxy down: audit fetch_failed names the proxy" sh -c \
	"grep '\"event\":\"fetch_failed\"' '$T/n1/audit.jsonl' | grep '$d2' | grep -q 'proxy http://127.0.0.1:$SQUID_PORT'"
expect "proxy down: no request went to the origin directly" "$before" nginx_requests later.bin
ok "node 1 still serves what it verified" cmp "$T/www/w.bin" "$T/n1/mnt/vision/w.bin@$d"
ok "every node unmounts cleanly" fleet_down
