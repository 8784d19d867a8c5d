// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>

namespace densa::gui {

/// Qt and VTK versions the viewer was built against, e.g. "Qt 6.4.2, VTK 9.1.0".
[[nodiscard]] std::string toolkitVersions();

} // namespace densa::gui
