// SPDX-License-Identifier: Apache-2.0
#pragma once

// ADSL's loss (methods-spec §3.5): the margin loss of Wu et al. (2017) with DCML's negative
// sampler [code: lib/loss/margin_loss.py, lib/loss/sampler.py]. One loss per learner: apply it to
// that learner's renormalised slice (AdslNet::learnerEmbedding).
//
// Ambiguities resolved here (the spec's tags):
// * [code: lib/loss/sampler.py] Truncation is per anchor. The reference appends anchor i's
//   m anchors, its positives and its negatives to running lists and, whenever the lengths differ,
//   truncates all three to the shortest. The lists are aligned before each anchor, so this keeps
//   min(m, |P_i|, |N_i|) triplets of anchor i (a global truncation at the end would pair an anchor
//   with another anchor's positives).
// * [code: lib/loss/sampler.py] Within an anchor, positives and negatives are taken in ascending
//   sample index (the reference reads both from 0/1 masks with nonzero()), so when |P_i| < m the
//   kept negatives are the lowest-indexed of the m nearest, not the nearest |P_i|.
// * [code: lib/loss/sampler.py] Negatives are only samples of another class at distance >= cutoff
//   (the spec's rule). The reference's topk always returns m columns, so when fewer than m
//   samples qualify it pads with masked ones (same class, the anchor itself, or nearer than the
//   cutoff); here the anchor then has fewer negatives. Ties in distance: lower index first.
// * [code: lib/loss/margin_loss.py] The normaliser counts terms (each positive relu term counts
//   once, so a triplet counts up to twice), as the spec says. The reference's
//   `(pos_loss > 0) + (neg_loss > 0)` does that on PyTorch's old uint8 masks; on bool masks
//   (PyTorch >= 1.2) the sum is a logical or and counts triplets instead.
// * β is a constant 1.2 (the reference's Parameter never reaches the optimiser); ν = 0.

#include <torch/types.h>

namespace densa::models {

/// d_ij = sqrt(max(max(‖x_i‖² + ‖x_j‖² − 2 x_i·x_j, 0), 1e-4)) for x [B, D]: [B, B]; the
/// diagonal is 0.01.
[[nodiscard]] torch::Tensor adslPairwiseDistances(const torch::Tensor& x);

/// Index triplets (int64 [T] each, on the embeddings' device): embeddings[anchors[t]],
/// embeddings[positives[t]], embeddings[negatives[t]].
struct MarginTriplets {
  torch::Tensor anchors;
  torch::Tensor positives;
  torch::Tensor negatives;
};

/// DCML's sampler on embeddings [B, D] and labels [B] (integers): positives of anchor i = every
/// other sample of its class; m = ⌊(ordered same-class pairs) / B⌋; negatives = the m nearest
/// samples of another class with adslPairwiseDistances >= cutoff; per anchor
/// min(m, |P_i|, |N_i|) triplets (see the header comment). No gradient.
[[nodiscard]] MarginTriplets dcmlSampleTriplets(const torch::Tensor& embeddings,
                                                const torch::Tensor& labels,
                                                double cutoff = 0.5);

struct MarginLossOptions {
  double alpha = 0.2;  ///< margin
  double beta = 1.2;   ///< boundary (fixed)
  double cutoff = 0.5; ///< the sampler's minimum negative distance
};

/// ℓ = Σ_t [relu(d_ap − β + α) + relu(β − d_an + α)] / #(terms > 0), with
/// d = sqrt(‖·‖² + 1e-8) over the sampled triplets. Without any positive term the loss is the
/// plain sum (0), still connected to `embeddings` in the autograd graph. Scalar.
[[nodiscard]] torch::Tensor marginLoss(const torch::Tensor& embeddings,
                                       const torch::Tensor& labels,
                                       const MarginLossOptions& options = {});

} // namespace densa::models
