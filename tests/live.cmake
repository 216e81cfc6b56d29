# Live-migration tests (rmig-migrate's guest, dirty tracking and pre-copy
# driver, tools/guest.c dirty.c live.c).  Every case has a TIMEOUT.  The
# sanitizer trees run them with smaller guests (RMIG_TEST_MAX_MIB, set in
# integration.cmake) and more time.  Cases using huge pages take the
# "hugepages" resource lock: they raise /proc/sys/vm/nr_hugepages when no
# page is free and restore it.

# rmig_live_test(NAME TIMEOUT_S SOURCES ... ARGS ... [HUGE] [INTEG])
function(rmig_live_test name timeout)
  cmake_parse_arguments(L "HUGE;INTEG" "" "SOURCES;ARGS" ${ARGN})
  math(EXPR t "${timeout} * ${RMIG_INTEG_SLOW}")
  math(EXPR wd "${t} - 10")
  set(srcs ${L_SOURCES})
  set(labels live)
  if(L_INTEG)
    list(APPEND srcs testutil.c)
    list(APPEND labels integration)
  else()
    list(APPEND labels unit)
  endif()
  rmig_test(${name} SOURCES ${srcs} test_live_util.c TIMEOUT ${t}
    LABELS ${labels} ARGS ${L_ARGS}
    ENV RMIG_TEST_WATCHDOG=${wd} ${RMIG_INTEG_ENV})
  target_link_libraries(${name} PRIVATE rmig_live rmig_internal)
  string(REPLACE ";" "_" suffix "${L_ARGS}")
  string(REGEX REPLACE "[^A-Za-z0-9_]" "" suffix "${suffix}")
  if(L_HUGE)
    set_tests_properties(${name}_${suffix} PROPERTIES RESOURCE_LOCK hugepages)
  endif()
endfunction()

# test_live_unit guest | state | dirty MODE MEMORY
rmig_live_test(test_live_unit 60 SOURCES test_live_unit.c ARGS guest)
rmig_live_test(test_live_unit 30 ARGS state)
rmig_live_test(test_live_unit 60 ARGS dirty async anon)
rmig_live_test(test_live_unit 60 ARGS dirty sync anon)
rmig_live_test(test_live_unit 60 ARGS dirty async memfd)
rmig_live_test(test_live_unit 60 ARGS dirty sync memfd)
rmig_live_test(test_live_unit 60 ARGS dirty async hugetlb HUGE)
rmig_live_test(test_live_unit 60 ARGS dirty sync hugetlb HUGE)

# test_live converge MIB RATE_MBS async|sync anon|memfd|hugetlb
#         | autoconverge MIB | giveup MIB | force MIB | killdest MIB
#         | killpaused MIB | pausefail MIB | cancel MIB
rmig_live_test(test_live 90 SOURCES test_live.c INTEG
  ARGS converge 256 200 async anon)
rmig_live_test(test_live 90 INTEG ARGS converge 128 100 sync anon)
rmig_live_test(test_live 90 INTEG ARGS converge 128 200 async memfd)
rmig_live_test(test_live 90 INTEG ARGS converge 64 200 async hugetlb HUGE)
rmig_live_test(test_live 90 INTEG ARGS converge 64 100 sync hugetlb HUGE)
rmig_live_test(test_live 120 INTEG ARGS autoconverge 128)
rmig_live_test(test_live 90 INTEG ARGS giveup 64)
rmig_live_test(test_live 90 INTEG ARGS force 64)
rmig_live_test(test_live 90 INTEG ARGS killdest 128)
rmig_live_test(test_live 90 INTEG ARGS killpaused 128)
rmig_live_test(test_live 90 INTEG ARGS pausefail 64)
rmig_live_test(test_live 90 INTEG ARGS cancel 64)
# test_live postcopy MIB RATE_MBS AFTER [MEMORY] | postcopy-fallback MIB
rmig_live_test(test_live 90 INTEG ARGS postcopy 64 200 1)
rmig_live_test(test_live 90 INTEG ARGS postcopy 64 100 0)
rmig_live_test(test_live 90 INTEG ARGS postcopy 64 200 1 memfd)
rmig_live_test(test_live 90 INTEG ARGS postcopy 64 100 0 memfd)
rmig_live_test(test_live 90 INTEG ARGS postcopy 64 200 1 hugetlb HUGE)
rmig_live_test(test_live 90 INTEG ARGS postcopy 64 100 0 hugetlb HUGE)
rmig_live_test(test_live 90 INTEG ARGS postcopy-fallback 64)

