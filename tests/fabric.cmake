# libfabric provider tests: tcp on 127.0.0.1 only.
rmig_test(test_fabric_provider SOURCES test_fabric_provider.c CMOCKA
  TIMEOUT 60 LABELS unit fabric)
