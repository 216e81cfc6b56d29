#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench-rxe.sh - rmig's page-batch bandwidth over verbs against the RDMA
# WRITE ceiling of the same device, in one run.  Meant for the soft-RoCE VM:
#
#   tests/vm/rxe-vm.sh -- perf/bench-rxe.sh [--runs N] [--baseline DIR] [BUILD_DIR]
#   ./dev.sh bench-rxe [--runs N] [--baseline DIR]
#
# Rows, each measured --runs times (default 5), all rows of a run one after
# the other so that every row sees the same stretch of the machine's noise:
# 1. ib_write_bw (perftest, 1 QP, RDMA WRITE, connected with librdmacm) on
#    $RMIG_RXE_DEV at $RMIG_RXE_ADDR, at the message size rmig uses per
#    packet: pages per packet x page size (default 128 x 4 KiB = 512 KiB).
#    A completion is requested every 64 writes (-Q 64; with -R perftest
#    would otherwise signal every write, which rmig does not do: it signals
#    only the last write of a batch), so this is the device's ceiling.
# 2. perf/rmig_bw --transport verbs at the same size per packet, with each
#    of $RMIG_BENCH_CHANNELS channels (default "1 4"; 1 channel is one RC QP,
#    like ib_write_bw), on the same device and address.
# 3. perf/rmig_bw --transport fabric (libfabric tcp) on 127.0.0.1, 1
#    channel, for the destination's CPU cost.
# Per row: minimum, median and maximum of the runs' bandwidths (MB = 10^6
# bytes; ib_write_bw's MiB converted), the spread of rmig's timed iterations
# over all the row's runs ((slowest - fastest) / fastest), the ratio of the
# median to ib_write_bw's median (target >= 0.9 with 1 channel) and the
# destination process's CPU seconds (user + system, all threads) per GiB
# (median); a fixed-width table, then a JSON twin per row.
#
# --baseline DIR: DIR is the build directory of another (older) tree with
#   its own perf/rmig_bw, built already.  Every rmig row also runs that
#   rmig_bw, back to back with this tree's (current first in odd runs, the
#   baseline first in even ones) so both share the machine's noise; the
#   table gains the baseline's median, current/baseline (the medians'
#   ratio) and paired (the median of the run-by-run ratios).  Inside the VM, DIR must be visible (the VM
#   sees the host's / read-only: any host path works).
#
# Memory is faulted in before any clock starts (rmig_bw faults in and fills
# its RAM block; ib_write_bw allocates and registers, which pins, its
# buffers before it times).  Every server runs on the last CPU, every client
# on CPU 0 (taskset, as perftest's users do).  Every process runs under a
# timeout.  Figures are printed, never asserted; the exit status is 0 when
# every run completed.  Under TCG the absolute figures mean little
# (soft-RoCE in an emulated CPU); the ratios are measured in one VM run.
#
# Environment: RMIG_RXE_DEV, RMIG_RXE_ADDR (set by tests/vm/rxe-vm.sh; must
# be set outside the VM), RMIG_BENCH_PPP (pages per packet, default 128),
# RMIG_BENCH_PAGE (page size, 4k or 2m, default 4k), RMIG_BENCH_SIZE (bytes
# per rmig_bw iteration, default 64M), RMIG_BENCH_ITERS (timed iterations
# per run, default 3), RMIG_BENCH_CHANNELS (rmig verbs rows, default "1 4"),
# RMIG_BENCH_CQ_MOD (ib_write_bw's -Q, default 64), RMIG_BENCH_TIMEOUT
# (seconds per rmig_bw process, default 600).
set -euo pipefail

PROG=bench-rxe
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
runs=5 baseline=''
usage() { sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=${2:?--runs needs a value}; shift 2 ;;
	--baseline) baseline=${2:?--baseline needs a build directory}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; printf '%s: error: unknown option %s\n' "$PROG" "$1" >&2; exit 2 ;;
	*) break ;;
	esac
