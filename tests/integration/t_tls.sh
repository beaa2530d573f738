#!/usr/bin/env bash
# TLS is always verified (DESIGN §2): a source behind a private CA is
# served when [fetch] ca_file trusts that CA, refused (EIO, reason audited)
# when it does not, and cleartext http:// is denied unless a policy rule's
# prefix itself starts with http://.
. "$(dirname "$0")/lib.sh"
af_world 1M
tls=$T/tls
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=artifactfs test CA" \
	-keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
	-keyout "$tls/srv.key" -out "$tls/srv.csr" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\n' >"$tls/ext"
openssl x509 -req -in "$tls/srv.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
	-CAcreateserial -days 2 -extfile "$tls/ext" -out "$tls/srv.pem" >/dev/null 2>&1
TLS_PORT=$(free_port)
mkdir -p "$T/nginx-tls/tmp"
cat >"$T/nginx-tls/nginx.conf" <<EON
worker_processes 1;
pid $T/nginx-tls/nginx.pid;
error_log $T/nginx-tls/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $T/nginx-tls/tmp;
    proxy_temp_path $T/nginx-tls/tmp;
    fastcgi_temp_path $T/nginx-tls/tmp;
    uwsgi_temp_path $T/nginx-tls/tmp;
    scgi_temp_path $T/nginx-tls/tmp;
    server {
        listen 127.0.0.1:$TLS_PORT ssl;
        http2 on;
        ssl_certificate $tls/srv.pem;
        ssl_certificate_key $tls/srv.key;
        location /blobs/ { alias $T/www/; }
    }
}
EON
# nginx 1.22 (Debian 12) has no "http2 on;": use "listen … ssl http2" there.
if ! nginx -t -c "$T/nginx-tls/nginx.conf" -p "$T/nginx-tls" >/dev/null 2>&1; then
	sed -i "s/listen 127.0.0.1:$TLS_PORT ssl;/listen 127.0.0.1:$TLS_PORT ssl http2;/; /http2 on;/d" "$T/nginx-tls/nginx.conf"
fi
nginx -c "$T/nginx-tls/nginx.conf" -p "$T/nginx-tls" || { fail "nginx with TLS did not start"; exit 1; }
for _ in $(seq 1 50); do [ -s "$T/nginx-tls/nginx.pid" ] && break; sleep 0.1; done
EXTRA_PIDS=$(cat "$T/nginx-tls/nginx.pid")

write_policy ",
    {\"source_type\": \"https\", \"uri_prefix\": \"https://127.0.0.1:$TLS_PORT/blobs/\"}"
make_blob s.bin $((3 * 1024 * 1024 + 1))
make_blob u.bin 4096
make_blob c.bin 4096
d_s=$(register s.bin uri="https://127.0.0.1:$TLS_PORT/blobs/s.bin")
d_u=$(register u.bin uri="https://127.0.0.1:$TLS_PORT/blobs/u.bin")
d_c=$(register c.bin uri="http://127.0.0.1:$TLS_PORT/blobs/c.bin")

# Without ca_file the private CA is not trusted: refused, never served.
mount_af || exit 1
expect "untrusted certificate: EIO" EIO "$PROBE" open "$T/mnt/vision/u.bin@$d_u"
ok "audit says why (certificate)" sh -c "grep fetch_failed '$T/audit.jsonl' | grep '$d_u' | grep -qi 'certificate\|tls\|ssl\|peer'"
expect "http:// under an https:// rule: EACCES" EACCES "$PROBE" open "$T/mnt/vision/c.bin@$d_c"
ok "clean unmount" umount_af

# With ca_file = the private CA: verified TLS, bytes equal.
sed -i "s|^\[fetch\]|[fetch]\nca_file = $tls/ca.pem|" "$T/artifactfs.conf"
mount_af || exit 1
ok "trusted private CA: content equal" cmp "$T/www/s.bin" "$T/mnt/vision/s.bin@$d_s"
ok "clean unmount" umount_af
