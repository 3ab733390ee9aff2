# The include-order check (docs/architecture.md, "Modules"). Every folder of src/ is a module and
# a CMake library; a module may include its own headers and those of the modules below it in
# ATTNLAB_LAYERS, never one above it or beside it. Run at build time by the `check_layers` target,
# and by the `layers` tests, as
#   cmake -DSRC=<src dir> [-DSTAMP=<file to touch on success>] -P cmake/check_layers.cmake
# It prints one line per offending include (file:line: what it includes, and why that is
# against the order) and fails; a folder of src/ that is not in the order fails too.

# Lowest first. Modules in one entry (separated by commas) are siblings: neither includes the other.
set(ATTNLAB_LAYERS core cuda ops attention config data model train "inspect,bench" experiment cli)

if(NOT SRC)
  message(FATAL_ERROR "check_layers: pass -DSRC=<the src directory>")
endif()

set(_rank 0)
foreach(_level IN LISTS ATTNLAB_LAYERS)
  string(REPLACE "," ";" _mods "${_level}")
  foreach(_m IN LISTS _mods)
    set(_rank_${_m} ${_rank})
  endforeach()
  math(EXPR _rank "${_rank} + 1")
endforeach()
string(REPLACE ";" " ← " _order "${ATTNLAB_LAYERS}")
string(REPLACE "," " | " _order "${_order}")

set(_errors "")
file(GLOB _dirs LIST_DIRECTORIES true RELATIVE ${SRC} ${SRC}/*)
foreach(_d IN LISTS _dirs)
  if(IS_DIRECTORY ${SRC}/${_d} AND NOT DEFINED _rank_${_d})
    list(APPEND _errors "src/${_d}/: a folder that is not a module of the order (add it to ATTNLAB_LAYERS in cmake/check_layers.cmake)")
  endif()
endforeach()

file(GLOB_RECURSE _files RELATIVE ${SRC} ${SRC}/*.h ${SRC}/*.cpp ${SRC}/*.cuh ${SRC}/*.cu)
list(SORT _files)
foreach(_f IN LISTS _files)
  string(REGEX MATCH "^[^/]+" _mod "${_f}")
  if(NOT DEFINED _rank_${_mod})
    continue()  # reported above
  endif()
  file(STRINGS ${SRC}/${_f} _lines)
  set(_n 0)
  foreach(_line IN LISTS _lines)
    math(EXPR _n "${_n} + 1")
    if(_line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"/]+)/([^\"]+)\"")
      set(_dep ${CMAKE_MATCH_1})
      set(_what "${CMAKE_MATCH_1}/${CMAKE_MATCH_2}")
      if(_dep STREQUAL _mod)
        continue()
      endif()
      if(NOT DEFINED _rank_${_dep})
        list(APPEND _errors "src/${_f}:${_n}: includes ${_what}, which is in no module")
      elseif(NOT _rank_${_dep} LESS _rank_${_mod})
        list(APPEND _errors "src/${_f}:${_n}: includes ${_what}, but ${_mod} may not depend on ${_dep}")
      endif()
    endif()
  endforeach()
endforeach()

if(_errors)
  list(LENGTH _errors _count)
  string(REPLACE ";" "\n  " _list "${_errors}")
  message(FATAL_ERROR "include order: ${_count} include(s) against the module order ${_order}:\n  ${_list}")
endif()
if(STAMP)
  file(TOUCH ${STAMP})
endif()
