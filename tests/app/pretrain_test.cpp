// SPDX-License-Identifier: Apache-2.0
#include "densa/app/pretrain.hpp"

#include "densa/app/phantom.hpp"
#include "densa/app/segmenters.hpp"
#include "densa/app/train.hpp"
#include "densa/core/error.hpp"
#include "densa/io/dicom_writer.hpp"
#include "densa/io/image_file.hpp"
#include "densa/models/error.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace densa::app {
namespace {

namespace fs = std::filesystem;

void writePhantoms(const fs::path& dir, int cases) {
  for (int c = 0; c < cases; ++c) {
    PhantomSpec spec;
    spec.size = 64;
    spec.slices = 24;
    spec.spacingZ = 5.0;
    const Phantom p = makePhantom(spec, static_cast<std::uint64_t>(c + 3));
    const fs::path caseDir = dir / ("synthetic_phantom_00" + std::to_string(c));
    (void)io::writeDicomSeries(p.ct, caseDir / "dicom");
    io::writeImage(p.labels, caseDir / "label.nii.gz");
  }
}

fs::path writeConfig(const fs::path& dir, const std::string& extra = "") {
  std::ofstream(dir / "gemini.yaml")
      << "datasets:\n  - path: " << (dir / "phantoms").string()
      << "\npreset: tiny\ncrop_size: 32\nspacing_mm: 6\nsteps: 4\nlog_every: 2\n"
         "checkpoint_every: 2\nseed: 5\n"
      << extra;
  return dir / "gemini.yaml";
}

std::map<std::string, torch::Tensor> weights(const fs::path& checkpoint) {
  return models::stateDict(*models::moduleOf(models::loadCheckpoint(checkpoint).net));
}

TEST(PretrainGemini, WritesARunFolderAndResumesExactly) {
  testing::TempDir tmp;
  writePhantoms(tmp / "phantoms", 2);
  const fs::path config = writeConfig(tmp.path());
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(runPretrain(
                {.config = config, .resume = std::nullopt, .runDir = tmp / "full", .overrides = {}},
                out,
                err),
            0)
      << err.str();
  for (const char* f : {"config.yaml",
                        "metrics.csv",
                        "train.log",
                        "report.html",
                        "last.densa",
                        "state.pt",
                        "pair.png"}) {
    EXPECT_TRUE(fs::exists(tmp / "full" / f)) << f;
  }
  const models::ModelCard card = models::readModelCard(tmp / "full" / "last.densa");
  EXPECT_EQ(models::architectureId(card.options), "gemini");
  EXPECT_NE(card.preprocessing.spacingPolicy.find("isotropic 6"), std::string::npos);
  std::ifstream metrics(tmp / "full" / "metrics.csv");
  std::string header;
  std::getline(metrics, header);
  EXPECT_EQ(header, "step,loss,gvs,gss,smooth,restoration,pairs_per_second,folding_percent");
  int rows = 0;
  for (std::string line; std::getline(metrics, line);) {
    ++rows;
  }
  EXPECT_EQ(rows, 2);

  // Deterministic: a second identical run gives the same weights.
  ASSERT_EQ(
      runPretrain(
          {.config = config, .resume = std::nullopt, .runDir = tmp / "again", .overrides = {}},
          out,
          err),
      0);
  {
    const auto x = weights(tmp / "full" / "last.densa");
    const auto y = weights(tmp / "again" / "last.densa");
    for (const auto& [name, tensor] : x) {
      EXPECT_TRUE(torch::equal(tensor, y.at(name))) << "not deterministic: " << name;
    }
  }
  // Stopped after 2 steps, resumed to 4: the same weights as the uninterrupted run.
  ASSERT_EQ(runPretrain({.config = config,
                         .resume = std::nullopt,
                         .runDir = tmp / "split",
                         .overrides = {"steps=2"}},
                        out,
                        err),
            0);
  ASSERT_EQ(
      runPretrain(
          {.config = std::nullopt, .resume = tmp / "split", .runDir = {}, .overrides = {"steps=4"}},
          out,
          err),
      0)
      << err.str();
  const auto a = weights(tmp / "full" / "last.densa");
  const auto b = weights(tmp / "split" / "last.densa");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  }

