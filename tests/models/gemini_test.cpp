// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/gemini.hpp"

#include "densa/models/error.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/model_info.hpp"
#include "densa/models/torch/checkpoint.hpp"
#include "densa/models/torch/gemini_losses.hpp"
#include "densa/models/torch/gemini_ops.hpp"

#include <gtest/gtest.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace densa::models {
namespace {

namespace fs = std::filesystem;
using Sizes = std::vector<std::int64_t>;

std::int64_t countParameters(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) {
    n += p.numel();
  }
  return n;
}

GeminiOptions tiny(int dims = 3) {
  auto o = geminiPreset("tiny");
  o.backbone.dims = dims;
  return o;
}

// ---- options, presets, cards, parameter counts --------------------------------------------------

TEST(GeminiOptions, PresetsHaveTheDocumentedWidthsAndValidGroups) {
  const auto paper = geminiPreset("paper");
  EXPECT_EQ(paper.backbone.channels, (std::vector<int>{32, 64, 128, 256, 512, 256, 128, 64, 32}));
  EXPECT_EQ(paper.deformerChannels, (std::vector<int>{32, 64, 64, 64, 32}));
  EXPECT_EQ(paper.backbone.groupChannels, 8);
  EXPECT_EQ(paper.backbone.dims, 3);
  EXPECT_DOUBLE_EQ(paper.backbone.leakySlope, 0.2);
  EXPECT_EQ(paper.head.hiddenChannels, 16);
  EXPECT_EQ(paper.head.groups, 4);
  EXPECT_TRUE(paper.restorationHead);
  EXPECT_EQ(paper.segmentationClasses, 0);
  EXPECT_FALSE(paper.diffeomorphic);
  EXPECT_EQ(paper.integrationSteps, 7);
  EXPECT_EQ(geminiPreset("small").backbone.channels,
            (std::vector<int>{16, 32, 64, 128, 256, 128, 64, 32, 16}));
  const auto t = geminiPreset("tiny");
  EXPECT_EQ(t.backbone.channels, (std::vector<int>{8, 16, 32, 64, 128, 64, 32, 16, 8}));
  EXPECT_EQ(t.deformerChannels, (std::vector<int>{8, 16, 16, 16, 8}));
  EXPECT_EQ(t.backbone.groupChannels, 4);
  for (const auto& p : presetNames()) {
    EXPECT_NO_THROW(validate(geminiPreset(p))) << p;
    EXPECT_NO_THROW(validate(geminiUNetPreset(p))) << p;
  }
  EXPECT_EQ(architectureId(modelPreset("gemini", "tiny")), "gemini");
  EXPECT_EQ(architectureId(modelPreset("gemini-unet", "small")), "gemini-unet");
  EXPECT_THROW((void)geminiPreset("huge"), ModelError);
}

TEST(GeminiOptions, ValidationRejectsImpossibleTopologies) {
  auto o = tiny();
  o.backbone.dims = 4;
  EXPECT_THROW(validate(o), ModelError);
  o = tiny();
  o.backbone.channels[3] = 30; // not a multiple of 4
  EXPECT_THROW(validate(o), ModelError);
  o = tiny();
  o.deformerChannels.pop_back();
  EXPECT_THROW(validate(o), ModelError);
  o = tiny();
  o.head.groups = 3;
  EXPECT_THROW(validate(o), ModelError);
  auto u = geminiUNetPreset("tiny");
  u.numClasses = 0;
  EXPECT_THROW(validate(u), ModelError);
  EXPECT_THROW(GeminiNet{o}, ModelError);
}

TEST(GeminiOptions, ModelCardsRoundTripThroughJson) {
  auto card = makeModelCard("gemini", "small");
  EXPECT_TRUE(card.labels.empty());
  auto& o = std::get<GeminiOptions>(card.options);
  o.backbone.dims = 2;
  o.diffeomorphic = true;
  o.integrationSteps = 5;
  o.segmentationClasses = 4;
  o.restorationHead = false;
  const auto parsed = parseModelCard(toJson(card));
  const auto& p = std::get<GeminiOptions>(parsed.options);
  EXPECT_EQ(p.backbone.dims, 2);
  EXPECT_EQ(p.backbone.channels, o.backbone.channels);
  EXPECT_EQ(p.backbone.groupChannels, 8);
  EXPECT_EQ(p.deformerChannels, o.deformerChannels);
  EXPECT_TRUE(p.diffeomorphic);
  EXPECT_EQ(p.integrationSteps, 5);
  EXPECT_EQ(p.segmentationClasses, 4);
  EXPECT_FALSE(p.restorationHead);
  EXPECT_EQ(p.head.hiddenChannels, 16);

  const auto unet = parseModelCard(toJson(makeModelCard("gemini-unet", "tiny")));
  const auto& u = std::get<GeminiUNetOptions>(unet.options);
  EXPECT_EQ(u.numClasses, 3);
  EXPECT_EQ(u.backbone.channels, geminiPreset("tiny").backbone.channels);
  EXPECT_EQ(unet.labels.size(), 3U);

  auto bad = toJson(card);
  bad.replace(bad.find("\"groupChannels\": 8"), 18, "\"groupChannels\": 7");
  EXPECT_THROW((void)parseModelCard(bad), ModelError);
}

// §2.3 DoubleConv(in, out) = conv3 (27·in·out + out) + GN (2·out) + conv3 (27·out·out + out) +
// GN (2·out) = 27·out·(in + out) + 6·out.
std::int64_t doubleConv(std::int64_t in, std::int64_t out) {
  return 27 * out * (in + out) + 6 * out;
}

// §2.4 OneConv(in, out) = 27·in·out + out + 2·out.
std::int64_t oneConv(std::int64_t in, std::int64_t out) {
  return 27 * in * out + 3 * out;
}

