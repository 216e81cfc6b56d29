#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench-postcopy.sh - pre-copy, post-copy and hybrid live migration of a
# running guest against its dirty rate, with the fault service time next
# to a single RDMA READ's round trip and the source's CPU during the pull,
# in one run (issue 11's figures):
#
#   perf/bench-postcopy.sh [--runs N] [--size SIZE] [--rates "0 200 800 max"]
#                          [--modes "pre post hybrid"] [--hybrid-after N]
#                          [--channels N] [--reads N] [BUILD_DIR]
#   perf/bench-postcopy.sh --verbs [OPTIONS] [BUILD_DIR]   (RDMA device)
#   perf/bench-postcopy.sh --vm [OPTIONS] [BUILD_DIR]      (soft-RoCE VM)
#   ./dev.sh bench-postcopy [--vm] [OPTIONS]
#
# Per dirty rate (rmig-migrate --dirty-rate: MB/s of distinct page writes
# of 2 vCPUs, uniform random pages; max: as fast as they go) and mode, one
# rmig-migrate migration with --json, verified by the tool (page hashes,
# resumed guest = never-migrated replay; outside the timed part):
#   pre     pre-copy (live migration as before: rounds, auto-converge on,
#           downtime limit 300 ms, then stop-and-copy)
#   post    --postcopy-after 0: no pre-copy round, every page is pulled
#   hybrid  --postcopy-after N (--hybrid-after, default 1): N pre-copy
#           rounds, then the switch
# Host (default): rmig-migrate demo, both sides forked by the tool on this
# machine, libfabric tcp on 127.0.0.1, so both share one clock and the
# destination reports the downtime it saw too.  --verbs: rmig-migrate dest
# and source as two processes over verbs at $RMIG_RXE_ADDR (rxe0's address
# in the VM; the demo listens on 127.0.0.1 only), the destination with
# --json and no common clock: the downtime is the source's view alone.
# --vm: this script with --verbs in the soft-RoCE VM (tests/vm/rxe-vm.sh;
# default there --size 128M, --runs 1, --reads 1000: rxe under TCG is slow).
#
# Rows are interleaved: every run measures each (rate, mode) cell once, the
# cells rotated by a fraction of the list each run, so every cell sees the
# same stretch of the machine's noise; then perf/rmig_read_lat (the same
# transport, address and channel count) measures a single 4 KiB READ's
# round trip (RMIG_READ_URGENT submit to wait, one at a time on an idle
# session), once as the migrations ran and once with RMIG_POLL_SLICE_MS=1
# (the library's channel threads re-check every 1 ms instead of 100: over
# libfabric tcp a missed wake-up stalls a read until then, see the
# report's NOTE).  Figures are medians over the runs.  Columns: downtime (the
# source's pause to its switch or its final sync returning; in brackets
# the destination's view, to its vCPUs running (post-copy) or its having
# every page (pre-copy)), total (the source's first round to the
# destination having every page), faults (the destination guest's MISSING
# faults), their service time (the tool's measure: fault read to
# UFFDIO_COPY done, over the faults served by their own urgent READ), the
# source process's CPU seconds between the switch and the end of the pull
# (all threads, /proc/PID/stat sampled every 5 ms, clock-tick resolution
# at each end; the end is when the source's JSON arrives, the switch that
# minus its pull_seconds), and the fault service p99 and p50 over the
# READ's.  Then the targets of issue 11 as ratios: post-copy downtime <=
# 50 ms, fault service p99 <= 3 x READ p99, source CPU in the pull near
# zero on verbs.  Figures are printed, never asserted: the exit status is
# 0 when every run completed and verified.
#
# rmig-migrate faults in (and boots) the guest's memory on both sides
# before any clock starts; at a post-copy switch the destination drops
# the missing pages (the faults are the point).  rmig_read_lat faults in
# both blocks before timing.  About 6 minutes on the host (2 cores, 512
# MiB, 3 runs); the VM run about 5 minutes (TCG, 128 MiB, 1 run).
#
# Environment: RMIG_RXE_ADDR (--verbs), RMIG_BENCH_WARMUP (seconds the
# guest runs before migrating, default 2), RMIG_BENCH_TIMEOUT (seconds per
# migration, default 600; VM 1500), RMIG_VM_TIMEOUT (the --vm run, default
# 5400).
set -euo pipefail

