#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench-rxe.sh - rmig's page-batch bandwidth over verbs against the RDMA
# WRITE ceiling of the same device, in one run.  Meant for the soft-RoCE VM:
#
#   tests/vm/rxe-vm.sh -- perf/bench-rxe.sh [BUILD_DIR]   (or ./dev.sh bench-rxe)
#
# 1. ib_write_bw (perftest, 1 QP, RDMA WRITE, connected with librdmacm) on
#    $RMIG_RXE_DEV at $RMIG_RXE_ADDR, at the message size rmig uses per
#    packet: pages per packet x page size (default 128 x 4 KiB = 512 KiB);
#    once before and once after step 2, the reference being their mean.
#    A completion is requested every 64 writes (-Q 64; with -R perftest
#    would otherwise signal every write, which rmig does not do: it signals
#    only the last write of a batch), so this is the device's ceiling.
# 2. perf/rmig_bw --transport verbs at the same size per packet, 1 channel
#    (one RC QP, like ib_write_bw), on the same device and address.
# 3. perf/rmig_bw --transport fabric (libfabric tcp) on 127.0.0.1, for the
#    destination's CPU cost.
# Prints each bandwidth, the ratio rmig verbs / ib_write_bw (target >= 0.9)
# and the destination process's CPU seconds (user + system, all threads) per
# GiB for verbs and for tcp, then a JSON line.  Memory is faulted in before
# any clock starts (rmig_bw faults in and fills its RAM block; ib_write_bw
# allocates and registers, which pins, its buffers before it times).
# Figures are printed, never asserted; the exit status is 0 when every run
# completed.  Under TCG the absolute figures mean little (soft-RoCE in an
# emulated CPU); the ratio and the CPU comparison are measured in one VM run.
#
# Environment: RMIG_RXE_DEV, RMIG_RXE_ADDR (set by tests/vm/rxe-vm.sh; must
# be set outside the VM), RMIG_BENCH_PPP (pages per packet, default 128),
# RMIG_BENCH_PAGE (page size, 4k or 2m, default 4k), RMIG_BENCH_SIZE (bytes
# per rmig_bw iteration, default 64M), RMIG_BENCH_ITERS (timed iterations,
# default 3), RMIG_BENCH_CHANNELS (rmig channels, default 1),
# RMIG_BENCH_CQ_MOD (ib_write_bw's -Q, default 64).
set -euo pipefail

PROG=bench-rxe
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
build=${1:-${RMIG_BUILD:-$root/build/default}}
bw=$build/perf/rmig_bw
dev=${RMIG_RXE_DEV:-}
addr=${RMIG_RXE_ADDR:-}
ppp=${RMIG_BENCH_PPP:-128}
page=${RMIG_BENCH_PAGE:-4k}
size=${RMIG_BENCH_SIZE:-64M}
iters=${RMIG_BENCH_ITERS:-3}
channels=${RMIG_BENCH_CHANNELS:-1}
cqmod=${RMIG_BENCH_CQ_MOD:-64}

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
say() { printf '%s: %s\n' "$PROG" "$*"; }

[ -n "$dev" ] && [ -n "$addr" ] ||
	die "RMIG_RXE_DEV and RMIG_RXE_ADDR are not set: run it in the soft-RoCE VM (tests/vm/rxe-vm.sh -- $0) or set both to a local RDMA device and its address"
[ -x "$bw" ] || die "$bw is missing: build the tree $build first (cmake --build $build --target rmig_bw)"
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

where=natively
[ "${RMIG_IN_VM:-}" != 1 ] || where="in the soft-RoCE VM (kernel $(uname -r))"
say "device $dev at $addr, $where"
say "message size per packet: $ppp pages x $page_bytes B = $msg B"
say "memory is faulted in before timing: ib_write_bw allocates and registers (pins) its buffers before its clock starts; rmig_bw faults in (and on the source fills) its RAM block before its clock starts"
if [ "${RMIG_IN_VM:-}" = 1 ] && ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
	say "note: the VM most likely runs under TCG (emulated CPU): absolute figures mean little, compare the ratios"
fi

# --- 1. ib_write_bw ---------------------------------------------------------
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
# Before and after rmig over verbs: the reference is their mean, so a drift
# of the (shared, emulated) machine during the run shows and averages out.
ib_run 18671
ib_before=$ib_mbs

