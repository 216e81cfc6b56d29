# Hostile-peer scenarios (issue 9; label "hostile"): a peer that does not
# hold the secret (hostile/hostile_peer, libfabric directly) against a
# destination on the public API (hostile/hostile_dest), then a real source
# (rmig-migrate source --still) with the right key.  127.0.0.1 only,
# separate processes, driven by hostile/hostile.sh (which says what each
# scenario checks).
add_executable(hostile_peer hostile/hostile_peer.c hostile/hattacks.c
  hostile/hfab.c)
target_link_libraries(hostile_peer PRIVATE rmig_internal)
add_executable(hostile_dest hostile/hostile_dest.c testutil.c)
target_link_libraries(hostile_dest PRIVATE rmig_internal)
target_include_directories(hostile_dest PRIVATE ${PROJECT_SOURCE_DIR}/tools
  ${CMAKE_CURRENT_SOURCE_DIR})

math(EXPR hostile_t "150 * ${RMIG_INTEG_SLOW}")
foreach(s nokey wrongkey replay impostor keywrite squat slowloris
    rawflood rawflood_lowfd allowlist)
  add_test(NAME hostile_${s}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/hostile/hostile.sh ${s}
            $<TARGET_FILE:hostile_peer> $<TARGET_FILE:hostile_dest>
            $<TARGET_FILE:rmig-migrate>)
  set_tests_properties(hostile_${s} PROPERTIES TIMEOUT ${hostile_t}
    LABELS "hostile;integration")
endforeach()
# The tcp provider's bookkeeping of each stray socket stays allocated after
# rmig closes the socket (providers/fabric/fabric_sweep.c): LSan is told,
# for the floods only.
set_tests_properties(hostile_rawflood hostile_rawflood_lowfd PROPERTIES
  ENVIRONMENT "${RMIG_OTHER_PROV_ENV}")

# keywrite over verbs: in the soft-RoCE VM (label rxe: run by vm_rxe, see
# tests/vm.cmake); exit 77 (skipped) elsewhere.
if(RMIG_WITH_VERBS)
  add_test(NAME hostile_keywrite_verbs
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/hostile/hostile.sh keywrite_verbs
            $<TARGET_FILE:hostile_peer> $<TARGET_FILE:hostile_dest>
            $<TARGET_FILE:rmig-migrate>)
  set_tests_properties(hostile_keywrite_verbs PROPERTIES TIMEOUT 300
    SKIP_RETURN_CODE 77 LABELS "rxe;verbs;hostile")
endif()
