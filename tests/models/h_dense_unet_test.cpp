// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/h_dense_unet.hpp"

#include "densa/models/error.hpp"
#include "densa/models/torch/losses.hpp"

#include <gtest/gtest.h>
#include <torch/utils.h>

#include <cstdint>
#include <vector>

namespace densa::models {
namespace {

// volume[n][0][d] = 100 n + d everywhere in the plane.
torch::Tensor rampVolume(std::int64_t n, std::int64_t depth, std::int64_t size) {
  const auto d = torch::arange(depth, torch::kFloat).view({1, 1, depth, 1, 1});
  const auto b = torch::arange(n, torch::kFloat).view({n, 1, 1, 1, 1}) * 100;
  return (b + d).expand({n, 1, depth, size, size}).contiguous();
}

TEST(SlicesToBatch, StacksNeighboursAndDuplicatesEdgeSlices) {
  const auto batch = slicesToBatch(rampVolume(2, 5, 4), 3);
  ASSERT_EQ(batch.sizes(), (std::vector<std::int64_t>{10, 3, 4, 4}));
  const auto centre = batch.select(3, 0).select(2, 0); // [10, 3]
  const std::vector<std::vector<float>> expected = {{0, 0, 1},
                                                    {0, 1, 2},
                                                    {1, 2, 3},
                                                    {2, 3, 4},
                                                    {3, 4, 4},
                                                    {100, 100, 101},
                                                    {100, 101, 102},
                                                    {101, 102, 103},
                                                    {102, 103, 104},
                                                    {103, 104, 104}};
  for (std::int64_t row = 0; row < 10; ++row) {
    for (std::int64_t j = 0; j < 3; ++j) {
      EXPECT_EQ(centre[row][j].item<float>(),
                expected[static_cast<std::size_t>(row)][static_cast<std::size_t>(j)])
          << "row " << row << " offset " << j;
    }
  }
}

TEST(BatchToSlices, InvertsSlicesToBatchForTheCentreSlice) {
  const auto volume = torch::randn({2, 1, 4, 8, 8});
  const auto batch = slicesToBatch(volume, 3);
  const auto back = batchToSlices(batch.narrow(1, 1, 1), 2, 4);
  EXPECT_TRUE(torch::equal(back, volume));
  EXPECT_THROW((void)batchToSlices(batch, 3, 4), ModelError);
  EXPECT_THROW((void)slicesToBatch(torch::randn({1, 4, 8, 8}), 3), ModelError);
}

class HDenseUNetTiny : public ::testing::Test {
protected:
  void SetUp() override { torch::manual_seed(7); }

  HDenseUNet net{hDenseUNetPreset("tiny")};
};

TEST_F(HDenseUNetTiny, ProducesFusedAnd2dLogitsForAWindow) {
  const auto out = net(torch::randn({2, 1, 8, 32, 64}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<std::int64_t>{2, 3, 8, 32, 64}));
  EXPECT_EQ(out.logits2d.sizes(), (std::vector<std::int64_t>{2, 3, 8, 32, 64}));
  const auto only2d = net->forward2d(torch::randn({5, 3, 32, 32}));
  EXPECT_EQ(only2d.logits.sizes(), (std::vector<std::int64_t>{5, 3, 32, 32}));
  EXPECT_THROW(net(torch::randn({1, 1, 6, 32, 32})), ModelError);
  EXPECT_THROW(net(torch::randn({1, 2, 8, 32, 32})), ModelError);
}

// The forward pass equals the composition of §1.7 written out by hand: 250 x raw logits as the
// auto-context, sum of features, conv -> (dropout) -> BN -> ReLU -> 1x1x1 conv.
TEST_F(HDenseUNetTiny, MatchesTheHybridFeatureFusionFormula) {
  net->eval();
  torch::NoGradGuard noGrad;
  const auto volume = torch::randn({1, 1, 8, 32, 32}) * 100;
  const auto out = net(volume);

  const auto o2d = net->net2d()(slicesToBatch(volume, 3));
  const auto x2d = batchToSlices(o2d.features, 1, 8);
  const auto y2d = batchToSlices(o2d.logits, 1, 8);
  const auto x3d = net->net3d()(torch::cat({volume, 250.0 * y2d}, 1)).features;
  auto modules = net->named_children();
  auto z = modules["fusion_conv"]->as<torch::nn::Conv3d>()->forward(x3d + x2d);
  z = torch::relu(modules["fusion_norm"]->as<torch::nn::BatchNorm3d>()->forward(z));
  const auto expected = modules["classifier"]->as<torch::nn::Conv3d>()->forward(z);
  // Inference folds the BatchNorms into the convolutions: equal up to float rounding.
  const double scale = expected.abs().max().item<double>();
  EXPECT_LT((out.logits - expected).abs().max().item<double>(), 1e-5 * scale);
  EXPECT_TRUE(torch::equal(out.logits2d, y2d));
  // Softmax probabilities instead of 250 x logits give the 3D branch another input: compare its
  // first (linear) layer, which an untrained net's later ReLUs cannot hide.
  auto conv0 = net->net3d()->named_children()["conv0"]->as<torch::nn::Conv3d>();
  const auto right = conv0->forward(torch::cat({volume, 250.0 * y2d}, 1));
  const auto wrong = conv0->forward(torch::cat({volume, torch::softmax(y2d, 1)}, 1));
  EXPECT_FALSE(torch::allclose(wrong, right));
}

TEST_F(HDenseUNetTiny, GradientsReachEveryTrainableParameter) {
  net->train();
  const auto volume = torch::randn({1, 1, 8, 32, 32});
  const auto target = torch::randint(0, 3, {1, 8, 32, 32}, torch::kLong);
  WeightedCrossEntropyOptions ce;
  ce.excludeEdgeSlices = true;
  const auto out = net(volume);
  (weightedCrossEntropy(out.logits, target, ce) + weightedCrossEntropy(out.logits2d, target))
      .backward();
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST_F(HDenseUNetTiny, FrozenTwoDimensionalBranchGetsNoGradientAndStaysInEvalMode) {
  net->freeze2d();
  net->train();
  EXPECT_FALSE(net->net2d()->is_training());
  EXPECT_TRUE(net->net3d()->is_training());
  const auto out = net(torch::randn({1, 1, 4, 64, 64}));
  out.logits.sum().backward();
  for (const auto& p : net->net2d()->parameters()) {
    EXPECT_FALSE(p.grad().defined());
  }
  for (const auto& p : net->net3d()->parameters()) {
    EXPECT_TRUE(p.grad().defined());
  }
  net->freeze2d(false);
  EXPECT_TRUE(net->net2d()->is_training());
}

TEST_F(HDenseUNetTiny, EvalModeIsDeterministic) {
  net->eval();
  torch::NoGradGuard noGrad;
  const auto volume = torch::randn({1, 1, 8, 32, 32});
  const auto a = net(volume).logits;
  const auto b = net(volume).logits;
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(CoarseLiverNet, GivesTwoClassLogitsAtInputResolution) {
  CoarseLiverNet net(coarseLiverPreset("tiny"));
  const auto y = net(torch::randn({2, 3, 64, 64}));
  EXPECT_EQ(y.sizes(), (std::vector<std::int64_t>{2, 2, 64, 64}));
  EXPECT_THROW(net(torch::randn({2, 3, 32, 32})), ModelError);
}

} // namespace
} // namespace densa::models