# --- 2. and 3. rmig_bw ------------------------------------------------------
# rmig_bw_run NAME BIND_ADDR PORT ARGS...: server and client, JSON lines in
# $tmp/NAME.server / NAME.client; returns non-zero (with the output shown)
# when either side fails.
rmig_bw_run() {
	local name=$1 host=$2 port=$3 rc=0
	shift 3
	taskset -c "$((ncpu - 1))" "$bw" "$@" -s "$size" -P "$ppp" \
		--page-size "$page" -b "$host" -p "$port" -t 120 \
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
		say "rmig_bw $name: the server did not start" >&2
		return 1
	fi
	timeout 600 taskset -c 0 "$bw" "$@" -s "$size" -P "$ppp" --page-size "$page" \
		-q "$channels" -n "$iters" -w 1 -p "$port" "$host" \
		>"$tmp/$name.client" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		kill "$live_pid" 2>/dev/null || true
	fi
	wait "$live_pid" || rc=$((rc ? rc : $?))
	live_pid=
	if [ "$rc" -ne 0 ]; then
		cat "$tmp/$name.server" "$tmp/$name.client" >&2
		say "rmig_bw $name failed" >&2
		return 1
	fi
}
jnum() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | tail -1; }

bad=0
v_mbs='' v_cpu='' t_mbs='' t_cpu='' ratio='' ib_after=''
if rmig_bw_run verbs "$addr" 18672 --transport verbs; then
	v_mbs=$(jnum bw_average_mb_per_sec "$tmp/verbs.server")
	v_cpu=$(jnum cpu_seconds_per_gib "$tmp/verbs.server")
	ib_run 18674
	ib_after=$ib_mbs
	ib_mbs=$(awk -v a="$ib_before" -v b="$ib_after" 'BEGIN { printf "%.2f", (a + b) / 2 }')
	ratio=$(awk -v a="$v_mbs" -v b="$ib_mbs" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }')
	say "rmig verbs: $size per iteration x $iters, $channels channel(s): $v_mbs MB/s; destination CPU $v_cpu s/GiB"
	say "ib_write_bw before and after rmig verbs: $ib_before and $ib_after MB/s, mean $ib_mbs"
else
	bad=1
fi
if rmig_bw_run tcp 127.0.0.1 18673 --transport fabric --fabric-provider tcp; then
	t_mbs=$(jnum bw_average_mb_per_sec "$tmp/tcp.server")
	t_cpu=$(jnum cpu_seconds_per_gib "$tmp/tcp.server")
	say "rmig libfabric tcp (127.0.0.1): $t_mbs MB/s; destination CPU $t_cpu s/GiB"
else
	bad=1
fi

echo
printf ' %-34s %-20s %-8s %s\n' "run ($msg B per message/packet)" \
	"BW average[MB/sec]" "ratio" "dest CPU s/GiB"
printf ' %-34s %-20s %-8s %s\n' \
	"ib_write_bw, 1 QP, $dev ($([ -n "$ib_after" ] && echo mean of 2 || echo 1 run))" \
	"$ib_mbs" "1.000" "-"
printf ' %-34s %-20s %-8s %s\n' "rmig verbs, $channels channel(s), $dev" \
	"${v_mbs:-FAILED}" "${ratio:--}" "${v_cpu:--}"
printf ' %-34s %-20s %-8s %s\n' "rmig libfabric tcp, 127.0.0.1" \
	"${t_mbs:-FAILED}" "-" "${t_cpu:--}"
echo " MB = 10^6 bytes (ib_write_bw's MiB converted); CPU: the destination process, user + system, all threads, over the timed iterations"
if [ -n "$ratio" ]; then
	verdict=$(awk -v r="$ratio" 'BEGIN { print ((r >= 0.9) ? "meets" : "below") }')
	echo " rmig verbs / ib_write_bw = $ratio ($verdict the target of 0.9)"
fi
printf '{"test":"bench-rxe","device":"%s","in_vm":%s,"message_bytes":%d,"pages_per_packet":%d,"page_size":%d,"ib_write_bw_mb_per_sec":%s,"ib_write_bw_before_after":[%s,%s],"rmig_verbs_mb_per_sec":%s,"ratio":%s,"rmig_tcp_mb_per_sec":%s,"dest_cpu_s_per_gib_verbs":%s,"dest_cpu_s_per_gib_tcp":%s,"channels":%d,"prefaulted":true}\n' \
	"$dev" "$([ "${RMIG_IN_VM:-}" = 1 ] && echo true || echo false)" \
	"$msg" "$ppp" "$page_bytes" "$ib_mbs" "$ib_before" "${ib_after:-null}" "${v_mbs:-null}" \
	"${ratio:-null}" "${t_mbs:-null}" "${v_cpu:-null}" "${t_cpu:-null}" \
	"$channels"
exit $bad
