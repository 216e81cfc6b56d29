#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# live_two_host.sh RMIG_MIGRATE - rmig-migrate's two-host commands on one
# machine (127.0.0.1 only): `dest --listen 127.0.0.1:0` first, then
# `source --connect` to the address it printed.  The destination is given
# other workload settings (seed, vCPUs, pattern) than the source: it must
# take them from the transferred device state.  Passes when both exit 0, the
# destination reports every page hash verified and its resumed guest equal
# to the never-migrated replay, and the source reports a converged
# migration.  Both authenticate with one key file, made as the manual says
# (umask 077; head -c 32 /dev/urandom).
set -u
bin=$1
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

timeout 120 "$bin" dest --listen 127.0.0.1:0 --size 32M --timeout 60 \
	--auth-key-file "$key" \
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
case $addr in 127.0.0.1:*) ;; *) fail "unexpected address $addr" ;; esac

timeout 120 "$bin" source --connect "$addr" --size 32M --seed 7 --vcpus 2 \
	--auth-key-file "$key" \
	--pattern hot --dirty-rate 100 --warmup 0.3 \
	>"$tmp/src.out" 2>"$tmp/src.err"
src_rc=$?
wait "$dest_pid"
dest_rc=$?
dest_pid=
[ "$src_rc" = 0 ] || fail "source exit $src_rc"
[ "$dest_rc" = 0 ] || fail "destination exit $dest_rc"
grep -q "^source: *migrated a running .*converged" "$tmp/src.out" ||
	fail "the source did not report a converged migration"
grep -q "^dest: *verified: all [0-9]* page hashes equal" "$tmp/dest.out" ||
	fail "the destination did not verify the page hashes"
grep -q "^dest: *resumed the guest here .*: equal$" "$tmp/dest.out" ||
	fail "the destination's resumed guest does not equal the replay"
cat "$tmp/src.out" "$tmp/dest.out"
echo "PASSED"
