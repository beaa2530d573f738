#!/usr/bin/env bash
# A flaky source (issue 3 item 5), through the mount, against faultd on
# 127.0.0.1: every fault ends in the right bytes after retries, or in a
# clear EIO with the reason in the audit log — never a hang, never a wrong
# byte in the cache, never a crashed daemon.
. "$(dirname "$0")/lib.sh"
af_world 1M
sed -i 's/^retries = .*/retries = 3/; s/^low_speed_timeout = .*/low_speed_timeout = 2s/' "$T/artifactfs.conf"
start_faultd
write_policy ",
    {\"source_type\": \"https\", \"uri_prefix\": \"http://127.0.0.1:$FAULTD_PORT/\"}"
size=$((3 * 1024 * 1024 + 4321))
declare -A dig
good="503 429 reset stall short norange redirect head405"
bad="badrange nocr loop badscheme flip 503x"
for mode in $good $bad; do
	make_blob "$mode.bin" $size
	case $mode in
	503x) uri="http://127.0.0.1:$FAULTD_PORT/503/$mode.bin?n=50" ;;
	stall) uri="http://127.0.0.1:$FAULTD_PORT/stall/$mode.bin?n=2&s=4" ;;
	redirect) uri="http://127.0.0.1:$FAULTD_PORT/redirect/$mode.bin" ;;
	*) uri="http://127.0.0.1:$FAULTD_PORT/$mode/$mode.bin?n=2" ;;
	esac
	dig[$mode]=$(register "$mode.bin" uri="$uri")
done
mount_af || exit 1
for mode in $good; do
	t0=$(date +%s)
	ok "$mode: right bytes after retries" cmp "$T/www/$mode.bin" "$T/mnt/vision/$mode.bin@${dig[$mode]}"
	log "$mode: $(( $(date +%s) - t0 )) s"
done
for mode in $bad; do
	t0=$(date +%s)
	expect "$mode: EIO" EIO "$PROBE" open "$T/mnt/vision/$mode.bin@${dig[$mode]}"
	log "$mode: $(( $(date +%s) - t0 )) s"
	ok "$mode: not verified in the cache" sh -c "! '$AF' cache -c '$T/artifactfs.conf' ls --json | grep '${dig[$mode]}' | grep -q '\"state\":\"verified\"'"
	ok "$mode: cache_state not verified" sh -c "getfattr --only-values -n user.artifact.cache_state '$T/mnt/vision/$mode.bin@${dig[$mode]}' | grep -Eqx 'none|partial|quarantined'"
	ok "$mode: audit says why" sh -c "grep -E '\"event\":\"(fetch_failed|verify_failed)\"' '$T/audit.jsonl' | grep '${dig[$mode]}' | grep -q '\"reason\":\"[^\"]'"
done
hex=${dig[flip]#sha256:}
ok "flip: mismatching data dropped" test ! -s "$T/cache/blobs/sha256/${hex:0:2}/$hex"
expect "flip: cache_state quarantined" quarantined getfattr --only-values -n user.artifact.cache_state "$T/mnt/vision/flip.bin@${dig[flip]}"
ok "retries visible in faultd's log" sh -c "grep -c 'status=503' '$T/faultd.log' | grep -qv '^0$'"
ok "daemon still alive" kill -0 "$AF_PID"
ok "clean unmount" umount_af
