// SPDX-License-Identifier: Apache-2.0
// densa segment end to end with an untrained tiny H-DenseUNet (the pipeline, not the accuracy).
#include "densa/app/batch.hpp"
#include "densa/app/cases.hpp"
#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/app/phantom.hpp"
#include "densa/core/error.hpp"
#include "densa/io/dicom_seg.hpp"
#include "densa/io/dicom_writer.hpp"
#include "densa/io/image_file.hpp"
#include "densa/io/load.hpp"
#include "densa/models/error.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <torch/utils.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

namespace densa::app {
namespace {

// Air (-1000 HU) with every `every`-th voxel set to `hu`: a CT whose only point is its grid.
core::Volume<std::int16_t> stripedCt(const core::Size3& size,
                                     const core::Geometry& geometry,
                                     std::size_t every,
                                     int hu) {
  core::Volume<std::int16_t> ct(size, geometry, -1000);
  for (std::size_t i = 0; i < ct.voxelCount(); i += every) {
    ct.voxels()[i] = static_cast<std::int16_t>(hu);
  }
  return ct;
}

namespace fs = std::filesystem;

fs::path tinyModel(const testing::TempDir& tmp) {
  const fs::path file = tmp / "tiny.densa";
  if (!fs::exists(file)) {
    models::ModelCard card = models::makeModelCard("hdenseunet", "tiny");
    card.provenance.trainingStage = "untrained";
    torch::manual_seed(5);
    models::saveCheckpoint(models::makeNet(card.options), card, file);
  }
  return file;
}

core::Volume<std::int16_t> phantomCt(int size, int slices, std::uint64_t seed) {
  PhantomSpec spec;
  spec.size = size;
  spec.slices = slices;
  return makePhantom(spec, seed).ct;
}

TEST(SegmentBatch, DicomCasesGetAllOutputsOnTheInputGrid) {
  testing::TempDir tmp;
  const auto ct = phantomCt(96, 12, 1);
  (void)io::writeDicomSeries(ct, tmp / "in" / "a");
  (void)io::writeDicomSeries(phantomCt(64, 9, 2), tmp / "in" / "b");
  const auto segmenter = loadHDenseUNetSegmenter(tinyModel(tmp));
  const CaseList cases = discoverCases(tmp / "in");
  ASSERT_EQ(cases.cases.size(), 2U);
  std::ostringstream log;
  BatchOptions options;
  options.output = tmp / "out";
  options.preview = true;
  const BatchReport report = runBatch(cases, *segmenter, options, log);
  EXPECT_EQ(report.exitCode(), 0) << log.str();
  for (const auto& c : cases.cases) {
    const fs::path dir = tmp / "out" / c.id;
    ASSERT_TRUE(fs::exists(dir / "report.json")) << log.str();
    EXPECT_TRUE(fs::exists(dir / "preview.png"));
    const auto labels = std::get<core::LabelMap>(io::readImage(dir / "label.nii.gz"));
    const auto input = io::loadDicomSeries(*c.series);
    EXPECT_EQ(labels.size(), core::sizeOf(input.volume));
    EXPECT_TRUE(labels.geometry().approxEqual(core::geometryOf(input.volume), 1e-4));
    for (const auto v : labels.voxels()) {
      ASSERT_LE(v, 2);
    }
    if (fs::exists(dir / "seg.dcm")) {
      EXPECT_EQ(io::readDicomSeg(dir / "seg.dcm", labels.size(), labels.geometry()), labels);
    }
    std::ifstream in(dir / "report.json");
    const auto j = nlohmann::json::parse(in);
    EXPECT_TRUE(j.contains("liver_volume_ml"));
    EXPECT_TRUE(j.contains("lesions"));
    EXPECT_EQ(j["model"]["id"], segmenter->identity().id);
  }
  EXPECT_TRUE(fs::exists(tmp / "out" / "cohort.csv"));
  EXPECT_TRUE(fs::exists(tmp / "out" / "manifest.json"));
}

TEST(SegmentBatch, ShortFeetFirstAndCoronalVolumesSegmentOnTheirGrid) {
  testing::TempDir tmp;
  const auto segmenter = loadHDenseUNetSegmenter(tinyModel(tmp));
  core::Geometry feetFirst;
  feetFirst.spacing = {1.5, 1.5, 3};
  feetFirst.direction = {1, 0, 0, 0, 1, 0, 0, 0, -1};
  core::Geometry coronal;
  coronal.spacing = {1.2, 2.5, 1.2};
  coronal.direction = {1, 0, 0, 0, 0, 1, 0, -1, 0};
  const std::pair<core::Size3, core::Geometry> grids[] = {
      {{64, 64, 1}, core::Geometry{}}, {{64, 64, 3}, feetFirst}, {{70, 20, 50}, coronal}};
  for (const auto& [size, geometry] : grids) {
    const auto ct = stripedCt(size, geometry, 3, 100);
    const SegmentationResult r = segmenter->segment(ct, {});
    EXPECT_EQ(r.labels.size(), ct.size());
    EXPECT_EQ(r.labels.geometry(), ct.geometry());
  }
}

// RoiMode::LiverBox (the paper's ROI): the windows run on a box of whole 32-pixel blocks around
// the 2D branch's liver prediction; outside it every voxel is background. Short and re-oriented
// volumes still work.
TEST(SegmentBatch, LiverBoxRoiKeepsTheOutputInsideItsBox) {
  testing::TempDir tmp;
  SegmenterOptions options;
  options.roi = RoiMode::LiverBox;
  const auto segmenter = loadHDenseUNetSegmenter(tinyModel(tmp), options);
  const auto ct = phantomCt(160, 12, 3);
  const SegmentationResult r = segmenter->segment(ct, {});
  ASSERT_EQ(r.labels.size(), ct.size());
  const auto [x0, x1, y0, y1] = r.roiBox;
  ASSERT_LT(x0, x1);
  ASSERT_LT(y0, y1);
  EXPECT_EQ(x0 % 32, 0);
  EXPECT_EQ(y0 % 32, 0);
  EXPECT_TRUE(x1 == 160 || x1 % 32 == 0);
  EXPECT_TRUE(y1 == 160 || y1 % 32 == 0);
  const auto [w, h, z] = ct.size();
  std::size_t outside = 0;
  for (std::size_t k = 0; k < z; ++k) {
    for (std::size_t j = 0; j < h; ++j) {
      for (std::size_t i = 0; i < w; ++i) {
        const auto ii = static_cast<std::int64_t>(i);
        const auto jj = static_cast<std::int64_t>(j);
        if ((ii < x0 || ii >= x1 || jj < y0 || jj >= y1) && r.labels.at(i, j, k) != 0) {
          ++outside;
        }
      }
    }
  }
  EXPECT_EQ(outside, 0U);
  core::Geometry feetFirst;
  feetFirst.spacing = {1.5, 1.5, 3};
  feetFirst.direction = {1, 0, 0, 0, 1, 0, 0, 0, -1};
  const auto shortCt = stripedCt({64, 64, 3}, feetFirst, 3, 100);
  const SegmentationResult s = segmenter->segment(shortCt, {});
  EXPECT_EQ(s.labels.size(), shortCt.size());
  EXPECT_EQ(s.labels.geometry(), shortCt.geometry());
}

// An "in-plane X mm" spacing policy: coarse slices are resampled to X mm for the network and the
// labels come back on the exact input grid; a card with an unknown policy is refused.
TEST(SegmentBatch, InPlaneSpacingPolicyResamplesAndMapsBack) {
  testing::TempDir tmp;
  SegmenterOptions options;
  options.inPlaneMm = 0.8;
  const auto segmenter = loadHDenseUNetSegmenter(tinyModel(tmp), options);
  core::Geometry g;
  g.spacing = {2.0, 2.0, 3.0};
  g.origin = {-40, 10, 5};
  const auto ct = stripedCt({48, 40, 4}, g, 5, 60);
  const SegmentationResult r = segmenter->segment(ct, {});
  EXPECT_EQ(r.labels.size(), ct.size());
  EXPECT_EQ(r.labels.geometry(), ct.geometry());
  // The network ran on 0.8 mm pixels: (48 - 1) * 2 / 0.8 + 1 = 118 columns, 98 rows.
  EXPECT_EQ(r.roiBox[1], 118);
  EXPECT_EQ(r.roiBox[3], 98);
  // Within 25 % of the policy: native slices.
  core::Geometry near = g;
  near.spacing = {0.9, 0.9, 3.0};
  core::Volume<std::int16_t> fine({48, 40, 4}, near, -1000);
  EXPECT_EQ(segmenter->segment(fine, {}).roiBox[1], 48);

  models::ModelCard card = models::makeModelCard("hdenseunet", "tiny");
  card.preprocessing.spacingPolicy = "isotropic 2 mm";
  models::saveCheckpoint(models::makeNet(card.options), card, tmp / "odd.densa");
  EXPECT_THROW((void)loadHDenseUNetSegmenter(tmp / "odd.densa"), models::ModelError);
}

TEST(SegmentBatch, ACorruptCaseIsRecordedAndTheOthersFinish) {
  testing::TempDir tmp;
  io::writeImage(phantomCt(64, 8, 1), tmp / "in" / "a.nii.gz");
  std::ofstream(tmp / "in" / "b.nii.gz") << "not a nifti at all";
  io::writeImage(phantomCt(64, 8, 3), tmp / "in" / "c.nii.gz");
  const auto segmenter = loadHDenseUNetSegmenter(tinyModel(tmp));
  const CaseList cases = discoverCases(tmp / "in");
  ASSERT_EQ(cases.cases.size(), 3U);
  std::ostringstream log;
  BatchOptions options;
  options.output = tmp / "out";
  const BatchReport report = runBatch(cases, *segmenter, options, log);
  EXPECT_EQ(report.exitCode(), 3);
  EXPECT_EQ(report.count(CaseOutcome::Status::Done), 2U);
  EXPECT_EQ(report.count(CaseOutcome::Status::Failed), 1U);
  EXPECT_TRUE(fs::exists(tmp / "out" / "c" / "report.json"));
  EXPECT_FALSE(fs::exists(tmp / "out" / "b" / "label.nii.gz"));
  std::ifstream in(tmp / "out" / "manifest.json");
  const auto manifest = nlohmann::json::parse(in);
  EXPECT_EQ(manifest["failed"], 1);
}

TEST(SegmentCli, KilledRunResumedWithContinueEqualsAnUninterruptedRun) {
  testing::TempDir tmp;
  for (int i = 0; i < 4; ++i) {
    io::writeImage(phantomCt(96, 16, static_cast<std::uint64_t>(i + 1)),
                   tmp / "in" / ("case" + std::to_string(i) + ".nii.gz"));
  }
  const std::string model = tinyModel(tmp).string();
  auto run = [&](const fs::path& out, bool resume, bool killAfterFirst) {
    const pid_t pid = fork();
    if (pid == 0) {
      const std::string o = out.string();
      const std::string in = (tmp / "in").string();
      std::vector<const char*> argv{
          DENSA_EXE, "segment", "-i", in.c_str(), "-o", o.c_str(), "--model", model.c_str()};
      if (resume) {
        argv.push_back("--continue");
      }
      argv.push_back(nullptr);
      execv(DENSA_EXE, const_cast<char* const*>(argv.data()));
      _exit(127);
    }
    if (killAfterFirst) {
      while (!fs::exists(out / "case0" / "report.json")) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) {
          return status;
        }
      }
      kill(pid, SIGKILL);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
  };
  EXPECT_EQ(WEXITSTATUS(run(tmp / "full", false, false)), 0);
  (void)run(tmp / "resumed", false, true);
  EXPECT_FALSE(
      fs::exists(tmp / "resumed" / "case3" / "report.json")); // the kill stopped the run early
  EXPECT_EQ(WEXITSTATUS(run(tmp / "resumed", true, false)), 0);
  for (int i = 0; i < 4; ++i) {
    const std::string id = "case" + std::to_string(i);
    const auto a = std::get<core::LabelMap>(io::readImage(tmp / "full" / id / "label.nii.gz"));
    const auto b = std::get<core::LabelMap>(io::readImage(tmp / "resumed" / id / "label.nii.gz"));
    EXPECT_EQ(a, b) << id;
  }
  // No temporary left behind by the kill.
  for (const auto& e : fs::recursive_directory_iterator(tmp / "resumed")) {
    EXPECT_EQ(e.path().filename().string().find(".densa-tmp"), std::string::npos) << e.path();
  }
}

} // namespace
} // namespace densa::app
