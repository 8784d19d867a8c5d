// SPDX-License-Identifier: Apache-2.0
// Direct oneDNN convolutions and poolings (models/src/blocks/onednn_conv.hpp) against LibTorch's
// own operators, on the layouts and shapes the nets use.
#include "blocks/onednn_conv.hpp"

#include "densa/models/model_options.hpp"
#include "densa/models/torch/blocks.hpp"
#include "densa/models/torch/h_dense_unet.hpp"
#include "densa/models/torch/inference.hpp"

#include <gtest/gtest.h>
#include <torch/nn/functional/conv.h>
#include <torch/nn/functional/pooling.h>
#include <torch/utils.h>

#include <string>
#include <vector>

namespace densa::models {
namespace {

using detail::directConvolution;
using detail::directPooling;
using detail::Pooling;

#define REQUIRE_DIRECT_ONEDNN()                                                                    \
  if (!detail::directOneDnn()) {                                                                   \
    GTEST_SKIP() << "built without direct oneDNN calls (needs libdnnl-dev and a LibTorch that "    \
                    "links the system oneDNN)";                                                    \
  }

double relativeError(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1e-12, b.abs().max().item<double>());
}

torch::MemoryFormat channelsLastOf(std::int64_t dim) {
  return dim == 4 ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::ChannelsLast3d;
}

// LibTorch's reference: conv, bias, optional ReLU.
torch::Tensor reference(const torch::Tensor& x,
                        const torch::Tensor& w,
                        const torch::Tensor& b,
                        std::int64_t stride,
                        bool relu) {
  const auto xc = x.contiguous();
  const auto padding = w.size(2) / 2;
  auto y = x.dim() == 4 ? torch::conv2d(xc, w, b, stride, padding)
                        : torch::conv3d(xc, w, b, stride, padding);
  return relu ? y.relu() : y;
}

struct ConvCase {
  std::vector<std::int64_t> input; // N, C, spatial...
  std::int64_t outChannels;
  std::int64_t kernel;
  std::int64_t stride;
  bool bias;
  bool relu;
};

TEST(DirectConvolution, MatchesLibTorchOnTheNetsShapesIn2DAnd3D) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(1);
  torch::NoGradGuard noGrad;
  const std::vector<ConvCase> cases = {
      {{2, 3, 40, 36}, 16, 7, 2, false, true},     // 2D stem
      {{2, 40, 20, 18}, 32, 1, 1, false, true},    // bottleneck 1x1 (+ folded BN, ReLU)
      {{2, 32, 20, 18}, 8, 3, 1, false, false},    // dense-layer 3x3
      {{1, 24, 12, 10}, 24, 3, 1, true, true},     // decoder 3x3 with bias
      {{1, 4, 8, 24, 20}, 16, 7, 2, false, true},  // 3D stem
      {{1, 16, 4, 12, 10}, 8, 3, 1, false, false}, // 3D dense-layer 3x3x3
      {{1, 20, 4, 12, 10}, 3, 1, 1, true, false}}; // 3D classifier
  for (const auto& c : cases) {
    const auto dim = static_cast<std::int64_t>(c.input.size());
    std::vector<std::int64_t> wshape{c.outChannels, c.input[1]};
    wshape.insert(wshape.end(), static_cast<std::size_t>(dim - 2), c.kernel);
    const auto x = torch::randn(c.input).contiguous(channelsLastOf(dim));
    const auto w = torch::randn(wshape) * 0.1;
    const auto b = c.bias ? torch::randn({c.outChannels}) : torch::Tensor();
    const std::vector<std::int64_t> stride(static_cast<std::size_t>(dim - 2), c.stride);
    const std::vector<std::int64_t> padding(static_cast<std::size_t>(dim - 2), c.kernel / 2);
    const std::vector<std::int64_t> dilation(static_cast<std::size_t>(dim - 2), 1);
    const auto y = directConvolution(x, w, b, stride, padding, dilation, 1, c.relu);
    ASSERT_TRUE(y.defined()) << "input " << x.sizes() << " kernel " << c.kernel;
    EXPECT_TRUE(y.is_contiguous(channelsLastOf(dim)));
    const auto expected = reference(x, w, b, c.stride, c.relu);
    ASSERT_EQ(y.sizes(), expected.sizes());
    EXPECT_LT(relativeError(y, expected), 1e-5) << "input " << x.sizes() << " kernel " << c.kernel;
  }
}

