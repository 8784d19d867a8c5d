// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/adsl.hpp"

#include "densa/models/adsl_options.hpp"
#include "densa/models/error.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/model_info.hpp"
#include "densa/models/torch/adsl_losses.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include <gtest/gtest.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <type_traits>
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

// ---- options, presets, cards, parameter counts --------------------------------------------------

TEST(AdslOptions, PresetsHaveTheDocumentedShapes) {
  const auto paper = adslPreset("paper");
  EXPECT_EQ(paper.inChannels, 3);
  EXPECT_EQ(paper.stemChannels, 64);
  EXPECT_EQ(paper.blocks, (std::vector<int>{3, 4, 6}));
  EXPECT_EQ(paper.widths, (std::vector<int>{64, 128, 256}));
  EXPECT_EQ(paper.attentionChannels, (std::vector<int>{128, 32}));
  EXPECT_EQ(paper.embeddingDim, 128);
  EXPECT_DOUBLE_EQ(paper.dropout, 0.01);
  EXPECT_EQ(paper.inputSize, 224);
  EXPECT_TRUE(paper.freezeBatchNorm);
  EXPECT_EQ(featureChannels(paper), 1024);
  const auto small = adslPreset("small");
  EXPECT_EQ(featureChannels(small), 256);
  EXPECT_EQ(small.inChannels, 1);
  EXPECT_EQ(small.inputSize, 96);
  const auto tiny = adslPreset("tiny");
  EXPECT_EQ(featureChannels(tiny), 128);
  EXPECT_EQ(tiny.blocks, (std::vector<int>{1, 1, 1}));
  EXPECT_EQ(tiny.attentionChannels, (std::vector<int>{32, 8}));
  EXPECT_EQ(tiny.embeddingDim, 128);
  for (const auto& p : presetNames()) {
    EXPECT_NO_THROW(validate(adslPreset(p))) << p;
  }
  EXPECT_EQ(architectureId(modelPreset("adsl", "tiny")), "adsl");
  EXPECT_THROW((void)adslPreset("huge"), ModelError);
}

TEST(AdslOptions, ValidationRejectsImpossibleTopologies) {
  auto o = adslPreset("tiny");
  o.widths.pop_back();
  EXPECT_THROW(validate(o), ModelError);
  o = adslPreset("tiny");
  o.attentionChannels = {8};
  EXPECT_THROW(validate(o), ModelError);
  o = adslPreset("tiny");
  o.dropout = 1.0;
  EXPECT_THROW(validate(o), ModelError);
  o = adslPreset("tiny");
  o.embeddingDim = 0;
  EXPECT_THROW(validate(o), ModelError);
  EXPECT_THROW(AdslNet{o}, ModelError);
}

TEST(AdslOptions, ModelCardsRoundTripThroughJson) {
  auto card = makeModelCard("adsl", "small");
  EXPECT_TRUE(card.labels.empty());
  auto& o = std::get<AdslOptions>(card.options);
  o.freezeBatchNorm = false;
  o.dropout = 0.1;
  o.embeddingDim = 64;
  const auto parsed = parseModelCard(toJson(card));
  const auto& p = std::get<AdslOptions>(parsed.options);
  EXPECT_EQ(p.inChannels, 1);
  EXPECT_EQ(p.stemChannels, 16);
  EXPECT_EQ(p.blocks, o.blocks);
  EXPECT_EQ(p.widths, o.widths);
  EXPECT_EQ(p.attentionChannels, o.attentionChannels);
  EXPECT_EQ(p.embeddingDim, 64);
  EXPECT_DOUBLE_EQ(p.dropout, 0.1);
  EXPECT_EQ(p.inputSize, 96);
  EXPECT_FALSE(p.freezeBatchNorm);
  auto bad = toJson(card);
  bad.replace(bad.find("\"dropout\": 0.1"), 14, "\"dropout\": 1.5");
  EXPECT_THROW((void)parseModelCard(bad), ModelError);
}

