// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/losses.hpp"

#include "densa/models/error.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace densa::models {
namespace {

TEST(WeightedCrossEntropy, IsAPlainMeanOfWeightedLogLikelihoods) {
  // Uniform logits: every voxel has p = 1/3, so L = mean(w[y]) * log 3 (not divided by sum w).
  const auto logits = torch::zeros({1, 3, 2, 2});
  const auto target = torch::tensor({0, 1, 2, 2}, torch::kLong).view({1, 2, 2});
  const double expected = (0.78 + 0.65 + 8.57 + 8.57) / 4.0 * std::log(3.0);
  EXPECT_NEAR(weightedCrossEntropy(logits, target).item<double>(), expected, 1e-6);
}

TEST(WeightedCrossEntropy, MatchesTheReferenceFormulaVoxelByVoxel) {
  torch::manual_seed(5);
  const auto logits = torch::randn({2, 3, 4, 5}, torch::kDouble);
  const auto target = torch::randint(0, 3, {2, 4, 5}, torch::kLong);
  const auto p = torch::softmax(logits, 1).clamp(1e-10, 1.0);
  const auto w = torch::tensor({0.78, 0.65, 8.57}, torch::kDouble);
  const auto manual =
      -(w.index_select(0, target.flatten()) * p.gather(1, target.unsqueeze(1)).flatten().log())
           .sum() /
      target.numel();
  EXPECT_NEAR(weightedCrossEntropy(logits, target).item<double>(), manual.item<double>(), 1e-9);
}

TEST(WeightedCrossEntropy, ClipsProbabilitiesAtOneInTenBillion) {
  auto logits = torch::zeros({1, 3, 1, 1});
  logits[0][0][0][0] = 1000.0F; // p(tumour) underflows to 0
  const auto target = torch::full({1, 1, 1}, 2, torch::kLong);
  EXPECT_NEAR(weightedCrossEntropy(logits, target).item<double>(), -8.57 * std::log(1e-10), 1e-3);
}

TEST(WeightedCrossEntropy, ExcludesTheEdgeSlicesInHybridStages) {
  torch::manual_seed(2);
  auto logits = torch::randn({1, 3, 8, 4, 4});
  const auto target = torch::randint(0, 3, {1, 8, 4, 4}, torch::kLong);
  WeightedCrossEntropyOptions o;
  o.excludeEdgeSlices = true;
  const double inner = weightedCrossEntropy(logits, target, o).item<double>();
  EXPECT_NEAR(inner,
              weightedCrossEntropy(logits.narrow(2, 1, 6), target.narrow(1, 1, 6)).item<double>(),
              1e-6);
  logits.select(2, 0).fill_(50.0F);
  logits.select(2, 7).fill_(-50.0F);
  EXPECT_NEAR(weightedCrossEntropy(logits, target, o).item<double>(), inner, 1e-6);
  EXPECT_THROW((void)weightedCrossEntropy(
                   torch::randn({1, 3, 4, 4}), torch::zeros({1, 4, 4}, torch::kLong), o),
               ModelError);
}

TEST(WeightedCrossEntropy, RejectsMismatchedInputs) {
  EXPECT_THROW(
      (void)weightedCrossEntropy(torch::randn({1, 3, 4, 4}), torch::zeros({1, 4, 5}, torch::kLong)),
      ModelError);
  EXPECT_THROW(
      (void)weightedCrossEntropy(torch::randn({1, 2, 4, 4}), torch::zeros({1, 4, 4}, torch::kLong)),
      ModelError);
  EXPECT_THROW((void)weightedCrossEntropy(torch::randn({1, 3, 4, 4}), torch::zeros({1, 4, 4})),
               ModelError);
}

TEST(SoftDice, IsNearZeroForAPerfectPredictionAndNearOneForAWrongOne) {
  const auto target = torch::randint(0, 3, {1, 16, 16}, torch::kLong);
  const auto perfect = torch::one_hot(target, 3).permute({0, 3, 1, 2}).to(torch::kFloat) * 100.0;
  EXPECT_LT(softDice(perfect, target).item<double>(), 1e-3);
  const auto wrong =
      torch::one_hot((target + 1) % 3, 3).permute({0, 3, 1, 2}).to(torch::kFloat) * 100.0;
  EXPECT_GT(softDice(wrong, target).item<double>(), 0.99);
}

TEST(SegmentationLoss, IsTheWeightedSum) {
  torch::manual_seed(4);
  const auto logits = torch::randn({1, 3, 8, 8});
  const auto target = torch::randint(0, 3, {1, 8, 8}, torch::kLong);
  SegmentationLossOptions o;
  o.crossEntropyWeight = 0.5;
  o.diceWeight = 2.0;
  const double expected = 0.5 * weightedCrossEntropy(logits, target).item<double>() +
                          2.0 * softDice(logits, target).item<double>();
  EXPECT_NEAR(segmentationLoss(logits, target, o).item<double>(), expected, 1e-6);
  EXPECT_NEAR(segmentationLoss(logits, target).item<double>(),
              weightedCrossEntropy(logits, target).item<double>(),
              1e-7);
}

} // namespace
} // namespace densa::models
