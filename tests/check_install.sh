#!/usr/bin/env bash
# check_install.sh BUILD SRC VERSION MANDIR [MANPAGE...]
#
# cmake --install into a scratch prefix, then build a consumer of the
# installed library twice: with pkg-config and with find_package(rmig).
# Each MANPAGE (relative to MANDIR, e.g. man3/rmig_src.3 or the link page
# man3/rmig_src_create.3) must be installed and render with man -l without
# a warning, with its NAME section and VERSION in its header; every
# function lib/librmig.map exports must have a page.
set -euo pipefail
build=$1 src=$2 version=$3 mandir_rel=$4
shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -1)
test -f "$tmp/prefix/include/rmig/rmig.h"
soname=$(objdump -p "$libdir"/librmig.so | awk '/SONAME/ {print $2}')
[ "$soname" = librmig.so.0 ] || { echo "SONAME is '$soname'"; exit 1; }

export PKG_CONFIG_PATH=$libdir/pkgconfig
cc -std=c11 -Wall -Werror -o "$tmp/pc" "$src/tests/header_alone.c" \
	$(pkg-config --cflags --libs rmig) -Wl,-rpath,"$libdir"
"$tmp/pc"

mkdir -p "$tmp/consumer"
cp "$src/tests/header_alone.c" "$tmp/consumer/main.c"
cat >"$tmp/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(rmig REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer rmig::rmig)
CM
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" \
	-DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer/build" >/dev/null
"$tmp/consumer/build/consumer"
echo "install ok: pkg-config and find_package consumers built and ran"

if [ $# -eq 0 ]; then
	echo "man pages: not built here (no rst2man: Debian python3-docutils)"
	exit 0
fi
command -v man >/dev/null || { echo "man (Debian man-db) is needed"; exit 1; }
mandir=$tmp/prefix/$mandir_rel
bad=0
fail() { echo "man page $page: $*"; bad=1; }
for page in "$@"; do
	f=$mandir/$page
	if [ ! -f "$f" ]; then
		fail "not installed in $mandir_rel"
		continue
	fi
	# A link page (".so man3/rmig_src.3") renders its target, found
	# relative to the man directory as man-db does.
	target=$(sed -n '1s/^\.so //p' "$f")
	if [ -n "$target" ] && [ ! -f "$mandir/$target" ]; then
		fail "links to $target, not installed"
		continue
	fi
	shown=${target:-$page}
	grep -q "^\.TH .* \"$version\" " "$mandir/$shown" ||
		fail "header does not carry version $version"
	name=$(basename "$shown")
	name=${name%.*}
	# man -l formats with groff; --warnings passes -w to it.  Anything on
	# stderr (a groff or grotty warning, a table that does not fit) fails.
	if ! (cd "$mandir" && LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l \
		"$page") >"$tmp/out" 2>"$tmp/err"; then
		fail "man -l failed"
	fi
	if [ -s "$tmp/err" ]; then
		fail "man -l warns:"
		cat "$tmp/err"
	fi
	grep -A1 '^NAME$' "$tmp/out" | grep -q "^ *$name  *- ." ||
		fail "no NAME section naming $name"
done
# Every exported function has a page or a link page.
for fn in $(sed -n 's/^[[:space:]]*\(rmig_[a-z_]*\);.*/\1/p' \
	"$src/lib/librmig.map"); do
	page=man3/$fn.3
	[ -f "$mandir/$page" ] || fail "missing: exported $fn is in no SYNOPSIS"
done
[ "$bad" -eq 0 ] || exit 1
echo "man pages ok: $# installed, each rendered by man -l without a warning"
