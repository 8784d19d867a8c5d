// SPDX-License-Identifier: Apache-2.0
#include "densa/core/geometry.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

namespace densa::core {
namespace {

TEST(Geometry, IndexToPhysicalFollowsDirectionAndSpacing) {
  Geometry g;
  g.spacing = {0.5, 2.0, 3.0};
  g.origin = {10, 20, 30};
  g.direction = {1, 0, 0, 0, -1, 0, 0, 0, 1}; // j flipped (LAS)
  const Vec3 p = g.indexToPhysical({2, 3, 4});
  EXPECT_DOUBLE_EQ(p[0], 11.0);
  EXPECT_DOUBLE_EQ(p[1], 14.0);
  EXPECT_DOUBLE_EQ(p[2], 42.0);
}

TEST(Geometry, PhysicalToIndexInvertsObliqueTransform) {
  const Geometry g = testing::obliqueGeometry();
  const Vec3 index{3.25, -7.5, 11.0};
  const Vec3 back = g.physicalToIndex(g.indexToPhysical(index));
  for (std::size_t d = 0; d < 3; ++d) {
    EXPECT_NEAR(back[d], index[d], 1e-9);
  }
}

TEST(Geometry, OrientationCodeUsesLpsLetters) {
  EXPECT_EQ(orientationCode({1, 0, 0, 0, 1, 0, 0, 0, 1}), "LPS");
  EXPECT_EQ(orientationCode({1, 0, 0, 0, -1, 0, 0, 0, 1}), "LAS");
  EXPECT_EQ(orientationCode({-1, 0, 0, 0, -1, 0, 0, 0, 1}), "RAS");
  EXPECT_EQ(orientationCode({1, 0, 0, 0, 0, 1, 0, -1, 0}), "LIP"); // coronal
}

TEST(Geometry, DetectsNonOrthonormalDirections) {
  EXPECT_TRUE(isOrthonormal(testing::obliqueGeometry().direction));
  EXPECT_FALSE(isOrthonormal({1, 0.2, 0, 0, 1, 0, 0, 0, 1}));
}

} // namespace
} // namespace densa::core
