#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# dev.sh - set up a Debian 12 machine for rmig, build it, run it.
#
#   ./dev.sh demo [OPTIONS]   install what the build needs (BUILD_PACKAGES
#                             below: no test tools, no VM), build, and run the
#                             main job: rmig-migrate demo (live migration of
#                             a running 1 GiB guest, libfabric tcp on
#                             127.0.0.1); OPTIONS go to rmig-migrate demo
#   ./dev.sh test             install what is missing (BUILD_PACKAGES and
#                             TEST_PACKAGES), build three trees
#                             (RelWithDebInfo, ASan+UBSan, TSan) under build/
#                             and run the whole ctest suite in each; the
#                             tests that need RDMA (label rxe) run once, from
#                             the default tree, in a QEMU VM with soft-RoCE
#                             (test vm_rxe; natively on a host with RDMA);
#                             QEMU 10.0 with rmig (label qemu: build it
#                             with integrations/qemu/build.sh, cached in
#                             build/qemu, and run QEMU's migration-test)
#                             also runs from the default tree only;
#                             then a fourth tree, fuzz (clang, libFuzzer):
#                             each of the 13 wire decoders fuzzed for
#                             RMIG_FUZZ_SECONDS (30), two at a time (about
#                             3.5 minutes)
#   ./dev.sh bench [OPTS]     install what the build needs and iperf3, run
#                             perf/bench-loopback.sh OPTS on the default tree
#                             (--runs N, --baseline DIR, --no-pin ...)
#   ./dev.sh bench-live       perf/bench-live.sh (downtime vs dirty rate)
#   ./dev.sh bench-postcopy [--vm] [OPTS]
#                             perf/bench-postcopy.sh OPTS: pre-copy,
#                             post-copy and hybrid against the dirty rate,
#                             fault service vs one READ's round trip, the
#                             source's CPU in the pull (libfabric tcp on
#                             127.0.0.1; --vm: verbs in the soft-RoCE VM)
#   ./dev.sh bench-rxe [OPTS] install what is missing, build the default
#                             tree, run perf/bench-rxe.sh OPTS in the soft-RoCE
#                             VM (--runs N, --baseline DIR)
#   ./dev.sh vm [OPTS] -- CMD install what is missing, build the default
#                             tree, run CMD in the soft-RoCE VM
#                             (tests/vm/rxe-vm.sh OPTS -- CMD)
#   ./dev.sh qemu-demo [OPTS] install what is missing, build the default tree
#                             and QEMU 10.0 with integrations/qemu's series
#                             (cached in build/qemu), then live-migrate a
#                             real Linux guest (Debian's kernel, an init that
#                             keeps writing and checking memory) between two
#                             QEMUs over rmig, libfabric tcp on 127.0.0.1
#                             (integrations/qemu/guest-migrate.sh OPTS)
#   ./dev.sh bench-qemu [OPTS] the same guest, stock multifd against rmig
#                             (perf/bench-qemu.sh OPTS)
#   ./dev.sh bench-qemu-rxe [OPTS] in the soft-RoCE VM: QEMU's legacy RDMA
#                             migration against QEMU + rmig over verbs
#                             (perf/bench-qemu-rxe.sh OPTS)
#   ./dev.sh deps             only install what is missing (everything)
#
# Packages are installed only when missing (checked with dpkg-query); apt-get
# update runs once, and only then.  Root is needed for that (or sudo).
#
# Environment: RMIG_CTEST_JOBS (parallel tests per tree, default 1: the
# loopback integration tests use both cores themselves; the fuzz tree runs
# 2 by default: each target runs for a fixed time), RMIG_TEST_TREES (default
# "default asan tsan fuzz"), RMIG_FUZZ_SECONDS (each fuzz target's run,
# default 30).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
root=$PWD

# What the build and the demo need, and nothing else (./dev.sh demo,
# bench, bench-live install only these, plus iperf3 for bench):
#   build-essential    gcc (with libasan/libubsan/libtsan), make, binutils
#                      (nm, objdump for the export and install checks)
#   cmake, pkg-config
#   libfabric-dev      the libfabric transport (>= 1.17, tcp provider)
#   libibverbs-dev     the verbs provider, built by default (rdma-core's
#                      libibverbs; brings ibverbs-providers)
#   librdmacm-dev      the verbs provider's connections (librdmacm)
#   libnuma-dev        NUMA placement of channel threads and buffers
#   libssl-dev         OpenSSL's libcrypto: HMAC-SHA-256, the CSPRNG and
#                      constant-time comparison of authenticated sessions
#                      (lib/auth.c; why this library: docs/security.rst)
BUILD_PACKAGES=(build-essential cmake pkg-config libfabric-dev libibverbs-dev
	librdmacm-dev libnuma-dev libssl-dev)
