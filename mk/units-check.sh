#!/bin/sh
# systemd-analyze verify on unit files, strictly (DESIGN §13, issue 12):
#
#   sh mk/units-check.sh BINDIR UNIT...
#
# Each unit is rendered as make install renders it, with /usr/local/bin
# replaced by BINDIR (a build folder, so that ExecStart= names a program
# that exists), into a temporary folder; a template (name@.service) gets
# the instance name "check". systemd-analyze verify only reads files: it
# works where systemd is not PID 1 (containers, CI). It warns about an
# unknown key or a bad value and still exits 0, so any message at all is
# a failure here.
set -u
bindir=${1:?usage: units-check.sh BINDIR UNIT...}
shift
command -v systemd-analyze >/dev/null 2>&1 ||
	{ echo "units-check: systemd-analyze not found: run 'make deps' (package systemd)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/af-units.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
for u in "$@"; do
	n=$(basename "$u" | sed 's/@\./@check./')
	sed "s|/usr/local/bin|$bindir|g" "$u" >"$tmp/$n" || exit 1
done
out=$(cd "$tmp" && systemd-analyze verify --man=no ./*.service 2>&1)
rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
	printf '%s\n' "$out" | sed "s|$tmp/||g"
	echo "units-check: systemd-analyze verify failed (exit $rc)" >&2
	exit 1
fi
for u in "$@"; do echo "  units   $(basename "$u"): systemd-analyze verify ok"; done
