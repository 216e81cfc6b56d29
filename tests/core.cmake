# Core unit tests over the in-process mock provider (tests/mock_provider.c):
# no network, no RDMA.
rmig_test(test_mock_provider SOURCES test_mock_provider.c mock_provider.c
  CMOCKA TIMEOUT 120 LABELS unit)
rmig_test(test_core SOURCES test_core.c mock_provider.c log_capture.c
  CMOCKA TIMEOUT 240 LABELS unit)
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
foreach(group handoff ondemand backpressure rounds)
  add_test(NAME test_core_eagain_${group} COMMAND test_core)
  set_tests_properties(test_core_eagain_${group} PROPERTIES TIMEOUT 240
    LABELS unit ENVIRONMENT
    "RMIG_MOCK_EAGAIN_EVERY=7;RMIG_TEST_FILTER=test_${group}*")
endforeach()
