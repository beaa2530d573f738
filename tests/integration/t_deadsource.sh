#!/usr/bin/env bash
# stat against a dead source (issue 10 item 8): blobs registered without
# size_bytes whose source accepts the connection and never answers. `ls -l`
# must not tie up the FUSE workers on HEAD requests: it answers within a
# bound (size 0 until learned), one request per blob is made however often
# it is asked, and other requests are served meanwhile.
. "$(dirname "$0")/lib.sh"
af_world 1M
start_faultd
write_policy ",
    {\"source_type\": \"https\", \"uri_prefix\": \"http://127.0.0.1:$FAULTD_PORT/\"}"
N=24
for i in $(seq 1 $N); do
	make_blob "dead$i.bin" 1000
	register "dead$i.bin" size=none uri="http://127.0.0.1:$FAULTD_PORT/hang/dead$i.bin?s=60" >/dev/null
done
make_blob good.bin 5000
d_good=$(register good.bin)
make_blob nosize.bin 7777
d_nosize=$(register nosize.bin size=none)
mount_af || exit 1
m=$T/mnt/vision
t0=$(date +%s%N)
ok "ls -l of $N blobs of a dead source answers" timeout 20 ls -l "$m"
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
log "ls -l took $ms ms"
ok "within 8 s" test "$ms" -lt 8000
expect "a dead source's blob shows size 0 until learned" 0 stat -c %s "$m/dead1.bin@$(sha256_of "$T/www/dead1.bin" | sed 's/^/sha256:/')"
# The workers are free: other requests are answered at once.
lspids=""
for i in 1 2 3; do ls -l "$m" >/dev/null & lspids="$lspids $!"; done
ok "a good blob is read meanwhile" timeout 10 cmp "$T/www/good.bin" "$m/good.bin@$d_good"
ok "a live source's size is learned" sh -c "for i in 1 2 3 4 5 6 7 8 9 10; do [ \$(stat -c %s '$m/nosize.bin@$d_nosize') = 7777 ] && exit 0; sleep 0.3; done; exit 1"
wait $lspids
ok "at most one request per dead blob, not one per stat" test "$(grep -c 'HEAD /hang/' "$T/faultd.log")" -le "$N"
ok "daemon alive" kill -0 "$AF_PID"
ok "clean unmount" umount_af