TEST(GeminiOptions, PaperParameterCountsEqualTheCountsDerivedFromTheTables) {
  // Backbone: inc 1->32, down 32->64->128->256->512, up (512+256)->256, (256+128)->128,
  // (128+64)->64, (64+32)->32.
  const std::int64_t backbone = doubleConv(1, 32) + doubleConv(32, 64) + doubleConv(64, 128) +
                                doubleConv(128, 256) + doubleConv(256, 512) + doubleConv(768, 256) +
                                doubleConv(384, 128) + doubleConv(192, 64) + doubleConv(96, 32);
  // Deformer: c1 64->32, c2 32->64, c3 64->64, c4 128->64, c5 96->32, flow conv3 32->3.
  const std::int64_t deformer = oneConv(64, 32) + oneConv(32, 64) + oneConv(64, 64) +
                                oneConv(128, 64) + oneConv(96, 32) + 27 * 32 * 3 + 3;
  // res_conv: conv3 32->16, GN(4, 16), conv1 16->K.
  const auto head = [](std::int64_t k) {
    return 27 * 32 * 16 + 16 + 2 * 16 + 16 * k + k;
  };
  EXPECT_EQ(backbone, 23'538'144);
  EXPECT_EQ(deformer, 528'675);
  EXPECT_EQ(head(1), 13'889);

  GeminiNet net(geminiPreset("paper"));
  EXPECT_EQ(countParameters(*net->backbone()), backbone);
  EXPECT_EQ(countParameters(*net->deformer()), deformer);
  EXPECT_EQ(countParameters(*net), 24'080'708);
  EXPECT_EQ(countParameters(*GeminiUNet(geminiUNetPreset("paper"))), backbone + head(3));

  const auto info = describeModel("gemini", "paper").front();
  ASSERT_EQ(info.subnetworks.size(), 3U);
  EXPECT_EQ(info.subnetworks[0].name, "backbone");
  EXPECT_EQ(info.subnetworks[0].parameters, backbone);
  EXPECT_EQ(info.subnetworks[1].name, "deformer");
  EXPECT_EQ(info.subnetworks[1].parameters, deformer);
  EXPECT_EQ(info.subnetworks[2].name, "res_head");
  EXPECT_EQ(info.subnetworks[2].parameters, head(1));
  EXPECT_EQ(info.parameters, 24'080'708);
  EXPECT_NEAR(info.gflopsPerWindow, 8.0 * info.gflopsPerSlice, 1e-9 * info.gflopsPerWindow);
}

TEST(GeminiOptions, ModelInfoAgreesWithTheInstantiatedNetworks) {
  for (const std::string preset : {"small", "tiny"}) {
    SCOPED_TRACE(preset);
    for (const std::string arch : {"gemini", "gemini-unet"}) {
      const auto info = describeModel(arch, preset).front();
      EXPECT_EQ(info.parameters, countParameters(*moduleOf(makeNet(modelPreset(arch, preset)))))
          << arch;
    }
  }
  auto o = tiny(2);
  o.segmentationClasses = 3;
  const auto cost = geminiCost(o, {32, 32});
  GeminiNet net(o);
  EXPECT_EQ(cost.segmentationHead.parameters, countParameters(*net->segmentationHead()));
  EXPECT_EQ(cost.backbone.parameters + cost.deformer.parameters + cost.restorationHead.parameters +
                cost.segmentationHead.parameters,
            countParameters(*net));
  // The flow conv of the deformer at 32 x 32: 8 -> 2 channels, 3 x 3 kernel.
  EXPECT_GT(cost.deformer.macs, 8.0 * 2 * 9 * 32 * 32);
}

// ---- networks -----------------------------------------------------------------------------------

TEST(GeminiNet, OddSizesArePaddedAndCroppedBackIn3dAnd2d) {
  torch::manual_seed(1);
  torch::NoGradGuard noGrad;
  GeminiNet net3(tiny(3));
  const auto a = torch::rand({1, 1, 7, 9, 11});
  const auto out = net3(a, torch::rand({1, 1, 7, 9, 11}));
  EXPECT_EQ(out.featuresA.sizes(), (Sizes{1, 8, 7, 9, 11}));
  EXPECT_EQ(out.flowAB.sizes(), (Sizes{1, 3, 7, 9, 11}));
  EXPECT_EQ(out.flowBA.sizes(), (Sizes{1, 3, 7, 9, 11}));
  EXPECT_EQ(net3->restore(a).sizes(), (Sizes{1, 1, 7, 9, 11}));
  EXPECT_THROW((void)net3->segment(a), ModelError);

  auto o2 = tiny(2);
  o2.segmentationClasses = 4;
  GeminiNet net2(o2);
  const auto b = torch::rand({2, 1, 13, 17});
  EXPECT_EQ(net2->features(b).sizes(), (Sizes{2, 8, 13, 17}));
  EXPECT_EQ(net2->flow(net2->features(b), net2->features(b)).sizes(), (Sizes{2, 2, 13, 17}));
  EXPECT_EQ(net2->segment(b).sizes(), (Sizes{2, 4, 13, 17}));

  GeminiUNet unet(geminiUNetPreset("tiny"));
  const auto p = unet->probabilities(torch::rand({1, 1, 5, 6, 3}));
  EXPECT_EQ(p.sizes(), (Sizes{1, 3, 5, 6, 3}));
  EXPECT_TRUE(torch::allclose(p.sum(1), torch::ones({1, 5, 6, 3})));
  EXPECT_THROW((void)net3->features(torch::rand({1, 2, 8, 8, 8})), ModelError);
  EXPECT_THROW((void)net3->features(torch::rand({1, 1, 8, 8})), ModelError);
}

TEST(GeminiNet, PaddingSplitsFloorHalfBeforeAndCropsTheSameWindow) {
  std::vector<std::int64_t> before;
  const auto x = torch::arange(7 * 13, torch::kFloat).view({1, 1, 7, 13});
  const auto padded = padToMultiple(x, 16, before);
  EXPECT_EQ(padded.sizes(), (Sizes{1, 1, 16, 16}));
  EXPECT_EQ(before, (Sizes{4, 1})); // 9 -> 4 before, 5 after; 3 -> 1 before, 2 after
  EXPECT_EQ(padded[0][0][4][1].item<float>(), 0.0F);
  EXPECT_EQ(padded[0][0][4][2].item<float>(), 1.0F);
  EXPECT_EQ(padded[0][0][3][5].item<float>(), 0.0F);
  EXPECT_TRUE(torch::equal(cropSpatial(padded, before, {7, 13}), x));
}

TEST(GeminiNet, InitialisationIsKaimingNormalWithUnitGroupNorm) {
  torch::manual_seed(3);
  GeminiNet net(geminiPreset("small"));
  for (const auto& p : net->named_parameters()) {
    const auto& name = p.key();
    if (name.find("norm") != std::string::npos && name.size() > 7 &&
        name.compare(name.size() - 7, 7, ".weight") == 0) {
      EXPECT_TRUE(torch::equal(p.value(), torch::ones_like(p.value()))) << name;
    }
  }
  // backbone.down4.conv2: 256 x 256 x 27 weights, std = sqrt(2 / fan_in) = sqrt(2 / 6912).
  const auto w = net->backbone()->named_parameters()["down4.conv2.weight"];
  EXPECT_NEAR(w.std().item<double>(), std::sqrt(2.0 / (256.0 * 27.0)), 0.002);
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.001);
  // The flow conv too (no near-zero VoxelMorph init).
  const auto flow = net->deformer()->named_parameters()["flow.weight"];
  EXPECT_NEAR(flow.std().item<double>(), std::sqrt(2.0 / (16.0 * 27.0)), 0.02);
}

TEST(GeminiNet, DiffeomorphicOptionIntegratesTheDeformerOutput) {
  torch::manual_seed(4);
  torch::NoGradGuard noGrad;
  auto o = tiny(2);
  o.diffeomorphic = true;
  o.integrationSteps = 4;
  GeminiNet net(o);
  const auto f1 = net->features(torch::rand({1, 1, 16, 16}));
  const auto f2 = net->features(torch::rand({1, 1, 16, 16}));
  const auto velocity = net->deformer()(torch::cat({f1, f2}, 1));
  EXPECT_TRUE(torch::allclose(net->flow(f1, f2), integrateVelocity(velocity, 4)));
}

// ---- spatial transformer and fields -------------------------------------------------------------

TEST(GeminiWarp, ZeroFieldIsABitExactIdentity) {
  torch::manual_seed(5);
  for (const auto& shape : {Sizes{2, 3, 5, 7, 6}, Sizes{1, 2, 9, 13}, Sizes{1, 1, 31, 17, 3}}) {
    const auto image = torch::randn(shape);
    auto flowShape = shape;
    flowShape[1] = static_cast<std::int64_t>(shape.size()) - 2;
    const auto zero = torch::zeros(flowShape);
    EXPECT_TRUE(torch::equal(warp(image, zero), image));
    EXPECT_TRUE(torch::equal(warp(image, zero, Interp::Nearest), image));
    EXPECT_TRUE(torch::equal(validityMask(zero), torch::ones_like(image.narrow(1, 0, 1))));
  }
}

// A Gaussian blob's intensity-weighted centroid along each axis.
std::vector<double> centroid(const torch::Tensor& image) {
  const auto v = image.to(torch::kDouble).squeeze(0).squeeze(0);
  std::vector<double> out;
  for (std::int64_t a = 0; a < v.dim(); ++a) {
    std::vector<std::int64_t> shape(static_cast<std::size_t>(v.dim()), 1);
    shape[static_cast<std::size_t>(a)] = v.size(a);
    const auto ramp = torch::arange(v.size(a), torch::kDouble).view(shape);
    out.push_back((v * ramp).sum().item<double>() / v.sum().item<double>());
  }
  return out;
}

torch::Tensor blob(const Sizes& size, const std::vector<double>& centre, double sigma) {
  auto r2 = torch::zeros(size, torch::kDouble);
  for (std::size_t a = 0; a < size.size(); ++a) {
    std::vector<std::int64_t> shape(size.size(), 1);
    shape[a] = size[a];
    const auto d = torch::arange(size[a], torch::kDouble).view(shape) - centre[a];
    r2 = r2 + d * d;
  }
  auto out = torch::exp(-r2 / (2.0 * sigma * sigma)).to(torch::kFloat);
  return out.unsqueeze(0).unsqueeze(0);
}

TEST(GeminiWarp, ConstantTranslationMovesTheBlobCentroidByMinusTheField) {
  // Backward warp: out(p) = I(p + t), so the content moves by -t.
  const Sizes size{24, 20, 22};
  const auto image = blob(size, {12.0, 9.0, 11.0}, 2.0);
  const std::vector<double> t{1.5, -2.0, 0.25};
  auto flow = torch::zeros({1, 3, 24, 20, 22});
  for (std::int64_t a = 0; a < 3; ++a) {
    flow.select(1, a).fill_(t[static_cast<std::size_t>(a)]);
  }
  const auto before = centroid(image);
  const auto after = centroid(warp(image, flow));
  for (std::size_t a = 0; a < 3; ++a) {
    EXPECT_NEAR(after[a], before[a] - t[a], 1e-3) << "axis " << a;
  }
  // 2D, integer shift with nearest: an exact shift of the pixels.
  const auto image2 = blob({16, 18}, {8.0, 9.0}, 2.0);
  auto flow2 = torch::zeros({1, 2, 16, 18});
  flow2.select(1, 1).fill_(2.0F);
  const auto moved = warp(image2, flow2, Interp::Nearest);
  EXPECT_TRUE(torch::equal(moved.narrow(3, 0, 16), image2.narrow(3, 2, 16)));
  EXPECT_TRUE(torch::equal(moved.narrow(3, 16, 2), torch::zeros({1, 1, 16, 2})));
  const auto mask = validityMask(flow2);
  EXPECT_EQ(mask.sum().item<float>(), 16.0F * 16.0F);
  EXPECT_TRUE(torch::equal(mask.narrow(3, 16, 2), torch::zeros({1, 1, 16, 2})));
}

TEST(GeminiWarp, MatchesTrilinearInterpolationAndIsDifferentiableInTheField) {
  torch::manual_seed(6);
  const auto image = torch::randn({1, 2, 4, 5, 6}, torch::kDouble);
  auto flow = (torch::rand({1, 3, 4, 5, 6}, torch::kDouble) - 0.5) * 3.0;
  const auto out = warp(image, flow);
  // Voxel (1, 2, 3): sample at p + φ by hand.
  const auto a = image.accessor<double, 5>();
  const auto f = flow.accessor<double, 5>();
  const double q[3] = {1 + f[0][0][1][2][3], 2 + f[0][1][1][2][3], 3 + f[0][2][1][2][3]};
  const Sizes size{4, 5, 6};
  for (int c = 0; c < 2; ++c) {
    double expected = 0.0;
    for (int corner = 0; corner < 8; ++corner) {
      double w = 1.0;
      std::int64_t idx[3];
      bool inside = true;
      for (int k = 0; k < 3; ++k) {
        const double lo = std::floor(q[k]);
        const bool up = ((corner >> k) & 1) != 0;
        idx[k] = static_cast<std::int64_t>(lo) + (up ? 1 : 0);
        w *= up ? q[k] - lo : 1.0 - (q[k] - lo);
        inside = inside && idx[k] >= 0 && idx[k] < size[static_cast<std::size_t>(k)];
      }
      if (inside) {
        expected += w * a[0][c][idx[0]][idx[1]][idx[2]];
      }
    }
    EXPECT_NEAR(out[0][c][1][2][3].item<double>(), expected, 1e-12);
  }
  flow.requires_grad_(true);
  const auto numeric = [&](double h) {
    torch::NoGradGuard noGrad;
    auto shifted = flow.detach().clone();
    shifted[0][2][1][2][3] += h;
    return warp(image, shifted).sum().item<double>();
  };
  warp(image, flow).sum().backward();
  const double analytic = flow.grad()[0][2][1][2][3].item<double>();
  EXPECT_NEAR(analytic, (numeric(1e-6) - numeric(-1e-6)) / 2e-6, 1e-5);
}

TEST(GeminiJacobian, ZeroFieldIsExactlyOneAndAReflectionIsFlaggedAsFolding) {
  for (const auto& shape : {Sizes{2, 3, 6, 7, 8}, Sizes{1, 2, 9, 5}}) {
    const auto det = jacobianDeterminant(torch::zeros(shape));
    auto expected = shape;
    expected.erase(expected.begin() + 1);
    EXPECT_TRUE(torch::equal(det, torch::ones(expected)));
    const auto stats = jacobianStats(torch::zeros(shape));
    EXPECT_EQ(stats.foldingFraction, 0.0);
    EXPECT_EQ(stats.min, 1.0);
    EXPECT_EQ(stats.max, 1.0);
    EXPECT_EQ(stats.mean, 1.0);
  }
  // Along w, columns 8..15 of 24 are mirrored about w = 11.5: p_w -> 23 - p_w, a reflection.
  auto flow = torch::zeros({1, 3, 4, 6, 24});
  for (std::int64_t w = 8; w < 16; ++w) {
    flow.select(4, w).select(1, 2).fill_(static_cast<float>(23 - 2 * w));
  }
  const auto stats = jacobianStats(flow);
  EXPECT_GT(stats.foldingFraction, 0.2);
  EXPECT_LT(stats.min, 0.0);
  EXPECT_EQ(stats.voxels, 4 * 6 * 24);
  const auto det = jacobianDeterminant(flow);
  EXPECT_NEAR(det[0][1][2][12].item<float>(), -1.0F, 1e-6);
  EXPECT_NEAR(det[0][1][2][2].item<float>(), 1.0F, 1e-6);
}

TEST(GeminiJacobian, AnAffineFieldHasTheMatrixDeterminantEverywhere) {
  // A = diag(1.2, 0.8, 1.1) · rotation: det = 1.056.
  const double c = std::cos(0.3);
  const double s = std::sin(0.3);
  const std::vector<double> m{1.2, 0, 0, 0, 0.8 * c, -0.8 * s, 0, 1.1 * s, 1.1 * c};
  const auto flow = affineField({9, 10, 11}, m);
  const auto stats = jacobianStats(flow);
  EXPECT_NEAR(stats.min, 1.2 * 0.8 * 1.1, 1e-5);
  EXPECT_NEAR(stats.max, 1.2 * 0.8 * 1.1, 1e-5);
  // The centre of an odd grid does not move.
  EXPECT_NEAR(flow[0][0][4][4][5].item<float>(), 0.0F, 1e-6);
  EXPECT_EQ(flow.sizes(), (Sizes{1, 3, 9, 10, 11}));
}

TEST(GeminiJacobian, ScalingAndSquaringOfASmoothVelocityDoesNotFold) {
  torch::manual_seed(7);
  namespace F = torch::nn::functional;
  // A small smooth random velocity: coarse 4^3 noise up-sampled to 24^3, about ±1.5 voxels.
  const auto coarse = torch::randn({1, 3, 4, 4, 4}) * 1.5;
  const auto velocity = F::interpolate(coarse,
                                       F::InterpolateFuncOptions()
                                           .size(Sizes{24, 24, 24})
                                           .mode(torch::kTrilinear)
                                           .align_corners(true));
  const auto raw = jacobianStats(velocity);
  const auto integrated = integrateVelocity(velocity, 7);
  const auto stats = jacobianStats(integrated);
  EXPECT_EQ(stats.foldingFraction, 0.0) << "raw field folds " << raw.foldingFraction;
  EXPECT_GT(stats.min, 0.0);
  EXPECT_EQ(integrated.sizes(), velocity.sizes());
  EXPECT_TRUE(torch::equal(integrateVelocity(velocity, 0), velocity));
}

TEST(GeminiAugment, RandomAffineFieldIsSeededAndWithinTheRanges) {
  std::mt19937_64 rng1(42);
  std::mt19937_64 rng2(42);
  const auto f1 = randomAffineField({11, 12, 13}, rng1);
  const auto f2 = randomAffineField({11, 12, 13}, rng2);
  EXPECT_TRUE(torch::equal(f1, f2));
  EXPECT_FALSE(torch::equal(f1, randomAffineField({11, 12, 13}, rng1)));
  std::mt19937_64 rng(1);
  for (int i = 0; i < 50; ++i) {
    const auto m = randomAffineMatrix(3, rng);
    // Rows of Scale · R have norm = the scale factor in [0.75, 1.25].
    for (int r = 0; r < 3; ++r) {
      const double norm = std::sqrt(m[r * 3] * m[r * 3] + m[r * 3 + 1] * m[r * 3 + 1] +
                                    m[r * 3 + 2] * m[r * 3 + 2]);
      EXPECT_GE(norm, 0.75 - 1e-12);
      EXPECT_LE(norm, 1.25 + 1e-12);
    }
  }
  const auto m2 = randomAffineMatrix(2, rng, RandomAffineOptions{0.0, 1.0, 1.0, false});
  EXPECT_NEAR(m2[0], 1.0, 1e-12);
  EXPECT_NEAR(m2[1], 0.0, 1e-12);
  // Usable by warp: warping an image gives the same shape; the field is pure rotation/scale.
  const auto image = blob({11, 12, 13}, {5.0, 5.5, 6.0}, 2.0);
  EXPECT_EQ(warp(image, f1).sizes(), image.sizes());
  const auto det = jacobianStats(f1);
  EXPECT_GT(det.min, std::pow(0.75, 3) - 1e-4);
  EXPECT_LT(det.max, std::pow(1.25, 3) + 1e-4);
}

TEST(GeminiAugment, AppearanceCorruptionIsSeededKeepsTheRangeAndLeavesTheInputAlone) {
  torch::manual_seed(8);
  const auto image = torch::rand({2, 1, 40, 40, 40});
  const auto copy = image.clone();
  std::mt19937_64 rng1(9);
  std::mt19937_64 rng2(9);
  const auto a = corruptAppearance(image, rng1);
  const auto b = corruptAppearance(image, rng2);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_TRUE(torch::equal(image, copy));
  EXPECT_EQ(a.sizes(), image.sizes());
  EXPECT_GE(a.min().item<float>(), 0.0F);
  EXPECT_LE(a.max().item<float>(), 1.0F);
  EXPECT_FALSE(torch::equal(a, image));

  // Probability 0: unchanged. Probability 1: changed.
  std::mt19937_64 rng(10);
  EXPECT_TRUE(torch::equal(localPixelShuffle(image, rng, 0.0), image));
  EXPECT_TRUE(torch::equal(bezierIntensityMap(image, rng, 0.0), image));
  EXPECT_FALSE(torch::equal(localPixelShuffle(image, rng, 1.0), image));
  // The Bézier map is monotone: a sorted ramp stays sorted, 0 -> 0 and 1 -> 1.
  const auto ramp = torch::linspace(0.0, 1.0, 1000).view({1, 1, 10, 100});
  const auto mapped = bezierIntensityMap(ramp, rng, 1.0).flatten();
  EXPECT_TRUE(torch::all(mapped.narrow(0, 1, 999) >= mapped.narrow(0, 0, 999)).item<bool>());
  EXPECT_NEAR(mapped[0].item<float>(), 0.0F, 1e-6);
  EXPECT_NEAR(mapped[999].item<float>(), 1.0F, 1e-6);
  // Local shuffling on a 2D image with one block per image keeps the block's values.
  AppearanceCorruptionOptions one;
  one.shuffleBlocks = 1;
  one.shuffleBlockDivisor = 4; // 40 x 40 -> 10 x 10 blocks
  const auto plane = torch::rand({1, 1, 40, 40});
  const auto shuffled = localPixelShuffle(plane, rng, 1.0, one);
  EXPECT_NEAR(shuffled.sum().item<float>(), plane.sum().item<float>(), 1e-3);
  EXPECT_EQ((shuffled != plane).sum().item<std::int64_t>() <= 100, true);
  // In-painting writes noise cuboids (side in [4, 8) at 40^3).
  AppearanceCorruptionOptions always;
  always.inPaintingContinue = 1.0;
  always.inPaintingMaxCuboids = 3;
  const auto painted = inPaint(torch::zeros({1, 1, 40, 40, 40}), rng, always);
  const auto changed = (painted != 0.0F).sum().item<std::int64_t>();
  EXPECT_GE(changed, 4 * 4 * 4);
  EXPECT_LE(changed, 3 * 7 * 7 * 7);
}

// ---- losses -------------------------------------------------------------------------------------

// Naive masked squared local NCC over a [C, D, H, W] volume (2D: D = 1, windowDepth = 1).
double naiveNcc(const torch::Tensor& iIn,
                const torch::Tensor& jIn,
                const torch::Tensor& maskIn,
                int window,
                int windowDepth) {
  const auto i = iIn.to(torch::kDouble).contiguous();
  const auto j = jIn.to(torch::kDouble).contiguous();
  const auto m = maskIn.to(torch::kDouble).contiguous();
  const auto ia = i.accessor<double, 4>();
  const auto ja = j.accessor<double, 4>();
  const auto ma = m.accessor<double, 3>();
  const std::int64_t c = i.size(0);
  const std::int64_t d = i.size(1);
  const std::int64_t h = i.size(2);
  const std::int64_t w = i.size(3);
  const double n = static_cast<double>(window) * window * windowDepth;
  const int r = window / 2;
  const int rd = windowDepth / 2;
  double numerator = 0.0;
  double denominator = 0.0;
  for (std::int64_t z = 0; z < d; ++z) {
    for (std::int64_t y = 0; y < h; ++y) {
      for (std::int64_t x = 0; x < w; ++x) {
        double si = 0;
        double sj = 0;
        double sii = 0;
        double sjj = 0;
        double sij = 0;
        for (std::int64_t ch = 0; ch < c; ++ch) {
          for (std::int64_t dz = -rd; dz <= rd; ++dz) {
            for (std::int64_t dy = -r; dy <= r; ++dy) {
              for (std::int64_t dx = -r; dx <= r; ++dx) {
                const auto zz = z + dz;
                const auto yy = y + dy;
                const auto xx = x + dx;
                if (zz < 0 || zz >= d || yy < 0 || yy >= h || xx < 0 || xx >= w) {
                  continue; // zero padding
                }
                const double a = ia[ch][zz][yy][xx];
                const double b = ja[ch][zz][yy][xx];
                si += a;
                sj += b;
                sii += a * a;
                sjj += b * b;
                sij += a * b;
              }
            }
          }
        }
        // Channel mean of the window sums (the reference's multi-channel form).
        si /= static_cast<double>(c);
        sj /= static_cast<double>(c);
        sii /= static_cast<double>(c);
        sjj /= static_cast<double>(c);
        sij /= static_cast<double>(c);
        const double cross = sij - si * sj / n;
        const double vi = sii - si * si / n;
        const double vj = sjj - sj * sj / n;
        const double cc = cross * cross / (vi * vj + 1e-5);
        numerator += ma[z][y][x] * cc;
        denominator += ma[z][y][x] + 1e-6;
      }
    }
  }
  return 1.0 - numerator / denominator;
}

TEST(GeminiLosses, LocalNccEqualsTheNaiveWindowSums) {
  torch::manual_seed(11);
  // 3D, window 3, one channel, binary mask.
  const auto i3 = torch::rand({1, 1, 4, 5, 6});
  const auto j3 = 0.6 * i3 + 0.4 * torch::rand({1, 1, 4, 5, 6});
  const auto m3 = (torch::rand({1, 1, 4, 5, 6}) > 0.3).to(torch::kFloat);
  EXPECT_NEAR(
      localNccLoss(i3, j3, m3, 3).item<double>(), naiveNcc(i3[0], j3[0], m3[0][0], 3, 3), 1e-5);
  // 3D, the default 9^3 window (larger than the volume: zero padding everywhere).
  EXPECT_NEAR(
      localNccLoss(i3, j3, m3).item<double>(), naiveNcc(i3[0], j3[0], m3[0][0], 9, 9), 1e-5);
  // 2D, window 9, two channels.
  const auto i2 = torch::rand({1, 2, 11, 12});
  const auto j2 = torch::rand({1, 2, 11, 12}) + i2;
  const auto m2 = (torch::rand({1, 1, 11, 12}) > 0.5).to(torch::kFloat);
  EXPECT_NEAR(localNccLoss(i2, j2, m2).item<double>(),
              naiveNcc(i2[0].unsqueeze(1), j2[0].unsqueeze(1), m2[0], 9, 1),
              1e-5);
  // Linearly related images, masked to the windows that do not touch the zero padding: 0 up to
  // the 1e-6 per voxel in the denominator (400e-6 / 144).
  const auto ramp = torch::arange(20 * 20, torch::kDouble).view({1, 1, 20, 20});
  auto inner = torch::zeros({1, 1, 20, 20}, torch::kDouble);
  inner.narrow(2, 4, 12).narrow(3, 4, 12).fill_(1.0);
  EXPECT_NEAR(localNccLoss(ramp, 2.0 * ramp + 1.0, inner).item<double>(), 400e-6 / 144.0, 1e-9);
}

TEST(GeminiLosses, MaskedCosineAndSmoothnessEqualTheFormulas) {
  torch::manual_seed(12);
  const auto u = torch::randn({2, 3, 4, 5}, torch::kDouble);
  const auto v = torch::randn({2, 3, 4, 5}, torch::kDouble);
  auto mask = (torch::rand({2, 1, 4, 5}) > 0.4).to(torch::kDouble);
  mask[0][0][0][0] = 1.0;
  double num = 0.0;
  double den = 0.0;
  const auto ua = u.accessor<double, 4>();
  const auto va = v.accessor<double, 4>();
  const auto ma = mask.accessor<double, 4>();
  for (int n = 0; n < 2; ++n) {
    for (int y = 0; y < 4; ++y) {
      for (int x = 0; x < 5; ++x) {
        double dot = 0;
        double nu = 0;
        double nv = 0;
        for (int c = 0; c < 3; ++c) {
          dot += ua[n][c][y][x] * va[n][c][y][x];
          nu += ua[n][c][y][x] * ua[n][c][y][x];
          nv += va[n][c][y][x] * va[n][c][y][x];
        }
        num += ma[n][0][y][x] * dot / (std::sqrt(nu) * std::sqrt(nv));
        den += ma[n][0][y][x];
      }
    }
  }
  EXPECT_NEAR(maskedCosineLoss(u, v, mask).item<double>(), 1.0 - num / den, 1e-12);
  EXPECT_NEAR(maskedCosineLoss(u, u, mask).item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(maskedCosineLoss(u, -u).item<double>(), 2.0, 1e-12);
  // A zero vector has cosine 0 (eps 1e-12), not nan.
  EXPECT_NEAR(
      maskedCosineLoss(torch::zeros({1, 3, 2, 2}), torch::ones({1, 3, 2, 2})).item<double>(),
      1.0,
      1e-12);

  // Smoothness of φ_w = x² along w (2D: axes h, w): forward differences 2x + 1 along w, 0 along
  // h; L = (mean over both channels and all 3 x 4 positions of (2x+1)²) / 2.
  auto flow = torch::zeros({1, 2, 3, 5}, torch::kDouble);
  for (int x = 0; x < 5; ++x) {
    flow.select(3, x).select(1, 1).fill_(static_cast<double>(x * x));
  }
  const double alongW = (1.0 + 9.0 + 25.0 + 49.0) * 3.0 / (2.0 * 3.0 * 4.0);
  EXPECT_NEAR(smoothnessLoss(flow).item<double>(), alongW / 2.0, 1e-12);
  EXPECT_NEAR(smoothnessLoss(torch::ones({1, 3, 4, 4, 4})).item<double>(), 0.0, 1e-12);
}

TEST(GeminiLosses, RestorationAndSemiSegmentationFollowTheReferenceFormulas) {
  const auto a = torch::tensor({0.0, 1.0, 2.0, 3.0}, torch::kDouble).view({1, 1, 2, 2});
  EXPECT_NEAR(restorationLoss(a + 0.5, a).item<double>(), 100.0 * 0.25, 1e-12);

  torch::manual_seed(13);
  const auto logits = torch::randn({2, 3, 4, 4}, torch::kDouble);
  const auto labels = torch::randint(0, 3, {2, 4, 4}, torch::kLong);
  const auto p = torch::softmax(logits, 1);
  const auto y = torch::zeros_like(p).scatter_(1, labels.unsqueeze(1), 1.0);
  const auto pa = p.accessor<double, 4>();
  const auto ya = y.accessor<double, 4>();
  double ce = 0.0;
  double dice = 0.0;
  for (int n = 0; n < 2; ++n) {
    for (int k = 0; k < 3; ++k) {
      double yp = 0;
      double yy = 0;
      double pp = 0;
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j) {
          ce -= ya[n][k][i][j] * std::log(pa[n][k][i][j] + 1e-6);
          yp += ya[n][k][i][j] * pa[n][k][i][j];
          yy += ya[n][k][i][j] * ya[n][k][i][j];
          pp += pa[n][k][i][j] * pa[n][k][i][j];
        }
      }
      dice += (2.0 * yp + 1.0) / (yy + pp + 1.0);
    }
  }
  const double expected = 100.0 * (ce / (2 * 3 * 16) + 1.0 - dice / 6.0);
  EXPECT_NEAR(semiSegmentationLoss(logits, labels).item<double>(), expected, 1e-9);
  EXPECT_NEAR(semiSegmentationLoss(logits, y).item<double>(), expected, 1e-9);
  SemiSegmentationLossOptions sigmoid;
  sigmoid.sigmoid = true;
  EXPECT_TRUE(std::isfinite(semiSegmentationLoss(logits, y, sigmoid).item<double>()));
  EXPECT_THROW((void)semiSegmentationLoss(logits, labels.to(torch::kInt)), ModelError);
}

