// SPDX-License-Identifier: Apache-2.0
#include "densa/io/dicom_series.hpp"

#include "densa/core/error.hpp"
#include "densa/io/dicom_writer.hpp"
#include "densa/io/load.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

namespace densa::io {
namespace {

namespace fs = std::filesystem;

core::Volume<std::int16_t> obliqueCt(std::size_t slices) {
  auto v = testing::ramp<std::int16_t>({20, 14, slices}, testing::obliqueGeometry());
  for (auto& x : v.voxels()) {
    x = static_cast<std::int16_t>(x * 7 - 1000); // HU-like, negative values included
  }
  return v;
}

LoadedSeries loadOnly(const fs::path& dir, const DicomLoadOptions& options = {}) {
  const DicomScan scan = scanDicom(dir);
  EXPECT_EQ(scan.series.size(), 1U);
  return loadDicomSeries(scan.series.at(0), options);
}

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const core::InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(LoadDicomSeries, RoundTripKeepsHuAndObliqueGeometry) {
  testing::TempDir tmp;
  const auto ct = obliqueCt(6);
  const auto files = writeDicomSeries(ct, tmp.path());
  const LoadedSeries loaded = loadOnly(tmp.path());
  const auto& v = std::get<core::Volume<std::int16_t>>(loaded.volume);
  EXPECT_EQ(v.size(), ct.size());
  EXPECT_TRUE(v.geometry().approxEqual(ct.geometry(), 1e-6));
  EXPECT_EQ(v.voxels()[0], ct.voxels()[0]);
  EXPECT_TRUE(std::ranges::equal(v.voxels(), ct.voxels()));
  EXPECT_LT(loaded.tiltDegrees, 1e-4); // only DS rounding
  ASSERT_EQ(loaded.provenance.files.size(), 6U);
  EXPECT_EQ(loaded.provenance.files.front(), files.front());
  EXPECT_EQ(loaded.provenance.sopInstanceUids.size(), 6U);
}

TEST(LoadDicomSeries, SortsByPositionNeverByFileName) {
  testing::TempDir tmp;
  const auto ct = obliqueCt(5);
  const auto files = writeDicomSeries(ct, tmp / "s");
  // Reverse the file names: slice 0 now sorts last by name.
  for (std::size_t i = 0; i < files.size(); ++i) {
    fs::rename(files[i], tmp / "s" / ("z" + std::to_string(files.size() - i) + ".dcm"));
  }
  const LoadedSeries loaded = loadOnly(tmp / "s");
  const auto& v = std::get<core::Volume<std::int16_t>>(loaded.volume);
  EXPECT_TRUE(std::ranges::equal(v.voxels(), ct.voxels()));
}

TEST(LoadDicomSeries, MissingSliceIsAClearErrorOrInterpolatedOnRequest) {
  testing::TempDir tmp;
  const auto ct = obliqueCt(7);
  const auto files = writeDicomSeries(ct, tmp.path());
  fs::remove(files[3]);
  const std::string error = errorOf([&] { (void)loadOnly(tmp.path()); });
  EXPECT_NE(error.find("1 slice(s) missing"), std::string::npos) << error;
  EXPECT_NE(error.find(files[4].filename().string()), std::string::npos) << error;

  DicomLoadOptions resample;
  resample.resampleIrregular = true;
  const LoadedSeries loaded = loadOnly(tmp.path(), resample);
  const auto& v = std::get<core::Volume<std::int16_t>>(loaded.volume);
  ASSERT_EQ(v.size()[2], 7U);
  EXPECT_NEAR(v.geometry().spacing[2], 2.5, 1e-6);
  // The ramp is linear in k, so interpolation restores the missing slice exactly.
  EXPECT_TRUE(std::ranges::equal(v.voxels(), ct.voxels()));
  EXPECT_FALSE(loaded.warnings.empty());
}

// Two files at one position: a copy of the same instance (same SOPInstanceUID, dropped by the
// scan) or a re-encoded copy (new SOPInstanceUID, same pixels) is one image, kept once with a
// warning; other pixels at one position are a clear error naming both files.
TEST(LoadDicomSeries, DuplicatePositionsAreOneImageOrAClearError) {
  DicomWriteOptions o;
  o.seriesInstanceUid = "1.2.826.0.1.3680043.2.1143.77.1";
  o.frameOfReferenceUid = "1.2.826.0.1.3680043.2.1143.77.2";
  {
    testing::TempDir tmp;
    const auto files = writeDicomSeries(obliqueCt(3), tmp.path(), o);
    fs::copy_file(files[1], tmp / "copy.dcm");
    const auto loaded = loadOnly(tmp.path());
    EXPECT_EQ(loaded.provenance.files.size(), 3U);
    ASSERT_FALSE(loaded.warnings.empty());
    EXPECT_NE(loaded.warnings[0].find("SOPInstanceUID"), std::string::npos) << loaded.warnings[0];
  }
  {
    testing::TempDir tmp;
    (void)writeDicomSeries(obliqueCt(3), tmp.path(), o);
    o.filePrefix = "again"; // new SOPInstanceUIDs, the same pixels
    (void)writeDicomSeries(obliqueCt(3), tmp.path(), o);
    const auto loaded = loadOnly(tmp.path());
    EXPECT_EQ(loaded.provenance.files.size(), 3U);
    ASSERT_EQ(loaded.warnings.size(), 2U);
    EXPECT_NE(loaded.warnings[0].find("same image"), std::string::npos) << loaded.warnings[0];
    EXPECT_NE(loaded.warnings[1].find("3 copies"), std::string::npos) << loaded.warnings[1];
  }
  {
    testing::TempDir tmp;
    o.filePrefix = "slice";
    (void)writeDicomSeries(obliqueCt(3), tmp.path(), o);
    auto other = obliqueCt(3);
    for (auto& x : other.voxels()) {
      x = static_cast<std::int16_t>(x + 5);
    }
    o.filePrefix = "other";
    (void)writeDicomSeries(other, tmp.path(), o);
    const auto error = errorOf([&] { (void)loadOnly(tmp.path()); });
    EXPECT_NE(error.find("same slice position"), std::string::npos) << error;
  }
}

TEST(LoadDicomSeries, TruncatedPixelDataNamesTheFile) {
  testing::TempDir tmp;
  const auto files = writeDicomSeries(obliqueCt(3), tmp.path());
  fs::resize_file(files[2], fs::file_size(files[2]) - 100);
  const std::string error = errorOf([&] { (void)loadOnly(tmp.path()); });
  EXPECT_NE(error.find(files[2].filename().string()), std::string::npos) << error;
}

TEST(LoadDicomSeries, SingleSliceUsesSliceThickness) {
  testing::TempDir tmp;
  (void)writeDicomSeries(obliqueCt(1), tmp.path());
  const LoadedSeries loaded = loadOnly(tmp.path());
  const auto& v = std::get<core::Volume<std::int16_t>>(loaded.volume);
  EXPECT_EQ(v.size()[2], 1U);
  EXPECT_NEAR(v.geometry().spacing[2], 2.5, 1e-9);
}

TEST(LoadVolume, DispatchesOnWhatTheUserPointedAt) {
  testing::TempDir tmp;
  (void)writeDicomSeries(obliqueCt(2), tmp / "dicom");
  const LoadedVolume fromDicom = loadVolume(tmp / "dicom");
  ASSERT_TRUE(fromDicom.dicom.has_value());
  EXPECT_EQ(fromDicom.dicom->files.size(), 2U);
  EXPECT_THROW((void)loadVolume(tmp / "nothing"), core::InputError);
  fs::create_directories(tmp / "empty");
  EXPECT_THROW((void)loadVolume(tmp / "empty"), core::InputError);
}

} // namespace
} // namespace densa::io
