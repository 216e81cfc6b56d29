#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench-qemu.sh - the same real guest migrated by QEMU 10.0's own multifd
# and by QEMU + rmig, in one run, on 127.0.0.1.
#
#   perf/bench-qemu.sh [--runs N] [--channels "1 2 4"] [--qemu PATH]
#                      [--via "multifd rmig"] [--guests "idle dirty"]
#
# Every row is integrations/qemu/guest-migrate.sh (a Debian kernel whose
# init, memcheck, writes and checks memory) between two QEMUs under TCG:
#   idle   a 2 GiB guest (2304 MiB, memcheck on 2048 MiB written once, then
#          only read back at 32 MiB/s): its memory is in use, little dirties
#   dirty  a 1 GiB guest writing 256 MiB over and over at 64 MiB/s
# over multifd's sockets (x-rmig off: stock QEMU 10.0 multifd, the
# baseline) and over rmig (x-rmig, libfabric tcp), with 1, 2 and 4
# channels.  Runs are interleaved row by row (run 1 of every row, then run
# 2...), so a slow spell of this shared machine spreads over all rows.
# Figures per row (medians over the runs): total time and downtime from
# query-migrate, GB/s (bytes QEMU sent / total time), and the CPU seconds
# each QEMU spent on the migration (its process minus its vCPU threads,
# which run the guest).  Each guest faults its memory in before the
# migration starts (memcheck's pass 0 writes every page; the migration
# starts after the guest has run --run-before seconds).  A row QEMU refuses
# (x-rmig without its data path) prints QEMU's reason instead of figures.
#
# The QEMU is integrations/qemu/build.sh's (built first when missing) or
# --qemu's.  Only 127.0.0.1 and unix sockets in temporary folders are used.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
runs=1 channels="1 2 4" vias="multifd rmig" guests="idle dirty" qemu=

while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=${2:?--runs needs a number}; shift 2 ;;
	--channels) channels=${2:?--channels needs a list}; shift 2 ;;
	--via) vias=${2:?--via needs a list}; shift 2 ;;
	--guests) guests=${2:?--guests needs a list}; shift 2 ;;
	--qemu) qemu=${2:?--qemu needs a path}; shift 2 ;;
	-h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-qemu: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
case $runs in '' | *[!0-9]* | 0) echo "bench-qemu: --runs must be a positive number" >&2; exit 2 ;; esac
if [ -z "$qemu" ]; then
	qemu=$(bash "$root/integrations/qemu/build.sh" "$root/build/default" | tail -1)
fi
[ -x "$qemu" ] || { echo "bench-qemu: no QEMU at '$qemu'" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-qemu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

guest_args() {
	case $1 in
	idle) echo "--idle --mem 2304 --check-mib 2048 --rate 32" ;;
	dirty) echo "--mem 1024 --check-mib 256 --rate 64" ;;
	*) echo "bench-qemu: unknown guest '$1' (idle, dirty)" >&2; exit 2 ;;
	esac
}

for r in $(seq "$runs"); do
	for g in $guests; do
		for v in $vias; do
			for c in $channels; do
				row="$g $v $c"
				echo "bench-qemu: run $r/$runs: $g guest, $v, $c channel(s) ..." >&2
				# shellcheck disable=SC2046 # guest_args is a word list
				if "$root/integrations/qemu/guest-migrate.sh" --qemu "$qemu" \
					--via "$v" --channels "$c" $(guest_args "$g") \
					>"$tmp/out" 2>"$tmp/err"; then
					grep '^{' "$tmp/out" | tail -1 |
						sed "s/^/$row|/" >>"$tmp/rows"
				else
					why=$(grep -m1 -E 'qmp.py|FAILED' "$tmp/err" || tail -1 "$tmp/err")
					echo "$row|!$why" >>"$tmp/rows"
				fi
			done
		done
	done
done

python3 - "$tmp/rows" "$runs" <<'EOF'
import json, statistics, sys
rows, order, js = {}, [], []
for line in open(sys.argv[1]):
    key, _, val = line.rstrip("\n").partition("|")
    if key not in rows:
        rows[key] = []
        order.append(key)
    rows[key].append(val)
print("-" * 118)
print(" QEMU 10.0 under TCG, a real guest (Debian kernel + memcheck), 127.0.0.1; %s run(s) per row, medians" % sys.argv[2])
print(" idle: 2 GiB guest, 2048 MiB written once then read back; dirty: 1 GiB guest rewriting 256 MiB at 64 MiB/s")
print(" memory faulted in by the guest before every migration; CPU: each QEMU's process minus its vCPU threads")
print("-" * 118)
print(" %-30s %5s %10s %12s %8s %11s %11s %7s" % ("#row", "runs", "total s", "downtime ms", "GB/s",
                                                  "src CPU s", "dst CPU s", "rounds"))
for key in order:
    g, v, c = key.split()
    name = "%s, %s, %s ch" % (g, "multifd tcp (x-rmig off)" if v == "multifd" else "rmig fabric", c)
    ok = [json.loads(x) for x in rows[key] if not x.startswith("!")]
    bad = [x[1:] for x in rows[key] if x.startswith("!")]
    if not ok:
        print(" %-30s %5d  not measured: %s" % (name, len(bad), bad[0][:70]))
        continue
    med = lambda f: statistics.median(r[f] for r in ok)
    print(" %-30s %5d %10.2f %12.0f %8.3f %11.2f %11.2f %7.0f%s" % (
        name, len(ok), med("total_ms") / 1000, med("downtime_ms"), med("gb_per_s"),
        med("src_cpu_s"), med("dst_cpu_s"), med("rounds"),
        "  (%d failed: %s)" % (len(bad), bad[0][:40]) if bad else ""))
    js.append(json.dumps({"test": "bench-qemu", "guest": g, "via": v, "channels": int(c), "runs": len(ok),
                      "total_s": med("total_ms") / 1000, "downtime_ms": med("downtime_ms"),
                      "gb_per_s": med("gb_per_s"), "src_cpu_s": med("src_cpu_s"),
                      "dst_cpu_s": med("dst_cpu_s"), "failed": len(bad)}))
print("-" * 118)
print("\n".join(js))
EOF
