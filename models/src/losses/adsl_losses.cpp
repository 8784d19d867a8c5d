// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/adsl_losses.hpp"

#include "densa/models/error.hpp"

#include <torch/utils.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace densa::models {

torch::Tensor adslPairwiseDistances(const torch::Tensor& x) {
  if (!x.defined() || x.dim() != 2) {
    throw ModelError("adslPairwiseDistances: expected [B, D]");
  }
  const auto prod = x.mm(x.t());
  const auto norm = prod.diagonal().unsqueeze(1);
  return (norm + norm.t() - 2 * prod).clamp_min(0.0).clamp_min(1e-4).sqrt();
}

MarginTriplets dcmlSampleTriplets(const torch::Tensor& embeddings,
                                  const torch::Tensor& labels,
                                  double cutoff) {
  if (!embeddings.defined() || embeddings.dim() != 2) {
    throw ModelError("dcmlSampleTriplets: expected embeddings [B, D]");
  }
  if (!labels.defined() || labels.dim() != 1 || labels.size(0) != embeddings.size(0)) {
    throw ModelError("dcmlSampleTriplets: expected one label per embedding");
  }
  torch::NoGradGuard noGrad;
  const auto b = embeddings.size(0);
  const auto d =
      adslPairwiseDistances(embeddings.detach()).to(torch::kCPU, torch::kDouble).contiguous();
  const auto y = labels.to(torch::kCPU, torch::kLong).contiguous();
  const auto* dist = d.data_ptr<double>();
  const auto* label = y.data_ptr<std::int64_t>();

  std::int64_t positivePairs = 0;
  for (std::int64_t i = 0; i < b; ++i) {
    for (std::int64_t j = 0; j < b; ++j) {
      positivePairs += (i != j && label[i] == label[j]) ? 1 : 0;
    }
  }
  const std::int64_t m = b > 0 ? positivePairs / b : 0;

  std::vector<std::int64_t> anchors;
  std::vector<std::int64_t> positives;
  std::vector<std::int64_t> negatives;
  std::vector<std::int64_t> candidates;
  for (std::int64_t i = 0; i < b && m > 0; ++i) {
    std::vector<std::int64_t> pos;
    candidates.clear();
    for (std::int64_t j = 0; j < b; ++j) {
      if (j == i) {
        continue;
      }
      if (label[j] == label[i]) {
        pos.push_back(j);
      } else if (dist[i * b + j] >= cutoff) {
        candidates.push_back(j);
      }
    }
    // The m nearest candidates (ties: lower index), then back into index order.
    std::stable_sort(candidates.begin(), candidates.end(), [&](std::int64_t p, std::int64_t q) {
      return dist[i * b + p] < dist[i * b + q];
    });
    if (static_cast<std::int64_t>(candidates.size()) > m) {
      candidates.resize(static_cast<std::size_t>(m));
    }
    std::sort(candidates.begin(), candidates.end());
    const auto count = std::min(
        {m, static_cast<std::int64_t>(pos.size()), static_cast<std::int64_t>(candidates.size())});
    for (std::int64_t t = 0; t < count; ++t) {
      anchors.push_back(i);
      positives.push_back(pos[static_cast<std::size_t>(t)]);
      negatives.push_back(candidates[static_cast<std::size_t>(t)]);
    }
  }
  const auto options = torch::dtype(torch::kLong);
  const auto device = embeddings.device();
  return {torch::tensor(anchors, options).to(device),
          torch::tensor(positives, options).to(device),
          torch::tensor(negatives, options).to(device)};
}

torch::Tensor marginLoss(const torch::Tensor& embeddings,
                         const torch::Tensor& labels,
                         const MarginLossOptions& options) {
  const auto t = dcmlSampleTriplets(embeddings, labels, options.cutoff);
  const auto a = embeddings.index_select(0, t.anchors);
  const auto p = embeddings.index_select(0, t.positives);
  const auto n = embeddings.index_select(0, t.negatives);
  const auto dAp = ((p - a).pow(2).sum(1) + 1e-8).sqrt();
  const auto dAn = ((n - a).pow(2).sum(1) + 1e-8).sqrt();
  const auto posLoss = torch::relu(dAp - options.beta + options.alpha);
  const auto negLoss = torch::relu(options.beta - dAn + options.alpha);
  const auto terms = (posLoss > 0.0).sum() + (negLoss > 0.0).sum();
  const auto loss = (posLoss + negLoss).sum();
  if (terms.item<std::int64_t>() > 0) {
    return loss / terms.to(loss.scalar_type());
  }
  return loss;
}

} // namespace densa::models
