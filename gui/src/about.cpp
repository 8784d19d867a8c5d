// SPDX-License-Identifier: Apache-2.0
#include "densa/gui/about.hpp"

#include <QtGlobal>
#include <vtkVersion.h>

namespace densa::gui {

std::string toolkitVersions() {
  return std::string("Qt ") + qVersion() + ", VTK " + vtkVersion::GetVTKVersion();
}

} // namespace densa::gui
