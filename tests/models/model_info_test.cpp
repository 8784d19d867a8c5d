// SPDX-License-Identifier: Apache-2.0
#include "densa/models/model_info.hpp"

#include "densa/models/error.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace densa::models {
namespace {

std::int64_t countParameters(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) {
    n += p.numel();
  }
  return n;
}

TEST(DescribeModel, ListsEveryPresetWithItsSubnetworks) {
  const auto all = describeModel("hdenseunet");
  ASSERT_EQ(all.size(), 3U);
  EXPECT_EQ(all[0].preset, "paper");
  EXPECT_EQ(all[2].preset, "tiny");
  for (const auto& p : all) {
    ASSERT_EQ(p.subnetworks.size(), 3U);
    EXPECT_EQ(p.subnetworks[0].name, "net2d");
    EXPECT_EQ(p.subnetworks[1].name, "net3d");
    EXPECT_EQ(p.subnetworks[2].name, "fusion");
    EXPECT_NEAR(p.gflopsPerWindow, 8.0 * p.gflopsPerSlice, 1e-9 * p.gflopsPerWindow);
  }
  EXPECT_GT(all[0].parameters, all[1].parameters);
  EXPECT_GT(all[1].parameters, all[2].parameters);
  EXPECT_EQ(describeModel("h-dense-unet", "tiny").size(), 1U);
  EXPECT_THROW((void)describeModel("resnet"), ModelError);
  EXPECT_THROW((void)describeModel("hdenseunet", "huge"), ModelError);
}

// The walker's parameter counts equal the instantiated modules' for the small presets (paper is
// checked against the derivation in dense_unet_test.cpp).
TEST(DescribeModel, ParameterCountsEqualTheInstantiatedNetworks) {
  for (const std::string preset : {"small", "tiny"}) {
    SCOPED_TRACE(preset);
    const auto info = describeModel("hdenseunet", preset).front();
    HDenseUNet net(hDenseUNetPreset(preset));
    EXPECT_EQ(info.subnetworks[0].parameters, countParameters(*net->net2d()));
    EXPECT_EQ(info.subnetworks[1].parameters, countParameters(*net->net3d()));
    EXPECT_EQ(info.parameters, countParameters(*net));
    for (const std::string arch : {"dense-unet-2d", "dense-unet-3d", "coarse-liver"}) {
      const auto single = describeModel(arch, preset).front();
      EXPECT_EQ(single.parameters, countParameters(*moduleOf(makeNet(modelPreset(arch, preset)))))
          << arch;
    }
  }
}

TEST(DenseUNetCost, CountsConvolutionMultiplyAccumulatesStageByStage) {
  // Tiny 2D net on 64 x 64, summed by hand: stem 3*8*49 at 32x32; dense layers (1x1 to 16, 3x3
  // to 4) at 16/8/4/2; transition 1x1 convs before their pooling, at 16/8/4; the skip projection
  // 9 -> 8 at 4x4; decoder convs at 4 ... 64; classifier at 64x64.
  const auto o = hDenseUNetPreset("tiny").net2d;
  const double macs = 3.0 * 8 * 49 * 32 * 32                                   // conv1
                      + (8.0 * 16 + 16 * 4 * 9) * 16 * 16 + 12.0 * 6 * 16 * 16 // block1, trans1
                      + (6.0 * 16 + 16 * 4 * 9) * 8 * 8 + 10.0 * 5 * 8 * 8     // block2, trans2
                      + (5.0 * 16 + 16 * 4 * 9) * 4 * 4 + 9.0 * 4 * 4 * 4      // block3, trans3
                      + (4.0 * 16 + 16 * 4 * 9) * 2 * 2                        // block4
                      + 9.0 * 8 * 4 * 4 + 8.0 * 10 * 9 * 4 * 4                 // up0 (skip, conv)
                      + 10.0 * 12 * 9 * 8 * 8 + 12.0 * 8 * 9 * 16 * 16         // up1, up2
                      + 8.0 * 8 * 9 * 32 * 32 + 8.0 * 8 * 9 * 64 * 64          // up3, up4
                      + 8.0 * 3 * 64 * 64;                                     // classifier
  EXPECT_DOUBLE_EQ(denseUNetCost(o, 2, {64, 64}).macs, macs);
}

TEST(DenseUNetCost, PaperTwoDimensionalNetIsAboutEighteenGigaMacsAt224) {
  // DenseNet-161's encoder is ~7.8 GMAC at 224^2; the decoder adds ~10 GMAC.
  const auto cost = denseUNetCost(paperDenseUNet2d(), 2, {224, 224});
  EXPECT_GT(cost.macs, 16e9);
  EXPECT_LT(cost.macs, 20e9);
}

} // namespace
} // namespace densa::models
