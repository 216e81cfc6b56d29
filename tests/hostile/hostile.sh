#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# hostile.sh SCENARIO HOSTILE_PEER HOSTILE_DEST RMIG_MIGRATE - one scenario
# of issue 9's hostile-peer tests, in separate processes on 127.0.0.1 only:
# hostile_peer (libfabric directly, no secret) against hostile_dest (the
# public API, a RAM block of known content, a secret), then a real source,
# `rmig-migrate source --still` with the right secret.
#
# Every scenario with a destination checks, at the end: the hostile peer
# learnt nothing (no ACCEPT, no block table, no key, no UUID in any
# message; its exit status 0), the destination's RAM hash was unchanged
# after the attack (before the real source came), the real source then
# migrated (exit 0, the destination's finish 0 with every page received),
# and the destination's open fd count after rmig_dest_destroy() equals the
# count before rmig_dest_create().
#
#   nokey          a HANDSHAKE first: AUTH_REJECT "authentication required"
#   wrongkey       the exchange with a wrong secret: AUTH_REJECT
#                  "authentication failed"
#   replay         a HELLO and PROOF recorded with the right secret from an
#                  earlier destination, replayed to a new one: AUTH_REJECT
#                  "authentication failed"
#   impostor       the hostile peer listens as the destination: the real
#                  source fails with a message saying the destination did
#                  not authenticate (secret, authentication or impostor)
#                  and sends nothing after its HELLO (no PROOF, HANDSHAKE,
#                  packet or device state; CREDIT messages aside)
#   keywrite       a connection that never authenticates RDMA-WRITEs with
#                  the block's address and key (after listen, where the
#                  destination has them then, and while the real source is
#                  between its two syncs): no write delivered, RAM unchanged;
#                  and the RAM is registered neither before the source
#                  authenticated nor after the final sync
#   squat          a HELLO announcing 64 channels, never a PROOF, and a
#                  HANDSHAKE announcing 64 channels, held while the real
#                  source (2 channels) connects
#   slowloris      40 silent connections (more than the destination greets
#                  at once, RMIG_ACCEPT_PENDING 16) ahead of the real
#                  source, each one the destination drops replaced at once
#   rawflood       100 raw TCP connections (no libfabric handshake) ahead
#                  of the real source, held until the destination has
#                  destroyed its session (its fd count then)
#   rawflood_lowfd the same against a destination with RLIMIT_NOFILE 64
#   allowlist      a destination taking sources from 127.0.0.1 only; a
#                  peer connecting from 127.0.0.2 with the right secret
#                  is closed before it receives anything (not even a
#                  CHALLENGE)
#
# SCENARIO_verbs (keywrite_verbs): the same over the verbs transport, on
# $RMIG_RXE_ADDR (the soft-RoCE VM's address, tests/vm/rxe-vm.sh): the
# destination and the source on rmig's verbs provider, the hostile peer on
# libfabric's verbs provider.  Exit 77 (skipped) without RMIG_RXE_ADDR.
#
# Exit 0 when every check passed; 1 with "FAIL: ..." and every process's
# output otherwise.
set -u
scenario=${1:?usage: hostile.sh SCENARIO HOSTILE_PEER HOSTILE_DEST RMIG_MIGRATE}
peer=${2:?}
dest=${3:?}
mig=${4:?}
MIB=4
host=127.0.0.1
dest_tp=()
peer_tp=()
src_tp=()
case $scenario in
*_verbs)
	if [ -z "${RMIG_RXE_ADDR:-}" ]; then
		echo "SKIP: $scenario needs an RDMA device's address in RMIG_RXE_ADDR (run it in the soft-RoCE VM: tests/vm/rxe-vm.sh)"
		exit 77
	fi
	host=$RMIG_RXE_ADDR
	dest_tp=(--transport verbs)
	peer_tp=(--prov verbs)
	src_tp=(--transport verbs)
	scenario=${scenario%_verbs}
	;;
esac
UUID=5a3c0f1e9b8d4c7a8e6f2b1d0c9a8b7e
tmp=$(mktemp -d /tmp/rmig-hostile.XXXXXX)
dest_pid=
bg_pid=
reports=0