// A dense layer reads a channel slice of its block's buffer: channels-last with a pixel stride
// larger than its channel count.
TEST(DirectConvolution, ReadsAChannelSliceOfAWiderBuffer) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(2);
  torch::NoGradGuard noGrad;
  const auto buffer = torch::randn({2, 48, 14, 12}).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto x = buffer.narrow(1, 0, 32);
  ASSERT_FALSE(x.is_contiguous(torch::MemoryFormat::ChannelsLast));
  const auto w = torch::randn({16, 32, 1, 1});
  const auto y = directConvolution(x, w, {}, {1, 1}, {0, 0}, {1, 1}, 1, false);
  ASSERT_TRUE(y.defined());
  EXPECT_LT(relativeError(y, reference(x, w, {}, 1, false)), 1e-5);
}

TEST(DirectConvolution, WinogradForWide3x3LayersAgreesWithTheDirectKernel) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(3);
  torch::NoGradGuard noGrad;
  // The paper net's decoder shape class (wide 3x3 layers on maps of 14x14 and more): Winograd is
  // chosen.
  const auto x = torch::randn({1, 512, 16, 16}).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto w = torch::randn({256, 512, 3, 3}) * 0.05;
  const auto b = torch::randn({256});
  const auto expected = reference(x, w, b, 1, true);
  const auto before = detail::directConvolutionStats();
  const auto wino = directConvolution(x, w, b, {1, 1}, {1, 1}, {1, 1}, 1, true);
  ASSERT_TRUE(wino.defined());
  if (detail::directConvolutionStats().winogradCalls == before.winogradCalls) {
    GTEST_SKIP() << "oneDNN has no float Winograd kernel for this CPU (it has one for AVX-512)";
  }
  EXPECT_EQ(detail::directConvolutionStats().winogradCalls, before.winogradCalls + 1);
  EXPECT_LT(relativeError(wino, expected), 1e-4);
  detail::setDirectWinograd(false);
  const auto direct = directConvolution(x, w, b, {1, 1}, {1, 1}, {1, 1}, 1, true);
  detail::setDirectWinograd(true);
  ASSERT_TRUE(direct.defined());
  EXPECT_EQ(detail::directConvolutionStats().winogradCalls, before.winogradCalls + 1);
  EXPECT_LT(relativeError(direct, expected), 1e-5);
}

// Wide 3x3x3 layers on large slices (the 3D decoder's last layer and the fusion layer) run as a
// 2D Winograd convolution per kernel plane along depth, summed with the depth neighbours: edge
// slices (zero padding in depth), bands of rows with their halo rows (one band, and three of
// which the last is shorter), a batch of two, bias or none, ReLU or none.
TEST(DirectConvolution, DepthSplitWinogradAgreesWithLibTorchIn3D) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(5);
  torch::NoGradGuard noGrad;

  struct Case {
    std::vector<std::int64_t> input;
    std::int64_t outChannels;
    bool bias;
    bool relu;
    std::int64_t bandBytes;
  };

  constexpr std::int64_t kDefaultBand = std::int64_t{32} << 20; // one band for 64x64 slices
  // 5 slices x 3*48 planes x 72 columns x 4 bytes = 207 KiB per row: 12-row bands of 68 rows are
  // 6 bands, the last of 8 rows.
  const std::vector<Case> cases = {{{1, 32, 4, 64, 64}, 32, true, true, kDefaultBand},
                                   {{2, 32, 5, 68, 72}, 48, false, false, 12 * 207360},
                                   {{1, 48, 8, 66, 64}, 32, true, false, 40 * 8 * 96 * 64 * 4}};
  for (const auto& c : cases) {
    detail::setDepthWinogradBandBytes(c.bandBytes);
    const auto x = torch::randn(c.input).contiguous(torch::MemoryFormat::ChannelsLast3d);
    const auto w = torch::randn({c.outChannels, c.input[1], 3, 3, 3}) * 0.05;
    const auto b = c.bias ? torch::randn({c.outChannels}) : torch::Tensor();
    const auto expected = reference(x, w, b, 1, c.relu);
    const auto before = detail::directConvolutionStats();
    const auto y = directConvolution(x, w, b, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, c.relu);
    detail::setDepthWinogradBandBytes(kDefaultBand);
    ASSERT_TRUE(y.defined()) << "input " << x.sizes();
    if (detail::directConvolutionStats().depthWinogradCalls == before.depthWinogradCalls) {
      GTEST_SKIP() << "oneDNN has no float Winograd kernel for this CPU (it has one for AVX-512)";
    }
    EXPECT_TRUE(y.is_contiguous(torch::MemoryFormat::ChannelsLast3d));
    ASSERT_EQ(y.sizes(), expected.sizes());
    EXPECT_LT(relativeError(y, expected), 1e-4) << "input " << x.sizes();
    if (c.relu) {
      EXPECT_GE(y.min().item<float>(), 0.0F);
    }
  }
  // Off with the Winograd switch; a narrow (16-channel) layer never takes it.
  const auto x = torch::randn({1, 32, 4, 64, 64}).contiguous(torch::MemoryFormat::ChannelsLast3d);
  const auto w = torch::randn({32, 32, 3, 3, 3}) * 0.05;
  const auto narrow = torch::randn({16, 32, 3, 3, 3}) * 0.05;
  const auto before = detail::directConvolutionStats();
  detail::setDirectWinograd(false);
  const auto direct = directConvolution(x, w, {}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, false);
  detail::setDirectWinograd(true);
  const auto narrowOut =
      directConvolution(x, narrow, {}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, false);
  ASSERT_TRUE(direct.defined() && narrowOut.defined());
  EXPECT_EQ(detail::directConvolutionStats().depthWinogradCalls, before.depthWinogradCalls);
  EXPECT_LT(relativeError(direct, reference(x, w, {}, 1, false)), 1e-5);
  EXPECT_LT(relativeError(narrowOut, reference(x, narrow, {}, 1, false)), 1e-5);
}