# What the test suite needs on top (./dev.sh test, vm, bench-rxe, deps):
#   libcmocka-dev      unit tests
#   python3-docutils   rst2man: the man pages (docs/*.rst)
#   man-db             man -l: check_install renders the installed pages
#   ibverbs-providers  rdma-core's user-space drivers, rxe among them
#   ibverbs-utils      ibv_devinfo (tests/vm/rxe-selftest.sh)
#   rdmacm-utils       rping (rxe-selftest.sh)
#   perftest           ib_write_bw (rxe-selftest.sh, perf/bench-rxe.sh)
#   libfabric-bin      fi_info (rxe-selftest.sh)
#   iproute2           ip and rdma: veth pair and rxe0 inside the VM
#   qemu-system-x86    the soft-RoCE VM (tests/vm/rxe-vm.sh; brings seabios)
#   busybox-static     the VM's initramfs shell
#   kmod               depmod/modprobe: the VM kernel's module order
#   cpio               packs the VM's initramfs
#   clang              the fuzz tree (libFuzzer harnesses of the decoders)
#   libclang-rt-14-dev clang's libFuzzer and sanitizer runtimes
# QEMU 10.0 with rmig (integrations/qemu/build.sh, tests labelled qemu):
#   dpkg-dev           dpkg-source: unpacks trixie's qemu source package
#   ninja-build        QEMU's build (and a dependency of meson)
#   python3-setuptools meson's other dependency, from bookworm itself
#   python3-venv       QEMU's configure sets up a venv of Debian's python3
#   libglib2.0-dev     GLib: QEMU's main loop and utilities, and libqtest
#   libpixman-1-dev    pixman: QEMU's display code, needed even headless
#   libfdt-dev         --enable-fdt=system (the +ds source has no dtc)
#   zlib1g-dev         zlib: QEMU's migration stream compression
#   flex, bison        QEMU's build generators
#   libibumad-dev      --enable-rdma: QEMU's legacy RDMA migration, the
#                      baseline on verbs (with libibverbs-dev, librdmacm-dev)
#   qemu-system-x86 (above) brings the firmware the +ds source lacks
#   (seabios, ipxe-qemu, qemu-system-data); meson >= 1.5 comes from
#   bookworm-backports (ensure_meson below).
# The VM's kernel is no package installed here: tests/vm/rxe-vm.sh fetches
# the one linux-image-amd64 depends on with apt-get download into build/vm.
TEST_PACKAGES=(libcmocka-dev python3-docutils man-db ibverbs-providers
	ibverbs-utils rdmacm-utils perftest libfabric-bin iproute2
	qemu-system-x86 busybox-static kmod cpio clang libclang-rt-14-dev
	dpkg-dev ninja-build python3-setuptools python3-venv libglib2.0-dev
	libpixman-1-dev libfdt-dev zlib1g-dev flex bison libibumad-dev)

say() { printf 'dev.sh: %s\n' "$*"; }

