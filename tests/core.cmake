# Core unit tests over the in-process mock provider (tests/mock_provider.c):
# no network, no RDMA.
rmig_test(test_mock_provider SOURCES test_mock_provider.c mock_provider.c
  CMOCKA TIMEOUT 120 LABELS unit)
rmig_test(test_core SOURCES test_core.c mock_provider.c
  CMOCKA TIMEOUT 120 LABELS unit)
