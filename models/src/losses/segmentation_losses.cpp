// SPDX-License-Identifier: Apache-2.0
#include "densa/models/error.hpp"
#include "densa/models/torch/losses.hpp"

#include <cmath>
#include <string>

namespace densa::models {
namespace {

void checkPair(const torch::Tensor& logits, const torch::Tensor& target, const char* what) {
  if (logits.dim() < 3 || target.dim() != logits.dim() - 1 || logits.size(0) != target.size(0) ||
      logits.sizes().slice(2) != target.sizes().slice(1)) {
    throw ModelError(std::string(what) + ": expected logits [N, C, ...] and target [N, ...] of the "
                                         "same spatial size");
  }
  if (target.scalar_type() != torch::kLong) {
    throw ModelError(std::string(what) + ": target must be int64 class indices");
  }
}

void cropEdges(torch::Tensor& logits, torch::Tensor& target, bool exclude, const char* what) {
  if (!exclude) {
    return;
  }
  if (logits.dim() != 5 || logits.size(2) < 3) {
    throw ModelError(std::string(what) +
                     ": excluding edge slices needs [N, C, D, H, W] logits with D >= 3");
  }
  logits = dropEdgeSlices(logits, 2);
  target = dropEdgeSlices(target, 1);
}

} // namespace

torch::Tensor dropEdgeSlices(const torch::Tensor& t, std::int64_t dim) {
  return t.narrow(dim, 1, t.size(dim) - 2);
}

torch::Tensor weightedCrossEntropy(const torch::Tensor& logitsIn,
                                   const torch::Tensor& targetIn,
                                   const WeightedCrossEntropyOptions& options) {
  checkPair(logitsIn, targetIn, "weightedCrossEntropy");
  auto logits = logitsIn;
  auto target = targetIn;
  cropEdges(logits, target, options.excludeEdgeSlices, "weightedCrossEntropy");
  if (static_cast<std::int64_t>(options.classWeights.size()) != logits.size(1)) {
    throw ModelError("weightedCrossEntropy: " + std::to_string(options.classWeights.size()) +
                     " class weights for " + std::to_string(logits.size(1)) + " classes");
  }
  // log(clip(p, floor, 1)) == clamp(log_softmax, log(floor), 0), computed stably.
  const auto logp = torch::log_softmax(logits, 1).clamp(std::log(options.probabilityFloor), 0.0);
  const auto picked = logp.gather(1, target.unsqueeze(1)).squeeze(1);
  const auto weights = torch::tensor(options.classWeights, logits.options())
                           .index_select(0, target.flatten())
                           .view(target.sizes());
  return -(weights * picked).mean();
}

torch::Tensor softDice(const torch::Tensor& logitsIn,
                       const torch::Tensor& targetIn,
                       const SoftDiceOptions& options) {
  checkPair(logitsIn, targetIn, "softDice");
  auto logits = logitsIn;
  auto target = targetIn;
  cropEdges(logits, target, options.excludeEdgeSlices, "softDice");
  const std::int64_t classes = logits.size(1);
  const std::int64_t first = options.includeBackground ? 0 : 1;
  if (first >= classes) {
    throw ModelError("softDice: no class left to score");
  }
  const auto probs = torch::softmax(logits, 1);
  // One-hot [N, C, ...] from [N, ...].
  const auto onehot = torch::zeros_like(probs).scatter_(1, target.unsqueeze(1), 1.0);
  std::vector<std::int64_t> reduce{0};
  for (std::int64_t d = 2; d < logits.dim(); ++d) {
    reduce.push_back(d);
  }
  const auto p = probs.narrow(1, first, classes - first);
  const auto g = onehot.narrow(1, first, classes - first);
  const auto intersection = (p * g).sum(reduce);
  const auto denominator = p.sum(reduce) + g.sum(reduce);
  const auto dice = (2.0 * intersection + options.smooth) / (denominator + options.smooth);
  return 1.0 - dice.mean();
}

torch::Tensor segmentationLoss(const torch::Tensor& logits,
                               const torch::Tensor& target,
                               const SegmentationLossOptions& options) {
  torch::Tensor loss;
  if (options.crossEntropyWeight != 0.0) {
    loss = options.crossEntropyWeight * weightedCrossEntropy(logits, target, options.crossEntropy);
  }
  if (options.diceWeight != 0.0) {
    const auto dice = options.diceWeight * softDice(logits, target, options.dice);
    loss = loss.defined() ? loss + dice : dice;
  }
  if (!loss.defined()) {
    throw ModelError("segmentationLoss: both weights are zero");
  }
  return loss;
}

} // namespace densa::models
