#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench-loopback.sh - rmig_bw against the raw TCP ceiling, on 127.0.0.1 only.
#
#   perf/bench-loopback.sh [BUILD_DIR]        (default: build/default)
#
# 1. iperf3 (installed from Debian if missing), one stream, 127.0.0.1, a few
#    seconds: the ceiling that libfabric tcp runs on.
# 2. rmig_bw server + client over libfabric tcp on 127.0.0.1 with 1, 2 and 4
#    channels, 2 GiB of non-zero pages per iteration, memory faulted in before
#    the clock starts, a warm-up pass, then timed passes.
# 3. The same with 8 channels, for the memory line: peak RSS minus the RAM
#    block, on each side.
#
# Prints a perftest-like table with rmig/iperf3, a JSON line per row, and the
# memory line.  Figures are reported, not asserted: the exit status is 0 when
# every run completed, whatever the numbers.  The whole script takes about
# two minutes here (2 cores).
#
# Environment: RMIG_BENCH_SIZE (default 2G), RMIG_BENCH_ITERS (timed passes,
# default 3), RMIG_BENCH_CHANNELS (default "1 2 4"), IPERF_SECONDS (default 5).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
build=${1:-${RMIG_BUILD:-$root/build/default}}
size=${RMIG_BENCH_SIZE:-2G}
iters=${RMIG_BENCH_ITERS:-3}
channels_list=${RMIG_BENCH_CHANNELS:-1 2 4}
iperf_secs=${IPERF_SECONDS:-5}
host=127.0.0.1
tmp=$(mktemp -d /tmp/rmig-bench.XXXXXX)
live_pid= # the background server running now, if any