PROG=bench-postcopy
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
runs='' size='' rates='0 200 800 max' modes='pre post hybrid' after=1
channels=4 reads='' verbs='' vm=''
usage() { sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
args=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=${2:?--runs needs a value}; shift 2 ;;
	--size) size=${2:?--size needs a value}; shift 2 ;;
	--rates) rates=${2:?--rates needs a list}; shift 2 ;;
	--modes) modes=${2:?--modes needs a list}; shift 2 ;;
	--hybrid-after) after=${2:?--hybrid-after needs a value}; shift 2 ;;
	--channels) channels=${2:?--channels needs a value}; shift 2 ;;
	--reads) reads=${2:?--reads needs a value}; shift 2 ;;
	--verbs) verbs=1; shift ;;
	--vm) vm=1; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; die "unknown option $1" ;;
	*) break ;;
	esac
done
build=${1:-${RMIG_BUILD:-$root/build/default}}
case $build in /*) ;; *) build=$PWD/$build ;; esac

if [ -n "$vm" ]; then
	# The same script inside the VM, over verbs; the VM sees the host's
	# / read-only, so the build and this script run there unchanged.
	for t in rmig-migrate rmig_read_lat; do
		cmake --build "$build" --target "$t" -j 2 >/dev/null ||
			die "cannot build $t in $build"
	done
	rest=()
	for a in "${args[@]}"; do
		[ "$a" = --vm ] || rest+=("$a")
	done
	[ $# -eq 0 ] || unset 'rest[${#rest[@]}-1]' # BUILD_DIR, given again
	exec "$root/tests/vm/rxe-vm.sh" --timeout "${RMIG_VM_TIMEOUT:-5400}" -- \
		bash "$here/bench-postcopy.sh" --verbs "${rest[@]}" "$build"
fi

if [ -n "$verbs" ]; then
	: "${runs:=1}" "${size:=128M}" "${reads:=1000}"
	tmo=${RMIG_BENCH_TIMEOUT:-1500}
	addr=${RMIG_RXE_ADDR:-}
	[ -n "$addr" ] || die "--verbs needs RMIG_RXE_ADDR (an address of the RDMA device; tests/vm/rxe-vm.sh sets it)"
else
	: "${runs:=3}" "${size:=512M}" "${reads:=3000}"
	tmo=${RMIG_BENCH_TIMEOUT:-600}
	addr=127.0.0.1
fi
warmup=${RMIG_BENCH_WARMUP:-2}
for v in runs after channels reads; do
	case ${!v} in '' | *[!0-9]*) die "--${v/after/hybrid-after} must be a number, got '${!v}'" ;; esac
done
[ "$runs" -ge 1 ] || die "--runs must be at least 1"
for r in $rates; do
	case $r in max | [0-9]*) ;; *) die "unknown rate '$r' (MB/s or max)" ;; esac
done
for m in $modes; do
	case $m in pre | post | hybrid) ;; *) die "unknown mode '$m' (pre, post, hybrid)" ;; esac
done
command -v python3 >/dev/null || die "python3 is missing (Debian package python3)"

if [ "${RMIG_IN_VM:-}" != 1 ]; then
	if [ ! -f "$build/CMakeCache.txt" ]; then
		cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	fi
	for t in rmig-migrate rmig_read_lat; do
		cmake --build "$build" --target "$t" -j 2 >/dev/null ||
			die "cannot build $t in $build"
	done
fi
bin=$build/tools/rmig-migrate
lat=$build/perf/rmig_read_lat
[ -x "$bin" ] && [ -x "$lat" ] || die "$bin or $lat is missing: build them first"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/$PROG.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(umask 077 && head -c 32 /dev/urandom >"$tmp/migration.key")
: >"$tmp/runs.jsonl"
: >"$tmp/lats.jsonl"
: >"$tmp/lats-slice1.jsonl"

# The cells, in the order of run 1.
cells=()
for r in $rates; do
	for m in $modes; do
		cells+=("$r/$m")
	done
done
n=${#cells[@]}

transport=fabric
where="libfabric tcp on 127.0.0.1, rmig-migrate demo (both sides forked by the tool)"
if [ -n "$verbs" ]; then
	transport=verbs
	where="verbs on ${RMIG_RXE_DEV:-the RDMA device} at $addr, rmig-migrate dest and source as two processes"
fi
echo "# $PROG: rmig-migrate pre-copy / post-copy (--postcopy-after 0) / hybrid (--postcopy-after $after)"
echo "# guest: $size anonymous, 2 vCPUs, uniform random pages, running ${warmup} s before the migration; $channels channels;"
echo "#   downtime limit 300 ms and auto-converge (pre-copy rounds), the tool's defaults; every migration verified by the tool"
echo "# transport: $where"
echo "# $runs run(s) per cell, cells interleaved and rotated run by run, medians; rmig_read_lat once per run ($reads reads)"
echo "# memory: the tool faults in and boots the guest on both sides before any clock starts (prepare_seconds in its JSON);"
echo "#   rmig_read_lat faults in both blocks before timing; post-copy's destination drops the missing pages at the switch"
echo "# source CPU during the pull: utime+stime of the source process (all threads) from /proc/PID/stat every 5 ms,"
echo "#   between (the source's JSON arriving - its pull_seconds) and its arrival; resolution 1/$(getconf CLK_TCK) s at each end"
echo "# machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r),"
echo "#   load average at start $(cut -d' ' -f1-3 /proc/loadavg)$([ "${RMIG_IN_VM:-}" != 1 ] || echo " (the VM's)"); the host is shared with other work: absolute figures are noisy, ratios are from this run"
if [ "${RMIG_IN_VM:-}" = 1 ] && ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
	echo "# in the soft-RoCE VM under TCG (emulated CPU, rxe in software): absolute figures mean little, compare the ratios"
fi
echo "# $(date -u +%FT%TZ); $bin, $lat"

bad=0
port=19311
for run in $(seq "$runs"); do
	start=$(((run - 1) * n / runs))
	for i in $(seq 0 $((n - 1))); do
		cell=${cells[$(((start + i) % n))]}
		rate=${cell%/*} mode=${cell#*/}
		case $mode in
		pre) a=-1 ;;
		post) a=0 ;;
		hybrid) a=$after ;;
		esac
		extra=()
		if [ -n "$verbs" ]; then
			port=$((port + 1))
			extra=(--split --transport verbs --addr "$addr" --port "$port"
				--key "$tmp/migration.key")
		fi
		python3 "$here/bench_postcopy.py" run --bin "$bin" --size "$size" \
			--channels "$channels" --rate "$rate" --mode "$mode" \
			--after "$a" --warmup "$warmup" --timeout "$tmo" --run "$run" \
			"${extra[@]}" >"$tmp/one.json" || die "bench_postcopy.py run failed"
		cat "$tmp/one.json" >>"$tmp/runs.jsonl"
		python3 "$here/bench_postcopy.py" line "$tmp/one.json" "$run/$runs"
		grep -q '"ok": true' "$tmp/one.json" || bad=1
	done
	# The READ's round trip as the migrations ran, then with the
	# channel threads' poll slice at 1 ms (it bounds a missed wake-up).
	largs=(-t "$transport" -a "$addr" -c "$channels" -n "$reads")
	for slice in default 1; do
		out=$tmp/lats.jsonl
		envs=()
		if [ "$slice" = 1 ]; then
			out=$tmp/lats-slice1.jsonl
			envs=(RMIG_POLL_SLICE_MS=1)
		fi
		if env "${envs[@]}" timeout "$tmo" "$lat" "${largs[@]}" >"$tmp/lat.out" 2>&1; then
			grep '^{' "$tmp/lat.out" >>"$out"
			echo "# run $run/$runs rmig_read_lat (poll slice $slice):$(sed -n 3p "$tmp/lat.out")"
		else
			sed 's/^/# rmig_read_lat: /' "$tmp/lat.out"
			bad=1
		fi
	done
done

python3 "$here/bench_postcopy.py" report "$tmp/runs.jsonl" "$tmp/lats.jsonl" \
	"$tmp/lats-slice1.jsonl" \
	--hybrid-after "$after" --transport "$transport"
echo
echo "# raw runs (one JSON line per migration):"
sed 's/^/# /' "$tmp/runs.jsonl"
exit $bad
