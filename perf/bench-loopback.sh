#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench-loopback.sh - rmig_bw against the raw TCP ceiling, on 127.0.0.1 only.
#
#   perf/bench-loopback.sh [--runs N] [--baseline DIR] [--no-pin]
#                          [--pages-per-packet N] [BUILD_DIR]
#
# Rows, each measured --runs times (default 5), all rows of a run one after
# the other, so that every row sees the same stretch of the machine's noise:
# 1. iperf3 (installed from Debian if missing), one stream, 127.0.0.1, a few
#    seconds: the ceiling that libfabric tcp runs on.
# 2. rmig_bw server + client over libfabric tcp on 127.0.0.1 with 1, 2 and 4
#    channels, 2 GiB of non-zero pages per iteration, memory faulted in (and
#    the source's filled) before the clock starts, a warm-up pass, then timed
#    passes.  Every rmig_bw process runs under a timeout.
# 3. Once, 8 channels, for the memory line: peak RSS minus the RAM block, on
#    each side.
#
# Per row: the minimum, median and maximum of the runs' average bandwidths,
# and the spread of the timed iterations of all its runs, (slowest -
# fastest) / fastest; then the median's ratio to iperf3's median.
# perftest-style fixed-width table with units, then a JSON twin per row.
#
# --baseline DIR: DIR is the build directory of another tree (an older one)
#   with its own perf/rmig_bw (built already; it is not rebuilt).  Every rmig
#   row also runs that rmig_bw, back to back with this tree's (current
#   first in odd runs, the baseline first in even ones: neither tree always
#   follows the other) so both share the machine's noise, and the table
#   gains the baseline's median, current/baseline (the medians' ratio) and
#   paired (the median of the run-by-run ratios, which a slow spell over
#   several runs leaves alone).
# Placement (default, as perftest's users do with taskset): every server
#   (rmig_bw's destination, iperf3 -s) on the last CPU and every client
#   (source) on CPU 0, which is what two hosts give a migration: the
#   source's and the destination's channel threads never share a core.
#   iperf3 is measured that way and unpinned too, as its own row, and the
#   ratios are taken over iperf3's better median (one loopback TCP stream is
#   often faster on one core, where the receiver copies cache-hot data).
# --no-pin: leave placement to the scheduler.  Over loopback TCP the
#   receiver is woken from the sender's CPU and the scheduler tends to keep
#   the source's and the destination's copying threads on one core for
#   seconds at a time (measured: 2.3 GB/s there against 4.0 GB/s on two
#   cores, one channel), so unpinned iterations swing between the two.
#   On a machine busy with other work, pinned processes cannot move away
#   from it.
# --pages-per-packet N: rmig_bw's -P (default: the library's default).
#
# Figures are reported, not asserted: the exit status is 0 when every run
# completed, whatever the numbers.  One run of all rows takes about 40 s on
# an idle 2-core machine (twice the rmig part with --baseline).
#
# Environment: RMIG_BENCH_SIZE (default 2G), RMIG_BENCH_ITERS (timed passes
# per run, default 3), RMIG_BENCH_CHANNELS (default "1 2 4"), IPERF_SECONDS
# (default 5), RMIG_BENCH_TIMEOUT (seconds per rmig_bw process, default 120).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
runs=5 baseline='' pin=1 ppp=''
usage() { sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=${2:?--runs needs a value}; shift 2 ;;
	--baseline) baseline=${2:?--baseline needs a build directory}; shift 2 ;;
	--pin) pin=1; shift ;;
	--no-pin) pin=''; shift ;;
	--pages-per-packet) ppp=${2:?--pages-per-packet needs a value}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; echo "bench: unknown option '$1'" >&2; exit 2 ;;
	*) break ;;
	esac
