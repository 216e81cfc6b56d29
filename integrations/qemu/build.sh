#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# build.sh [RMIG_BUILD_DIR] - build QEMU 10.0 with this folder's patch series,
# linked to the librmig of RMIG_BUILD_DIR (default: build/default, built
# beforehand), and QEMU's own tests/qtest/migration-test.
#
#   1. the source: Debian 13 (trixie)'s qemu source package, fetched with
#      apt-get source --download-only through apt/trixie-src.sources (the
#      system's apt configuration and lists are not touched) and unpacked
#      with dpkg-source -x (Debian's patches applied);
#   2. patches/*.patch applied in order with patch -p1 (none is fine);
#   3. librmig installed (cmake --install) into a prefix under the cache,
#      whose rmig.pc QEMU's configure finds through PKG_CONFIG_PATH;
#   4. a minimal configure (x86_64-softmmu, TCG, --enable-rdma for QEMU's
#      legacy RDMA migration, --enable-rmig once the series has that
#      option) and ninja qemu-system-x86_64 tests/qtest/migration-test.
#
# Everything lives in the cache, ${RMIG_QEMU_DIR:-<project>/build/qemu}:
#   apt/          apt lists of the sources file above
#   dl/           the source package (.dsc, tarballs)
#   rmig-prefix/  librmig, its header and rmig.pc
#   src/          the patched source; src/build/ the QEMU build
#   bin/qemu-system-x86_64
#                 a wrapper adding the firmware paths of Debian's packages
#                 (-L /usr/share/seabios -L /usr/lib/ipxe/qemu
#                 -L /usr/share/qemu: the +ds tarball has no pc-bios
#                 blobs); libqtest takes the target from the binary's name,
#                 so this is what QTEST_QEMU_BINARY names
#   stamp         what the build was made from: the source package's
#                 version, a hash of the patches and of this script's
#                 configure line, a hash of librmig (.so and header)
# A run whose patches, configure line or source version differ from the
# stamp unpacks the source afresh and rebuilds everything (about 2.5 min on
# 2 cores); one whose librmig differs relinks the two programs; otherwise
# nothing is done.  Prints the wrapper's path on the last line of stdout.
#
# Needs (./dev.sh deps installs them): dpkg-dev, ninja-build, meson >= 1.5
# from bookworm-backports, libglib2.0-dev, libpixman-1-dev, libfdt-dev,
# zlib1g-dev, python3-venv, flex, bison, libibumad-dev (with rdma-core's
# libibverbs-dev and librdmacm-dev), and qemu-system-x86 at run time for
# the firmware.
# Environment: RMIG_QEMU_DIR (the cache), RMIG_QEMU_JOBS (ninja -j,
# default 2).
set -euo pipefail

PROG=qemu-build
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
rmig_build=$(cd "${1:-$root/build/default}" && pwd) || exit 1
out=${RMIG_QEMU_DIR:-$root/build/qemu}
jobs=${RMIG_QEMU_JOBS:-2}

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# The configure line (besides --prefix, --enable-rmig and the rpath added
# below).  Without default features only what is named is built.
CONFIGURE_ARGS=(--python=/usr/bin/python3 --target-list=x86_64-softmmu
	--disable-docs --disable-werror --without-default-features
	--enable-tcg --enable-fdt=system --disable-install-blobs --enable-rdma)

for tool in apt-get dpkg-source meson ninja patch sha256sum cmake; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool not found (./dev.sh deps installs what this needs)"
done
if ! dpkg --compare-versions "$(meson --version)" ge 1.5; then
	die "meson $(meson --version) is too old: QEMU 10.0 needs >= 1.5 (bookworm-backports; ./dev.sh deps installs it)"
fi

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9 # one builder per cache

# ----------------------------------------------------------------- librmig
# Installed into a prefix of the cache: rmig.pc finds its prefix from its
# own place, and the build tree's copy of it points nowhere useful.
prefix=$out/rmig-prefix
[ -f "$rmig_build/CMakeCache.txt" ] ||
	die "$rmig_build is no CMake build tree of rmig (build it first)"
cmake --install "$rmig_build" --prefix "$prefix" >"$out/rmig-install.log" 2>&1 || {
	cat "$out/rmig-install.log" >&2
	die "cmake --install $rmig_build failed (is the tree built?)"
}
libdir=$(dirname "$(find "$prefix" -name rmig.pc -path '*/pkgconfig/*' | head -1)")
libdir=${libdir%/pkgconfig}
[ -f "$libdir/librmig.so" ] || die "no librmig.so under $prefix"
lib_hash=$(cat "$(readlink -f "$libdir/librmig.so")" "$prefix/include/rmig/rmig.h" |
	sha256sum | cut -c1-16)

