// SPDX-License-Identifier: Apache-2.0
#include "densa/app/preview.hpp"

#include <gtest/gtest.h>

namespace densa::app {
namespace {

TEST(RenderMontage, WindowsHuAndOverlaysLabelsInRadiologicalOrientation) {
  core::Geometry g;
  g.spacing = {1, 1, 3};
  core::Volume<std::int16_t> ct({64, 64, 4}, g, -1000);
  core::LabelMap labels({64, 64, 4}, g, 0);
  for (std::size_t k = 0; k < 4; ++k) {
    for (std::size_t j = 0; j < 64; ++j) {
      for (std::size_t i = 0; i < 16; ++i) { // patient right (low x)
        ct.at(i, j, k) = 240;                // above the window: white
        labels.at(i, j, k) = i < 8 ? 1 : 0;
      }
    }
  }
  const RgbImage img = renderMontage(ct, &labels, {.slices = 1, .columns = 1, .tileSize = 64});
  ASSERT_EQ(img.width, 64U);
  ASSERT_EQ(img.height, 64U);
  auto px = [&](std::size_t x, std::size_t y) {
    return &img.rgb[(y * img.width + x) * 3];
  };
  // Patient right on the screen's left: the labelled stripe is at x < 8, green over white.
  EXPECT_GT(px(2, 30)[1], px(2, 30)[0]);
  EXPECT_EQ(px(12, 30)[0], 255); // white, no overlay
  EXPECT_EQ(px(50, 30)[0], 0);   // air below the window: black
}

} // namespace
} // namespace densa::app
