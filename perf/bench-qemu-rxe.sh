#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench-qemu-rxe.sh - QEMU's legacy RDMA migration (the rdma: URI,
# migration/rdma.c) against QEMU + rmig over verbs, the same guest, in one
# run, inside the soft-RoCE VM (tests/vm/rxe-vm.sh); stock multifd over
# tcp in the same VM as the reference for CPU per GiB.
#
#   perf/bench-qemu-rxe.sh [--runs N] [--mem MiB]
#                          [--rows "rdma rmig-1 rmig-4 multifd-1 multifd-4"]
#                          [--qemu PATH]
#
# The guest is paused (-S, its vCPUs never run) and its RAM is a file of
# --mem MiB (default 512) of random bytes on the VM's tmpfs
# (memory-backend-file, share=on), so every page is a normal page that
# every transport must move and nothing but the migration uses the CPU.
# Both sides fault their RAM in before the migration (prealloc=on).
# Rows:
#   rdma       legacy RDMA migration: migrate rdma:ADDR:PORT (one stream)
#   rmig-N     multifd with x-rmig, x-rmig-transport verbs, N channels:
#              RDMA WRITE into the destination's registered RAM
#   multifd-N  stock QEMU 10.0 multifd over tcp on 127.0.0.1, N channels
# ADDR is rxe0's address in the VM.  Runs are interleaved (run 1 of every
# row, then run 2..., the rows rotated by one each run).  Figures per row
# are medians over the runs: total time, setup time and downtime from
# query-migrate, GB/s (guest bytes / total time), and the CPU seconds per
# GiB of guest each QEMU process spent from the migrate command to
# completion.  Under soft-RoCE, rxe's packet work runs in softirq and is
# charged to whatever process the CPU was running, so its CPU figures are
# not those of a hardware NIC (where the destination of an RDMA WRITE
# spends no CPU on the data at all).
#
# The QEMU is integrations/qemu/build.sh's (built first when missing) or
# --qemu's.  Traffic stays inside the VM (rxe0 on a veth, 127.0.0.1).
set -euo pipefail

PROG=bench-qemu-rxe
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
runs=3 mem=512 rows="rdma rmig-1 rmig-4 multifd-1 multifd-4" qemu= inside=

die() {
	echo "$PROG: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=${2:?--runs needs a number}; shift 2 ;;
	--mem) mem=${2:?--mem needs MiB}; shift 2 ;;
	--rows) rows=${2:?--rows needs a list}; shift 2 ;;
	--qemu) qemu=${2:?--qemu needs a path}; shift 2 ;;
	--inside) inside=1; shift ;;
	-h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "$PROG: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
case $runs in '' | *[!0-9]* | 0) die "--runs must be a positive number" ;; esac
case $mem in '' | *[!0-9]* | 0) die "--mem must be a positive number of MiB" ;; esac
for row in $rows; do
	case $row in
	rdma | rmig-[1-9] | multifd-[1-9]) ;;
	*) die "unknown row '$row' (rdma, rmig-N, multifd-N)" ;;
	esac
done

if [ -z "$inside" ]; then
	if [ -z "$qemu" ]; then
		qemu=$(bash "$root/integrations/qemu/build.sh" "$root/build/default" | tail -1)
	fi
	[ -x "$qemu" ] || die "no QEMU at '$qemu'"
	# Two guests and the source's image, plus room for QEMU and the VM.
	exec "$root/tests/vm/rxe-vm.sh" --mem $((mem * 3 + 2048)) --timeout 3000 -- \
		bash "$here/bench-qemu-rxe.sh" --inside --runs "$runs" --mem "$mem" \
		--rows "$rows" --qemu "$qemu"
fi

