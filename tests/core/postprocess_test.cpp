// SPDX-License-Identifier: Apache-2.0
#include "densa/core/postprocess.hpp"

#include "densa/core/error.hpp"

#include <gtest/gtest.h>

#include <tuple>

namespace densa::core {
namespace {

void fillBox(Volume<float>& v, Size3 lo, Size3 hi, float value) {
  for (std::size_t k = lo[2]; k <= hi[2]; ++k) {
    for (std::size_t j = lo[1]; j <= hi[1]; ++j) {
      for (std::size_t i = lo[0]; i <= hi[0]; ++i) {
        v.at(i, j, k) = value;
      }
    }
  }
}

TEST(PostprocessLiverTumour, FollowsTheReferenceSteps) {
  Geometry g;
  g.spacing = {1, 1, 2};
  const Size3 size{30, 30, 12};
  Volume<float> pl(size, g, 0.0F);
  Volume<float> pt(size, g, 0.0F);
  fillBox(pl, {5, 5, 2}, {20, 20, 9}, 0.8F);    // the liver
  pl.at(12, 12, 5) = 0.1F;                      // a hole: filled
  fillBox(pl, {25, 25, 2}, {27, 27, 3}, 0.9F);  // a second, smaller liver blob: dropped
  fillBox(pt, {8, 8, 4}, {10, 10, 6}, 0.95F);   // a tumour inside the liver
  fillBox(pt, {22, 5, 4}, {23, 6, 5}, 0.99F);   // a tumour outside the coarse gate: dropped...
  fillBox(pt, {14, 14, 4}, {15, 15, 4}, 0.85F); // below the tumour threshold 0.9: liver only
  LabelMap coarse(size, g, 0);
  for (std::size_t k = 2; k <= 9; ++k) {
    for (std::size_t j = 5; j <= 20; ++j) {
      for (std::size_t i = 5; i <= 20; ++i) {
        coarse.at(i, j, k) = 1;
      }
    }
  }
  const LabelMap out = postprocessLiverTumour(pl, pt, coarse);
  EXPECT_EQ(out.geometry(), g);
  EXPECT_EQ(out.at(12, 12, 5), 1); // hole filled
  EXPECT_EQ(out.at(26, 26, 2), 0); // not the largest component
  EXPECT_EQ(out.at(9, 9, 5), 2);
  EXPECT_EQ(out.at(14, 14, 4), 1);
  // ...but the out-of-gate tumour is also not connected to the liver: it is no liver either.
  EXPECT_EQ(out.at(22, 5, 4), 0);
  EXPECT_EQ(out.at(4, 4, 2), 0);
}

// Post-processing works inside the box around the foreground: a liver touching the grid's border
// and the same liver in the middle of a larger grid give the same labels; a closed cavity is
// filled and a cavity open to the outside is not.
TEST(PostprocessLiverTumour, BoxAroundTheForegroundChangesNothing) {
  const Size3 small{16, 14, 8};
  const auto build = [&](const Size3& size, const Size3& at) {
    LabelMap liver(size, {}, 0);
    LabelMap tumour(size, {}, 0);
    LabelMap coarse(size, {}, 0);
    const auto put = [&](LabelMap& m, std::size_t i, std::size_t j, std::size_t k, std::uint8_t v) {
      m.at(at[0] + i, at[1] + j, at[2] + k) = v;
    };
    for (std::size_t k = 0; k < small[2]; ++k) {
      for (std::size_t j = 0; j < small[1]; ++j) {
        for (std::size_t i = 0; i < small[0]; ++i) {
          put(liver, i, j, k, 1);
          put(coarse, i, j, k, i < 12 ? 1 : 0);
        }
      }
    }
    for (std::size_t k = 3; k < 5; ++k) {
      for (std::size_t j = 3; j < 6; ++j) {
        for (std::size_t i = 3; i < 6; ++i) {
          put(liver, i, j, k, 0); // a closed cavity: filled
        }
      }
    }
    for (std::size_t i = 9; i < 16; ++i) {
      put(liver, i, 9, 4, 0); // a channel open to the outside at i = 15: not filled
    }
    put(tumour, 2, 2, 2, 1);
    put(tumour, 14, 2, 2, 1); // outside the coarse gate (dilated once reaches i = 12)
    return std::tuple{liver, tumour, coarse};
  };
  const auto [l1, t1, c1] = build(small, {0, 0, 0});
  const auto [l2, t2, c2] = build({30, 25, 15}, {7, 5, 3});
  const LabelMap a = postprocessLiverTumourMasks(l1, t1, c1);
  const LabelMap b = postprocessLiverTumourMasks(l2, t2, c2);
  EXPECT_EQ(a.at(4, 4, 3), 1);  // cavity filled
  EXPECT_EQ(a.at(12, 9, 4), 0); // open channel kept empty
  EXPECT_EQ(a.at(2, 2, 2), 2);
  EXPECT_EQ(a.at(14, 2, 2), 1);
  std::size_t differ = 0;
  std::size_t outside = 0;
  for (std::size_t k = 0; k < 15; ++k) {
    for (std::size_t j = 0; j < 25; ++j) {
      for (std::size_t i = 0; i < 30; ++i) {
        const bool in = i >= 7 && i < 23 && j >= 5 && j < 19 && k >= 3 && k < 11;
        if (in) {
          differ += a.at(i - 7, j - 5, k - 3) != b.at(i, j, k) ? 1 : 0;
        } else {
          outside += b.at(i, j, k) != 0 ? 1 : 0;
        }
      }
    }
  }
  EXPECT_EQ(differ, 0U);
  EXPECT_EQ(outside, 0U);
  EXPECT_EQ(
      postprocessLiverTumourMasks(LabelMap(small), LabelMap(small), LabelMap(small)).at(0, 0, 0),
      0);
}

TEST(PostprocessLiverTumour, ThresholdsAreConfigurable) {
  const Size3 size{10, 10, 4};
  Volume<float> pl(size, {}, 0.6F);
  Volume<float> pt(size, {}, 0.0F);
  pt.at(5, 5, 2) = 0.7F;
  LabelMap coarse(size, {}, 1);
  EXPECT_EQ(postprocessLiverTumour(pl, pt, coarse).at(5, 5, 2), 1);
  EXPECT_EQ(postprocessLiverTumour(pl, pt, coarse, {.liver = 0.5F, .tumour = 0.6F}).at(5, 5, 2), 2);
  EXPECT_EQ(postprocessLiverTumour(pl, pt, coarse, {.liver = 0.7F, .tumour = 0.9F}).at(5, 5, 2), 0);
}

TEST(PostprocessLiverTumour, RejectsMismatchedGrids) {
  EXPECT_THROW((void)postprocessLiverTumour(
                   Volume<float>({2, 2, 2}), Volume<float>({2, 2, 3}), LabelMap({2, 2, 2})),
               InvalidArgument);
}

TEST(RemoveSmallLesions, TurnsLesionsBelowTheVolumeIntoLiver) {
  Geometry g;
  g.spacing = {1.0, 1.0, 2.0}; // 2 mm³ per voxel
  LabelMap labels({20, 20, 10}, g, 1);
  // A 5×5×5 lesion (250 mm³ = 0.25 mL) and a 2×1×1 one (4 mm³), diagonal neighbours of each
  // other's nothing: far apart.
  for (std::size_t k = 1; k < 6; ++k) {
    for (std::size_t j = 1; j < 6; ++j) {
      for (std::size_t i = 1; i < 6; ++i) {
        labels.at(i, j, k) = 2;
      }
    }
  }
  labels.at(15, 15, 8) = 2;
  labels.at(16, 15, 8) = 2;
  LabelMap kept = labels;
  EXPECT_EQ(removeSmallLesions(kept, 0), 0U); // off
  EXPECT_EQ(kept, labels);
  EXPECT_EQ(removeSmallLesions(kept, 0.003), 0U); // 4 mm³ is not below 0.003 mL
  EXPECT_EQ(kept, labels);
  EXPECT_EQ(removeSmallLesions(kept, 0.1), 1U);
  EXPECT_EQ(kept.at(15, 15, 8), 1);
  EXPECT_EQ(kept.at(16, 15, 8), 1);
  EXPECT_EQ(kept.at(3, 3, 3), 2);
  EXPECT_EQ(removeSmallLesions(kept, 0.3), 1U);
  EXPECT_EQ(kept.at(3, 3, 3), 1);
}

} // namespace
} // namespace densa::core
