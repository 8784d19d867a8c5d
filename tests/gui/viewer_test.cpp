// SPDX-License-Identifier: Apache-2.0
#include "densa/app/case_io.hpp"
#include "densa/app/phantom.hpp"
#include "densa/core/lesions.hpp"
#include "densa/gui/main_window.hpp"
#include "densa/io/dicom_seg.hpp"
#include "densa/io/dicom_writer.hpp"
#include "densa/io/image_file.hpp"
#include "densa/io/load.hpp"

#include "support/test_support.hpp"

#include <QApplication>
#include <QElapsedTimer>
#include <QProcess>
#include <QTableWidget>
#include <QWheelEvent>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

namespace densa::gui {
namespace {

namespace fs = std::filesystem;

ViewerOptions scripted() {
  ViewerOptions o;
  o.interactive = false;
  o.model = DENSA_DEFAULT_MODEL;
  return o;
}

void pump(int ms = 100) {
  QElapsedTimer t;
  t.start();
  while (t.elapsed() < ms) {
    QApplication::processEvents(QEventLoop::AllEvents, 20);
  }
}

/// Mean grey level of `image` inside `rect` (RGB averaged).
double meanGrey(const QImage& image, const QRect& rect) {
  double sum = 0;
  double n = 0;
  const QRect r = rect.intersected(image.rect());
  for (int y = r.top(); y <= r.bottom(); ++y) {
    for (int x = r.left(); x <= r.right(); ++x) {
      const QRgb p = image.pixel(x, y);
      sum += (qRed(p) + qGreen(p) + qBlue(p)) / 3.0;
      n += 1;
    }
  }
  return n > 0 ? sum / n : 0;
}

/// Mean of the CT slice k after the window (what the axial view should show).
double expectedMean(const core::Volume<std::int16_t>& ct, std::size_t k, double w, double l) {
  double sum = 0;
  for (std::size_t j = 0; j < ct.size()[1]; ++j) {
    for (std::size_t i = 0; i < ct.size()[0]; ++i) {
      sum += std::clamp((ct.at(i, j, k) - (l - w / 2)) / w * 255.0, 0.0, 255.0);
    }
  }
  return sum / static_cast<double>(ct.size()[0] * ct.size()[1]);
}

TEST(Viewer, RefusesMissingAndJunkInputWithAClearError) {
  testing::TempDir dir;
  MainWindow window(scripted());
  EXPECT_FALSE(window.open(QString::fromStdString((dir / "missing.nii.gz").string())));
  EXPECT_TRUE(window.lastError().contains("missing.nii.gz")) << window.lastError().toStdString();
  EXPECT_TRUE(window.lastError().contains("does not exist")) << window.lastError().toStdString();

  std::ofstream(dir / "junk.nii.gz") << "not an image";
  ASSERT_TRUE(window.open(QString::fromStdString((dir / "junk.nii.gz").string())));
  EXPECT_FALSE(window.waitForTask());
  EXPECT_TRUE(window.lastError().contains("junk.nii.gz")) << window.lastError().toStdString();
  EXPECT_TRUE(window.state()->document().empty());

  fs::create_directories(dir / "empty");
  std::ofstream(dir / "empty" / "notes.txt") << "hello";
  EXPECT_FALSE(window.open(QString::fromStdString((dir / "empty").string())));
  EXPECT_TRUE(window.lastError().contains("no DICOM")) << window.lastError().toStdString();
}

TEST(Viewer, RealCtAxialViewShowsTheSliceAndFollowsScrollAndWindow) {
  DENSA_REQUIRE_DATA(series, "totalseg_abdomen_ct/dicom_uncompressed");
  const auto reference = io::loadVolume(series);
  const auto& ct = std::get<core::Volume<std::int16_t>>(reference.volume);

  MainWindow window(scripted());
  window.resize(1200, 900);
  window.show();
  ASSERT_TRUE(window.open(QString::fromStdString(series.string())));
  ASSERT_TRUE(window.waitForTask()) << window.lastError().toStdString();
  const Document& doc = window.state()->document();
  ASSERT_EQ(doc.ct.size(), ct.size()); // head-first axial: display grid = input grid
  EXPECT_TRUE(doc.ct == ct);

  SliceView* axial = window.sliceView(Plane::Axial);
  pump();
  const std::size_t k = axial->sliceIndex();
  EXPECT_EQ(k, ct.size()[2] / 2);
  // The rendered view (scaled to the widget) shows the windowed slice: compare mean grey levels.
  auto rendered = [&] {
    const QImage shot = axial->grab().toImage();
    const QRectF r = axial->imageRect();
    const double dpr = shot.devicePixelRatio();
    // Stay inside the image, away from the annotations drawn in the corners.
    return meanGrey(shot,
                    QRect(static_cast<int>(r.left() * dpr) + 40,
                          static_cast<int>(r.top() * dpr) + 40,
                          static_cast<int>(r.width() * dpr) - 80,
                          static_cast<int>(r.height() * dpr) - 80));
  };
  auto inner = [&](std::size_t slice, double w, double l) {
    // The same inner region on the voxel grid (the view fills its rect with the whole slice).
    const QRectF r = axial->imageRect();
    const double sx = static_cast<double>(ct.size()[0]) / r.width();
    const double sy = static_cast<double>(ct.size()[1]) / r.height();
    double sum = 0;
    double n = 0;
    for (auto j = static_cast<std::size_t>(40 * sy);
         j < ct.size()[1] - static_cast<std::size_t>(40 * sy);
         ++j) {
      for (auto i = static_cast<std::size_t>(40 * sx);
           i < ct.size()[0] - static_cast<std::size_t>(40 * sx);
           ++i) {
        sum += std::clamp((ct.at(i, j, slice) - (l - w / 2)) / w * 255.0, 0.0, 255.0);
        n += 1;
      }
    }
    return sum / n;
  };
  const double abdomen = rendered();
  EXPECT_NEAR(abdomen, inner(k, 400, 40), 4.0);
  // The unscaled slice image holds exactly the windowed voxels.
  EXPECT_NEAR(
      meanGrey(axial->sliceImage(), axial->sliceImage().rect()), expectedMean(ct, k, 400, 40), 0.5);
  // Not a blank view: a CT slice through the abdomen has body and air.
  EXPECT_GT(abdomen, 20);
  EXPECT_LT(abdomen, 200);

  // One wheel notch up moves one slice superior, and the pixels change.
  const QImage before = axial->sliceImage();
  const QPointF centre = axial->rect().center();
  QWheelEvent wheel(centre,
                    axial->mapToGlobal(centre),
                    QPoint(),
                    QPoint(0, 120),
                    Qt::NoButton,
                    Qt::NoModifier,
                    Qt::NoScrollPhase,
                    false);
  QApplication::sendEvent(axial, &wheel);
  pump();
  EXPECT_EQ(axial->sliceIndex(), k + 1);
  EXPECT_NE(axial->sliceImage(), before);
  EXPECT_NEAR(rendered(), inner(k + 1, 400, 40), 4.0);

  // The bone preset (W 1800 L 400) darkens soft tissue.
  window.applyWindowPreset(2);
  pump();
  EXPECT_EQ(window.state()->window(), 1800);
  const double bone = rendered();
  EXPECT_LT(bone, abdomen - 10);
  EXPECT_NEAR(bone, inner(k + 1, 1800, 400), 4.0);

  // Coronal and sagittal views follow the crosshair and keep the aspect from the spacing:
  // 20 slices × 2 mm against 512 × 0.977 mm.
  const QRectF cor = window.sliceView(Plane::Coronal)->imageRect();
  EXPECT_NEAR(cor.height() / cor.width(), (20 * 2.0) / (512 * 0.9765625), 0.01);
}

TEST(Viewer, TotalSegmentatorLabelsAsOverlayLineUpInPhysicalSpace) {
  DENSA_REQUIRE_DATA(series, "totalseg_abdomen_ct/dicom_uncompressed");
  DENSA_REQUIRE_DATA(labels, "totalseg_abdomen_ct/dicom_labels_totalseg.nii.gz");
  MainWindow window(scripted());
  ASSERT_TRUE(window.open(QString::fromStdString(series.string())));
  ASSERT_TRUE(window.waitForTask());
  // The label file's j axis is flipped against the DICOM rows (LAS): it must be resampled by
  // physical position, not copied voxel by voxel.
  EXPECT_FALSE(window.openOverlay(QString::fromStdString(labels.string())));
  EXPECT_TRUE(window.lastError().contains("label value")) << window.lastError().toStdString();
  ASSERT_TRUE(window.openOverlay(QString::fromStdString(labels.string()), "5:1"));
  const Document& doc = window.state()->document();
  ASSERT_TRUE(doc.labels);
  const auto raw = std::get<core::LabelMap>(io::readImage(labels));
  std::size_t liverInFile = 0;
  for (auto v : raw.voxels()) {
    liverInFile += v == 5 ? 1 : 0;
  }
  std::size_t liverShown = 0;
  for (auto v : doc.labels->voxels()) {
    liverShown += v == 1 ? 1 : 0;
  }
  EXPECT_EQ(liverShown, liverInFile);
  // Voxel (i, j, k) of the file lies at the physical point of the overlay's voxel with the
  // same position.
  for (std::size_t j = 0; j < raw.size()[1]; j += 37) {
    for (std::size_t i = 0; i < raw.size()[0]; i += 41) {
      const auto p = raw.indexToPhysical({double(i), double(j), 7.0});
      const auto x = doc.labels->physicalToIndex(p);
      const auto shown = doc.labels->at(static_cast<std::size_t>(std::lround(x[0])),
                                        static_cast<std::size_t>(std::lround(x[1])),
                                        static_cast<std::size_t>(std::lround(x[2])));
      EXPECT_EQ(shown == 1, raw.at(i, j, 7) == 5) << i << "," << j;
    }
  }
  ASSERT_TRUE(doc.stats);
  EXPECT_GT(doc.stats->liverVolumeMl, 100);
  EXPECT_EQ(window.lesionTable()->rowCount(), 0);
}

/// A phantom written as a DICOM series, opened and segmented once for the tests below.
class SegmentedPhantom : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    s_dir = std::make_unique<testing::TempDir>();
    app::PhantomSpec spec;
    spec.slices = 16;
    spec.maxTumours = 3;
    std::uint64_t seed = 11;
    s_phantom = app::makePhantom(spec, seed);
    while (s_phantom.tumours == 0) {
      s_phantom = app::makePhantom(spec, ++seed);
    }
    io::writeDicomSeries(s_phantom.ct, *s_dir / "dicom");
  }

