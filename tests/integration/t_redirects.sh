#!/usr/bin/env bash
# Redirect rules for the https source type (DESIGN §5b, issue 8 item 3),
# through a real mount against nginx with TLS on 127.0.0.1: five redirects
# are followed, a sixth is not; a loop is EIO with the reason audited; a
# redirect from https down to http is refused; a hop to another host
# (another port) is followed. The huggingface and artifact_store tests
# check that Authorization never follows such a hop.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_servers.sh"
af_world 1M
tls_certs || { fail "cannot make test certificates"; exit 1; }
A=$(free_port)
B=$(free_port)
while [ "$B" = "$A" ]; do B=$(free_port); done
nginx_prepare tls
{
	nginx_head tls
	cat <<EOF
http {
    access_log $T/tls/logs/access.log;
$(nginx_temp tls)
    server {
        listen 127.0.0.1:$A ssl;
        ssl_certificate $T/tls/srv.pem;
        ssl_certificate_key $T/tls/srv.key;
        location /blobs/ { alias $T/www/; }
        # c5 -> c4 -> … -> c1 -> /blobs/: five redirects; c6: six.
        location ~ ^/c6/(.*)\$ { return 302 /c5/\$1; }
        location ~ ^/c5/(.*)\$ { return 302 /c4/\$1; }
        location ~ ^/c4/(.*)\$ { return 302 /c3/\$1; }
        location ~ ^/c3/(.*)\$ { return 302 /c2/\$1; }
        location ~ ^/c2/(.*)\$ { return 302 /c1/\$1; }
        location ~ ^/c1/(.*)\$ { return 302 /blobs/\$1; }
        location /loop/ { return 302 \$request_uri; }
        location ~ ^/ping/(.*)\$ { return 302 /pong/\$1; }
        location ~ ^/pong/(.*)\$ { return 302 /ping/\$1; }
        location ~ ^/down/(.*)\$ { return 302 http://127.0.0.1:$NGINX_PORT/blobs/\$1; }
        location ~ ^/other/(.*)\$ { return 307 https://127.0.0.1:$B/blobs/\$1; }
    }
    server {
        listen 127.0.0.1:$B ssl;
        ssl_certificate $T/tls/srv.pem;
        ssl_certificate_key $T/tls/srv.key;
        location /blobs/ { alias $T/www/; }
    }
}
EOF
} >"$T/tls/nginx.conf"
nginx_extra tls || { fail "nginx with TLS did not start"; exit 1; }
sed -i "s|^\[fetch\]|[fetch]\nca_file = $T/tls/ca.pem|" "$T/artifactfs.conf"
write_policy ",
    {\"source_type\": \"https\", \"uri_prefix\": \"https://127.0.0.1:$A/\"}"

make_blob five.bin 300000
make_blob six.bin 3000
make_blob loop.bin 3000
make_blob ping.bin 3000
make_blob down.bin 3000
make_blob other.bin 200000
d_five=$(register five.bin uri="https://127.0.0.1:$A/c5/five.bin")
d_six=$(register six.bin uri="https://127.0.0.1:$A/c6/six.bin")
d_loop=$(register loop.bin uri="https://127.0.0.1:$A/loop/loop.bin")
d_ping=$(register ping.bin uri="https://127.0.0.1:$A/ping/ping.bin")
d_down=$(register down.bin uri="https://127.0.0.1:$A/down/down.bin")
d_other=$(register other.bin uri="https://127.0.0.1:$A/other/other.bin")
mount_af || exit 1
M=$T/mnt/vision

ok "five redirects are followed: content equal" cmp "$T/www/five.bin" "$M/five.bin@$d_five"
expect "a sixth redirect: EIO" EIO "$PROBE" open "$M/six.bin@$d_six"
ok "the reason says so" reason_has "$d_six" "more than 5 redirects"
expect "a redirect to itself: EIO" EIO "$PROBE" open "$M/loop.bin@$d_loop"
ok "the reason names the loop" reason_has "$d_loop" "redirect loop (back to the source URL)"
expect "two URLs redirecting to each other: EIO" EIO "$PROBE" open "$M/ping.bin@$d_ping"
ok "the reason names the loop" reason_has "$d_ping" "redirect loop (back to the source URL)"
expect "https to http: EIO" EIO "$PROBE" open "$M/down.bin@$d_down"
ok "the reason says it was refused" reason_has "$d_down" "redirect from https to http refused"
ok "the cleartext URL was never asked for" sh -c "! grep -q 'down.bin' '$T/nginx/logs/access.log'"
ok "a 307 to another port: content equal" cmp "$T/www/other.bin" "$M/other.bin@$d_other"
ok "no redirect rule is retried" test "$(grep -c ' /c6/six.bin' "$T/tls/logs/access.log")" -eq 1
ok "clean unmount" umount_af
