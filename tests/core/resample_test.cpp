// SPDX-License-Identifier: Apache-2.0
#include "densa/core/resample.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

namespace densa::core {
namespace {

TEST(ResampleOnto, FlippedGridMapsLabelsByPhysicalPosition) {
  // The same physical grid stored with j flipped (as a LAS NIfTI would be).
  Geometry lps;
  lps.spacing = {1, 2, 3};
  lps.origin = {0, 0, 0};
  LabelMap labels({4, 5, 2}, lps, 0);
  labels.at(1, 0, 1) = 5; // near j = 0
  Geometry las = lps;
  las.direction = {1, 0, 0, 0, -1, 0, 0, 0, 1};
  las.origin = {0, 8, 0}; // j = 4 of the LPS grid
  const auto onLas = resampleOnto(labels, {{4, 5, 2}, las}, Interpolation::Nearest);
  EXPECT_EQ(onLas.at(1, 4, 1), 5); // same physical point, flipped index
  EXPECT_EQ(onLas.at(1, 0, 1), 0);
  const auto back = resampleOnto(onLas, gridOf(labels), Interpolation::Nearest);
  EXPECT_EQ(back, labels);
}

TEST(ResampleOnto, LinearHalvesSpacingAndFillsOutside) {
  Volume<float> v({2, 1, 1}, {}, 0);
  v.at(1, 0, 0) = 10;
  Geometry fine;
  fine.spacing = {0.5, 1, 1};
  fine.origin = {-1.5, 0, 0}; // -1.5 … 1.0 mm
  const auto out = resampleOnto(v, {{6, 1, 1}, fine}, Interpolation::Linear, -1.0F);
  EXPECT_FLOAT_EQ(out.at(0, 0, 0), -1.0F); // more than half a voxel outside
  EXPECT_FLOAT_EQ(out.at(3, 0, 0), 0.0F);
  EXPECT_FLOAT_EQ(out.at(4, 0, 0), 5.0F);
  EXPECT_FLOAT_EQ(out.at(5, 0, 0), 10.0F);
}

} // namespace
} // namespace densa::core
