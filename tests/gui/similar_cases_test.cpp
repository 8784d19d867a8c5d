// SPDX-License-Identifier: Apache-2.0
// The viewer's "Similar cases" panel over a tiny ADSL model and index made here.
#include "densa/app/adsl.hpp"
#include "densa/gui/main_window.hpp"
#include "densa/io/image_file.hpp"

#include "support/test_support.hpp"

#include <QApplication>
#include <QTableWidget>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace densa::gui {
namespace {

namespace fs = std::filesystem;

/// A body disc with a bright disc, a dark square and a mid-grey bar (labels 1-3), varying with
/// the seed, on 12 slices of 64 × 64 (2 × 2 × 4 mm).
void writeCase(const fs::path& dir, int seed) {
  core::Geometry g;
  g.spacing = {2.0, 2.0, 4.0};
  g.origin = {-10, 20, -30};
  core::Volume<std::int16_t> ct({64, 64, 12}, g, -1000);
  core::LabelMap labels(ct.size(), g, 0);
  const double shift = (seed % 3) * 2;
  const auto body = static_cast<std::int16_t>(40 + 25 * (seed % 4));
  for (std::size_t k = 0; k < 12; ++k) {
    for (std::size_t j = 0; j < 64; ++j) {
      for (std::size_t i = 0; i < 64; ++i) {
        const double di = static_cast<double>(i) - 32;
        const double dj = static_cast<double>(j) - 32;
        if (di * di + dj * dj < 28 * 28) {
          ct.at(i, j, k) = body;
        }
        if ((di + 14 - shift) * (di + 14 - shift) + (dj + 10) * (dj + 10) < 36) {
          ct.at(i, j, k) = 250;
          labels.at(i, j, k) = 1;
        } else if (i >= 36 && i < 46 && j >= 14 && j < 24) {
          ct.at(i, j, k) = -150;
          labels.at(i, j, k) = 2;
        } else if (i >= 24 && i < 40 && j >= 44 && j < 48) {
          ct.at(i, j, k) = 120;
          labels.at(i, j, k) = 3;
        }
      }
    }
  }
  const std::string id = "case" + std::to_string(seed);
  io::writeImage(ct, dir / "cts" / (id + "_ct.nii.gz"));
  io::writeImage(labels, dir / "labels" / (id + "_labels.nii.gz"));
}

/// Trains a tiny ADSL model (one epoch) on three cases and indexes them into dir/idx.
void makeIndex(const fs::path& dir) {
  fs::create_directories(dir / "cts");
  fs::create_directories(dir / "labels");
  std::ofstream csv(dir / "cases.csv");
  csv << "image,label\n";
  for (int c = 0; c < 3; ++c) {
    writeCase(dir, c);
    csv << "cts/case" << c << "_ct.nii.gz,labels/case" << c << "_labels.nii.gz\n";
  }
  csv.close();
  std::ofstream(dir / "adsl.yaml")
      << "datasets:\n  - path: " << (dir / "cases.csv").string()
      << "\n    classes: {1: disc, 2: square, 3: bar}\n"
         "preset: tiny\nfreeze_batchnorm: false\npatch_mm: 32\npatch_pixels: 32\nmax_per_class: "
         "12\nmin_area_mm2: 50\nholdout_block_mm: 8\nholdout_every: 2\nepochs: 1\n"
         "finetune_epoch: 2\nbatch_size: 12\nper_class: 4\nbatches_per_epoch: 3\n"
         "lr_backbone: 1.0e-3\nlr_embedding: 1.0e-3\nthreads: 1\n";
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(app::runTrainAdsl({.config = dir / "adsl.yaml",
                               .resume = std::nullopt,
                               .runDir = dir / "run",
                               .overrides = {}},
                              out,
                              err),
            0)
      << err.str();
  app::IndexCommand add;
  add.action = "add";
  add.index = dir / "idx";
  add.input = dir / "cts";
  add.model = dir / "run" / "best.densa";
  add.sliceStepMm = 16; // recorded in idx/model.json: the viewer queries with the same step
  ASSERT_EQ(app::runIndex(add, out, err), 0) << err.str();
}

ViewerOptions scripted() {
  ViewerOptions o;
  o.interactive = false;
  return o;
}

TEST(SimilarCasesPanel, FindsTheOpenCaseFirstAndOpensAHitSideBySide) {
  testing::TempDir tmp;
  ASSERT_NO_FATAL_FAILURE(makeIndex(tmp.path()));

  MainWindow window(scripted());
  window.resize(1000, 700);
  window.show();
  // Errors are reported, never a crash: no CT, no index, a folder without an index.
  EXPECT_FALSE(window.findSimilarCases());
  EXPECT_TRUE(window.lastError().contains("open a CT")) << window.lastError().toStdString();
  EXPECT_FALSE(window.setSimilarIndex(QString::fromStdString((tmp / "cts").string())));
  EXPECT_TRUE(window.lastError().contains("no case index")) << window.lastError().toStdString();

  ASSERT_TRUE(window.open(QString::fromStdString((tmp / "cts" / "case1_ct.nii.gz").string())));
  ASSERT_TRUE(window.waitForTask()) << window.lastError().toStdString();
  EXPECT_FALSE(window.findSimilarCases());
  EXPECT_TRUE(window.lastError().contains("index")) << window.lastError().toStdString();

  ASSERT_TRUE(window.setSimilarIndex(QString::fromStdString((tmp / "idx").string())));
  ASSERT_TRUE(window.findSimilarCases());
  EXPECT_TRUE(window.busy());
  ASSERT_TRUE(window.waitForTask(60000)) << window.lastError().toStdString();
  QTableWidget* table = window.similarTable();
  ASSERT_EQ(table->rowCount(), 3); // k = 10, three cases indexed
  EXPECT_TRUE(table->item(0, 2)->text().contains("case1_ct"))
      << table->item(0, 2)->text().toStdString();
  EXPECT_EQ(table->item(0, 1)->text(), "1");
  EXPECT_EQ(table->item(0, 3)->text(), "1.000");    // the case itself: distance ~0
  EXPECT_FALSE(table->item(0, 0)->icon().isNull()); // the query's picture
  EXPECT_EQ(window.similarResult().queryKind, "case");

  // A patch query at the crosshair.
  window.state()->setCursor({20, 22, 5});
  ASSERT_TRUE(window.findSimilarAtPoint());
  ASSERT_TRUE(window.waitForTask(60000)) << window.lastError().toStdString();
  EXPECT_EQ(window.similarResult().queryKind, "patch");
  ASSERT_EQ(table->rowCount(), 3);
  EXPECT_FALSE(window.similarResult().hits[0].picture.empty());
  EXPECT_FALSE(table->item(0, 0)->icon().isNull());

  // Opening a hit makes a second viewer window beside the first, centred on the match.
  const auto windows = [] {
    int n = 0;
    for (QWidget* w : QApplication::topLevelWidgets()) {
      n += qobject_cast<MainWindow*>(w) != nullptr && w->isVisible() ? 1 : 0;
    }
    return n;
  };
  const int before = windows();
  const app::SimilarHit hit = window.similarResult().hits[0];
  MainWindow* other = window.openSimilarHit(0);
  ASSERT_NE(other, nullptr) << window.lastError().toStdString();
  EXPECT_EQ(windows(), before + 1);
  ASSERT_TRUE(other->waitForTask(60000)) << other->lastError().toStdString();
  QApplication::processEvents();
  EXPECT_FALSE(other->state()->document().empty());
  EXPECT_EQ(other->state()->document().source.toStdString(), hit.sourcePath);
  EXPECT_GT(other->geometry().left(), window.geometry().left()); // beside it, to the right
  ASSERT_TRUE(hit.matchMm);
  const auto c = other->state()->cursor();
  const auto x = other->state()->document().ct.physicalToIndex(*hit.matchMm);
  for (std::size_t a = 0; a < 3; ++a) {
    EXPECT_NEAR(static_cast<double>(c[a]), x[a], 0.51) << a;
  }
  other->close(); // deleted on close

  // A hit whose source is gone is an error message, no window.
  fs::rename(hit.sourcePath, tmp / "moved.nii.gz");
  EXPECT_EQ(window.openSimilarHit(0), nullptr);
  EXPECT_TRUE(window.lastError().contains("does not exist")) << window.lastError().toStdString();
  EXPECT_EQ(window.openSimilarHit(7), nullptr);

  // An index whose recorded model is gone: the search fails with a message, the viewer stays.
  std::ofstream(tmp / "idx" / "model.json")
      << R"({"model": ")" << (tmp / "gone.densa").string() << R"("})";
  ASSERT_TRUE(window.setSimilarIndex(QString::fromStdString((tmp / "idx").string())));
  ASSERT_TRUE(window.findSimilarCases());
  EXPECT_FALSE(window.waitForTask(60000));
  EXPECT_TRUE(window.lastError().contains("gone.densa")) << window.lastError().toStdString();
  EXPECT_FALSE(window.busy());
  if (qEnvironmentVariableIsSet("DENSA_SIMILAR_SHOT")) {
    window.saveScreenshot(qEnvironmentVariable("DENSA_SIMILAR_SHOT"));
  }
}

} // namespace
} // namespace densa::gui