ensure_packages() {
	local missing=() p sudo=
	for p in "$@"; do
		if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != \
			"install ok installed" ]; then
			missing+=("$p")
		fi
	done
	if [ ${#missing[@]} -eq 0 ]; then
		return 0
	fi
	say "installing missing Debian packages: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null 2>&1; then
			say "need root (or sudo) to install: ${missing[*]}" >&2
			exit 1
		fi
		sudo=sudo
	fi
	$sudo apt-get update
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y \
		--no-install-recommends "${missing[@]}"
}

# meson >= 1.5 for QEMU 10.0 (Debian 12 has 1.0.1), from bookworm-backports,
# installed into the system when missing or older.  apt reads only the
# project's sources file (integrations/qemu/apt/bookworm-backports.sources)
# and keeps its lists under build/qemu/apt: the system's apt configuration
# and lists stay as they are.  meson's dependencies (python3, ninja-build,
# python3-setuptools) come from bookworm first, through TEST_PACKAGES.
ensure_meson() {
	local v sudo="" lists=$root/build/qemu/apt/backports
	local -a opts=(-o "Dir::Etc::SourceList=$root/integrations/qemu/apt/bookworm-backports.sources"
		-o Dir::Etc::SourceParts=- -o "Dir::State::Lists=$lists"
		-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
	v=$(dpkg-query -W -f='${Version}' meson 2>/dev/null || true)
	if [ -n "$v" ] && dpkg --compare-versions "$v" ge 1.5; then
		return 0
	fi
	say "installing meson from bookworm-backports (have: ${v:-none})"
	if [ "$(id -u)" -ne 0 ]; then
		sudo=sudo
	fi
	mkdir -p "$lists/partial"
	$sudo apt-get "${opts[@]}" update
	DEBIAN_FRONTEND=noninteractive $sudo apt-get "${opts[@]}" install -y \
		--no-install-recommends -t bookworm-backports meson
}

# configure NAME BUILD_TYPE SANITIZE [CMAKE_ARG...]
configure() {
	local dir=build/$1
	cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE="$2" \
		-DRMIG_SANITIZE="$3" "${@:4}" >"$dir.configure.log" 2>&1 || {
		cat "$dir.configure.log" >&2
		return 1
	}
}

# build_tree NAME BUILD_TYPE SANITIZE TARGET [CMAKE_ARG...]
build_tree() {
	local name=$1 type=$2 san=$3 target=$4
	mkdir -p build
	configure "$name" "$type" "$san" "${@:5}" &&
		cmake --build "build/$name" --target "$target" -j "$(nproc)"
}

# The trees of the test suite have everything: tests and man pages.
TEST_TREE_ARGS=(-DRMIG_BUILD_TESTS=ON -DRMIG_MAN_PAGES=ON)

# build_one TARGET: the default tree for the demo and the benchmarks,
# which need neither the tests (cmocka) nor the man pages (rst2man).  Its
# tests are configured when cmocka is there (after ./dev.sh test, say), so
# ctest keeps working in it; the man pages when rst2man is there.
build_one() {
	local tests=OFF
	pkg-config --exists cmocka 2>/dev/null && tests=ON
	build_tree default RelWithDebInfo "" "$1" -DRMIG_BUILD_TESTS=$tests
}

cmd_demo() {
	ensure_packages "${BUILD_PACKAGES[@]}"
	build_one rmig-migrate >/dev/null
	exec build/default/tools/rmig-migrate demo "$@"
}

# The real-guest demo of issue 10: QEMU 10.0 with the series of
# integrations/qemu (built once, cached in build/qemu), a Debian kernel
# whose init keeps writing and checking memory, live-migrated between two
# QEMUs over rmig (libfabric tcp on 127.0.0.1); OPTIONS go to
# integrations/qemu/guest-migrate.sh (--channels N, --transport, ...).
cmd_qemu_demo() {
	local qemu
	ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
	ensure_meson
	build_tree default RelWithDebInfo "" all "${TEST_TREE_ARGS[@]}" >/dev/null
	qemu=$(integrations/qemu/build.sh "$root/build/default" | tail -1)
	exec integrations/qemu/guest-migrate.sh --qemu "$qemu" --via rmig "$@"
}

# perf/bench-qemu.sh OPTIONS with the QEMU of integrations/qemu.
cmd_bench_qemu() {
	ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
	ensure_meson
	build_tree default RelWithDebInfo "" all "${TEST_TREE_ARGS[@]}" >/dev/null
	exec perf/bench-qemu.sh "$@"
}

# perf/bench-qemu-rxe.sh OPTIONS: it builds QEMU and boots the VM itself.
cmd_bench_qemu_rxe() {
	ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
	ensure_meson
	build_tree default RelWithDebInfo "" all "${TEST_TREE_ARGS[@]}" >/dev/null
	exec perf/bench-qemu-rxe.sh "$@"
}

cmd_vm() {
	ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
	build_tree default RelWithDebInfo "" all "${TEST_TREE_ARGS[@]}" >/dev/null
	exec tests/vm/rxe-vm.sh "$@"
}

# Options (--runs N, --baseline DIR) go to perf/bench-rxe.sh.  The VM's
# timeout (RMIG_VM_TIMEOUT, default 3600 s) bounds the whole run.
cmd_bench_rxe() {
	ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
	build_one rmig_bw >/dev/null
	exec tests/vm/rxe-vm.sh --timeout "${RMIG_VM_TIMEOUT:-3600}" -- \
		perf/bench-rxe.sh "$@" "$root/build/default"
}

cmd_bench() {
	ensure_packages "${BUILD_PACKAGES[@]}" iperf3
	build_one rmig_bw >/dev/null
	exec perf/bench-loopback.sh "$@" "$root/build/default"
}

cmd_bench_live() {
	ensure_packages "${BUILD_PACKAGES[@]}"
	build_one rmig-migrate >/dev/null
	exec perf/bench-live.sh "$root/build/default"
}

# Options (--vm, --runs N, --size, --rates ...) go to
# perf/bench-postcopy.sh, which boots the VM itself with --vm.
cmd_bench_postcopy() {
	local a
	for a in "$@"; do
		if [ "$a" = --vm ]; then
			ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
			break
		fi
	done
	ensure_packages "${BUILD_PACKAGES[@]}"
	build_one rmig-migrate >/dev/null
	build_one rmig_read_lat >/dev/null
	exec perf/bench-postcopy.sh "$@" "$root/build/default"
}

# Per-tree results for the summary.
declare -A T_STATUS T_PASSED T_FAILED T_SKIPPED T_TIME T_DESC

# run_tree NAME BUILD_TYPE SANITIZE DESCRIPTION [CMAKE_ARG...]
# (the CMake arguments default to TEST_TREE_ARGS)
run_tree() {
	local name=$1 type=$2 san=$3 desc=$4 dir=build/$1 start=$SECONDS
	local log=build/$1.ctest.log total failed skipped rc=0
	local jobs=${RMIG_CTEST_JOBS:-1}
	local -a ctest_env=() wrap=() exclude=() args=("${TEST_TREE_ARGS[@]}")

	if [ $# -gt 4 ]; then
		args=("${@:5}")
	fi

	T_DESC[$name]=$desc
	say "=== tree $name: $desc"
	if ! build_tree "$name" "$type" "$san" all "${args[@]}" \
		>"build/$name.build.log" 2>&1; then
		tail -50 "build/$name.build.log"
		say "tree $name: build FAILED (full log: build/$name.build.log)"
		T_STATUS[$name]="build FAILED"
		T_PASSED[$name]=0 T_FAILED[$name]=1 T_SKIPPED[$name]=0
		T_TIME[$name]=$((SECONDS - start))
		return 1
	fi

	# Tests labelled rxe need an RDMA device: they run once, through the
	# test vm_rxe (label vm) of the default tree, in the soft-RoCE VM or
	# natively.  The sanitizer trees run neither.
	if [ -n "$san" ]; then
		exclude=(-LE 'rxe|vm')
	else
		exclude=(-LE rxe)
	fi
	# Sanitizer options for every test.  No suppressions here: the only
	# ones, tests/libfabric-lsan.supp and tests/libfabric-tsan.supp, are
	# given by tests/CMakeLists.txt (RMIG_OTHER_PROV_ENV, a test's own
	# LSAN_OPTIONS/TSAN_OPTIONS) to the cases on libfabric's sockets and
	# net providers, and only to them.
	case $name in
	# Each fuzz target runs for a fixed time, alone on one core.
	fuzz) jobs=${RMIG_CTEST_JOBS:-2} ;;
	esac
	case $san in
	*address*)
		ctest_env+=("ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1")
		ctest_env+=("UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1")
		;;
	*thread*)
		ctest_env+=("TSAN_OPTIONS=${TSAN_OPTIONS:+$TSAN_OPTIONS }halt_on_error=1 second_deadlock_stack=1")
		# gcc 12's TSan cannot map its shadow with more than 28 bits of
		# mmap randomisation (newer kernels default to 32): run without
		# ASLR there.
		if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)" -gt 28 ] &&
			setarch "$(uname -m)" -R true 2>/dev/null; then
			wrap=(setarch "$(uname -m)" -R)
		fi
		;;
	esac

	# The sanitizer trees run the same tests.  The only difference is
	# made in tests/integration.cmake, not here: under RMIG_SANITIZE the
	# cases labelled "large" (1 GiB and more) are not registered, memory
	# sizes are capped (RMIG_TEST_MAX_MIB) and timeouts are tripled.
	env "${ctest_env[@]}" "${wrap[@]}" ctest --test-dir "$dir" \
		--output-on-failure --timeout 900 -j "$jobs" \
		"${exclude[@]}" 2>&1 | tee "$log" || rc=$? # pipefail: ctest's status

	# The last summary line is this run's (vm_rxe's output, shown when it
	# fails, holds the inner ctest's); its skipped list follows it.
	total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
	failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$log" | tail -1)
	skipped=$(awk '/tests failed out of/ { n = 0 } /\(Skipped\)$/ { n++ }
		END { print n + 0 }' "$log")
	if [ -z "$total" ]; then
		total=0 failed=1
		grep -q 'No tests were found' "$log" && say "tree $name: no tests found"
	fi
	T_PASSED[$name]=$((total - failed - skipped))
	T_FAILED[$name]=$failed
	T_SKIPPED[$name]=$skipped
	T_TIME[$name]=$((SECONDS - start))
	if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$total" -eq 0 ]; then
		T_STATUS[$name]=FAILED
		return 1
	fi
	T_STATUS[$name]=ok
}