# The tool itself, end to end: the README's demo at a small size (exit 0:
# migrated, hashes verified, resumed guest equals the replay), and a run
# that gives up, whose source guest must run on intact.
add_test(NAME rmig_migrate_live_demo
  COMMAND rmig-migrate demo --size 64M --channels 2 --warmup 0.5
          --resume-steps 20000)
add_test(NAME rmig_migrate_live_giveup
  COMMAND rmig-migrate demo --size 32M --channels 2 --warmup 0.3
          --dirty-rate max --no-auto-converge --max-rounds 2
          --downtime-limit 1 --resume-steps 1000 --json)
# The two-host commands (dest, then source) on 127.0.0.1, the destination
# with other workload settings than the source.
add_test(NAME rmig_migrate_live_two_host
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/live_two_host.sh
          $<TARGET_FILE:rmig-migrate>)
# The same by post-copy (one pre-copy round, then the destination's RDMA
# READs), and over verbs in the soft-RoCE VM (label rxe: vm_rxe runs it;
# skipped elsewhere).
add_test(NAME rmig_migrate_live_two_host_postcopy
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/live_two_host.sh
          $<TARGET_FILE:rmig-migrate> --postcopy)
add_test(NAME rmig_migrate_live_two_host_postcopy_verbs
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/live_two_host.sh
          $<TARGET_FILE:rmig-migrate> --postcopy --verbs)
set_tests_properties(rmig_migrate_live_two_host_postcopy_verbs PROPERTIES
  TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS "rxe;verbs")
# Sizes this machine cannot hold, and guests that cannot exist, are refused
# before anything is mapped, with a message naming the option.
add_test(NAME rmig_migrate_live_too_big
  COMMAND rmig-migrate demo --size 65536G)
set_tests_properties(rmig_migrate_live_too_big PROPERTIES TIMEOUT 20
  LABELS "live;unit" PASS_REGULAR_EXPRESSION
  "--size 65536.00 GiB: this needs 3 copies of the guest RAM")
add_test(NAME rmig_migrate_live_bad_vcpus
  COMMAND rmig-migrate dest --listen 127.0.0.1:0 --size 128k --vcpus 64
          --insecure)
set_tests_properties(rmig_migrate_live_bad_vcpus PROPERTIES TIMEOUT 20
  LABELS "live;unit" PASS_REGULAR_EXPRESSION
  "dest: error: 32 pages cannot give each of 64 vCPUs a page")
# The source registering its RAM on demand, 4 MiB chunks, at most 2 at a
# time (options the demo gives the source only).
add_test(NAME rmig_migrate_live_ondemand
  COMMAND rmig-migrate demo --size 64M --channels 2 --warmup 0.3
          --resume-steps 1000 --reg-mode on-demand --reg-chunk 4M
          --reg-cache 2)
add_test(NAME rmig_migrate_still_demo
  COMMAND rmig-migrate demo --still --size 32M --channels 2)
# --idle-timeout, given to both processes: connected, the source warms up
# for three idle limits with nothing to send; keepalives carry it.
add_test(NAME rmig_migrate_live_idle
  COMMAND rmig-migrate demo --size 32M --channels 2 --warmup 3
          --idle-timeout 1000 --resume-steps 1000)
