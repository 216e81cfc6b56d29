#!/usr/bin/env bash
# cmake --install into a scratch prefix, then build a consumer of the
# installed library twice: with pkg-config and with find_package(rmig).
set -euo pipefail
build=$1 src=$2
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
