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
# precopy and multifd cases against that build (about 3 minutes).  Both
# use both cores (RUN_SERIAL).
if(NOT RMIG_SANITIZE)
add_test(NAME qemu_build
  COMMAND ${PROJECT_SOURCE_DIR}/integrations/qemu/build.sh ${PROJECT_BINARY_DIR})
set_tests_properties(qemu_build PROPERTIES TIMEOUT 1200 LABELS "qemu"
  RUN_SERIAL TRUE FIXTURES_SETUP qemu)

add_test(NAME qemu_migration_test
  COMMAND ${PROJECT_SOURCE_DIR}/integrations/qemu/migration-test.sh)
set_tests_properties(qemu_migration_test PROPERTIES TIMEOUT 600
  LABELS "qemu" RUN_SERIAL TRUE FIXTURES_REQUIRED qemu)
endif()
