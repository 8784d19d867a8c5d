// SPDX-License-Identifier: Apache-2.0
// The inference fast paths (models/torch_include/densa/models/torch/inference.hpp) against the
// plain module graph, which eval mode takes whenever autograd is on.
#include "densa/models/torch/inference.hpp"

#include "densa/models/model_options.hpp"
#include "densa/models/torch/blocks.hpp"
#include "densa/models/torch/h_dense_unet.hpp"

#include <gtest/gtest.h>
#include <torch/utils.h>

#include <limits>
#include <string>
#include <vector>

namespace densa::models {
namespace {

double relativeError(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1e-12, b.abs().max().item<double>());
}

// Non-trivial BatchNorm statistics and affine parameters, so that folding them matters.
void randomiseNorms(torch::nn::Module& module) {
  torch::NoGradGuard noGrad;
  for (auto& item : module.named_buffers()) {
    if (item.key().find("running_mean") != std::string::npos) {
      item.value().uniform_(-0.5, 0.5);
    } else if (item.key().find("running_var") != std::string::npos) {
      item.value().uniform_(0.5, 2.0);
    }
  }
  for (auto& item : module.named_parameters()) {
    if (item.key().find("norm") != std::string::npos) {
      item.value().uniform_(item.key().find("weight") != std::string::npos ? 0.5 : -0.3,
                            item.key().find("weight") != std::string::npos ? 1.5 : 0.3);
    }
  }
}

HDenseUNetOptions twoLayerBlocks() {
  auto o = hDenseUNetPreset("tiny");
  o.net2d.blockLayers = {2, 3, 2, 2};
  o.net3d.blockLayers = {2, 2, 3, 2};
  return o;
}

TEST(Inference, FastPathMatchesTheModuleGraphIn2DAnd3D) {
  torch::manual_seed(3);
  HDenseUNet net(twoLayerBlocks());
  randomiseNorms(*net);
  net->eval();
  const auto volume = torch::randn({1, 1, 8, 64, 96});
  const auto reference = net(volume); // autograd on: the module graph
  HDenseUNetOutput fast;
  {
    torch::NoGradGuard noGrad;
    fast = net(volume);
  }
  ASSERT_EQ(fast.logits.sizes(), reference.logits.sizes());
  EXPECT_LT(relativeError(fast.logits2d, reference.logits2d.detach()), 1e-4);
  EXPECT_LT(relativeError(fast.logits, reference.logits.detach()), 1e-4);
}

// convolve() derives the padding from the kernel size (k/2): true of every convolution of the nets.
TEST(Inference, ConvolveMatchesEveryConvolutionModule) {
  torch::manual_seed(8);
  HDenseUNet net(twoLayerBlocks());
  torch::NoGradGuard noGrad;
  int checked = 0;
  for (const auto& item : net->named_modules()) {
    if (auto* conv2 = item.value()->as<torch::nn::Conv2d>()) {
      torch::nn::Conv2d holder(std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(item.value()));
      const auto x = torch::randn({2, conv2->weight.size(1), 16, 16});
      EXPECT_TRUE(torch::allclose(convolve<2>(holder, x), conv2->forward(x), 1e-4, 1e-5))
          << item.key();
      ++checked;
    } else if (auto* conv3 = item.value()->as<torch::nn::Conv3d>()) {
      torch::nn::Conv3d holder(std::dynamic_pointer_cast<torch::nn::Conv3dImpl>(item.value()));
      const auto x = torch::randn({1, conv3->weight.size(1), 4, 16, 16});
      EXPECT_TRUE(torch::allclose(convolve<3>(holder, x), conv3->forward(x), 1e-4, 1e-5))
          << item.key();
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
}

TEST(Inference, FoldedWeightsFollowInPlaceUpdatesAndReplacedTensors) {
  torch::manual_seed(4);
  auto o = twoLayerBlocks().net3d;
  DenseUNet3d net(o);
  randomiseNorms(*net);
  net->eval();
  const auto x = torch::randn({1, 4, 8, 32, 32});
  torch::NoGradGuard noGrad;
  const auto before = net(x).features.clone();
  EXPECT_TRUE(torch::equal(net(x).features, before)); // cached: same result
  // An in-place change (what an optimizer step or a checkpoint load does) must be seen.
  for (auto& item : net->named_buffers()) {
    if (item.key().find("running_var") != std::string::npos) {
      item.value().mul_(1.7);
    }
  }
  const auto fast = net(x).features;
  EXPECT_GT(relativeError(fast, before), 1e-3);
  torch::Tensor reference;
  {
    torch::AutoGradMode grad(true);
    reference = net(x).features.detach();
  }
  EXPECT_LT(relativeError(fast, reference), 1e-4);
  // A train-mode forward updates the running statistics in place without bumping their version
  // counters (num_batches_tracked does).
  const auto beforeTraining = net(x).features.clone();
  net->train();
  {
    torch::AutoGradMode grad(true);
    (void)net(x * 3.0 + 1.0);
  }
  net->eval();
  {
    torch::AutoGradMode grad(true);
    reference = net(x).features.detach();
  }
  EXPECT_GT(relativeError(reference, beforeTraining), 1e-3);
  EXPECT_LT(relativeError(net(x).features, reference), 1e-4);
  // A replaced parameter tensor too.
  for (auto& item : net->named_parameters()) {
    if (item.key().find("conv") != std::string::npos) {
      item.value().set_data(item.value() * 0.5);
    }
  }
  {
    torch::AutoGradMode grad(true);
    reference = net(x).features.detach();
  }
  EXPECT_LT(relativeError(net(x).features, reference), 1e-4);
}

TEST(Inference, BnReluHandlesPlanarChannelsLastAndOtherLayouts) {
  torch::manual_seed(5);
  const ChannelAffine affine{torch::rand({6}) + 0.5, torch::randn({6})};
  const auto expected = [&](const torch::Tensor& x) {
    return (x * affine.scale.view({1, 6, 1, 1}) + affine.shift.view({1, 6, 1, 1})).relu();
  };
  // Planar, also the first channels of a larger [1, C, H, W] buffer.
  const auto planar = torch::randn({1, 9, 5, 7});
  EXPECT_TRUE(
      torch::allclose(bnRelu(planar.narrow(1, 0, 6), affine), expected(planar.narrow(1, 0, 6))));
  // Channels-last, batch 2, first channels of a wider buffer (pixel stride 9).
  const auto cl = torch::randn({2, 9, 5, 7}).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto out = bnRelu(cl.narrow(1, 0, 6), affine);
  EXPECT_TRUE(out.is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::allclose(out, expected(cl.narrow(1, 0, 6))));
  // Anything else (here H and W transposed) takes the generic ops.
  const auto odd = torch::randn({2, 6, 7, 5}).transpose(2, 3);
  EXPECT_TRUE(torch::allclose(bnRelu(odd, affine), expected(odd)));
  // 3D planar, batch 2 (batches a whole buffer apart).
  const auto planar3d = torch::randn({2, 8, 3, 4, 5});
  const auto expected3d = (planar3d.narrow(1, 0, 6) * affine.scale.view({1, 6, 1, 1, 1}) +
                           affine.shift.view({1, 6, 1, 1, 1}))
                              .relu();
  EXPECT_TRUE(torch::allclose(bnRelu(planar3d.narrow(1, 0, 6), affine), expected3d));
  // bfloat16 (`--precision bf16`), planar and channels-last: computed in float, rounded once.
  for (const auto& x : {planar.narrow(1, 0, 6), cl.narrow(1, 0, 6)}) {
    const auto xb = x.to(torch::kBFloat16);
    const auto yb = bnRelu(xb, affine);
    EXPECT_EQ(yb.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(yb.suggest_memory_format(), xb.suggest_memory_format());
    const auto exact = expected(xb.to(torch::kFloat));
    EXPECT_TRUE(torch::equal(yb, exact.to(torch::kBFloat16)));
  }
  // NaN stays NaN, in both types.
  auto withNan = torch::randn({1, 6, 2, 2});
  withNan[0][1][1][0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(bnRelu(withNan, affine)[0][1][1][0].isnan().item<bool>());
  EXPECT_TRUE(bnRelu(withNan.to(torch::kBFloat16), affine)[0][1][1][0].isnan().item<bool>());
}

TEST(Inference, UpsampleAddEqualsUpsampleThenAdd) {
  torch::manual_seed(6);
  const auto x = torch::randn({2, 5, 4, 6}).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto skip = torch::randn({2, 5, 8, 12}).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto sum = upsampleAdd(x, {2, 2}, Upsampling::Nearest, skip);
  EXPECT_TRUE(torch::equal(sum, upsample(x, {2, 2}, Upsampling::Nearest) + skip));
  EXPECT_TRUE(sum.is_contiguous(torch::MemoryFormat::ChannelsLast));
  const auto x3 = torch::randn({1, 3, 2, 4, 4});
  const auto skip3 = torch::randn({1, 3, 2, 8, 8});
  EXPECT_TRUE(torch::equal(upsampleAdd(x3, {1, 2, 2}, Upsampling::Nearest, skip3),
                           upsample(x3, {1, 2, 2}, Upsampling::Nearest) + skip3));
  EXPECT_TRUE(torch::allclose(upsampleAdd(x3, {1, 2, 2}, Upsampling::Linear, skip3),
                              upsample(x3, {1, 2, 2}, Upsampling::Linear) + skip3));
  EXPECT_THROW((void)upsampleAdd(x3, {2, 2, 2}, Upsampling::Nearest, skip3), std::exception);
}

} // namespace
} // namespace densa::models
