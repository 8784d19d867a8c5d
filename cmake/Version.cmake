# Git hash for `densa --version`, captured at configure time.
find_package(Git QUIET)
set(DENSA_GIT_HASH "unknown")
if(GIT_FOUND AND EXISTS ${PROJECT_SOURCE_DIR}/.git)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=12 HEAD
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE DENSA_GIT_HASH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT DENSA_GIT_HASH)
    set(DENSA_GIT_HASH "unknown")
  endif()
endif()