# Post-copy over libfabric tcp: at dirty rates 0, 200 MB/s and max (one
# pre-copy round, then the switch), none at all (every page pulled while a
# hot set is written as fast as the vCPUs go, so faults hit pages the
# background pull fetches too): migrated and proven (exit 0).  The source
# killed (SIGKILL) right after the switch: the destination tries to
# resume the session for --postcopy-recover-timeout (3 s), then says the
# guest is lost, exits 1, and verifies nothing.
foreach(rate 0 200 max)
  add_test(NAME rmig_migrate_postcopy_rate_${rate}
    COMMAND rmig-migrate demo --size 64M --channels 2 --warmup 0.3
            --resume-steps 20000 --postcopy --dirty-rate ${rate})
  list(APPEND postcopy_tests rmig_migrate_postcopy_rate_${rate})
endforeach()
add_test(NAME rmig_migrate_postcopy_race
  COMMAND rmig-migrate demo --size 128M --channels 3 --warmup 0.3
          --resume-steps 20000 --postcopy-after 0 --dirty-rate max
          --pattern hot --hot-percent 5 --vcpus 2)
add_test(NAME rmig_migrate_postcopy_source_killed
  COMMAND rmig-migrate demo --size 128M --channels 2 --warmup 0.3
          --resume-steps 1000 --postcopy-after 0
          --postcopy-recover-timeout 3)
set_tests_properties(rmig_migrate_postcopy_source_killed PROPERTIES
  ENVIRONMENT RMIG_MIGRATE_TEST_DIE_AFTER_SWITCH=1
  PASS_REGULAR_EXPRESSION
  "dest: +FAILED: guest lost: the source went away during post-copy; [1-9][0-9]* of 32768 pages never arrived \\(the session was lost \\(.*\\) and recovery gave up: no new session within 3 s.*source exit 137, destination exit 1"
  FAIL_REGULAR_EXPRESSION "verified|PASSED|resumed|ran the guest")
# Post-copy recovery (tests/postcopy_recover.sh, root for ss -K): one TCP
# connection of the session cut mid-pull, then every one: a resumed
# session pulls the rest, proven, nothing placed while disconnected; the
# destination killed and the reconnecting source stopped (SIGTERM): it
# gives up saying what is lost and never resumes the guest.
foreach(mode channel all giveup)
  add_test(NAME rmig_migrate_postcopy_recover_${mode}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/postcopy_recover.sh
            $<TARGET_FILE:rmig-migrate> ${mode})
  list(APPEND postcopy_tests rmig_migrate_postcopy_recover_${mode})
endforeach()
# rmig_src_postcopy() stubbed to say -EOPNOTSUPP (a transport without RDMA
# READ): the source says so, falls back to stop-and-copy, and the
# migration is proven as a pre-copy one.
add_test(NAME rmig_migrate_postcopy_fallback
  COMMAND rmig-migrate demo --size 32M --channels 2 --warmup 0.3
          --resume-steps 1000 --postcopy)
set_tests_properties(rmig_migrate_postcopy_fallback PROPERTIES
  ENVIRONMENT RMIG_MIGRATE_TEST_NO_READ=1
  PASS_REGULAR_EXPRESSION
  "source: transport has no RDMA READ: falling back to pre-copy.*verified: all 8192 page hashes.*PASSED"
  FAIL_REGULAR_EXPRESSION "post-copy:|FAILED")
list(APPEND postcopy_tests rmig_migrate_postcopy_race
  rmig_migrate_postcopy_source_killed rmig_migrate_postcopy_fallback)
math(EXPR tool_t "90 * ${RMIG_INTEG_SLOW}")
set_tests_properties(rmig_migrate_live_demo rmig_migrate_live_giveup
  rmig_migrate_live_two_host rmig_migrate_live_two_host_postcopy
  rmig_migrate_live_ondemand rmig_migrate_still_demo
  rmig_migrate_live_idle ${postcopy_tests} PROPERTIES TIMEOUT ${tool_t}
  LABELS "live;integration")
set_tests_properties(rmig_migrate_live_giveup PROPERTIES
  PASS_REGULAR_EXPRESSION
  "\"source_intact\":true,[^}]*\"source_steps_after_failure\":[1-9][0-9]*.*did not converge")
