#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# guest-migrate.sh - live-migrate a real Linux guest between two QEMUs on
# 127.0.0.1 and show that it carries on at the destination.
#
#   integrations/qemu/guest-migrate.sh [OPTIONS]
#
# Boots the guest of guest.sh (Debian's kernel, memcheck as init: it keeps
# writing and checking memory and prints a line a second) in a source QEMU,
# starts a destination QEMU with -incoming defer, waits until the guest
# runs, then migrates it over multifd (QMP: capabilities, parameters,
# migrate-incoming, migrate; qmp.py) and watches query-migrate until it
# ends.  Success means: query-migrate says completed, the destination
# guest's console goes on with new memcheck lines (errors=0, no ERROR
# line) after the switch-over, and the source stays paused.  Then it
# prints rounds, total time, downtime and throughput from query-migrate
# (and one JSON line with them), and the CPU seconds each QEMU spent on
# the migration: the process's, minus its vCPU threads' (TCG runs the
# guest on them), from the migrate command until completed is seen.
#
# Options:
#   --qemu PATH        the QEMU to run (default: build.sh's wrapper,
#                      build/qemu/bin/qemu-system-x86_64; it must exist)
#   --via multifd|rmig multifd over QEMU's own sockets (default), or over
#                      rmig (capability x-rmig, with --transport and a
#                      secret made for the run)
#   --transport T      rmig's transport: auto, fabric (default), verbs
#   --rmig-address A   with --via rmig: x-rmig-address of both sides, where
#                      the destination's rmig listens and the source's
#                      connects (default 127.0.0.1 and a free port)
#   --channels N       multifd channels (default 2)
#   --mem MiB          guest memory (default 1024)
#   --check-mib N      memory memcheck sweeps (default 256)
#   --rate N           memcheck writes at most N MiB/s (default 64; 0: as fast
#                      as the vCPU goes)
#   --idle             an idle guest: memcheck writes its memory once, then
#                      only reads it back and checks it (memcheck.idle=1)
#   --run-before S     seconds the guest runs before the migration (default 3)
#   --run-after S      seconds to watch the destination guest (default 5)
#   --kill-dest        kill the destination QEMU mid-migration instead, and
#                      check that the migration failed and the source guest
#                      runs on (new memcheck lines on its console, errors=0)
#   --timeout S        give up on the migration after S seconds (default 300)
#   --keep DIR         keep the consoles and QMP logs in DIR
#
# Exit status 0 when every check passed, 1 when one failed (the reason on
# stderr, the consoles' last lines with it), 2 on bad usage.  Only
# 127.0.0.1 and unix sockets in a temporary folder are used.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
qmp=$here/qmp.py
qemu=$root/build/qemu/bin/qemu-system-x86_64
via=multifd transport=fabric channels=2 mem=1024 check_mib=256 rate=64
before=3 after=5 kill_dest= timeout=300 keep= idle=0 rmig_address=

usage() {
	sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}
die() {
	printf 'guest-migrate: error: %s\n' "$*" >&2
	exit 1
}
while [ $# -gt 0 ]; do
	case $1 in
	--qemu) qemu=${2:?--qemu needs a path}; shift 2 ;;
	--via) via=${2:?--via needs multifd or rmig}; shift 2 ;;
	--transport) transport=${2:?--transport needs a value}; shift 2 ;;
	--rmig-address) rmig_address=${2:?--rmig-address needs host:port}; shift 2 ;;
	--channels) channels=${2:?--channels needs a value}; shift 2 ;;
	--mem) mem=${2:?--mem needs a value}; shift 2 ;;
	--check-mib) check_mib=${2:?--check-mib needs a value}; shift 2 ;;
	--rate) rate=${2:?--rate needs a value}; shift 2 ;;
	--run-before) before=${2:?--run-before needs a value}; shift 2 ;;
	--run-after) after=${2:?--run-after needs a value}; shift 2 ;;
	--kill-dest) kill_dest=1; shift ;;
	--idle) idle=1; shift ;;
	--timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
	--keep) keep=${2:?--keep needs a folder}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; printf 'guest-migrate: unknown argument %s\n' "$1" >&2; exit 2 ;;
	esac
