#!/usr/bin/env bash
# Releases racing with requests in flight: readers killed mid-readdir and
# mid-read (SIGPIPE from head) while others read, with passthrough off so
# every read reaches the daemon. The daemon must stay up (ASan build in
# make check), and every completed read must return the right bytes.
. "$(dirname "$0")/lib.sh"
af_world 1M
printf '[fs]\npassthrough = off\n' >>"$T/artifactfs.conf"
for i in $(seq 1 40); do make_blob "f$i.bin" 4096 >/dev/null; register "f$i.bin" >/dev/null; done
make_blob big.bin $((8 * 1024 * 1024))
d=$(register big.bin)
mount_af || exit 1
f=$T/mnt/vision/big.bin@$d
ok "first read equal" cmp "$T/www/big.bin" "$f"
for round in $(seq 1 30); do
	pids=""
	for _ in 1 2 3 4; do
		( ls -l "$T/mnt/vision" | head -1 >/dev/null ) &
		pids="$pids $!"
		( head -c 100000 "$f" >/dev/null ) &
		pids="$pids $!"
		( cat "$f" | head -c 1 >/dev/null ) &
		pids="$pids $!"
	done
	wait $pids
done
ok "daemon alive after 360 killed readers" kill -0 "$AF_PID"
ok "content still equal" cmp "$T/www/big.bin" "$f"
expect "listing still complete" 41 sh -c "ls '$T/mnt/vision' | wc -l"
ok "clean unmount" umount_af