  static void TearDownTestSuite() { s_dir.reset(); }

  static std::unique_ptr<testing::TempDir> s_dir;
  static app::Phantom s_phantom;
};

std::unique_ptr<testing::TempDir> SegmentedPhantom::s_dir;
app::Phantom SegmentedPhantom::s_phantom;

TEST_F(SegmentedPhantom, SegmentAddsOverlayLesionTable3dSurfacesAndExports) {
  MainWindow window(scripted());
  window.resize(1300, 900);
  window.show();
  ASSERT_TRUE(window.open(QString::fromStdString((*s_dir / "dicom").string())));
  ASSERT_TRUE(window.waitForTask()) << window.lastError().toStdString();
  SliceView* axial = window.sliceView(Plane::Axial);
  pump();
  const QImage plain = axial->sliceImage();
  const QImage plain3d = window.surfaceView()->grabFramebuffer();
  EXPECT_EQ(window.surfaceView()->surfaceTriangles(), 0U);

  ASSERT_TRUE(window.segment());
  EXPECT_TRUE(window.busy());
  EXPECT_FALSE(window.open(QString::fromStdString((*s_dir / "dicom").string()))); // busy
  ASSERT_TRUE(window.waitForTask()) << window.lastError().toStdString();
  const Document& doc = window.state()->document();
  ASSERT_TRUE(doc.labels);
  ASSERT_TRUE(doc.model);
  EXPECT_NE(doc.model->id.find("hdenseunet"), std::string::npos);

  // The liver found matches the phantom's (the default model's card: phantom liver Dice ≈ 0.99).
  std::size_t both = 0;
  std::size_t pred = 0;
  std::size_t truth = 0;
  const auto onInput = doc.labelsOnInputGrid();
  for (std::size_t n = 0; n < onInput.voxelCount(); ++n) {
    const bool p = onInput.voxels()[n] >= 1;
    const bool t = s_phantom.labels.voxels()[n] >= 1;
    both += p && t ? 1 : 0;
    pred += p ? 1 : 0;
    truth += t ? 1 : 0;
  }
  EXPECT_GT(2.0 * static_cast<double>(both) / static_cast<double>(pred + truth), 0.85);

  // The overlay is in the axial view: coloured pixels where there were grey ones.
  pump();
  const QImage overlaid = axial->sliceImage();
  ASSERT_EQ(overlaid.size(), plain.size());
  std::size_t coloured = 0;
  for (int y = 0; y < overlaid.height(); ++y) {
    for (int x = 0; x < overlaid.width(); ++x) {
      const QRgb p = overlaid.pixel(x, y);
      coloured += (qRed(p) != qGreen(p) || qGreen(p) != qBlue(p)) ? 1 : 0;
    }
  }
  EXPECT_GT(coloured, 1000U);
  // Hiding the labels restores the plain slice.
  window.state()->setLabelVisible(1, false);
  window.state()->setLabelVisible(2, false);
  const QImage hidden = axial->sliceImage();
  for (int y = 0; y < hidden.height(); y += 3) {
    for (int x = 0; x < hidden.width(); x += 3) {
      const QRgb p = hidden.pixel(x, y);
      ASSERT_TRUE(qRed(p) == qGreen(p) && qGreen(p) == qBlue(p)) << x << "," << y;
    }
  }
  window.state()->setLabelVisible(1, true);
  window.state()->setLabelVisible(2, true);

  // The 3D view shows liver surfaces: orange-ish pixels that the plain body did not have.
  ASSERT_GT(window.surfaceView()->surfaceTriangles(), 1000U);
  pump(300);
  const QImage shot3d = window.surfaceView()->grabFramebuffer();
  auto orange = [](const QImage& img) {
    std::size_t n = 0;
    for (int y = 0; y < img.height(); ++y) {
      for (int x = 0; x < img.width(); ++x) {
        const QRgb p = img.pixel(x, y);
        // The liver's orange (230, 120, 40) under shading; not the red crosshair (g/r 0.3) nor
        // the beige body outline (g/r 0.9).
        const double r = qRed(p);
        n += (r > 80 && qBlue(p) < 0.6 * r && qGreen(p) > 0.4 * r && qGreen(p) < 0.7 * r) ? 1 : 0;
      }
    }
    return n;
  };
  EXPECT_GT(orange(shot3d), static_cast<std::size_t>(shot3d.width() * shot3d.height() / 100));
  EXPECT_LT(orange(plain3d), static_cast<std::size_t>(plain3d.width() * plain3d.height() / 1000));

  // The lesion table lists the lesions; clicking one centres the views on it.
  ASSERT_TRUE(doc.stats);
  QTableWidget* table = window.lesionTable();
  EXPECT_EQ(table->rowCount(), static_cast<int>(doc.stats->lesions.size()));
  if (!doc.stats->lesions.empty()) {
    const auto& lesion = doc.stats->lesions.front();
    window.state()->setCursor({0, 0, 0});
    emit table->cellClicked(0, 0);
    const auto c = window.state()->cursor();
    const auto x = doc.ct.physicalToIndex(lesion.centroidMm);
    for (int a = 0; a < 3; ++a) {
      EXPECT_NEAR(static_cast<double>(c[static_cast<std::size_t>(a)]),
                  x[static_cast<std::size_t>(a)],
                  0.51);
    }
    EXPECT_EQ(axial->sliceIndex(), c[2]);
  }

  // Exports: label map on the input grid, DICOM SEG read back voxel for voxel, report JSON.
  const fs::path labelFile = *s_dir / "out" / "label.nii.gz";
  fs::create_directories(labelFile.parent_path());
  ASSERT_TRUE(window.exportLabels(QString::fromStdString(labelFile.string())));
  const auto written = std::get<core::LabelMap>(io::readImage(labelFile));
  EXPECT_TRUE(written.geometry().approxEqual(s_phantom.ct.geometry()));
  EXPECT_TRUE(
      written.voxels().size() == onInput.voxels().size() &&
      std::equal(written.voxels().begin(), written.voxels().end(), onInput.voxels().begin()));
  const fs::path segFile = *s_dir / "out" / "seg.dcm";
  ASSERT_TRUE(window.exportDicomSeg(QString::fromStdString(segFile.string())));
  const auto back = io::readDicomSeg(segFile, onInput.size(), onInput.geometry());
  EXPECT_TRUE(std::equal(back.voxels().begin(), back.voxels().end(), onInput.voxels().begin()));
  const fs::path reportFile = *s_dir / "out" / "report.json";
  ASSERT_TRUE(window.exportReport(QString::fromStdString(reportFile.string())));
  const auto report = nlohmann::json::parse(std::ifstream(reportFile));
  EXPECT_NEAR(report.at("liver_volume_ml").get<double>(), doc.stats->liverVolumeMl, 1e-6);
  EXPECT_EQ(report.at("lesion_count").get<std::size_t>(), doc.stats->lesions.size());
  EXPECT_EQ(report.at("model").at("id").get<std::string>(), doc.model->id);
  EXPECT_FALSE(report.at("input").at("series_instance_uid").get<std::string>().empty());

  const fs::path png = *s_dir / "out" / "window.png";
  ASSERT_TRUE(window.saveScreenshot(QString::fromStdString(png.string())));
  const QImage saved(QString::fromStdString(png.string()));
  EXPECT_FALSE(saved.isNull());
  EXPECT_GE(saved.width(), 1000);
}

