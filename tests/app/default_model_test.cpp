// SPDX-License-Identifier: Apache-2.0
// The bundled default model reproduces the liver Dice its card states (data/models/README.md).
#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/app/phantom.hpp"
#include "densa/core/error.hpp"
#include "densa/core/metrics.hpp"

#include <gtest/gtest.h>

namespace densa::app {
namespace {

// A fresh 512 x 512 x 16 phantom (5 mm slices) that the model never saw.
Phantom freshPhantom(std::uint64_t seed) {
  PhantomSpec spec;
  spec.slices = 16;
  spec.spacingZ = 5.0;
  return makePhantom(spec, seed);
}

// The full H-DenseUNet (stages 2d -> 3dpart -> end2end) on full slices (the reference) and on the
// liver box (the paper's ROI): both find the phantom's liver, and the box changes little.
TEST(DefaultModel, SegmentsAFreshPhantom) {
  const auto full = loadHDenseUNetSegmenter(defaultModelPath());
  EXPECT_EQ(full->identity().trainingStage, "end2end");
  SegmenterOptions boxOptions;
  boxOptions.roi = RoiMode::LiverBox;
  const auto box = loadHDenseUNetSegmenter(defaultModelPath(), boxOptions);
  const Phantom p = freshPhantom(424242);
  const SegmentationResult r = full->segment(p.ct, {});
  const SegmentationResult b = box->segment(p.ct, {});
  EXPECT_GE(core::evaluateLitsCase(r.labels, p.labels).liverDice, 0.9);
  EXPECT_GE(core::evaluateLitsCase(b.labels, p.labels).liverDice, 0.9);
  EXPECT_GE(core::evaluateLitsCase(b.labels, r.labels).liverDice, 0.97);
  const auto [x0, x1, y0, y1] = b.roiBox;
  EXPECT_LT((x1 - x0) * (y1 - y0), 512 * 512 / 2)
      << "the liver box should be a fraction of the slice";
}

// --precision bf16: the same model in bfloat16 gives the float masks (up to a few boundary voxels),
// where the CPU runs bfloat16 natively; elsewhere it is refused with a clear error.
TEST(DefaultModel, Bf16AgreesWithFloat) {
  SegmenterOptions bf16;
  bf16.precision = "bf16";
  if (!cpuHasFastBf16()) {
    EXPECT_THROW((void)loadHDenseUNetSegmenter(defaultModelPath(), bf16), core::InputError);
    GTEST_SKIP() << "this CPU has neither AMX nor AVX512-BF16";
  }
  SegmenterOptions float32;
  float32.precision = "fp32";
  const auto fp32 = loadHDenseUNetSegmenter(defaultModelPath(), float32);
  EXPECT_EQ(fp32->identity().precision, "fp32");
  const auto half = loadHDenseUNetSegmenter(defaultModelPath(), bf16);
  EXPECT_EQ(half->identity().precision, "bf16");
  const Phantom p = freshPhantom(77);
  const SegmentationResult a = fp32->segment(p.ct, {});
  const SegmentationResult b = half->segment(p.ct, {});
  const auto agreement = core::evaluateLitsCase(b.labels, a.labels);
  EXPECT_GE(agreement.liverDice, 0.98);
  EXPECT_GE(core::evaluateLitsCase(b.labels, p.labels).liverDice, 0.9);
}

// The default, auto: bfloat16 exactly where the CPU computes it natively, and said so.
TEST(DefaultModel, AutoPrecisionIsBf16ExactlyWhereTheCpuRunsItNatively) {
  const SegmenterOptions defaults;
  EXPECT_EQ(defaults.precision, "auto");
  const auto segmenter = loadHDenseUNetSegmenter(defaultModelPath(), defaults);
  EXPECT_EQ(segmenter->identity().precision, cpuHasFastBf16() ? "bf16" : "fp32");
}

TEST(DefaultModel, UnknownPrecisionIsRefused) {
  SegmenterOptions options;
  options.precision = "fp16";
  EXPECT_THROW((void)loadHDenseUNetSegmenter(defaultModelPath(), options), core::InputError);
}

} // namespace
} // namespace densa::app