bool allZero(const torch::nn::Module& m) {
  for (const auto& p : m.parameters()) {
    if (p.grad().defined() && p.grad().abs().max().item<double>() != 0.0) {
      return false;
    }
  }
  return true;
}

TEST(GeminiLosses, StopGradientsSplitTheTwoGssTerms) {
  torch::manual_seed(14);
  // On stand-in tensors: the positive term never reaches φ, the alignment term never reaches f.
  auto fA = torch::randn({1, 4, 6, 6, 6}).requires_grad_(true);
  auto fB = torch::randn({1, 4, 6, 6, 6}).requires_grad_(true);
  auto flow = torch::randn({1, 3, 6, 6, 6}).requires_grad_(true);
  const auto mask = validityMask(flow);
  EXPECT_FALSE(mask.requires_grad());
  gssTerms(fA, fB, flow, mask).positive.backward();
  EXPECT_FALSE(flow.grad().defined());
  EXPECT_GT(fA.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(fB.grad().abs().sum().item<double>(), 0.0);
  fA.mutable_grad() = torch::Tensor();
  fB.mutable_grad() = torch::Tensor();
  gssTerms(fA, fB, flow, mask).alignment.backward();
  EXPECT_FALSE(fA.grad().defined());
  EXPECT_FALSE(fB.grad().defined());
  EXPECT_GT(flow.grad().abs().sum().item<double>(), 0.0);

  // On the network: the 0.1 term trains the backbone only.
  GeminiNet net(tiny(3));
  const auto a = torch::rand({1, 1, 8, 8, 8});
  const auto b = torch::rand({1, 1, 8, 8, 8});
  {
    const auto pair = net->forward(a, b);
    gssTerms(pair.featuresA, pair.featuresB, pair.flowAB, validityMask(pair.flowAB))
        .positive.backward();
    EXPECT_TRUE(allZero(*net->deformer()));
    EXPECT_FALSE(allZero(*net->backbone()));
  }
  // The 1.0 term trains the deformer; with φ computed from detached features the backbone gets
  // nothing (the features enter the term detached).
  net->zero_grad();
  {
    const auto fa = net->features(a);
    const auto fb = net->features(b);
    const auto phi = net->flow(fa.detach(), fb.detach());
    gssTerms(fa, fb, phi, validityMask(phi)).alignment.backward();
    EXPECT_FALSE(allZero(*net->deformer()));
    EXPECT_TRUE(allZero(*net->backbone()));
  }
  // In the reference wiring φ is computed from the live features, so the alignment term does
  // reach the backbone, but only through the deformer's input (§2.2: the "soft negatives").
  net->zero_grad();
  {
    const auto pair = net->forward(a, b);
    gssTerms(pair.featuresA, pair.featuresB, pair.flowAB, validityMask(pair.flowAB))
        .alignment.backward();
    EXPECT_FALSE(allZero(*net->deformer()));
    EXPECT_FALSE(allZero(*net->backbone()));
  }
}

TEST(GeminiLosses, AlignmentLossCombinesTheTermsWithTheReferenceWeights) {
  torch::manual_seed(15);
  GeminiNet net(tiny(2));
  const auto a = torch::rand({1, 1, 12, 12});
  const auto b = torch::rand({1, 1, 12, 12});
  torch::NoGradGuard noGrad;
  const auto loss = geminiAlignmentLoss(net, a, b);
  EXPECT_NEAR(loss.total.item<double>(),
              loss.gvs.item<double>() + 0.8 * loss.gss.item<double>() +
                  0.4 * loss.smooth.item<double>(),
              1e-5);
  const auto pair = net->forward(a, b);
  EXPECT_TRUE(torch::allclose(loss.flowAB, pair.flowAB));
  const auto mAB = validityMask(pair.flowAB);
  const auto mBA = validityMask(pair.flowBA);
  const double gvs = localNccLoss(warp(a, pair.flowAB), b, mAB).item<double>() +
                     localNccLoss(warp(b, pair.flowBA), a, mBA).item<double>();
  EXPECT_NEAR(loss.gvs.item<double>(), gvs, 1e-5);
  // Both GSS terms of a direction have the same value (detaching changes gradients only).
  const double cosAB =
      maskedCosineLoss(warp(pair.featuresA, pair.flowAB), pair.featuresB, mAB).item<double>();
  const double cosBA =
      maskedCosineLoss(warp(pair.featuresB, pair.flowBA), pair.featuresA, mBA).item<double>();
  EXPECT_NEAR(loss.gss.item<double>(), 1.1 * (cosAB + cosBA), 1e-5);
}

// In 2D: LibTorch runs 3D convolutions this small (batch 1, a few channels, 16^3) on its slow
// reference path, ~0.2 s per iteration; the 2D net at 32 x 32 takes ~30 ms.
TEST(GeminiLosses, PretrainingLossesDecreaseOverTwentyAdamSteps) {
  torch::manual_seed(16);
  GeminiNet net(tiny(2));
  // Two "subjects": a blob with a bright core and a shifted, wider blob; Ã is A corrupted.
  const Sizes size{32, 32};
  const auto a = 0.7 * blob(size, {16.0, 14.0}, 6.0) + 0.3 * blob(size, {12.0, 18.0}, 3.0);
  const auto b = 0.6 * blob(size, {18.0, 16.0}, 7.0) + 0.4 * blob(size, {14.0, 20.0}, 4.0);
  std::mt19937_64 rng(17);
  const auto corrupted = corruptAppearance(a, rng);
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(1e-3));
  std::vector<GeminiStepResult> steps;
  for (int i = 0; i < 20; ++i) {
    steps.push_back(geminiPretrainStep(net, adam, a, b, corrupted));
    EXPECT_FALSE(steps.back().alignmentSkipped);
    EXPECT_FALSE(steps.back().restorationSkipped);
  }
  const auto lastMean = [&steps](double GeminiStepResult::*field) {
    return (steps[17].*field + steps[18].*field + steps[19].*field) / 3.0;
  };
  EXPECT_LT(lastMean(&GeminiStepResult::total), steps[0].total);
  EXPECT_LT(lastMean(&GeminiStepResult::restoration), 0.5 * steps[0].restoration);
  for (const auto& p : net->parameters()) {
    ASSERT_TRUE(torch::isfinite(p).all().item<bool>());
  }
}