  // Registration with the pretrained deformer: outputs on FIXED's grid, a Jacobian report.
  const fs::path p0 = tmp / "phantoms" / "synthetic_phantom_000";
  const fs::path p1 = tmp / "phantoms" / "synthetic_phantom_001";
  RegisterOptions reg;
  reg.moving = p0 / "dicom";
  reg.fixed = p1 / "dicom";
  reg.output = tmp / "reg";
  reg.model = tmp / "full" / "last.densa";
  reg.labels = p0 / "label.nii.gz";
  reg.fixedLabels = p1 / "label.nii.gz";
  ASSERT_EQ(runRegister(reg, out, err), 0) << err.str();
  const auto fixedLabels = std::get<core::LabelMap>(io::readImage(p1 / "label.nii.gz"));
  const auto warped = io::readImage(tmp / "reg" / "warped.nii.gz");
  EXPECT_EQ(core::sizeOf(warped), fixedLabels.size());
  EXPECT_TRUE(core::geometryOf(warped).approxEqual(fixedLabels.geometry()));
  const auto warpedLabels =
      std::get<core::LabelMap>(io::readImage(tmp / "reg" / "warped_labels.nii.gz"));
  EXPECT_EQ(warpedLabels.size(), fixedLabels.size());
  const auto report = nlohmann::json::parse(std::ifstream(tmp / "reg" / "report.json"));
  const double folding = report.at("jacobian").at("folding_percent").get<double>();
  EXPECT_GE(folding, 0.0);
  EXPECT_LE(folding, 100.0);
  for (const char* k : {"before", "after"}) {
    const double d = report.at("liver_dice").at(k).get<double>();
    EXPECT_GE(d, 0.0) << k;
    EXPECT_LE(d, 1.0) << k;
  }
  // Not a GEMINI model: a clear refusal.
  reg.model = tmp / "not-a-model.densa";
  std::ofstream(*reg.model) << "junk";
  EXPECT_THROW((void)runRegister(reg, out, err), models::ModelError);
}

TEST(TrainGeminiUNet, StartsFromAPretrainedBackboneAndResumesExactly) {
  testing::TempDir tmp;
  writePhantoms(tmp / "phantoms", 3);
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(runPretrain({.config = writeConfig(tmp.path(), "spacing_mm: 8\n"),
                         .resume = std::nullopt,
                         .runDir = tmp / "gemini",
                         .overrides = {"steps=1"}},
                        out,
                        err),
            0)
      << err.str();
  std::ofstream(tmp / "seg.yaml")
      << "datasets:\n  - path: " << (tmp / "phantoms").string()
      << "\narchitecture: gemini-unet\npreset: tiny\ninit_from: "
      << (tmp / "gemini" / "last.densa").string()
      << "\nsteps: 4\nbatch_size: 1\ncrop_size: 32\nfolds: 3\nvalidate_every: 2\n"
         "checkpoint_every: 2\nlog_every: 1\nlearning_rate: 0.001\nrotation_degrees: 10\n";
  auto train =
      [&](const std::string& name, std::vector<std::string> overrides, bool resume = false) {
        const int code =
            runTrain({.config = resume ? std::nullopt : std::optional<fs::path>(tmp / "seg.yaml"),
                      .resume = resume ? std::optional<fs::path>(tmp / name) : std::nullopt,
                      .runDir = tmp / name,
                      .overrides = std::move(overrides)},
                     out,
                     err);
        EXPECT_EQ(code, 0) << err.str();
      };
  train("full", {});
  for (const char* f : {"config.yaml",
                        "metrics.csv",
                        "train.log",
                        "report.html",
                        "best.densa",
                        "last.densa",
                        "state.pt"}) {
    EXPECT_TRUE(fs::exists(tmp / "full" / f)) << f;
  }
  const models::ModelCard card = models::readModelCard(tmp / "full" / "best.densa");
  EXPECT_EQ(models::architectureId(card.options), "gemini-unet");
  EXPECT_EQ(card.provenance.trainingStage, "gemini-transfer");
  // The pretrained preprocessing is kept: 8 mm, not the config's default 2 mm.
  EXPECT_NE(card.preprocessing.spacingPolicy.find("isotropic 8"), std::string::npos)
      << card.preprocessing.spacingPolicy;
  std::ifstream metrics(tmp / "full" / "metrics.csv");
  std::string text((std::istreambuf_iterator<char>(metrics)), {});
  EXPECT_NE(text.find("\n4,"), std::string::npos) << text;

  train("split", {"steps=2"});
  train("split", {"steps=4"}, true);
  const auto a = weights(tmp / "full" / "last.densa");
  const auto b = weights(tmp / "split" / "last.densa");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  }
  // A foreign init checkpoint is refused clearly.
  std::ofstream(tmp / "junk.densa") << "junk";
  EXPECT_THROW((void)runTrain({.config = tmp / "seg.yaml",
                               .resume = std::nullopt,
                               .runDir = tmp / "bad",
                               .overrides = {"init_from=" + (tmp / "junk.densa").string()}},
                              out,
                              err),
               models::ModelError);
}

