#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench-instr.sh - the user-space instructions rmig_bw executes per GiB
# moved, per side and per library, counted by valgrind's callgrind: a cost
# figure that the load of a shared machine does not move, for before/after
# comparisons that wall-clock bandwidth cannot resolve here.
#
#   perf/bench-instr.sh [--baseline DIR] [--channels "1 4"] [BUILD_DIR]
#
# For each tree (BUILD_DIR, default build/default; and DIR's, when given)
# and channel count, rmig_bw server and client run under callgrind over
# libfabric tcp on 127.0.0.1, 256 MiB per iteration, twice: with 3 and with
# 11 timed iterations.  The difference (8 iterations, 2 GiB) cancels
# start-up, fault-in, connect and teardown: what remains is the per-GiB
# cost of the data path.  Per side, the total and its split by object
# (librmig, libfabric, libc without memcpy, memcpy and memmove, libcrypto,
# the rest).  Kernel work (the TCP copy, most of the CPU time) is not
# counted.  memcpy depends on timing (libfabric's tcp provider copies
# through a staging buffer when a read returns a partial message), so it
# varies from run to run; the other columns repeat within a few tenths of
# a percent.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
base= channels="1 4" build=$root/build/default
while [ $# -gt 0 ]; do
	case $1 in
	--baseline) base=${2:?--baseline needs a build directory}; shift 2 ;;
	--channels) channels=${2:?--channels needs a list}; shift 2 ;;
	-h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "bench-instr: unknown option '$1'" >&2; exit 2 ;;
	*) build=$1; shift ;;
	esac
done
command -v valgrind >/dev/null || { echo "bench-instr: valgrind is missing (Debian package valgrind)" >&2; exit 1; }
cmake --build "$build" --target rmig_bw -j "$(nproc)" >/dev/null
trees=("$build")
[ -z "$base" ] || trees+=("$base")
for t in "${trees[@]}"; do
	[ -x "$t/perf/rmig_bw" ] || { echo "bench-instr: no $t/perf/rmig_bw" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-instr.XXXXXX")
spid=
trap '[ -z "$spid" ] || kill "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT
head -c 32 /dev/urandom >"$tmp/key"
chmod 600 "$tmp/key"

# one BW CHANNELS ITERS TAG: a pair under callgrind; TAG.srv, TAG.cli.
one() {
	local bw=$1 ch=$2 n=$3 tag=$4 port i auth=()
	"$bw" --help 2>&1 | grep -q auth-key-file && auth=(--auth-key-file "$tmp/key")
	valgrind --tool=callgrind --callgrind-out-file="$tmp/$tag.srv" \
		"$bw" -b 127.0.0.1 -p 0 -s 256M -q "$ch" "${auth[@]}" \
		--fabric-provider tcp -t 300 >"$tmp/srv.log" 2>&1 &
	spid=$!
	port=
	for i in $(seq 600); do
		port=$(grep -oP 'ready, listening on \S+:\K[0-9]+' "$tmp/srv.log" 2>/dev/null) && break
		sleep 0.1
	done
	[ -n "$port" ] || { echo "bench-instr: the server did not start:" >&2; cat "$tmp/srv.log" >&2; exit 1; }
	valgrind --tool=callgrind --callgrind-out-file="$tmp/$tag.cli" \
		"$bw" -p "$port" -s 256M -q "$ch" -n "$n" "${auth[@]}" \
		--fabric-provider tcp 127.0.0.1 >"$tmp/cli.log" 2>&1 ||
		{ echo "bench-instr: the client failed:" >&2; cat "$tmp/cli.log" >&2; exit 1; }
	wait "$spid" || { echo "bench-instr: the server failed:" >&2; cat "$tmp/srv.log" >&2; exit 1; }
	spid=
}

# split FILE: "total librmig libfabric libc memcpy libcrypto rest" (Ir).
split() {
	callgrind_annotate --threshold=100 "$1" 2>/dev/null | awk '
	/^ *[0-9,]+ +\([ 0-9.]+%\) +[^ ]+:[^ ]+ \[/ {
		n = $1; gsub(",", "", n)
		obj = $0; sub(/.*\[/, "", obj); sub(/\].*/, "", obj)
		fn = $0; sub(/^ *[0-9,]+ +\([ 0-9.]+%\) +/, "", fn)
		k = "rest"
		if (fn ~ /memcpy|memmove/) k = "memcpy"
		else if (obj ~ /librmig/) k = "librmig"
		else if (obj ~ /libfabric/) k = "libfabric"
		else if (obj ~ /libcrypto/) k = "libcrypto"
		else if (obj ~ /libc\.so/) k = "libc"
		v[k] += n; tot += n
	}
	END { printf "%d %d %d %d %d %d %d\n", tot, v["librmig"], v["libfabric"], v["libc"], v["memcpy"], v["libcrypto"], v["rest"] }'
}

echo "bench-instr: callgrind, libfabric tcp on 127.0.0.1, 256 MiB per iteration; (11 - 3 iterations) = 2 GiB counted" >&2
printf '%-8s %-4s %-5s %14s %12s %12s %12s %12s %12s %12s\n' tree ch side \
	"total/GiB" librmig libfabric "libc-memcpy" memcpy libcrypto rest
for ch in $channels; do
	for t in "${trees[@]}"; do
		name=current
		[ "$t" = "$build" ] || name=baseline
		echo "bench-instr: $name, $ch channel(s) ..." >&2
		one "$t/perf/rmig_bw" "$ch" 3 a
		one "$t/perf/rmig_bw" "$ch" 11 b
		for side in cli srv; do
			read -r -a a <<<"$(split "$tmp/a.$side")"
			read -r -a b <<<"$(split "$tmp/b.$side")"
			printf '%-8s %-4s %-5s' "$name" "$ch" "$([ $side = cli ] && echo src || echo dst)"
			for i in 0 1 2 3 4 5 6; do
				printf ' %12.2fM' "$(awk -v x="${b[$i]}" -v y="${a[$i]}" 'BEGIN { print (x - y) / 2 / 1e6 }')"
			done
			echo
		done
	done
done
echo "(instructions per GiB moved, in millions; kernel work not counted)"
