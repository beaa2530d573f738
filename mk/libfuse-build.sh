#!/bin/sh
# Builds a private static libfuse >= 3.17 from Debian's own fuse3 source
# package, for systems whose libfuse3 is older (Debian 12 has 3.14, which
# cannot negotiate FUSE passthrough). Called by `make libfuse-deps` (the end
# of `make deps`); see mk/libfuse.mk.
#
#   sh mk/libfuse-build.sh BUILDROOT MINVERSION
#
# BUILDROOT (normally "build") receives:
#   apt/           private apt state: source list, lists, cache, logs
#   libfuse-src/   the unpacked source package and its meson build dir
#   libfuse/       the installed result: include/fuse3, lib/libfuse3.a,
#                  lib/pkgconfig/fuse3.pc, and .stamp once complete
#
# The apt source list is derived at run time from the machine's configured
# Debian archive (/etc/apt/sources.list{,.d}): the URIs that carry this
# release's own suite, minus the security archive and third-party
# repositories, with a newer suite that carries fuse3 >= MINVERSION. The
# system's apt sources and state are never touched, and root is not needed.
# Does nothing when the stamp is there.
set -eu

root=${1:?usage: libfuse-build.sh BUILDROOT MINVERSION}
min=${2:?usage: libfuse-build.sh BUILDROOT MINVERSION}
# Suites tried in order: the first that carries fuse3 >= $min wins.
suites=${LIBFUSE_SUITES:-"trixie testing sid"}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
# The system's apt configuration directory, read only (overridable for tests).
etc=${LIBFUSE_APT_ETC:-/etc/apt}
jobs=${LIBFUSE_JOBS:-2}

case $root in /*) ;; *) root=$(pwd)/$root ;; esac
out=$root/libfuse
src=$root/libfuse-src
aptdir=$root/apt
stamp=$out/.stamp

say() { echo "libfuse: $*"; }
die() { echo "libfuse: error: $*" >&2; exit 1; }

[ -f "$stamp" ] && exit 0

# One build at a time (make check and make demo may both run make deps).
mkdir -p "$root"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$root/.libfuse.lock"
	flock 9
	[ -f "$stamp" ] && exit 0
fi

for t in apt-get apt-cache dpkg-source dpkg meson ninja pkg-config; do
	command -v "$t" >/dev/null 2>&1 ||
		die "$t not found: run 'make deps' as root (it installs build-essential, meson, ninja-build, pkg-config)"
done

# Prints "URI SUITE" for every enabled deb/deb-src entry of the system's apt
# sources, one-line (*.list) and deb822 (*.sources) formats alike.
apt_entries() {
	for f in "$etc/sources.list" "$etc"/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk '{ sub(/#.*/, "") }
		$1 != "deb" && $1 != "deb-src" { next }
		{
			i = 2
			if ($i ~ /^\[/) {	# [ option=value ... ]
				while (i <= NF && $i !~ /\]$/) i++
				i++
			}
			if (i + 1 <= NF) print $i, $(i + 1)
		}' "$f"
	done
	for f in "$etc"/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk 'function flush(   i, j, nu, ns, u, s) {
			if (types ~ /(^| )deb(-src)?( |$)/ && enabled !~ /^(no|false|0)$/) {
				nu = split(uris, u, " "); ns = split(suites, s, " ")
				for (i = 1; i <= nu; i++)
					for (j = 1; j <= ns; j++) print u[i], s[j]
			}
			types = uris = suites = enabled = ""; field = ""
		}
		/^#/ { next }
		/^[ \t]*$/ { flush(); next }
		/^[ \t]/ {	# continuation line
			if (field == "uris") uris = uris " " $0
			else if (field == "suites") suites = suites " " $0
			next
		}
		{
			key = tolower($0); sub(/:.*/, "", key)
			val = $0; sub(/^[^:]*:[ \t]*/, "", val)
			field = key
			if (key == "types") types = val
			else if (key == "uris") uris = val
			else if (key == "suites") suites = val
			else if (key == "enabled") enabled = tolower(val)
		}
		END { flush() }' "$f"
	done
}

# The Debian archive's URIs: entries for this release's suite (or its
# -updates/-backports/-proposed-updates), not the security archive. Falls back
# to any non-security Debian suite name when the codename is unknown.
archive_uris() {
	codename=
	if [ -r /etc/os-release ]; then
		# shellcheck disable=SC1091
		codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	fi
	apt_entries | awk -v cn="$codename" '
	$1 ~ /^cdrom:/ || $1 ~ /-security\/?$/ || $2 ~ /-security$/ { next }
	{
		s = $2; sub(/-(updates|backports|proposed-updates)$/, "", s)
		if ((cn != "" && s == cn) ||
		    (cn == "" && s ~ /^(stable|testing|unstable|sid|oldstable|bookworm|trixie|forky)$/)) {
			u = $1; sub(/\/+$/, "", u)
			if (!(u in seen)) { seen[u] = 1; print u }
		}
	}'
}