TEST(DirectConvolution, RelaidOutWeightsFollowInPlaceUpdatesAndNewTensors) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(4);
  torch::NoGradGuard noGrad;
  const auto x = torch::randn({1, 16, 10, 10}).contiguous(torch::MemoryFormat::ChannelsLast);
  auto w = torch::randn({16, 16, 3, 3});
  const auto first = directConvolution(x, w, {}, {1, 1}, {1, 1}, {1, 1}, 1, false);
  w.mul_(2.0); // in place: a new version of the same storage
  const auto second = directConvolution(x, w, {}, {1, 1}, {1, 1}, {1, 1}, 1, false);
  ASSERT_TRUE(first.defined() && second.defined());
  EXPECT_LT(relativeError(second, first * 2.0), 1e-5);
  const auto other = torch::randn({16, 16, 3, 3});
  EXPECT_LT(relativeError(directConvolution(x, other, {}, {1, 1}, {1, 1}, {1, 1}, 1, false),
                          reference(x, other, {}, 1, false)),
            1e-5);
}

// One re-laid-out copy per weight and kernel layout, whatever the input sizes (a liver box differs
// per case); it is released with the last primitive that uses it.
TEST(DirectConvolution, InputSizesShareOneRelaidOutWeight) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(9);
  torch::NoGradGuard noGrad;
  const auto w = torch::randn({32, 64, 1, 1});
  const auto a = torch::randn({2, 64, 20, 20}).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto b = torch::randn({2, 64, 24, 28}).contiguous(torch::MemoryFormat::ChannelsLast);
  ASSERT_TRUE(directConvolution(a, w, {}, {1, 1}, {0, 0}, {1, 1}, 1, false).defined());
  const auto afterFirst = detail::directConvolutionStats();
  const auto y = directConvolution(b, w, {}, {1, 1}, {0, 0}, {1, 1}, 1, false);
  ASSERT_TRUE(y.defined());
  const auto afterSecond = detail::directConvolutionStats();
  EXPECT_EQ(afterSecond.built, afterFirst.built + 1);         // a primitive per input size
  EXPECT_EQ(afterSecond.weightBytes, afterFirst.weightBytes); // one weight copy
  EXPECT_LT(relativeError(y, reference(b, w, {}, 1, false)), 1e-5);
}

