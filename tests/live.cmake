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
