// SPDX-License-Identifier: Apache-2.0
#pragma once

// Running an ADSL network over patches, and the patch contract an "adsl" checkpoint carries
// (private to app/).

#include "densa/models/model_card.hpp"
#include "densa/models/torch/adsl.hpp"

#include "adsl_data.hpp"

#include <torch/types.h>

#include <filesystem>

namespace densa::app {

/// Outputs of the network in eval mode (the evaluation transform applied), on the CPU.
struct AdslEmbedding {
  torch::Tensor embedding;   ///< [N, E] each learner's slice unit-norm (§3.7)
  torch::Tensor penultimate; ///< [N, F] L2-normalised attention-pooled features
  torch::Tensor attention;   ///< [N, 1, h, w] in [0, 1]
};

/// Embeds `images` [N, 1, P, P] in batches of `batch`, in eval mode; the module's training mode is
/// restored afterwards.
[[nodiscard]] AdslEmbedding embedBatches(models::AdslNet& net,
                                         const torch::Tensor& images,
                                         const torch::Device& device,
                                         int batch = 64);

/// Writes the patch contract into the card: HU window, and "adsl patch <mm> mm at <px> px" as the
/// spacing policy.
void setAdslContract(models::ModelCard& card, const AdslPatchSpec& spec);
/// The patch contract of an "adsl" card; models::ModelError naming `file` when it has none.
[[nodiscard]] AdslPatchSpec adslContract(const models::ModelCard& card,
                                         const std::filesystem::path& file);

} // namespace densa::app
