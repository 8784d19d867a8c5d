// SPDX-License-Identifier: Apache-2.0
#include "densa/io/image_file.hpp"

#include "densa/core/error.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace densa::io {
namespace {

namespace fs = std::filesystem;

class ImageRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(ImageRoundTrip, KeepsObliqueGeometryAndVoxelsForEveryPixelType) {
  testing::TempDir tmp;
  const core::Geometry g = testing::obliqueGeometry();
  const core::AnyVolume inputs[] = {testing::ramp<std::int16_t>({7, 5, 3}, g),
                                    testing::ramp<float>({7, 5, 3}, g),
                                    testing::ramp<std::uint8_t>({7, 5, 3}, g)};
  for (const auto& input : inputs) {
    const fs::path file = tmp / ("img" + GetParam());
    writeImage(input, file);
    const core::AnyVolume back = readImage(file);
    ASSERT_EQ(core::pixelType(back), core::pixelType(input)) << GetParam();
    EXPECT_EQ(core::sizeOf(back), core::sizeOf(input));
    // NIfTI stores geometry in float32: allow 1e-4 mm / 1e-5.
    EXPECT_TRUE(core::geometryOf(back).approxEqual(g, 1e-4)) << GetParam();
    std::visit(
        [&](const auto& b) {
          using V = std::decay_t<decltype(b)>;
          EXPECT_TRUE(std::ranges::equal(b.voxels(), std::get<V>(input).voxels()));
        },
        back);
  }
}

INSTANTIATE_TEST_SUITE_P(Formats,
                         ImageRoundTrip,
                         ::testing::Values(".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"),
                         [](const auto& param) {
                           std::string n = param.param.substr(1);
                           std::replace(n.begin(), n.end(), '.', '_');
                           return n;
                         });

TEST(ImageFormat, FromPathIsCaseInsensitive) {
  EXPECT_EQ(imageFormatFromPath("a/CT.NII.GZ"), ImageFormat::Nifti);
  EXPECT_EQ(imageFormatFromPath("x.nhdr"), ImageFormat::Nrrd);
  EXPECT_EQ(imageFormatFromPath("x.mhd"), ImageFormat::MetaImage);
  EXPECT_FALSE(imageFormatFromPath("x.dcm"));
  EXPECT_FALSE(imageFormatFromPath("x.gz"));
}

TEST(ReadImage, BadFilesGiveClearInputErrors) {
  testing::TempDir tmp;
  auto expectError = [](const fs::path& p, const std::string& needle) {
    try {
      (void)readImage(p);
      ADD_FAILURE() << "no error for " << p;
    } catch (const core::InputError& e) {
      EXPECT_NE(std::string(e.what()).find(p.filename().string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expectError(tmp / "missing.nii.gz", "no such file");
  std::ofstream(tmp / "text.nii") << "this is not an image";
  expectError(tmp / "text.nii", "");
  // A valid file cut in half.
  writeImage(testing::ramp<std::int16_t>({64, 64, 16}, {}), tmp / "cut.nii.gz");
  fs::resize_file(tmp / "cut.nii.gz", fs::file_size(tmp / "cut.nii.gz") / 2);
  expectError(tmp / "cut.nii.gz", "truncated");
  writeImage(testing::ramp<std::int16_t>({64, 64, 16}, {}), tmp / "cut.nii");
  fs::resize_file(tmp / "cut.nii", 2000);
  expectError(tmp / "cut.nii", "truncated");
  for (const char* ext : {".nrrd", ".mha"}) {
    const fs::path file = tmp / (std::string("cut") + ext);
    writeImage(testing::ramp<std::int16_t>({64, 64, 16}, {}), file);
    fs::resize_file(file, fs::file_size(file) * 2 / 3);
    expectError(file, "");
  }
  std::ofstream(tmp / "a.dcm") << "x";
  expectError(tmp / "a.dcm", "unsupported image format");
}

TEST(WriteImage, UnsupportedExtensionIsRefusedBeforeWriting) {
  testing::TempDir tmp;
  EXPECT_THROW(writeImage(testing::ramp<float>({2, 2, 2}, {}), tmp / "x.png"), core::InputError);
  EXPECT_FALSE(fs::exists(tmp / "x.png"));
}

} // namespace
} // namespace densa::io
