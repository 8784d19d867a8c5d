# Fails when a folder includes what its layer must not depend on (DEVELOPERS.md "Layout and layering").
set(rules
    "core|torch/|ATen/|c10/|Q[A-Z]|Qt|vtk|dcmtk/"
    "io|torch/|ATen/|c10/|Q[A-Z]|Qt|vtk"
    "models|itk|dcmtk/|Q[A-Z]|Qt|vtk|densa/core|densa/io|densa/app"
    "app|Q[A-Z]|Qt|vtk")
set(failed "")
foreach(rule IN LISTS rules)
  string(REPLACE "|" ";" parts "${rule}")
  list(POP_FRONT parts dir)
  list(JOIN parts "|" pattern)
  file(GLOB_RECURSE files "${ROOT}/${dir}/*.hpp" "${ROOT}/${dir}/*.h" "${ROOT}/${dir}/*.cpp")
  foreach(f IN LISTS files)
    file(STRINGS "${f}" hits REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](${pattern})")
    if(hits)
      string(APPEND failed "\n  ${f}: ${hits}")
    endif()
  endforeach()
endforeach()
# ITK/DCMTK/torch never in public headers of core, io, models.
file(GLOB_RECURSE headers "${ROOT}/core/*.hpp" "${ROOT}/io/*.hpp" "${ROOT}/models/include/*.hpp")
foreach(f IN LISTS headers)
  file(STRINGS "${f}" hits REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](itk|dcmtk/|gdcm|torch/|ATen/)")
  if(hits)
    string(APPEND failed "\n  ${f}: ${hits}")
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR "layering violations:${failed}")
endif()
message(STATUS "layering ok")