TEST(DirectConvolution, LeavesEverythingElseToLibTorch) {
  REQUIRE_DIRECT_ONEDNN();
  const auto w = torch::randn({8, 8, 3, 3});
  const std::vector<std::int64_t> one{1, 1};
  {
    torch::NoGradGuard noGrad;
    // Channel-planar input, another dtype, grouped.
    EXPECT_FALSE(
        directConvolution(torch::randn({1, 8, 9, 9}), w, {}, one, one, one, 1, false).defined());
    const auto xd =
        torch::randn({1, 8, 9, 9}, torch::kDouble).contiguous(torch::MemoryFormat::ChannelsLast);
    EXPECT_FALSE(
        directConvolution(xd, w.to(torch::kDouble), {}, one, one, one, 1, false).defined());
    const auto x = torch::randn({1, 8, 9, 9}).contiguous(torch::MemoryFormat::ChannelsLast);
    EXPECT_FALSE(
        directConvolution(x, torch::randn({8, 4, 3, 3}), {}, one, one, one, 2, false).defined());
    detail::setDirectOneDnn(false);
    EXPECT_FALSE(directConvolution(x, w, {}, one, one, one, 1, false).defined());
    detail::setDirectOneDnn(true);
    EXPECT_TRUE(directConvolution(x, w, {}, one, one, one, 1, false).defined());
  }
  // Autograd on: the graph must be recorded by LibTorch.
  const auto x = torch::randn({1, 8, 9, 9}).contiguous(torch::MemoryFormat::ChannelsLast);
  EXPECT_FALSE(directConvolution(x, w, {}, one, one, one, 1, false).defined());
}

// `densa segment --precision bf16`: bfloat16 activations and weights, float bias.
TEST(DirectConvolution, RunsBfloat16WhereTheCpuHasAKernelForIt) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(7);
  torch::NoGradGuard noGrad;
  const auto x = torch::randn({1, 32, 4, 16, 12}).contiguous(torch::MemoryFormat::ChannelsLast3d);
  const auto w = torch::randn({16, 32, 3, 3, 3}) * 0.1;
  const auto b = torch::randn({16});
  const auto y = directConvolution(
      x.to(torch::kBFloat16), w.to(torch::kBFloat16), b, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, true);
  if (!y.defined()) {
    GTEST_SKIP() << "oneDNN has no optimised bfloat16 convolution for this CPU";
  }
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  // bfloat16 keeps 8 bits of mantissa: inputs and weights are rounded to ~0.4%.
  EXPECT_LT(relativeError(y.to(torch::kFloat), reference(x, w, b, 1, true)), 2e-2);
}

// Narrow bfloat16 3D layers (the 3D stem) run as one 2D convolution with the kernel's depth folded
// into channels: edge slices (zero padding in depth), strides, a batch of 2, bias and ReLU or not.
TEST(DirectConvolution, FoldsTheDepthOfNarrowBfloat16LayersIntoChannels) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(8);
  torch::NoGradGuard noGrad;

  struct Case {
    std::vector<std::int64_t> input;
    std::int64_t kernel;
    std::int64_t stride;
    bool bias;
    bool relu;
  };

  for (const auto& c : std::vector<Case>{{{1, 4, 8, 24, 20}, 7, 2, true, true},   // the stem
                                         {{2, 4, 9, 17, 15}, 7, 2, false, false}, // odd sizes
                                         {{1, 3, 5, 16, 16}, 3, 1, true, false},
                                         {{2, 2, 6, 12, 14}, 5, 1, false, true}}) {
    SCOPED_TRACE(c.kernel * 10 + c.stride);
    const auto x =
        torch::randn(c.input).to(torch::kBFloat16).contiguous(torch::MemoryFormat::ChannelsLast3d);
    const auto k = c.kernel;
    const auto w = (torch::randn({16, c.input[1], k, k, k}) * 0.1).to(torch::kBFloat16);
    const auto b = c.bias ? torch::randn({16}) : torch::Tensor();
    const auto before = detail::directConvolutionStats();
    const auto y = directConvolution(
        x, w, b, {c.stride, c.stride, c.stride}, {k / 2, k / 2, k / 2}, {1, 1, 1}, 1, c.relu);
    if (!y.defined()) {
      GTEST_SKIP() << "oneDNN has no optimised bfloat16 convolution for this CPU";
    }
    EXPECT_EQ(detail::directConvolutionStats().depthFoldCalls, before.depthFoldCalls + 1);
    const auto expected = reference(x.to(torch::kFloat), w.to(torch::kFloat), b, c.stride, c.relu);
    ASSERT_EQ(y.sizes(), expected.sizes());
    EXPECT_TRUE(y.is_contiguous(torch::MemoryFormat::ChannelsLast3d));
    EXPECT_LT(relativeError(y.to(torch::kFloat), expected), 2e-2);
  }
  // Float and wide inputs keep the 3D kernel.
  const auto before = detail::directConvolutionStats();
  const auto xf = torch::randn({1, 4, 8, 16, 16}).contiguous(torch::MemoryFormat::ChannelsLast3d);
  const auto wf = torch::randn({16, 4, 7, 7, 7}) * 0.1;
  const auto yf = directConvolution(xf, wf, {}, {2, 2, 2}, {3, 3, 3}, {1, 1, 1}, 1, false);
  ASSERT_TRUE(yf.defined());
  EXPECT_LT(relativeError(yf, reference(xf, wf, {}, 2, false)), 1e-4);
  const auto xw = torch::randn({1, 32, 4, 16, 16})
                      .to(torch::kBFloat16)
                      .contiguous(torch::MemoryFormat::ChannelsLast3d);
  const auto ww = (torch::randn({16, 32, 3, 3, 3}) * 0.1).to(torch::kBFloat16);
  (void)directConvolution(xw, ww, {}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, false);
  EXPECT_EQ(detail::directConvolutionStats().depthFoldCalls, before.depthFoldCalls);
}

