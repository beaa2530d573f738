#!/bin/sh
# Installs the Debian packages named as arguments that are not installed yet.
# A name an installed package provides counts as installed (NodeSource's
# nodejs provides npm, and conflicts with Debian's). Needs root and
# apt-get; does nothing when everything is there.
set -eu
missing=""
provided=$(dpkg-query -W -f='${Status}\t${Provides}\n' 2>/dev/null |
	awk -F'\t' '$1 ~ /install ok installed/ { print $2 }' |
	tr ',' '\n' | sed 's/^ *//; s/ .*//; s/:.*//' | sort -u)
for p in "$@"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		continue
	fi
	if printf '%s\n' "$provided" | grep -qx "$p"; then
		continue
	fi
	missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "make deps: installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "make deps: need root to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || apt-get update
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
