# Build checks: the shared library exports only what lib/librmig.map lists,
# and the public header compiles alone with strict flags.
add_test(NAME check_exports
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_exports.sh $<TARGET_FILE:rmig>
          ${PROJECT_SOURCE_DIR}/lib/librmig.map)
set_tests_properties(check_exports PROPERTIES TIMEOUT 30 LABELS "unit;build")

add_executable(header_alone header_alone.c)
target_include_directories(header_alone PRIVATE ${PROJECT_SOURCE_DIR}/include)
target_compile_options(header_alone PRIVATE -std=c11 -pedantic-errors)
add_test(NAME header_alone COMMAND header_alone)
set_tests_properties(header_alone PROPERTIES TIMEOUT 30 LABELS "unit;build")

# The installed library is consumed by plain (unsanitized) programs, so this
# check runs in the normal tree only.  It also renders every installed man
# page (cmake/manpages.cmake lists them; none when rst2man was absent).
if(NOT RMIG_SANITIZE)
add_test(NAME check_install
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_install.sh ${PROJECT_BINARY_DIR}
          ${PROJECT_SOURCE_DIR} ${PROJECT_VERSION} ${CMAKE_INSTALL_MANDIR}
          ${RMIG_MAN_INSTALLED})
set_tests_properties(check_install PROPERTIES TIMEOUT 120 LABELS "build")
endif()

# docs/internals.rst walks a page through the code by file:function(); each
# must still be defined where the page says.
add_test(NAME check_internals
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/check_internals.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(check_internals PROPERTIES TIMEOUT 30 LABELS "unit;build")
