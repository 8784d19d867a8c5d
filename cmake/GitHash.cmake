# Build-time script (cmake -P), run on every build by app/CMakeLists.txt: writes OUT, a C++ file
# defining densa::app::build::kGitHash, only when the commit or the dirty state changed, so run
# folders, model cards and reports name the code that really produced them.
#   cmake -DSRC=<source dir> -DGIT=<git executable> -DOUT=<file> -P GitHash.cmake
set(hash "unknown")
if(GIT AND EXISTS "${SRC}/.git")
  execute_process(COMMAND "${GIT}" rev-parse --short=12 HEAD
                  WORKING_DIRECTORY "${SRC}"
                  OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
                  RESULT_VARIABLE rc)
  if(rc EQUAL 0 AND head)
    set(hash "${head}")
    execute_process(COMMAND "${GIT}" diff --quiet HEAD --
                    WORKING_DIRECTORY "${SRC}" RESULT_VARIABLE dirty ERROR_QUIET)
    if(NOT dirty EQUAL 0)
      set(hash "${hash}-dirty")
    endif()
  endif()
endif()
file(WRITE "${OUT}.tmp"
     "// Generated at build time by cmake/GitHash.cmake - do not edit.\n"
     "#include \"densa/build_info.hpp\"\n\n"
     "namespace densa::app::build {\n"
     "const char* const kGitHash = \"${hash}\";\n"
     "} // namespace densa::app::build\n")
execute_process(COMMAND "${CMAKE_COMMAND}" -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
