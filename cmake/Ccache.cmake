# Use ccache when present (PCH-safe settings are passed through the environment).
find_program(DENSA_CCACHE ccache)
if(DENSA_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      ${DENSA_CCACHE})
  message(STATUS "densa: using ccache ${DENSA_CCACHE}")
endif()
