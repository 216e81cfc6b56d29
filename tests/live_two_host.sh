#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# live_two_host.sh RMIG_MIGRATE [--postcopy] [--verbs] - rmig-migrate's
# two-host commands on one machine (127.0.0.1 only): `dest --listen
# 127.0.0.1:0` first, then `source --connect` to the address it printed.
# --postcopy: one pre-copy round, then post-copy (the destination pulls the
# rest by RDMA READ); the source must report the switch and the
# destination the pulled pages verified.  --verbs: the verbs transport at
# $RMIG_RXE_ADDR (the soft-RoCE VM's address, tests/vm/rxe-vm.sh) instead
# of 127.0.0.1; exit 77 (skipped) without it.  The destination is given
# other workload settings (seed, vCPUs, pattern) than the source: it must
# take them from the transferred device state.  Passes when both exit 0, the
# destination reports every page hash verified and its resumed guest equal
# to the never-migrated replay, and the source reports a converged
# migration.  Both authenticate with one key file, made as the manual says
# (umask 077; head -c 32 /dev/urandom).
set -u
bin=$1
shift
host=127.0.0.1
tp=()
post=()
for a in "$@"; do
	case $a in
	--postcopy) post=(--postcopy-after 1) ;;
	--verbs)
		if [ -z "${RMIG_RXE_ADDR:-}" ]; then
			echo "SKIP: --verbs needs an RDMA device's address in RMIG_RXE_ADDR (run it in the soft-RoCE VM: tests/vm/rxe-vm.sh)"
			exit 77
		fi
		host=$RMIG_RXE_ADDR
		tp=(--transport verbs)
		;;
	*) echo "usage: live_two_host.sh RMIG_MIGRATE [--postcopy] [--verbs]"; exit 2 ;;
	esac
done
tmp=$(mktemp -d /tmp/rmig-two-host.XXXXXX)
dest_pid=
cleanup() {
	if [ -n "$dest_pid" ] && kill -0 "$dest_pid" 2>/dev/null; then
		kill -KILL "$dest_pid" 2>/dev/null
		wait "$dest_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
key=$tmp/migration.key
(umask 077 && head -c 32 /dev/urandom >"$key") || { echo "FAIL: key"; exit 1; }
fail() {
	echo "FAIL: $*"
	echo "--- dest:"; cat "$tmp/dest.out" "$tmp/dest.err" 2>/dev/null
	echo "--- source:"; cat "$tmp/src.out" "$tmp/src.err" 2>/dev/null
	exit 1
}

timeout 240 "$bin" dest --listen "$host:0" --size 32M --timeout 200 \
	--auth-key-file "$key" "${tp[@]}" \
	--seed 99 --vcpus 1 --pattern seq --dirty-dest --resume-steps 5000 \
	>"$tmp/dest.out" 2>"$tmp/dest.err" &
dest_pid=$!
addr=
for _ in $(seq 1 300); do
	addr=$(sed -n 's/^dest: *listening on \([0-9.]*:[0-9]*\);.*/\1/p' \
		"$tmp/dest.out")
	[ -n "$addr" ] && break
	kill -0 "$dest_pid" 2>/dev/null || fail "the destination ended early"
	sleep 0.1
done
[ -n "$addr" ] || fail "the destination printed no address"
case $addr in "$host":*) ;; *) fail "unexpected address $addr" ;; esac

timeout 240 "$bin" source --connect "$addr" --size 32M --seed 7 --vcpus 2 \
	--auth-key-file "$key" "${tp[@]}" "${post[@]}" \
	--pattern hot --dirty-rate 100 --warmup 0.3 \
	>"$tmp/src.out" 2>"$tmp/src.err"
src_rc=$?
wait "$dest_pid"
dest_rc=$?
dest_pid=
[ "$src_rc" = 0 ] || fail "source exit $src_rc"
[ "$dest_rc" = 0 ] || fail "destination exit $dest_rc"
if [ ${#post[@]} = 0 ]; then
	grep -q "^source: *migrated a running .*converged" "$tmp/src.out" ||
		fail "the source did not report a converged migration"
	grep -q "^dest: *verified: all [0-9]* page hashes equal" \
		"$tmp/dest.out" ||
		fail "the destination did not verify the page hashes"
	grep -q "^dest: *resumed the guest here .*: equal$" "$tmp/dest.out" ||
		fail "the destination's resumed guest does not equal the replay"
else
	grep -q "^source: *migrated a running .* guest by post-copy" \
		"$tmp/src.out" ||
		fail "the source did not report a post-copy migration"
	grep -q "^dest: *verified: every pulled page's hash" "$tmp/dest.out" ||
		fail "the destination did not verify the pulled pages"
	grep -q "^dest: *ran the guest .*: equal$" "$tmp/dest.out" ||
		fail "the destination's guest does not equal the replay"
fi
cat "$tmp/src.out" "$tmp/dest.out"
echo "PASSED"
