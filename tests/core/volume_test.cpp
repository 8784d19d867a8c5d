// SPDX-License-Identifier: Apache-2.0
#include "densa/core/volume.hpp"

#include "densa/core/error.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

namespace densa::core {
namespace {

TEST(Volume, HoldsVoxelsInItkIndexOrder) {
  Volume<std::int16_t> v({4, 3, 2}, {}, 0);
  v.at(1, 2, 1) = 42;
  EXPECT_EQ(v.voxelCount(), 24U);
  EXPECT_EQ(v.voxels()[1 + 4 * (2 + 3 * 1)], 42);
  EXPECT_EQ(v.byteSize(), 48U);
}

TEST(Volume, MoveIsCheapAndLeavesSourceEmpty) {
  auto v = testing::ramp<float>({64, 64, 16}, testing::obliqueGeometry());
  const float* buffer = v.data();
  Volume<float> moved = std::move(v);
  EXPECT_EQ(moved.data(), buffer); // no copy of the voxels
  EXPECT_TRUE(v.empty());          // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(moved.at(2, 1, 1), 2 + 3 + 7);
}

TEST(Volume, CopyIsDeep) {
  auto v = testing::ramp<std::uint8_t>({4, 4, 4}, {});
  auto c = v;
  c.at(0, 0, 0) = 99;
  EXPECT_EQ(v.at(0, 0, 0), 0);
  EXPECT_NE(v, c);
}

TEST(Volume, RejectsBadSpacingAndWrongBuffer) {
  Geometry g;
  g.spacing = {1, 0, 1};
  EXPECT_THROW(Volume<float>({2, 2, 2}, g), InvalidArgument);
  EXPECT_THROW(Volume<float>({2, 2, 2}, Geometry{}, std::vector<float>(7)), InvalidArgument);
  EXPECT_THROW(Volume<float>({SIZE_MAX / 2, 4, 4}, Geometry{}), InvalidArgument);
}

TEST(AnyVolume, ReportsTypeRangeAndConvertsToFloat) {
  AnyVolume any = testing::ramp<std::int16_t>({3, 3, 3}, testing::obliqueGeometry());
  EXPECT_EQ(pixelType(any), PixelType::Int16);
  const auto r = valueRange(any);
  EXPECT_EQ(r.min, 0);
  EXPECT_EQ(r.max, 2 + 6 + 14);
  const auto f = toFloat(any);
  EXPECT_FLOAT_EQ(f.at(2, 2, 2), 22.0F);
  EXPECT_TRUE(f.geometry().approxEqual(testing::obliqueGeometry(), 0));
}

} // namespace
} // namespace densa::core
