// SPDX-License-Identifier: Apache-2.0
#include "densa/core/lesions.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace densa::core {
namespace {

TEST(MeasureLiverTumour, VolumesBurdenAndLesionTableInPhysicalUnits) {
  Geometry g;
  g.spacing = {0.5, 0.5, 2.0};
  g.origin = {10, -20, 100};
  LabelMap m({40, 40, 10}, g, 0);
  // Liver: 20 x 20 x 5 voxels = 2000 voxels of 0.5 mm^3.
  for (std::size_t k = 2; k < 7; ++k) {
    for (std::size_t j = 10; j < 30; ++j) {
      for (std::size_t i = 10; i < 30; ++i) {
        m.at(i, j, k) = 1;
      }
    }
  }
  // Lesion A: 7 x 3 x 2 box; lesion B: a single voxel.
  for (std::size_t k = 3; k < 5; ++k) {
    for (std::size_t j = 12; j < 15; ++j) {
      for (std::size_t i = 12; i < 19; ++i) {
        m.at(i, j, k) = 2;
      }
    }
  }
  m.at(25, 25, 5) = 2;
  const auto s = measureLiverTumour(m);
  EXPECT_DOUBLE_EQ(s.liverVolumeMl, 2000 * 0.5 / 1000);
  EXPECT_DOUBLE_EQ(s.tumourVolumeMl, 43 * 0.5 / 1000);
  EXPECT_DOUBLE_EQ(s.tumourBurdenPercent, 100.0 * 43 / 2000);
  ASSERT_EQ(s.lesions.size(), 2U);
  const Lesion& a = s.lesions[0];
  EXPECT_EQ(a.id, 1);
  EXPECT_EQ(a.voxels, 42U);
  // Diagonal of the 7 x 3 pixel rectangle, centre to centre: sqrt((6*0.5)^2 + (2*0.5)^2).
  EXPECT_NEAR(a.longestDiameterMm, std::sqrt(9.0 + 1.0), 1e-9);
  EXPECT_NEAR(a.centroidMm[0], 10 + 15 * 0.5, 1e-9);
  EXPECT_NEAR(a.centroidMm[1], -20 + 13 * 0.5, 1e-9);
  EXPECT_NEAR(a.centroidMm[2], 100 + 3.5 * 2.0, 1e-9);
  EXPECT_EQ(a.boundingBoxLow, (Size3{12, 12, 3}));
  EXPECT_EQ(a.boundingBoxHigh, (Size3{18, 14, 4}));
  EXPECT_EQ(s.lesions[1].voxels, 1U);
  EXPECT_EQ(s.lesions[1].longestDiameterMm, 0.0);
}

TEST(MeasureLiverTumour, EmptyMapHasNoBurden) {
  const auto s = measureLiverTumour(LabelMap({4, 4, 4}, {}, 0));
  EXPECT_EQ(s.liverVolumeMl, 0);
  EXPECT_EQ(s.tumourBurdenPercent, 0);
  EXPECT_TRUE(s.lesions.empty());
}

} // namespace
} // namespace densa::core
