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
# rmig_preload(): libfabric tcp on 127.0.0.1.
rmig_test(test_preload SOURCES test_preload.c CMOCKA TIMEOUT 60
  LABELS unit fabric)
# The command-line value parsers of tools/cli.c (registration, NUMA).
rmig_test(test_cli SOURCES test_cli.c ${PROJECT_SOURCE_DIR}/tools/cli.c
  CMOCKA TIMEOUT 60 LABELS unit)
target_include_directories(test_cli PRIVATE ${PROJECT_SOURCE_DIR}/tools)
# The provider suite (tests/provider_suite.c) on the mock provider: the mock
# keeps the contract of lib/provider.h as the real providers do.
rmig_test(test_mock_suite SOURCES test_mock_suite.c provider_suite.c
  provider_suite_read.c mock_provider.c CMOCKA TIMEOUT 60 LABELS unit)
# Authenticated sessions: the key, key files, the transcript MAC
# (lib/auth.c) and the auth messages (lib/wire_auth.c).
rmig_test(test_auth SOURCES test_auth.c CMOCKA TIMEOUT 60 LABELS unit)
rmig_test(test_wire_auth SOURCES test_wire_auth.c CMOCKA TIMEOUT 60
  LABELS unit)
# The fuzz harnesses' seed corpus (tests/fuzz/corpus) is what
# tests/fuzz/fuzz_corpus.c writes with the encoders: regenerate and compare.
add_executable(fuzz_corpus fuzz/fuzz_corpus.c)
target_link_libraries(fuzz_corpus PRIVATE rmig_internal)
add_test(NAME fuzz_corpus_current
  COMMAND sh -c "rm -rf \"$1\" && \"$0\" \"$1\" && diff -r \"$2\" \"$1\""
  $<TARGET_FILE:fuzz_corpus> ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus
  ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus)
set_tests_properties(fuzz_corpus_current PROPERTIES TIMEOUT 60 LABELS unit)
