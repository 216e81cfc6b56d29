# Unit tests: no network, no RDMA; each links the internal static library.
rmig_test(test_wire SOURCES test_wire.c CMOCKA TIMEOUT 60 LABELS unit)
# The providers' "host:port" / "[v6]:port" splitter.
rmig_test(test_addr SOURCES test_addr.c CMOCKA TIMEOUT 60 LABELS unit)
# The table of tunables: rmig_param_describe(), rmig_param_get(), the
# environment.
rmig_test(test_params SOURCES test_params.c CMOCKA TIMEOUT 60 LABELS unit)
# What the providers share (providers/util): first-error record, domain
# checks, wait budget, container_of.
rmig_test(test_prov_util SOURCES test_prov_util.c CMOCKA TIMEOUT 60 LABELS unit)
rmig_test(test_zero SOURCES test_zero.c CMOCKA TIMEOUT 120 LABELS unit)
# NUMA node of a device from a fake sysfs tree; libnuma binding.
rmig_test(test_numa SOURCES test_numa.c CMOCKA TIMEOUT 60 LABELS unit)
# The command-line value parsers of tools/cli.c (registration, NUMA).
rmig_test(test_cli SOURCES test_cli.c ${PROJECT_SOURCE_DIR}/tools/cli.c
  CMOCKA TIMEOUT 60 LABELS unit)
target_include_directories(test_cli PRIVATE ${PROJECT_SOURCE_DIR}/tools)
# The provider suite (tests/provider_suite.c) on the mock provider: the mock
# keeps the contract of lib/provider.h as the real providers do.
rmig_test(test_mock_suite SOURCES test_mock_suite.c provider_suite.c
  mock_provider.c CMOCKA TIMEOUT 60 LABELS unit)
