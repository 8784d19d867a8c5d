// SPDX-License-Identifier: Apache-2.0
#pragma once

// Segmentation losses (methods-spec §1.9). Logits [N, C, ...spatial], integer targets
// [N, ...spatial] with values in [0, C).

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace densa::models {

/// Weighted cross-entropy of the reference (loss.py).
struct WeightedCrossEntropyOptions {
  std::vector<double> classWeights{0.78, 0.65, 8.57}; ///< background, liver, tumour
  double probabilityFloor = 1e-10;                    ///< p is clipped to [floor, 1] before log
  bool excludeEdgeSlices = false; ///< hybrid stages: drop the first and last depth slice
};

/// L = -(1/N) * sum_i w[y_i] * log(clip(softmax(logits)_i[y_i], 1e-10, 1)), N = number of voxels
/// (a plain mean, not divided by sum w). With excludeEdgeSlices (5-D logits), slices 0 and D-1 are
/// dropped first (y[..., 1:D-1]). Returns a scalar.
[[nodiscard]] torch::Tensor weightedCrossEntropy(const torch::Tensor& logits,
                                                 const torch::Tensor& target,
                                                 const WeightedCrossEntropyOptions& options = {});

/// Soft Dice loss: 1 - mean over the chosen classes of (2 sum p*g + s) / (sum p + sum g + s), sums
/// over the whole batch, p = softmax(logits).
struct SoftDiceOptions {
  double smooth = 1.0;
  bool includeBackground = false; ///< class 0 counted or not
  bool excludeEdgeSlices = false;
};

[[nodiscard]] torch::Tensor softDice(const torch::Tensor& logits,
                                     const torch::Tensor& target,
                                     const SoftDiceOptions& options = {});

/// crossEntropyWeight * weightedCrossEntropy + diceWeight * softDice (the reference trains with
/// the weighted CE alone: weights 1 and 0).
struct SegmentationLossOptions {
  double crossEntropyWeight = 1.0;
  double diceWeight = 0.0;
  WeightedCrossEntropyOptions crossEntropy;
  SoftDiceOptions dice;
};

[[nodiscard]] torch::Tensor segmentationLoss(const torch::Tensor& logits,
                                             const torch::Tensor& target,
                                             const SegmentationLossOptions& options = {});

/// Drops the first and last slice along `dim` (the hybrid stages' loss crop).
[[nodiscard]] torch::Tensor dropEdgeSlices(const torch::Tensor& t, std::int64_t dim);

} // namespace densa::models
