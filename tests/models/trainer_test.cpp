// SPDX-License-Identifier: Apache-2.0
#include "densa/models/error.hpp"
#include "densa/models/torch/checkpoint.hpp"
#include "densa/models/torch/training.hpp"

#include <gtest/gtest.h>
#include <torch/nn/modules/batchnorm.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <ostream>
#include <string>
#include <vector>

namespace densa::models {
namespace {

namespace fs = std::filesystem;
using Weights = std::map<std::string, torch::Tensor>;

class TempDir {
public:
  TempDir()
      : m_path(fs::temp_directory_path() / ("densa_trainer_test_" + std::to_string(::getpid()) +
                                            "_" + std::to_string(counter()++))) {
    fs::create_directories(m_path);
  }

  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(m_path, ignored);
  }

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] fs::path operator/(const std::string& name) const { return m_path / name; }

private:
  static int& counter() {
    static int n = 0;
    return n;
  }

  fs::path m_path;
};

AnyNet tinyNet(const std::string& architecture, std::uint64_t seed) {
  torch::manual_seed(seed);
  return makeNet(modelPreset(architecture, "tiny"));
}

Weights snapshot(const AnyNet& net) {
  Weights out;
  for (const auto& [name, t] : stateDict(*moduleOf(net))) {
    out.emplace(name, t.detach().clone());
  }
  return out;
}

bool changed(const Weights& before, const AnyNet& net, const std::string& name) {
  return !torch::equal(before.at(name), stateDict(*moduleOf(net)).at(name));
}

// A "liver" disc with a "tumour" inside, HU-like intensities / 100, a little noise.
struct Batch {
  torch::Tensor input;
  torch::Tensor target;
};

torch::Tensor phantomLabels(std::int64_t depth, std::int64_t size) {
  const auto z = torch::arange(depth, torch::kFloat).view({depth, 1, 1}) - (depth - 1) / 2.0;
  const auto y = torch::arange(size, torch::kFloat).view({1, size, 1}) - size / 2.0;
  const auto x = torch::arange(size, torch::kFloat).view({1, 1, size}) - size / 2.0;
  const auto liver = (z.pow(2) + y.pow(2) + x.pow(2)) < size * size / 8.0;
  const auto tumour = (z.pow(2) + (y - 3).pow(2) + (x + 2).pow(2)) < 16.0;
  auto label = torch::zeros({depth, size, size}, torch::kLong);
  label.masked_fill_(liver, 1);
  label.masked_fill_(tumour, 2);
  return label;
}

torch::Tensor imageOf(const torch::Tensor& label) {
  auto image = torch::full(label.sizes(), -1.0F);
  image.masked_fill_(label == 1, 0.6F);
  image.masked_fill_(label == 2, 0.2F);
  return image + 0.1F * torch::randn(label.sizes()) - 0.48F;
}

// Hybrid stages: [1, 1, 8, 32, 32] and [1, 8, 32, 32].
Batch hybridBatch() {
  torch::manual_seed(1234);
  const auto label = phantomLabels(8, 32);
  return {imageOf(label).view({1, 1, 8, 32, 32}), label.unsqueeze(0)};
}

// 2D stages: `batch` slices with their neighbours as channels, the centre slice's labels.
Batch sliceBatch(std::int64_t batch, std::int64_t size, bool binary = false) {
  torch::manual_seed(4321);
  const auto label = phantomLabels(batch + 2, size);
  const auto image = imageOf(label);
  std::vector<torch::Tensor> inputs;
  for (std::int64_t i = 0; i < batch; ++i) {
    inputs.push_back(image.narrow(0, i, 3));
  }
  auto target = label.narrow(0, 1, batch).clone();
  if (binary) {
    target.clamp_max_(1);
  }
  return {torch::stack(inputs), target};
}

TrainerOptions optionsFor(const std::string& stage) {
  TrainerOptions o;
  o.stage = stage;
  return o;
}

