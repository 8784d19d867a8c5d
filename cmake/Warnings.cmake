# Warnings live on an INTERFACE target that every densa target links PRIVATE.
add_library(densa_warnings INTERFACE)
add_library(densa::warnings ALIAS densa_warnings)
target_compile_options(densa_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                                -Woverloaded-virtual)
if(DENSA_WARNINGS_AS_ERRORS)
  target_compile_options(densa_warnings INTERFACE -Werror)
endif()
