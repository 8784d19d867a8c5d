// SPDX-License-Identifier: Apache-2.0
#include "densa/core/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace densa::core {
namespace {

LabelMap box(const Size3& size,
             const Geometry& g,
             std::array<std::size_t, 3> lo,
             std::array<std::size_t, 3> hi,
             std::uint8_t value = 1) {
  LabelMap m(size, g, 0);
  for (std::size_t z = lo[2]; z <= hi[2]; ++z) {
    for (std::size_t y = lo[1]; y <= hi[1]; ++y) {
      for (std::size_t x = lo[0]; x <= hi[0]; ++x) {
        m.at(x, y, z) = value;
      }
    }
  }
  return m;
}

Geometry anisotropic() {
  Geometry g;
  g.spacing = {2.0, 1.0, 1.0};
  g.origin = {-50, 20, 7};
  return g;
}

TEST(SurfaceDistances, IdenticalMasksAreAtZero) {
  const LabelMap a = box({10, 10, 10}, anisotropic(), {2, 2, 2}, {6, 5, 7});
  const auto d = surfaceDistances(a, a, 1.0);
  EXPECT_EQ(d.assd, 0);
  EXPECT_EQ(d.msd, 0);
  EXPECT_EQ(d.hd95, 0);
  EXPECT_EQ(d.surfaceDice, 1);
}

TEST(SurfaceDistances, SingleVoxelsUseRealSpacing) {
  Geometry g;
  g.spacing = {1, 1, 2.5};
  const LabelMap p = box({6, 6, 8}, g, {2, 2, 2}, {2, 2, 2});
  const LabelMap q = box({6, 6, 8}, g, {2, 2, 5}, {2, 2, 5});
  const auto d = surfaceDistances(p, q, 1.0);
  EXPECT_DOUBLE_EQ(d.assd, 7.5);
  EXPECT_DOUBLE_EQ(d.msd, 7.5);
  EXPECT_DOUBLE_EQ(d.rmsd, 7.5);
  EXPECT_DOUBLE_EQ(d.hd95, 7.5);
  EXPECT_DOUBLE_EQ(d.surfaceDice, 0);
}

// Two 4x4x4 cubes, the second shifted by one voxel along x (2 mm). By hand: each cube has 56
// surface voxels (64 minus the 2x2x2 core that survives 18-neighbour erosion). Of the 56
// surface voxels of P, 16 (its x=0 face) are 2 mm from S(G), 4 (the centre of its x=3 face,
// inside G's core) are 1 mm away (a step in y), and 36 lie on S(G). The same holds for G.
TEST(SurfaceDistances, ShiftedCubesMatchHandComputedValues) {
  const Size3 size{8, 6, 6};
  const LabelMap p = box(size, anisotropic(), {0, 1, 1}, {3, 4, 4});
  const LabelMap q = box(size, anisotropic(), {1, 1, 1}, {4, 4, 4});
  const auto d = surfaceDistances(p, q, 1.5);
  EXPECT_NEAR(d.assd, 72.0 / 112.0, 1e-6);
  EXPECT_NEAR(d.msd, 2.0, 1e-6);
  EXPECT_NEAR(d.rmsd, std::sqrt(136.0 / 112.0), 1e-6);
  EXPECT_NEAR(d.hd95, 2.0, 1e-6);
  EXPECT_NEAR(d.surfaceDice, 80.0 / 112.0, 1e-9);
  const auto s = scoreObject(p, q);
  EXPECT_DOUBLE_EQ(s.dice, 96.0 / 128.0);
  EXPECT_DOUBLE_EQ(s.voe, 1.0 - 0.75 / 1.25);
  EXPECT_DOUBLE_EQ(s.rvd, 0.0);
}

TEST(ScoreObject, RvdConventionsAndEmptyPenalties) {
  const Size3 size{10, 10, 10};
  const LabelMap big = box(size, {}, {0, 0, 0}, {3, 3, 3});   // 64 voxels
  const LabelMap small = box(size, {}, {0, 0, 0}, {3, 3, 1}); // 32 voxels
  const auto s = scoreObject(big, small);
  EXPECT_DOUBLE_EQ(s.rvd, (64.0 - 32.0) / 32.0);       // (|P| − |G|) / |G|
  EXPECT_DOUBLE_EQ(s.rvdScorer, (32.0 - 64.0) / 64.0); // medpy.ravd(G, P) = (|G| − |P|) / |P|
  const auto e = scoreObject(LabelMap(size, {}, 0), small);
  EXPECT_EQ(e.dice, 0);
  EXPECT_EQ(e.voe, 1);
  EXPECT_EQ(e.assd, kLitsLarge);
  EXPECT_EQ(e.msd, kLitsLarge);
  EXPECT_EQ(e.rvdScorer, kLitsLarge);
}

TEST(EvaluateLitsCase, EmptyMaskConventions) {
  const Size3 size{12, 12, 12};
  LabelMap ref = box(size, {}, {1, 1, 1}, {9, 9, 9}, 1);
  // No lesion anywhere: lesion Dice per case is 1.
  const LitsCase same = evaluateLitsCase(ref, ref);
  EXPECT_EQ(same.lesionDice, 1.0);
  EXPECT_EQ(same.liverDice, 1.0);
  EXPECT_EQ(same.liver.assd, 0.0);
  // A prediction with no voxel labelled 1 scores liver Dice 0 and LARGE distances, even if its
  // tumour label overlaps the liver.
  const LabelMap onlyTumour = box(size, {}, {1, 1, 1}, {9, 9, 9}, 2);
  const LitsCase c = evaluateLitsCase(onlyTumour, ref);
  EXPECT_EQ(c.liverDice, 0.0);
  EXPECT_EQ(c.liver.assd, kLitsLarge);
  EXPECT_EQ(c.lesionDice, 0.0); // a predicted lesion where there is none
  EXPECT_EQ(c.lesions50.predictedLesions, 1U);
  EXPECT_EQ(c.lesions50.referenceLesions, 0U);
}

TEST(DetectLesions, MergesReferenceLesionsBridgedByOnePrediction) {
  const Size3 size{20, 10, 10};
  LabelMap ref = box(size, {}, {2, 2, 2}, {5, 5, 5});
  const LabelMap ref2 = box(size, {}, {7, 2, 2}, {10, 5, 5});
  for (std::size_t i = 0; i < ref.voxelCount(); ++i) {
    ref.voxels()[i] |= ref2.voxels()[i];
  }
  LabelMap pred = box(size, {}, {2, 2, 2}, {10, 5, 5}); // one lesion spanning both (and the gap)
  pred.at(18, 8, 8) = 1;                                // a far false positive
  const auto d = detectLesions(pred, ref, 0.5);
  EXPECT_EQ(d.referenceLesions, 2U);
  EXPECT_EQ(d.predictedLesions, 2U);
  ASSERT_EQ(d.detected.size(), 1U); // one merged match, IoU = 128 / 144
  EXPECT_EQ(d.detectedReference, 2U);
  EXPECT_EQ(d.detectedPredicted, 1U);
  EXPECT_NEAR(d.detected[0].dice, 2.0 * 128 / (144 + 128), 1e-12);
  // At a stricter threshold the same match is not detected.
  EXPECT_TRUE(detectLesions(pred, ref, 0.95).detected.empty());
}

TEST(Summarise, PoolsCountsAndAveragesDetectedLesions) {
  const Size3 size{16, 16, 16};
  LabelMap ref = box(size, {}, {1, 1, 1}, {14, 14, 14}, 1);
  LabelMap lesion = box(size, {}, {4, 4, 4}, {7, 7, 7}, 2);
  for (std::size_t i = 0; i < ref.voxelCount(); ++i) {
    ref.voxels()[i] = std::max(ref.voxels()[i], lesion.voxels()[i]);
  }
  LabelMap missed = box(size, {}, {1, 1, 1}, {14, 14, 14}, 1);
  const auto s = summarise({evaluateLitsCase(ref, ref), evaluateLitsCase(missed, ref)});
  EXPECT_EQ(s.cases, 2U);
  EXPECT_DOUBLE_EQ(s.lesionDicePerCase, 0.5); // 1 (perfect) and 0 (missed)
  EXPECT_DOUBLE_EQ(s.lesionDiceGlobal, 2.0 * 64 / (64 + 128));
  EXPECT_EQ(s.lesionsDetected, 1U);
  EXPECT_DOUBLE_EQ(s.recall50, 0.5);
  EXPECT_DOUBLE_EQ(s.precision50, 1.0);
  EXPECT_DOUBLE_EQ(s.liverDicePerCase, 1.0);
  const double burden = 64.0 / (14.0 * 14 * 14);
  EXPECT_NEAR(s.burdenMaxError, burden, 1e-12);
  EXPECT_NEAR(s.burdenRmse, std::sqrt(burden * burden / 2), 1e-12);
}

} // namespace
} // namespace densa::core