// ---- schedules and optimisers --------------------------------------------------------------

TEST(TrainerSchedule, FollowsWarmupPolyAndCosineFormulas) {
  TrainerOptions o = optionsFor("2d");
  o.learningRate = 0.1;
  o.totalSteps = 110;
  o.warmupSteps = 10;
  EXPECT_DOUBLE_EQ(scheduledLearningRate(o, 0), 0.01);
  EXPECT_DOUBLE_EQ(scheduledLearningRate(o, 9), 0.1);
  EXPECT_DOUBLE_EQ(scheduledLearningRate(o, 10), 0.1);
  EXPECT_DOUBLE_EQ(scheduledLearningRate(o, 1000), 0.1);
  o.schedule = "poly";
  EXPECT_DOUBLE_EQ(scheduledLearningRate(o, 10), 0.1);
  EXPECT_NEAR(scheduledLearningRate(o, 60), 0.1 * std::pow(0.5, 0.9), 1e-15);
  EXPECT_DOUBLE_EQ(scheduledLearningRate(o, 110), 0.0);
  EXPECT_DOUBLE_EQ(scheduledLearningRate(o, 500), 0.0);
  o.schedule = "cosine";
  EXPECT_NEAR(
      scheduledLearningRate(o, 35), 0.1 * 0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-15);
  EXPECT_NEAR(scheduledLearningRate(o, 60), 0.05, 1e-15);
  o.schedule = "step";
  EXPECT_THROW((void)scheduledLearningRate(o, 0), ModelError);
}

TEST(TrainerSchedule, StepReportsTheScheduledRate) {
  TrainerOptions o = optionsFor("2d");
  o.schedule = "poly";
  o.totalSteps = 4;
  o.learningRate = 0.01;
  Trainer trainer(tinyNet("dense-unet-2d", 1), makeModelCard("dense-unet-2d", "tiny"), o);
  const auto [input, target] = sliceBatch(2, 32);
  for (std::int64_t s = 0; s < 3; ++s) {
    const auto r = trainer.step(input, target);
    EXPECT_EQ(r.step, s + 1);
    EXPECT_DOUBLE_EQ(r.learningRate, scheduledLearningRate(o, s));
    EXPECT_TRUE(std::isfinite(r.loss));
  }
  EXPECT_EQ(trainer.stepCount(), 3);
}

TEST(TrainerOptimiser, FirstNesterovStepIsLrTimesOnePlusMomentumTimesGradient) {
  auto net = tinyNet("dense-unet-2d", 2);
  const auto before = snapshot(net);
  TrainerOptions o = optionsFor("2d");
  o.learningRate = 0.01;
  o.batchNormInference = true;
  Trainer trainer(net, makeModelCard("dense-unet-2d", "tiny"), o);
  const auto [input, target] = sliceBatch(2, 32);
  (void)trainer.step(input, target);
  for (const auto& p : moduleOf(net)->named_parameters(true)) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    const auto expected = before.at(p.key()) - 0.01 * 1.9 * p.value().grad();
    EXPECT_TRUE(torch::allclose(p.value(), expected, 1e-5, 1e-7)) << p.key();
  }
}

TEST(TrainerOptimiser, FirstAdamStepMovesEachWeightByTheLearningRate) {
  auto net = tinyNet("dense-unet-2d", 3);
  const auto before = snapshot(net);
  TrainerOptions o = optionsFor("2d");
  o.optimizer = "adam";
  o.learningRate = 1e-3;
  Trainer trainer(net, makeModelCard("dense-unet-2d", "tiny"), o);
  const auto [input, target] = sliceBatch(2, 32);
  (void)trainer.step(input, target);
  const auto conv =
      moduleOf(net)->named_parameters(true)["conv0.weight"]; // a handle, not a reference
  const auto g = conv.grad();
  const auto strong = g.abs() > 1e-4; // where eps = 1e-8 is negligible
  ASSERT_GT(strong.sum().item<std::int64_t>(), 0);
  const auto delta = (conv - before.at("conv0.weight")).masked_select(strong);
  const auto expected = -1e-3 * g.sign().masked_select(strong);
  EXPECT_TRUE(torch::allclose(delta, expected, 1e-3, 1e-9));
}

