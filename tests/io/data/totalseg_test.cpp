// SPDX-License-Identifier: Apache-2.0
// Real CT: ../shared/data/totalseg_abdomen_ct (see its README: geometry, licence, quirks).
#include "densa/core/error.hpp"
#include "densa/core/resample.hpp"
#include "densa/io/dicom_scan.hpp"
#include "densa/io/dicom_series.hpp"
#include "densa/io/image_file.hpp"
#include "densa/io/load.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

namespace densa::io {
namespace {

namespace fs = std::filesystem;
using Ct = core::Volume<std::int16_t>;

Ct loadCt(const fs::path& dir) {
  const DicomScan scan = scanDicom(dir);
  EXPECT_EQ(scan.series.size(), 1U);
  EXPECT_TRUE(scan.skipped.empty());
  return std::get<Ct>(loadDicomSeries(scan.series.at(0)).volume);
}

void expectTotalsegGeometry(const Ct& ct) {
  EXPECT_EQ(ct.size(), (core::Size3{512, 512, 20}));
  EXPECT_NEAR(ct.geometry().spacing[0], 0.9765625, 1e-6);
  EXPECT_NEAR(ct.geometry().spacing[1], 0.9765625, 1e-6);
  EXPECT_NEAR(ct.geometry().spacing[2], 2.0, 1e-6);
  EXPECT_NEAR(ct.geometry().origin[0], -249.512, 1e-3);
  EXPECT_NEAR(ct.geometry().origin[1], -437.512, 1e-3);
  EXPECT_NEAR(ct.geometry().origin[2], -804.5, 1e-3);
  EXPECT_TRUE(ct.geometry().approxEqual(
      {ct.geometry().spacing, ct.geometry().origin, {1, 0, 0, 0, 1, 0, 0, 0, 1}}, 1e-9));
  const auto range = core::valueRange(ct);
  EXPECT_EQ(range.min, -1024);
  EXPECT_EQ(range.max, 1839);
}

TEST(TotalsegCt, Jpeg2000AndUncompressedLoadIdentically) {
  DENSA_REQUIRE_DATA(j2k, "totalseg_abdomen_ct/dicom_j2k");
  DENSA_REQUIRE_DATA(raw, "totalseg_abdomen_ct/dicom_uncompressed");
  const Ct a = loadCt(j2k);
  const Ct b = loadCt(raw);
  expectTotalsegGeometry(a);
  expectTotalsegGeometry(b);
  EXPECT_TRUE(std::ranges::equal(a.voxels(), b.voxels()));
}

double meanHu(const Ct& ct, const core::LabelMap& labels, std::uint8_t label) {
  double sum = 0;
  std::size_t n = 0;
  for (std::size_t i = 0; i < ct.voxelCount(); ++i) {
    if (labels.voxels()[i] == label) {
      sum += ct.voxels()[i];
      ++n;
    }
  }
  EXPECT_GT(n, 1000U);
  return n ? sum / static_cast<double>(n) : 0;
}

TEST(TotalsegCt, LasLabelMapLinesUpWithCtInPhysicalSpace) {
  DENSA_REQUIRE_DATA(raw, "totalseg_abdomen_ct/dicom_uncompressed");
  DENSA_REQUIRE_DATA(labelsFile, "totalseg_abdomen_ct/dicom_labels_totalseg.nii.gz");
  const Ct ct = loadCt(raw);
  const auto labels = std::get<core::LabelMap>(readImage(labelsFile));
  EXPECT_EQ(core::orientationCode(labels.geometry().direction), "LAS");
  const auto onCt = core::resampleOnto(labels, core::gridOf(ct), core::Interpolation::Nearest);
  const double liver = meanHu(ct, onCt, 5);
  // Contrast-enhanced liver parenchyma: roughly 80-160 HU.
  EXPECT_GT(liver, 80.0);
  EXPECT_LT(liver, 160.0);
  // The same check fails when the j-axis flip is ignored (raw voxel order laid on the CT grid).
  const core::LabelMap ignoredFlip(
      ct.size(),
      ct.geometry(),
      std::vector<std::uint8_t>(labels.voxels().begin(), labels.voxels().end()));
  const double wrong = meanHu(ct, ignoredFlip, 5);
  EXPECT_FALSE(wrong > 80.0 && wrong < 160.0) << "flip-ignored liver mean " << wrong << " HU";
}

TEST(TotalsegCt, ConvertsToEveryFormatAndBack) {
  DENSA_REQUIRE_DATA(j2k, "totalseg_abdomen_ct/dicom_j2k");
  const LoadedVolume loaded = loadVolume(j2k);
  testing::TempDir tmp;
  for (const char* ext : {".nii.gz", ".nrrd", ".mha"}) {
    const fs::path out = tmp / (std::string("ct") + ext);
    writeImage(loaded.volume, out);
    const auto back = std::get<Ct>(readImage(out));
    expectTotalsegGeometry(back);
    EXPECT_TRUE(std::ranges::equal(back.voxels(), std::get<Ct>(loaded.volume).voxels())) << ext;
  }
}

TEST(TotalsegCt, Int32NiftiIsReadAsInt16Hu) {
  DENSA_REQUIRE_DATA(file, "totalseg_abdomen_ct/nifti/example_ct.nii.gz");
  const auto v = readImage(file);
  ASSERT_EQ(core::pixelType(v), core::PixelType::Int16);
  EXPECT_EQ(core::sizeOf(v), (core::Size3{122, 101, 112}));
  EXPECT_NEAR(core::geometryOf(v).spacing[0], 3.0, 1e-4);
  EXPECT_LT(core::valueRange(v).min, -900);
}

TEST(TotalsegCt, ShuffledNamesLoadTheSameAndAGapIsReported) {
  DENSA_REQUIRE_DATA(raw, "totalseg_abdomen_ct/dicom_uncompressed");
  const Ct reference = loadCt(raw);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(raw)) {
    files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  testing::TempDir tmp;
  fs::create_directories(tmp / "shuffled");
  fs::create_directories(tmp / "gap");
  for (std::size_t i = 0; i < files.size(); ++i) {
    fs::create_symlink(files[i], tmp / ("shuffled/" + std::to_string((i * 7) % 20) + ".dcm"));
    if (i != 9) {
      fs::create_symlink(files[i], tmp / ("gap/" + files[i].filename().string()));
    }
  }
  const Ct shuffled = loadCt(tmp / "shuffled");
  EXPECT_TRUE(std::ranges::equal(shuffled.voxels(), reference.voxels()));
  const DicomScan gap = scanDicom(tmp / "gap");
  ASSERT_EQ(gap.series.size(), 1U);
  try {
    (void)loadDicomSeries(gap.series[0]);
    FAIL() << "a missing slice was not detected";
  } catch (const core::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
  DicomLoadOptions resample;
  resample.resampleIrregular = true;
  const auto filled = std::get<Ct>(loadDicomSeries(gap.series[0], resample).volume);
  EXPECT_EQ(filled.size()[2], 20U);
  EXPECT_TRUE(filled.geometry().approxEqual(reference.geometry(), 1e-6));
}

} // namespace
} // namespace densa::io
