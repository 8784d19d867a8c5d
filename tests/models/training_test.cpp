// SPDX-License-Identifier: Apache-2.0
#include "densa/models/runtime.hpp"
#include "densa/models/torch/h_dense_unet.hpp"
#include "densa/models/torch/losses.hpp"

#include <gtest/gtest.h>
#include <torch/optim/adam.h>

#include <cstdint>

namespace densa::models {
namespace {

// Synthetic window: a "liver" ball with a "tumour" ball inside, on a noisy background; the image
// is HU-like (liver 60, tumour 20, background -100) minus the reference mean 48.
std::pair<torch::Tensor, torch::Tensor> syntheticWindow(std::int64_t depth, std::int64_t size) {
  const auto z = torch::arange(depth, torch::kFloat).view({depth, 1, 1}) - depth / 2.0;
  const auto y = torch::arange(size, torch::kFloat).view({1, size, 1}) - size / 2.0;
  const auto x = torch::arange(size, torch::kFloat).view({1, 1, size}) - size / 2.0;
  const auto r2 = (2 * z).pow(2) + y.pow(2) + x.pow(2);
  const auto liver = r2 < static_cast<double>(size * size) / 8.0;
  const auto tumour = ((2 * z).pow(2) + (y - 3).pow(2) + (x + 2).pow(2)) < 16.0;
  auto label = torch::zeros({depth, size, size}, torch::kLong);
  label.masked_fill_(liver, 1);
  label.masked_fill_(tumour, 2);
  auto image = torch::full({depth, size, size}, -100.0F);
  image.masked_fill_(liver, 60.0F);
  image.masked_fill_(tumour, 20.0F);
  image = image + 10.0F * torch::randn({depth, size, size}) - 48.0F;
  return {image.view({1, 1, depth, size, size}), label.unsqueeze(0)};
}

TEST(TinyPreset, HybridNetOverfitsOneSyntheticBatch) {
  setThreads(1);
  torch::manual_seed(21);
  HDenseUNet net(hDenseUNetPreset("tiny"));
  net->train();
  const auto [volume, target] = syntheticWindow(8, 32);
  WeightedCrossEntropyOptions ce;
  ce.excludeEdgeSlices = true;
  torch::optim::Adam optimiser(net->parameters(), torch::optim::AdamOptions(1e-2));
  double first = 0.0;
  double last = 0.0;
  for (int step = 0; step < 150; ++step) {
    optimiser.zero_grad();
    const auto out = net(volume * (1.0 / 100.0));
    const auto loss = weightedCrossEntropy(out.logits, target, ce);
    loss.backward();
    optimiser.step();
    last = loss.item<double>();
    if (step == 0) {
      first = last;
    }
  }
  EXPECT_LE(last, 0.1 * first) << "loss " << first << " -> " << last;
}

TEST(TinyPreset, TwoDimensionalStageOverfitsOneSyntheticBatch) {
  setThreads(1);
  torch::manual_seed(22);
  HDenseUNet net(hDenseUNetPreset("tiny"));
  net->train();
  const auto [volume, target] = syntheticWindow(8, 32);
  const auto slices = slicesToBatch(volume * (1.0 / 100.0), 3);
  const auto labels = target.squeeze(0); // [D, H, W]: the centre slice of each input
  torch::optim::Adam optimiser(net->net2d()->parameters(), torch::optim::AdamOptions(1e-2));
  double first = 0.0;
  double last = 0.0;
  for (int step = 0; step < 150; ++step) {
    optimiser.zero_grad();
    const auto loss = weightedCrossEntropy(net->forward2d(slices).logits, labels);
    loss.backward();
    optimiser.step();
    last = loss.item<double>();
    if (step == 0) {
      first = last;
    }
  }
  EXPECT_LE(last, 0.1 * first) << "loss " << first << " -> " << last;
}

} // namespace
} // namespace densa::models