apt_opts() {
	echo "-o Dir::State=$aptdir/state -o Dir::Cache=$aptdir/cache"
	echo "-o Dir::Etc::SourceList=$aptdir/sources.list"
	echo "-o Dir::Etc::SourceParts=/dev/null"
	echo "-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null"
	echo "-o Acquire::Languages=none -o APT::Get::List-Cleanup=false"
	# As root apt would download as user _apt, who cannot enter a
	# private build tree; the build tree is ours, so stay as we are.
	[ "$(id -u)" = 0 ] && echo "-o APT::Sandbox::User=root"
	return 0
}

# Highest fuse3 source version >= $min known to the private apt state, or
# nothing.
best_version() {
	best=
	# shellcheck disable=SC2046
	for v in $(apt-cache $(apt_opts) showsrc --only-source fuse3 2>/dev/null |
		awk '/^Package: / { p = $2 } /^Version: / && p == "fuse3" { print $2 }'); do
		dpkg --compare-versions "$v" ge "$min" || continue
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v
		fi
	done
	echo "$best"
}

fetch_source() {
	uris=$(archive_uris)
	[ -n "$uris" ] ||
		die "no Debian archive found in $etc/sources.list{,.d}; install libfuse3-dev >= $min or add a Debian archive to apt's sources"
	[ -r "$keyring" ] ||
		die "$keyring missing: install debian-archive-keyring"
	urilist=$(echo "$uris" | tr '\n' ' ' | sed 's/ $//')
	mkdir -p "$aptdir/state/lists/partial" "$aptdir/cache/archives/partial"
	ver=
	for suite in $suites; do
		: >"$aptdir/sources.list"
		for u in $uris; do
			echo "deb-src [signed-by=$keyring] $u $suite main" >>"$aptdir/sources.list"
		done
		say "looking for fuse3 >= $min in $suite ($urilist)"
		# shellcheck disable=SC2046
		if ! apt-get $(apt_opts) -q update >"$aptdir/update-$suite.log" 2>&1; then
			say "apt-get update for $suite failed (see $aptdir/update-$suite.log)"
		fi
		ver=$(best_version)
		[ -n "$ver" ] && break
	done
	if [ -z "$ver" ]; then
		grep -h '^[EW]:' "$aptdir"/update-*.log >&2 || true
		die "could not find Debian's fuse3 >= $min source package in suites '$suites' of $urilist (network down? logs in $aptdir/update-*.log); alternatively install libfuse3-dev >= $min"
	fi
	say "downloading fuse3 $ver source from $suite"
	rm -rf "$src"
	mkdir -p "$src"
	# shellcheck disable=SC2046
	if ! (cd "$src" && apt-get $(apt_opts) -q source --only-source "fuse3=$ver") \
		>"$aptdir/source.log" 2>&1; then
		cat "$aptdir/source.log" >&2
		die "apt-get source fuse3=$ver failed (log: $aptdir/source.log)"
	fi
	dir=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'fuse3-*' | head -n 1)
	if [ -z "$dir" ] || [ ! -f "$dir/meson.build" ]; then
		die "apt-get source fuse3=$ver left no source tree in $src"
	fi
	echo "$dir" >"$src/.fetched"
}

if [ -f "$src/.fetched" ] && [ -f "$(cat "$src/.fetched")/meson.build" ]; then
	dir=$(cat "$src/.fetched")
else
	fetch_source
fi

say "building $(basename "$dir") (static) into $out"
start=$(date +%s)
rm -rf "$out" "$src/build"
# bindir is where libfuse looks for fusermount3 first (then $PATH): the
# system's, since nothing of this build is installed there (utils=false).
if ! meson setup "$src/build" "$dir" \
	--prefix="$out" --libdir=lib --bindir=/usr/bin \
	--buildtype=debugoptimized -Ddefault_library=static \
	-Dexamples=false -Dutils=false -Dtests=false -Duseroot=false \
	-Dinitscriptdir= -Dudevrulesdir="$out/udev" \
	>"$src/meson-setup.log" 2>&1; then
	cat "$src/meson-setup.log" >&2
	die "meson setup failed (log: $src/meson-setup.log)"
fi
ninja -C "$src/build" -j "$jobs" >"$src/ninja.log" 2>&1 || {
	cat "$src/ninja.log" >&2
	die "ninja failed (log: $src/ninja.log)"
}
meson install -C "$src/build" --no-rebuild >"$src/install.log" 2>&1 || {
	cat "$src/install.log" >&2
	die "meson install failed (log: $src/install.log)"
}
got=$(PKG_CONFIG_LIBDIR="$out/lib/pkgconfig" PKG_CONFIG_PATH='' pkg-config --modversion fuse3) ||
	die "no usable fuse3.pc in $out/lib/pkgconfig"
dpkg --compare-versions "$got" ge "$min" ||
	die "built libfuse $got, but >= $min is needed"
[ -f "$out/lib/libfuse3.a" ] || die "$out/lib/libfuse3.a missing after install"
echo "$got" >"$stamp"
say "libfuse $got ready in $out ($(($(date +%s) - start)) s)"
