#!/bin/sh
# Prints the path of a promtool, extracted from Debian's prometheus package
# into a cache folder rather than installing the package (about 100 MB of
# server we do not run): apt-get download, then only usr/bin/promtool out of
# the .deb. Done once; later calls print the cached path.
#
#   sh mk/promtool.sh        -> /var/cache/artifactfs-test/promtool/promtool
#
# AF_PROMTOOL_DIR overrides the folder. A promtool on PATH is used as is.
# Exit 1 with the reason on stderr when it cannot be had (no apt, the
# archive unreachable): callers print SKIP with that reason.
set -eu
if command -v promtool >/dev/null 2>&1; then
	command -v promtool
	exit 0
fi
dir=${AF_PROMTOOL_DIR:-/var/cache/artifactfs-test/promtool}
if [ -x "$dir/promtool" ]; then
	echo "$dir/promtool"
	exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "promtool: no apt-get to fetch Debian's prometheus package" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# _apt must be able to write where the download lands.
chmod 0777 "$tmp"
if ! (cd "$tmp" && apt-get download -q prometheus >"$tmp/apt.log" 2>&1); then
	echo "promtool: apt-get download prometheus failed: $(tail -n 1 "$tmp/apt.log")" >&2
	exit 1
fi
deb=$(ls "$tmp"/prometheus_*.deb)
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" ./usr/bin/promtool
"$tmp/usr/bin/promtool" --version >/dev/null 2>&1 || { echo "promtool: the extracted promtool does not run" >&2; exit 1; }
mv "$tmp/usr/bin/promtool" "$dir/promtool"
echo "$dir/promtool"
