# Manual pages: docs/<name>.<section>.rst rendered by docutils' rst2man
# (Debian: python3-docutils, /usr/bin/rst2man) into
# <build>/man/man<section>/<name>.<section>, installed under
# CMAKE_INSTALL_MANDIR.  Every function in a page's SYNOPSIS also gets a
# link page (man3/<function>.3 holding ".so manN/<page>.N"), so that
# "man rmig_src_create" finds rmig_src(3).
#
# RMIG_MAN_PAGES: AUTO (default) builds them when rst2man is found, ON
# requires it, OFF skips them.  The library and the demo need none of this.
set(RMIG_MAN_PAGES AUTO CACHE STRING
  "Build the man pages with rst2man: AUTO (when found), ON or OFF")
set_property(CACHE RMIG_MAN_PAGES PROPERTY STRINGS AUTO ON OFF)

set(RMIG_MAN_SOURCES rmig.7 rmig_src.3 rmig_dest.3 rmig-migrate.1)
# What tests/check_install.sh expects under CMAKE_INSTALL_MANDIR: the pages,
# then the link pages; empty when none are built.
set(RMIG_MAN_INSTALLED "")
set(RMIG_MAN_LINKS "")

if(NOT RMIG_MAN_PAGES STREQUAL "OFF")
  # rst2man is Debian's name; rst2man.py is what pip installs.
  find_program(RST2MAN NAMES rst2man rst2man.py)
  if(NOT RST2MAN)
    if(RMIG_MAN_PAGES STREQUAL "ON")
      message(FATAL_ERROR "RMIG_MAN_PAGES=ON but rst2man was not found "
        "(Debian package python3-docutils)")
    endif()
    message(STATUS "rst2man not found (Debian package python3-docutils): "
      "the man pages are not built")
  endif()
endif()

if(RST2MAN AND NOT RMIG_MAN_PAGES STREQUAL "OFF")
  set(man_outputs "")
  foreach(page IN LISTS RMIG_MAN_SOURCES)
    string(REGEX MATCH "[0-9]$" section "${page}")
    set(src ${PROJECT_SOURCE_DIR}/docs/${page}.rst)
    set(out ${PROJECT_BINARY_DIR}/man/man${section}/${page})
    # --halt=warning: a markup problem fails the build instead of printing
    # a system message into the page.
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory
              ${PROJECT_BINARY_DIR}/man/man${section}
      COMMAND ${RST2MAN} --halt=warning --no-generator ${src} ${out}
      DEPENDS ${src}
      COMMENT "rst2man docs/${page}.rst"
      VERBATIM)
    list(APPEND man_outputs ${out})
    list(APPEND RMIG_MAN_INSTALLED man${section}/${page})
    install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})

    # Link pages for the functions of the SYNOPSIS (the text between the
    # SYNOPSIS and DESCRIPTION headings), written at configure time.
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
    file(READ ${src} text)
    string(FIND "${text}" "\nSYNOPSIS\n" from)
    string(FIND "${text}" "\nDESCRIPTION\n" to)
    if(from LESS 0 OR to LESS from)
      message(FATAL_ERROR "docs/${page}.rst: no SYNOPSIS before DESCRIPTION")
    endif()
    math(EXPR len "${to} - ${from}")
    string(SUBSTRING "${text}" ${from} ${len} synopsis)
    string(REGEX MATCHALL "rmig_[a-z_]+\\(" calls "${synopsis}")
    foreach(call IN LISTS calls)
      string(REPLACE "(" "" fn "${call}")
      if(fn STREQUAL page OR "man3/${fn}.3" IN_LIST RMIG_MAN_LINKS)
        continue()
      endif()
      set(link ${PROJECT_BINARY_DIR}/man/man3/${fn}.3)
      file(CONFIGURE OUTPUT ${link} CONTENT ".so man${section}/${page}\n")
      list(APPEND RMIG_MAN_LINKS man3/${fn}.3)
      install(FILES ${link} DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
    endforeach()
  endforeach()
  add_custom_target(man ALL DEPENDS ${man_outputs})
  list(APPEND RMIG_MAN_INSTALLED ${RMIG_MAN_LINKS})
endif()
