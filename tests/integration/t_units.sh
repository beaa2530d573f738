#!/usr/bin/env bash
# What make install ships and how it comes off again (issue 12 items 1, 3,
# 4): the systemd units pass systemd-analyze verify (a broken one does not:
# the check is strict), make install puts the binaries, the man page, both
# units, the logrotate snippet and a config in place under DESTDIR, make
# uninstall takes them away and keeps the config, make help lists the
# targets. No mount here.
. "$(dirname "$0")/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/aftest.XXXXXX)
trap af_cleanup EXIT
# Run from make check: the make below must not inherit its variables.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES BUILD SAN CFLAGS LDFLAGS CC V

# The shipped units, as make check verifies them.
ok "units-check: every shipped unit verifies" sh "$SRC/mk/units-check.sh" "$AF_BUILD" \
	"$SRC/tools/systemd/artifactfs.service" "$SRC/tools/systemd/artifactfs-prefetch@.service"
ok "artifactfs.service is Type=notify" grep -qx 'Type=notify' "$SRC/tools/systemd/artifactfs.service"
ok "artifactfs.service reloads with SIGHUP" grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$SRC/tools/systemd/artifactfs.service"
ok "artifactfs.service runs the daemon in the foreground" grep -q '^ExecStart=.*artifactfs mount -f ' "$SRC/tools/systemd/artifactfs.service"
# The mount must show on the host: no option that makes a mount namespace.
ok "artifactfs.service has no mount-namespace option" sh -c "! grep -E '^(ProtectSystem|ProtectHome|PrivateTmp|PrivateDevices|ReadWritePaths|ReadOnlyPaths|InaccessiblePaths|TemporaryFileSystem|BindPaths|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectClock|ProtectHostname|MountFlags)=' '$SRC/tools/systemd/artifactfs.service'"
ok "the prefetch template reads /etc/artifactfs/prefetch/%i.list" grep -q 'prefetch .*-f /etc/artifactfs/prefetch/%i.list' "$SRC/tools/systemd/artifactfs-prefetch@.service"
# Negative: a unit with an unknown key or a bad value fails the check
# (systemd-analyze itself only warns and exits 0).
sed 's/^Type=notify/Type=notify\nRestartt=always/' "$SRC/tools/systemd/artifactfs.service" >"$T/artifactfs.service"
out=$(sh "$SRC/mk/units-check.sh" "$AF_BUILD" "$T/artifactfs.service" 2>&1); rc=$?
expect "units-check: an unknown key fails" 1 echo $rc
ok "... naming it" sh -c "echo '$out' | grep -q Restartt"
sed 's/^Type=notify/Type=notifyy/' "$SRC/tools/systemd/artifactfs.service" >"$T/artifactfs.service"
expect "units-check: a bad value fails" 1 sh -c "sh '$SRC/mk/units-check.sh' '$AF_BUILD' '$T/artifactfs.service' >/dev/null 2>&1; echo \$?"
sed 's|^ExecStart=/usr/local/bin/artifactfs|ExecStart=/usr/local/bin/artifactfz|' "$SRC/tools/systemd/artifactfs.service" >"$T/artifactfs.service"
expect "units-check: a program that is not there fails" 1 sh -c "sh '$SRC/mk/units-check.sh' '$AF_BUILD' '$T/artifactfs.service' >/dev/null 2>&1; echo \$?"

# make install / uninstall into a DESTDIR (-o all: use this build as it is).
R=$T/root
make -s -C "$SRC" -o all BUILD="$AF_BUILD" DESTDIR="$R" install >"$T/install.out" 2>&1
expect "make install: exit 0" 0 echo $?
for f in usr/local/bin/artifactfs sbin/mount.artifactfs usr/local/share/man/man1/artifactfs.1 \
	etc/systemd/system/artifactfs.service "etc/systemd/system/artifactfs-prefetch@.service" \
	etc/logrotate.d/artifactfs etc/artifactfs/artifactfs.conf \
	usr/local/share/doc/artifactfs/CONFIG.md usr/local/share/doc/artifactfs/OPERATIONS.md; do
	ok "installed: /$f" test -s "$R/$f"
done
ok "installed binary runs" "$R/usr/local/bin/artifactfs" --version
ok "installed units name the installed binary" grep -q '^ExecStart=/usr/local/bin/artifactfs mount' "$R/etc/systemd/system/artifactfs.service"
ok "installed config parses (check names no line of it)" sh -c "'$R/usr/local/bin/artifactfs' check -c '$R/etc/artifactfs/artifactfs.conf' 2>&1 | grep -q 'registrations' && ! '$R/usr/local/bin/artifactfs' check -c '$R/etc/artifactfs/artifactfs.conf' 2>&1 | grep -q 'artifactfs.conf:'"
ok "installed config points to the installed CONFIG.md" sh -c "f=\$(grep -o '/usr/local/share/doc/artifactfs/CONFIG.md' '$R/etc/artifactfs/artifactfs.conf' | head -1) && test -s '$R'\$f"
# Every CONFIG.md entry the installed config's comments name exists.
for k in $(grep -o '"[a-z_]*\.[a-z_*]*"' "$R/etc/artifactfs/artifactfs.conf" | tr -d '"' | sort -u); do
	case $k in
	*'*') ok "config comment $k names a CONFIG.md section" grep -q "^### \`${k%\*}" "$SRC/docs/CONFIG.md" ;;
	*) ok "config comment $k names a CONFIG.md entry" grep -qx "### \`$k\`" "$SRC/docs/CONFIG.md" ;;
	esac
done
echo "; changed by the node" >>"$R/etc/artifactfs/artifactfs.conf"
make -s -C "$SRC" BUILD="$AF_BUILD" DESTDIR="$R" uninstall >"$T/uninstall.out" 2>&1
expect "make uninstall: exit 0" 0 echo $?
left=$(cd "$R" && find . -type f | sort | tr '\n' ' ')
expect "make uninstall leaves only the config" "./etc/artifactfs/artifactfs.conf " echo "$left"
ok "... as the node changed it" grep -q 'changed by the node' "$R/etc/artifactfs/artifactfs.conf"
ok "make install again keeps an existing config" sh -c "make -s -C '$SRC' -o all BUILD='$AF_BUILD' DESTDIR='$R' install >/dev/null 2>&1 && grep -q 'changed by the node' '$R/etc/artifactfs/artifactfs.conf'"
ok "make help lists install, uninstall and check" sh -c "make -s -C '$SRC' help | grep -q 'make uninstall' && make -s -C '$SRC' help | grep -q 'make check'"

# Plain `make` on a fresh clone builds the private libfuse itself when the
# system's is too old (a dry run of the tracked files, without build/).
mkdir -p "$T/clone"
(cd "$SRC" && git ls-files -z | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$T/clone"
make -n -C "$T/clone" >"$T/make-n.out" 2>&1
expect "make -n on a fresh tree: exit 0" 0 echo $?
if pkg-config --atleast-version=3.17 fuse3 2>/dev/null; then
	ok "the system's libfuse is new enough: no private build planned" sh -c "! grep -q libfuse-build.sh '$T/make-n.out'"
else
	ok "a fresh tree's make builds the private libfuse first" sh -c "grep -m1 -E 'libfuse-build.sh|cc .* -c ' '$T/make-n.out' | grep -q 'libfuse-build.sh build 3.17'"
fi
ok "... then the binary" grep -q -- '-o build/artifactfs ' "$T/make-n.out"
