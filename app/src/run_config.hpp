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
#include <optional>
#include <string>
#include <type_traits>
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

/// One key of a YAML config bound to a member of the config struct C: read with configValue,
/// written back by configYaml (so a run folder's config.yaml re-reads to the same config).
template <typename C>
struct ConfigField {
  std::string key;
  std::function<void(C&, const YAML::Node&)> read;
  std::function<void(const C&, YAML::Emitter&)> write;
};

/// A field for a plain member (numbers, bool, std::string, std::filesystem::path, optional path).
template <typename C, typename T>
ConfigField<C> configField(std::string key, T C::*member) {
  ConfigField<C> f;
  f.key = key;
  f.read = [key, member](C& c, const YAML::Node& node) {
    if constexpr (std::is_same_v<T, std::filesystem::path>) {
      c.*member = configValue<std::string>(node, key);
    } else if constexpr (std::is_same_v<T, std::optional<std::filesystem::path>>) {
      c.*member = std::filesystem::path(configValue<std::string>(node, key));
    } else {
      c.*member = configValue<T>(node, key);
    }
  };
  f.write = [key, member](const C& c, YAML::Emitter& e) {
    if constexpr (std::is_same_v<T, std::filesystem::path>) {
      if (!(c.*member).empty()) {
        e << YAML::Key << key << YAML::Value << (c.*member).string();
      }
    } else if constexpr (std::is_same_v<T, std::optional<std::filesystem::path>>) {
      if (c.*member) {
        e << YAML::Key << key << YAML::Value << std::filesystem::absolute(*(c.*member)).string();
      }
    } else {
      e << YAML::Key << key << YAML::Value << c.*member;
    }
  };
  return f;
}

/// Applies `value` to the field named `key`; core::InvalidArgument for an unknown key.
template <typename C>
void applyConfigField(const std::vector<ConfigField<C>>& fields,
                      C& c,
                      const std::string& key,
                      const YAML::Node& value) {
  for (const auto& f : fields) {
    if (f.key == key) {
      f.read(c, value);
      return;
    }
  }
  throw core::InvalidArgument("unknown config key '" + key + "'");
}

/// Writes every field, in order, into the open map of `e`.
template <typename C>
void emitConfigFields(const std::vector<ConfigField<C>>& fields, const C& c, YAML::Emitter& e) {
  for (const auto& f : fields) {
    f.write(c, e);
  }
}

/// A dataset path of a config file: relative paths that do not exist from the working folder
/// are relative to the config file's folder.
[[nodiscard]] std::filesystem::path configRelative(const std::filesystem::path& file,
                                                   const std::filesystem::path& path);

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

/// Copies rank 0's parameters to every rank (the start of a data-parallel run).
void broadcastParameters(torch::nn::Module& net, models::DistributedContext& distributed);

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
