// SPDX-License-Identifier: Apache-2.0
#include "densa/io/versions.hpp"

#include <dcmtk/config/osconfig.h>
#include <gdcmVersion.h>
#include <itkVersion.h>

namespace densa::io {

std::string dcmtkVersion() {
  return PACKAGE_VERSION;
}

std::string itkVersion() {
  return itk::Version::GetITKVersion();
}

std::string gdcmVersion() {
  return gdcm::Version::GetVersion();
}

} // namespace densa::io
