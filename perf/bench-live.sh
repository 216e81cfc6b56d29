#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench-live.sh - total time and downtime of a live migration against the
# guest's dirty rate, libfabric tcp on 127.0.0.1 only.
#
#   perf/bench-live.sh [BUILD_DIR]        (default: build/default)
#
# For each dirty rate (MB/s of distinct page writes, 2 vCPUs, uniform random
# pages) runs `rmig-migrate demo --json` with a 2 GiB anonymous guest, 4
# channels, the default downtime limit (300 ms) and auto-converge, and prints
# one row per rate: rounds, total time (first round to the final sync),
# downtime (pause to the destination having every page and the vCPU state,
# from the source; the destination's view on the same clock in brackets),
# RAM GB/s, pages sent in the downtime, throttle reached, dirty tracking.
# Guest memory is faulted in (and booted) before any clock starts, on both
# sides.  Every run also verifies (hashes, resumed guest = replay), outside
# the timed part.  Figures are printed, never asserted: the exit status is 0
# when every run completed.  About two minutes here (2 cores).
#
# Environment: RMIG_BENCH_SIZE (default 2G), RMIG_BENCH_RATES (default
# "0 50 200 800"), RMIG_BENCH_CHANNELS (default 4), RMIG_BENCH_WARMUP
# (seconds the guest runs before migrating, default 3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
build=${1:-${RMIG_BUILD:-$root/build/default}}
size=${RMIG_BENCH_SIZE:-2G}
rates=${RMIG_BENCH_RATES:-0 50 200 800}
channels=${RMIG_BENCH_CHANNELS:-4}
warmup=${RMIG_BENCH_WARMUP:-3}
tmp=$(mktemp -d /tmp/rmig-bench-live.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target rmig-migrate -j "$(nproc)" >/dev/null
bin=$build/tools/rmig-migrate

# json FILE ROLE KEY: the value of KEY in ROLE's JSON line.
json() {
	grep "\"role\":\"$2\"" "$1" | head -1 |
		sed -n "s/.*\"$3\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" | tr -d '"'
}

echo "# rmig live migration: ${size} anonymous guest, 2 vCPUs, random pages,"
echo "# ${channels} channels, libfabric tcp on 127.0.0.1, downtime limit 300 ms,"
echo "# auto-converge on, guest running ${warmup} s before the migration."
echo "# Guest memory faulted in and booted before timing, on both sides."
printf '%-14s %7s %10s %22s %9s %13s %9s  %s\n' "dirty[MB/s]" "rounds" \
	"total[s]" "downtime[ms](dest)" "RAM[GB/s]" "final_pages" \
	"throttle" "tracking"
status=0
for rate in $rates; do
	out=$tmp/run-$rate.json
	if ! "$bin" demo --size "$size" --channels "$channels" \
		--dirty-rate "$rate" --warmup "$warmup" --resume-steps 10000 \
		--json >"$out" 2>"$tmp/err-$rate"; then
		echo "rate $rate: the run failed:" >&2
		cat "$out" "$tmp/err-$rate" >&2
		status=1
		continue
	fi
	printf '%-14s %7s %10.3f %14.1f (%5.1f) %9.3f %13s %8s%%  %s\n' "$rate" \
		"$(json "$out" source rounds)" \
		"$(json "$out" source total_seconds)" \
		"$(json "$out" source downtime_ms)" \
		"$(json "$out" dest downtime_ms)" \
		"$(json "$out" source gb_per_s)" \
		"$(json "$out" source final_dirty_pages)" \
		"$(json "$out" source throttle_percent)" \
		"$(json "$out" source dirty_tracking)"
	grep '"role":"source"' "$out" | sed 's/^/# json: /'
done
exit $status
