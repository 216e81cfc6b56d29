#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# guest.sh - the real guest of the QEMU demo, test and benchmark: Debian's
# kernel and a busybox initramfs whose init runs memcheck (guest/memcheck.c:
# keeps writing memory and checking it, one line a second on the console).
#
#   integrations/qemu/guest.sh [OUTDIR]     default build/qemu/guest
#
# The kernel is the one the soft-RoCE harness fetches (tests/vm/rxe-vm.sh
# --prepare: the package linux-image-amd64 depends on, unpacked under
# build/vm, nothing installed).  memcheck is built static with the host's
# gcc; busybox comes from busybox-static.  Prints two lines, the kernel's
# path and the initramfs's; rebuilds the initramfs only when memcheck.c or
# this recipe changed.  The guest takes its settings from the kernel command
# line (memcheck.mib=N, memcheck.rate=N; see memcheck.c).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build/qemu/guest}

die() {
	printf 'guest.sh: error: %s\n' "$*" >&2
	exit 1
}

kernel=$("$root/tests/vm/rxe-vm.sh" --prepare) ||
	die "cannot prepare the guest kernel (tests/vm/rxe-vm.sh --prepare)"
[ -f "$kernel" ] || die "tests/vm/rxe-vm.sh --prepare named no kernel file"

read -r -d '' INIT <<'EOF' || true
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "guest: init up, starting memcheck"
/bin/memcheck
echo "guest: memcheck exited with status $?"
sync
poweroff -f
EOF

recipe=$( (printf '%s\n' "$INIT"; cat "$here/guest/memcheck.c") |
	sha256sum | cut -c1-16)
if [ -f "$out/initrd.gz" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$recipe" ]; then
	printf '%s\n%s\n' "$kernel" "$out/initrd.gz"
	exit 0
fi
for f in /bin/busybox cpio gzip gcc; do
	command -v "$f" >/dev/null ||
		die "'$f' is missing (Debian packages busybox-static, cpio, gzip, gcc)"
done
if ldd /bin/busybox >/dev/null 2>&1; then
	die "/bin/busybox is dynamically linked; the initramfs needs busybox-static"
fi
mkdir -p "$out"
tmp=$(mktemp -d "$out/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/i/bin" "$tmp/i/proc" "$tmp/i/sys" "$tmp/i/dev"
gcc -std=c11 -O2 -Wall -Wextra -Werror -static -o "$tmp/i/bin/memcheck" \
	"$here/guest/memcheck.c" || die "cannot build guest/memcheck.c static"
cp /bin/busybox "$tmp/i/bin/busybox"
printf '%s\n' "$INIT" >"$tmp/i/init"
chmod 755 "$tmp/i/init"
(cd "$tmp/i" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -1 >"$tmp/initrd.gz"
mv -f "$tmp/initrd.gz" "$out/initrd.gz"
echo "$recipe" >"$out/stamp"
printf '%s\n%s\n' "$kernel" "$out/initrd.gz"
