# libfabric provider tests on 127.0.0.1 only: tcp (the default), and the
# other libfabric 1.17 providers with FI_EP_MSG + RMA + remote CQ data that
# rmig can use (test_fabric_provider prov=NAME; exit 77, skipped, where
# this machine's libfabric lacks NAME).
rmig_test(test_fabric_provider SOURCES test_fabric_provider.c provider_suite.c
  provider_suite_read.c CMOCKA
  TIMEOUT 60 LABELS unit fabric)
foreach(prov sockets net)
  rmig_test(test_fabric_provider ARGS prov=${prov} CMOCKA
    TIMEOUT 60 LABELS unit fabric ENV ${RMIG_OTHER_PROV_ENV})
endforeach()
