# QEMU 10.0 with rmig (integrations/qemu, issue 10), label "qemu".  The
# default tree only: QEMU links the unsanitized librmig of that tree, and
# is built once, cached in <project>/build/qemu (integrations/qemu/build.sh
# rebuilds only when the patch series, the configure line or librmig
# change).  By hand:
#   ctest --test-dir BUILD -L qemu --output-on-failure
# qemu_build fetches trixie's qemu source package from Debian's archive the
# first time (as vm_rxe fetches its kernel package) and builds QEMU and
# QEMU's migration-test: about 3 minutes on 2 cores from scratch, well
# under a second when cached.  qemu_migration_test runs QEMU's stock
# precopy and multifd cases against that build, and the series' rmig
# cases (about 7 minutes: source-without-rmig waits out the destination's
# 30 s bound, auto-converge throttles the guest for a while).  All use
# both cores (RUN_SERIAL).
if(NOT RMIG_SANITIZE)
add_test(NAME qemu_build
  COMMAND ${PROJECT_SOURCE_DIR}/integrations/qemu/build.sh ${PROJECT_BINARY_DIR})
set_tests_properties(qemu_build PROPERTIES TIMEOUT 1200 LABELS "qemu"
  RUN_SERIAL TRUE FIXTURES_SETUP qemu)

add_test(NAME qemu_migration_test
  COMMAND ${PROJECT_SOURCE_DIR}/integrations/qemu/migration-test.sh)
set_tests_properties(qemu_migration_test PROPERTIES TIMEOUT 1200
  LABELS "qemu" RUN_SERIAL TRUE FIXTURES_REQUIRED qemu)

# A real Linux guest (guest.sh: Debian's kernel, fetched like vm_rxe's,
# and memcheck) migrated by the built QEMU over rmig (x-rmig, libfabric
# tcp on 127.0.0.1): the destination guest must carry on with its memory
# check passing; with --kill-dest the destination dies mid-migration and
# the source guest must run on.  About 30 s each.
add_test(NAME qemu_guest_migrate_rmig
  COMMAND ${PROJECT_SOURCE_DIR}/integrations/qemu/guest-migrate.sh --via rmig)
add_test(NAME qemu_guest_migrate_rmig_kill_dest
  COMMAND ${PROJECT_SOURCE_DIR}/integrations/qemu/guest-migrate.sh --via rmig
          --kill-dest)
set_tests_properties(qemu_guest_migrate_rmig qemu_guest_migrate_rmig_kill_dest
  PROPERTIES TIMEOUT 600 LABELS "qemu" RUN_SERIAL TRUE
  FIXTURES_REQUIRED qemu)

# The series' multifd precopy over rmig's verbs transport, in the soft-RoCE
# VM (tests/vm/rxe-vm.sh, as vm_rxe): the built QEMU runs nested under TCG
# inside it and the boot block guest's RAM travels by RDMA WRITE over rxe0.
add_test(NAME qemu_migration_rxe
  COMMAND ${PROJECT_SOURCE_DIR}/tests/vm/rxe-vm.sh --timeout 870 --
          ${PROJECT_SOURCE_DIR}/integrations/qemu/migration-test.sh --verbs)
set_tests_properties(qemu_migration_rxe PROPERTIES TIMEOUT 900
  LABELS "qemu;vm" RUN_SERIAL TRUE FIXTURES_REQUIRED qemu)
endif()
