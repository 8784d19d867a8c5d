// SPDX-License-Identifier: Apache-2.0
#include "densa/core/morphology.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <numeric>

namespace densa::core {
namespace {

std::size_t count(const LabelMap& m) {
  return static_cast<std::size_t>(
      std::count_if(m.voxels().begin(), m.voxels().end(), [](auto v) { return v != 0; }));
}

LabelMap cube(std::size_t n, std::size_t lo, std::size_t hi) {
  LabelMap m({n, n, n}, testing::obliqueGeometry(), 0);
  for (std::size_t z = lo; z <= hi; ++z) {
    for (std::size_t y = lo; y <= hi; ++y) {
      for (std::size_t x = lo; x <= hi; ++x) {
        m.at(x, y, z) = 1;
      }
    }
  }
  return m;
}

TEST(ConnectedComponents, ConnectivityDecidesWhatTouches) {
  LabelMap m({4, 4, 4}, {}, 0);
  m.at(0, 0, 0) = 1;
  m.at(1, 1, 0) = 1; // edge neighbour of the first
  m.at(2, 2, 1) = 1; // corner neighbour of the second
  EXPECT_EQ(connectedComponents(m, Connectivity::Faces6).count, 3U);
  EXPECT_EQ(connectedComponents(m, Connectivity::Edges18).count, 2U);
  EXPECT_EQ(connectedComponents(m, Connectivity::Full26).count, 1U);
  const auto c = connectedComponents(m, Connectivity::Edges18);
  EXPECT_EQ(c.voxelCounts[c.ids[m.offset(0, 0, 0)]], 2U);
}

TEST(LargestComponent, KeepsOnlyTheBiggestAndKeepsGeometry) {
  LabelMap m = cube(10, 1, 4);
  m.at(8, 8, 8) = 1;
  const LabelMap l = largestComponent(m, Connectivity::Full26);
  EXPECT_EQ(count(l), 64U);
  EXPECT_EQ(l.at(8, 8, 8), 0);
  EXPECT_EQ(l.geometry(), m.geometry());
  EXPECT_EQ(count(largestComponent(LabelMap({3, 3, 3}, {}, 0), Connectivity::Full26)), 0U);
}

TEST(FillHoles, FillsEnclosedCavitiesOnly) {
  LabelMap hollow = cube(8, 1, 5);
  hollow.at(3, 3, 3) = 0; // enclosed
  hollow.at(1, 3, 3) = 0; // open to the outside through a face? no: x=1 is the cube's face
  hollow.at(0, 0, 0) = 0;
  const LabelMap filled = fillHoles(hollow);
  EXPECT_EQ(filled.at(3, 3, 3), 1);
  EXPECT_EQ(filled.at(1, 3, 3), 0); // a dent in the surface is not a hole
  EXPECT_EQ(count(filled), 125U - 1U);
}

TEST(Dilate, GrowsByTheSixNeighbourCross) {
  LabelMap m({5, 5, 5}, {}, 0);
  m.at(2, 2, 2) = 1;
  EXPECT_EQ(count(dilate(m, 1)), 7U);
  EXPECT_EQ(count(dilate(m, 2)), 25U); // the L1 ball of radius 2
}

TEST(SurfaceVoxels, CubeSurfaceExcludesTheEighteenErodedInterior) {
  const LabelMap s = surfaceVoxels(cube(6, 1, 4));
  EXPECT_EQ(count(s), 64U - 8U);
  EXPECT_EQ(s.at(2, 2, 2), 0);
  // A mask touching the volume border: outside counts as background.
  EXPECT_EQ(count(surfaceVoxels(cube(3, 0, 2))), 26U);
}

TEST(LabelMasks, SelectByValue) {
  LabelMap m({3, 1, 1}, {}, 0);
  m.at(1, 0, 0) = 1;
  m.at(2, 0, 0) = 2;
  EXPECT_EQ(count(equalTo(m, 2)), 1U);
  EXPECT_EQ(count(atLeast(m, 1)), 2U);
}

} // namespace
} // namespace densa::core
