// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/checkpoint.hpp"

#include "densa/models/error.hpp"
#include "densa/models/model_card.hpp"

#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/utils.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace densa::models {
namespace {

namespace fs = std::filesystem;

class Checkpoint : public ::testing::Test {
protected:
  void SetUp() override {
    torch::manual_seed(11);
    m_dir = fs::temp_directory_path() /
            ("densa_ckpt_" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(m_dir);
    fs::create_directories(m_dir);
  }

  void TearDown() override { fs::remove_all(m_dir); }

  // A tiny hybrid net whose BN statistics are not the defaults (one training-mode pass).
  static HDenseUNet trainedTiny() {
    HDenseUNet net(hDenseUNetPreset("tiny"));
    net->train();
    {
      torch::NoGradGuard noGrad;
      (void)net(torch::randn({1, 1, 8, 32, 32}));
    }
    net->eval();
    return net;
  }

  static std::string readBytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  static void writeBytes(const fs::path& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  fs::path m_dir;
};

TEST_F(Checkpoint, SaveThenLoadGivesBitIdenticalOutputs) {
  auto net = trainedTiny();
  auto card = makeModelCard("hdenseunet", "tiny");
  card.provenance.trainingData = "synthetic";
  card.thresholds.tumour = 0.85;
  const auto path = m_dir / "tiny.densa";
  saveCheckpoint(net, card, path);

  const auto loaded = loadCheckpoint(path);
  auto restored = std::get<HDenseUNet>(loaded.net);
  EXPECT_FALSE(restored->is_training());
  torch::NoGradGuard noGrad;
  const auto volume = torch::randn({1, 1, 8, 32, 32});
  EXPECT_TRUE(torch::equal(net(volume).logits, restored(volume).logits));
  EXPECT_EQ(loaded.card.preset, "tiny");
  EXPECT_EQ(loaded.card.provenance.trainingData, "synthetic");
  EXPECT_DOUBLE_EQ(loaded.card.thresholds.tumour, 0.85);
  EXPECT_FALSE(loaded.card.provenance.createdUtc.empty());
  // No temporary file is left next to the checkpoint.
  EXPECT_EQ(std::distance(fs::directory_iterator(m_dir), fs::directory_iterator()), 1);
}

TEST_F(Checkpoint, CardIsReadableAloneAndRoundTripsThroughJson) {
  DenseUNet2d net(hDenseUNetPreset("tiny").net2d);
  auto card = makeModelCard("dense-unet-2d", "tiny");
  card.preprocessing.windowStride = 3;
  const auto path = m_dir / "net2d.densa";
  saveCheckpoint(net, card, path);
  const auto read = readModelCard(path);
  EXPECT_EQ(architectureId(read.options), "dense-unet-2d");
  EXPECT_EQ(read.preprocessing.windowStride, 3);
  EXPECT_DOUBLE_EQ(read.preprocessing.huMin, -200.0);
  EXPECT_DOUBLE_EQ(read.preprocessing.intensityOffset, -48.0);
  EXPECT_EQ(read.labels, (std::vector<std::string>{"background", "liver", "tumour"}));
  EXPECT_EQ(toJson(parseModelCard(toJson(read))), toJson(read));
  // The registry rebuilds the right architecture from the file alone.
  EXPECT_TRUE(std::holds_alternative<DenseUNet2d>(loadCheckpoint(path).net));
}

TEST_F(Checkpoint, RefusesTruncatedCorruptedAndForeignFiles) {
  const auto path = m_dir / "good.densa";
  saveCheckpoint(
      CoarseLiverNet(coarseLiverPreset("tiny")), makeModelCard("coarse-liver", "tiny"), path);
  const auto bytes = readBytes(path);
  const auto expectError = [](const fs::path& p, const std::string& fragment) {
    try {
      (void)loadCheckpoint(p);
      ADD_FAILURE() << "no error for " << p;
    } catch (const ModelError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };

  writeBytes(m_dir / "truncated.densa", bytes.substr(0, bytes.size() - 100));
  expectError(m_dir / "truncated.densa", "truncated");
  writeBytes(m_dir / "header-only.densa", bytes.substr(0, 20));
  expectError(m_dir / "header-only.densa", "truncated");

  auto flipped = bytes;
  flipped[flipped.size() - 50] = static_cast<char>(flipped[flipped.size() - 50] ^ 0x5a);
  writeBytes(m_dir / "flipped.densa", flipped);
  expectError(m_dir / "flipped.densa", "corrupted");

  writeBytes(m_dir / "trailing.densa", bytes + "xx");
  expectError(m_dir / "trailing.densa", "trailing");

  writeBytes(m_dir / "text.densa", "hello, I am not a checkpoint at all");
  expectError(m_dir / "text.densa", "not a Densa checkpoint");
  writeBytes(m_dir / "empty.densa", "");
  expectError(m_dir / "empty.densa", "not a Densa checkpoint");

  c10::Dict<std::string, torch::Tensor> dict;
  dict.insert("w", torch::ones({2}));
  const auto zip = torch::pickle_save(dict);
  writeBytes(m_dir / "python.pt", std::string(zip.begin(), zip.end()));
  expectError(m_dir / "python.pt", "PyTorch");

  expectError(m_dir / "missing.densa", "cannot open");
}

TEST_F(Checkpoint, RefusesWeightsThatDoNotFitTheCard) {
  // A valid container whose card names the small preset while the weights are tiny's.
  HDenseUNet tiny(hDenseUNetPreset("tiny"));
  const auto tinyPath = m_dir / "tiny.densa";
  saveCheckpoint(tiny, makeModelCard("hdenseunet", "tiny"), tinyPath);
  auto contents = readCheckpointFile(tinyPath);
  auto card = makeModelCard("hdenseunet", "small");
  contents.card = toJson(card);
  writeCheckpointFile(m_dir / "mismatch.densa", contents);
  try {
    (void)loadCheckpoint(m_dir / "mismatch.densa");
    ADD_FAILURE() << "mismatched weights accepted";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("do not fit"), std::string::npos) << e.what();
  }

  // Unknown architecture and a newer card format are refused before any weights are touched.
  auto json = toJson(makeModelCard("hdenseunet", "tiny"));
  contents.card = json.replace(json.find("\"hdenseunet\""), 12, "\"unet-9000\"");
  writeCheckpointFile(m_dir / "unknown.densa", contents);
  EXPECT_THROW((void)loadCheckpoint(m_dir / "unknown.densa"), ModelError);
  auto newer = toJson(makeModelCard("hdenseunet", "tiny"));
  const auto at = newer.find("\"formatVersion\": 1");
  ASSERT_NE(at, std::string::npos);
  contents.card = newer.replace(at, 18, "\"formatVersion\": 9");
  writeCheckpointFile(m_dir / "newer.densa", contents);
  EXPECT_THROW((void)readModelCard(m_dir / "newer.densa"), ModelError);
  contents.card = "{not json";
  writeCheckpointFile(m_dir / "badjson.densa", contents);
  EXPECT_THROW((void)readModelCard(m_dir / "badjson.densa"), ModelError);
}

// A Python user writes torch.save(dict(model.state_dict()), path); torch::pickle_save writes the
// same zip format, so it stands in for Python here.
TEST_F(Checkpoint, ImportsAPythonStateDictByParameterName) {
  auto source = trainedTiny();
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : stateDict(*source)) {
    if (name.find("num_batches_tracked") == std::string::npos) {
      dict.insert("module." + name, tensor.to(torch::kDouble)); // DataParallel prefix, float64
    }
  }
  const auto bytes = torch::pickle_save(dict);
  const auto path = m_dir / "from_python.pt";
  writeBytes(path, std::string(bytes.begin(), bytes.end()));

  const auto imported = importStateDict(path, makeModelCard("hdenseunet", "tiny"));
  auto net = std::get<HDenseUNet>(imported.net);
  EXPECT_EQ(imported.card.provenance.trainingStage, "imported");
  torch::NoGradGuard noGrad;
  const auto volume = torch::randn({1, 1, 4, 32, 32});
  EXPECT_TRUE(torch::allclose(net(volume).logits, source(volume).logits, 1e-5, 1e-5));

  // A wrong name is reported by name.
  dict.insert("module.net2d.block9.weight", torch::ones({1}));
  const auto extra = torch::pickle_save(dict);
  writeBytes(path, std::string(extra.begin(), extra.end()));
  try {
    (void)importStateDict(path, makeModelCard("hdenseunet", "tiny"));
    ADD_FAILURE() << "unexpected key accepted";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("net2d.block9.weight"), std::string::npos) << e.what();
  }
  // A pickle of something else than a dict.
  const auto list = torch::pickle_save(torch::IValue(torch::ones({3})));
  writeBytes(path, std::string(list.begin(), list.end()));
  EXPECT_THROW((void)importStateDict(path, makeModelCard("hdenseunet", "tiny")), ModelError);
}

// Parameter names are the checkpoint and Python-import contract: renaming a module breaks old
// files, so the names are pinned here.
TEST_F(Checkpoint, PinsTheParameterNames) {
  HDenseUNet net(hDenseUNetPreset("tiny"));
  const auto state = stateDict(*net);
  for (const char* name : {"net2d.conv0.weight",
                           "net2d.norm0.running_var",
                           "net2d.block1.layer1.norm1.weight",
                           "net2d.block1.layer1.conv1.weight",
                           "net2d.block4.layer1.conv2.weight",
                           "net2d.trans3.conv.weight",
                           "net2d.norm5.bias",
                           "net2d.up0.skip.weight",
                           "net2d.up4.conv.bias",
                           "net2d.up4.norm.num_batches_tracked",
                           "net2d.classifier.weight",
                           "net3d.conv0.weight",
                           "net3d.up2.norm.running_mean",
                           "fusion_conv.weight",
                           "fusion_norm.weight",
                           "classifier.bias"}) {
    EXPECT_EQ(state.count(name), 1U) << name;
  }
  EXPECT_EQ(state.count("net3d.classifier.weight"), 0U);
  EXPECT_EQ(state.count("net2d.up1.skip.weight"), 0U); // channels match: identity skip
  EXPECT_EQ(state.size(), 237U);
}

} // namespace
} // namespace densa::models
