#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# migration-test.sh - run QEMU's own tests/qtest/migration-test, as built by
# build.sh (the cache ${RMIG_QEMU_DIR:-<project>/build/qemu}), on the cases
# that matter for rmig: precopy over tcp (the main stream rmig leaves to
# QEMU) and multifd over tcp (plain, cancel, both zero-page policies, the
# channels syntax), plus the patch series' rmig cases (the settings'
# validation; multifd precopy, cancel, a wrong secret, a source without
# x-rmig and auto-converge over rmig's libfabric tcp transport on
# 127.0.0.1), with the firmware wrapper as QTEST_QEMU_BINARY.  Fails
# when any case fails, is skipped or does not run; prints the pass count.
# Registered as the ctest test qemu_migration_test (label qemu), after
# qemu_build.
#
# With --verbs, only the series' multifd precopy over rmig's verbs
# transport (RDMA WRITE), at the RDMA device's address in $RMIG_RXE_ADDR:
# run it inside the soft-RoCE VM, as the ctest test qemu_migration_rxe does:
#   tests/vm/rxe-vm.sh -- integrations/qemu/migration-test.sh --verbs
set -uo pipefail

PROG=qemu_migration_test
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${RMIG_QEMU_DIR:-$here/../../build/qemu}
wrapper=$out/bin/qemu-system-x86_64
mtest=$out/src/build/tests/qtest/migration-test
fail() {
	printf '%s: FAIL: %s\n' "$PROG" "$*" >&2
	exit 1
}

verbs=
case ${1-} in
--verbs) verbs=1 ;;
'') ;;
*) fail "unknown argument '$1' (usage: $0 [--verbs])" ;;
esac

# Paths under /x86_64/migration/.  -p selects a path and the paths below
# it: precopy/tcp/plain/switchover-ack is left out with -s.
cases=(precopy/tcp/plain multifd/tcp/plain/cancel
	multifd/tcp/plain/zero-page/legacy multifd/tcp/plain/zero-page/none
	multifd/tcp/channels/plain/none)
skip=(precopy/tcp/plain/switchover-ack)
# The series' own cases, required once a patch of the series adds them.
if grep -qs '^+++ b/tests/qtest/migration/rmig-tests.c' "$here"/patches/*.patch; then
	cases+=(rmig/validate/capability rmig/validate/secret
		rmig/validate/transport rmig/validate/hmp)
fi
if grep -qs 'rmig/validate/postcopy' "$here"/patches/*.patch; then
	cases+=(rmig/validate/postcopy)
fi
# Migrations over rmig (libfabric tcp on 127.0.0.1, the boot block guest).
if grep -qs 'rmig/multifd/tcp/precopy' "$here"/patches/*.patch; then
	cases+=(rmig/validate/address rmig/multifd/tcp/precopy
		rmig/multifd/tcp/cancel rmig/multifd/tcp/wrong-secret)
fi
if grep -qs 'rmig/multifd/tcp/zero-page/none' "$here"/patches/*.patch; then
	cases+=(rmig/multifd/tcp/zero-page/none)
fi
if grep -qs 'rmig/multifd/tcp/auto-converge' "$here"/patches/*.patch; then
	cases+=(rmig/multifd/tcp/source-without-rmig
		rmig/multifd/tcp/auto-converge)
fi
if [ -n "$verbs" ]; then
	[ -n "${RMIG_RXE_ADDR-}" ] ||
		fail "--verbs: RMIG_RXE_ADDR (an RDMA device's IPv4 address) is not set; run it in tests/vm/rxe-vm.sh"
	grep -qs 'rmig/multifd/verbs/precopy' "$here"/patches/*.patch ||
		fail "--verbs: the patch series has no verbs case"
	cases=(rmig/multifd/verbs/precopy)
	skip=()
	export QTEST_RMIG_VERBS_ADDR=$RMIG_RXE_ADDR
fi

if [ ! -x "$wrapper" ] || [ ! -x "$mtest" ]; then
	fail "no QEMU build in $out (run integrations/qemu/build.sh, or the ctest test qemu_build)"
fi
# --full: the full set (cases with a guest); -m slow: the slow ones too
# (rmig/multifd/tcp/auto-converge, like the stock auto_converge).  Only
# the paths below run either way.
args=(--full -m slow)
for c in "${cases[@]}"; do
	args+=(-p "/x86_64/migration/$c")
done
for c in "${skip[@]}"; do
	args+=(-s "/x86_64/migration/$c")
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$SECONDS
QTEST_QEMU_BINARY=$wrapper "$mtest" "${args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# TAP: "ok N PATH", "ok N PATH # SKIP why", "not ok N PATH".  The
# paths left out with -s are reported as "# SKIP by request (-s option)".
passed=$(grep -E '^ok [0-9]+ ' "$log" | grep -vc '# SKIP')
skipped=$(grep -E '^ok [0-9]+ .*# SKIP' "$log" |
	grep -v '# SKIP by request (-s option)$' | sed 's/^ok [0-9]* //' |
	tr '\n' ' ')
failed=$(grep -E '^not ok ' "$log" | sed 's/^not ok [0-9]* //' | tr '\n' ' ')
echo "$PROG: $passed of ${#cases[@]} cases passed in $((SECONDS - start)) s"
[ -z "$failed" ] || fail "failed: $failed"
[ -z "$skipped" ] || fail "skipped (so not tested): $skipped"
[ "$rc" -eq 0 ] || fail "migration-test exited with $rc"
[ "$passed" -eq "${#cases[@]}" ] ||
	fail "$passed cases passed, ${#cases[@]} expected (a path that names no case runs nothing)"
