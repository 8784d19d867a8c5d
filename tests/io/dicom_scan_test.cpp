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
