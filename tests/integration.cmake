# Loopback integration tests (label "integration"): libfabric tcp (one
# test_migrate case: sockets) on 127.0.0.1 only, source and destination in
# separate processes (see testutil.h).  Every case has a ctest TIMEOUT and,
# inside, a watchdog (RMIG_TEST_WATCHDOG, seconds, a little shorter) armed
# with alarm() in each child.
#
# Cases labelled "large" (1 GiB and more) are for the normal build; the
# sanitizer builds (RMIG_SANITIZE) leave them out, cap every memory size
# with RMIG_TEST_MAX_MIB and give more time.  Short set in a normal build:
#   ctest -L integration -LE large

if(RMIG_SANITIZE)
  set(RMIG_INTEG_ENV RMIG_TEST_MAX_MIB=32)
  set(RMIG_INTEG_SLOW 3)
else()
  set(RMIG_INTEG_ENV "")
  set(RMIG_INTEG_SLOW 1)
endif()

# rmig_integ_test(NAME TIMEOUT_S SOURCES src... ARGS a... [ENV k=v...] [LARGE])
function(rmig_integ_test name timeout)
  cmake_parse_arguments(I "LARGE" "" "SOURCES;ARGS;ENV" ${ARGN})
  if(I_LARGE AND RMIG_SANITIZE)
    return()
  endif()
  math(EXPR t "${timeout} * ${RMIG_INTEG_SLOW}")
  math(EXPR wd "${t} - 20")
  set(labels integration)
  if(I_LARGE)
    list(APPEND labels large)
  endif()
  rmig_test(${name} SOURCES ${I_SOURCES} testutil.c TIMEOUT ${t}
    LABELS ${labels} ARGS ${I_ARGS}
    ENV RMIG_TEST_WATCHDOG=${wd} ${RMIG_INTEG_ENV} ${I_ENV})
  if(I_LARGE)
    # Two processes with 1 GiB each and both cores busy: run alone.
    string(REPLACE ";" "_" suffix "${I_ARGS}")
    string(REGEX REPLACE "[^A-Za-z0-9_]" "" suffix "${suffix}")
    set_tests_properties(${name}_${suffix} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()

# test_migrate CHANNELS SIZE_MIB ROUNDS PAGE_SIZE [ppp=N] [adopt=1]
#              [verify=each|final] [poll=1] [storm=N] [prov=NAME]
#              [postcopy=1]
rmig_integ_test(test_migrate 120 SOURCES test_migrate.c ARGS 1 64 3 4096)
rmig_integ_test(test_migrate 120 ARGS 2 128 4 4096 adopt=1)
rmig_integ_test(test_migrate 180 ARGS 4 256 3 4096)
rmig_integ_test(test_migrate 120 ARGS 8 64 2 4096 ppp=4096)
rmig_integ_test(test_migrate 120 ARGS 1 24 2 4096 ppp=1)
rmig_integ_test(test_migrate 180 ARGS 2 256 3 2097152)
rmig_integ_test(test_migrate 120 ARGS 4 16 3 4096 poll=1 storm=20000)
rmig_integ_test(test_migrate 600 ARGS 8 1024 3 4096 LARGE)
# Post-copy: the last round read back by RDMA READ (fi_read over tcp), on
# one channel (urgent and background reads share it) and on three.
rmig_integ_test(test_migrate 120 ARGS 1 32 2 4096 postcopy=1)
rmig_integ_test(test_migrate 180 ARGS 3 96 3 4096 postcopy=1)
rmig_integ_test(test_migrate 180 ARGS 2 64 2 2097152 postcopy=1)
# The same over libfabric's sockets provider (FI_EP_MSG, its own progress
# thread, fi_cq_signal reported as -FI_ECANCELED).
rmig_integ_test(test_migrate 120 ARGS 2 64 3 4096 prov=sockets
  ENV ${RMIG_OTHER_PROV_ENV})

# test_handshake MODE
rmig_integ_test(test_handshake 120 SOURCES test_handshake.c ARGS raw)
rmig_integ_test(test_handshake 90 ARGS dup)
rmig_integ_test(test_handshake 90 ARGS dup adopt=1)
rmig_integ_test(test_handshake 150 ARGS extra)
rmig_integ_test(test_handshake 90 ARGS srcreject)
rmig_integ_test(test_handshake 60 ARGS refused)
# Regression cases of the accept / device-state hardening: a failed accept
# forgets the UUID and channel count it adopted; a silent connection waits
# at most a quarter of the connect timeout; a device-state gap at a sync
# fails with -EPROTO and the ERROR carries it to the source.
rmig_integ_test(test_handshake 90 ARGS forget)
rmig_integ_test(test_handshake 90 ARGS silent)
rmig_integ_test(test_handshake 60 ARGS dsgap)

# test_peer_death killdest|killsrc|stopdest|stopsrc CHANNELS SIZE_MIB [idle]
rmig_integ_test(test_peer_death 120 SOURCES test_peer_death.c
  ARGS killdest 4 256)
rmig_integ_test(test_peer_death 120 ARGS killsrc 4 256)
rmig_integ_test(test_peer_death 120 ARGS killdest 1 64)
rmig_integ_test(test_peer_death 120 ARGS killsrc 8 64)
rmig_integ_test(test_peer_death 120 ARGS killdest 2 32 idle)
rmig_integ_test(test_peer_death 120 ARGS killsrc 2 32 idle)
# The same with SIGSTOP: the stopped side sends nothing, not even a reset;
# the survivor's idle limit (1 s here) must end its wait.
rmig_integ_test(test_peer_death 120 ARGS stopdest 4 256)
rmig_integ_test(test_peer_death 120 ARGS stopsrc 4 256)
rmig_integ_test(test_peer_death 120 ARGS stopdest 2 32 idle)
rmig_integ_test(test_peer_death 120 ARGS stopsrc 2 32 idle)
