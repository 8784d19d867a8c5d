// SPDX-License-Identifier: Apache-2.0
#pragma once

// Sliding-window 3D inference of a fully convolutional network over a volume larger (or smaller)
// than its tiles: the tiler of the GEMINI transfer segmenter. Tensor-typed (LibTorch).

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace densa::app {

struct SlidingWindowOptions {
  std::int64_t tile = 64; ///< cubic tile edge, voxels
  /// Weight each tile's output by a Gaussian centred on the tile (σ = tile/8 per axis, peak 1);
  /// false: every voxel of every tile weighs 1 (the plain mean of the overlapping tiles).
  bool gaussian = true;
};

/// Start offsets of the tiles along an axis of `size` voxels: {0} when size ≤ tile, else n evenly
/// spaced offsets from 0 to size − tile (rounded) with n the least count whose step is at most
/// tile/2 (≥ 50 % overlap). Every tile lies inside the axis.
[[nodiscard]] std::vector<std::int64_t> tileStarts(std::int64_t size, std::int64_t tile);

/// Per-voxel weights of one tile, [tile, tile, tile] float (all ones unless `gaussian`).
[[nodiscard]] torch::Tensor tileWeights(std::int64_t tile, bool gaussian);

/// Class probabilities [K, D, H, W] (CPU float) of `image` [1, C, D, H, W]. Axes shorter than a
/// tile are zero-padded at their end to one tile; tiles at the tileStarts() of each axis are passed
/// to `probabilities` ([1, C, T, T, T] on the CPU -> [1, K, T, T, T] on any device); the outputs
/// are summed with tileWeights() and divided by the summed weights, then cropped back to D, H, W.
/// Memory: the padded image and K + 1 float maps of the padded size, plus one tile. `progress`
/// receives the fraction of tiles done after each tile. Runs under torch::NoGradGuard.
[[nodiscard]] torch::Tensor slidingWindowProbabilities(
    const torch::Tensor& image,
    const std::function<torch::Tensor(const torch::Tensor&)>& probabilities,
    const SlidingWindowOptions& options,
    const std::function<void(double)>& progress = {});

} // namespace densa::app