TEST(DirectConvolution, PadsEachSideApart) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(9);
  torch::NoGradGuard noGrad;
  const auto x2 = torch::randn({2, 8, 9, 7}).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto w2 = torch::randn({16, 8, 2, 3}) * 0.1;
  const auto b = torch::randn({16});
  const auto y2 = detail::directConvolutionPadded(x2, w2, b, {1, 1}, {1, 0}, {0, 2}, true);
  ASSERT_TRUE(y2.defined());
  // constant_pad_nd takes the last dimension first: (W begin, W end, H begin, H end).
  const auto expected2 =
      torch::conv2d(torch::constant_pad_nd(x2.contiguous(), {0, 2, 1, 0}), w2, b).relu();
  EXPECT_LT(relativeError(y2, expected2), 1e-5);
  const auto x3 = torch::randn({1, 8, 4, 6, 5}).contiguous(torch::MemoryFormat::ChannelsLast3d);
  const auto w3 = torch::randn({16, 8, 3, 2, 2}) * 0.1;
  const auto y3 =
      detail::directConvolutionPadded(x3, w3, {}, {1, 1, 1}, {1, 0, 1}, {1, 1, 0}, false);
  ASSERT_TRUE(y3.defined());
  const auto expected3 =
      torch::conv3d(torch::constant_pad_nd(x3.contiguous(), {1, 0, 0, 1, 1, 1}), w3);
  EXPECT_LT(relativeError(y3, expected3), 1e-5);
}

// A decoder block without a skip (nearest x2 up-sampling, 3x3(x3) convolution, BN, ReLU) runs
// its convolution on the low-resolution input, one per output parity: the same output as the
// plain modules on the up-sampled tensor.
TEST(DirectConvolution, UpBlockConvolvesTheLowResolutionInputPerParity) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(10);
  torch::NoGradGuard noGrad;
  const auto randomise = [](torch::nn::Module& block) {
    for (auto& p : block.named_parameters()) {
      p.value().copy_(torch::randn_like(p.value()) * 0.2 +
                      (p.key().find("norm.weight") != std::string::npos ? 1.0 : 0.0));
    }
    for (auto& b : block.named_buffers()) {
      if (b.key().find("running_mean") != std::string::npos) {
        b.value().copy_(torch::randn_like(b.value()) * 0.1);
      } else if (b.key().find("running_var") != std::string::npos) {
        b.value().copy_(torch::rand_like(b.value()) + 0.5);
      }
    }
    block.eval();
  };
  const auto check = [](auto& block, const torch::Tensor& x, std::int64_t parities) {
    const auto before = detail::directConvolutionStats().calls;
    const auto fast = block(x);
    EXPECT_EQ(detail::directConvolutionStats().calls - before, parities);
    setInferenceFastPaths(false);
    const auto plain = block(x.contiguous());
    setInferenceFastPaths(true);
    ASSERT_EQ(fast.sizes(), plain.sizes());
    EXPECT_LT(relativeError(fast, plain), 1e-5);
    // bfloat16 (`--precision bf16`): the same block, rounded activations and weights.
    block->to(torch::kBFloat16);
    const auto bf16 = block(x.to(torch::kBFloat16));
    block->to(torch::kFloat);
    EXPECT_EQ(bf16.scalar_type(), torch::kBFloat16);
    EXPECT_LT(relativeError(bf16.to(torch::kFloat), plain), 3e-2);
  };
  UpBlockSettings settings;
  settings.inChannels = 16;
  settings.outChannels = 32;
  UpBlock<2> up2(settings);
  randomise(*up2);
  check(up2, torch::randn({2, 16, 6, 5}).contiguous(torch::MemoryFormat::ChannelsLast), 4);
  for (const int depthScale : {2, 1}) {
    settings.depthScale = depthScale;
    UpBlock<3> up3(settings);
    randomise(*up3);
    check(up3,
          torch::randn({1, 16, 3, 6, 5}).contiguous(torch::MemoryFormat::ChannelsLast3d),
          depthScale == 2 ? 8 : 4);
  }
}

