#!/bin/sh
# Post-copy recovery in rmig-migrate's demo (tests/live.cmake), on
# 127.0.0.1.  The destination's pull pauses after GATE_PAGES pages
# (RMIG_MIGRATE_TEST_PULL_GATE: it writes its address to GATE.paused and
# waits for GATE), the session's TCP connections are cut with `ss -K`
# (root), then the pull goes on.
#
#   postcopy_recover.sh RMIG_MIGRATE channel|all|giveup
#
# channel: one connection of the session cut; all: every one.  Both: the
#   session is lost, a resumed session pulls the rest, the proof passes,
#   one recovery, nothing placed while disconnected, and the faults whose
#   read the loss failed waited for the resumed session.
# giveup: the destination killed (SIGKILL), the source reconnecting is
#   sent SIGTERM: it gives up saying what is lost, exits 1, and never
#   resumes the guest.
set -u
bin=$1
mode=$2
dir=$(mktemp -d)
out=$dir/out
demo=
cleanup() {
	[ -n "$demo" ] && kill "$demo" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	echo "---- demo output ----"
	cat "$out"
	exit 1
}

RMIG_MIGRATE_TEST_PULL_GATE=$dir/gate RMIG_MIGRATE_TEST_PULL_GATE_PAGES=2000 \
	"$bin" demo --size 128M --channels 2 --warmup 0.3 --resume-steps 20000 \
	--postcopy-after 0 --dirty-rate max --postcopy-recover-timeout 30 \
	>"$out" 2>&1 &
demo=$!
i=0
while [ ! -f "$dir/gate.paused" ]; do
	kill -0 "$demo" 2>/dev/null || fail "the demo ended before the pull paused"
	i=$((i + 1))
	[ $i -lt 1200 ] || fail "the pull never paused"
	sleep 0.05
done
port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$dir/gate.paused")
[ -n "$port" ] || fail "no port in $(cat "$dir/gate.paused")"
# The source's ends of the session's connections (to the listening port).
socks=$(ss -Htn state established dst 127.0.0.1 dport = :"$port" |
	awk '{ n = split($3, a, ":"); print a[n] }')
[ -n "$socks" ] || fail "no connection to port $port: $(ss -tn)"
echo "connections to port $port from ports:" $socks
case $mode in
channel)
	one=$(echo "$socks" | head -n 1)
	ss -K dst 127.0.0.1 dport = :"$port" sport = :"$one" >/dev/null ||
		fail "ss -K failed"
	;;
all)
	ss -K dst 127.0.0.1 dport = :"$port" >/dev/null || fail "ss -K failed"
	;;
giveup)
	dpid=$(ss -Htnp state established sport = :"$port" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' |
	       head -n 1)
	spid=$(ss -Htnp state established dst 127.0.0.1 dport = :"$port" |
	       sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1)
	[ -n "$dpid" ] && [ -n "$spid" ] || fail "no pids ($dpid, $spid)"
	kill -KILL "$dpid"
	i=0
	until grep -q "reconnecting" "$out"; do
		i=$((i + 1))
		[ $i -lt 600 ] || fail "the source never started reconnecting"
		sleep 0.05
	done
	sleep 1 # a few refused tries
	kill -TERM "$spid"
	;;
esac
touch "$dir/gate"
wait "$demo"
rc=$?
demo=
cat "$out"
case $mode in
channel|all)
	[ $rc -eq 0 ] || fail "demo exit $rc"
	grep -q "PASSED" "$out" || fail "not PASSED"
	grep -q "source: post-copy recovery: reconnected 1 times after a loss" \
		"$out" || fail "the source did not resume once"
	grep -Eq "dest: +post-copy recovery: reconnected 1 times, [0-9.]+ s disconnected; [1-9][0-9]* faults waited for the next session \([0-9]+ came while disconnected\), 0 pages placed while disconnected" \
		"$out" || fail "the destination's recovery report"
	;;
giveup)
	[ $rc -ne 0 ] || fail "demo exit 0"
	grep -Eq "source: FAILED: post-copy recovery gave up after [0-9.]+ s disconnected .*stopped by a signal.*exist only here and are lost.*does not resume the guest" \
		"$out" || fail "no give-up message from the source"
	grep -q "the guest is NOT resumed here" "$out" ||
		fail "the source did not say it keeps the guest paused"
	grep -Eq "demo FAILED \(source exit 1, destination exit 137\)" "$out" ||
		fail "exit statuses"
	if grep -Eq "runs on at the source|PASSED|verified" "$out"; then
		fail "something was resumed or verified"
	fi
	;;
esac
echo "OK: $mode"