// torchvision Bottleneck(in, w): conv1 in·w + bn 2w + conv2 9w² + bn 2w + conv3 4w² + bn 8w, plus a
// downsample conv in·4w + bn 8w in the first block of a layer.
std::int64_t bottleneck(std::int64_t in, std::int64_t w, bool downsample) {
  return in * w + 2 * w + 9 * w * w + 2 * w + 4 * w * w + 8 * w +
         (downsample ? in * 4 * w + 8 * w : 0);
}

std::int64_t resnetTrunk(std::int64_t inChannels,
                         std::int64_t stem,
                         const std::vector<int>& blocks,
                         const std::vector<int>& widths) {
  std::int64_t n = inChannels * stem * 49 + 2 * stem; // conv1 7x7, bn1
  std::int64_t in = stem;
  for (std::size_t l = 0; l < blocks.size(); ++l) {
    for (int b = 0; b < blocks[l]; ++b) {
      n += bottleneck(in, widths[l], b == 0);
      in = 4 * std::int64_t{widths[l]};
    }
  }
  return n;
}

TEST(AdslOptions, PaperBackboneHasTorchvisionResNet50ParametersUpToLayer3) {
  const auto o = adslPreset("paper");
  const auto expected = resnetTrunk(3, 64, {3, 4, 6}, {64, 128, 256});
  EXPECT_EQ(expected, 8'543'296); // torchvision resnet50: conv1 + bn1 + layer1..layer3
  AdslNet net(o);
  EXPECT_EQ(countParameters(*net->backbone()), expected);
  // Attention 1024 -> 128 -> 32 -> 1 (3x3 with bias), embedding 1024 -> 128.
  const std::int64_t attention = 9 * 1024 * 128 + 128 + 9 * 128 * 32 + 32 + 9 * 32 + 1;
  EXPECT_EQ(countParameters(*net->attention()), attention);
  EXPECT_EQ(countParameters(*net->embedding()), 1024 * 128 + 128);
  const auto info = describeModel("adsl", "paper").front();
  ASSERT_EQ(info.subnetworks.size(), 3U);
  EXPECT_EQ(info.subnetworks[0].name, "backbone");
  EXPECT_EQ(info.subnetworks[0].parameters, expected);
  EXPECT_EQ(info.subnetworks[1].name, "attention");
  EXPECT_EQ(info.subnetworks[1].parameters, attention);
  EXPECT_EQ(info.subnetworks[2].name, "embedding");
  EXPECT_EQ(info.parameters, countParameters(*net));
  // The attention convs on 14 x 14: 2 x MACs.
  const double attentionFlops = 2.0 * (9.0 * 1024 * 128 + 9.0 * 128 * 32 + 9.0 * 32) * 196;
  EXPECT_NEAR(info.subnetworks[1].gflopsPerSlice, attentionFlops / 1e9, 1e-9);
  EXPECT_NEAR(info.gflopsPerWindow, 8.0 * info.gflopsPerSlice, 1e-9 * info.gflopsPerWindow);

  // torchvision names, so a resnet50 state_dict (minus layer4 / fc) loads under "backbone.".
  const auto state = stateDict(*net);
  for (const char* name : {"backbone.conv1.weight",
                           "backbone.bn1.running_var",
                           "backbone.layer1.0.conv1.weight",
                           "backbone.layer1.0.downsample.0.weight",
                           "backbone.layer1.0.downsample.1.weight",
                           "backbone.layer2.3.bn3.bias",
                           "backbone.layer3.5.conv2.weight",
                           "attention.layer1.weight",
                           "attention.layer3.bias",
                           "embedding.weight",
                           "embedding.bias",
                           "learner_of"}) {
    EXPECT_EQ(state.count(name), 1U) << name;
  }
  EXPECT_EQ(state.count("backbone.layer1.1.downsample.0.weight"), 0U);
  EXPECT_EQ(state.at("backbone.layer2.0.conv2.weight").sizes(), (Sizes{128, 128, 3, 3}));
  EXPECT_EQ(state.at("backbone.layer3.0.downsample.0.weight").sizes(), (Sizes{1024, 512, 1, 1}));
  for (const auto& [name, tensor] : state) {
    EXPECT_EQ(name.find("layer4"), std::string::npos) << name;
  }
}

