// SPDX-License-Identifier: Apache-2.0
// Sliding-window 3D inference: overlapping cubic tiles, weighted average of their outputs.
#include "densa/app/sliding_window.hpp"

#include "densa/core/error.hpp"

#include <torch/nn/functional/padding.h>

#include <algorithm>
#include <string>

namespace densa::app {

std::vector<std::int64_t> tileStarts(std::int64_t size, std::int64_t tile) {
  if (tile < 2) {
    throw core::InvalidArgument("sliding window: tile size " + std::to_string(tile) +
                                " is smaller than 2");
  }
  if (size <= tile) {
    return {0};
  }
  const std::int64_t span = size - tile;
  const std::int64_t maxStep = tile / 2;
  const std::int64_t steps = (span + maxStep - 1) / maxStep; // n - 1
  std::vector<std::int64_t> starts;
  starts.reserve(static_cast<std::size_t>(steps + 1));
  for (std::int64_t i = 0; i <= steps; ++i) {
    starts.push_back((i * span + steps / 2) / steps);
  }
  return starts;
}

torch::Tensor tileWeights(std::int64_t tile, bool gaussian) {
  if (!gaussian) {
    return torch::ones({tile, tile, tile}, torch::kFloat32);
  }
  const double sigma = static_cast<double>(tile) / 8.0;
  const double centre = static_cast<double>(tile - 1) / 2.0;
  const auto x = torch::arange(tile, torch::kFloat64) - centre;
  auto g = torch::exp(-(x * x) / (2.0 * sigma * sigma));
  g = g / g.max();
  const auto w = g.view({tile, 1, 1}) * g.view({1, tile, 1}) * g.view({1, 1, tile});
  return w.to(torch::kFloat32).contiguous();
}

torch::Tensor slidingWindowProbabilities(
    const torch::Tensor& image,
    const std::function<torch::Tensor(const torch::Tensor&)>& probabilities,
    const SlidingWindowOptions& options,
    const std::function<void(double)>& progress) {
  if (image.dim() != 5 || image.size(0) != 1) {
    throw core::InvalidArgument("sliding window: expected an image [1, C, D, H, W]");
  }
  torch::NoGradGuard noGrad;
  const std::int64_t tile = options.tile;
  const std::int64_t d = image.size(2);
  const std::int64_t h = image.size(3);
  const std::int64_t w = image.size(4);
  const std::int64_t dp = std::max(d, tile);
  const std::int64_t hp = std::max(h, tile);
  const std::int64_t wp = std::max(w, tile);
  const auto zs = tileStarts(dp, tile);
  const auto ys = tileStarts(hp, tile);
  const auto xs = tileStarts(wp, tile);
  namespace F = torch::nn::functional;
  const torch::Tensor padded =
      F::pad(image.to(torch::kCPU, torch::kFloat32),
             F::PadFuncOptions({0, wp - w, 0, hp - h, 0, dp - d}).mode(torch::kConstant).value(0));
  const torch::Tensor weights = tileWeights(tile, options.gaussian);
  torch::Tensor sum; // [K, dp, hp, wp]
  torch::Tensor weightSum = torch::zeros({dp, hp, wp}, torch::kFloat32);
  const std::size_t total = zs.size() * ys.size() * xs.size();
  std::size_t done = 0;
  for (const auto z : zs) {
    for (const auto y : ys) {
      for (const auto x : xs) {
        const auto input =
            padded.slice(2, z, z + tile).slice(3, y, y + tile).slice(4, x, x + tile).contiguous();
        const torch::Tensor out = probabilities(input).to(torch::kCPU, torch::kFloat32);
        if (out.dim() != 5 || out.size(0) != 1 || out.size(2) != tile || out.size(3) != tile ||
            out.size(4) != tile) {
          throw core::InternalError("sliding window: the network's output is not [1, K, T, T, T]");
        }
        if (!sum.defined()) {
          sum = torch::zeros({out.size(1), dp, hp, wp}, torch::kFloat32);
        }
        sum.slice(1, z, z + tile)
            .slice(2, y, y + tile)
            .slice(3, x, x + tile)
            .add_(out[0] * weights);
        weightSum.slice(0, z, z + tile).slice(1, y, y + tile).slice(2, x, x + tile).add_(weights);
        ++done;
        if (progress) {
          progress(static_cast<double>(done) / static_cast<double>(total));
        }
      }
    }
  }
  sum.div_(weightSum);
  return sum.slice(1, 0, d).slice(2, 0, h).slice(3, 0, w).contiguous();
}

} // namespace densa::app
