#!/usr/bin/env bash
# Outage (issue 9 item 3, DESIGN §3): with the control plane down, listing
# works and verified artifacts read, across a daemon restart too (the
# answers are kept in the cache index); a transient error (500, a reset, a
# truncated or garbled body, an object for a listing, a 50 MB listing)
# never replaces what the node knows; a redirect to another host gets no
# token.
. "$(dirname "$0")/lib.sh"
cp_world 1s
make_blob a.bin 4096
make_blob b.bin 4096
d_a=$(register a.bin)
d_b=$(register b.bin)
cp_publish
mount_af || exit 1
m=$T/mnt/vision
ok "a reads (verified)" cmp "$T/www/a.bin" "$m/a.bin@$d_a"
listed() { ls "$m" 2>/dev/null | grep -c "^[ab].bin@" ; }

# The control plane goes down.
stop_cpd cpd
sleep 2.5
expect "control plane down: listing works" 2 listed
ok "  a verified artifact reads" cmp "$T/www/a.bin" "$m/a.bin@$d_a"
ok "  said loudly, with what is served" grep -q "serving the 2 registrations kept; retrying every" "$T/daemon.log"
n=$(grep -c "serving the 2 registrations kept" "$T/daemon.log")
sleep 2.2
ok "  retried every interval" test "$(grep -c "serving the 2 registrations kept" "$T/daemon.log")" -gt "$n"

# Across a restart, with the control plane still down.
umount_af
mount_af || exit 1
expect "restart during the outage: listing from the cache index" 2 listed
ok "  a verified artifact reads" cmp "$T/www/a.bin" "$m/a.bin@$d_a"
ok "  b (never fetched) fetches from its source" cmp "$T/www/b.bin" "$m/b.bin@$d_b"
ok "  restored, said" grep -q "restored the control plane's last answers" "$T/daemon.log"

# The control plane comes back (same port); b is removed meanwhile, but
# every kind of transient error keeps what the node knows.
rm -f "$T/registry/vision-b.bin-${d_b#sha256:}.json"
cp_publish
for fault in "500" "reset" "truncate" "badjson" "object" "status 503"; do
	echo "v1/projects/vision/blobs\$ $fault" >"$T/cp/faults"
	if [ -z "$(cat "$T/cpd.pid" 2>/dev/null)" ]; then
		start_cpd cpd "$T/cp" --token-file "$T/cp-token" --prefix /api --port "$CPD_PORT" || exit 1
	fi
	n=$(cpd_count '^GET /api/v1/projects/vision/blobs ')
	for _ in $(seq 1 40); do
		[ "$(cpd_count '^GET /api/v1/projects/vision/blobs ')" -ge $((n + 2)) ] && break
		sleep 0.1
	done
	expect "listing answered with '$fault': the node keeps both" 2 listed
done
ok "  a cut or garbled listing is said loudly" grep -q "invalid JSON" "$T/daemon.log"
ok "  an object for a listing is refused" grep -q "not an array of registrations" "$T/daemon.log"
# A garbled policy keeps the policy (it is not 'invalid': fail closed is
# for a well-formed document that says something wrong).
printf 'v1/policy$ badjson\nv1/projects$ truncate\n' >"$T/cp/faults"
sleep 2.5
ok "policy garbled and projects cut short: a still reads" cmp "$T/www/a.bin" "$m/a.bin@$d_a"
ok "  the policy known before is kept, said" grep -q "not JSON (cut short?): keeping the policy known before" "$T/daemon.log"
printf 'v1/policy$ truncate\n' >"$T/cp/faults"
sleep 2.5
ok "policy cut short: a still reads" cmp "$T/www/a.bin" "$m/a.bin@$d_a"
rm -f "$T/cp/faults"
sleep 2.5
expect "errors gone: the removal applies" 1 listed

# A 50 MB listing: refused as a whole (bounded memory), what was known kept.
python3 "$CPD" gen --project vision --count 100000 --name-prefix big >"$T/big.json"
ok "a listing of about 50 MB" test "$(stat -c %s "$T/big.json")" -gt 50000000
mv "$T/big.json" "$T/cp/projects/vision/blobs.json"
sleep 3
ok "  refused, said" grep -q "larger than 16 MiB: refused" "$T/daemon.log"
expect "  the node keeps what it knew" 1 listed
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$AF_PID/status")
ok "  the daemon's memory stayed bounded (${rss} KiB)" test "$rss" -lt $((400 * 1024))
cp_publish
# The listing file was replaced by the publish above only if its bytes
# changed: write it again to be sure.
python3 "$CPD" publish --from "$T/registry" --root "$T/cp"

# A redirect to another host: followed, without the token.
mkdir -p "$T/cp2"
cp -r "$T/cp/." "$T/cp2/"
rm -f "$T/cp2/faults"
start_cpd cpd2 "$T/cp2" --prefix /api || exit 1
port2=$(cat "$T/cpd2.port")
echo "v1/projects\$ redirect http://localhost:$port2" >"$T/cp/faults"
sleep 2.5
ok "the other host was asked" test "$(cpd_count '^GET /api/v1/projects ' cpd2)" -ge 1
ok "  without the token" test "$(cpd_count 'auth=yes' cpd2)" -eq 0
expect "  and its answer taken" 1 listed
# A redirect to a cleartext host that is not loopback: refused.
echo "v1/projects\$ redirect http://10.255.255.1" >"$T/cp/faults"
sleep 2.5
ok "a redirect to http on a non-loopback host is refused" grep -q "redirect to http://10.255.255.1/api/v1/projects refused" "$T/daemon.log"
ok "  and the node keeps serving" cmp "$T/www/a.bin" "$m/a.bin@$d_a"
umount_af
ok "clean unmount" test $? -eq 0