done
build=${1:-${RMIG_BUILD:-$root/build/default}}
size=${RMIG_BENCH_SIZE:-2G}
iters=${RMIG_BENCH_ITERS:-3}
channels_list=${RMIG_BENCH_CHANNELS:-1 2 4}
iperf_secs=${IPERF_SECONDS:-5}
bw_timeout=${RMIG_BENCH_TIMEOUT:-120}
host=127.0.0.1
case $runs in '' | *[!0-9]* | 0*) echo "bench: --runs must be a positive integer, got '$runs'" >&2; exit 2 ;; esac
case $ppp in *[!0-9]* | 0*) echo "bench: --pages-per-packet must be a positive integer, got '$ppp'" >&2; exit 2 ;; esac
tmp=$(mktemp -d /tmp/rmig-bench.XXXXXX)
live_pid= # the background server running now, if any

cleanup() {
	if [ -n "$live_pid" ]; then
		kill "$live_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
# Both sides authenticate with one secret, as in production; a baseline
# built before authentication existed gets no option (its --help lacks it).
(umask 077 && head -c 32 /dev/urandom >"$tmp/migration.key")
# auth_args RMIG_BW: sets the array auth (no process substitution: the
# soft-RoCE VM has no /dev/fd).
auth_args() {
	auth=()
	if "$1" --help 2>/dev/null | grep -q -- --auth-key-file; then
		auth=(--auth-key-file "$tmp/migration.key")
	fi
}

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
bw_cur=$build/perf/rmig_bw
bw_base=
if [ -n "$baseline" ]; then
	bw_base=$baseline/perf/rmig_bw
	[ -x "$bw_base" ] || { log "bench: --baseline: $bw_base is missing (build that tree's rmig_bw first)"; exit 2; }
fi
for b in "$build" $baseline; do
	if grep -q 'RMIG_SANITIZE:STRING=.\+' "$b/CMakeCache.txt" 2>/dev/null; then
		log "bench: warning: $b is a sanitizer build; figures will be low"
	fi
done

# Placement (perftest's taskset habit): clients on CPU 0, servers on the last.
ncpu=$(nproc)
[ "$ncpu" -gt 1 ] || pin=''
cpu_client=() cpu_server=() placement="scheduler's choice (--no-pin)"
if [ -n "$pin" ]; then
	cpu_client=(taskset -c 0)
	cpu_server=(taskset -c "$((ncpu - 1))")
	placement="clients (sources) pinned to CPU 0, servers (destinations) to CPU $((ncpu - 1)) of $ncpu (taskset)"
fi
ppp_args=()
[ -z "$ppp" ] || ppp_args=(-P "$ppp")

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
# The elements of a JSON array field, space-separated.
jarr() { sed -n "s/.*\"$1\":\[\([^]]*\)\].*/\1/p" <<<"$2" | tr ',' ' '; }

# --- 1. iperf3 ceiling ------------------------------------------------------
# iperf_once PIN: one server/client pair, pinned like rmig_bw when PIN is
# not empty; sets iperf_mbs (MB/s).
iperf_once() {
	local port iperf_bps= cs=() cc=()
	if [ -n "$1" ]; then
		cs=("${cpu_server[@]}")
		cc=("${cpu_client[@]}")
	fi
	port=$(free_port)
	"${cs[@]}" iperf3 -s -B "$host" -p "$port" -1 --forceflush \
		>"$tmp/iperf-s.log" 2>&1 &
	live_pid=$!
	# The server says when it listens; wait for that (bounded) before the
	# client connects, instead of guessing how long its start takes
	# (--forceflush: into a file, iperf3 would hold that line back).
	for _ in $(seq 300); do
		grep -q 'Server listening' "$tmp/iperf-s.log" 2>/dev/null && break
		kill -0 "$live_pid" 2>/dev/null || break
		sleep 0.1
	done
	for _ in $(seq 5); do
		if timeout $((iperf_secs + 30)) "${cc[@]}" iperf3 -c "$host" \
			-p "$port" -P 1 -t "$iperf_secs" -J >"$tmp/iperf.json" 2>/dev/null; then
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
		log "bench: iperf3 on $host port $port failed:"
		cat "$tmp/iperf-s.log" "$tmp/iperf.json" >&2 || true
		return 1
	fi
	iperf_mbs=$(awk -v b="$iperf_bps" 'BEGIN { printf "%.2f", b / 8 / 1e6 }')
}
# run_iperf PIN: iperf_once, with a fresh server and port up to 3 times
# (a port that another program took between free_port and the server's
# bind fails the pair).
run_iperf() {
	for _ in 1 2 3; do
		iperf_once "$1" && return 0
		log "bench: running the iperf3 pair again on another port"
	done
	return 1
}

# --- 2./3. rmig_bw runs -----------------------------------------------------
# run_bw RMIG_BW CHANNELS ITERS: server + client; sets client_json,
# server_json.
run_bw() {
	local bw=$1 q=$2 n=$3 spid port=
	local -a auth
	auth_args "$bw"
	: >"$tmp/server.log"
	timeout "$bw_timeout" "${cpu_server[@]}" "$bw" -b "$host" -p 0 -s "$size" \
		-t "$bw_timeout" "${ppp_args[@]}" "${auth[@]}" --transport fabric \
		--fabric-provider tcp >"$tmp/server.log" 2>&1 &
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
		log "bench: rmig_bw server ($bw) did not start:"
		cat "$tmp/server.log" >&2
		return 1
	fi
	if ! timeout "$bw_timeout" "${cpu_client[@]}" "$bw" -p "$port" -s "$size" \
		-q "$q" -n "$n" -w 1 "${ppp_args[@]}" "${auth[@]}" --transport fabric \
		--fabric-provider tcp "$host" >"$tmp/client.log" 2>&1; then
		log "bench: rmig_bw client ($bw, $q channels) failed:"
		cat "$tmp/client.log" "$tmp/server.log" >&2
		return 1
	fi
	if ! wait "$spid"; then
		live_pid=
		log "bench: rmig_bw server ($bw, $q channels) failed:"
		cat "$tmp/server.log" >&2
		return 1
	fi
	live_pid=
	client_json=$(grep '^{"test":"rmig_bw"' "$tmp/client.log")
	server_json=$(grep '^{"test":"rmig_bw"' "$tmp/server.log")
}

# Per row KEY (iperf3, cur1, base1, cur2, ...): the runs' MB/s and the timed
# iterations' seconds, space-separated, appended run by run.
declare -A row_bw row_it
record_bw() { # KEY: from client_json
	row_bw[$1]+="$(jnum bw_average_mb_per_sec "$client_json") "
	row_it[$1]+="$(jarr iteration_seconds "$client_json") "
}

. "$here/bench-stats.sh"
trees=(cur)
[ -z "$bw_base" ] || trees=(cur base)
log "bench: $runs run(s); placement: $placement"
for r in $(seq "$runs"); do
	order_for "$r"
	log "bench: run $r/$runs: iperf3, one stream, ${iperf_secs} s ..."
	run_iperf "$pin"
	row_bw[iperf3]+="$iperf_mbs "
	if [ -n "$pin" ]; then
		log "bench: run $r/$runs: iperf3, one stream, ${iperf_secs} s, unpinned ..."
		run_iperf ''
		row_bw[iperf3u]+="$iperf_mbs "
	fi
	for q in $channels_list; do
		for t in "${order[@]}"; do
			bw=$bw_cur
			[ "$t" = cur ] || bw=$bw_base
			log "bench: run $r/$runs: rmig_bw ($([ "$t" = cur ] && echo current || echo baseline)), $q channel(s), $size x (1 + $iters) ..."
			run_bw "$bw" "$q" "$iters"
			record_bw "$t$q"
		done
	done
done

log "bench: rmig_bw, 8 channels, memory ..."
run_bw "$bw_cur" 8 1
src_over=$(jnum overhead_bytes "$client_json")
dst_over=$(jnum overhead_bytes "$server_json")
src_rss=$(jnum peak_rss_bytes "$client_json")
dst_rss=$(jnum peak_rss_bytes "$server_json")
ram=$(jnum ram_bytes "$client_json")


read -r ip_min ip_med ip_max <<<"$(stats "${row_bw[iperf3]}")"
# The reference ceiling: the better of iperf3's medians, pinned or not (one
# stream can be faster on one core, where the receiver copies cache-hot
# data, than split across two).
ip_ref=$ip_med
if [ -n "$pin" ]; then
	read -r iu_min iu_med iu_max <<<"$(stats "${row_bw[iperf3u]}")"
	ip_ref=$(awk -v a="$ip_med" -v b="$iu_med" 'BEGIN { print (a > b) ? a : b }')
fi
rule=------------------------------------------------------------------------------------------------------------------------
echo "$rule"
echo " rmig loopback benchmark: libfabric tcp on $host; $size of non-zero pages per iteration; MB = 10^6 bytes"
echo " memory faulted in (and the source's filled) before the clock starts; per run 1 warm-up + $iters timed"
echo " iterations of (every page queued + rmig_src_sync()); pages/packet: ${ppp:-library default}"
echo " $runs run(s) per row, rows interleaved run by run$([ -z "$bw_base" ] || echo ", current and baseline alternating, each first in every other run")"
echo " placement: $placement"
echo " iperf3: one stream, ${iperf_secs} s per run; each rmig_bw process under a ${bw_timeout} s timeout"
[ -z "$bw_base" ] || echo " baseline: $bw_base"
echo " iter spread: (slowest - fastest) / fastest over the timed iterations of all the row's runs"
[ -z "$bw_base" ] || echo " cur/base: ratio of the medians; paired: median of the run-by-run ratios (each pair ran back to back)"
echo " med/iperf3: a row's median over iperf3's better median$([ -z "$pin" ] || echo " (pinned or unpinned)"): $ip_ref MB/s"
echo "$rule"
hdr=$(printf ' %-24s %-6s %-14s %-17s %-14s %-15s %-12s' "#row" "#runs" \
	"BW min[MB/s]" "BW median[MB/s]" "BW max[MB/s]" "iter spread[%]" "med/iperf3")
[ -z "$bw_base" ] || hdr+=$(printf ' %-21s %-9s %s' "base median[MB/s]" "cur/base" "paired")
echo "$hdr"
printf ' %-24s %-6s %-14s %-17s %-14s %-15s %-12s\n' \
	"iperf3, 1 stream$([ -z "$pin" ] || echo ", pinned")" "$runs" \
	"$ip_min" "$ip_med" "$ip_max" "-" "$(ratio "$ip_med" "$ip_ref")"
jsons=()
if [ -n "$pin" ]; then
	printf ' %-24s %-6s %-14s %-17s %-14s %-15s %-12s\n' "iperf3, unpinned" "$runs" \
		"$iu_min" "$iu_med" "$iu_max" "-" "$(ratio "$iu_med" "$ip_ref")"
	jsons+=("{\"test\":\"bench-loopback\",\"row\":\"iperf3\",\"streams\":1,\"seconds\":$iperf_secs,\"runs\":$runs,\"bw_min_mb_per_sec\":$iu_min,\"bw_median_mb_per_sec\":$iu_med,\"bw_max_mb_per_sec\":$iu_max,\"runs_mb_per_sec\":[$(jlist "${row_bw[iperf3u]}")],\"pinned\":false}")
fi
jsons+=("{\"test\":\"bench-loopback\",\"row\":\"iperf3\",\"streams\":1,\"seconds\":$iperf_secs,\"runs\":$runs,\"bw_min_mb_per_sec\":$ip_min,\"bw_median_mb_per_sec\":$ip_med,\"bw_max_mb_per_sec\":$ip_max,\"runs_mb_per_sec\":[$(jlist "${row_bw[iperf3]}")],\"pinned\":$([ -n "$pin" ] && echo true || echo false)}")
for q in $channels_list; do
	for t in "${trees[@]}"; do
		read -r mn md mx <<<"$(stats "${row_bw[$t$q]}")"
		sp=$(spread "${row_it[$t$q]}")
		rat=$(ratio "$md" "$ip_ref")
		name="rmig, $q channel(s)"
		[ "$t" = cur ] || name="  baseline, $q channel(s)"
		line=$(printf ' %-24s %-6s %-14s %-17s %-14s %-15s %-12s' "$name" \
			"$runs" "$mn" "$md" "$mx" "$sp" "$rat")
		extra=
		if [ "$t" = cur ] && [ -n "$bw_base" ]; then
			read -r _ bmd _ <<<"$(stats "${row_bw[base$q]}")"
			cb=$(ratio "$md" "$bmd")
			pr=$(paired "${row_bw[$t$q]}" "${row_bw[base$q]}")
			line+=$(printf ' %-21s %-9s %s' "$bmd" "$cb" "$pr")
			extra=",\"baseline_median_mb_per_sec\":$bmd,\"ratio_current_baseline\":$cb,\"ratio_paired_median\":$(jval "$pr")"
		fi
		echo "$line"
		jsons+=("{\"test\":\"bench-loopback\",\"row\":\"rmig\",\"tree\":\"$([ "$t" = cur ] && echo current || echo baseline)\",\"transport\":\"fabric/tcp\",\"host\":\"$host\",\"channels\":$q,\"runs\":$runs,\"iterations_per_run\":$iters,\"bytes_per_iteration\":$(jnum bytes "$client_json"),\"pages_per_packet\":${ppp:-null},\"bw_min_mb_per_sec\":$mn,\"bw_median_mb_per_sec\":$md,\"bw_max_mb_per_sec\":$mx,\"runs_mb_per_sec\":[$(jlist "${row_bw[$t$q]}")],\"iteration_seconds\":[$(jlist "${row_it[$t$q]}")],\"iteration_spread_pct\":$sp,\"ratio_median_iperf3\":$rat,\"iperf3_reference_mb_per_sec\":$ip_ref$extra,\"pinned\":$([ -n "$pin" ] && echo true || echo false),\"prefaulted\":true}")
	done
done
echo "$rule"
printf '%s\n' "${jsons[@]}"
awk -v s="$src_over" -v d="$dst_over" -v sr="$src_rss" -v dr="$dst_rss" \
	-v ram="$ram" 'BEGIN {
	m = 1048576
	printf " memory, 8 channels: peak RSS minus RAM block (%.0f MiB): source %.1f MiB (RSS %.1f), destination %.1f MiB (RSS %.1f); target <= 64 MiB per side: %s\n",
		ram / m, s / m, sr / m, d / m, dr / m,
		(s <= 64 * m && d <= 64 * m) ? "met" : "NOT met" }'