# A peer left running (a failed scenario) is under timeout(1), which
# passes SIGTERM on to it but dies of SIGKILL alone: TERM first.
cleanup() {
	exec 7>&- 2>/dev/null
	for p in $bg_pid $dest_pid; do
		kill -TERM "$p" 2>/dev/null || continue
		for _ in $(seq 1 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $scenario: $*"
	for f in "$tmp"/*.out "$tmp"/*.err "$tmp"/*.json; do
		[ -s "$f" ] && { echo "--- ${f##*/}:"; cat "$f"; }
	done
	exit 1
}

# wait_line FILE REGEX [PID]: until a line of FILE matches (30 s at most;
# fails at once when PID has ended without writing it).
wait_line() {
	for _ in $(seq 1 300); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
			grep -q -- "$2" "$1" 2>/dev/null && return 0
			fail "no '$2' in ${1##*/}: the process ended"
		fi
		sleep 0.1
	done
	fail "no '$2' in ${1##*/} within 30 s"
}

# value FILE KEY: the value of the first "KEY=VALUE" in FILE.
value() {
	sed -n "s/^.*\\b$2=\\([^ ]*\\).*/\\1/p" "$1" | head -1
}

umask 077
head -c 32 /dev/urandom >"$tmp/key"
head -c 32 /dev/urandom >"$tmp/wrong"
chmod 600 "$tmp/key" "$tmp/wrong"


# start_dest [OPTIONS]: hostile_dest in the background; $addr, $hash0.
start_dest() {
	: >"$tmp/dest.out"
	reports=0
	# No timeout(1) around it: it would not pass SIGUSR1 on.  Its own
	# watchdog (alarm) bounds it.
	"$dest" --listen "$host:0" --size $((MIB << 20)) --uuid "$UUID" \
		--key-file "$tmp/key" --accept-ms 60000 --watchdog 120 \
		"${dest_tp[@]}" "$@" \
		>"$tmp/dest.out" 2>"$tmp/dest.err" &
	dest_pid=$!
	wait_line "$tmp/dest.out" '^listening=' "$dest_pid"
	addr=$(value "$tmp/dest.out" listening)
	case $addr in "$host":*) ;; *) fail "unexpected address '$addr'" ;; esac
	hash0=$(value "$tmp/dest.out" hash_start)
	[ -n "$hash0" ] || fail "the destination printed no hash"
}

# ram_hash: the destination's RAM hash now (SIGUSR1, "report seq=N").
ram_hash() {
	reports=$((reports + 1))
	kill -USR1 "$dest_pid"
	wait_line "$tmp/dest.out" "^report seq=$reports " "$dest_pid"
	sed -n "s/^report seq=$reports hash=\\([0-9a-f]*\\).*/\\1/p" \
		"$tmp/dest.out"
}

check_ram_unchanged() {
	local h
	h=$(ram_hash)
	[ "$h" = "$hash0" ] || fail "destination RAM changed $1 (hash $h, was $hash0)"
}

# run_peer NAME MODE [ARGS]: the hostile peer to its end; its JSON in
# NAME.json, its exit status in $peer_rc.
run_peer() {
	local name=$1
	shift
	timeout -k 5 90 "$peer" "$@" --uuid "$UUID" "${peer_tp[@]}" \
		>"$tmp/$name.json" 2>"$tmp/$name.err"
	peer_rc=$?
}

# start_peer NAME MODE [ARGS]: the same in the background ($bg_pid), until
# it says "hostile: ready" (or, with READY set, another line).
#
# --foreground: stop_peer's SIGTERM goes to timeout(1), which passes it on
# and, without --foreground, follows it with a SIGCONT.  A SIGCONT discards
# a pending SIGSTOP, and the leak check of an ASan build stops the process
# at exit with one (its tracer PTRACE_ATTACHes each thread and waits for
# the stop): when the peer's exit outran timeout's SIGCONT, the tracer
# waited forever and timeout's SIGKILL ended the peer, exit 137, its
# report already written.
start_peer() {
	local name=$1
	shift
	timeout --foreground -k 5 120 "$peer" "$@" --uuid "$UUID" "${peer_tp[@]}" \
		>"$tmp/$name.json" 2>"$tmp/$name.err" &
	bg_pid=$!
	wait_line "$tmp/$name.err" "${READY:-^hostile: ready}" "$bg_pid"
}

# stop_peer NAME: SIGTERM the background peer, its status in $peer_rc.
stop_peer() {
	kill -TERM "$bg_pid" 2>/dev/null
	wait "$bg_pid"
	peer_rc=$?
	bg_pid=
}