TEST(PretrainGemini, SemiTrainsSegmentationAndWritesASegmenter) {
  testing::TempDir tmp;
  writePhantoms(tmp / "phantoms", 2);
  writePhantoms(tmp / "labelled", 1);
  std::ostringstream out;
  std::ostringstream err;
  // Without labelled data, semi is refused.
  EXPECT_THROW((void)runPretrain({.config = writeConfig(tmp.path(), "variant: semi\n"),
                                  .resume = std::nullopt,
                                  .runDir = tmp / "none",
                                  .overrides = {}},
                                 out,
                                 err),
               core::InvalidArgument);
  const fs::path config2 = writeConfig(
      tmp.path(), "variant: semi\nlabelled:\n  - path: " + (tmp / "labelled").string() + "\n");
  ASSERT_EQ(
      runPretrain(
          {.config = config2, .resume = std::nullopt, .runDir = tmp / "semi", .overrides = {}},
          out,
          err),
      0)
      << err.str();
  std::ifstream metrics(tmp / "semi" / "metrics.csv");
  std::string header;
  std::getline(metrics, header);
  EXPECT_EQ(header, "step,loss,gvs,gss,smooth,segmentation,pairs_per_second,folding_percent");
  std::string row;
  std::getline(metrics, row);
  std::vector<std::string> fields;
  std::stringstream ls(row);
  for (std::string f; std::getline(ls, f, ',');) {
    fields.push_back(f);
  }
  ASSERT_EQ(fields.size(), 8U) << row;
  const double segmentationLoss = std::stod(fields[5]);
  EXPECT_GT(segmentationLoss, 0.0); // 100·(CE/K + Dice) of the labelled crops
  // The pretraining checkpoint carries a segmentation head and no restoration head ...
  const auto loaded = models::loadCheckpoint(tmp / "semi" / "last.densa");
  const auto& options = std::get<models::GeminiOptions>(loaded.card.options);
  EXPECT_EQ(options.segmentationClasses, 3);
  EXPECT_FALSE(options.restorationHead);
  // ... and segmenter.densa is the same backbone + head as a gemini-unet, which densa segment runs.
  const auto unet = models::loadCheckpoint(tmp / "semi" / "segmenter.densa");
  EXPECT_EQ(models::architectureId(unet.card.options), "gemini-unet");
  const auto a = weights(tmp / "semi" / "last.densa");
  for (const auto& [name, t] : weights(tmp / "semi" / "segmenter.densa")) {
    EXPECT_TRUE(torch::equal(t, a.at(name))) << name;
  }
  const auto segmenter = loadSegmenter(tmp / "semi" / "segmenter.densa");
  PhantomSpec spec;
  spec.size = 64;
  spec.slices = 24;
  spec.spacingZ = 5.0;
  const Phantom p = makePhantom(spec, 99);
  const auto result = segmenter->segment(p.ct, {});
  EXPECT_EQ(result.labels.size(), p.ct.size());
}

TEST(PretrainGemini, RejectsUnknownKeysAndBadValues) {
  testing::TempDir tmp;
  fs::create_directories(tmp / "phantoms");
  EXPECT_THROW((void)loadPretrainConfig(writeConfig(tmp.path(), "learning_rat: 1\n")),
               core::InvalidArgument);
  EXPECT_THROW((void)loadPretrainConfig(writeConfig(tmp.path()), {"crop_size=30"}),
               core::InvalidArgument);
  EXPECT_THROW((void)loadPretrainConfig(writeConfig(tmp.path()), {"variant=full"}),
               core::InvalidArgument);
  const PretrainConfig c = loadPretrainConfig(writeConfig(tmp.path()), {"diffeomorphic=true"});
  EXPECT_TRUE(c.diffeomorphic);
  EXPECT_EQ(c.cropSize, 32);
}

} // namespace
} // namespace densa::app
