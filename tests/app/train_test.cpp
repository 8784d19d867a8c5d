// SPDX-License-Identifier: Apache-2.0
#include "densa/app/train.hpp"

#include "densa/app/datasets.hpp"
#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/app/phantom.hpp"
#include "densa/core/error.hpp"
#include "densa/io/dicom_writer.hpp"
#include "densa/io/image_file.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace densa::app {
namespace {

namespace fs = std::filesystem;

void writePhantoms(const fs::path& dir, int cases) {
  for (int c = 0; c < cases; ++c) {
    PhantomSpec spec;
    spec.size = 96;
    spec.slices = 12;
    const Phantom p = makePhantom(spec, static_cast<std::uint64_t>(c + 1));
    const fs::path caseDir = dir / ("synthetic_phantom_00" + std::to_string(c));
    (void)io::writeDicomSeries(p.ct, caseDir / "dicom");
    io::writeImage(p.labels, caseDir / "label.nii.gz");
  }
}

fs::path writeConfig(const fs::path& dir, const std::string& extra = "") {
  std::ofstream(dir / "train.yaml")
      << "datasets:\n  - path: " << (dir / "phantoms").string()
      << "\npreset: tiny\nstage: 2d\nsteps: 8\nbatch_size: 2\ncrop_size: 32\n"
         "folds: 3\nvalidate_every: 4\ncheckpoint_every: 4\nlog_every: 2\nschedule: constant\n"
      << extra;
  return dir / "train.yaml";
}

std::map<std::string, torch::Tensor> weights(const fs::path& checkpoint) {
  return models::stateDict(*models::moduleOf(models::loadCheckpoint(checkpoint).net));
}

TEST(Datasets, DetectsLayoutsAndSplitsByCase) {
  testing::TempDir tmp;
  writePhantoms(tmp / "phantoms", 3);
  const Dataset d = readDataset(tmp / "phantoms");
  EXPECT_EQ(d.layout, DatasetLayout::Phantoms);
  ASSERT_EQ(d.cases.size(), 3U);
  // LiTS layout.
  fs::create_directories(tmp / "lits");
  fs::copy_file(d.cases[0].label, tmp / "lits" / "segmentation-7.nii.gz");
  const auto labels = std::get<core::LabelMap>(io::readImage(d.cases[0].label));
  io::writeImage(core::Volume<std::int16_t>(labels.size(), labels.geometry(), 40),
                 tmp / "lits" / "volume-7.nii.gz");
  const Dataset lits = readDataset(tmp / "lits");
  EXPECT_EQ(lits.layout, DatasetLayout::Lits);
  EXPECT_EQ(lits.cases.at(0).id, "lits-7");
  fs::remove(tmp / "lits" / "segmentation-7.nii.gz");
  EXPECT_THROW((void)readDataset(tmp / "lits"), core::InputError);
  // Splits are case-level, disjoint and reproducible.
  const Split a = splitCases(d.cases, 3, 1, 42);
  const Split b = splitCases(d.cases, 3, 1, 42);
  EXPECT_EQ(a.validation.size(), 1U);
  EXPECT_EQ(a.train.size(), 2U);
  EXPECT_EQ(a.validation[0].id, b.validation[0].id);
}

TEST(Datasets, BadLabelsAreRefusedWithTheFileName) {
  testing::TempDir tmp;
  writePhantoms(tmp / "phantoms", 1);
  auto labels =
      std::get<core::LabelMap>(io::readImage(tmp / "phantoms/synthetic_phantom_000/label.nii.gz"));
  labels.voxels()[0] = 7;
  io::writeImage(labels, tmp / "phantoms/synthetic_phantom_000/label.nii.gz");
  const Dataset d = readDataset(tmp / "phantoms");
  try {
    (void)loadTrainingVolume(d.cases[0]);
    FAIL();
  } catch (const core::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("holds label 7"), std::string::npos) << e.what();
  }
  // With a label map, other values become background.
  EXPECT_NO_THROW((void)loadTrainingVolume(d.cases[0], std::map<int, int>{{1, 1}, {2, 2}}));
}

