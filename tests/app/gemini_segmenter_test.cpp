// SPDX-License-Identifier: Apache-2.0
// GEMINI transfer-model inference with an untrained tiny "gemini-unet" (the pipeline and its
// geometry, not the accuracy): the sliding window, the segmenter and the architecture dispatcher.
#include "densa/app/gemini_segmenter.hpp"

#include "densa/app/phantom.hpp"
#include "densa/app/segmenters.hpp"
#include "densa/app/sliding_window.hpp"
#include "densa/core/error.hpp"
#include "densa/io/image_file.hpp"
#include "densa/models/error.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <torch/nn/functional/padding.h>
#include <torch/utils.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

namespace densa::app {
namespace {

namespace fs = std::filesystem;

fs::path writeModel(
    const fs::path& file,
    const std::string& architecture,
    const std::string& spacingPolicy = "isotropic 6 mm; HU window scaled to [0, 1]") {
  models::ModelCard card = models::makeModelCard(architecture, "tiny");
  card.preprocessing.spacingPolicy = spacingPolicy;
  card.preprocessing.huMin = -200;
  card.preprocessing.huMax = 300;
  card.preprocessing.intensityOffset = 0;
  card.provenance.trainingStage = "untrained";
  torch::manual_seed(11);
  models::saveCheckpoint(models::makeNet(card.options), card, file);
  return file;
}

fs::path tinyGeminiUNet(const testing::TempDir& tmp) {
  const fs::path file = tmp / "tiny-gemini-unet.densa";
  return fs::exists(file) ? file : writeModel(file, "gemini-unet");
}

// HU values with structure in every direction (not a constant image).
core::Volume<std::int16_t> pattern(const core::Size3& size, const core::Geometry& geometry) {
  core::Volume<std::int16_t> ct(size, geometry, -1000);
  for (std::size_t k = 0; k < size[2]; ++k) {
    for (std::size_t j = 0; j < size[1]; ++j) {
      for (std::size_t i = 0; i < size[0]; ++i) {
        ct.at(i, j, k) = static_cast<std::int16_t>(
            -300 + static_cast<int>((i * 37 + j * 11) % 400) + static_cast<int>(k * 23 % 200));
      }
    }
  }
  return ct;
}

void expectLabels(const core::LabelMap& labels) {
  for (const auto v : labels.voxels()) {
    ASSERT_LE(v, 2);
  }
}

TEST(SlidingWindow, TileStartsCoverEveryAxisWithHalfOverlap) {
  EXPECT_EQ(tileStarts(10, 64), (std::vector<std::int64_t>{0}));
  EXPECT_EQ(tileStarts(64, 64), (std::vector<std::int64_t>{0}));
  EXPECT_EQ(tileStarts(65, 64), (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(tileStarts(96, 64), (std::vector<std::int64_t>{0, 32}));
  EXPECT_EQ(tileStarts(100, 64), (std::vector<std::int64_t>{0, 18, 36}));
  for (const std::int64_t tile : {16, 32, 64}) {
    for (std::int64_t size = tile + 1; size < 5 * tile; ++size) {
      const auto s = tileStarts(size, tile);
      ASSERT_GE(s.size(), 2U);
      EXPECT_EQ(s.front(), 0);
      EXPECT_EQ(s.back(), size - tile);
      for (std::size_t n = 1; n < s.size(); ++n) {
        EXPECT_GT(s[n], s[n - 1]);
        EXPECT_LE(s[n] - s[n - 1], tile / 2) << "size " << size << " tile " << tile;
      }
      // The fewest tiles with steps of at most tile/2.
      EXPECT_GT((size - tile) * 1.0 / static_cast<double>(s.size() - 2), tile / 2.0 - 1e-9);
    }
  }
  EXPECT_THROW((void)tileStarts(10, 1), core::InvalidArgument);
}

TEST(SlidingWindow, AnEquivariantNetworkIsReproducedAcrossOverlappingTiles) {
  // The identity as the "network": the average of overlapping tiles must give back the image,
  // which fails for any misplaced tile or weight.
  torch::manual_seed(3);
  const auto image = torch::rand({1, 2, 21, 40, 57});
  for (const bool gaussian : {false, true}) {
    int calls = 0;
    double last = 0;
    const auto out = slidingWindowProbabilities(
        image,
        [&](const torch::Tensor& tile) {
          ++calls;
          return tile.clone();
        },
        {.tile = 16, .gaussian = gaussian},
        [&](double f) {
          EXPECT_GT(f, last);
          last = f;
        });
    EXPECT_EQ(calls, 2 * 4 * 7); // starts 0, 5 / 0, 8, 16, 24 / 0, 7, 14, 21, 27, 34, 41
    EXPECT_DOUBLE_EQ(last, 1.0);
    ASSERT_EQ(out.sizes(), (std::vector<std::int64_t>{2, 21, 40, 57}));
    EXPECT_TRUE(torch::allclose(out, image[0], 1e-5, 1e-6)) << "gaussian " << gaussian;
  }
  // Uniform weights: a voxel is the plain mean of the tiles that cover it. Each tile returns its
  // call number; the mean at a voxel is checked against a brute-force count.
  int call = 0;
  std::vector<std::array<std::int64_t, 3>> origins;
  const auto zs = tileStarts(21, 16);
  const auto ys = tileStarts(40, 16);
  const auto xs = tileStarts(57, 16);
  for (const auto z : zs) {
    for (const auto y : ys) {
      for (const auto x : xs) {
        origins.push_back({z, y, x});
      }
    }
  }
  const auto mean = slidingWindowProbabilities(
      torch::zeros({1, 1, 21, 40, 57}),
      [&](const torch::Tensor& tile) { return torch::full_like(tile, static_cast<float>(call++)); },
      {.tile = 16, .gaussian = false});
  for (const std::array<std::int64_t, 3> v : {std::array<std::int64_t, 3>{0, 0, 0},
                                              std::array<std::int64_t, 3>{4, 9, 20},
                                              std::array<std::int64_t, 3>{20, 39, 56},
                                              std::array<std::int64_t, 3>{10, 17, 30}}) {
    double sum = 0;
    int n = 0;
    for (std::size_t t = 0; t < origins.size(); ++t) {
      const auto& o = origins[t];
      if (v[0] >= o[0] && v[0] < o[0] + 16 && v[1] >= o[1] && v[1] < o[1] + 16 && v[2] >= o[2] &&
          v[2] < o[2] + 16) {
        sum += static_cast<double>(t);
        ++n;
      }
    }
    EXPECT_NEAR(mean[0][v[0]][v[1]][v[2]].item<float>(), sum / n, 1e-4);
  }
}

TEST(SlidingWindow, OneTileEqualsTheNetworkOnTheWholePaddedInput) {
  torch::manual_seed(4);
  models::GeminiUNet net(models::geminiUNetPreset("tiny"));
  net->eval();
  torch::NoGradGuard noGrad;
  const auto image = torch::rand({1, 1, 20, 32, 9});
  namespace F = torch::nn::functional;
  const auto padded = F::pad(image, F::PadFuncOptions({0, 23, 0, 0, 0, 12}));
  const auto whole = net->probabilities(padded)[0].slice(1, 0, 20).slice(3, 0, 9);
  for (const bool gaussian : {false, true}) {
    const auto tiled =
        slidingWindowProbabilities(image,
                                   [&](const torch::Tensor& t) { return net->probabilities(t); },
                                   {.tile = 32, .gaussian = gaussian});
    ASSERT_EQ(tiled.sizes(), whole.sizes());
    if (gaussian) {
      EXPECT_TRUE(torch::allclose(tiled, whole, 0, 1e-6)); // p·w/w: rounding of the weight only
    } else {
      EXPECT_TRUE(torch::equal(tiled, whole)); // exactly the same numbers
    }
  }
}

TEST(GeminiSegmenter, PhantomGetsLabelsOnTheExactInputGrid) {
  testing::TempDir tmp;
  PhantomSpec spec;
  spec.size = 64;
  spec.slices = 20;
  spec.spacingXY = 6.5; // 409.5 mm: 69 voxels of 6 mm, 2 x 2 x 1 tiles of 64
  const auto ct = makePhantom(spec, 1).ct;
  const auto segmenter = loadSegmenter(tinyGeminiUNet(tmp)); // through the dispatcher
  const ModelIdentity id = segmenter->identity();
  EXPECT_EQ(id.architecture, "gemini-unet");
  EXPECT_EQ(id.preset, "tiny");
  EXPECT_EQ(id.trainingStage, "untrained");
  EXPECT_EQ(id.id.rfind("gemini-unet-tiny@", 0), 0U) << id.id;
  std::vector<double> fractions;
  const SegmentationResult r = segmenter->segment(ct, [&](double f) { fractions.push_back(f); });
  EXPECT_EQ(r.labels.size(), ct.size());
  EXPECT_EQ(r.labels.geometry(), ct.geometry());
  expectLabels(r.labels);
  ASSERT_EQ(fractions.size(), 4U); // after each tile
  EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  for (const char* stage : {"preprocess", "network", "postprocess"}) {
    EXPECT_TRUE(r.seconds.contains(stage)) << stage;
  }
  // Repeatable: the same case gives the same labels.
  EXPECT_EQ(segmenter->segment(ct, {}).labels, r.labels);
}

TEST(GeminiSegmenter, ShortFeetFirstAndCoronalVolumesSegmentOnTheirGrid) {
  testing::TempDir tmp;
  SegmenterOptions options;
  options.tileSize = 32;
  const auto segmenter = loadGeminiUNetSegmenter(tinyGeminiUNet(tmp), options);
  core::Geometry headFirst;
  headFirst.spacing = {4, 4, 5};
  core::Geometry feetFirst = headFirst;
  feetFirst.direction = {1, 0, 0, 0, 1, 0, 0, 0, -1};
  feetFirst.origin = {0, 0, 15 * 5.0}; // the same slices, stored top first
  core::Geometry coronal;
  coronal.spacing = {3, 6, 3};
  coronal.direction = {1, 0, 0, 0, 0, 1, 0, -1, 0};
  const core::Size3 size{40, 36, 16};
  const auto headCt = pattern(size, headFirst);
  core::Volume<std::int16_t> feetCt(size, feetFirst, 0);
  for (std::size_t k = 0; k < size[2]; ++k) {
    for (std::size_t j = 0; j < size[1]; ++j) {
      for (std::size_t i = 0; i < size[0]; ++i) {
        feetCt.at(i, j, k) = headCt.at(i, j, size[2] - 1 - k);
      }
    }
  }
  const std::vector<core::Volume<std::int16_t>> cts{pattern({48, 40, 3}, headFirst),
                                                    pattern({48, 40, 1}, headFirst),
                                                    headCt,
                                                    feetCt,
                                                    pattern({50, 12, 40}, coronal)};
  std::vector<core::LabelMap> labels;
  for (const auto& ct : cts) {
    const SegmentationResult r = segmenter->segment(ct, {});
    EXPECT_EQ(r.labels.size(), ct.size());
    EXPECT_EQ(r.labels.geometry(), ct.geometry());
    expectLabels(r.labels);
    labels.push_back(r.labels);
  }
  // The feet-first series is the head-first one stored in reverse: the same labels, reversed.
  const auto& head = labels[2];
  const auto& feet = labels[3];
  for (std::size_t k = 0; k < size[2]; ++k) {
    for (std::size_t j = 0; j < size[1]; ++j) {
      for (std::size_t i = 0; i < size[0]; ++i) {
        ASSERT_EQ(feet.at(i, j, k), head.at(i, j, size[2] - 1 - k)) << i << " " << j << " " << k;
      }
    }
  }
}

TEST(GeminiSegmenter, ThresholdOverridesReplaceTheArgmax) {
  testing::TempDir tmp;
  core::Geometry g;
  g.spacing = {4.5, 5, 7.5}; // the 6 mm grid ends 1.5 mm short of the last slice: it gets labels
  const auto ct = pattern({12, 10, 4}, g);
  SegmenterOptions options;
  options.tileSize = 16;
  options.liverThreshold = 0.0F;  // every voxel is liver
  options.tumourThreshold = 2.0F; // no voxel is tumour
  auto count = [&](std::uint8_t value) {
    const auto labels =
        loadGeminiUNetSegmenter(tinyGeminiUNet(tmp), options)->segment(ct, {}).labels;
    return std::count(labels.voxels().begin(), labels.voxels().end(), value);
  };
  const auto all = static_cast<std::ptrdiff_t>(ct.voxelCount());
  EXPECT_EQ(count(1), all);
  options.tumourThreshold = 0.0F; // every voxel is tumour, inside the liver
  EXPECT_EQ(count(2), all);
  options.minLesionMl = 1e6; // ... unless lesions that small are not reported
  EXPECT_EQ(count(1), all);
}

TEST(SegmenterDispatch, RefusesModelsThatCannotSegment) {
  testing::TempDir tmp;
  auto message = [](const fs::path& file, const SegmenterOptions& options = {}) {
    try {
      (void)loadSegmenter(file, options);
    } catch (const models::ModelError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const fs::path gemini = writeModel(tmp / "pretrained.densa", "gemini");
  const std::string m = message(gemini);
  EXPECT_NE(m.find(gemini.string()), std::string::npos) << m;
  EXPECT_NE(m.find("'gemini'"), std::string::npos) << m;
  EXPECT_NE(m.find("hdenseunet, gemini-unet"), std::string::npos) << m;
  std::ofstream(tmp / "junk.densa") << "not a checkpoint at all";
  EXPECT_NE(message(tmp / "junk.densa").find("junk.densa"), std::string::npos);
  EXPECT_NE(message(tmp / "missing.densa").find("missing.densa"), std::string::npos);
  // A gemini-unet card without an isotropic spacing (makeModelCard's "native").
  const fs::path native = writeModel(tmp / "native.densa", "gemini-unet", "native");
  EXPECT_NE(message(native).find("spacing policy 'native'"), std::string::npos) << message(native);
  // The loaders refuse each other's architectures.
  EXPECT_THROW((void)loadGeminiUNetSegmenter(gemini), models::ModelError);
  const fs::path hdense = tmp / "hdense.densa";
  {
    models::ModelCard card = models::makeModelCard("hdenseunet", "tiny");
    models::saveCheckpoint(models::makeNet(card.options), card, hdense);
  }
  EXPECT_THROW((void)loadGeminiUNetSegmenter(hdense), models::ModelError);
  EXPECT_THROW((void)loadHDenseUNetSegmenter(tinyGeminiUNet(tmp)), models::ModelError);
  EXPECT_EQ(loadSegmenter(hdense)->identity().architecture, "hdenseunet");
  SegmenterOptions badTile;
  badTile.tileSize = 40;
  EXPECT_THROW((void)loadSegmenter(tinyGeminiUNet(tmp), badTile), core::InvalidArgument);
}

TEST(GeminiSegmentCli, SegmentsACaseWithAGeminiUNetModel) {
  testing::TempDir tmp;
  PhantomSpec spec;
  spec.size = 64;
  spec.slices = 12;
  const auto ct = makePhantom(spec, 2).ct;
  io::writeImage(ct, tmp / "in" / "case.nii.gz");
  const std::string model = tinyGeminiUNet(tmp).string();
  const std::string in = (tmp / "in").string();
  const std::string out = (tmp / "out").string();
  const pid_t pid = fork();
  if (pid == 0) {
    const std::vector<const char*> argv{DENSA_EXE,
                                        "segment",
                                        "-i",
                                        in.c_str(),
                                        "-o",
                                        out.c_str(),
                                        "--model",
                                        model.c_str(),
                                        nullptr};
    execv(DENSA_EXE, const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  const auto labels =
      std::get<core::LabelMap>(io::readImage(tmp / "out" / "case" / "label.nii.gz"));
  EXPECT_EQ(labels.size(), ct.size());
  EXPECT_TRUE(labels.geometry().approxEqual(ct.geometry(), 1e-4));
  expectLabels(labels);
  std::ifstream report(tmp / "out" / "case" / "report.json");
  const auto j = nlohmann::json::parse(report);
  EXPECT_EQ(j["model"]["architecture"], "gemini-unet");
}

} // namespace
} // namespace densa::app