done
build=${1:-${RMIG_BUILD:-$root/build/default}}
bw=$build/perf/rmig_bw
dev=${RMIG_RXE_DEV:-}
addr=${RMIG_RXE_ADDR:-}
ppp=${RMIG_BENCH_PPP:-128}
page=${RMIG_BENCH_PAGE:-4k}
size=${RMIG_BENCH_SIZE:-64M}
iters=${RMIG_BENCH_ITERS:-3}
channels_list=${RMIG_BENCH_CHANNELS:-1 4}
cqmod=${RMIG_BENCH_CQ_MOD:-64}
bw_timeout=${RMIG_BENCH_TIMEOUT:-600}

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
say() { printf '%s: %s\n' "$PROG" "$*"; }

case $runs in '' | *[!0-9]* | 0*) die "--runs must be a positive integer, got '$runs'" ;; esac
[ -n "$dev" ] && [ -n "$addr" ] ||
	die "RMIG_RXE_DEV and RMIG_RXE_ADDR are not set: run it in the soft-RoCE VM (tests/vm/rxe-vm.sh -- $0) or set both to a local RDMA device and its address"
[ -x "$bw" ] || die "$bw is missing: build the tree $build first (cmake --build $build --target rmig_bw)"
bw_base=
if [ -n "$baseline" ]; then
	bw_base=$baseline/perf/rmig_bw
	[ -x "$bw_base" ] || die "--baseline: $bw_base is missing (build that tree's rmig_bw first)"
fi
for c in ib_write_bw timeout awk taskset numfmt; do
	command -v "$c" >/dev/null || die "'$c' is missing (Debian package perftest)"
