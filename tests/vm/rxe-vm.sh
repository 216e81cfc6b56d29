#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# rxe-vm.sh - run a command in a throw-away QEMU VM that has soft-RoCE (rxe0).
#
#   tests/vm/rxe-vm.sh [--mem MiB] [--cpus N] [--timeout SECONDS] [--log FILE]
#                      -- COMMAND [ARGS...]
#   tests/vm/rxe-vm.sh --prepare
#
# The VM boots Debian's own kernel (the package linux-image-amd64 depends on,
# fetched with apt-get download and unpacked with dpkg -x: nothing is
# installed into the host's /boot) with a busybox initramfs that loads the
# virtio/9p/overlay/RDMA modules.  The host's / is shared read-only over
# virtio-9p and made writable inside with an overlayfs (tmpfs upper), so the
# VM runs the host's own programs and the project's build unchanged; what it
# writes is gone when it ends.  Inside: a veth pair (veth0 10.77.0.1/24,
# veth1 10.77.0.2/24), rxe0 on veth0, port 1 ACTIVE; then, in the caller's
# working directory and with the caller's environment plus
#   RMIG_RXE_ADDR=10.77.0.1 RMIG_RXE_DEV=rxe0 RMIG_IN_VM=1
# COMMAND runs with ARGS as given (no word splitting, no shell).  Its stdout
# and stderr appear on this script's stdout; the VM console (kernel, init)
# goes to the log.  The VM has no network card: all traffic stays inside.
#
# Exit status: COMMAND's, or 125 with a message on stderr when the VM could
# not run it (kernel package not fetchable, qemu missing or failing, a
# module not loading, rxe0 not coming up, --timeout expired).
#
# Options:
#   --mem MiB        VM memory (default 4096)
#   --cpus N         virtual CPUs (default 2)
#   --timeout S      kill the VM after S seconds, boot included (default 900)
#   --log FILE       full console log (default: $cache/last-console.log)
#   --prepare        only fetch the kernel and build the initramfs (the
#                    cache below), print the kernel's path and exit: the
#                    real-guest demo of integrations/qemu boots the same
#                    kernel
#
# Cache: ${RMIG_VM_CACHE:-<project root>/build/vm} holds the kernel and the
# initramfs; they are rebuilt only when missing or outdated (another kernel
# package version, or another initramfs recipe).  KVM is used
# only when the CPU shows vmx/svm, else TCG (RMIG_VM_ACCEL=tcg|kvm forces).
set -euo pipefail

PROG=rxe-vm
# depmod and modprobe live in /usr/sbin, outside a normal user's PATH.
PATH=$PATH:/usr/sbin:/sbin
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${RMIG_VM_CACHE:-$root/build/vm}
mem=4096 cpus=2 tmo=900 log= prepare=

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 125
}
usage() {
	sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case $1 in
	--mem) mem=${2:?--mem needs a value}; shift 2 ;;
	--cpus) cpus=${2:?--cpus needs a value}; shift 2 ;;
	--timeout) tmo=${2:?--timeout needs a value}; shift 2 ;;
	--log) log=${2:?--log needs a value}; shift 2 ;;
	--prepare) prepare=1; shift ;;
	--) shift; break ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument '$1' (the command goes after --)" ;;
	esac
done
[ $# -gt 0 ] || [ -n "$prepare" ] ||
	{ usage >&2; die "no COMMAND given (after --)"; }
for v in mem cpus tmo; do
	case ${!v} in
	'' | *[!0-9]* | 0*) die "--${v/tmo/timeout} must be a positive integer, got '${!v}'" ;;
	esac
done
[ "$mem" -ge 256 ] || die "--mem $mem MiB is too small (256 at least)"

# ---------------------------------------------------------------- the cache

# Modules to load, in dependency order (modprobe --show-depends adds what
# they need).  crc32_generic: rdma_rxe asks the crypto API for crc32 at
# run time (no module dependency), without it "rdma link add" fails.
WANT_MODULES="virtio_pci 9pnet_virtio 9p overlay crc32_generic rdma_rxe
rdma_ucm ib_uverbs veth"

# /init of the initramfs (busybox sh): modules, the 9p root with an overlay
# on top, then stage2.sh chrooted into it, then power off.
read -r -d '' INIT <<'EOF' || true
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "RMIG-VM: $*" >/dev/ttyS0; }
fail() {
	echo "RMIG-VM-ERROR: $*" >/dev/ttyS0
	sync
	poweroff -f
}
say "init: loading modules"
while read -r m; do
	out=$(insmod "/modules/$m" 2>&1) || fail "module $m failed to load: $out"