TEST(Train, WritesARunFolderAndResumesExactly) {
  testing::TempDir tmp;
  writePhantoms(tmp / "phantoms", 3);
  const fs::path config = writeConfig(tmp.path());
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(
      runTrain({.config = config, .resume = std::nullopt, .runDir = tmp / "full", .overrides = {}},
               out,
               err),
      0)
      << err.str();
  for (const char* f : {"config.yaml",
                        "metrics.csv",
                        "train.log",
                        "report.html",
                        "best.densa",
                        "last.densa",
                        "state.pt"}) {
    EXPECT_TRUE(fs::exists(tmp / "full" / f)) << f;
  }
  // Interrupted after 4 steps, then resumed to 8: the same weights as the uninterrupted run.
  ASSERT_EQ(runTrain({.config = config,
                      .resume = std::nullopt,
                      .runDir = tmp / "split",
                      .overrides = {"steps=4"}},
                     out,
                     err),
            0);
  ASSERT_EQ(
      runTrain(
          {.config = std::nullopt, .resume = tmp / "split", .runDir = {}, .overrides = {"steps=8"}},
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
}

TEST(Train, AugmentationIsSeededAndWorkerThreadsDoNotChangeTheResult) {
  testing::TempDir tmp;
  writePhantoms(tmp / "phantoms", 3);
  const fs::path config =
      writeConfig(tmp.path(),
                  "rotation_degrees: 15\nintensity_scale: 0.1\n"
                  "intensity_shift_hu: 20\nnoise_hu: 10\nvalidate_every: 100\n");
  std::ostringstream out;
  std::ostringstream err;
  auto run = [&](const std::string& name, std::vector<std::string> overrides) {
    overrides.emplace_back("steps=3");
    EXPECT_EQ(runTrain({.config = config,
                        .resume = std::nullopt,
                        .runDir = tmp / name,
                        .overrides = std::move(overrides)},
                       out,
                       err),
              0)
        << err.str();
    return weights(tmp / name / "last.densa");
  };
  const auto one = run("w1", {"workers=1"});
  const auto three = run("w3", {"workers=3"});
  const auto plain = run(
      "plain", {"rotation_degrees=0", "intensity_scale=0", "intensity_shift_hu=0", "noise_hu=0"});
  bool differs = false;
  for (const auto& [name, tensor] : one) {
    EXPECT_TRUE(torch::equal(tensor, three.at(name))) << name;
    differs = differs || !torch::equal(tensor, plain.at(name));
  }
  EXPECT_TRUE(differs) << "augmentation had no effect";
  std::ifstream resolved(tmp / "w3" / "config.yaml");
  const std::string text((std::istreambuf_iterator<char>(resolved)), {});
  EXPECT_NE(text.find("rotation_degrees: 15"), std::string::npos) << text;
  EXPECT_NE(text.find("workers: 3"), std::string::npos) << text;
}

// Stage "coarse" trains the stage-0 coarse liver net into a "coarse-liver" checkpoint whose mask
// lies on the CT's grid; densa segment takes it as <model>.coarse.densa.
TEST(Train, CoarseStageWritesACoarseLiverCheckpoint) {
  testing::TempDir tmp;
  writePhantoms(tmp / "phantoms", 3);
  const fs::path config = writeConfig(tmp.path());
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(runTrain({.config = config,
                      .resume = std::nullopt,
                      .runDir = tmp / "coarse",
                      .overrides = {"stage=coarse", "crop_size=64"}},
                     out,
                     err),
            0)
      << err.str();
  const auto model = models::loadCheckpoint(tmp / "coarse" / "best.densa");
  EXPECT_TRUE(std::holds_alternative<models::CoarseLiverNet>(model.net));
  EXPECT_EQ(model.card.provenance.trainingStage, "coarse");
  EXPECT_NE(out.str().find("val liver Dice"), std::string::npos) << out.str();
  PhantomSpec spec;
  spec.size = 96;
  spec.slices = 5;
  const Phantom p = makePhantom(spec, 9);
  const core::LabelMap mask = segmentCoarseLiver(tmp / "coarse" / "best.densa", p.ct);
  EXPECT_EQ(mask.size(), p.ct.size());
  EXPECT_EQ(mask.geometry(), p.ct.geometry());
  for (const auto v : mask.voxels()) {
    ASSERT_LE(v, 1);
  }
  // A crop size the coarse net cannot take is refused up front.
  EXPECT_THROW((void)runTrain({.config = config,
                               .resume = std::nullopt,
                               .runDir = tmp / "bad",
                               .overrides = {"stage=coarse", "crop_size=32"}},
                              out,
                              err),
               core::InvalidArgument);
}

TEST(Train, RejectsUnknownKeysAndBadStages) {
  testing::TempDir tmp;
  writePhantoms(tmp / "phantoms", 1);
  EXPECT_THROW((void)loadTrainConfig(writeConfig(tmp.path(), "learning_rat: 1\n")),
               core::InvalidArgument);
  EXPECT_THROW((void)loadTrainConfig(writeConfig(tmp.path()), {"stage=3d"}), core::InvalidArgument);
}

} // namespace
} // namespace densa::app

namespace densa::app {
namespace {

TEST(Train, TwoDataParallelProcessesOnLoopback) {
  testing::TempDir tmp;
  writePhantoms(tmp / "phantoms", 3);
  const fs::path config = writeConfig(tmp.path());
  // A free port from the kernel.
  const int port = 29500 + static_cast<int>(::getpid() % 2000);
  std::vector<pid_t> pids;
  for (int rank = 0; rank < 2; ++rank) {
    const pid_t pid = fork();
    if (pid == 0) {
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("WORLD_SIZE", "2", 1);
      const std::string c = config.string();
      const std::string run = (tmp / "ddp").string();
      execl(DENSA_EXE,
            DENSA_EXE,
            "train",
            "--config",
            c.c_str(),
            "-o",
            run.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    pids.push_back(pid);
  }
  for (const pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "rank exit status " << status;
  }
  EXPECT_TRUE(fs::exists(tmp / "ddp" / "last.densa"));
  EXPECT_TRUE(fs::exists(tmp / "ddp" / "state-rank0.pt"));
  EXPECT_TRUE(fs::exists(tmp / "ddp" / "state-rank1.pt"));
}

} // namespace
} // namespace densa::app