TEST(AdslOptions, ModelInfoAgreesWithTheInstantiatedNetworks) {
  for (const std::string preset : {"small", "tiny"}) {
    SCOPED_TRACE(preset);
    const auto o = adslPreset(preset);
    const auto info = describeModel("adsl", preset).front();
    AdslNet net(o);
    EXPECT_EQ(info.parameters, countParameters(*net));
    EXPECT_EQ(info.subnetworks[0].parameters,
              resnetTrunk(o.inChannels, o.stemChannels, o.blocks, o.widths));
    EXPECT_EQ(info.subnetworks[0].parameters, countParameters(*net->backbone()));
    EXPECT_EQ(info.subnetworks[1].parameters, countParameters(*net->attention()));
  }
}

// ---- network ------------------------------------------------------------------------------------

TEST(AdslNet, PaperNetworkGivesA14x14MapAnd1024FeaturesOn224) {
  torch::manual_seed(0);
  torch::NoGradGuard noGrad;
  AdslNet net(adslPreset("paper"));
  net->eval();
  const auto out = net->forward(torch::rand({1, 3, 224, 224}));
  EXPECT_EQ(out.attention.sizes(), (Sizes{1, 1, 14, 14}));
  EXPECT_EQ(out.penultimate.sizes(), (Sizes{1, 1024}));
  EXPECT_EQ(out.embedding.sizes(), (Sizes{1, 128}));
  EXPECT_EQ(out.raw.sizes(), (Sizes{1, 128}));
  EXPECT_NEAR(out.penultimate.norm().item<double>(), 1.0, 1e-5);
  EXPECT_NEAR(out.embedding.norm().item<double>(), 1.0, 1e-5);
  EXPECT_GE(out.attention.min().item<double>(), 0.0);
  EXPECT_LE(out.attention.max().item<double>(), 1.0);
}

TEST(AdslNet, GreyInputIsRepeatedToRgbAndWrongChannelsThrow) {
  torch::manual_seed(1);
  torch::NoGradGuard noGrad;
  auto o = adslPreset("tiny");
  o.inChannels = 3;
  AdslNet net(o);
  net->eval();
  const auto grey = torch::rand({2, 1, 64, 64});
  const auto a = net->forward(grey).raw;
  const auto b = net->forward(grey.repeat({1, 3, 1, 1})).raw;
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_THROW((void)net->forward(torch::rand({2, 2, 64, 64})), ModelError);
  AdslNet greyNet(adslPreset("tiny"));
  EXPECT_THROW((void)greyNet->forward(torch::rand({2, 3, 64, 64})), ModelError);
}