TEST_F(SegmentedPhantom, CancelStopsSegmentationAndKeepsTheViewerUsable) {
  MainWindow window(scripted());
  ASSERT_TRUE(window.open(QString::fromStdString((*s_dir / "dicom").string())));
  ASSERT_TRUE(window.waitForTask());
  ASSERT_TRUE(window.segment());
  window.cancel();
  EXPECT_FALSE(window.waitForTask());
  EXPECT_EQ(window.lastError(), "cancelled");
  EXPECT_FALSE(window.state()->document().labels);
  EXPECT_FALSE(window.busy());
  // Usable afterwards.
  window.state()->setCursor({1, 2, 3});
  EXPECT_EQ(window.state()->cursor(), (core::Size3{1, 2, 3}));
}

TEST_F(SegmentedPhantom, ScreenshotCommandSegmentsAndWritesAPng) {
  const fs::path png = *s_dir / "cli.png";
  QProcess p;
  p.setProcessChannelMode(QProcess::MergedChannels);
  p.start(DENSA_VIEWER_EXE,
          {"--segment",
           "--model",
           DENSA_DEFAULT_MODEL,
           "--size",
           "1000x700",
           "--window",
           "liver",
           "--screenshot",
           QString::fromStdString(png.string()),
           QString::fromStdString((*s_dir / "dicom").string())});
  ASSERT_TRUE(p.waitForFinished(300000));
  EXPECT_EQ(p.exitCode(), 0) << p.readAll().toStdString();
  const QImage shot(QString::fromStdString(png.string()));
  ASSERT_FALSE(shot.isNull());
  EXPECT_EQ(shot.width(), 1000);
  EXPECT_EQ(shot.height(), 700);

  // A bad input: a clear message and exit code 2, no PNG.
  QProcess bad;
  bad.setProcessChannelMode(QProcess::MergedChannels);
  bad.start(DENSA_VIEWER_EXE,
            {"--screenshot",
             QString::fromStdString((*s_dir / "x.png").string()),
             QString::fromStdString((*s_dir / "nothing-here").string())});
  ASSERT_TRUE(bad.waitForFinished(60000));
  EXPECT_EQ(bad.exitCode(), 2);
  EXPECT_TRUE(bad.readAll().contains("nothing-here"));
  EXPECT_FALSE(fs::exists(*s_dir / "x.png"));
}

} // namespace
} // namespace densa::gui