TEST(TrainerOptions, RejectsBadSettingsAndNetsThatDoNotFitTheStage) {
  const auto card = makeModelCard("dense-unet-2d", "tiny");
  EXPECT_THROW(Trainer(tinyNet("dense-unet-2d", 1), card, optionsFor("3d")), ModelError);
  EXPECT_THROW(Trainer(tinyNet("dense-unet-2d", 1), card, optionsFor("3dpart")), ModelError);
  EXPECT_THROW(Trainer(tinyNet("dense-unet-2d", 1), card, optionsFor("coarse")), ModelError);
  EXPECT_THROW(Trainer(tinyNet("coarse-liver", 1), card, optionsFor("2d")), ModelError);
  auto o = optionsFor("2d");
  o.optimizer = "rmsprop";
  EXPECT_THROW(Trainer(tinyNet("dense-unet-2d", 1), card, o), ModelError);
  o = optionsFor("2d");
  o.loss.crossEntropy.classWeights = {1.0, 2.0};
  EXPECT_THROW(Trainer(tinyNet("dense-unet-2d", 1), card, o), ModelError);

  Trainer trainer(tinyNet("dense-unet-2d", 1), card, optionsFor("2d"));
  const auto [input, target] = sliceBatch(2, 32);
  EXPECT_THROW((void)trainer.step(input.unsqueeze(0), target), ModelError);
  EXPECT_THROW((void)trainer.step(input, target.to(torch::kInt)), ModelError);
  EXPECT_THROW((void)trainer.step(input, target + 3), ModelError);
}

// ---- freezing per stage --------------------------------------------------------------------

TEST(TrainerFreezing, TwoDimensionalStageTrainsOnlyTheTwoDimensionalNet) {
  auto net = tinyNet("hdenseunet", 4);
  const auto before = snapshot(net);
  auto o = optionsFor("2d");
  o.learningRate = 0.05;
  Trainer trainer(net, makeModelCard("hdenseunet", "tiny"), o);
  for (const auto& name : trainer.trainableParameterNames()) {
    EXPECT_EQ(name.rfind("net2d.", 0), 0U) << name;
  }
  const auto [input, target] = sliceBatch(2, 32);
  (void)trainer.step(input, target);
  EXPECT_TRUE(changed(before, net, "net2d.conv0.weight"));
  EXPECT_TRUE(changed(before, net, "net2d.norm0.running_mean"));
  for (const auto& [name, t] : before) {
    if (name.rfind("net2d.", 0) != 0) {
      EXPECT_FALSE(changed(before, net, name)) << name;
    }
  }
  const auto p = trainer.predictProbabilities(input);
  EXPECT_EQ(p.sizes(), (std::vector<std::int64_t>{2, 3, 32, 32}));
  EXPECT_TRUE(torch::allclose(p.sum(1), torch::ones({2, 32, 32}), 1e-5, 1e-5));
}

