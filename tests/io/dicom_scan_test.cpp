// SPDX-License-Identifier: Apache-2.0
#include "densa/io/dicom_scan.hpp"

#include "densa/core/error.hpp"
#include "densa/io/dicom_writer.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace densa::io {
namespace {

namespace fs = std::filesystem;

core::Volume<std::int16_t> smallCt(std::size_t slices) {
  core::Geometry g;
  g.spacing = {0.8, 0.8, 2.5};
  g.origin = {-100, -120, -300};
  return testing::ramp<std::int16_t>({16, 12, slices}, g);
}

TEST(ScanDicom, FindsEverySeriesAndReportsJunk) {
  testing::TempDir tmp;
  DicomWriteOptions a;
  a.seriesDescription = "A";
  DicomWriteOptions b;
  b.seriesDescription = "B";
  (void)writeDicomSeries(smallCt(5), tmp / "patient/study/a", a);
  (void)writeDicomSeries(smallCt(9), tmp / "patient/study/b", b);
  std::ofstream(tmp / "patient/readme.txt") << "hello";
  std::ofstream(tmp / "patient/empty.dcm");
  std::ofstream(tmp / "patient/study/b/fake.dcm") << std::string(200, 'x');

  const DicomScan scan = scanDicom(tmp.path());
  ASSERT_EQ(scan.series.size(), 2U);
  EXPECT_EQ(scan.series[0].description, "B"); // more slices first
  EXPECT_EQ(scan.series[0].sliceCount(), 9U);
  EXPECT_EQ(scan.series[1].sliceCount(), 5U);
  EXPECT_EQ(scan.filesSeen, 17U);
  ASSERT_EQ(scan.skipped.size(), 3U);
  for (const auto& s : scan.skipped) {
    EXPECT_FALSE(s.reason.empty()) << s.file;
  }
}

TEST(ScanDicom, SplitsOneUidWithTwoGeometries) {
  testing::TempDir tmp;
  DicomWriteOptions o;
  o.seriesInstanceUid = "1.2.3.4.5";
  o.frameOfReferenceUid = "1.2.3.4.6";
  (void)writeDicomSeries(smallCt(4), tmp / "x", o);
  auto thick = smallCt(3);
  auto g = thick.geometry();
  g.spacing[2] = 5.0;
  g.origin[2] = 100;
  thick.setGeometry(g);
  o.filePrefix = "thick";
  (void)writeDicomSeries(thick, tmp / "x", o);
  const DicomScan scan = scanDicom(tmp.path());
  ASSERT_EQ(scan.series.size(), 2U);
  EXPECT_EQ(scan.series[0].id, "1.2.3.4.5");
  EXPECT_EQ(scan.series[1].id, "1.2.3.4.5#2");
  EXPECT_EQ(scan.series[0].seriesInstanceUid, scan.series[1].seriesInstanceUid);
}

// One series stored twice (an export next to a copy): the instances are kept once, with a warning,
// instead of failing the series as duplicate slices.
TEST(ScanDicom, KeepsEachInstanceOnceWhenASeriesIsStoredTwice) {
  testing::TempDir tmp;
  const auto files = writeDicomSeries(smallCt(6), tmp / "export", {});
  fs::create_directories(tmp / "copy");
  for (const auto& f : files) {
    fs::copy_file(f, tmp / "copy" / f.filename());
  }
  const DicomScan scan = scanDicom(tmp.path());
  ASSERT_EQ(scan.series.size(), 1U);
  EXPECT_EQ(scan.series[0].sliceCount(), 6U);
  ASSERT_EQ(scan.series[0].warnings.size(), 1U);
  EXPECT_NE(scan.series[0].warnings[0].find("6 file(s)"), std::string::npos)
      << scan.series[0].warnings[0];
  for (const auto& f : scan.series[0].files) {
    EXPECT_EQ(f.file.parent_path().filename(), "copy"); // the first by path ("copy" < "export")
  }
}

// Files without a SeriesInstanceUID (anonymiser output) are grouped by geometry within a folder:
// anonymised copies of one series in two folders stay two series. A UID unites folders.
TEST(GroupIntoSeries, FoldersSeparateSeriesWithoutUid) {
  std::vector<DicomFileInfo> files;
  for (const std::string folder : {"/data/a", "/data/b"}) {
    for (int k = 0; k < 3; ++k) {
      DicomFileInfo f;
      f.file = fs::path(folder) / ("s" + std::to_string(k) + ".dcm");
      f.modality = "CT";
      f.rows = 8;
      f.columns = 8;
      f.orientation = std::array<double, 6>{1, 0, 0, 0, 1, 0};
      f.position = core::Vec3{0, 0, 2.0 * k};
      files.push_back(f);
    }
  }
  const auto anonymous = groupIntoSeries(files);
  ASSERT_EQ(anonymous.size(), 2U);
  EXPECT_EQ(anonymous[0].files.size(), 3U);
  EXPECT_NE(anonymous[0].id, anonymous[1].id);
  for (std::size_t i = 0; i < files.size(); ++i) {
    files[i].seriesInstanceUid = "1.2.3";
    files[i].sopInstanceUid = "1.2.3." + std::to_string(i);
  }
  const auto named = groupIntoSeries(files);
  ASSERT_EQ(named.size(), 1U);
  EXPECT_EQ(named[0].files.size(), 6U);
}

TEST(ScanDicom, SanitisesHostileStrings) {
  testing::TempDir tmp;
  DicomWriteOptions o;
  o.seriesDescription = std::string("evil\x1b[31m\n\r\t") + std::string(5000, 'A');
  (void)writeDicomSeries(smallCt(2), tmp.path(), o);
  const DicomScan scan = scanDicom(tmp.path());
  ASSERT_EQ(scan.series.size(), 1U);
  const std::string& d = scan.series[0].description;
  EXPECT_LE(d.size(), 256U);
  for (const char c : d) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
  }
  EXPECT_EQ(d.substr(0, 4), "evil");
}

TEST(ScanDicom, MissingRootIsAnInputError) {
  EXPECT_THROW((void)scanDicom("/nonexistent/densa"), core::InputError);
}

TEST(ReadDicomHeader, RefusesNonDicomWithReason) {
  testing::TempDir tmp;
  std::ofstream(tmp / "x.png") << "\x89PNG\r\n\x1a\n0000000000000000";
  try {
    (void)readDicomHeader(tmp / "x.png");
    FAIL();
  } catch (const core::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not DICOM"), std::string::npos) << e.what();
  }
}

TEST(SelectSeries, PrefersMostSlicesAndHonoursOverrides) {
  testing::TempDir tmp;
  (void)writeDicomSeries(smallCt(3), tmp / "a");
  (void)writeDicomSeries(smallCt(6), tmp / "b");
  const DicomScan scan = scanDicom(tmp.path());
  EXPECT_EQ(selectSeries(scan).sliceCount(), 6U);
  EXPECT_EQ(selectSeries(scan, {.id = std::nullopt, .index = 1}).sliceCount(), 3U);
  EXPECT_EQ(&selectSeries(scan, {.id = scan.series[1].id, .index = std::nullopt}), &scan.series[1]);
  EXPECT_THROW((void)selectSeries(scan, {.id = "9.9.9", .index = std::nullopt}), core::InputError);
  EXPECT_THROW((void)selectSeries(scan, {.id = std::nullopt, .index = 7}), core::InputError);
}

} // namespace
} // namespace densa::io
