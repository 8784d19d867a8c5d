// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/checkpoint.hpp"

#include "densa/models/error.hpp"
#include "densa/models/runtime.hpp"

#include <torch/serialize.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iterator>
#include <set>
#include <type_traits>
#include <vector>

namespace densa::models {
namespace {

std::string utcNow() {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::string listKeys(const std::vector<std::string>& keys) {
  std::string out;
  for (std::size_t i = 0; i < keys.size() && i < 5; ++i) {
    out += (i ? ", " : "") + keys[i];
  }
  if (keys.size() > 5) {
    out += ", ... (" + std::to_string(keys.size()) + " in all)";
  }
  return out;
}

std::map<std::string, torch::Tensor> unpickleState(const std::vector<char>& bytes,
                                                   const std::string& source) {
  torch::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    throw ModelError("weights of " + source +
                     " cannot be read (not a PyTorch archive of a dict "
                     "of tensors): " +
                     e.what_without_backtrace());
  }
  if (!value.isGenericDict()) {
    throw ModelError(
        "weights of " + source +
        " are not a dict of tensors; in Python save "
        "torch.save(dict(model.state_dict()), path) (a plain dict, not an OrderedDict)");
  }
  std::map<std::string, torch::Tensor> state;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor()) {
      throw ModelError("weights of " + source +
                       " hold a non-tensor entry; expected {name: tensor}");
    }
    state.emplace(item.key().toStringRef(), item.value().toTensor());
  }
  return state;
}

LoadedModel finish(ModelCard card, AnyNet net, const torch::Device& device) {
  auto module = moduleOf(net);
  module->to(device);
  module->eval();
  return {std::move(card), std::move(net)};
}

} // namespace

AnyNet makeNet(const ModelOptions& options) {
  return std::visit(
      [](const auto& o) -> AnyNet {
        using T = std::remove_cvref_t<decltype(o)>;
        if constexpr (std::is_same_v<T, HDenseUNetOptions>) {
          return HDenseUNet(o);
        } else if constexpr (std::is_same_v<T, DenseUNet2dOptions>) {
          return DenseUNet2d(static_cast<const DenseUNetOptions&>(o));
        } else if constexpr (std::is_same_v<T, DenseUNet3dOptions>) {
          return DenseUNet3d(static_cast<const DenseUNetOptions&>(o));
        } else if constexpr (std::is_same_v<T, GeminiOptions>) {
          return GeminiNet(o);
        } else if constexpr (std::is_same_v<T, GeminiUNetOptions>) {
          return GeminiUNet(o);
        } else if constexpr (std::is_same_v<T, AdslOptions>) {
          return AdslNet(o);
        } else {
          return CoarseLiverNet(o);
        }
      },
      options);
}

std::shared_ptr<torch::nn::Module> moduleOf(const AnyNet& net) {
  return std::visit([](const auto& n) -> std::shared_ptr<torch::nn::Module> { return n.ptr(); },
                    net);
}

ModelOptions optionsOf(const AnyNet& net) {
  return std::visit(
      [](const auto& n) -> ModelOptions {
        using T = std::remove_cvref_t<decltype(n)>;
        if constexpr (std::is_same_v<T, DenseUNet2d>) {
          return DenseUNet2dOptions{n->options()};
        } else if constexpr (std::is_same_v<T, DenseUNet3d>) {
          return DenseUNet3dOptions{n->options()};
        } else {
          return n->options();
        }
      },
      net);
}

std::map<std::string, torch::Tensor> stateDict(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : module.named_parameters(true)) {
    state.emplace(p.key(), p.value());
  }
  for (const auto& b : module.named_buffers(true)) {
    state.emplace(b.key(), b.value());
  }
  return state;
}