TEST(TrainerFreezing, ThreeDimensionalPartKeepsTheTwoDimensionalBranchFixed) {
  auto net = tinyNet("hdenseunet", 5);
  const auto before = snapshot(net);
  auto o = optionsFor("3dpart");
  o.learningRate = 0.05;
  Trainer trainer(net, makeModelCard("hdenseunet", "tiny"), o);
  for (const auto& name : trainer.trainableParameterNames()) {
    EXPECT_NE(name.rfind("net2d.", 0), 0U) << name;
  }
  const auto [input, target] = hybridBatch();
  (void)trainer.step(input, target);
  for (const auto& [name, t] : before) {
    if (name.rfind("net2d.", 0) == 0) {
      EXPECT_FALSE(changed(before, net, name)) << name; // weights and BN statistics
    }
  }
  EXPECT_TRUE(changed(before, net, "net3d.conv0.weight"));
  EXPECT_TRUE(changed(before, net, "net3d.block1.layer1.norm1.running_var"));
  EXPECT_TRUE(changed(before, net, "fusion_conv.weight"));
  EXPECT_TRUE(changed(before, net, "classifier.bias"));
  const auto p = trainer.predictProbabilities(input);
  EXPECT_EQ(p.sizes(), (std::vector<std::int64_t>{1, 3, 8, 32, 32}));
}

TEST(TrainerFreezing, EndToEndFreezesTheReferenceBatchNorms) {
  auto net = tinyNet("hdenseunet", 6);
  const auto before = snapshot(net);
  auto o = optionsFor("end2end");
  o.learningRate = 0.05;
  Trainer trainer(net, makeModelCard("hdenseunet", "tiny"), o);
  const auto [input, target] = hybridBatch();
  (void)trainer.step(input, target);
  const auto frozenNorm = [](const std::string& name) {
    const bool bn = name.find("norm") != std::string::npos;
    return bn && (name.rfind("net2d.", 0) == 0 || name.rfind("net3d.block", 0) == 0 ||
                  name.rfind("net3d.trans", 0) == 0);
  };
  int frozen = 0;
  for (const auto& [name, t] : before) {
    if (frozenNorm(name)) {
      ++frozen;
      EXPECT_FALSE(changed(before, net, name)) << name; // statistics and affine
    }
  }
  EXPECT_GT(frozen, 20);
  for (const auto& name : trainer.trainableParameterNames()) {
    EXPECT_FALSE(frozenNorm(name)) << name;
  }
  // Convolutions everywhere train; the 3D stem, decoder and fusion BNs train and track statistics.
  for (const char* name : {"net2d.conv0.weight",
                           "net2d.up4.conv.weight",
                           "net3d.block1.layer1.conv1.weight",
                           "net3d.norm0.weight",
                           "net3d.norm0.running_mean",
                           "net3d.up0.norm.running_mean",
                           "net3d.up4.norm.weight",
                           "fusion_norm.running_var",
                           "fusion_norm.weight"}) {
    EXPECT_TRUE(changed(before, net, name)) << name;
  }
}

TEST(TrainerFreezing, BatchNormInferenceFreezesEveryRunningStatistic) {
  auto net = tinyNet("dense-unet-2d", 7);
  const auto before = snapshot(net);
  auto o = optionsFor("2d");
  o.batchNormInference = true;
  Trainer trainer(net, makeModelCard("dense-unet-2d", "tiny"), o);
  const auto [input, target] = sliceBatch(2, 32);
  (void)trainer.step(input, target);
  for (const auto& [name, t] : before) {
    if (name.find("running_") != std::string::npos ||
        name.find("num_batches") != std::string::npos) {
      EXPECT_FALSE(changed(before, net, name)) << name;
    }
  }
  EXPECT_TRUE(changed(before, net, "norm0.weight"));
}

// ---- every stage learns --------------------------------------------------------------------

struct LearnCase {
  const char* stage;
  const char* architecture;
};

void PrintTo(const LearnCase& c, std::ostream* os) {
  *os << c.stage << " on " << c.architecture;
}

class TrainerLearns : public ::testing::TestWithParam<LearnCase> {};