done
case $page in
4k | 4K | 4096) page_bytes=4096 ;;
2m | 2M | 2097152) page_bytes=2097152 ;;
*) die "RMIG_BENCH_PAGE must be 4k or 2m, got '$page'" ;;
esac
case $ppp in
'' | *[!0-9]* | 0*) die "RMIG_BENCH_PPP must be a positive integer, got '$ppp'" ;;
esac
msg=$((ppp * page_bytes))

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-rxe.XXXXXX")
live_pid=
cleanup() {
	if [ -n "$live_pid" ]; then
		kill "$live_pid" 2>/dev/null || true
		wait "$live_pid" 2>/dev/null || true
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

where=natively
[ "${RMIG_IN_VM:-}" != 1 ] || where="in the soft-RoCE VM (kernel $(uname -r))"
say "device $dev at $addr, $where; $runs run(s) per row"
say "message size per packet: $ppp pages x $page_bytes B = $msg B"
say "memory is faulted in before timing: ib_write_bw allocates and registers (pins) its buffers before its clock starts; rmig_bw faults in (and on the source fills) its RAM block before its clock starts"
if [ "${RMIG_IN_VM:-}" = 1 ] && ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
	say "note: the VM most likely runs under TCG (emulated CPU): absolute figures mean little, compare the ratios"
fi

# --- ib_write_bw ------------------------------------------------------------
# Enough iterations to move about the same bytes as one rmig_bw iteration
# series, at least 20.
size_bytes=$(numfmt --from=iec "$size" 2>/dev/null) ||
	die "RMIG_BENCH_SIZE '$size' is not a size (64M, 1G, 1048576...)"
ib_iters=$((size_bytes * iters / msg))
[ "$ib_iters" -ge 20 ] || ib_iters=20
# Every client runs on CPU 0, every server on the last CPU: perftest times
# with the TSC, on which a VM's vCPUs may disagree ("TSCs unsynchronized"
# under TCG), and rmig_bw gets the same placement, for a fair ratio.
ncpu=$(nproc)
say "placement: clients (sources) on CPU 0, servers (destinations) on CPU $((ncpu - 1)) of $ncpu"

# ib_once PORT: one server/client pair; sets ib_mib (MiB/s, perftest's
# unit) and ib_floor (MiB/s: bytes over the client's whole wall time, setup
# included, a lower bound of the true figure).
ib_once() {
	local port=$1 ok='' rc=0 t0 t1
	local args=(-d "$dev" -R -s "$msg" -n "$ib_iters" -p "$port" -F -Q "$cqmod")
	timeout 300 taskset -c "$((ncpu - 1))" ib_write_bw "${args[@]}" \
		>"$tmp/ib-server" 2>&1 &
	live_pid=$!
	for _ in $(seq 20); do
		sleep 1
		t0=$(date +%s.%N)
		if timeout 300 taskset -c 0 ib_write_bw "${args[@]}" "$addr" \
			>"$tmp/ib-client" 2>&1; then
			t1=$(date +%s.%N)
			ok=1
			break
		fi
		kill -0 "$live_pid" 2>/dev/null || break
	done
	wait "$live_pid" || rc=$?
	live_pid=
	if [ -z "$ok" ] || [ "$rc" -ne 0 ]; then
		cat "$tmp/ib-server" "$tmp/ib-client" >&2
		die "ib_write_bw did not complete (server exit $rc)"
	fi
	# Row: #bytes #iterations BW peak[MiB/sec] BW average[MiB/sec] MsgRate
	ib_mib=$(awk -v m="$msg" '$1 == m && NF >= 5 { print $4; exit }' "$tmp/ib-client")
	[ -n "$ib_mib" ] || { cat "$tmp/ib-client" >&2; die "no result row in ib_write_bw's output"; }
	ib_floor=$(awk -v b="$((msg * ib_iters))" -v t0="$t0" -v t1="$t1" \
		'BEGIN { printf "%.2f", b / (t1 - t0) / 1048576 }')
}
# ib_run PORT: ib_once, again (3 tries) while perftest's figure is below
# the wall-clock floor (its clock went wrong); sets ib_mbs (MB/s, 10^6).
ib_run() {
	for _ in 1 2 3; do
		ib_once "$1"
		if awk -v a="$ib_mib" -v f="$ib_floor" 'BEGIN { exit !(a >= f) }'; then
			ib_mbs=$(awk -v x="$ib_mib" 'BEGIN { printf "%.2f", x * 1048576 / 1e6 }')
			say "ib_write_bw: $msg B x $ib_iters writes, 1 QP, -Q $cqmod: $ib_mib MiB/s = $ib_mbs MB/s (wall-clock floor $ib_floor MiB/s)"
			return 0
		fi
		say "ib_write_bw reported $ib_mib MiB/s, below the wall-clock floor of $ib_floor MiB/s: its clock is wrong, running it again"
	done
	die "ib_write_bw's figure stayed below the wall-clock floor in 3 runs"
}

# --- rmig_bw ----------------------------------------------------------------
# rmig_bw_run NAME RMIG_BW BIND_ADDR PORT CHANNELS ARGS...: server and
# client, output in $tmp/NAME.server / NAME.client; returns non-zero (with
# the output shown) when either side fails.
rmig_bw_run() {
	local name=$1 prog=$2 host=$3 port=$4 q=$5 rc=0
	local -a auth
	shift 5
	auth_args "$prog"
	set -- "$@" "${auth[@]}"
	timeout "$bw_timeout" taskset -c "$((ncpu - 1))" "$prog" "$@" -s "$size" \
		-P "$ppp" --page-size "$page" -b "$host" -p "$port" -t 120 \
		>"$tmp/$name.server" 2>&1 &
	live_pid=$!
	for _ in $(seq 600); do
		grep -q 'ready, listening' "$tmp/$name.server" && break
		kill -0 "$live_pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q 'ready, listening' "$tmp/$name.server"; then
		wait "$live_pid" || true
		live_pid=
		cat "$tmp/$name.server" >&2
		say "rmig_bw $name ($prog): the server did not start" >&2
		return 1
	fi
	timeout "$bw_timeout" taskset -c 0 "$prog" "$@" -s "$size" -P "$ppp" \
		--page-size "$page" -q "$q" -n "$iters" -w 1 -p "$port" "$host" \
		>"$tmp/$name.client" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		kill "$live_pid" 2>/dev/null || true
	fi
	wait "$live_pid" || rc=$((rc ? rc : $?))
	live_pid=
	if [ "$rc" -ne 0 ]; then
		cat "$tmp/$name.server" "$tmp/$name.client" >&2
		say "rmig_bw $name ($prog) failed" >&2
		return 1
	fi
}
jnum() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | tail -1; }
jarr() { sed -n "s/.*\"$1\":\[\([^]]*\)\].*/\1/p" "$2" | tail -1 | tr ',' ' '; }