void loadStateDict(torch::nn::Module& module,
                   const std::map<std::string, torch::Tensor>& state,
                   const std::string& source,
                   bool allowMissingCounters) {
  auto target = stateDict(module);
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  std::vector<std::string> mismatched;
  for (const auto& [name, tensor] : target) {
    const auto it = state.find(name);
    if (it == state.end()) {
      const bool counter =
          name.size() >= 19 && name.compare(name.size() - 19, 19, "num_batches_tracked") == 0;
      if (!(allowMissingCounters && counter)) {
        missing.push_back(name);
      }
    } else if (it->second.sizes() != tensor.sizes()) {
      mismatched.push_back(name + " " + c10::str(it->second.sizes()) + " vs " +
                           c10::str(tensor.sizes()));
    }
  }
  for (const auto& entry : state) {
    if (target.find(entry.first) == target.end()) {
      unexpected.push_back(entry.first);
    }
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string what = "weights of " + source + " do not fit the architecture:";
    if (!mismatched.empty()) {
      what += " shape mismatch (file vs model): " + listKeys(mismatched) + ";";
    }
    if (!missing.empty()) {
      what += " missing: " + listKeys(missing) + ";";
    }
    if (!unexpected.empty()) {
      what += " unexpected: " + listKeys(unexpected) + ";";
    }
    throw ModelError(what);
  }
  torch::NoGradGuard noGrad;
  for (auto& [name, tensor] : target) {
    const auto it = state.find(name);
    if (it != state.end()) {
      tensor.copy_(it->second);
    }
  }
}

void saveCheckpoint(const AnyNet& net, ModelCard card, const std::filesystem::path& path) {
  card.options = optionsOf(net);
  if (card.provenance.createdUtc.empty()) {
    card.provenance.createdUtc = utcNow();
  }
  if (card.provenance.libtorchVersion.empty()) {
    card.provenance.libtorchVersion = libtorchVersion();
  }
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : stateDict(*moduleOf(net))) {
    dict.insert(name, tensor.detach().to(torch::kCPU).contiguous());
  }
  CheckpointContents contents;
  contents.card = toJson(card);
  try {
    contents.weights = torch::pickle_save(dict);
  } catch (const c10::Error& e) {
    throw ModelError("cannot serialise the weights: " + std::string(e.what_without_backtrace()));
  }
  writeCheckpointFile(path, contents);
}

LoadedModel loadCheckpoint(const std::filesystem::path& path, const torch::Device& device) {
  const std::string source = "'" + path.string() + "'";
  const auto contents = readCheckpointFile(path, true);
  ModelCard card;
  try {
    card = parseModelCard(contents.card);
  } catch (const ModelError& e) {
    throw ModelError("checkpoint " + source + ": " + e.what());
  }
  AnyNet net = makeNet(card.options);
  auto module = moduleOf(net);
  loadStateDict(*module, unpickleState(contents.weights, source), source);
  return finish(std::move(card), std::move(net), device);
}

LoadedModel importStateDict(const std::filesystem::path& path,
                            const ModelCard& card,
                            const torch::Device& device) {
  const std::string source = "'" + path.string() + "'";
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ModelError("cannot open " + source);
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  auto state = unpickleState(bytes, source);
  const std::string prefix = "module.";
  const bool allPrefixed =
      !state.empty() && std::all_of(state.begin(), state.end(), [&](const auto& e) {
        return e.first.rfind(prefix, 0) == 0;
      });
  if (allPrefixed) {
    std::map<std::string, torch::Tensor> stripped;
    for (auto& [name, tensor] : state) {
      stripped.emplace(name.substr(prefix.size()), tensor);
    }
    state = std::move(stripped);
  }
  AnyNet net = makeNet(card.options);
  loadStateDict(*moduleOf(net), state, source, true);
  ModelCard imported = card;
  if (imported.provenance.trainingStage.empty() ||
      imported.provenance.trainingStage == "untrained") {
    imported.provenance.trainingStage = "imported";
  }
  imported.provenance.notes += (imported.provenance.notes.empty() ? "" : "; ") +
                               std::string("imported from ") + path.filename().string();
  return finish(std::move(imported), std::move(net), device);
}

} // namespace densa::models