TEST_P(TrainerLearns, LossFallsOnAFixedBatch) {
  const auto& c = GetParam();
  auto o = optionsFor(c.stage);
  o.optimizer = "adam";
  o.learningRate = 1e-2;
  const std::string stage = c.stage;
  const bool hybrid = stage == "3dpart" || stage == "end2end";
  const auto batch =
      hybrid ? hybridBatch() : sliceBatch(2, stage == "coarse" ? 64 : 32, stage == "coarse");
  Trainer trainer(tinyNet(c.architecture, 8), makeModelCard(c.architecture, "tiny"), o);
  const double first = trainer.step(batch.input, batch.target).loss;
  double last = first;
  for (int i = 0; i < 24; ++i) {
    last = trainer.step(batch.input, batch.target).loss;
  }
  EXPECT_LT(last, 0.6 * first) << stage << ": " << first << " -> " << last;
}

INSTANTIATE_TEST_SUITE_P(Stages,
                         TrainerLearns,
                         ::testing::Values(LearnCase{"coarse", "coarse-liver"},
                                           LearnCase{"2d", "hdenseunet"},
                                           LearnCase{"3dpart", "hdenseunet"},
                                           LearnCase{"end2end", "hdenseunet"}),
                         [](const ::testing::TestParamInfo<LearnCase>& test) {
                           const std::string stage = test.param.stage;
                           return stage == "2d" ? std::string("twoD") : stage;
                         });

// ---- resume, stage hand-over, export -------------------------------------------------------

void expectIdentical(const AnyNet& a, const AnyNet& b) {
  const auto sa = stateDict(*moduleOf(a));
  const auto sb = stateDict(*moduleOf(b));
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [name, t] : sa) {
    EXPECT_TRUE(torch::equal(t, sb.at(name))) << name;
  }
}

// Train 6 steps straight vs 3 steps, save, a fresh trainer (other initial weights, other RNG
// position) loads the state and takes the last 3: bit-identical weights. Dropout (the 2D decoder's
// and the fusion head's) exercises the RNG state; momentum buffers / Adam moments the optimiser's.
void checkExactResume(const std::string& architecture, TrainerOptions o, const Batch& batch) {
  TempDir dir;
  const auto card = makeModelCard(architecture, "tiny");
  o.schedule = "cosine";
  o.totalSteps = 6;
  auto straightNet = tinyNet(architecture, 9);
  {
    Trainer straight(straightNet, card, o);
    for (int i = 0; i < 6; ++i) {
      (void)straight.step(batch.input, batch.target);
    }
  }
  auto resumedNet = tinyNet(architecture, 9);
  {
    Trainer first(resumedNet, card, o);
    for (int i = 0; i < 3; ++i) {
      (void)first.step(batch.input, batch.target);
    }
    first.saveState(dir / "state.pt");
  }
  EXPECT_FALSE(fs::exists(dir / "state.pt.tmp"));
  auto freshNet = tinyNet(architecture, 77);
  torch::manual_seed(555);
  Trainer second(freshNet, card, o);
  second.loadState(dir / "state.pt");
  EXPECT_EQ(second.stepCount(), 3);
  for (int i = 0; i < 3; ++i) {
    const auto r = second.step(batch.input, batch.target);
    EXPECT_DOUBLE_EQ(r.learningRate, scheduledLearningRate(o, 3 + i));
  }
  expectIdentical(straightNet, freshNet);
}

TEST(TrainerResume, SgdTwoDimensionalStageResumesBitIdentically) {
  auto o = optionsFor("2d");
  o.learningRate = 0.05;
  checkExactResume("dense-unet-2d", o, sliceBatch(2, 32));
}

TEST(TrainerResume, AdamEndToEndStageResumesBitIdentically) {
  auto o = optionsFor("end2end");
  o.optimizer = "adam";
  o.learningRate = 1e-3;
  checkExactResume("hdenseunet", o, hybridBatch());
}

