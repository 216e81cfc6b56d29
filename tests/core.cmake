# Core unit tests over the in-process mock provider (tests/mock_provider.c):
# no network, no RDMA.
rmig_test(test_mock_provider SOURCES test_mock_provider.c mock_provider.c
  CMOCKA TIMEOUT 120 LABELS unit)
# One program per area (test_core_<area>.c), all on the fixture of
# core_util.h, built once with the mock into rmig_core_fixture.
add_library(rmig_core_fixture STATIC core_util.c mock_provider.c
  log_capture.c)
target_link_libraries(rmig_core_fixture PUBLIC rmig_internal
  PkgConfig::CMOCKA)
# Each takes seconds; test_core_sync about a minute under TSan (20 fresh
# sessions with spinning threads), hence its longer timeout.
foreach(area handoff sync errors cancel args regcache numa auto auth idle
    postcopy)
  if(area STREQUAL "sync")
    set(core_timeout 240)
  else()
    set(core_timeout 120)
  endif()
  rmig_test(test_core_${area} SOURCES test_core_${area}.c
    CMOCKA TIMEOUT ${core_timeout} LABELS unit)
  target_link_libraries(test_core_${area} PRIVATE rmig_core_fixture)
endforeach()
# Transport auto over real libfabric tcp on 127.0.0.1, with the mock as a
# "verbs" that fails or works.
rmig_test(test_auto SOURCES test_auto.c mock_provider.c log_capture.c
  CMOCKA TIMEOUT 120 LABELS integration)
# The same on an RDMA device (label rxe, at $RMIG_RXE_ADDR: tests/vm.cmake's
# vm_rxe runs it in the soft-RoCE VM): auto picks verbs; an auto destination
# serves a tcp source and a verbs source alike.
if(RMIG_WITH_VERBS)
  rmig_test(test_auto ARGS rxe CMOCKA TIMEOUT 240 LABELS rxe verbs)
endif()
# The same migrations over a mock whose every 7th write or send attempt
# finds the send queue full (-EAGAIN, tests/mock_provider.h): the core's one
# wait loop polls and posts the rest again; the data must still arrive.
# Each entry: the cases' name prefix and the program (test_core_<area>)
# that holds them.
foreach(pair handoff:handoff ondemand:regcache backpressure:handoff
    rounds:sync)
  string(REPLACE ":" ";" pair "${pair}")
  list(GET pair 0 group)
  list(GET pair 1 area)
  add_test(NAME test_core_eagain_${group} COMMAND test_core_${area})
  set_tests_properties(test_core_eagain_${group} PROPERTIES TIMEOUT 240
    LABELS unit ENVIRONMENT
    "RMIG_MOCK_EAGAIN_EVERY=7;RMIG_TEST_FILTER=test_${group}*")
endforeach()