// ---- checkpoints and transfer -------------------------------------------------------------------

class GeminiCheckpoint : public ::testing::Test {
protected:
  void SetUp() override {
    torch::manual_seed(18);
    m_dir = fs::temp_directory_path() /
            ("densa_gemini_" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(m_dir);
    fs::create_directories(m_dir);
  }

  void TearDown() override { fs::remove_all(m_dir); }

  fs::path m_dir;
};

TEST_F(GeminiCheckpoint, SaveThenLoadIsBitIdenticalForBothArchitectures) {
  auto options = tiny(3);
  options.segmentationClasses = 2;
  GeminiNet net(options);
  net->eval();
  auto card = makeModelCard("gemini", "tiny");
  card.provenance.trainingData = "synthetic";
  saveCheckpoint(net, card, m_dir / "gemini.densa");
  const auto loaded = loadCheckpoint(m_dir / "gemini.densa");
  EXPECT_EQ(architectureId(loaded.card.options), "gemini");
  EXPECT_EQ(std::get<GeminiOptions>(loaded.card.options).segmentationClasses, 2);
  auto restored = std::get<GeminiNet>(loaded.net);
  EXPECT_FALSE(restored->is_training());
  torch::NoGradGuard noGrad;
  const auto a = torch::rand({1, 1, 9, 10, 11});
  const auto b = torch::rand({1, 1, 9, 10, 11});
  const auto x = net(a, b);
  const auto y = restored(a, b);
  EXPECT_TRUE(torch::equal(x.featuresA, y.featuresA));
  EXPECT_TRUE(torch::equal(x.flowAB, y.flowAB));
  EXPECT_TRUE(torch::equal(x.flowBA, y.flowBA));
  EXPECT_TRUE(torch::equal(net->restore(a), restored->restore(a)));
  EXPECT_TRUE(torch::equal(net->segment(a), restored->segment(a)));

  GeminiUNet unet(geminiUNetPreset("tiny"));
  unet->eval();
  saveCheckpoint(unet, makeModelCard("gemini-unet", "tiny"), m_dir / "unet.densa");
  const auto loadedUNet = loadCheckpoint(m_dir / "unet.densa");
  auto restoredUNet = std::get<GeminiUNet>(loadedUNet.net);
  EXPECT_TRUE(torch::equal(unet(a), restoredUNet(a)));
  EXPECT_EQ(readModelCard(m_dir / "unet.densa").labels.size(), 3U);
}

TEST_F(GeminiCheckpoint, BackboneWeightsTransferIntoTheSegmentationModel) {
  GeminiNet pretrained(tiny(3));
  // Make the weights differ from any fresh initialisation.
  {
    torch::NoGradGuard noGrad;
    for (auto& p : pretrained->parameters()) {
      p.add_(0.01);
    }
  }
  pretrained->eval();
  saveCheckpoint(pretrained, makeModelCard("gemini", "tiny"), m_dir / "pre.densa");
  const auto loaded = loadCheckpoint(m_dir / "pre.densa");

  const auto& pretrainedOptions = std::get<GeminiOptions>(loaded.card.options);
  GeminiUNet unet(transferOptions(pretrainedOptions, 4));
  unet->eval();
  const auto x = torch::rand({1, 1, 10, 12, 9});
  torch::NoGradGuard noGrad;
  EXPECT_FALSE(torch::equal(unet->features(x), pretrained->features(x)));
  loadBackboneFrom(unet, loaded);
  EXPECT_TRUE(torch::equal(unet->features(x), pretrained->features(x)));
  EXPECT_EQ(unet(x).sizes(), (Sizes{1, 4, 10, 12, 9}));
  // Parameter names of the two backbones agree key for key.
  for (const auto& p : pretrained->named_parameters()) {
    if (p.key().rfind("backbone.", 0) == 0) {
      EXPECT_TRUE(unet->named_parameters().contains(p.key())) << p.key();
    }
  }
  // A different backbone is refused, as is a foreign checkpoint.
  auto other = geminiUNetPreset("small");
  GeminiUNet wrong(other);
  EXPECT_THROW(loadBackboneFrom(wrong, loaded), ModelError);
  saveCheckpoint(makeNet(modelPreset("coarse-liver", "tiny")),
                 makeModelCard("coarse-liver", "tiny"),
                 m_dir / "coarse.densa");
  EXPECT_THROW(loadBackboneFrom(unet, loadCheckpoint(m_dir / "coarse.densa")), ModelError);
}

} // namespace
} // namespace densa::models
