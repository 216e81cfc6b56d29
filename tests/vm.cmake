# Tests that need an RDMA device carry the label "rxe".  They do not run
# in the host's normal ctest run (dev.sh excludes the label); the host test
# vm_rxe (label "vm") runs them all, natively where the host has an RDMA
# device, otherwise in a QEMU VM with soft-RoCE (tests/vm/rxe-vm.sh boots
# Debian's kernel under TCG or KVM, rxe0 on a veth, the build shared
# read-only).  By hand:
#   ctest --test-dir BUILD -R vm_rxe --output-on-failure
#   tests/vm/rxe-vm.sh -- ctest --test-dir BUILD -L rxe --output-on-failure
# vm_rxe fails (never skips) when the VM cannot start.  The rxe tests'
# own timeouts are sized for TCG; the whole VM run (boot ~10 s here) is
# bounded by RMIG_VM_TIMEOUT (870 s), inside vm_rxe's TIMEOUT of 900 s.

# The soft-RoCE stack itself: port ACTIVE, ib_write_bw, rping, fi_info.
add_test(NAME rxe_selftest
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/vm/rxe-selftest.sh)
set_tests_properties(rxe_selftest PROPERTIES TIMEOUT 180 LABELS "rxe")

# The sanitizer trees run neither (dev.sh excludes rxe|vm there): the VM
# suite runs once, on the normal build.
add_test(NAME vm_rxe
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/vm/vm-rxe.sh ${PROJECT_BINARY_DIR})
set_tests_properties(vm_rxe PROPERTIES TIMEOUT 900 LABELS "vm"
  RUN_SERIAL TRUE)
