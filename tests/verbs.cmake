# The verbs provider (providers/verbs), built when rdma-core is found.
#
# Label "rxe": tests that need an RDMA device and its address in
# $RMIG_RXE_ADDR.  tests/vm/rxe-vm.sh boots a VM with soft-RoCE (rxe0) and
# sets it; on a host without one they exit 77 (skipped) saying why, so run
# them through the VM:
#   tests/vm/rxe-vm.sh -- ctest --test-dir BUILD -L rxe --output-on-failure
# Sizes are small and timeouts generous: the VM runs under TCG.
if(NOT RMIG_WITH_VERBS)
  return()
endif()

# Host side (no RDMA device): domain_open fails at once with -ENODEV.
rmig_test(test_verbs_provider SOURCES test_verbs_provider.c provider_suite.c
  provider_suite_read.c CMOCKA
  TIMEOUT 60 LABELS unit verbs ARGS nodev)

# The provider on its own over the device.
rmig_test(test_verbs_provider CMOCKA TIMEOUT 300 LABELS rxe verbs)
# The libfabric provider over libfabric's own verbs provider.
rmig_test(test_fabric_provider ARGS prov=verbs CMOCKA TIMEOUT 300
  LABELS rxe fabric)

# The integration suite (tests/integration.cmake) on the verbs provider.
# rmig_rxe_test(NAME TIMEOUT_S SOURCES src... ARGS a...)
function(rmig_rxe_test name timeout)
  cmake_parse_arguments(R "" "" "SOURCES;ARGS" ${ARGN})
  math(EXPR wd "${timeout} - 20")
  rmig_test(${name} SOURCES ${R_SOURCES} testutil.c TIMEOUT ${timeout}
    LABELS rxe verbs ARGS ${R_ARGS} transport=verbs
    ENV RMIG_TEST_WATCHDOG=${wd})
endfunction()

# test_migrate CHANNELS SIZE_MIB ROUNDS PAGE_SIZE ...: data and zero pages,
# several rounds, device state; 1, 2 and 8 channels.
rmig_rxe_test(test_migrate 240 SOURCES test_migrate.c ARGS 1 32 3 4096)
rmig_rxe_test(test_migrate 240 ARGS 2 32 3 4096 adopt=1)
rmig_rxe_test(test_migrate 240 ARGS 8 32 2 4096)
# 2 MiB pages: runs of five or more contiguous data pages (70 % of pages
# carry data) exceed rxe's 8 MiB max_msg_size, so the core splits them; and
# packets of 4096 pages (long write chains behind one header).
rmig_rxe_test(test_migrate 240 ARGS 2 64 2 2097152)
rmig_rxe_test(test_migrate 240 ARGS 1 64 2 4096 ppp=4096)
# On-demand source registration: 1 MiB chunks, at most 4 registered, 8
# channels competing for them (evictions under in-flight writes).
rmig_rxe_test(test_migrate 240 ARGS 8 32 3 4096 reg=ondemand:1M:4)
# Post-copy: the last round read back by IBV_WR_RDMA_READ from the
# source's RAM (remote read access only).
rmig_rxe_test(test_migrate 240 ARGS 2 32 3 4096 postcopy=1)
# Every handshake mode.
foreach(mode raw dup extra srcreject refused forget silent dsgap)
  rmig_rxe_test(test_handshake 180 SOURCES test_handshake.c ARGS ${mode})
endforeach()
rmig_rxe_test(test_handshake 180 ARGS dup adopt=1)
# Peer death on either side: an error within 10 s, source memory unchanged.
rmig_rxe_test(test_peer_death 180 SOURCES test_peer_death.c
  ARGS killdest 2 32)
rmig_rxe_test(test_peer_death 180 ARGS killsrc 2 32)
rmig_rxe_test(test_peer_death 180 ARGS killdest 1 32 idle)
rmig_rxe_test(test_peer_death 180 ARGS killsrc 8 32 idle)
