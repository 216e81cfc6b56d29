#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# rxe-selftest.sh - check that the RDMA stack the rxe tests rely on works:
#   1. ibv_devinfo shows the device's port 1 PORT_ACTIVE;
#   2. an ib_write_bw server/client pair (RDMA WRITE, connected through
#      librdmacm) on that device completes a few iterations;
#   3. rping (librdmacm) exchanges 3 pings;
#   4. fi_info -p verbs lists an FI_EP_MSG endpoint (libfabric's verbs).
#
# Device and address: $RMIG_RXE_DEV and $RMIG_RXE_ADDR (set by
# tests/vm/rxe-vm.sh: rxe0, 10.77.0.1); on a host with its own RDMA device,
# the first device in /sys/class/infiniband and the first IPv4 address of
# its netdev.  Both ends use the same device and address (two rxe devices on
# the two ends of a veth pair in one namespace do not talk to each other).
# Fails, naming the step, when anything is missing: it is registered with
# the label "rxe" and runs only where an RDMA device exists (vm_rxe).
set -uo pipefail

PROG=rxe-selftest
fail() {
	printf '%s: FAIL: %s\n' "$PROG" "$*" >&2
	exit 1
}
step() { printf '%s: %s\n' "$PROG" "$*"; }

for c in ibv_devinfo ib_write_bw rping fi_info rdma ip timeout; do
	command -v "$c" >/dev/null || fail "'$c' is missing (Debian packages ibverbs-utils perftest rdmacm-utils libfabric-bin iproute2)"
done

dev=${RMIG_RXE_DEV:-}
if [ -z "$dev" ]; then
	dev=$(ls /sys/class/infiniband 2>/dev/null | head -1)
	[ -n "$dev" ] || fail "no RDMA device (/sys/class/infiniband is empty or missing) and RMIG_RXE_DEV is not set; run through tests/vm/rxe-vm.sh"
fi
addr=${RMIG_RXE_ADDR:-}
if [ -z "$addr" ]; then
	netdev=$(rdma link show "$dev/1" 2>/dev/null | sed -n 's/.* netdev \([^ ]*\).*/\1/p')
	[ -n "$netdev" ] || fail "device $dev has no netdev (rdma link show $dev/1) and RMIG_RXE_ADDR is not set"
	addr=$(ip -4 -o addr show dev "$netdev" | awk '{ sub("/.*", "", $4); print $4; exit }')
	[ -n "$addr" ] || fail "netdev $netdev of $dev has no IPv4 address and RMIG_RXE_ADDR is not set"
fi
step "device $dev, address $addr"

# 1. The port.
info=$(timeout 30 ibv_devinfo -d "$dev" 2>&1) || fail "ibv_devinfo -d $dev failed: $info"
grep -q 'state:[[:space:]]*PORT_ACTIVE' <<<"$info" ||
	fail "ibv_devinfo -d $dev shows no PORT_ACTIVE port: $info"
step "ok: ibv_devinfo: $dev port PORT_ACTIVE"

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}
trap cleanup EXIT

# run_pair NAME SERVER_CMD... -- CLIENT_CMD...: the server in the background,
# the client retried while the server is not listening yet; both bounded by
# timeout(1).  Fails with both outputs when the client never succeeds or the
# server does not end cleanly.
run_pair() {
	local name=$1 srv=() cli=() spid ok='' rc
	shift
	while [ "$1" != -- ]; do srv+=("$1"); shift; done
	shift
	cli=("$@")
	local slog cl
	slog=$(mktemp) cl=$(mktemp)
	timeout 60 "${srv[@]}" >"$slog" 2>&1 &
	spid=$!
	pids+=("$spid")
	for _ in $(seq 20); do
		sleep 1
		if timeout 60 "${cli[@]}" >"$cl" 2>&1; then
			ok=1
			break
		fi
		kill -0 "$spid" 2>/dev/null || break # server gone: no retry
	done
	rc=0
	wait "$spid" || rc=$?
	pids=()
	if [ -z "$ok" ] || [ "$rc" -ne 0 ]; then
		printf -- '--- %s server (exit %d):\n%s\n--- %s client (last try):\n%s\n' \
			"$name" "$rc" "$(cat "$slog")" "$name" "$(cat "$cl")" >&2
		rm -f "$slog" "$cl"
		fail "$name: the server/client pair did not complete"
	fi
	cat "$cl"
	rm -f "$slog" "$cl"
}

# 2. RDMA WRITE through perftest, connected with librdmacm (-R: no GID
# index to guess).
bw_args=(-d "$dev" -R -s 65536 -n 20 -p 18661 -F)
out=$(run_pair ib_write_bw ib_write_bw "${bw_args[@]}" -- \
	ib_write_bw "${bw_args[@]}" "$addr") || exit 1
grep -qE '^[[:space:]]*65536[[:space:]]+20[[:space:]]' <<<"$out" ||
	fail "ib_write_bw: no result row for 65536 bytes x 20 iterations in: $out"
step "ok: ib_write_bw: $(grep -E '^[[:space:]]*65536[[:space:]]+20' <<<"$out" | tr -s ' ')"

# 3. librdmacm: rping, 3 pings with data verification.
out=$(run_pair rping rping -s -a "$addr" -p 18662 -C 3 -V -- \
	rping -c -a "$addr" -p 18662 -C 3 -V -v) || exit 1
n=$(grep -c 'ping data' <<<"$out")
[ "$n" -eq 3 ] || fail "rping: expected 3 pings, saw $n: $out"
step "ok: rping: 3 pings over librdmacm"

# 4. libfabric's verbs provider.
out=$(timeout 30 fi_info -p verbs -t FI_EP_MSG 2>&1) ||
	fail "fi_info -p verbs -t FI_EP_MSG failed: $out"
grep -q 'type:[[:space:]]*FI_EP_MSG' <<<"$out" ||
	fail "fi_info -p verbs lists no FI_EP_MSG endpoint: $out"
grep -q "domain:[[:space:]]*$dev" <<<"$out" ||
	fail "fi_info -p verbs lists no FI_EP_MSG endpoint on $dev: $out"
step "ok: fi_info: libfabric verbs FI_EP_MSG on $dev"
step "all checks passed"
