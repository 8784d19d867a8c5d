// SPDX-License-Identifier: Apache-2.0
#pragma once
// Shared by the training commands (private to app/): YAML configs with key=value overrides, and
// the optimiser step and state file of the hand-written training loops (GEMINI pretraining and
// gemini-unet training; H-DenseUNet uses models::Trainer).

#include "densa/app/train.hpp"
#include "densa/core/error.hpp"

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace densa::models {
class DistributedContext;
} // namespace densa::models

namespace densa::app {

/// A config value as T; core::InvalidArgument naming the key for a bad value.
template <typename T>
T configValue(const YAML::Node& node, const std::string& key) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    throw core::InvalidArgument("config key '" + key + "': bad value '" + YAML::Dump(node) + "'");
  }
}

/// A YAML list of labelled datasets ({path, label_map, validation_only, train_only}), as the
/// training configs write them; `key` names the list in messages.
[[nodiscard]] std::vector<TrainDataset> parseTrainDatasets(const YAML::Node& list,
                                                           const std::string& key);
/// Writes `datasets` as parseTrainDatasets reads them (the value of a key).
void emitTrainDatasets(YAML::Emitter& e, const std::vector<TrainDataset>& datasets);

/// Reads `file` (a YAML mapping) and calls `apply(key, value)` for each entry, then for each
/// "key=value" override. core::InputError for an unreadable or non-mapping file,
/// core::InvalidArgument for a malformed override.
void readConfig(const std::filesystem::path& file,
                const std::vector<std::string>& overrides,
                const std::function<void(const std::string&, const YAML::Node&)>& apply);

/// Backward of `loss`, gradients averaged over the ranks of `distributed` (when not null), one
/// optimiser step, then every gradient reset to "none" (PyTorch 2's zero_grad default, which the
/// GEMINI reference runs on: a parameter without a gradient in the next step is skipped rather
/// than moved by momentum). Skipped on every rank when any rank's loss is not finite. Returns
/// whether the step was taken.
bool optimiserStep(const torch::Tensor& loss,
                   torch::nn::Module& net,
                   torch::optim::Optimizer& optimizer,
                   models::DistributedContext* distributed);

/// The state of a run for an exact resume: weights, optimiser, step and best validation score,
/// written atomically.
void saveRunState(const std::filesystem::path& file,
                  torch::nn::Module& net,
                  torch::optim::Optimizer& optimizer,
                  std::int64_t step,
                  double bestScore);

struct RunState {
  std::int64_t step = 0;
  double bestScore = -1;
};

/// Restores what saveRunState wrote into `net` and `optimizer` (built the same way).
/// core::InputError when the file is missing or unreadable.
RunState loadRunState(const std::filesystem::path& file,
                      torch::nn::Module& net,
                      torch::optim::Optimizer& optimizer,
                      const torch::Device& device);

} // namespace densa::app
