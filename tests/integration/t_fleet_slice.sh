#!/usr/bin/env bash
# A fleet pulls one copy through an nginx cache tier (DESIGN §11, issue 14
# item 3b): proxy_cache + slice in front of the origin, configured on 8
# daemons as a template mirror ([fetch] mirrors = http://tier/v2/vision/
# blobs/{digest}); each daemon has its own mount, cache and config, and all
# open one cold blob at the same moment. The origin's access log must show
# about one copy, fetched slice by slice; every node verifies and reads the
# right bytes; none of them asked the origin itself.
. "$(dirname "$0")/lib.sh"
N=8
af_world 1M
start_slice_tier || { fail "the nginx slice tier did not start"; exit 1; }
size=$((6 * 1024 * 1024 + 12345))
make_blob w.bin $size
d=$(register w.bin)
want=$(sha256_of "$T/www/w.bin")
mirror_blob w.bin
conf_set "$T/artifactfs.conf" fetch mirrors "http://127.0.0.1:$TIER_PORT/v2/vision/blobs/{digest}"
fleet_up $N || exit 1

fleet_read_all "vision/w.bin@$d"
log "$N nodes, one cold blob of $size bytes through the slice tier: ${FLEET_MS} ms"
expect "all $N nodes read the right bytes" $N fleet_count_sum "$want"
expect "all $N nodes verified the digest" $N fleet_audit_count verify_ok "$d"
origin=$(origin_bytes w.bin)
log "origin sent $origin bytes for a $size-byte blob: $(ratio "$origin" "$size") copies"
ok "origin sent at most 1.05 copies" ratio_ok "$origin" "$size" 1.05
expect "no node asked the origin itself" 0 nginx_requests w.bin
ok "the origin was asked by slices (1 MiB ranges)" \
	grep -q "/v2/vision/blobs/sha256:$want 206 1048576 \"bytes=1048576-2097151\"" "$T/nginx/logs/access.log"
ok "the nodes' requests went to the tier" test "$(grep -c "/v2/vision/blobs/sha256:$want" "$T/tier/logs/access.log")" -ge $N
ok "every node unmounts cleanly" fleet_down
