// SPDX-License-Identifier: Apache-2.0
#pragma once

// The model registry (architecture id -> network) and checkpoints: one file holding the JSON model
// card and the weights (container layout in densa/models/model_card.hpp).

#include "densa/models/model_card.hpp"
#include "densa/models/torch/adsl.hpp"
#include "densa/models/torch/dense_unet.hpp"
#include "densa/models/torch/gemini.hpp"
#include "densa/models/torch/h_dense_unet.hpp"

#include <torch/nn/module.h>
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <variant>

namespace densa::models {

/// Any network the registry builds.
using AnyNet = std::
    variant<HDenseUNet, DenseUNet2d, DenseUNet3d, CoarseLiverNet, GeminiNet, GeminiUNet, AdslNet>;

/// Registry: a freshly initialised network of the architecture the options name.
[[nodiscard]] AnyNet makeNet(const ModelOptions& options);
/// The network's module and its options.
[[nodiscard]] std::shared_ptr<torch::nn::Module> moduleOf(const AnyNet& net);
[[nodiscard]] ModelOptions optionsOf(const AnyNet& net);

/// State dict: parameters and buffers (BN running statistics, num_batches_tracked) by their
/// dotted names, e.g. "net2d.block1.layer1.norm1.weight".
[[nodiscard]] std::map<std::string, torch::Tensor> stateDict(const torch::nn::Module& module);

/// Copies `state` into the module's parameters and buffers. Every name must exist with the same
/// shape, and every parameter and buffer must be given, except that `allowMissingCounters`
/// tolerates missing "num_batches_tracked". Throws ModelError naming the offending keys; `source`
/// names the file in messages.
void loadStateDict(torch::nn::Module& module,
                   const std::map<std::string, torch::Tensor>& state,
                   const std::string& source,
                   bool allowMissingCounters = false);

/// A network restored from a file, in eval mode, on the requested device.
struct LoadedModel {
  ModelCard card;
  AnyNet net;
};

/// Writes the card (its options replaced by the network's own) and the network's state dict to
/// one file, atomically. Fills provenance.createdUtc and libtorchVersion when empty.
void saveCheckpoint(const AnyNet& net, ModelCard card, const std::filesystem::path& path);

/// Loads a checkpoint alone: verifies the container, parses the card, builds the architecture,
/// loads the weights (strict names and shapes). Throws ModelError for a foreign, truncated,
/// corrupted or mismatched file.
[[nodiscard]] LoadedModel loadCheckpoint(const std::filesystem::path& path,
                                         const torch::Device& device = torch::kCPU);

/// Imports weights trained in Python: a file written by `torch.save(d, path)` where d is a plain
/// dict {name: tensor} using our parameter names (e.g. `dict(model.state_dict())` of a PyTorch
/// port with the same module names; a leading "module." from DataParallel is stripped; missing
/// num_batches_tracked counters are tolerated). The card describes the architecture.
[[nodiscard]] LoadedModel importStateDict(const std::filesystem::path& path,
                                          const ModelCard& card,
                                          const torch::Device& device = torch::kCPU);

} // namespace densa::models