done
case $via in multifd | rmig) ;; *) echo "guest-migrate: --via must be multifd or rmig, got '$via'" >&2; exit 2 ;; esac
case $transport in auto | fabric | verbs) ;; *) echo "guest-migrate: --transport must be auto, fabric or verbs, got '$transport'" >&2; exit 2 ;; esac
for v in channels mem check_mib rate before after timeout; do
	case ${!v} in
	'' | *[!0-9]*) echo "guest-migrate: --${v//_/-} must be a number, got '${!v}'" >&2; exit 2 ;;
	esac
done
[ "$channels" -ge 1 ] || { echo "guest-migrate: --channels must be at least 1" >&2; exit 2; }
[ $((check_mib + 64)) -le "$mem" ] ||
	{ echo "guest-migrate: --check-mib $check_mib leaves the guest's kernel too little of --mem $mem MiB (64 MiB at least)" >&2; exit 2; }
[ -x "$qemu" ] || die "no QEMU at $qemu (run integrations/qemu/build.sh, or give --qemu)"

mapfile -t guest < <("$here/guest.sh") || true
[ "${#guest[@]}" -eq 2 ] || die "guest.sh did not give a kernel and an initramfs"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/guest-migrate.XXXXXX")
src_pid='' dst_pid=''
cleanup() {
	for p in $src_pid $dst_pid; do kill -9 "$p" 2>/dev/null || true; done
	for p in $src_pid $dst_pid; do wait "$p" 2>/dev/null || true; done
	if [ -n "$keep" ]; then
		mkdir -p "$keep" && cp -f "$tmp"/*.console "$tmp"/*.log "$keep"/ 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# q SIDE COMMAND [ARGS]: one QMP command, its answer on stdout; fails the
# run with QEMU's own message.
q() {
	local side=$1
	shift
	echo "> $*" >>"$tmp/$side.qmp.log"
	"$qmp" "$tmp/$side.qmp" "$@" 2>>"$tmp/$side.qmp.log" | tee -a "$tmp/$side.qmp.log" ||
		{ tail -1 "$tmp/$side.qmp.log" >&2; return 1; }
}
# last_lines SIDE: a console's last lines, for a failure's report.
last_lines() {
	echo "--- $1 console, last lines:" >&2
	console "$1" | tail -n 8 >&2
}
fail() {
	printf 'guest-migrate: FAILED: %s\n' "$*" >&2
	last_lines src
	[ -z "$dst_pid" ] || last_lines dst
	exit 1
}
# console SIDE: the console's text (the serial line ends lines with CR LF).
console() {
	tr -d '\r' <"$tmp/$1.console" 2>/dev/null || true
}
# memcheck_lines SIDE: how many memcheck progress lines its console has.
memcheck_lines() {
	console "$1" | grep -c '^memcheck: t=' || true
}
# wait_lines SIDE N SECONDS: until the console has N progress lines.
wait_lines() {
	local end=$((SECONDS + $3))
	while [ "$(memcheck_lines "$1")" -lt "$2" ]; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}
# check_console SIDE: no ERROR line, errors=0 on the last progress line.
check_console() {
	if console "$1" | grep -q '^memcheck: ERROR'; then
		fail "the $1 guest's memcheck found corrupted memory: $(console "$1" | grep -m1 '^memcheck: ERROR')"
	fi
	console "$1" | grep '^memcheck: t=' | tail -1 | grep -q ' errors=0$' ||
		fail "the $1 guest's last memcheck line does not say errors=0"
}

start_qemu() { # SIDE [EXTRA ARGS]
	local side=$1
	shift
	"$qemu" -machine pc,accel=tcg -m "$mem" -smp 1 -nodefaults \
		-display none -monitor none \
		-serial "file:$tmp/$side.console" \
		-qmp "unix:$tmp/$side.qmp,server=on,wait=off" \
		-kernel "${guest[0]}" -initrd "${guest[1]}" \
		-append "console=ttyS0 quiet memcheck.mib=$check_mib memcheck.rate=$rate memcheck.idle=$idle" \
		"$@" >"$tmp/$side.log" 2>&1 &
	echo $!
}
wait_qmp() { # SIDE
	local i
	for i in $(seq 100); do
		[ -S "$tmp/$1.qmp" ] && q "$1" query-status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "the $1 QEMU did not open its QMP socket: $(tail -3 "$tmp/$1.log")"
}
# cpu_ticks PID: the CPU time (clock ticks) of the process minus its vCPU
# threads'.  The process's own total keeps the time of threads that ended
# (multifd's); the vCPU threads live as long as it.
cpu_ticks() {
	local total vcpu=0 t
	total=$(sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}')
	for t in /proc/"$1"/task/*; do
		case $(cat "$t/comm" 2>/dev/null) in
		"CPU "*/*) vcpu=$((vcpu + $(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}'))) ;;
		esac
	done
	echo $((total - vcpu))
}
# jfield PATH [DEFAULT]: the member PATH (dot-separated) of the JSON object
# on stdin, or DEFAULT when absent.
jfield() {
	python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print(sys.argv[2] if v is None else v)' "$1" "${2:-}"
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

echo "guest-migrate: $via, $channels channel(s)$([ "$via" = rmig ] && echo ", rmig transport $transport"); guest ${mem} MiB, memcheck on $check_mib MiB, $([ "$rate" -gt 0 ] && echo "at most $rate MiB/s" || echo "as fast as it goes")"
src_pid=$(start_qemu src)
dst_pid=$(start_qemu dst -incoming defer)
wait_qmp src
wait_qmp dst
wait_lines src 1 180 || fail "the source guest did not start memcheck within 180 s"
# Every page of memcheck's written once (pass 0 over) before the clock.
end=$((SECONDS + 300))
until console src | grep -q '^memcheck: t=.* pass=[1-9]'; do
	[ $SECONDS -lt $end ] || fail "the source guest's memcheck did not finish its first pass within 300 s"
	sleep 0.2
done
echo "guest-migrate: source guest running: $(console src | grep '^memcheck: t=' | tail -1)"
sleep "$before"
check_console src

# QEMU's default max-bandwidth is 128 MiB/s: lift it (100 GiB/s), so the
# transport, not the throttle, sets the pace.  Not with --kill-dest: the
# destination must die mid-migration, and lifted, the whole migration can
# end within one poll of query-migrate (about a second with rmig's setup
# of a few ms), so the kill raced the completion; at 128 MiB/s the first
# pass over the guest's RAM alone takes seconds.
max_bw=$((100 << 30))
[ -z "$kill_dest" ] || max_bw=$((128 << 20))
caps='[{"capability":"multifd","state":true}]'
params="{\"multifd-channels\":$channels,\"max-bandwidth\":$max_bw}"
if [ "$via" = rmig ]; then
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/secret"
	chmod 600 "$tmp/secret"
	for side in src dst; do
		q $side object-add "{\"qom-type\":\"secret\",\"id\":\"rmig-secret\",\"file\":\"$tmp/secret\",\"format\":\"raw\"}" >/dev/null ||
			fail "$side: cannot create the secret object"
	done
	caps='[{"capability":"multifd","state":true},{"capability":"x-rmig","state":true}]'
	[ -n "$rmig_address" ] || rmig_address=127.0.0.1:$(free_port)
	echo "guest-migrate: rmig meets at $rmig_address"
	params="{\"multifd-channels\":$channels,\"max-bandwidth\":$max_bw,\"x-rmig-transport\":\"$transport\",\"x-rmig-secret\":\"rmig-secret\",\"x-rmig-address\":\"$rmig_address\"}"
fi
for side in src dst; do
	q $side migrate-set-capabilities "{\"capabilities\":$caps}" >/dev/null ||
		fail "$side: migrate-set-capabilities refused"
	q $side migrate-set-parameters "$params" >/dev/null ||
		fail "$side: migrate-set-parameters refused"
done
port=$(free_port)
q dst migrate-incoming "{\"uri\":\"tcp:127.0.0.1:$port\"}" >/dev/null ||
	fail "destination: migrate-incoming refused"
src_cpu0=$(cpu_ticks "$src_pid") dst_cpu0=$(cpu_ticks "$dst_pid")
q src migrate "{\"uri\":\"tcp:127.0.0.1:$port\"}" >/dev/null ||
	fail "source: migrate refused"
start=$SECONDS

status= info= src_cpu=0 dst_cpu=0
while :; do
	info=$(q src query-migrate) || fail "source: query-migrate failed"
	status=$(printf '%s' "$info" | jfield status)
	case $status in
	completed | failed | cancelled)
		src_cpu=$(cpu_ticks "$src_pid")
		[ -z "$dst_pid" ] || dst_cpu=$(cpu_ticks "$dst_pid")
		break ;;
	esac
	if [ -n "$kill_dest" ] && [ "$status" = active ] &&
		[ "$(printf '%s' "$info" | jfield ram.transferred 0)" -gt $((16 << 20)) ]; then
		echo "guest-migrate: killing the destination QEMU mid-migration (status $status)"
		kill -9 "$dst_pid"
		wait "$dst_pid" 2>/dev/null || true
		dst_pid=
		kill_dest=done
	fi
	[ $((SECONDS - start)) -lt "$timeout" ] || fail "the migration did not end within $timeout s (status $status)"
	sleep 0.2
done

if [ "$kill_dest" = done ]; then
	[ "$status" = failed ] || fail "after the destination died the source's migration is '$status', not failed"
	running=$(q src query-status | jfield running)
	[ "$running" = True ] || fail "the source guest is not running after the failed migration"
	n=$(memcheck_lines src)
	wait_lines src $((n + after)) $((after * 4 + 30)) ||
		fail "the source guest printed no new memcheck lines after the failed migration"
	check_console src
	echo "guest-migrate: the migration failed as the destination died; the source guest runs on:"
	console src | grep '^memcheck: t=' | tail -2
	echo '{"test":"guest-migrate","kill_dest":true,"status":"failed","source_running":true}'
	exit 0
fi
[ -n "$kill_dest" ] && fail "the migration ended ($status) before the destination could be killed"
[ "$status" = completed ] ||
	fail "the migration $status: $(printf '%s' "$info" | jfield error-desc '(no error-desc)')"

n=$(memcheck_lines dst)
wait_lines dst $((n + after)) $((after * 4 + 30)) ||
	fail "the destination guest printed fewer than $after new memcheck lines after the migration"
check_console dst
src_state=$(q src query-status | jfield status)
[ "$src_state" = postmigrate ] || fail "the source QEMU is '$src_state' after the migration, not postmigrate"

echo "guest-migrate: completed; the destination guest carries on:"
console dst | grep '^memcheck: t=' | tail -3
printf '%s' "$info" | python3 -c '
import json, sys
m = json.load(sys.stdin)
ram = m.get("ram", {})
secs = m.get("total-time", 0) / 1000.0
gbs = ram.get("transferred", 0) / secs / 1e9 if secs else 0.0
print(" rounds %d, total %.3f s, downtime %d ms, setup %d ms, %.1f MiB sent, %.3f GB/s (%.0f Mbit/s by QEMU)" % (
    ram.get("dirty-sync-count", 0), secs, m.get("downtime", 0), m.get("setup-time", 0),
    ram.get("transferred", 0) / 2**20, gbs, ram.get("mbps", 0)))
tck = float(sys.argv[5])
src_cpu, dst_cpu = int(sys.argv[3]) / tck, int(sys.argv[4]) / tck
print(" CPU on the migration (process minus vCPU threads): source %.2f s, destination %.2f s" % (src_cpu, dst_cpu))
print(json.dumps({"test": "guest-migrate", "via": sys.argv[1], "channels": int(sys.argv[2]),
                  "idle": sys.argv[6] == "1", "src_cpu_s": round(src_cpu, 3), "dst_cpu_s": round(dst_cpu, 3),
                  "status": m.get("status"), "rounds": ram.get("dirty-sync-count"),
                  "total_ms": m.get("total-time"), "downtime_ms": m.get("downtime"),
                  "setup_ms": m.get("setup-time"), "transferred_bytes": ram.get("transferred"),
                  "gb_per_s": round(gbs, 3)}))
' "$via" "$channels" $((src_cpu - src_cpu0)) $((dst_cpu - dst_cpu0)) \
	"$(getconf CLK_TCK)" "$idle"
