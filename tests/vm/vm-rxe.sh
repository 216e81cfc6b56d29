#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# vm-rxe.sh BUILD_DIR - run the build's tests labelled "rxe" (those that need
# an RDMA device): natively when this host has one (/sys/class/infiniband
# not empty), otherwise inside the soft-RoCE VM of tests/vm/rxe-vm.sh.
# Prints the inner ctest output; passes only if the inner run passes and at
# least one test ran (not skipped).  Fails, never skips, when the VM cannot
# start, with the reason.  Registered as the ctest test vm_rxe (label vm).
#
# Environment: RMIG_VM_TIMEOUT (seconds for the whole VM run, default 870:
# inside vm_rxe's ctest TIMEOUT of 900), RMIG_VM_MEM (MiB, default 4096).
set -uo pipefail

PROG=vm_rxe
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: vm-rxe.sh BUILD_DIR}
build=$(cd "$build" && pwd) || exit 1
fail() {
	printf '%s: FAIL: %s\n' "$PROG" "$*" >&2
	exit 1
}

inner=(ctest --test-dir "$build" -L rxe --output-on-failure --no-tests=error)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if [ -n "$(ls -A /sys/class/infiniband 2>/dev/null)" ]; then
	echo "$PROG: this host has an RDMA device ($(ls /sys/class/infiniband | tr '\n' ' ')): running natively"
	"${inner[@]}" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	where=natively
else
	log=$build/Testing/vm-rxe-console.log
	mkdir -p "$build/Testing"
	echo "$PROG: no RDMA device on this host: running in the soft-RoCE VM (console log: $log)"
	start=$SECONDS
	"$here/rxe-vm.sh" --timeout "${RMIG_VM_TIMEOUT:-870}" \
		--mem "${RMIG_VM_MEM:-4096}" --log "$log" -- "${inner[@]}" 2>&1 |
		tee "$out"
	rc=${PIPESTATUS[0]}
	where="in the VM ($((SECONDS - start)) s, boot included)"
	if [ "$rc" -eq 125 ]; then
		fail "the VM could not run the tests: $(sed -n 's/^rxe-vm: error: //p' "$out" | tail -1)"
	fi
fi
total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$out" | tail -1)
skipped=$(grep -c '(Skipped)' "$out")
[ -n "$total" ] || fail "the inner ctest ran no tests (exit $rc) $where"
ran=$((total - skipped))
[ "$rc" -eq 0 ] || fail "the inner ctest failed (exit $rc) $where"
[ "$ran" -gt 0 ] || fail "all $total rxe tests were skipped $where"
echo "$PROG: $ran rxe tests passed ($skipped skipped) $where"