done </modules.list
say "init: modules loaded"
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose \
	hostroot /lower || fail "cannot mount the host's / over virtio-9p"
mount -t tmpfs -o mode=755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work \
	overlay /newroot || fail "cannot mount the overlay root"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tmpfs -o mode=755 tmpfs /newroot/run
mkdir -p /newroot/run/rmig
cp /rmig/* /newroot/run/rmig/
[ -x /newroot/bin/bash ] || fail "the host's /bin/bash is not visible in the VM"
say "init: root ready"
chroot /newroot /bin/bash /run/rmig/stage2.sh
say "init: stage2 ended with status $?"
sync
poweroff -f
EOF

# stage2.sh: runs with the host's bash inside the overlay root.
read -r -d '' STAGE2 <<'EOF' || true
con=/dev/ttyS0
say() { echo "RMIG-VM: $*" >$con; }
fail() {
	echo "RMIG-VM-ERROR: $*" >$con
	exit 1
}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ulimit -l unlimited
ip link set lo up || fail "cannot bring lo up"
ip link add veth0 type veth peer name veth1 || fail "cannot create veth0/veth1"
ip addr add 10.77.0.1/24 dev veth0 && ip addr add 10.77.0.2/24 dev veth1 &&
	ip link set veth0 up && ip link set veth1 up ||
	fail "cannot configure veth0/veth1"
out=$(rdma link add rxe0 type rxe netdev veth0 2>&1) ||
	fail "rdma link add rxe0 failed: $out; dmesg: $(dmesg | tail -3 | tr '\n' ' ')"
active=
for i in $(seq 150); do
	if rdma link show rxe0/1 2>/dev/null | grep -q 'state ACTIVE'; then
		active=1
		break
	fi
	sleep 0.2
done
[ -n "$active" ] ||
	fail "rxe0 port 1 not ACTIVE after 30 s: $(rdma link show 2>&1 | tr '\n' ' ')"
say "stage2: rxe0 port 1 ACTIVE"
stty -F /dev/ttyS1 raw -echo 2>/dev/null
. /run/rmig/cmd.sh || fail "cannot enter the caller's directory $RMIG_VM_CWD"
say "stage2: running the command"
("$@") </dev/null >/dev/ttyS1 2>&1
st=$?
echo "RMIG-VM-EXIT-STATUS=$st" >$con
EOF

# The recipe of the initramfs: a change rebuilds the cache.
recipe=$(printf '%s\n' "$WANT_MODULES" "$INIT" "$STAGE2" |
	sha256sum | cut -c1-16)

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one builder per cache; runs share the result read-only

# find_kernel: the package linux-image-amd64 depends on, and its version.
kpkg='' kpkgver=''
find_kernel() {
	local deps
	kpkg='' kpkgver=''
	deps=$(apt-cache depends linux-image-amd64 2>/dev/null) || return 0
	kpkg=$(printf '%s\n' "$deps" |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1)
	[ -z "$kpkg" ] ||
		kpkgver=$(apt-cache policy "$kpkg" 2>/dev/null |
			sed -n 's/^ *Candidate: //p')
	[ "$kpkgver" != "(none)" ] || kpkgver=
}
find_kernel
stamp=
[ -f "$cache/stamp" ] && stamp=$(cat "$cache/stamp")
if [ -z "$kpkgver" ] && [ ! -f "$cache/vmlinuz" ] && [ "$(id -u)" -eq 0 ]; then
	# A fresh machine whose package lists are empty: fetch them once.
	echo "$PROG: apt knows no linux-image-amd64: running apt-get update" >&2
	apt-get update >"$cache/apt-update.log" 2>&1 ||
		die "apt-get update failed (see $cache/apt-update.log)"
	find_kernel
fi
if [ -z "$kpkg" ] || [ -z "$kpkgver" ]; then
	# apt knows no kernel package: use the cache if there is one.
	case $stamp in
	*" recipe=$recipe") kpkg=${stamp%% *} ;;
	*) die "cannot find the kernel package: 'apt-cache depends linux-image-amd64' names no linux-image-<version> package with a candidate (run apt-get update?)" ;;
	esac
	kpkgver=${stamp#* }
	kpkgver=${kpkgver%% *}
fi
kver=${kpkg#linux-image-}
want_stamp="$kpkg $kpkgver recipe=$recipe"

build_cache() {
	local tmp deb m f
	for f in /bin/busybox depmod modprobe cpio gzip dpkg apt-get; do
		command -v "$f" >/dev/null ||
			die "'$f' is missing (Debian packages busybox-static, kmod, cpio, gzip, dpkg, apt)"
	done
	/bin/busybox true 2>/dev/null ||
		die "/bin/busybox does not run (Debian package busybox-static)"
	if ldd /bin/busybox >/dev/null 2>&1; then
		die "/bin/busybox is dynamically linked; the initramfs needs busybox-static"
	fi
	echo "$PROG: preparing the VM kernel ($kpkg $kpkgver) and initramfs in $cache" >&2
	rm -rf "$cache"/build.*
	tmp=$(mktemp -d "$cache/build.XXXXXX")
	if ! (cd "$tmp" && apt-get download "$kpkg=$kpkgver") >"$tmp/download.log" 2>&1; then
		cat "$tmp/download.log" >&2
		rm -rf "$tmp"
		case $stamp in
		*" recipe=$recipe")
			if [ -f "$cache/vmlinuz" ] && [ -f "$cache/initramfs.gz" ]; then
				echo "$PROG: warning: cannot fetch $kpkg=$kpkgver; using the cached ${stamp% recipe=*}" >&2
				kpkg=${stamp%% *} kpkgver=${stamp#* }
				kpkgver=${kpkgver%% *}
				return 0
			fi ;;
		esac
		die "cannot fetch the kernel package $kpkg=$kpkgver with apt-get download"
	fi
	deb=$(ls "$tmp"/*.deb)
	dpkg -x "$deb" "$tmp/x" || die "dpkg -x $deb failed"
	rm -f "$deb"
	[ -f "$tmp/x/boot/vmlinuz-$kver" ] || die "$kpkg has no boot/vmlinuz-$kver"
	depmod -b "$tmp/x" "$kver" || die "depmod -b failed for $kver"
	mkdir -p "$tmp/i/bin" "$tmp/i/modules" "$tmp/i/rmig" "$tmp/i/proc" \
		"$tmp/i/sys" "$tmp/i/dev" "$tmp/i/tmp"
	: >"$tmp/i/modules.list"
	for m in $WANT_MODULES; do
		modprobe -d "$tmp/x" -S "$kver" --show-depends "$m" >"$tmp/deps" 2>&1 ||
			die "kernel $kver has no module $m: $(cat "$tmp/deps")"
		while read -r word f _; do
			[ "$word" = insmod ] || continue
			m=$(basename "$f")
			grep -qxF "$m" "$tmp/i/modules.list" && continue
			cp "$f" "$tmp/i/modules/$m"
			echo "$m" >>"$tmp/i/modules.list"
		done <"$tmp/deps"
	done
	cp /bin/busybox "$tmp/i/bin/busybox"
	printf '%s\n' "$INIT" >"$tmp/i/init"
	printf '%s\n' "$STAGE2" >"$tmp/i/rmig/stage2.sh"
	chmod 755 "$tmp/i/init"
	(cd "$tmp/i" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
		gzip -1 >"$tmp/initramfs.gz"
	cp "$tmp/x/boot/vmlinuz-$kver" "$tmp/vmlinuz"
	mv -f "$tmp/vmlinuz" "$cache/vmlinuz"
	mv -f "$tmp/initramfs.gz" "$cache/initramfs.gz"
	rm -rf "$tmp"
	echo "$want_stamp" >"$cache/stamp"
}

if [ "$stamp" != "$want_stamp" ] || [ ! -f "$cache/vmlinuz" ] ||
	[ ! -f "$cache/initramfs.gz" ]; then
	build_cache
fi
exec 9>&- # the files are replaced atomically (mv), never modified in place
if [ -n "$prepare" ]; then
	echo "$cache/vmlinuz"
	exit 0
fi

# ---------------------------------------------------------------- one run

qemu=$(command -v qemu-system-x86_64) ||
	die "qemu-system-x86_64 is missing (Debian package qemu-system-x86)"
[ -n "$log" ] || log=$cache/last-console.log
mkdir -p "$(dirname "$log")"
: >"$log" || die "cannot write the log $log"

run=$(mktemp -d "${TMPDIR:-/tmp}/rxe-vm.XXXXXX")
qpid='' tpid=''
cleanup() {
	[ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
	[ -z "$tpid" ] || kill "$tpid" 2>/dev/null || true
	[ -z "$qpid" ] || wait "$qpid" 2>/dev/null || true
	rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The per-run part of the initramfs: the command, its directory and the
# caller's environment, appended as a second cpio archive.
mkdir -p "$run/i/rmig"
{
	for n in $(compgen -e); do
		case $n in
		PWD | OLDPWD | SHLVL | _ | PATH | BASH_FUNC_* | TERM) continue ;;
		esac
		[[ $n =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
		printf 'export %s=%q\n' "$n" "${!n}"
	done
	printf 'export TERM=dumb RMIG_RXE_ADDR=10.77.0.1 RMIG_RXE_DEV=rxe0 RMIG_IN_VM=1\n'
	printf 'RMIG_VM_CWD=%q\n' "$PWD"
	printf 'set --'
	printf ' %q' "$@"
	printf '\ncd -- "$RMIG_VM_CWD"\n'
} >"$run/i/rmig/cmd.sh"
(cd "$run/i" && find . | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$run/run.gz"
cat "$cache/initramfs.gz" "$run/run.gz" >"$run/initrd"

# KVM only where it can really work: /dev/kvm usable and the CPU showing
# vmx/svm (a nested /dev/kvm without them was seen to accept the VM and then
# never boot it).  qemu itself still falls back to TCG if KVM fails to start.
accel=tcg
if [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
	grep -qwE 'vmx|svm' /proc/cpuinfo 2>/dev/null; then
	accel=kvm:tcg
fi
case ${RMIG_VM_ACCEL:-} in
'') ;;
tcg | kvm | kvm:tcg) accel=$RMIG_VM_ACCEL ;;
*) die "RMIG_VM_ACCEL must be tcg, kvm or kvm:tcg, got '$RMIG_VM_ACCEL'" ;;
esac
: >"$run/out"
{
	echo "# $PROG $(date -u +%FT%TZ): mem ${mem} MiB, cpus $cpus, timeout $tmo s, accel $accel"
	echo "# kernel $kpkg $kpkgver; command:$(printf ' %q' "$@")"
} >>"$log"
start=$SECONDS
timeout --kill-after=10 "$tmo" "$qemu" -machine "accel=$accel" -cpu max \
	-m "$mem" -smp "$cpus" -nographic -nodefaults -nic none -no-reboot \
	-monitor none -serial "file:$log.tmp" -serial "file:$run/out" \
	-kernel "$cache/vmlinuz" -initrd "$run/initrd" \
	-append "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=4" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
	</dev/null >"$run/qemu.out" 2>"$run/qemu.err" &
qpid=$!
tail -n +1 -f --pid="$qpid" "$run/out" &
tpid=$!
qrc=0
wait "$qpid" || qrc=$?
qpid=
wait "$tpid" || true
tpid=
elapsed=$((SECONDS - start))

{
	cat "$log.tmp" 2>/dev/null
	echo "# qemu exit status $qrc after $elapsed s; qemu stderr:"
	cat "$run/qemu.err"
	echo "# ---- command output ----"
	cat "$run/out"
} >>"$log"
rm -f "$log.tmp"

status=$(grep -a -o 'RMIG-VM-EXIT-STATUS=[0-9]*' "$log" | tail -1 | cut -d= -f2) || true
if [ -n "$status" ]; then
	exit "$status"
fi
err=$(grep -a -o 'RMIG-VM-ERROR: .*' "$log" | head -1 | tr -d '\r') || true
stage=$(grep -a -o 'RMIG-VM: .*' "$log" | tail -1 | tr -d '\r') || true
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
	die "timed out after $tmo s (qemu killed); last stage: ${stage:-kernel did not reach /init}; log: $log"
fi
if [ -n "$err" ]; then
	die "${err#RMIG-VM-ERROR: } (log: $log)"
fi
if [ -z "$stage" ]; then
	if [ "$qrc" -ne 0 ]; then
		die "qemu could not start (exit $qrc): $(grep -v '^qemu-system-x86_64: warning' "$run/qemu.err" | head -5)"
	fi
	die "the VM kernel did not reach /init; last console lines: $(tail -5 "$log" | tr -d '\r')"
fi
die "the VM ended without reporting an exit status (last stage: $stage; qemu exit $qrc); log: $log"
