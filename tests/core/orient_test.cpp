// SPDX-License-Identifier: Apache-2.0
#include "densa/core/orient.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace densa::core {
namespace {

void expectSamePhysicalVoxels(const Volume<float>& a, const Volume<float>& b) {
  // Every voxel of b sits where the voxel of a with the same value sits (ramp values are unique).
  for (std::size_t k = 0; k < b.size()[2]; ++k) {
    for (std::size_t j = 0; j < b.size()[1]; ++j) {
      for (std::size_t i = 0; i < b.size()[0]; ++i) {
        const float v = b.at(i, j, k);
        const Vec3 pb = b.indexToPhysical({double(i), double(j), double(k)});
        const Vec3 ia = a.physicalToIndex(pb);
        const auto x = static_cast<std::size_t>(std::lround(ia[0]));
        const auto y = static_cast<std::size_t>(std::lround(ia[1]));
        const auto z = static_cast<std::size_t>(std::lround(ia[2]));
        ASSERT_EQ(a.at(x, y, z), v) << i << "," << j << "," << k;
      }
    }
  }
}

TEST(PermutationToAxial, IdentityForHeadFirstAxial) {
  EXPECT_TRUE(permutationToAxial({1, 0, 0, 0, 1, 0, 0, 0, 1}).isIdentity());
}

TEST(PermutationToAxial, FeetFirstReversesK) {
  const auto p = permutationToAxial({1, 0, 0, 0, 1, 0, 0, 0, -1});
  EXPECT_EQ(p.axis, (std::array<int, 3>{0, 1, 2}));
  EXPECT_EQ(p.flip, (std::array<bool, 3>{false, false, true}));
}

TEST(PermuteAxes, CoronalBecomesAxialWithVoxelsInPlace) {
  // A coronal grid: i → L, j → I (down), k → P.
  Geometry g;
  g.spacing = {0.7, 3.0, 1.5};
  g.origin = {-100, -50, 200};
  g.direction = {1, 0, 0, 0, 0, 1, 0, -1, 0};
  const auto v = testing::ramp<float>({5, 4, 3}, g);
  const AxisPermutation p = permutationToAxial(g.direction);
  const auto axial = permuteAxes(v, p);
  EXPECT_EQ(orientationCode(axial.geometry().direction), "LPS");
  EXPECT_EQ(axial.size(), (Size3{5, 3, 4}));
  EXPECT_DOUBLE_EQ(axial.geometry().spacing[2], 3.0);
  expectSamePhysicalVoxels(v, axial);
  EXPECT_EQ(permuteAxes(axial, inverse(p)), v);
}

TEST(PermuteAxes, ObliqueFeetFirstRoundTrips) {
  Geometry g = testing::obliqueGeometry();
  for (std::size_t r = 0; r < 3; ++r) {
    g.direction[3 * r + 2] = -g.direction[3 * r + 2];
    g.direction[3 * r] = -g.direction[3 * r];
  }
  const auto v = testing::ramp<float>({6, 5, 4}, g);
  const AxisPermutation p = permutationToAxial(g.direction);
  const auto axial = permuteAxes(v, p);
  EXPECT_EQ(orientationCode(axial.geometry().direction), "LPS");
  expectSamePhysicalVoxels(v, axial);
  EXPECT_EQ(permuteAxes(axial, inverse(p)), v);
}

} // namespace
} // namespace densa::core
