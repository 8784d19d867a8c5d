// SPDX-License-Identifier: Apache-2.0
// ADSL similar-case retrieval in app/: patches, the training run, the index and search commands.
#include "densa/app/adsl.hpp"

#include "densa/app/case_index.hpp"
#include "densa/app/case_io.hpp"
#include "densa/app/similar_cases.hpp"
#include "densa/core/error.hpp"
#include "densa/core/orient.hpp"
#include "densa/io/image_file.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include "adsl_data.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

namespace densa::app {
namespace {

namespace fs = std::filesystem;

core::Geometry geometry(double sx, double sy, double sz) {
  core::Geometry g;
  g.spacing = {sx, sy, sz};
  g.origin = {-10, 20, -30};
  return g;
}

TEST(AdslData, PatchHasItsPhysicalSizeAndTheHuWindow) {
  // A 20 mm x 20 mm bright square on anisotropic pixels (0.5 x 1 mm).
  core::Volume<std::int16_t> ct({100, 80, 3}, geometry(0.5, 1.0, 2.0), -1000);
  for (std::size_t k = 0; k < 3; ++k) {
    for (std::size_t j = 30; j < 50; ++j) {
      for (std::size_t i = 30; i < 70; ++i) {
        ct.at(i, j, k) = 300;
      }
    }
  }
  AdslPatchSpec spec;
  spec.patchMm = 40;
  spec.pixels = 40; // 1 mm per patch pixel
  spec.huMin = -200;
  spec.huMax = 300;
  const torch::Tensor p = axialPatch(ct, 1, 49.5, 39.5, spec);
  ASSERT_EQ(p.sizes(), (std::vector<std::int64_t>{1, 40, 40}));
  EXPECT_FLOAT_EQ(p[0][20][20].item<float>(), 1.0F);
  EXPECT_FLOAT_EQ(p[0][0][0].item<float>(), 0.0F);
  const auto bright = (p > 0.99).sum().item<std::int64_t>();
  EXPECT_NEAR(static_cast<double>(bright), 400.0, 80.0); // the 20 x 20 mm square, ±1 px rim
  // Out of the image counts as air.
  const torch::Tensor outside = axialPatch(ct, 0, -500, -500, spec);
  EXPECT_FLOAT_EQ(outside.max().item<float>(), 0.0F);
  EXPECT_THROW((void)axialPatch(ct, 3, 0, 0, spec), core::InvalidArgument);
}

/// Three classes in distinct places: 1 a bright disc, 2 a dark square, 3 a mid-grey bar; the
/// body's density and the disc's place vary with the seed.
TrainingVolume threeClasses(int slices, std::uint64_t seed) {
  const auto shift = static_cast<double>(seed % 3) * 2;
  const auto body = static_cast<std::int16_t>(40 + 25 * static_cast<int>(seed % 4));
  TrainingVolume v;
  v.id = "synthetic" + std::to_string(seed);
  v.ct = core::Volume<std::int16_t>(
      {64, 64, static_cast<std::size_t>(slices)}, geometry(2.0, 2.0, 4.0), -1000);
  v.labels = core::LabelMap(v.ct.size(), v.ct.geometry(), 0);
  for (std::size_t k = 0; k < v.ct.size()[2]; ++k) {
    for (std::size_t j = 0; j < 64; ++j) {
      for (std::size_t i = 0; i < 64; ++i) {
        const double di = static_cast<double>(i) - 32;
        const double dj = static_cast<double>(j) - 32;
        if (di * di + dj * dj < 28 * 28) {
          v.ct.at(i, j, k) = body;
        }
        if ((di + 14 - shift) * (di + 14 - shift) + (dj + 10) * (dj + 10) < 36) {
          v.ct.at(i, j, k) = 250;
          v.labels.at(i, j, k) = 1;
        } else if (i >= 36 && i < 46 && j >= 14 && j < 24) {
          v.ct.at(i, j, k) = -150;
          v.labels.at(i, j, k) = 2;
        } else if (i >= 24 && i < 40 && j >= 44 && j < 48) {
          v.ct.at(i, j, k) = 120;
          v.labels.at(i, j, k) = 3;
        }
      }
    }
  }
  return v;
}

TEST(AdslData, LabelledPatchesAreCentredOnTheirClass) {
  const TrainingVolume v = threeClasses(6, 1);
  AdslPatchSpec spec;
  spec.patchMm = 32;
  spec.pixels = 16;
  const auto items = labelledPatches(v, 3, spec, 10, 50, 7);
  std::map<int, int> perClass;
  for (const auto& item : items) {
    ++perClass[item.label];
    const auto& c = item.centreIndex;
    EXPECT_EQ(v.labels.at(static_cast<std::size_t>(c[0]),
                          static_cast<std::size_t>(c[1]),
                          static_cast<std::size_t>(c[2])),
              item.label + 1);
    EXPECT_EQ(item.image.sizes(), (std::vector<std::int64_t>{1, 16, 16}));
    const auto mm = v.ct.indexToPhysical(c);
    for (int a = 0; a < 3; ++a) {
      EXPECT_DOUBLE_EQ(item.centreMm[static_cast<std::size_t>(a)], mm[static_cast<std::size_t>(a)]);
    }
  }
  // Bar 3 covers 16 x 4 px of 4 mm² = 256 mm² (>= 50): all three classes, capped at 10 each.
  EXPECT_EQ(perClass, (std::map<int, int>{{0, 10}, {1, 10}, {2, 10}}));
  // A larger minimum area drops the bar only.
  const auto big = labelledPatches(v, 3, spec, 10, 300, 7);
  for (const auto& item : big) {
    EXPECT_NE(item.label, 2);
  }
  // Deterministic for a seed.
  const auto again = labelledPatches(v, 3, spec, 10, 50, 7);
  ASSERT_EQ(again.size(), items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    EXPECT_TRUE(torch::equal(again[i].image, items[i].image));
  }
}

TEST(AdslData, BodyTilesCoverTheBodyOnly) {
  const TrainingVolume v = threeClasses(10, 1);
  AdslPatchSpec spec;
  spec.patchMm = 32; // 16 px tiles of a 64 px (128 mm) slice: 4 x 4 per slice
  spec.pixels = 16;
  const auto tiles = bodyTiles(v.ct, spec, 12); // every 3rd of 10 slices: 4 slices
  std::set<int> slices;
  for (const auto& t : tiles) {
    slices.insert(t.slice);
    const auto i = static_cast<std::size_t>(t.centreIndex[0]);
    const auto j = static_cast<std::size_t>(t.centreIndex[1]);
    EXPECT_GT(v.ct.at(i, j, static_cast<std::size_t>(t.slice)), -500);
  }
  EXPECT_EQ(slices, (std::set<int>{0, 3, 6, 9}));
  // The disc of radius 56 mm leaves the 4 corner tiles mostly outside: 12 tiles per slice.
  EXPECT_EQ(tiles.size(), 4U * 12U);
}

TEST(AdslData, TransformsKeepShapesAndAreSeeded) {
  const torch::Tensor batch = torch::rand({5, 1, 24, 24});
  std::mt19937_64 a(3);
  std::mt19937_64 b(3);
  const torch::Tensor x = trainTransform(batch, 0.25, a);
  const torch::Tensor y = trainTransform(batch, 0.25, b);
  EXPECT_EQ(x.sizes(), batch.sizes());
  EXPECT_TRUE(torch::equal(x, y));
  EXPECT_FALSE(torch::allclose(x, batch));
  const torch::Tensor e = evalTransform(batch);
  EXPECT_EQ(e.sizes(), batch.sizes());
  // A constant patch stays constant.
  const torch::Tensor flat = torch::full({2, 1, 24, 24}, 0.25F);
  EXPECT_TRUE(torch::allclose(evalTransform(flat), flat));
  EXPECT_TRUE(torch::allclose(trainTransform(flat, 0.1, a), flat));
}

/// A CSV dataset of synthetic three-class volumes (NIfTI) under `dir`.
fs::path writeDataset(const fs::path& dir, int cases) {
  fs::create_directories(dir);
  std::ofstream csv(dir / "cases.csv");
  csv << "image,label\n";
  for (int c = 0; c < cases; ++c) {
    const TrainingVolume v = threeClasses(12, static_cast<std::uint64_t>(c));
    const std::string id = "case" + std::to_string(c);
    io::writeImage(v.ct, dir / (id + "_ct.nii.gz"));
    io::writeImage(v.labels, dir / (id + "_labels.nii.gz"));
    csv << id << "_ct.nii.gz," << id << "_labels.nii.gz\n";
  }
  return dir / "cases.csv";
}

fs::path writeConfig(const fs::path& dir, const fs::path& csv) {
  std::ofstream(dir / "adsl.yaml")
      << "datasets:\n  - path: " << csv.string()
      << "\n    classes: {1: disc, 2: square, 3: bar}\n"
         "preset: tiny\nfreeze_batchnorm: false\npatch_mm: 32\npatch_pixels: 32\nmax_per_class: "
         "12\nmin_area_mm2: 50\n"
         "holdout_block_mm: 8\nholdout_every: 2\nepochs: 3\nfinetune_epoch: 2\nbatch_size: "
         "12\nper_class: 4\n"
         "batches_per_epoch: 3\nlr_backbone: 1.0e-3\nlr_embedding: 1.0e-3\nthreads: 1\n";
  return dir / "adsl.yaml";
}

/// `densa train adsl --config config -o run --set …`.
int train(const fs::path& config,
          const fs::path& run,
          const std::vector<std::string>& overrides,
          std::ostream& out,
          std::ostream& err) {
  return runTrainAdsl(
      {.config = config, .resume = std::nullopt, .runDir = run, .overrides = overrides}, out, err);
}

std::map<std::string, torch::Tensor> weights(const fs::path& checkpoint) {
  return models::stateDict(*models::moduleOf(models::loadCheckpoint(checkpoint).net));
}

TEST(AdslTrain, WritesARunFolderAndResumesExactly) {
  testing::TempDir tmp;
  const fs::path csv = writeDataset(tmp / "data", 2);
  const fs::path config = writeConfig(tmp.path(), csv);
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(runTrainAdsl(
                {.config = config, .resume = std::nullopt, .runDir = tmp / "full", .overrides = {}},
                out,
                err),
            0)
      << err.str() << out.str();
  for (const char* f : {"config.yaml",
                        "metrics.csv",
                        "train.log",
                        "report.html",
                        "retrieval.json",
                        "retrieval_per_class.csv",
                        "best.densa",
                        "last.densa",
                        "state.pt",
                        "adsl_state.json"}) {
    EXPECT_TRUE(fs::exists(tmp / "full" / f)) << f;
  }
  const models::ModelCard card = models::readModelCard(tmp / "full" / "best.densa");
  EXPECT_EQ(models::architectureId(card.options), "adsl");
  EXPECT_EQ(card.labels, (std::vector<std::string>{"disc", "square", "bar"}));
  EXPECT_NE(card.preprocessing.spacingPolicy.find("adsl patch 32 mm at 32 px"), std::string::npos);
  std::ifstream in(tmp / "full" / "retrieval.json");
  const auto j = nlohmann::json::parse(in);
  for (const char* set : {"validation", "test"}) {
    for (const char* key : {"embedding", "pooled", "raw_pixels", "untrained_pooled"}) {
      ASSERT_TRUE(j[set].contains(key)) << set << " " << key;
      const double nmi = j[set][key]["nmi"].get<double>();
      EXPECT_GE(nmi, 0.0);
      EXPECT_LE(nmi, 1.0 + 1e-9);
      EXPECT_TRUE(j[set][key]["per_class"].contains("disc"));
    }
  }
  // Raw pixels separate these three synthetic structures well (a sanity check of scoring).
  EXPECT_GT(j["validation"]["raw_pixels"]["recall_at_1"].get<double>(), 0.75);

  // 2 epochs, then --resume for the third: identical weights.
  ASSERT_EQ(train(config, tmp / "part", {"epochs=2"}, out, err), 0) << err.str();
  ASSERT_EQ(
      runTrainAdsl(
          {.config = std::nullopt, .resume = tmp / "part", .runDir = {}, .overrides = {"epochs=3"}},
          out,
          err),
      0)
      << err.str();
  const auto a = weights(tmp / "full" / "last.densa");
  const auto b = weights(tmp / "part" / "last.densa");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  }
}

TEST(AdslTrain, SelfSupervisedTilesThenInitFrom) {
  testing::TempDir tmp;
  const fs::path csv = writeDataset(tmp / "data", 2);
  const fs::path config = writeConfig(tmp.path(), csv);
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(
      train(config, tmp / "ssl", {"self_supervised=true", "tile_step_mm=4", "epochs=1"}, out, err),
      0)
      << err.str();
  EXPECT_NE(out.str().find("unlabelled training tiles"), std::string::npos) << out.str();
  EXPECT_EQ(models::readModelCard(tmp / "ssl" / "best.densa").provenance.trainingStage,
            "self-supervised");
  // A supervised run from it: with a zero backbone learning rate its backbone stays the
  // self-supervised one.
  ASSERT_EQ(
      train(config,
            tmp / "sup",
            {"init_from=" + (tmp / "ssl" / "best.densa").string(), "lr_backbone=0", "epochs=1"},
            out,
            err),
      0)
      << err.str();
  const auto ssl = models::loadCheckpoint(tmp / "ssl" / "best.densa");
  const auto sup = models::loadCheckpoint(tmp / "sup" / "last.densa");
  const auto a = models::moduleOf(ssl.net)->named_parameters();
  const auto b = models::moduleOf(sup.net)->named_parameters();
  int compared = 0;
  for (const auto& item : a) {
    if (item.key().rfind("backbone.", 0) == 0 || item.key().rfind("attention.", 0) == 0) {
      EXPECT_TRUE(torch::equal(item.value(), b[item.key()])) << item.key();
      ++compared;
    }
  }
  EXPECT_GT(compared, 10);
  // init_from must be an adsl checkpoint.
  EXPECT_THROW((void)train(config, tmp / "bad", {"init_from=" + csv.string()}, out, err),
               std::exception);
}

TEST(AdslTrain, BadConfigsAreClearErrors) {
  testing::TempDir tmp;
  std::ofstream(tmp / "bad.yaml") << "datasets:\n  - path: x.csv\npreset: tiny\n";
  EXPECT_THROW((void)loadAdslConfig(tmp / "bad.yaml"), core::InvalidArgument); // no classes
  std::ofstream(tmp / "bad2.yaml")
      << "datasets:\n  - path: x.csv\n    classes: {1: a}\nholdout: random\n";
  EXPECT_THROW((void)loadAdslConfig(tmp / "bad2.yaml"), core::InvalidArgument);
  std::ofstream(tmp / "bad3.yaml")
      << "datasets:\n  - path: x.csv\n    classes: {1: a}\nbogus_key: 1\n";
  EXPECT_THROW((void)loadAdslConfig(tmp / "bad3.yaml"), core::InvalidArgument);
}

TEST(AdslIndex, AddPersistSearchAndRefuseAnotherModel) {
  testing::TempDir tmp;
  const fs::path csv = writeDataset(tmp / "data", 3);
  const fs::path config = writeConfig(tmp.path(), csv);
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(train(config, tmp / "run", {"epochs=1"}, out, err), 0) << err.str();
  const fs::path model = tmp / "run" / "best.densa";
  IndexCommand add;
  add.action = "add";
  add.index = tmp / "idx";
  add.input = tmp / "data";
  add.model = model;
  add.sliceStepMm = 16;
  // Every CT under the folder (the label maps are not CTs and are skipped).
  ASSERT_EQ(runIndex(add, out, err), 0) << err.str();
  EXPECT_EQ(CaseIndex::open(tmp / "idx", "").caseCount(), 3);
  // Adding again replaces, it does not duplicate.
  ASSERT_EQ(runIndex(add, out, err), 0) << err.str();
  EXPECT_EQ(CaseIndex::open(tmp / "idx", "").caseCount(), 3);

  // A case query finds itself first, at distance ~0; results are stable across a reload.
  SearchCommand search;
  search.query = tmp / "data" / "case1_ct.nii.gz";
  search.index = tmp / "idx";
  search.k = 3;
  search.json = true;
  search.sliceStepMm = 16;
  search.output = tmp / "search";
  std::ostringstream first;
  ASSERT_EQ(runSearch(search, first, err), 0) << err.str();
  const auto r1 = nlohmann::json::parse(first.str());
  ASSERT_EQ(r1["hits"].size(), 3U);
  EXPECT_NE(r1["hits"][0]["case_id"].get<std::string>().find("case1_ct"), std::string::npos);
  EXPECT_NEAR(r1["hits"][0]["distance"].get<double>(), 0.0, 1e-4);
  EXPECT_TRUE(fs::exists(tmp / "search" / "query_attention.png"));
  EXPECT_TRUE(fs::exists(tmp / "search" / "query_attention.nii.gz"));
  EXPECT_TRUE(fs::exists(tmp / "search" / "results.json"));
  std::ostringstream second;
  ASSERT_EQ(runSearch(search, second, err), 0) << err.str();
  EXPECT_EQ(nlohmann::json::parse(second.str())["hits"], r1["hits"]);

  // A patch query around a point; the proxy-mask Dice is reported with an ROI.
  SearchCommand roi = search;
  roi.roi = tmp / "data" / "case2_labels.nii.gz";
  roi.roiLabel = 1;
  std::ostringstream third;
  ASSERT_EQ(runSearch(roi, third, err), 0) << err.str();
  const auto r3 = nlohmann::json::parse(third.str());
  EXPECT_EQ(r3["query_kind"], "patch");
  EXPECT_TRUE(r3.contains("attention_proxy_dice"));
  EXPECT_TRUE(fs::exists(tmp / "search" / "hit_1_attention.png"));

  // Another model (another version) is refused, naming both versions.
  ASSERT_EQ(train(config, tmp / "other", {"epochs=1", "seed=9"}, out, err), 0);
  // Remove a case; removing an unknown id is reported (exit 3).
  IndexCommand remove;
  remove.action = "remove";
  remove.index = tmp / "idx";
  remove.caseIds = {CaseIndex::open(tmp / "idx", "").caseIds().front()};
  EXPECT_EQ(runIndex(remove, out, err), 0);
  EXPECT_EQ(CaseIndex::open(tmp / "idx", "").caseCount(), 2);
  remove.caseIds = {"no-such-case"};
  EXPECT_EQ(runIndex(remove, out, err), 3);

  SearchCommand wrong = search;
  wrong.model = tmp / "other" / "best.densa";
  try {
    std::ostringstream o;
    (void)runSearch(wrong, o, err);
    FAIL() << "a model-version mismatch was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("adsl/tiny/"), std::string::npos) << e.what();
  }
}

TEST(SimilarCases, LibraryGivesTheCliHits) {
  testing::TempDir tmp;
  const fs::path csv = writeDataset(tmp / "data", 3);
  const fs::path config = writeConfig(tmp.path(), csv);
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(train(config, tmp / "run", {"epochs=1"}, out, err), 0) << err.str();
  IndexCommand add;
  add.action = "add";
  add.index = tmp / "idx";
  add.input = tmp / "data";
  add.model = tmp / "run" / "best.densa";
  add.sliceStepMm = 16;
  ASSERT_EQ(runIndex(add, out, err), 0) << err.str();

  const SimilarCaseSearch searcher(tmp / "idx"); // the recorded model
  EXPECT_EQ(searcher.caseCount(), 3);
  EXPECT_EQ(searcher.indexSliceStepMm(), 16.0);
  EXPECT_EQ(searcher.modelFile(), fs::absolute(tmp / "run" / "best.densa"));
  const fs::path queryFile = tmp / "data" / "case1_ct.nii.gz";
  // The CT as a caller may hold it, re-indexed (j and k reversed, every voxel in place): the
  // library re-indexes it to axial as the CLI does.
  core::AxisPermutation flip;
  flip.flip = {false, true, true};
  const core::Volume<std::int16_t> ct = core::permuteAxes(loadCtPath(queryFile).ct, flip);
  ASSERT_FALSE(core::permutationToAxial(ct.geometry().direction).isIdentity());

  auto cli = [&](const std::optional<std::vector<double>>& point) {
    SearchCommand c;
    c.query = queryFile;
    c.index = tmp / "idx";
    c.k = 3;
    c.json = true;
    c.sliceStepMm = 16;
    c.pointMm = point;
    std::ostringstream o;
    EXPECT_EQ(runSearch(c, o, err), 0) << err.str();
    return nlohmann::json::parse(o.str());
  };
  auto same = [](const nlohmann::json& expected, const SimilarResult& got) {
    EXPECT_EQ(expected["model_version"].get<std::string>(), got.modelVersion);
    EXPECT_EQ(expected["query_kind"].get<std::string>(), got.queryKind);
    ASSERT_EQ(expected["hits"].size(), got.hits.size());
    for (std::size_t r = 0; r < got.hits.size(); ++r) {
      const auto& e = expected["hits"][r];
      const auto& h = got.hits[r];
      EXPECT_EQ(h.rank, static_cast<int>(r + 1));
      EXPECT_EQ(e["case_id"].get<std::string>(), h.caseId) << r;
      EXPECT_EQ(e["source"].get<std::string>(), h.sourcePath) << r;
      EXPECT_DOUBLE_EQ(e["score"].get<double>(), h.score) << r;
      EXPECT_DOUBLE_EQ(e["distance"].get<double>(), h.distance) << r;
      EXPECT_EQ(e.contains("match_centre_mm"), h.matchMm.has_value());
      if (h.matchMm) {
        EXPECT_EQ(e["match_centre_mm"].get<core::Vec3>(), *h.matchMm);
        EXPECT_EQ(e["match_slice"].get<int>(), h.matchSlice);
      }
    }
  };

  // A whole-case query: the case itself first, at distance ~0.
  SimilarQuery whole;
  whole.k = 3;
  whole.sliceStepMm = 16;
  std::vector<double> fractions;
  const SimilarResult r1 = searcher.search(ct, whole, [&](double f) { fractions.push_back(f); });
  same(cli(std::nullopt), r1);
  ASSERT_EQ(r1.hits.size(), 3U);
  EXPECT_NE(r1.hits[0].caseId.find("case1_ct"), std::string::npos);
  EXPECT_NEAR(r1.hits[0].distance, 0.0, 1e-4);
  EXPECT_TRUE(r1.hits[0].picture.empty()); // case queries picture the query only
  EXPECT_GT(r1.queryTiles, 0U);
  ASSERT_FALSE(r1.queryPicture.empty());
  EXPECT_EQ(r1.queryPicture.width, 2 * r1.queryPicture.height); // patch | attention
  EXPECT_EQ(r1.queryPicture.rgb.size(), r1.queryPicture.width * r1.queryPicture.height * 3);
  const core::Volume<std::int16_t> axial =
      core::permuteAxes(ct, core::permutationToAxial(ct.geometry().direction));
  EXPECT_EQ(r1.queryAttention.size(), (core::Size3{axial.size()[0], axial.size()[1], 1}));
  const auto slicePos = axial.indexToPhysical({0, 0, static_cast<double>(r1.querySlice)});
  for (int a = 0; a < 3; ++a) {
    EXPECT_NEAR(r1.queryAttention.geometry().origin[static_cast<std::size_t>(a)],
                slicePos[static_cast<std::size_t>(a)],
                1e-9);
  }
  float peak = 0;
  for (float v : r1.queryAttention.voxels()) {
    peak = std::max(peak, v);
  }
  EXPECT_GT(peak, 0.0F);
  EXPECT_LE(peak, 1.0F);
  ASSERT_FALSE(fractions.empty());
  EXPECT_EQ(fractions.front(), 0.0);
  EXPECT_EQ(fractions.back(), 1.0);

  // A patch query at a point: the matched patches are pictured from their sources.
  const core::Vec3 point = axial.indexToPhysical({20, 22, 5});
  SimilarQuery at = whole;
  at.pointMm = point;
  const SimilarResult r2 = searcher.search(ct, at);
  same(cli(std::vector<double>{point[0], point[1], point[2]}), r2);
  EXPECT_EQ(r2.queryKind, "patch");
  EXPECT_TRUE(r2.warnings.empty());
  for (const auto& h : r2.hits) {
    EXPECT_EQ(h.picture.width, r2.queryPicture.width);
    EXPECT_EQ(h.picture.rgb.size(), h.picture.width * h.picture.height * 3);
  }
  // A hit whose source is gone is a warning, not an error.
  fs::rename(tmp / "data" / "case0_ct.nii.gz", tmp / "case0_moved.nii.gz");
  const SimilarResult r3 = searcher.search(ct, at);
  EXPECT_EQ(r3.hits.size(), 3U);
  ASSERT_EQ(r3.warnings.size(), 1U);
  EXPECT_NE(r3.warnings.front().find("case0_ct"), std::string::npos) << r3.warnings.front();
  fs::rename(tmp / "case0_moved.nii.gz", tmp / "data" / "case0_ct.nii.gz");

  // Errors: a point outside the CT, k < 1, no index, another model.
  SimilarQuery outside = at;
  outside.pointMm = axial.indexToPhysical({20, 22, 500});
  EXPECT_THROW((void)searcher.search(ct, outside), core::InvalidArgument);
  SimilarQuery none = whole;
  none.k = 0;
  EXPECT_THROW((void)searcher.search(ct, none), core::InvalidArgument);
  EXPECT_THROW(SimilarCaseSearch(tmp / "no-index"), core::InputError);
  ASSERT_EQ(train(config, tmp / "other", {"epochs=1", "seed=9"}, out, err), 0);
  try {
    SimilarCaseSearch wrong(tmp / "idx", tmp / "other" / "best.densa");
    FAIL() << "a model-version mismatch was accepted";
  } catch (const core::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("adsl/tiny/"), std::string::npos) << e.what();
  }
}

} // namespace
} // namespace densa::app
