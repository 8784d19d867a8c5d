// SPDX-License-Identifier: Apache-2.0
#include "densa/app/commands.hpp"
#include "densa/build_info.hpp"
#include "densa/io/versions.hpp"
#include "densa/models/runtime.hpp"

#include <sstream>

namespace densa::app {

std::string versionText() {
  std::ostringstream s;
  s << "densa " << build::kVersion << " (git " << build::kGitHash << ", " << build::kBuildType
    << ")\n"
    << "  LibTorch " << models::libtorchVersion()
    << (models::cudaAvailable() ? " (CUDA available)" : " (CPU)") << ", " << models::threads()
    << " thread(s)\n"
    << "  ITK      " << io::itkVersion() << " (GDCM " << io::gdcmVersion() << ")"
    << "\n"
    << "  DCMTK    " << io::dcmtkVersion() << "\n"
    << "  VTK      " << build::kVtkVersion << "\n"
    << "  Qt       " << build::kQtVersion << "\n";
  return s.str();
}

} // namespace densa::app
