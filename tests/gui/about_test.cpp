// SPDX-License-Identifier: Apache-2.0
#include "densa/gui/about.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace densa::gui {
namespace {

TEST(ToolkitVersions, NamesQt6AndVtk9) {
  const std::string v = toolkitVersions();
  EXPECT_NE(v.find("Qt 6."), std::string::npos) << v;
  EXPECT_NE(v.find("VTK 9."), std::string::npos) << v;
}

TEST(ToolkitVersions, ProcessLoadsNoVtkQtModule) {
  // Debian's VTK Qt modules are built on Qt5; using them next to Qt6 aborts at start-up (see
  // ../shared/docs/qt6-vtk.md). Note: Debian's libtorch_cpu links opencv_highgui, which links the
  // Qt5 libraries, so libQt5*.so are mapped in any process that links LibTorch; they are never
  // initialised, and Qt5/Qt6 symbols are versioned apart.
  (void)toolkitVersions();
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool qt6 = false;
  while (std::getline(maps, line)) {
    EXPECT_EQ(line.find("GUISupportQt"), std::string::npos) << line;
    EXPECT_EQ(line.find("RenderingQt"), std::string::npos) << line;
    EXPECT_EQ(line.find("ViewsQt"), std::string::npos) << line;
    qt6 = qt6 || line.find("libQt6Core") != std::string::npos;
  }
  EXPECT_TRUE(qt6);
}

} // namespace
} // namespace densa::gui