cleanup() {
	if [ -n "$live_pid" ]; then
		kill "$live_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }

# --- iperf3 -----------------------------------------------------------------
if ! command -v iperf3 >/dev/null 2>&1; then
	log "bench: installing iperf3 (Debian package)"
	sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
		--no-install-recommends iperf3 >/dev/null
fi

# --- rmig_bw ----------------------------------------------------------------
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target rmig_bw -j "$(nproc)" >/dev/null
bw=$build/perf/rmig_bw
if grep -q 'RMIG_SANITIZE:STRING=.\+' "$build/CMakeCache.txt"; then
	log "bench: warning: $build is a sanitizer build; figures will be low"
fi

# A free port on 127.0.0.1: nobody answers a connect there.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/$host/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# Value of a numeric JSON field in a one-line object.
jnum() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" <<<"$2"; }

# --- 1. iperf3 ceiling ------------------------------------------------------
port=$(free_port)
iperf3 -s -B "$host" -p "$port" -1 >"$tmp/iperf-s.log" 2>&1 &
live_pid=$!
iperf_bps=
# The server says when it listens; wait for that (bounded) before the client
# connects, instead of guessing how long its start takes on a loaded machine.
for _ in $(seq 300); do
	grep -q 'Server listening' "$tmp/iperf-s.log" 2>/dev/null && break
	kill -0 "$live_pid" 2>/dev/null || break
	sleep 0.1
done
for _ in $(seq 5); do
	if iperf3 -c "$host" -p "$port" -P 1 -t "$iperf_secs" -J \
		>"$tmp/iperf.json" 2>/dev/null; then
		iperf_bps=$(awk '/"sum_received"/ { f = 1 }
			f && /"bits_per_second"/ {
				sub(/.*"bits_per_second":[ \t]*/, ""); sub(/[,}].*/, "")
				print; exit }' "$tmp/iperf.json")
		break
	fi
	sleep 0.5
done
# A one-off server (-1) that never got its client would wait for ever.
[ -n "$iperf_bps" ] || kill "$live_pid" 2>/dev/null || true
wait "$live_pid" 2>/dev/null || true
live_pid=
if [ -z "$iperf_bps" ]; then
	log "bench: iperf3 on $host failed:"
	cat "$tmp/iperf-s.log" "$tmp/iperf.json" >&2 || true
	exit 1
fi
iperf_mbs=$(awk -v b="$iperf_bps" 'BEGIN { printf "%.2f", b / 8 / 1e6 }')

# --- 2./3. rmig_bw runs -----------------------------------------------------
# run_bw CHANNELS ITERS: server + client; sets client_json, server_json.
run_bw() {
	local q=$1 n=$2 spid port=
	: >"$tmp/server.log"
	timeout 120 "$bw" -b "$host" -p 0 -s "$size" -t 120 \
		--transport fabric --fabric-provider tcp >"$tmp/server.log" 2>&1 &
	spid=$!
	live_pid=$spid
	for _ in $(seq 600); do
		port=$(sed -n 's/^ ready, listening on .*:\([0-9]*\)$/\1/p' \
			"$tmp/server.log")
		[ -n "$port" ] && break
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$port" ]; then
		log "bench: rmig_bw server did not start:"
		cat "$tmp/server.log" >&2
		return 1
	fi
	if ! timeout 120 "$bw" -p "$port" -s "$size" -q "$q" -n "$n" -w 1 \
		--transport fabric --fabric-provider tcp "$host" \
		>"$tmp/client.log" 2>&1; then
		log "bench: rmig_bw client ($q channels) failed:"
		cat "$tmp/client.log" "$tmp/server.log" >&2
		return 1
	fi
	if ! wait "$spid"; then
		live_pid=
		log "bench: rmig_bw server ($q channels) failed:"
		cat "$tmp/server.log" >&2
		return 1
	fi
	live_pid=
	client_json=$(grep '^{"test":"rmig_bw"' "$tmp/client.log")
	server_json=$(grep '^{"test":"rmig_bw"' "$tmp/server.log")
}

rows=()
jsons=()
ratio2=
for q in $channels_list; do
	log "bench: rmig_bw, $q channel(s), $size per iteration ..."
	run_bw "$q" "$iters"
	peak=$(jnum bw_peak_mb_per_sec "$client_json")
	avg=$(jnum bw_average_mb_per_sec "$client_json")
	mpps=$(jnum msg_rate_mpps "$client_json")
	bytes=$(jnum bytes "$client_json")
	ratio=$(awk -v a="$avg" -v b="$iperf_mbs" 'BEGIN { printf "%.3f", a / b }')
	[ "$q" = 2 ] && ratio2=$ratio
	rows+=("$(printf ' %-10s %-14s %-13s %-18.2f %-20.2f %-15.6f %.3f' \
		"$q" "$bytes" "$iters" "$peak" "$avg" "$mpps" "$ratio")")
	jsons+=("{\"test\":\"bench-loopback\",\"transport\":\"fabric/tcp\",\"host\":\"$host\",\"channels\":$q,\"bytes\":$bytes,\"iterations\":$iters,\"bw_peak_mb_per_sec\":$peak,\"bw_average_mb_per_sec\":$avg,\"msg_rate_mpps\":$mpps,\"iperf3_mb_per_sec\":$iperf_mbs,\"ratio_rmig_iperf3\":$ratio,\"prefaulted\":true}")
done

log "bench: rmig_bw, 8 channels, memory ..."
run_bw 8 1
src_over=$(jnum overhead_bytes "$client_json")
dst_over=$(jnum overhead_bytes "$server_json")
src_rss=$(jnum peak_rss_bytes "$client_json")
dst_rss=$(jnum peak_rss_bytes "$server_json")
ram=$(jnum ram_bytes "$client_json")

# --- report -----------------------------------------------------------------
rule=-----------------------------------------------------------------------------------------------------------
echo "$rule"
echo " rmig loopback benchmark: libfabric tcp on $host; $size of non-zero pages per iteration;"
echo " memory faulted in (and the source's filled) before the clock starts; 1 warm-up, $iters timed"
echo " iterations of (every page queued + rmig_src_sync()); MB = 10^6 bytes; MsgRate = page packets"
echo " iperf3 ceiling: one stream, $host, ${iperf_secs} s: $iperf_mbs MB/sec"
echo "$rule"
printf ' %-10s %-14s %-13s %-18s %-20s %-15s %s\n' "#channels" "#bytes" \
	"#iterations" "BW peak[MB/sec]" "BW average[MB/sec]" "MsgRate[Mpps]" \
	"rmig/iperf3"
for r in "${rows[@]}"; do
	echo "$r"
done
echo "$rule"
for j in "${jsons[@]}"; do
	echo "$j"
done
echo "{\"test\":\"bench-loopback\",\"iperf3_mb_per_sec\":$iperf_mbs,\"iperf3_streams\":1,\"iperf3_seconds\":$iperf_secs,\"host\":\"$host\"}"
awk -v s="$src_over" -v d="$dst_over" -v sr="$src_rss" -v dr="$dst_rss" \
	-v ram="$ram" 'BEGIN {
	m = 1048576
	printf " memory, 8 channels: peak RSS minus RAM block (%.0f MiB): source %.1f MiB (RSS %.1f), destination %.1f MiB (RSS %.1f); target <= 64 MiB per side: %s\n",
		ram / m, s / m, sr / m, d / m, dr / m,
		(s <= 64 * m && d <= 64 * m) ? "met" : "NOT met" }'
echo "{\"test\":\"bench-loopback-memory\",\"channels\":8,\"ram_bytes\":$ram,\"source_overhead_bytes\":$src_over,\"destination_overhead_bytes\":$dst_over,\"source_peak_rss_bytes\":$src_rss,\"destination_peak_rss_bytes\":$dst_rss}"
if [ -n "$ratio2" ]; then
	awk -v r="$ratio2" 'BEGIN { printf " target rmig/iperf3 >= 0.80 with 2 channels: %.3f (%s)\n", r, (r >= 0.8 ? "met" : "NOT met") }'
fi
echo "$rule"