# Per row KEY (ib, cur-v1, base-v1, cur-v4, ..., cur-tcp, base-tcp): the
# runs' MB/s, the timed iterations' seconds and the destination's CPU s/GiB,
# space-separated, appended run by run.
declare -A row_bw row_it row_cpu
. "$here/bench-stats.sh"
trees=(cur)
[ -z "$bw_base" ] || trees=(cur base)
bad=0
port=18671
# next_port: a fresh port per pair, so no run waits for the last one's
# TIME_WAIT.
next_port() { port=$((port + 1)); }
for r in $(seq "$runs"); do
	order_for "$r"
	say "run $r/$runs"
	next_port
	ib_run "$port"
	row_bw[ib]+="$ib_mbs "
	for spec in $(for q in $channels_list; do echo "v$q"; done) tcp; do
		for t in "${order[@]}"; do
			prog=$bw
			[ "$t" = cur ] || prog=$bw_base
			key=$t-$spec
			next_port
			if [ "$spec" = tcp ]; then
				rmig_bw_run "$key" "$prog" 127.0.0.1 "$port" 1 \
					--transport fabric --fabric-provider tcp || { bad=1; continue; }
			else
				rmig_bw_run "$key" "$prog" "$addr" "$port" "${spec#v}" \
					--transport verbs || { bad=1; continue; }
			fi
			row_bw[$key]+="$(jnum bw_average_mb_per_sec "$tmp/$key.server") "
			row_it[$key]+="$(jarr iteration_seconds "$tmp/$key.server") "
			row_cpu[$key]+="$(jnum cpu_seconds_per_gib "$tmp/$key.server") "
			say "  rmig $([ "$t" = cur ] && echo current || echo baseline) $spec: $(jnum bw_average_mb_per_sec "$tmp/$key.server") MB/s"
		done
	done
done


read -r ib_min ib_med ib_max <<<"$(stats "${row_bw[ib]:-}")"
rule=-----------------------------------------------------------------------------------------------------------------------------
echo
echo "$rule"
echo " rmig over soft-RoCE ($dev) vs ib_write_bw; $msg B per message/packet ($ppp x $page_bytes B); $size x (1 warm-up + $iters timed) per rmig run"
echo " $runs run(s) per row, rows interleaved run by run$([ -z "$bw_base" ] || echo ", current and baseline alternating, each first in every other run"); MB = 10^6 bytes"
echo " memory faulted in before every clock; clients on CPU 0, servers on CPU $((ncpu - 1)); every process under a timeout"
[ -z "$bw_base" ] || echo " baseline: $bw_base"
echo " iter spread: (slowest - fastest) / fastest over the timed iterations of all the row's runs; dest CPU: s/GiB, median"
[ -z "$bw_base" ] || echo " cur/base: ratio of the medians; paired: median of the run-by-run ratios (each pair ran back to back)"
echo "$rule"
hdr=$(printf ' %-28s %-13s %-16s %-13s %-15s %-9s %-9s' "#row" "BW min[MB/s]" \
	"BW median[MB/s]" "BW max[MB/s]" "iter spread[%]" "/ib_write" "dest CPU")
[ -z "$bw_base" ] || hdr+=$(printf ' %-18s %-9s %s' "base median[MB/s]" "cur/base" "paired")
echo "$hdr"
printf ' %-28s %-13s %-16s %-13s %-15s %-9s %-9s\n' "ib_write_bw, 1 QP" "$ib_min" \
	"$ib_med" "$ib_max" "-" "1.000" "-"