# learnt_nothing NAME: the peer's verdict and every leak flag.
learnt_nothing() {
	local j=$tmp/$1.json
	[ -s "$j" ] || fail "$1: no report"
	grep -q '"accept":false' "$j" || fail "$1: received an ACCEPT"
	grep -q '"blocks_learnt":0,' "$j" || fail "$1: learnt the block table"
	grep -q '"rkey_seen":false' "$j" || fail "$1: received the memory key"
	grep -q '"uuid_seen":false' "$j" || fail "$1: received the session UUID"
	grep -q '"writes_ok":0,' "$j" || fail "$1: a write was delivered"
	[ "$peer_rc" = 0 ] || fail "$1: exit $peer_rc (0: held, 1: breached, 3: could not play)"
}

# expect_reject NAME REASON: the peer's only AUTH_REJECT gave REASON;
# with "among", one of its AUTH_REJECTs did.
expect_reject() {
	local re="\"auth_reject\":\"$2\""
	[ "${3:-}" = among ] && re="\"auth_reject\":\"([^\"]*,)?$2[,\"]"
	grep -Eq "$re" "$tmp/$1.json" ||
		fail "$1: expected AUTH_REJECT '$2'"
}

real_source() {
	timeout -k 5 90 "$mig" source --still --connect "$addr" \
		--size "${MIB}M" --channels 2 --uuid "$UUID" \
		--auth-key-file "$tmp/key" "${src_tp[@]}" \
		>"$tmp/src.out" 2>"$tmp/src.err"
}

# finish_dest: the real source's migration completed there, and no fd
# outlived the session.
finish_dest() {
	local rc fds0 fds1
	wait "$dest_pid"
	rc=$?
	dest_pid=
	[ "$rc" = 0 ] || fail "destination exit $rc"
	grep -q '^finish=0 ' "$tmp/dest.out" || fail "destination finish failed"
	fds0=$(value "$tmp/dest.out" fds_start)
	fds1=$(value "$tmp/dest.out" fds_end)
	[ -n "$fds1" ] && [ "$fds1" = "$fds0" ] ||
		fail "destination fds: $fds0 before create, ${fds1:-?} after destroy"
}

migrate_after() {
	real_source || fail "the real source failed (exit $?) $1"
	finish_dest
}

# The address and key of the block after listen, when it has them then.
remote_after_listen() {
	sed -n 's/^remote_after_listen=1 raddr=\(0x[0-9a-f]*\) rkey=\(0x[0-9a-f]*\)$/\1 \2/p' \
		"$tmp/dest.out"
}

# A peer that plays one exchange (nokey, wrongkey, replay) to its end.
exchange() {
	local mode=$1 reason=$2 rk
	shift 2
	rk=$(remote_after_listen)
	run_peer "$mode" "$mode" --addr "$addr" \
		${rk:+--rkey "${rk#* }"} "$@"
	learnt_nothing "$mode"
	expect_reject "$mode" "$reason"
	check_ram_unchanged "after the $mode peer"
	migrate_after "after the $mode peer"
}

case $scenario in
nokey)
	start_dest
	exchange nokey "authentication required"
	;;
wrongkey)
	start_dest
	exchange wrongkey "authentication failed" --key-file "$tmp/wrong"
	;;
replay)
	# The recording: a genuine exchange with an earlier destination.
	start_dest
	run_peer record record --addr "$addr" --key-file "$tmp/key" \
		--rec "$tmp/rec"
	[ "$peer_rc" = 0 ] || fail "record: exit $peer_rc"
	kill -TERM "$dest_pid"
	wait "$dest_pid"
	dest_pid=
	mv "$tmp/dest.out" "$tmp/dest-recorded.out"
	start_dest
	exchange replay "authentication failed" --rec "$tmp/rec"
	;;
impostor)
	READY='^hostile: listening on ' start_peer impostor impostor \
		--addr 127.0.0.1:0 --quiet-ms 3000
	addr=$(sed -n 's/^hostile: listening on //p' "$tmp/impostor.err")
	if real_source; then
		fail "the source migrated to an impostor"
	fi
	grep -Eqi 'secret|authenticat|impostor' "$tmp/src.out" "$tmp/src.err" ||
		fail "the source's failure does not say the destination failed to authenticate"
	stop_peer
	j=$tmp/impostor.json
	grep -q '"first":"AUTH_HELLO"' "$j" ||
		fail "impostor: the source's first message was no AUTH_HELLO"
	grep -q '"after_hello":""' "$j" ||
		fail "impostor: the source sent something after its HELLO"
	learnt_nothing impostor
	;;
