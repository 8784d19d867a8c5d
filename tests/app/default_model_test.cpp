// SPDX-License-Identifier: Apache-2.0
// The bundled default model reproduces the liver Dice its card states (data/models/README.md).
#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/app/phantom.hpp"
#include "densa/core/metrics.hpp"

#include <gtest/gtest.h>

namespace densa::app {
namespace {

TEST(DefaultModel, SegmentsAFreshPhantom) {
  const auto segmenter = loadHDenseUNetSegmenter(defaultModelPath());
  EXPECT_EQ(segmenter->identity().trainingStage, "2d");
  PhantomSpec spec;
  spec.slices = 12;
  spec.spacingZ = 5.0;
  const Phantom p = makePhantom(spec, 424242);
  const SegmentationResult r = segmenter->segment(p.ct, {});
  const core::LitsCase c = core::evaluateLitsCase(r.labels, p.labels);
  EXPECT_GE(c.liverDice, 0.9);
}

} // namespace
} // namespace densa::app