TEST(TrainerResume, RejectsForeignAndMismatchedStates) {
  TempDir dir;
  const auto card = makeModelCard("hdenseunet", "tiny");
  Trainer twoD(tinyNet("hdenseunet", 1), card, optionsFor("2d"));
  twoD.saveState(dir / "2d.pt");
  Trainer threeD(tinyNet("hdenseunet", 1), card, optionsFor("3dpart"));
  EXPECT_THROW(threeD.loadState(dir / "2d.pt"), ModelError); // another stage
  auto adam = optionsFor("2d");
  adam.optimizer = "adam";
  Trainer other(tinyNet("hdenseunet", 1), card, adam);
  EXPECT_THROW(other.loadState(dir / "2d.pt"), ModelError); // another optimiser
  Trainer plain(
      tinyNet("dense-unet-2d", 1), makeModelCard("dense-unet-2d", "tiny"), optionsFor("2d"));
  EXPECT_THROW(plain.loadState(dir / "2d.pt"), ModelError); // another architecture
  std::ofstream(dir / "junk.pt") << "not a state";
  EXPECT_THROW(twoD.loadState(dir / "junk.pt"), ModelError);
  EXPECT_THROW(twoD.loadState(dir / "missing.pt"), ModelError);
}

TEST(TrainerInit, LoadsTheTwoDimensionalStageIntoTheHybridNet) {
  TempDir dir;
  const auto [input, target] = sliceBatch(2, 32);
  // Stage 1 as a plain DenseUNet2d, exported as a Densa checkpoint.
  auto stage1Net = tinyNet("dense-unet-2d", 10);
  Trainer stage1(stage1Net, makeModelCard("dense-unet-2d", "tiny"), optionsFor("2d"));
  (void)stage1.step(input, target);
  stage1.exportCheckpoint(dir / "2d.densa");
  EXPECT_EQ(readModelCard(dir / "2d.densa").provenance.trainingStage, "2d");

  auto hybrid = tinyNet("hdenseunet", 11);
  const auto before = snapshot(hybrid);
  Trainer stage2(hybrid, makeModelCard("hdenseunet", "tiny"), optionsFor("3dpart"));
  const auto report = stage2.setInitialWeightsFrom(dir / "2d.densa");
  const auto stage1State = stateDict(*moduleOf(stage1Net));
  EXPECT_EQ(report.loaded.size(), stage1State.size());
  EXPECT_TRUE(report.shapeMismatch.empty());
  const auto hybridState = stateDict(*moduleOf(hybrid));
  for (const auto& name : report.loaded) {
    ASSERT_EQ(name.rfind("net2d.", 0), 0U) << name;
    EXPECT_TRUE(torch::equal(hybridState.at(name), stage1State.at(name.substr(6)))) << name;
  }
  for (const auto& name : report.notFound) {
    EXPECT_NE(name.rfind("net2d.", 0), 0U) << name;
    EXPECT_TRUE(torch::equal(hybridState.at(name), before.at(name))) << name;
  }

  // Stage 2 -> stage 3: the whole hybrid net by name.
  stage2.exportCheckpoint(dir / "3dpart.densa");
  Trainer stage3(
      tinyNet("hdenseunet", 12), makeModelCard("hdenseunet", "tiny"), optionsFor("end2end"));
  const auto all = stage3.setInitialWeightsFrom(dir / "3dpart.densa");
  EXPECT_EQ(all.loaded.size(), hybridState.size());
  EXPECT_TRUE(all.notFound.empty());
  expectIdentical(stage3.net(), hybrid);
  EXPECT_EQ(loadCheckpoint(dir / "3dpart.densa").card.provenance.trainingStage, "3dpart");
}

TEST(TrainerInit, FailsWhenNothingMatches) {
  TempDir dir;
  saveCheckpoint(
      tinyNet("dense-unet-3d", 13), makeModelCard("dense-unet-3d", "tiny"), dir / "3d.densa");
  Trainer trainer(
      tinyNet("dense-unet-2d", 14), makeModelCard("dense-unet-2d", "tiny"), optionsFor("2d"));
  EXPECT_THROW((void)trainer.setInitialWeightsFrom(dir / "3d.densa"), ModelError);
}

} // namespace
} // namespace densa::models