keywrite)
	start_dest --pause-after-sync
	# The peer reads "RADDR RKEY" lines from a FIFO: one write each.
	mkfifo "$tmp/ctl"
	timeout -k 5 120 "$peer" keywrite - - --addr "$addr" --uuid "$UUID" \
		"${peer_tp[@]}" <"$tmp/ctl" >"$tmp/keywrite.json" 2>"$tmp/keywrite.err" &
	bg_pid=$!
	exec 7>"$tmp/ctl"
	wait_line "$tmp/keywrite.err" '^hostile: connected' "$bg_pid"
	writes=0
	rk=$(remote_after_listen)
	if [ -n "$rk" ]; then
		# The destination has a registration before any source.
		echo "$rk" >&7
		writes=$((writes + 1))
		wait_line "$tmp/keywrite.err" "^hostile: write $writes done"
		check_ram_unchanged "by a write on an unauthenticated connection during accept"
	fi
	real_source &
	src_pid=$!
	wait_line "$tmp/dest.out" '^paused=1 ' "$dest_pid"
	rk=$(sed -n 's/^paused=1 raddr=\(0x[0-9a-f]*\) rkey=\(0x[0-9a-f]*\)$/\1 \2/p' "$tmp/dest.out")
	hash0=$(ram_hash) # the source's pages are in; nothing moves now
	echo "$rk" >&7
	writes=$((writes + 1))
	wait_line "$tmp/keywrite.err" "^hostile: write $writes done"
	check_ram_unchanged "by a write on an unauthenticated connection during the migration"
	kill -USR2 "$dest_pid"
	exec 7>&-
	wait "$bg_pid"
	peer_rc=$?
	bg_pid=
	learnt_nothing keywrite
	wait "$src_pid" || fail "the real source failed (exit $?) after the key writes"
	finish_dest
	# Remote access exists only between the authentication of every
	# channel and the final sync (rmig_dest_block_remote(), the hook).
	grep -q '^remote_after_listen=none' "$tmp/dest.out" ||
		fail "the RAM was registered before any source authenticated"
	grep -q '^remote_after_final=none' "$tmp/dest.out" ||
		fail "the RAM was still registered after the final sync"
	;;
squat)
	start_dest
	start_peer squat squat --count 2 --addr "$addr"
	check_ram_unchanged "after the squat"
	real_source || fail "the real source failed (exit $?) during the squat"
	stop_peer
	learnt_nothing squat
	# The HANDSHAKE squatter was told authentication is required.
	expect_reject squat "authentication required" among
	finish_dest
	;;
slowloris)
	start_dest
	start_peer silent silent 40 --reconnect --addr "$addr"
	real_source || fail "the real source failed (exit $?) behind 40 silent connections"
	stop_peer
	learnt_nothing silent
	finish_dest
	;;
rawflood | rawflood_lowfd)
	if [ "$scenario" = rawflood ]; then
		start_dest
	else
		start_dest --nofile 64
	fi
	start_peer rawflood rawflood 100 --addr "$addr"
	real_source || fail "the real source failed (exit $?) during a raw-connection flood"
	finish_dest # the flood still open: no fd of it may outlive destroy
	stop_peer
	[ "$peer_rc" = 0 ] || fail "rawflood: exit $peer_rc"
	;;
allowlist)
	start_dest --allow 127.0.0.1
	# wrongkey plays the exchange with the secret it is given: the
	# right one here.  From a host not allowed, no answer may come.
	run_peer allowlist wrongkey --addr "$addr" --src 127.0.0.2 \
		--key-file "$tmp/key"
	grep -q '"msgs":0,' "$tmp/allowlist.json" ||
		fail "allowlist: a peer from 127.0.0.2 received messages"
	[ "$peer_rc" != 1 ] || fail "allowlist: the peer learnt something"
	check_ram_unchanged "after a peer from a host not allowed"
	migrate_after "after a peer from a host not allowed"
	;;
*)
	echo "hostile.sh: unknown scenario '$scenario'" >&2
	exit 2
	;;
esac
for f in "$tmp"/*.json; do
	echo "${f##*/}: $(cat "$f")"
done
echo "PASSED: $scenario"