TEST(DirectPooling, MatchesLibTorchMaxAndAveragePoolingIn2DAnd3D) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(5);
  torch::NoGradGuard noGrad;
  const auto x2 = torch::randn({2, 24, 15, 14}).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto x3 = torch::randn({1, 16, 5, 15, 14}).contiguous(torch::MemoryFormat::ChannelsLast3d);
  const auto max2 = directPooling(x2, Pooling::Max, {3, 3}, {2, 2}, {1, 1});
  const auto avg2 = directPooling(x2.narrow(2, 0, 14), Pooling::Average, {2, 2}, {2, 2}, {0, 0});
  const auto max3 = directPooling(x3, Pooling::Max, {3, 3, 3}, {2, 2, 2}, {1, 1, 1});
  const auto avg3 =
      directPooling(x3.narrow(3, 0, 14), Pooling::Average, {1, 2, 2}, {1, 2, 2}, {0, 0, 0});
  ASSERT_TRUE(max2.defined() && avg2.defined() && max3.defined() && avg3.defined());
  EXPECT_TRUE(max3.is_contiguous(torch::MemoryFormat::ChannelsLast3d));
  EXPECT_TRUE(torch::equal(max2, torch::max_pool2d(x2.contiguous(), {3, 3}, {2, 2}, {1, 1})));
  EXPECT_TRUE(torch::allclose(
      avg2, torch::avg_pool2d(x2.narrow(2, 0, 14).contiguous(), {2, 2}, {2, 2}), 1e-5, 1e-6));
  EXPECT_TRUE(
      torch::equal(max3, torch::max_pool3d(x3.contiguous(), {3, 3, 3}, {2, 2, 2}, {1, 1, 1})));
  EXPECT_TRUE(torch::allclose(
      avg3, torch::avg_pool3d(x3.narrow(3, 0, 14).contiguous(), {1, 2, 2}, {1, 2, 2}), 1e-5, 1e-6));
  // The same shape in bfloat16 gets its own primitive (a float one would read twice the bytes).
  const auto max2b = directPooling(x2.to(torch::kBFloat16), Pooling::Max, {3, 3}, {2, 2}, {1, 1});
  if (max2b.defined()) {
    EXPECT_EQ(max2b.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(
        max2b, torch::max_pool2d(x2.to(torch::kBFloat16).contiguous(), {3, 3}, {2, 2}, {1, 1})));
  }
  // Padded averages count the padding in LibTorch: left to it.
  EXPECT_FALSE(directPooling(x2, Pooling::Average, {3, 3}, {1, 1}, {1, 1}).defined());
}

// The hybrid net end to end: direct oneDNN calls (channels-last 3D) against LibTorch's operators.
TEST(DirectConvolution, HybridNetGivesTheSameLogitsWithAndWithoutIt) {
  REQUIRE_DIRECT_ONEDNN();
  torch::manual_seed(6);
  HDenseUNet net(hDenseUNetPreset("tiny"));
  net->eval();
  torch::NoGradGuard noGrad;
  const auto volume = torch::randn({1, 1, 8, 64, 64});
  const auto before = detail::directConvolutionStats();
  const auto direct = net(volume);
  EXPECT_GT(detail::directConvolutionStats().calls, before.calls);
  detail::setDirectOneDnn(false);
  const auto libtorch = net(volume);
  detail::setDirectOneDnn(true);
  EXPECT_LT(relativeError(direct.logits, libtorch.logits), 1e-4);
  EXPECT_LT(relativeError(direct.logits2d, libtorch.logits2d), 1e-4);
}

} // namespace
} // namespace densa::models
