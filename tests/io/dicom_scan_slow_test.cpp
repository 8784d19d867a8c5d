// SPDX-License-Identifier: Apache-2.0
// A realistic archive: thousands of files in nested folders, several series, junk in between.
#include "densa/io/dicom_scan.hpp"
#include "densa/io/dicom_writer.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace densa::io {
namespace {

TEST(ScanDicomArchive, ThousandsOfFilesInNestedFolders) {
  testing::TempDir tmp;
  core::Volume<std::int16_t> slice({32, 32, 600}, {}, 40);
  for (int s = 0; s < 5; ++s) {
    DicomWriteOptions o;
    o.seriesDescription = "series " + std::to_string(s);
    (void)writeDicomSeries(
        slice, tmp / ("patient" + std::to_string(s % 2) + "/study/s" + std::to_string(s)), o);
    for (int j = 0; j < 20; ++j) {
      std::ofstream(
          tmp / ("patient" + std::to_string(s % 2) + "/junk" + std::to_string(s * 20 + j) + ".txt"))
          << "not dicom " << j;
    }
  }
  std::size_t lastDone = 0;
  ScanOptions options;
  options.progress = [&](std::size_t done, std::size_t total) {
    EXPECT_LE(done, total);
    EXPECT_GE(done, lastDone);
    lastDone = done;
  };
  const DicomScan scan = scanDicom(tmp.path(), options);
  EXPECT_EQ(scan.filesSeen, 3100U);
  EXPECT_EQ(lastDone, 3100U);
  ASSERT_EQ(scan.series.size(), 5U);
  for (const auto& s : scan.series) {
    EXPECT_EQ(s.sliceCount(), 600U);
  }
  EXPECT_EQ(scan.skipped.size(), 100U);
}

} // namespace
} // namespace densa::io
