// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/dense_unet.hpp"

#include "densa/models/error.hpp"
#include "densa/models/model_info.hpp"
#include "densa/models/runtime.hpp"
#include "densa/models/torch/h_dense_unet.hpp"

#include <gtest/gtest.h>
#include <torch/utils.h>

#include <cstdint>
#include <string>
#include <vector>

namespace densa::models {
namespace {

std::int64_t countParameters(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) {
    n += p.numel();
  }
  return n;
}

// One row of the spec's shape tables: stage, channels, and the sizes at the table's input size.
struct StageRow {
  const char* stage;
  std::int64_t channels;
  std::int64_t depth; // 3D only (D = 8 column)
  std::int64_t size;  // H = W at 224 x 224
};

// methods-spec §1.5, input 224 x 224 (skip variant).
const std::vector<StageRow> kTable2d = {{"conv1", 96, 0, 112},
                                        {"pool1", 96, 0, 56},
                                        {"block1", 384, 0, 56},
                                        {"trans1", 192, 0, 28},
                                        {"block2", 768, 0, 28},
                                        {"trans2", 384, 0, 14},
                                        {"block3", 2112, 0, 14},
                                        {"trans3", 1056, 0, 7},
                                        {"block4", 2208, 0, 7},
                                        {"up0", 768, 0, 14},
                                        {"up1", 384, 0, 28},
                                        {"up2", 96, 0, 56},
                                        {"up3", 96, 0, 112},
                                        {"up4", 64, 0, 224},
                                        {"classifier", 3, 0, 224}};

// methods-spec §1.6, input 4 x 8 x 224 x 224 (D = 8 column).
const std::vector<StageRow> kTable3d = {{"conv1", 96, 4, 112},
                                        {"pool1", 96, 2, 56},
                                        {"block1", 192, 2, 56},
                                        {"trans1", 96, 2, 28},
                                        {"block2", 224, 2, 28},
                                        {"trans2", 112, 2, 14},
                                        {"block3", 496, 2, 14},
                                        {"trans3", 248, 2, 7},
                                        {"block4", 504, 2, 7},
                                        {"up0", 504, 2, 14},
                                        {"up1", 224, 2, 28},
                                        {"up2", 192, 2, 56},
                                        {"up3", 96, 4, 112},
                                        {"up4", 64, 8, 224},
                                        {"classifier", 3, 8, 224}};

class DenseUNetPaper : public ::testing::Test {
protected:
  void SetUp() override {
    setThreads(1);
    torch::manual_seed(0);
  }
};

// The real net runs on 64 x 64 (2D) / 8 x 32 x 32 (3D) to stay fast on CPU: channels must equal
// the table exactly, in-plane sizes the table's scaled by 64/224 (32/224), depths exactly.
TEST_F(DenseUNetPaper, FollowsTheShapeTableOfSection15StageByStage) {
  DenseUNet2d net(paperDenseUNet2d());
  net->eval();
  torch::NoGradGuard noGrad;
  StageOutputs stages;
  const auto out = net->forwardStages(torch::randn({1, 3, 64, 64}), stages);
  ASSERT_EQ(stages.size(), kTable2d.size());
  for (std::size_t i = 0; i < kTable2d.size(); ++i) {
    const auto& row = kTable2d[i];
    SCOPED_TRACE(row.stage);
    EXPECT_EQ(stages[i].first, row.stage);
    EXPECT_EQ(
        stages[i].second.sizes(),
        (std::vector<std::int64_t>{1, row.channels, row.size * 64 / 224, row.size * 64 / 224}));
  }
  EXPECT_EQ(out.features.size(1), 64);
}

TEST_F(DenseUNetPaper, FollowsTheShapeTableOfSection16WithTheDepthPoolingPattern) {
  DenseUNet3d net(paperDenseUNet3d());
  net->eval();
  torch::NoGradGuard noGrad;
  StageOutputs stages;
  net->forwardStages(torch::randn({1, 4, 8, 32, 32}), stages);
  ASSERT_EQ(stages.size(), kTable3d.size());
  for (std::size_t i = 0; i < kTable3d.size(); ++i) {
    const auto& row = kTable3d[i];
    SCOPED_TRACE(row.stage);
    EXPECT_EQ(stages[i].first, row.stage);
    EXPECT_EQ(stages[i].second.sizes(),
              (std::vector<std::int64_t>{
                  1, row.channels, row.depth, row.size * 32 / 224, row.size * 32 / 224}));
  }
}

// ---- parameter counts derived from the tables -------------------------------------------------
// BN (one folded BN+Scale) has 2C trainable parameters; encoder convs have no bias; decoder convs
// and 1x1 projections/classifiers have a bias.

std::int64_t denseLayer(std::int64_t c, std::int64_t k, std::int64_t kernel) {
  return 2 * c + c * 4 * k + 2 * 4 * k + 4 * k * k * kernel;
}

std::int64_t denseBlock(std::int64_t c0, int layers, std::int64_t k, std::int64_t kernel) {
  std::int64_t n = 0;
  for (int i = 0; i < layers; ++i) {
    n += denseLayer(c0 + i * k, k, kernel);
  }
  return n;
}

std::int64_t transition(std::int64_t c) {
  return 2 * c + c * (c / 2);
}

std::int64_t upConv(std::int64_t in, std::int64_t out, std::int64_t kernel) {
  return in * out * kernel + out + 2 * out;
}

// §1.5: k = 48, blocks 6-12-36-24 from 96 features; block outputs 384, 768, 2112, 2208.
std::int64_t paper2dEncoder() {
  const std::int64_t k3 = 9;
  return 3 * 96 * 49 + 2 * 96                             // conv1 7x7 + BN
         + denseBlock(96, 6, 48, k3) + transition(384)    // 384 -> 192
         + denseBlock(192, 12, 48, k3) + transition(768)  // 768 -> 384
         + denseBlock(384, 36, 48, k3) + transition(2112) // 2112 -> 1056
         + denseBlock(1056, 24, 48, k3) + 2 * 2208;       // 2208, final BN
}

std::int64_t paper2dDecoder(bool skips) {
  return (skips ? 2112 * 2208 + 2208 : 0) // 1x1 projection of box3
         + upConv(2208, 768, 9) + upConv(768, 384, 9) + upConv(384, 96, 9) + upConv(96, 96, 9) +
         upConv(96, 64, 9) + 64 * 3 + 3; // classifier
}

// §1.6: k = 32, blocks 3-4-12-8 from 96; block outputs 192, 224, 496, 504; no classifier in the
// hybrid net.
std::int64_t paper3dNoClassifier() {
  const std::int64_t k3 = 27;
  return 4 * 96 * 343 + 2 * 96 + denseBlock(96, 3, 32, k3) + transition(192) +
         denseBlock(96, 4, 32, k3) + transition(224) + denseBlock(112, 12, 32, k3) +
         transition(496) + denseBlock(248, 8, 32, k3) + 2 * 504 + upConv(504, 504, 27) +
         upConv(504, 224, 27) + upConv(224, 192, 27) + upConv(192, 96, 27) + upConv(96, 64, 27);
}

// §1.7 fusion head: 3x3x3 conv 64 -> 64 (bias), BN, 1x1x1 conv 64 -> 3 (bias).
constexpr std::int64_t kFusion = 64 * 64 * 27 + 64 + 2 * 64 + 64 * 3 + 3;

TEST_F(DenseUNetPaper, ParameterCountsEqualTheCountsDerivedFromTheTables) {
  EXPECT_EQ(paper2dEncoder() + paper2dDecoder(true), 49'527'843);
  EXPECT_EQ(paper2dEncoder() + paper2dDecoder(false), 44'862'339);
  EXPECT_EQ(paper3dNoClassifier(), 15'977'272);

  HDenseUNet net(hDenseUNetPreset("paper"));
  EXPECT_EQ(countParameters(*net->net2d()), paper2dEncoder() + paper2dDecoder(true));
  EXPECT_EQ(countParameters(*net->net3d()), paper3dNoClassifier());
  EXPECT_EQ(countParameters(*net),
            paper2dEncoder() + paper2dDecoder(true) + paper3dNoClassifier() + kFusion);
  EXPECT_EQ(countParameters(*net), 65'616'094);

  auto skipless = paperDenseUNet2d();
  skipless.skips = false;
  EXPECT_EQ(countParameters(*DenseUNet2d(skipless)), paper2dEncoder() + paper2dDecoder(false));

  // The cost walker behind `densa model info` agrees with the module and the derivation.
  const auto info = describeModel("hdenseunet", "paper").front();
  EXPECT_EQ(info.subnetworks[0].parameters, paper2dEncoder() + paper2dDecoder(true));
  EXPECT_EQ(info.subnetworks[1].parameters, paper3dNoClassifier());
  EXPECT_EQ(info.subnetworks[2].parameters, kFusion);
  EXPECT_EQ(info.parameters, 65'616'094);
}

TEST(DenseUNet, SkipLessVariantAndBilinearUpsamplingKeepTheShapes) {
  auto o = hDenseUNetPreset("tiny").net2d;
  o.skips = false;
  o.upsampling = Upsampling::Linear;
  DenseUNet2d net(o);
  const auto out = net(torch::randn({2, 3, 64, 32}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<std::int64_t>{2, 3, 64, 32}));
  EXPECT_EQ(out.features.sizes(), (std::vector<std::int64_t>{2, 8, 64, 32}));
  for (const auto& p : net->named_parameters()) {
    EXPECT_EQ(p.key().find("skip"), std::string::npos) << p.key();
  }
}

// CPU inference (eval mode, no autograd) runs in channels-last layout; the training path (autograd)
// in NCHW. Both must compute the same function: same sizes, same values up to float rounding.
TEST(DenseUNet, ChannelsLastInferenceMatchesTheTrainingLayout) {
  torch::manual_seed(7);
  auto o = hDenseUNetPreset("tiny").net2d;
  DenseUNet2d net(o);
  net->eval();
  const auto x = torch::randn({2, 3, 64, 96});
  const auto reference = net(x); // autograd on: NCHW
  DenseUNetOutput fast;
  {
    torch::NoGradGuard noGrad;
    fast = net(x);
  }
  EXPECT_TRUE(fast.logits.is_contiguous());
  EXPECT_TRUE(fast.features.is_contiguous(torch::MemoryFormat::ChannelsLast));
  ASSERT_EQ(fast.features.sizes(), reference.features.sizes());
  const double scale = reference.logits.abs().max().item<double>();
  EXPECT_LT((fast.logits - reference.logits).abs().max().item<double>(), 1e-4 * scale);
  EXPECT_LT((fast.features - reference.features).abs().max().item<double>(),
            1e-4 * reference.features.abs().max().item<double>());
}

TEST(DenseUNet, RejectsInputsTheTopologyCannotTake) {
  DenseUNet2d net2d(hDenseUNetPreset("tiny").net2d);
  EXPECT_THROW(net2d(torch::randn({1, 3, 48, 64})), ModelError);
  EXPECT_THROW(net2d(torch::randn({1, 1, 64, 64})), ModelError);
  EXPECT_THROW(net2d(torch::randn({3, 64, 64})), ModelError);
  DenseUNet3d net3d(hDenseUNetPreset("tiny").net3d);
  EXPECT_THROW(net3d(torch::randn({1, 4, 6, 32, 32})), ModelError);
  EXPECT_NO_THROW(net3d(torch::randn({1, 4, 12, 32, 32})));
  auto bad = hDenseUNetPreset("tiny").net2d;
  bad.blockLayers = {1, 1, 1};
  EXPECT_THROW(DenseUNet2d{bad}, ModelError);
}

TEST(DenseUNet, ThreeDimensionalDepthTwelveFollowsTheTableColumn) {
  DenseUNet3d net(hDenseUNetPreset("tiny").net3d);
  StageOutputs stages;
  net->forwardStages(torch::randn({1, 4, 12, 32, 32}), stages);
  // D = 12 column of §1.6: 6 after conv1, 3 from pool1 to up2, 6 after up3, 12 after up4.
  const std::vector<std::int64_t> depth{6, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 6, 12, 12};
  ASSERT_EQ(stages.size(), depth.size());
  for (std::size_t i = 0; i < depth.size(); ++i) {
    EXPECT_EQ(stages[i].second.size(2), depth[i]) << stages[i].first;
  }
}

} // namespace
} // namespace densa::models
