// SPDX-License-Identifier: Apache-2.0
// Real head CT with 18.5 degree gantry tilt and two slice spacings under one SeriesInstanceUID:
// ../shared/data/ge_head_ct_gantry_tilt (see its README).
#include "densa/core/error.hpp"
#include "densa/io/dicom_scan.hpp"
#include "densa/io/dicom_series.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace densa::io {
namespace {

TEST(GantryTilt, OneUidSplitsIntoTwoSubSeriesOf14) {
  DENSA_REQUIRE_DATA(dir, "ge_head_ct_gantry_tilt/dicom");
  const DicomScan scan = scanDicom(dir);
  ASSERT_EQ(scan.series.size(), 2U);
  EXPECT_EQ(scan.series[0].files.size(), 14U);
  EXPECT_EQ(scan.series[1].files.size(), 14U);
  EXPECT_EQ(scan.series[0].seriesInstanceUid, scan.series[1].seriesInstanceUid);
  EXPECT_NE(scan.series[0].id, scan.series[1].id);
  EXPECT_TRUE(scan.skipped.empty());
}

TEST(GantryTilt, IsCorrectedOntoARectilinearGridByDefault) {
  DENSA_REQUIRE_DATA(dir, "ge_head_ct_gantry_tilt/dicom");
  const DicomScan scan = scanDicom(dir);
  ASSERT_EQ(scan.series.size(), 2U);
  const double expectedThickness[2] = {4.0, 7.0};
  for (std::size_t s = 0; s < 2; ++s) {
    const LoadedSeries loaded = loadDicomSeries(scan.series[s]);
    EXPECT_NEAR(loaded.tiltDegrees, 18.5, 0.1);
    const auto& g = core::geometryOf(loaded.volume);
    EXPECT_EQ(core::sizeOf(loaded.volume), (core::Size3{512, 512, 14}));
    // The grid is orthonormal (no shear), and its slice step is the distance along the normal.
    EXPECT_TRUE(core::isOrthonormal(g.direction));
    EXPECT_NEAR(g.spacing[2], expectedThickness[s], 0.01);
    EXPECT_NEAR(g.direction[4], 0.9483237, 1e-6);  // column direction y
    EXPECT_NEAR(g.direction[7], -0.3173047, 1e-6); // column direction z
    bool mentionsTilt = false;
    for (const auto& w : loaded.warnings) {
      mentionsTilt = mentionsTilt || w.find("gantry tilt") != std::string::npos;
    }
    EXPECT_TRUE(mentionsTilt);
    // Slice 0 is not shifted: the first slice's voxels are the file's.
    EXPECT_NE(core::valueRange(loaded.volume).max, core::valueRange(loaded.volume).min);
  }
}

TEST(GantryTilt, IsRefusedWhenCorrectionIsOff) {
  DENSA_REQUIRE_DATA(dir, "ge_head_ct_gantry_tilt/dicom");
  const DicomScan scan = scanDicom(dir);
  DicomLoadOptions strict;
  strict.correctGantryTilt = false;
  try {
    (void)loadDicomSeries(scan.series.at(0), strict);
    FAIL();
  } catch (const core::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("gantry tilt"), std::string::npos) << e.what();
  }
}

TEST(GantryTilt, StackingAll28SlicesIsRefusedAsNonUniform) {
  DENSA_REQUIRE_DATA(dir, "ge_head_ct_gantry_tilt/dicom");
  const DicomScan scan = scanDicom(dir);
  DicomSeries all = scan.series.at(0);
  all.files.insert(all.files.end(), scan.series.at(1).files.begin(), scan.series.at(1).files.end());
  try {
    (void)loadDicomSeries(all);
    FAIL();
  } catch (const core::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("non-uniform slice spacing"), std::string::npos)
        << e.what();
  }
}

} // namespace
} // namespace densa::io