jsons=("{\"test\":\"bench-rxe\",\"row\":\"ib_write_bw\",\"device\":\"$dev\",\"message_bytes\":$msg,\"runs\":$runs,\"bw_min_mb_per_sec\":$(jval "$ib_min"),\"bw_median_mb_per_sec\":$(jval "$ib_med"),\"bw_max_mb_per_sec\":$(jval "$ib_max"),\"runs_mb_per_sec\":[$(jlist "${row_bw[ib]:-}")]}")
v1_ratio=
for spec in $(for q in $channels_list; do echo "v$q"; done) tcp; do
	for t in "${trees[@]}"; do
		key=$t-$spec
		read -r mn md mx <<<"$(stats "${row_bw[$key]:-}")"
		sp=$(spread "${row_it[$key]:-}")
		read -r _ cpu _ <<<"$(stats "${row_cpu[$key]:-}")"
		if [ "$spec" = tcp ]; then
			name="rmig tcp 127.0.0.1, 1 ch"
			rat=-
		else
			name="rmig verbs, ${spec#v} channel(s)"
			rat=$(ratio "$md" "$ib_med")
		fi
		[ "$t" = cur ] || name="  baseline"
		[ "$t/$spec" != cur/v1 ] || v1_ratio=$rat
		line=$(printf ' %-28s %-13s %-16s %-13s %-15s %-9s %-9s' "$name" "$mn" \
			"$md" "$mx" "$sp" "$rat" "$cpu")
		extra=
		if [ "$t" = cur ] && [ -n "$bw_base" ]; then
			read -r _ bmd _ <<<"$(stats "${row_bw[base-$spec]:-}")"
			cb=$(ratio "$md" "$bmd")
			pr=$(paired "${row_bw[$key]:-}" "${row_bw[base-$spec]:-}")
			line+=$(printf ' %-18s %-9s %s' "$bmd" "$cb" "$pr")
			extra=",\"baseline_median_mb_per_sec\":$(jval "$bmd"),\"ratio_current_baseline\":$(jval "$cb"),\"ratio_paired_median\":$(jval "$pr")"
		fi
		echo "$line"
		jsons+=("{\"test\":\"bench-rxe\",\"row\":\"rmig\",\"tree\":\"$([ "$t" = cur ] && echo current || echo baseline)\",\"transport\":\"$([ "$spec" = tcp ] && echo fabric/tcp || echo verbs)\",\"device\":\"$([ "$spec" = tcp ] && echo 127.0.0.1 || echo "$dev")\",\"channels\":$([ "$spec" = tcp ] && echo 1 || echo "${spec#v}"),\"runs\":$runs,\"message_bytes\":$msg,\"pages_per_packet\":$ppp,\"page_size\":$page_bytes,\"bw_min_mb_per_sec\":$(jval "$mn"),\"bw_median_mb_per_sec\":$(jval "$md"),\"bw_max_mb_per_sec\":$(jval "$mx"),\"runs_mb_per_sec\":[$(jlist "${row_bw[$key]:-}")],\"iteration_seconds\":[$(jlist "${row_it[$key]:-}")],\"iteration_spread_pct\":$(jval "$sp"),\"ratio_median_ib_write_bw\":$(jval "$rat"),\"dest_cpu_s_per_gib_median\":$(jval "$cpu")$extra,\"in_vm\":$([ "${RMIG_IN_VM:-}" = 1 ] && echo true || echo false),\"prefaulted\":true}")
	done
done
echo "$rule"
printf '%s\n' "${jsons[@]}"
if [ -n "$v1_ratio" ] && [ "$v1_ratio" != - ]; then
	verdict=$(awk -v r="$v1_ratio" 'BEGIN { print ((r >= 0.9) ? "meets" : "below") }')
	echo " rmig verbs 1 channel / ib_write_bw (medians) = $v1_ratio ($verdict the target of 0.9)"
fi
exit $bad
