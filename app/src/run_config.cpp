// SPDX-License-Identifier: Apache-2.0
#include "run_config.hpp"

#include "densa/io/atomic_file.hpp"
#include "densa/models/torch/distributed.hpp"

#include <torch/serialize.h>

#include <cmath>

namespace densa::app {

std::filesystem::path configRelative(const std::filesystem::path& file,
                                     const std::filesystem::path& path) {
  return path.is_relative() && !std::filesystem::exists(path) ? file.parent_path() / path : path;
}

std::vector<TrainDataset> parseTrainDatasets(const YAML::Node& list, const std::string& key) {
  std::vector<TrainDataset> out;
  for (const auto& d : list) {
    TrainDataset ds;
    ds.path = configValue<std::string>(d["path"], key + ".path");
    if (d["label_map"]) {
      std::map<int, int> m;
      for (const auto& kv : d["label_map"]) {
        m[configValue<int>(kv.first, key + ".label_map")] =
            configValue<int>(kv.second, key + ".label_map");
      }
      ds.labelMap = m;
    }
    ds.validationOnly =
        d["validation_only"] && configValue<bool>(d["validation_only"], key + ".validation_only");
    ds.trainOnly = d["train_only"] && configValue<bool>(d["train_only"], key + ".train_only");
    out.push_back(ds);
  }
  return out;
}

void emitTrainDatasets(YAML::Emitter& e, const std::vector<TrainDataset>& datasets) {
  e << YAML::BeginSeq;
  for (const auto& d : datasets) {
    e << YAML::BeginMap << YAML::Key << "path" << YAML::Value << d.path.string();
    if (d.labelMap) {
      e << YAML::Key << "label_map" << YAML::Value << YAML::Flow << *d.labelMap;
    }
    if (d.validationOnly) {
      e << YAML::Key << "validation_only" << YAML::Value << true;
    }
    if (d.trainOnly) {
      e << YAML::Key << "train_only" << YAML::Value << true;
    }
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;
}

namespace fs = std::filesystem;

void readConfig(const fs::path& file,
                const std::vector<std::string>& overrides,
                const std::function<void(const std::string&, const YAML::Node&)>& apply) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file.string());
  } catch (const YAML::Exception& e) {
    throw core::InputError(file, std::string("not a readable YAML config: ") + e.what());
  }
  if (!root.IsMap()) {
    throw core::InputError(file, "a config must be a YAML mapping");
  }
  for (const auto& kv : root) {
    apply(kv.first.as<std::string>(), kv.second);
  }
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos) {
      throw core::InvalidArgument("override '" + o + "': expected key=value");
    }
    apply(o.substr(0, eq), YAML::Load(o.substr(eq + 1)));
  }
}

void broadcastParameters(torch::nn::Module& net, models::DistributedContext& distributed) {
  std::vector<torch::Tensor> params;
  for (auto& p : net.parameters()) {
    params.push_back(p.data());
  }
  distributed.broadcast(params, 0);
}

bool optimiserStep(const torch::Tensor& loss,
                   torch::nn::Module& net,
                   torch::optim::Optimizer& optimizer,
                   models::DistributedContext* distributed) {
  float finite = std::isfinite(loss.item<double>()) ? 1.0F : 0.0F;
  if (distributed != nullptr) {
    auto f = torch::tensor({finite});
    distributed->allReduceMean({f});
    finite = f.item<float>();
  }
  const bool take = finite >= 1.0F;
  if (take) {
    loss.backward();
    if (distributed != nullptr) {
      std::vector<torch::Tensor> grads;
      for (auto& p : net.parameters()) {
        if (p.grad().defined()) {
          grads.push_back(p.grad());
        }
      }
      distributed->allReduceMean(grads);
    }
    optimizer.step();
  }
  for (auto& p : net.parameters()) {
    p.mutable_grad() = torch::Tensor();
  }
  return take;
}

void saveRunState(const fs::path& file,
                  torch::nn::Module& net,
                  torch::optim::Optimizer& optimizer,
                  std::int64_t step,
                  double bestScore) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model;
  torch::serialize::OutputArchive adam;
  net.save(model);
  optimizer.save(adam);
  archive.write("model", model);
  archive.write("optimizer", adam);
  archive.write("step", torch::tensor(step, torch::kInt64));
  archive.write("best_score", torch::tensor(bestScore, torch::kFloat64));
  io::writeAtomically(file, [&](const fs::path& tmp) { archive.save_to(tmp.string()); });
}

RunState loadRunState(const fs::path& file,
                      torch::nn::Module& net,
                      torch::optim::Optimizer& optimizer,
                      const torch::Device& device) {
  if (!fs::exists(file)) {
    throw core::InputError(file.parent_path(),
                           "holds no " + file.filename().string() + " to resume from");
  }
  RunState state;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(file.string(), device);
    torch::serialize::InputArchive model;
    torch::serialize::InputArchive adam;
    archive.read("model", model);
    archive.read("optimizer", adam);
    net.load(model);
    optimizer.load(adam);
    torch::Tensor t;
    archive.read("step", t);
    state.step = t.item<std::int64_t>();
    archive.read("best_score", t);
    state.bestScore = t.item<double>();
  } catch (const c10::Error& e) {
    throw core::InputError(file,
                           std::string("is not a usable run state: ") + e.what_without_backtrace());
  }
  return state;
}

} // namespace densa::app