cmd_test() {
	local trees=${RMIG_TEST_TREES:-default asan tsan fuzz} t bad=0
	local passed=0 failed=0 skipped=0 start=$SECONDS

	ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
	ensure_meson
	mkdir -p build
	# A Release (-O3) build of everything, compiled only: the optimiser
	# finds warnings (-Werror) the -O2 trees do not.
	say "=== release build (-O3, compile only)"
	if ! build_tree release Release "" all "${TEST_TREE_ARGS[@]}" \
		>build/release.build.log 2>&1; then
		tail -50 build/release.build.log
		say "release build FAILED (full log: build/release.build.log)"
		bad=1
	fi
	for t in $trees; do
		case $t in
		default) run_tree default RelWithDebInfo "" "RelWithDebInfo" || bad=1 ;;
		asan) run_tree asan RelWithDebInfo address,undefined \
			"RMIG_SANITIZE=address,undefined" || bad=1 ;;
		tsan) run_tree tsan RelWithDebInfo thread "RMIG_SANITIZE=thread" ||
			bad=1 ;;
		# libFuzzer needs clang; only the harnesses are built there.
		fuzz) CC=clang run_tree fuzz RelWithDebInfo "" \
			"RMIG_FUZZ=ON (clang, libFuzzer)" -DRMIG_FUZZ=ON \
			-DRMIG_FUZZ_SECONDS="${RMIG_FUZZ_SECONDS:-30}" || bad=1 ;;
		*) say "unknown tree '$t' (default, asan, tsan, fuzz)"; exit 2 ;;
		esac
	done

	echo
	say "summary ($(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s)"
	for t in $trees; do
		printf '  %-8s %-34s %-13s %4d passed, %d failed, %d skipped  (%d s)\n' \
			"$t" "${T_DESC[$t]}" "${T_STATUS[$t]}" "${T_PASSED[$t]}" \
			"${T_FAILED[$t]}" "${T_SKIPPED[$t]}" "${T_TIME[$t]}"
		passed=$((passed + T_PASSED[$t]))
		failed=$((failed + T_FAILED[$t]))
		skipped=$((skipped + T_SKIPPED[$t]))
	done
	echo "tests: $passed passed, $failed failed, $skipped skipped"
	return $bad
}

case ${1:-} in
demo) shift; cmd_demo "$@" ;;
test) shift; cmd_test "$@" ;;
bench) shift; cmd_bench "$@" ;;
bench-live) shift; cmd_bench_live ;;
bench-rxe) shift; cmd_bench_rxe "$@" ;;
bench-postcopy) shift; cmd_bench_postcopy "$@" ;;
vm) shift; cmd_vm "$@" ;;
qemu-demo) shift; cmd_qemu_demo "$@" ;;
bench-qemu) shift; cmd_bench_qemu "$@" ;;
bench-qemu-rxe) shift; cmd_bench_qemu_rxe "$@" ;;
deps) ensure_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
	ensure_meson ;;
-h | --help | help | "")
	sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	[ -n "${1:-}" ] ;;
*)
	say "unknown command '$1' (demo, test, bench, bench-live, bench-rxe, bench-postcopy, vm, qemu-demo, bench-qemu, bench-qemu-rxe, deps)"
	exit 2 ;;
esac