echo "{\"test\":\"bench-loopback-memory\",\"channels\":8,\"ram_bytes\":$ram,\"source_overhead_bytes\":$src_over,\"destination_overhead_bytes\":$dst_over,\"source_peak_rss_bytes\":$src_rss,\"destination_peak_rss_bytes\":$dst_rss}"
targets() { # CHANNELS: "median ratio spread" of the current row
	local mn md mx
	read -r mn md mx <<<"$(stats "${row_bw[cur$1]}")"
	echo "$(ratio "$md" "$ip_ref") $(spread "${row_it[cur$1]}")"
}
if [ -n "${row_bw[cur1]:-}" ]; then
	read -r r1 s1 <<<"$(targets 1)"
	awk -v r="$r1" -v s="$s1" 'BEGIN { printf " target with 1 channel: median >= 1.20 x iperf3: %.3f (%s); iteration spread <= 15 %%: %.1f %% (%s)\n", r, (r >= 1.2 ? "met" : "NOT met"), s, (s <= 15 ? "met" : "NOT met") }'
fi
if [ -n "${row_bw[cur2]:-}" ]; then
	read -r r2 _ <<<"$(targets 2)"
	awk -v r="$r2" 'BEGIN { printf " target rmig/iperf3 >= 0.80 with 2 channels (medians): %.3f (%s)\n", r, (r >= 0.8 ? "met" : "NOT met") }'
fi
echo "$rule"