# ------------------------------------------------------------ the source
apt_opts=(-o "Dir::Etc::SourceList=$here/apt/trixie-src.sources"
	-o Dir::Etc::SourceParts=- -o "Dir::State::Lists=$out/apt/lists"
	-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
mkdir -p "$out/apt/lists/partial" "$out/dl"
# The lists are refreshed when missing or older than a day: a point release
# of trixie's qemu then rebuilds (its version is in the stamp).
version=
if [ -n "$(find "$out/apt/lists" -maxdepth 1 -name '*_Sources*' -mtime -1)" ] ||
	apt-get "${apt_opts[@]}" update >"$out/apt/update.log" 2>&1; then
	version=$(apt-cache "${apt_opts[@]}" showsrc qemu 2>/dev/null |
		sed -n 's/^Version: //p' | sort -V | tail -1)
fi
if [ -z "$version" ]; then
	# Offline: the newest package already downloaded, if any.
	dsc=$(find "$out/dl" -maxdepth 1 -name "qemu_*.dsc" | sort -V | tail -1)
	[ -n "$dsc" ] || {
		cat "$out/apt/update.log" >&2
		die "cannot learn trixie's qemu version (apt-get update failed, see $out/apt/update.log) and nothing is cached"
	}
	version=${dsc##*/qemu_}
	version=${version%.dsc}
	say "warning: apt-get update failed; using the cached qemu $version"
fi
dsc=$out/dl/qemu_${version#*:}.dsc
if [ ! -f "$dsc" ]; then
	say "fetching qemu $version (trixie) into $out/dl"
	(cd "$out/dl" && apt-get "${apt_opts[@]}" source --download-only \
		"qemu=$version") >"$out/dl/download.log" 2>&1 || {
		cat "$out/dl/download.log" >&2
		die "apt-get source qemu=$version failed"
	}
	[ -f "$dsc" ] || die "apt-get source left no $dsc"
fi

# ---------------------------------------------------------------- the stamp
shopt -s nullglob
patches=("$here"/patches/*.patch)
shopt -u nullglob
patch_hash=$( (printf '%s\n' "${CONFIGURE_ARGS[@]}"
	for p in ${patches[@]+"${patches[@]}"}; do
		printf '%s\n' "${p##*/}"
		cat "$p"
	done) | sha256sum | cut -c1-16)
want_src="qemu=${version#*:} series=$patch_hash"
want="$want_src rmig=$lib_hash"
have=$(cat "$out/stamp" 2>/dev/null || true)
src=$out/src
bld=$src/build
wrapper=$out/bin/qemu-system-x86_64

if [ "${have% rmig=*}" != "$want_src" ] || [ ! -f "$bld/build.ninja" ]; then
	say "unpacking qemu $version and applying ${#patches[@]} patch(es)"
	rm -f "$out/stamp"
	rm -rf "$src"
	dpkg-source -x --no-check "$dsc" "$src" >"$out/unpack.log" 2>&1 || {
		cat "$out/unpack.log" >&2
		die "dpkg-source -x $dsc failed"
	}
	for p in ${patches[@]+"${patches[@]}"}; do
		patch -d "$src" -p1 --batch --forward -s <"$p" ||
			die "patch ${p##*/} does not apply to qemu $version"
	done
	args=("${CONFIGURE_ARGS[@]}")
	# The series' first patch adds the option; stock QEMU has none.
	if grep -q "'rmig'" "$src/meson_options.txt"; then
		args+=(--enable-rmig)
	fi
	mkdir -p "$bld"
	say "configuring (log: $bld/configure.log)"
	(cd "$bld" && PKG_CONFIG_PATH="$libdir/pkgconfig" ../configure \
		--prefix="$out/install" --extra-ldflags="-Wl,-rpath,$libdir" \
		"${args[@]}") >"$bld/configure.log" 2>&1 || {
		tail -40 "$bld/configure.log" >&2
		die "QEMU's configure failed (log: $bld/configure.log)"
	}
elif [ "$have" != "$want" ]; then
	# Only librmig changed: relink the two programs against it.
	say "librmig changed: relinking"
	rm -f "$out/stamp" "$bld/qemu-system-x86_64" \
		"$bld/tests/qtest/migration-test"
fi

if [ "$have" != "$want" ] || [ ! -x "$bld/qemu-system-x86_64" ] ||
	[ ! -x "$bld/tests/qtest/migration-test" ]; then
	say "building with ninja -j$jobs (log: $bld/ninja.log)"
	start=$SECONDS
	PKG_CONFIG_PATH="$libdir/pkgconfig" ninja -C "$bld" -j "$jobs" \
		qemu-system-x86_64 tests/qtest/migration-test >"$bld/ninja.log" 2>&1 || {
		grep -B2 -A12 -E 'error|FAILED' "$bld/ninja.log" | head -80 >&2
		die "the QEMU build failed (log: $bld/ninja.log)"
	}
	say "built in $((SECONDS - start)) s"
	echo "$want" >"$out/stamp"
fi

mkdir -p "$out/bin"
cat >"$wrapper.tmp" <<EOF
#!/bin/sh
# Generated by integrations/qemu/build.sh: the patched QEMU with the
# firmware of Debian's seabios, ipxe-qemu and qemu-system-data packages.
exec "$bld/qemu-system-x86_64" -L /usr/share/seabios -L /usr/lib/ipxe/qemu \\
	-L /usr/share/qemu "\$@"
EOF
chmod +x "$wrapper.tmp"
mv -f "$wrapper.tmp" "$wrapper"
echo "$wrapper"