[ -n "${RMIG_RXE_ADDR-}" ] || die "--inside: RMIG_RXE_ADDR is not set (run by tests/vm/rxe-vm.sh)"
addr=$RMIG_RXE_ADDR
qmp=$root/integrations/qemu/qmp.py
key=0123456789abcdef0123456789abcdef
tmp=$(mktemp -d "${TMPDIR:-/tmp}/$PROG.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

q() { # SIDE COMMAND [JSON]
	"$qmp" "$tmp/$1.qmp" "${@:2}"
}
# jfield PATH: the member PATH (dot-separated) of the JSON object on stdin
jfield() {
	python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1"
}
cpu_ticks() { # PID: user + system clock ticks of the whole process
	sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

echo "$PROG: filling the source guest's $mem MiB with random bytes (faulted in by prealloc before timing)"
img=$tmp/src-ram
head -c $((mem << 20)) /dev/urandom >"$img"

start_qemu() { # SIDE MEMORY-OBJECT [ARGS...]
	local side=$1 memobj=$2
	shift 2
	rm -f "$tmp/$side.qmp"
	"$qemu" -machine pc,memory-backend=mem -object "$memobj" -m "${mem}M" \
		-accel tcg -S -nodefaults -display none -serial none \
		-object "secret,id=sec0,data=$key" \
		-qmp "unix:$tmp/$side.qmp,server=on,wait=off" "$@" \
		>"$tmp/$side.log" 2>&1 &
	pids+=($!)
	eval "${side}_pid=$!"
	for _ in $(seq 600); do
		[ -S "$tmp/$side.qmp" ] && q "$side" query-status >/dev/null 2>&1 && return 0
		kill -0 "$!" 2>/dev/null || die "the $side QEMU exited: $(tail -3 "$tmp/$side.log")"
		sleep 0.1
	done
	die "the $side QEMU's QMP socket did not answer in 60 s"
}

caps() { # SIDE JSON-LIST-OF-CAPS
	q "$1" migrate-set-capabilities "{\"capabilities\": $2}" >/dev/null
}

port=7100
# One migration; appends "run RUN ROW total_ms setup_ms downtime_ms
# src_ticks dst_ticks" to the results and prints it.
run_row() { # RUN ROW
	local run=$1 row=$2 n=${2#*-} uri c p s info status t0s t0d
	port=$((port + 2))
	start_qemu src "memory-backend-file,id=mem,size=${mem}M,mem-path=$img,share=on,prealloc=on"
	start_qemu dst "memory-backend-ram,id=mem,size=${mem}M,prealloc=on" -incoming defer
	q src migrate-set-parameters '{"max-bandwidth": 107374182400}' >/dev/null
	uri=tcp:127.0.0.1:$port
	if [ "$row" = rdma ]; then
		uri=rdma:$addr:$port
	else
		c='{"capability": "multifd", "state": true}' p="\"multifd-channels\": $n"
		if [ "${row%-*}" = rmig ]; then
			c+=', {"capability": "x-rmig", "state": true}'
			p+=", \"x-rmig-transport\": \"verbs\", \"x-rmig-secret\": \"sec0\""
			p+=", \"x-rmig-address\": \"$addr:$((port + 1))\""
		fi
		for s in src dst; do
			caps $s "[$c]"
			q $s migrate-set-parameters "{$p}" >/dev/null
		done
	fi
	q dst migrate-incoming "{\"uri\": \"$uri\"}" >/dev/null
	t0s=$(cpu_ticks "$src_pid") t0d=$(cpu_ticks "$dst_pid")
	q src migrate "{\"uri\": \"$uri\"}" >/dev/null
	for _ in $(seq 6000); do
		info=$(q src query-migrate)
		status=$(printf '%s' "$info" | jfield status)
		case $status in
		completed) break ;;
		failed | cancelled)
			die "$row: the migration $status: $(printf '%s' "$info" | jfield error-desc)" ;;
		esac
		sleep 0.05
	done
	[ "$status" = completed ] || die "$row: not completed after 300 s (status $status)"
	# The destination has loaded everything once its status says so.
	for _ in $(seq 600); do
		[ "$(q dst query-migrate | jfield status)" = completed ] && break
		sleep 0.05
	done
	echo "run $run $row $(printf '%s' "$info" | jfield total-time)" \
		"$(printf '%s' "$info" | jfield setup-time)" \
		"$(printf '%s' "$info" | jfield downtime)" \
		$(($(cpu_ticks "$src_pid") - t0s)) \
		$(($(cpu_ticks "$dst_pid") - t0d)) | tee -a "$tmp/results"
	q src quit >/dev/null 2>&1 || true
	q dst quit >/dev/null 2>&1 || true
	wait "$src_pid" "$dst_pid" 2>/dev/null || true
	pids=()
}

read -ra rowlist <<<"$rows"
nrows=${#rowlist[@]}
hz=$(getconf CLK_TCK)
echo "$PROG: $runs run(s) of: $rows; paused guest of $mem MiB; rxe0 at $addr"
for r in $(seq "$runs"); do
	for i in $(seq 0 $((nrows - 1))); do
		row=${rowlist[$(((i + r - 1) % nrows))]}
		run_row "$r" "$row"
	done
done

echo
echo "medians over $runs run(s), guest $mem MiB (paused, random bytes), rxe0 in the VM:"
printf '%-11s %9s %9s %12s %8s %14s %14s\n' row "total s" "setup ms" "downtime ms" "GB/s" \
	"src CPU s/GiB" "dst CPU s/GiB"
for row in $rows; do
	awk -v row="$row" -v mem="$mem" -v hz="$hz" '
	function median(a, n,    i, j, t) {
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
				t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
			}
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	$3 == row {
		n++; tot[n] = $4 / 1000; set[n] = $5; down[n] = $6
		gbs[n] = mem * 1048576 / ($4 / 1000) / 1e9
		sc[n] = $7 / hz / (mem / 1024); dc[n] = $8 / hz / (mem / 1024)
	}
	END {
		if (!n) exit
		printf "%-11s %9.3f %9d %12d %8.3f %14.2f %14.2f\n", row,
			median(tot, n), median(set, n), median(down, n),
			median(gbs, n), median(sc, n), median(dc, n)
	}' "$tmp/results"
done