TEST(AdslNet, EachLearnerSliceIsNormalisedSeparately) {
  torch::manual_seed(2);
  AdslNet net(adslPreset("tiny"));
  EXPECT_EQ(net->numLearners(), 1);
  net->setEqualLearners(4);
  EXPECT_EQ(net->numLearners(), 4);
  const auto neurons = net->learnerNeurons();
  ASSERT_EQ(neurons.size(), 4U);
  for (std::size_t k = 0; k < 4; ++k) {
    ASSERT_EQ(neurons[k].size(), 32U);
    EXPECT_EQ(neurons[k].front(), static_cast<std::int64_t>(32 * k));
  }
  const auto out = net->forward(torch::rand({2, 1, 64, 64}));
  EXPECT_NEAR(out.embedding.norm(2, 1).min().item<double>(), 2.0, 1e-5); // sqrt(K)
  EXPECT_NEAR(out.embedding.norm(2, 1).max().item<double>(), 2.0, 1e-5);
  for (int k = 0; k < 4; ++k) {
    const auto slice = out.embedding.narrow(1, 32 * k, 32);
    EXPECT_NEAR(slice.norm(2, 1).min().item<double>(), 1.0, 1e-5) << k;
    EXPECT_NEAR(slice.norm(2, 1).max().item<double>(), 1.0, 1e-5) << k;
    const auto expected =
        out.raw.narrow(1, 32 * k, 32) / out.raw.narrow(1, 32 * k, 32).norm(2, 1, true);
    EXPECT_TRUE(torch::allclose(slice, expected, 1e-5, 1e-6)) << k;
    EXPECT_TRUE(torch::allclose(net->learnerEmbedding(out.embedding, k), expected, 1e-5, 1e-6));
  }
  // The gradient reaches the weights through the per-learner normalisation.
  out.embedding.narrow(1, 0, 32).sum().backward();
  EXPECT_GT(net->embedding()->weight.grad().abs().sum().item<double>(), 0.0);
  // ceil(128 / 3) = 43: slices 43, 43, 42 (the reference's init_splitted).
  net->setEqualLearners(3);
  const auto three = net->learnerNeurons();
  EXPECT_EQ(three[0].size(), 43U);
  EXPECT_EQ(three[2].size(), 42U);
  EXPECT_THROW(net->setEqualLearners(0), ModelError);
  EXPECT_THROW(net->setEqualLearners(100), ModelError); // ceil = 2: only 64 non-empty slices
  EXPECT_THROW((void)net->learnerEmbedding(out.embedding, 3), ModelError);
}

TEST(AdslNet, BatchNormStaysFrozenInTrainModeUnlessDisabled) {
  torch::manual_seed(3);
  const auto input = torch::rand({2, 1, 64, 64}) * 5.0 + 1.0;
  AdslNet net(adslPreset("tiny"));
  net->train();
  EXPECT_TRUE(net->is_training());
  const auto before = stateDict(*net).at("backbone.bn1.running_mean").clone();
  const auto out = net->forward(input);
  const auto state = stateDict(*net);
  EXPECT_TRUE(torch::equal(state.at("backbone.bn1.running_mean"), before));
  EXPECT_EQ(state.at("backbone.layer1.0.bn1.num_batches_tracked").item<std::int64_t>(), 0);
  // The BN affine weights still receive gradients.
  out.raw.sum().backward();
  EXPECT_TRUE(state.at("backbone.bn1.weight").grad().defined());

  auto o = adslPreset("tiny");
  o.freezeBatchNorm = false;
  AdslNet unfrozen(o);
  unfrozen->train();
  (void)unfrozen->forward(input);
  EXPECT_FALSE(torch::equal(stateDict(*unfrozen).at("backbone.bn1.running_mean"), before));
}

TEST(AdslNet, ParameterGroupsCoverTheNetworkOnce) {
  AdslNet net(adslPreset("tiny"));
  const auto backbone = net->backboneParameters();
  const auto embedding = net->embeddingParameters();
  EXPECT_EQ(backbone.size() + embedding.size(), net->parameters().size());
  std::int64_t n = 0;
  for (const auto& p : backbone) {
    n += p.numel();
  }
  EXPECT_EQ(n, countParameters(*net->backbone()) + countParameters(*net->attention()));
  ASSERT_EQ(embedding.size(), 2U);
  EXPECT_TRUE(embedding[0].is_same(net->embedding()->weight));
}

// ---- Taylor importance and the split ------------------------------------------------------------

