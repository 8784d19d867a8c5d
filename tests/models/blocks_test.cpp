// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/blocks.hpp"

#include "densa/models/error.hpp"

#include <gtest/gtest.h>
#include <torch/utils.h>

namespace densa::models {
namespace {

TEST(DenseLayer, ConcatenatesGrowthRateChannels) {
  torch::manual_seed(1);
  DenseLayer<2> layer2(10, 4, 16, NormSettings{});
  EXPECT_EQ(layer2(torch::randn({2, 10, 8, 8})).sizes(), (std::vector<std::int64_t>{2, 14, 8, 8}));
  DenseLayer<3> layer3(10, 4, 16, NormSettings{});
  EXPECT_EQ(layer3(torch::randn({1, 10, 4, 8, 8})).sizes(),
            (std::vector<std::int64_t>{1, 14, 4, 8, 8}));
}

TEST(DenseLayer, KeepsTheInputAsTheFirstChannels) {
  DenseLayer<2> layer(6, 3, 12, NormSettings{});
  const auto x = torch::randn({1, 6, 4, 4});
  EXPECT_TRUE(torch::equal(layer(x).narrow(1, 0, 6), x));
}

TEST(DenseLayer, UsesCaffeBnEpsilonAndNoConvBias) {
  DenseLayer<2> layer(8, 4, 16, NormSettings{1.1e-5, 0.01});
  int norms = 0;
  for (const auto& m : layer->named_modules()) {
    if (const auto* bn = m.value()->as<torch::nn::BatchNorm2d>()) {
      EXPECT_DOUBLE_EQ(bn->options.eps(), 1.1e-5);
      EXPECT_DOUBLE_EQ(bn->options.momentum().value(), 0.01);
      ++norms;
    }
    if (const auto* conv = m.value()->as<torch::nn::Conv2d>()) {
      EXPECT_FALSE(conv->bias.defined());
    }
  }
  EXPECT_EQ(norms, 2);
}

TEST(DenseBlock, GrowsByLayersTimesGrowthRate) {
  DenseBlock<2> block(96, 6, 48, 192, NormSettings{});
  EXPECT_EQ(block->outChannels(), 384);
  DenseBlock<3> block3(8, 3, 4, 16, NormSettings{});
  EXPECT_EQ(block3(torch::randn({1, 8, 2, 4, 4})).size(1), 20);
}

TEST(Transition, HalvesPlaneAndKeepsDepthIn3d) {
  Transition<2> t2(20, 10, NormSettings{});
  EXPECT_EQ(t2(torch::randn({1, 20, 8, 8})).sizes(), (std::vector<std::int64_t>{1, 10, 4, 4}));
  Transition<3> t3(20, 10, NormSettings{});
  EXPECT_EQ(t3(torch::randn({1, 20, 3, 8, 8})).sizes(),
            (std::vector<std::int64_t>{1, 10, 3, 4, 4}));
}

TEST(UpBlock, UpsamplesAddsTheSkipAndConvolves) {
  UpBlockSettings s;
  s.inChannels = 12;
  s.outChannels = 5;
  s.skipChannels = 7; // != inChannels: a 1x1 projection is created
  UpBlock<2> up(s);
  const auto y = up(torch::randn({1, 12, 4, 4}), torch::randn({1, 7, 8, 8}));
  EXPECT_EQ(y.sizes(), (std::vector<std::int64_t>{1, 5, 8, 8}));
  EXPECT_TRUE((y >= 0).all().item<bool>());     // ends with ReLU
  EXPECT_EQ(up->named_parameters().size(), 6U); // skip.{w,b}, conv.{w,b}, norm.{w,b}
  EXPECT_THROW(up(torch::randn({1, 12, 4, 4}), torch::randn({1, 7, 6, 6})), ModelError);
}

TEST(UpBlock, ScalesDepthOnlyWhenAsked) {
  UpBlockSettings s;
  s.inChannels = 4;
  s.outChannels = 4;
  s.depthScale = 1;
  UpBlock<3> keep(s);
  EXPECT_EQ(keep(torch::randn({1, 4, 2, 4, 4})).sizes(),
            (std::vector<std::int64_t>{1, 4, 2, 8, 8}));
  s.depthScale = 2;
  s.upsampling = Upsampling::Linear;
  UpBlock<3> grow(s);
  EXPECT_EQ(grow(torch::randn({1, 4, 2, 4, 4})).sizes(),
            (std::vector<std::int64_t>{1, 4, 4, 8, 8}));
}

TEST(UpBlock, InitialisesDecoderConvolutionsPerReference) {
  torch::manual_seed(3);
  UpBlockSettings s;
  s.inChannels = 64;
  s.outChannels = 64;
  s.init = DecoderInit::Normal005;
  UpBlock<2> normal(s);
  const auto w = normal->named_parameters()["conv.weight"];
  EXPECT_NEAR(w.std().item<double>(), 0.05, 0.002);
  EXPECT_EQ(normal->named_parameters()["conv.bias"].abs().max().item<double>(), 0.0);
  s.init = DecoderInit::GlorotUniform;
  UpBlock<3> glorot(s);
  const double limit = std::sqrt(6.0 / (64.0 * 27 + 64.0 * 27));
  const auto g = glorot->named_parameters()["conv.weight"];
  EXPECT_LE(g.abs().max().item<double>(), limit);
  EXPECT_GT(g.abs().max().item<double>(), 0.95 * limit);
}

TEST(Upsample, NearestRepeatsPixels) {
  const auto x = torch::arange(4, torch::kFloat).view({1, 1, 2, 2});
  const auto y = upsample(x, {2, 2}, Upsampling::Nearest);
  EXPECT_EQ(y[0][0][0][1].item<float>(), 0.0F);
  EXPECT_EQ(y[0][0][3][3].item<float>(), 3.0F);
  EXPECT_EQ(y[0][0][1][2].item<float>(), 1.0F);
}

} // namespace
} // namespace densa::models