TEST(AdslSplit, TaylorImportanceMatchesHandValues) {
  // a·g = [[1, 2, 0], [3, 0, 2]] -> s = [2, 1, 1] -> v = s / √6 -> min-max [1, 0, 0].
  const auto a = torch::tensor({1.0, 2.0, 0.0, 3.0, 0.0, 1.0}).reshape({2, 3});
  const auto g = torch::tensor({1.0, 1.0, 1.0, 1.0, 1.0, 2.0}).reshape({2, 3});
  const auto v = taylorImportance(a, g);
  ASSERT_EQ(v.sizes(), (Sizes{3}));
  EXPECT_DOUBLE_EQ(v[0].item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(v[1].item<double>(), 0.0);
  EXPECT_DOUBLE_EQ(v[2].item<double>(), 0.0);
  // s = [-4, 2, 1]: |s| = [4, 2, 1] -> [1, 1/3, 0].
  const auto g2 = torch::tensor({-4.0, 1.0, 1.0, -4.0, 1.0, 1.0}).reshape({2, 3});
  const auto a2 = torch::tensor({1.0, 2.0, 0.0, 1.0, 2.0, 2.0}).reshape({2, 3});
  const auto v2 = taylorImportance(a2, g2);
  EXPECT_NEAR(v2[0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(v2[1].item<double>(), 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(v2[2].item<double>(), 0.0, 1e-12);
  EXPECT_EQ(taylorImportance(torch::zeros({2, 3}), g).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(taylorImportance(torch::ones({2, 3}), torch::ones({2, 3})).abs().sum().item<double>(),
            0.0);
  EXPECT_THROW((void)taylorImportance(a, torch::ones({3, 2})), ModelError);
}

TEST(AdslSplit, SplitsTheLastLearnerByGatherThenScatter) {
  torch::manual_seed(4);
  AdslNet net(adslPreset("tiny"));
  net->setEqualLearners(8); // 16 dims each; the last learner owns 112..127
  const auto weight = net->embedding()->weight.detach().clone();
  const auto bias = net->embedding()->bias.detach().clone();
  const auto importance = torch::tensor(
      {0.1, 0.9, 0.2, 0.6, 0.95, 0.3, 0.7, 0.0, 0.55, 0.4, 0.8, 0.1, 0.2, 0.3, 0.45, 0.5});
  const auto result = net->splitLastLearner(importance);
  ASSERT_TRUE(result.split);
  EXPECT_EQ(result.keptDims, 6);
  EXPECT_EQ(result.newDims, 10);
  // By v descending: 0.95 (pos 4), 0.9 (1), 0.8 (10), 0.7 (6), 0.6 (3), 0.55 (8).
  const std::vector<std::int64_t> important{116, 113, 122, 118, 115, 120};
  EXPECT_EQ(result.important, important);
  EXPECT_EQ(net->numLearners(), 9);
  const auto neurons = net->learnerNeurons();
  EXPECT_EQ(neurons[7], (std::vector<std::int64_t>{112, 113, 114, 115, 116, 117}));
  EXPECT_EQ(neurons[8].size(), 10U);
  EXPECT_EQ(neurons[8].front(), 118);
  const auto& w = net->embedding()->weight;
  const auto& b = net->embedding()->bias;
  for (std::size_t i = 0; i < important.size(); ++i) {
    const auto target = 112 + static_cast<std::int64_t>(i);
    EXPECT_TRUE(torch::equal(w[target], weight[important[i]])) << i;
    EXPECT_EQ(b[target].item<float>(), bias[important[i]].item<float>()) << i;
  }
  // Rows of the other learners are untouched; the new learner's rows are fresh.
  EXPECT_TRUE(torch::equal(w.narrow(0, 0, 112), weight.narrow(0, 0, 112)));
  const auto fresh = w.narrow(0, 118, 10);
  for (std::int64_t r = 118; r < 128; ++r) {
    EXPECT_FALSE(torch::equal(w[r], weight[r])) << r;
  }
  const double xavier = std::sqrt(2.0 / (128.0 + 10.0)); // fan_in F = 128, fan_out 10
  EXPECT_NEAR(fresh.std().item<double>(), xavier, 0.2 * xavier);
  EXPECT_LE(b.narrow(0, 118, 10).abs().max().item<double>(), 1.0 / std::sqrt(128.0));
}

TEST(AdslSplit, NoSplitWithFewImportantDimsOrASmallLearner) {
  torch::manual_seed(5);
  AdslNet net(adslPreset("tiny"));
  net->setEqualLearners(8);
  const auto weight = net->embedding()->weight.detach().clone();
  auto importance = torch::zeros({16});
  importance.narrow(0, 0, 4).fill_(1.0); // n = 4 < 5
  const auto few = net->splitLastLearner(importance);
  EXPECT_FALSE(few.split);
  EXPECT_EQ(few.important.size(), 4U);
  EXPECT_EQ(net->numLearners(), 8);
  EXPECT_TRUE(torch::equal(net->embedding()->weight, weight));

  net->setEqualLearners(16); // 8 dims per learner: not > 10
  const auto small = net->splitLastLearner(torch::ones({8}));
  EXPECT_FALSE(small.split);
  EXPECT_EQ(net->numLearners(), 16);
  EXPECT_TRUE(torch::equal(net->embedding()->weight, weight));
  EXPECT_THROW((void)net->splitLastLearner(torch::ones({16})), ModelError);
}

TEST(AdslSplit, AdamStateSurvivesTheSplit) {
  torch::manual_seed(6);
  AdslNet net(adslPreset("tiny"));
  net->train();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(net->backboneParameters(), std::make_unique<torch::optim::AdamOptions>(1e-5));
  groups.emplace_back(net->embeddingParameters(),
                      std::make_unique<torch::optim::AdamOptions>(1e-5));
  torch::optim::Adam adam(std::move(groups), torch::optim::AdamOptions(1e-5).weight_decay(1e-4));
  const auto images = torch::rand({4, 1, 64, 64});
  const auto labels = torch::tensor({0, 0, 1, 1}, torch::kLong);
  const auto step = [&] {
    adam.zero_grad();
    const auto out = net->forward(images);
    const auto k = net->numLearners() - 1;
    const auto loss =
        out.raw.pow(2).mean() + marginLoss(net->learnerEmbedding(out.embedding, k), labels);
    loss.backward();
    adam.step();
  };
  step();
  using Key = std::decay_t<decltype(adam.state().begin()->first)>;
  std::set<Key> keys;
  for (const auto& entry : adam.state()) {
    keys.insert(entry.first);
  }
  const auto* weightImpl = net->embedding()->weight.unsafeGetTensorImpl();
  auto importance = torch::zeros({128});
  importance.narrow(0, 0, 20).fill_(1.0);
  ASSERT_TRUE(net->splitLastLearner(importance).split);
  EXPECT_EQ(net->embedding()->weight.unsafeGetTensorImpl(), weightImpl);
  ASSERT_NO_THROW(step());
  std::set<Key> after;
  for (const auto& entry : adam.state()) {
    after.insert(entry.first);
    const auto& s = static_cast<const torch::optim::AdamParamState&>(*entry.second);
    EXPECT_EQ(s.step(), 2); // the state was kept, not recreated
  }
  EXPECT_EQ(after, keys);
  EXPECT_EQ(net->numLearners(), 2);
}

// ---- losses -------------------------------------------------------------------------------------

// Four 2-D points, classes {0, 0, 1, 1}: x0 (0, 0), x1 (0.3, 0), x2 (1, 0), x3 (0, 0.45).
// d01 0.3, d02 1, d03 0.45, d12 0.7, d13 √0.2925 ≈ 0.541, d23 √1.2025 ≈ 1.097.
const std::array<std::array<double, 2>, 4> kPoints{
    {{0.0, 0.0}, {0.3, 0.0}, {1.0, 0.0}, {0.0, 0.45}}};

torch::Tensor points() {
  std::vector<double> flat;
  for (const auto& p : kPoints) {
    flat.push_back(p[0]);
    flat.push_back(p[1]);
  }
  return torch::tensor(flat, torch::kDouble).reshape({4, 2});
}

double distance(std::size_t i, std::size_t j, double eps) {
  const double dx = kPoints[i][0] - kPoints[j][0];
  const double dy = kPoints[i][1] - kPoints[j][1];
  return std::sqrt(dx * dx + dy * dy + eps);
}

TEST(AdslLoss, PairwiseDistancesMatchHandValues) {
  const auto d = adslPairwiseDistances(points());
  ASSERT_EQ(d.sizes(), (Sizes{4, 4}));
  for (std::size_t i = 0; i < 4; ++i) {
    for (std::size_t j = 0; j < 4; ++j) {
      const double expected = i == j ? 0.01 : distance(i, j, 0.0); // the diagonal: √1e-4
      EXPECT_NEAR(d[static_cast<std::int64_t>(i)][static_cast<std::int64_t>(j)].item<double>(),
                  expected,
                  1e-12)
          << i << "," << j;
    }
  }
}

TEST(AdslLoss, SamplerTakesTheNearestNegativesBeyondTheCutoff) {
  // 4 ordered positive pairs / B = 4 -> m = 1. Anchor 0: x3 (0.45) is below the cutoff, so x2;
  // anchor 1: x3 (0.54) is nearer than x2 (0.7); anchors 2 and 3: x1 (0.7, 0.54; x0 is 1 / 0.45).
  const auto t = dcmlSampleTriplets(points(), torch::tensor({0, 0, 1, 1}, torch::kLong));
  const auto list = [](const torch::Tensor& x) {
    return std::vector<std::int64_t>(x.data_ptr<std::int64_t>(),
                                     x.data_ptr<std::int64_t>() + x.numel());
  };
  EXPECT_EQ(list(t.anchors), (std::vector<std::int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(list(t.positives), (std::vector<std::int64_t>{1, 0, 3, 2}));
  EXPECT_EQ(list(t.negatives), (std::vector<std::int64_t>{2, 3, 1, 1}));

  // Random batch, 3 classes x 4: m = 3 negatives per anchor, each the nearest valid ones.
  torch::manual_seed(7);
  const auto e = torch::nn::functional::normalize(
      torch::randn({12, 8}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  const auto labels = torch::tensor({0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}, torch::kLong);
  const auto r = dcmlSampleTriplets(e, labels, 0.5);
  const auto d = adslPairwiseDistances(e);
  const auto anchors = list(r.anchors);
  const auto positives = list(r.positives);
  const auto negatives = list(r.negatives);
  ASSERT_EQ(anchors.size(), negatives.size());
  ASSERT_EQ(anchors.size(), positives.size());
  for (std::int64_t i = 0; i < 12; ++i) {
    std::vector<std::pair<float, std::int64_t>> valid;
    for (std::int64_t j = 0; j < 12; ++j) {
      if (j / 4 != i / 4 && d[i][j].item<float>() >= 0.5F) {
        valid.emplace_back(d[i][j].item<float>(), j);
      }
    }
    std::sort(valid.begin(), valid.end());
    std::set<std::int64_t> expected;
    for (std::size_t q = 0; q < valid.size() && q < 3; ++q) {
      expected.insert(valid[q].second);
    }
    std::set<std::int64_t> got;
    std::int64_t count = 0;
    for (std::size_t t2 = 0; t2 < anchors.size(); ++t2) {
      if (anchors[t2] != i) {
        continue;
      }
      ++count;
      got.insert(negatives[t2]);
      EXPECT_EQ(positives[t2] / 4, i / 4);
      EXPECT_NE(positives[t2], i);
      EXPECT_GE(d[i][negatives[t2]].item<float>(), 0.5F);
    }
    EXPECT_EQ(count, static_cast<std::int64_t>(expected.size())) << i;
    EXPECT_EQ(got, expected) << i;
  }
}

TEST(AdslLoss, MarginLossMatchesHandValues) {
  // The triplets of the sampler test; α 0.2, β 1.2: relu(d_ap − 1.0) + relu(1.4 − d_an).
  const std::array<std::array<std::size_t, 3>, 4> triplets{
      {{0, 1, 2}, {1, 0, 3}, {2, 3, 1}, {3, 2, 1}}};
  double sum = 0.0;
  int terms = 0;
  for (const auto& [a, p, n] : triplets) {
    const double pos = std::max(0.0, distance(a, p, 1e-8) - 1.2 + 0.2);
    const double neg = std::max(0.0, 1.2 - distance(a, n, 1e-8) + 0.2);
    sum += pos + neg;
    terms += (pos > 0.0 ? 1 : 0) + (neg > 0.0 ? 1 : 0);
  }
  EXPECT_EQ(terms, 6); // d23 > 1 gives two positive terms; all four negatives are < 1.4
  auto e = points().requires_grad_(true);
  const auto loss = marginLoss(e, torch::tensor({0, 0, 1, 1}, torch::kLong));
  EXPECT_NEAR(loss.item<double>(), sum / terms, 1e-12);
  loss.backward();
  EXPECT_GT(e.grad().abs().sum().item<double>(), 0.0);
}

TEST(AdslLoss, NoPositiveTermGivesAZeroLossConnectedToTheGraph) {
  // Tight classes far apart: d_ap = 0.1 < β − α, d_an >= 1.9 > β + α.
  auto e = torch::tensor({0.0, 0.0, 0.1, 0.0, 2.0, 0.0, 2.1, 0.0}, torch::kDouble)
               .reshape({4, 2})
               .requires_grad_(true);
  const auto labels = torch::tensor({0, 0, 1, 1}, torch::kLong);
  EXPECT_EQ(dcmlSampleTriplets(e, labels).anchors.numel(), 4);
  const auto loss = marginLoss(e, labels);
  EXPECT_EQ(loss.item<double>(), 0.0);
  ASSERT_TRUE(loss.requires_grad());
  loss.backward();
  EXPECT_EQ(e.grad().abs().sum().item<double>(), 0.0);
  // One sample per class: no positives, no triplets, still a graph-connected zero.
  auto single = torch::rand({3, 2}).requires_grad_(true);
  const auto none = marginLoss(single, torch::tensor({0, 1, 2}, torch::kLong));
  EXPECT_EQ(none.item<double>(), 0.0);
  EXPECT_TRUE(none.requires_grad());
}

// ---- checkpoint
// -----------------------------------------------------------------------------------

class AdslCheckpoint : public ::testing::Test {
protected:
  void SetUp() override {
    m_dir = fs::temp_directory_path() /
            ("densa_adsl_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
             "_" + std::to_string(std::random_device{}()));
    fs::remove_all(m_dir);
    fs::create_directories(m_dir);
  }

  void TearDown() override { fs::remove_all(m_dir); }

  fs::path m_dir;
};

TEST_F(AdslCheckpoint, RoundTripRestoresTheLearnerPartitionAndTheOutputs) {
  torch::manual_seed(8);
  AdslNet net(adslPreset("tiny"));
  auto importance = torch::zeros({128});
  importance.narrow(0, 40, 8).fill_(1.0);
  ASSERT_TRUE(net->splitLastLearner(importance).split); // uneven learners: 8 and 120 dims
  ASSERT_EQ(net->learnerNeurons().front().size(), 8U);
  net->eval();
  saveCheckpoint(AnyNet{net}, makeModelCard("adsl", "tiny"), m_dir / "adsl.densa");
  const auto loaded = loadCheckpoint(m_dir / "adsl.densa");
  ASSERT_TRUE(std::holds_alternative<AdslNet>(loaded.net));
  auto restored = std::get<AdslNet>(loaded.net);
  EXPECT_EQ(restored->numLearners(), 2);
  EXPECT_TRUE(torch::equal(restored->learnerOf(), net->learnerOf()));
  EXPECT_EQ(restored->learnerNeurons(), net->learnerNeurons());
  torch::NoGradGuard noGrad;
  const auto input = torch::rand({2, 1, 64, 64});
  const auto a = net->forward(input);
  const auto b = restored->forward(input);
  EXPECT_TRUE(torch::equal(a.embedding, b.embedding));
  EXPECT_TRUE(torch::equal(a.penultimate, b.penultimate));
  EXPECT_TRUE(torch::equal(a.attention, b.attention));
  EXPECT_EQ(architectureId(loaded.card.options), "adsl");
}

} // namespace
} // namespace densa::models
