// SPDX-License-Identifier: Apache-2.0
#include "densa/models/error.hpp"
#include "densa/models/torch/training.hpp"

#include <ATen/Context.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <torch/serialize.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <numbers>
#include <optional>
#include <sstream>
#include <system_error>
#include <utility>

namespace densa::models {
namespace {

constexpr const char* kStateFormat = "densa-trainer-state";
constexpr std::int64_t kStateVersion = 1;

enum class StageKind { TwoD, Coarse, ThreeDPart, EndToEnd };

StageKind parseStage(const std::string& stage) {
  if (stage == "2d") {
    return StageKind::TwoD;
  }
  if (stage == "coarse") {
    return StageKind::Coarse;
  }
  if (stage == "3dpart") {
    return StageKind::ThreeDPart;
  }
  if (stage == "end2end") {
    return StageKind::EndToEnd;
  }
  throw ModelError("trainer: unknown stage '" + stage +
                   "' (expected coarse, 2d, 3dpart or end2end)");
}

bool hybridStage(StageKind kind) {
  return kind == StageKind::ThreeDPart || kind == StageKind::EndToEnd;
}

void validateOptions(const TrainerOptions& o) {
  if (o.optimizer != "sgd" && o.optimizer != "adam") {
    throw ModelError("trainer: unknown optimiser '" + o.optimizer + "' (expected sgd or adam)");
  }
  if (o.schedule != "constant" && o.schedule != "poly" && o.schedule != "cosine") {
    throw ModelError("trainer: unknown schedule '" + o.schedule +
                     "' (expected constant, poly or cosine)");
  }
  if (!(o.learningRate > 0.0) || !std::isfinite(o.learningRate)) {
    throw ModelError("trainer: the learning rate must be positive");
  }
  if (o.momentum < 0.0 || o.momentum >= 1.0) {
    throw ModelError("trainer: momentum must be in [0, 1)");
  }
  if (o.optimizer == "sgd" && o.nesterov && o.momentum <= 0.0) {
    throw ModelError("trainer: Nesterov SGD needs a positive momentum");
  }
  if (o.weightDecay < 0.0) {
    throw ModelError("trainer: weight decay must not be negative");
  }
  if (o.totalSteps < 1 || o.warmupSteps < 0 || o.warmupSteps > o.totalSteps) {
    throw ModelError("trainer: need totalSteps >= 1 and 0 <= warmupSteps <= totalSteps");
  }
}

bool isBatchNorm(const torch::nn::Module& m) {
  return dynamic_cast<const torch::nn::BatchNorm2dImpl*>(&m) != nullptr ||
         dynamic_cast<const torch::nn::BatchNorm3dImpl*>(&m) != nullptr;
}

bool startsWith(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

std::string what(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) {
    return c10->what_without_backtrace();
  }
  return e.what();
}

// Writes `bytes` to a temporary sibling of `path` and renames it into place.
void writeAtomically(const std::filesystem::path& path, const std::vector<char>& bytes) {
  auto temporary = path;
  temporary += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(temporary, ignored);
      throw ModelError("cannot write trainer state '" + temporary.string() + "'");
    }
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw ModelError("cannot rename '" + temporary.string() + "' to '" + path.string() +
                     "': " + ec.message());
  }
}

std::vector<char> readAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ModelError("cannot open trainer state '" + path.string() + "'");
  }
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Name prefixes of the sub-networks two architectures can share (for setInitialWeightsFrom).
std::map<std::string, std::string> bodyPrefixes(std::string_view architecture) {
  if (architecture == HDenseUNetOptions::kId) {
    return {{"2d", "net2d."}, {"3d", "net3d."}};
  }
  if (architecture == DenseUNet2dOptions::kId) {
    return {{"2d", ""}};
  }
  if (architecture == DenseUNet3dOptions::kId) {
    return {{"3d", ""}};
  }
  if (architecture == CoarseLiverOptions::kId) {
    return {{"2d", "net."}};
  }
  return {};
}

} // namespace

double scheduledLearningRate(const TrainerOptions& options, std::int64_t step) {
  validateOptions(options);
  if (step < 0) {
    throw ModelError("scheduledLearningRate: negative step");
  }
  const double base = options.learningRate;
  if (step < options.warmupSteps) {
    return base * static_cast<double>(step + 1) / static_cast<double>(options.warmupSteps);
  }
  if (options.schedule == "constant") {
    return base;
  }
  const auto decaySteps = std::max<std::int64_t>(1, options.totalSteps - options.warmupSteps);
  const double t = std::clamp(
      static_cast<double>(step - options.warmupSteps) / static_cast<double>(decaySteps), 0.0, 1.0);
  if (options.schedule == "poly") {
    return base * std::pow(1.0 - t, 0.9);
  }
  return base * 0.5 * (1.0 + std::cos(std::numbers::pi * t)); // cosine
}

struct Trainer::State {
  AnyNet net{HDenseUNet{nullptr}};
  ModelCard card;
  TrainerOptions options;
  torch::Device device{torch::kCPU};
  std::shared_ptr<DistributedContext> distributed;
  StageKind kind = StageKind::TwoD;
  std::shared_ptr<torch::nn::Module> module;
  std::int64_t numClasses = 0;
  std::function<torch::Tensor(const torch::Tensor&)> logits;
  std::vector<std::pair<std::string, torch::Tensor>> trainable;
  std::vector<std::shared_ptr<torch::nn::Module>> inferenceNorms; // eval() after every train()
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  SegmentationLossOptions loss;
  std::int64_t step = 0;

  [[nodiscard]] bool parallel() const { return distributed && distributed->worldSize() > 1; }

  void setTrainMode() {
    module->train(true); // HDenseUNet keeps a frozen 2D branch in eval mode
    for (auto& norm : inferenceNorms) {
      norm->eval();
    }
  }

  [[nodiscard]] std::vector<torch::Tensor> buffers() const {
    std::vector<torch::Tensor> out;
    for (const auto& b : module->named_buffers(true)) {
      out.push_back(b.value());
    }
    return out;
  }

  void checkInput(const torch::Tensor& input, const char* where) const {
    const bool hybrid = hybridStage(kind);
    if (!input.defined() || input.dim() != (hybrid ? 5 : 4) || (hybrid && input.size(1) != 1)) {
      throw ModelError(std::string("trainer ") + where + ": stage '" + options.stage +
                       "' expects input " + (hybrid ? "[N, 1, D, H, W]" : "[B, C, H, W]"));
    }
    if (!input.is_floating_point()) {
      throw ModelError(std::string("trainer ") + where + ": the input must be floating point");
    }
  }

  void checkTarget(const torch::Tensor& input, const torch::Tensor& target) const {
    const bool hybrid = hybridStage(kind);
    if (!target.defined() || target.dim() != input.dim() - 1 || target.size(0) != input.size(0) ||
        target.sizes().slice(1) != input.sizes().slice(2)) {
      throw ModelError("trainer step: stage '" + options.stage + "' expects the target " +
                       (hybrid ? "[N, D, H, W]" : "[B, H, W]") +
                       " with the input's batch and spatial size");
    }
    if (target.scalar_type() != torch::kLong) {
      throw ModelError("trainer step: the target must be int64 class indices");
    }
    const auto low = target.min().item<std::int64_t>();
    const auto high = target.max().item<std::int64_t>();
    if (low < 0 || high >= numClasses) {
      throw ModelError("trainer step: target labels must be in [0, " + std::to_string(numClasses) +
                       "), got [" + std::to_string(low) + ", " + std::to_string(high) + "]");
    }
  }
};

Trainer::Trainer(AnyNet net,
                 ModelCard card,
                 TrainerOptions options,
                 torch::Device device,
                 std::shared_ptr<DistributedContext> distributed)
    : m_state(std::make_unique<State>()) {
  auto& s = *m_state;
  validateOptions(options);
  s.kind = parseStage(options.stage);
  s.net = std::move(net);
  s.card = std::move(card);
  s.options = std::move(options);
  s.device = device;
  s.distributed = std::move(distributed);
  s.module = moduleOf(s.net);
  s.module->to(device);

  auto* hybrid = std::get_if<HDenseUNet>(&s.net);
  std::shared_ptr<torch::nn::Module> trained = s.module; // whose parameters the optimiser sees
  std::string trainedPrefix;
  switch (s.kind) {
  case StageKind::TwoD:
    if (hybrid != nullptr) {
      auto h = *hybrid;
      h->freeze2d(false);
      trained = h->net2d().ptr();
      trainedPrefix = "net2d.";
      s.numClasses = h->options().net2d.numClasses;
      s.logits = [h](const torch::Tensor& x) mutable {
        return h->forward2d(x).logits;
      };
    } else if (const auto* plain = std::get_if<DenseUNet2d>(&s.net)) {
      auto n = *plain;
      s.numClasses = n->options().numClasses;
      s.logits = [n](const torch::Tensor& x) mutable {
        return n->forward(x).logits;
      };
    } else {
      throw ModelError("trainer: stage '2d' trains an hdenseunet or a dense-unet-2d, not " +
                       std::string(architectureId(optionsOf(s.net))));
    }
    break;
  case StageKind::Coarse:
    if (const auto* coarse = std::get_if<CoarseLiverNet>(&s.net)) {
      auto c = *coarse;
      s.numClasses = c->options().net.numClasses;
      s.logits = [c](const torch::Tensor& x) mutable {
        return c->forward(x);
      };
    } else {
      throw ModelError("trainer: stage 'coarse' trains a coarse-liver net, not " +
                       std::string(architectureId(optionsOf(s.net))));
    }
    break;
  case StageKind::ThreeDPart:
  case StageKind::EndToEnd:
    if (hybrid == nullptr) {
      throw ModelError("trainer: stage '" + s.options.stage + "' trains an hdenseunet, not " +
                       std::string(architectureId(optionsOf(s.net))));
    }
    {
      auto h = *hybrid;
      s.numClasses = h->options().numClasses;
      s.logits = [h](const torch::Tensor& x) mutable {
        return h->forward(x).logits;
      };
      h->freeze2d(s.kind == StageKind::ThreeDPart);
    }
    break;
  }

  // BatchNorms in inference mode: the reference's end-to-end freezing (§1.10), or all of them.
  for (const auto& item : s.module->named_modules("", false)) {
    if (!isBatchNorm(*item.value())) {
      continue;
    }
    const auto& name = item.key();
    const bool referenceFrozen = s.kind == StageKind::EndToEnd &&
                                 (startsWith(name, "net2d.") || startsWith(name, "net3d.block") ||
                                  startsWith(name, "net3d.trans"));
    if (referenceFrozen) {
      for (auto& p : item.value()->parameters()) {
        p.set_requires_grad(false);
      }
    }
    if (referenceFrozen || s.options.batchNormInference) {
      s.inferenceNorms.push_back(item.value());
    }
  }

  for (const auto& p : trained->named_parameters(true)) {
    if (p.value().requires_grad()) {
      s.trainable.emplace_back(trainedPrefix + p.key(), p.value());
    }
  }
  if (s.trainable.empty()) {
    throw ModelError("trainer: stage '" + s.options.stage + "' leaves no parameter to train");
  }
  std::vector<torch::Tensor> params;
  params.reserve(s.trainable.size());
  for (const auto& [name, p] : s.trainable) {
    params.push_back(p);
  }
  const auto& o = s.options;
  if (o.optimizer == "sgd") {
    s.optimizer = std::make_unique<torch::optim::SGD>(params,
                                                      torch::optim::SGDOptions(o.learningRate)
                                                          .momentum(o.momentum)
                                                          .nesterov(o.nesterov)
                                                          .weight_decay(o.weightDecay));
  } else {
    s.optimizer =
        std::make_unique<torch::optim::Adam>(params,
                                             torch::optim::AdamOptions(o.learningRate)
                                                 .betas(std::make_tuple(o.momentum, 0.999))
                                                 .weight_decay(o.weightDecay));
  }

  s.loss = o.loss;
  s.loss.crossEntropy.excludeEdgeSlices = hybridStage(s.kind);
  s.loss.dice.excludeEdgeSlices = hybridStage(s.kind);
  const std::vector<double> referenceWeights = WeightedCrossEntropyOptions{}.classWeights;
  if (s.numClasses == 2 && s.loss.crossEntropy.classWeights == referenceWeights) {
    s.loss.crossEntropy.classWeights = {1.0, 1.0};
  }
  if (static_cast<std::int64_t>(s.loss.crossEntropy.classWeights.size()) != s.numClasses) {
    throw ModelError("trainer: " + std::to_string(s.loss.crossEntropy.classWeights.size()) +
                     " class weights for a " + std::to_string(s.numClasses) + "-class network");
  }

  if (s.parallel()) {
    std::vector<torch::Tensor> all;
    for (const auto& p : s.module->parameters(true)) {
      all.push_back(p);
    }
    for (auto& b : s.buffers()) {
      all.push_back(b);
    }
    s.distributed->broadcast(all, 0);
  }
}

Trainer::~Trainer() = default;
Trainer::Trainer(Trainer&&) noexcept = default;
Trainer& Trainer::operator=(Trainer&&) noexcept = default;

StepResult Trainer::step(const torch::Tensor& inputIn, const torch::Tensor& targetIn) {
  auto& s = *m_state;
  s.checkInput(inputIn, "step");
  const auto input = inputIn.to(s.device);
  const auto target = targetIn.defined() ? targetIn.to(s.device) : targetIn;
  s.checkTarget(input, target);

  const double lr = scheduledLearningRate(s.options, s.step);
  for (auto& group : s.optimizer->param_groups()) {
    group.options().set_lr(lr);
  }
  s.setTrainMode();
  if (s.parallel()) {
    s.distributed->broadcast(s.buffers(), 0); // BN statistics follow rank 0 (PyTorch DDP)
  }
  s.optimizer->zero_grad();
  const auto loss = segmentationLoss(s.logits(input), target, s.loss);
  loss.backward();
  auto reported = loss.detach().reshape({1}).clone();
  if (s.parallel()) {
    std::vector<torch::Tensor> grads;
    for (const auto& [name, p] : s.trainable) {
      if (p.grad().defined()) {
        grads.push_back(p.grad());
      }
    }
    grads.push_back(reported);
    s.distributed->allReduceMean(grads);
  }
  s.optimizer->step();
  ++s.step;
  return {reported.item<double>(), lr, s.step};
}

torch::Tensor Trainer::predictProbabilities(const torch::Tensor& input) {
  auto& s = *m_state;
  s.checkInput(input, "predictProbabilities");
  torch::NoGradGuard noGrad;
  s.module->eval();
  return torch::softmax(s.logits(input.to(s.device)), 1);
}

void Trainer::saveState(const std::filesystem::path& path) const {
  const auto& s = *m_state;
  try {
    c10::impl::GenericDict state(c10::StringType::get(), c10::AnyType::get());
    state.insert(std::string("format"), std::string(kStateFormat));
    state.insert(std::string("version"), kStateVersion);
    state.insert(std::string("architecture"), std::string(architectureId(optionsOf(s.net))));
    state.insert(std::string("stage"), s.options.stage);
    state.insert(std::string("optimizer"), s.options.optimizer);
    state.insert(std::string("step"), s.step);

    c10::Dict<std::string, torch::Tensor> weights;
    for (const auto& [name, tensor] : stateDict(*s.module)) {
      weights.insert(name, tensor.detach().to(torch::kCPU).contiguous().clone());
    }
    state.insert(std::string("weights"), weights);

    torch::serialize::OutputArchive archive;
    s.optimizer->save(archive);
    std::ostringstream stream;
    archive.save_to(stream);
    const std::string bytes = stream.str();
    auto optimizerBytes = torch::empty({static_cast<std::int64_t>(bytes.size())}, torch::kUInt8);
    std::memcpy(optimizerBytes.data_ptr(), bytes.data(), bytes.size());
    state.insert(std::string("optimizer_state"), optimizerBytes);

    auto cpu = at::globalContext().defaultGenerator(torch::kCPU);
    {
      std::lock_guard<std::mutex> lock(cpu.mutex());
      state.insert(std::string("rng_cpu"), cpu.get_state());
    }
    if (s.device.is_cuda()) {
      auto cuda = at::globalContext().defaultGenerator(s.device);
      std::lock_guard<std::mutex> lock(cuda.mutex());
      state.insert(std::string("rng_cuda"), cuda.get_state());
    }
    writeAtomically(path, torch::pickle_save(state));
  } catch (const ModelError&) {
    throw;
  } catch (const std::exception& e) {
    throw ModelError("cannot save the trainer state to '" + path.string() + "': " + what(e));
  }
}

void Trainer::loadState(const std::filesystem::path& path) {
  auto& s = *m_state;
  const auto source = "trainer state '" + path.string() + "'";
  c10::IValue loaded;
  try {
    loaded = torch::pickle_load(readAll(path));
  } catch (const ModelError&) {
    throw;
  } catch (const std::exception& e) {
    throw ModelError(source + " is not a Densa trainer state: " + what(e));
  }
  if (!loaded.isGenericDict()) {
    throw ModelError(source + " is not a Densa trainer state");
  }
  const auto dict = loaded.toGenericDict();
  const auto field = [&](const char* key) -> c10::IValue {
    const auto it = dict.find(std::string(key));
    if (it == dict.end()) {
      throw ModelError(source + " lacks '" + key + "'");
    }
    return it->value();
  };
  const auto text = [&](const char* key) {
    const auto v = field(key);
    if (!v.isString()) {
      throw ModelError(source + ": '" + key + "' is not a string");
    }
    return v.toStringRef();
  };
  if (dict.find(std::string("format")) == dict.end() || text("format") != kStateFormat) {
    throw ModelError(source + " is not a Densa trainer state");
  }
  if (!field("version").isInt() || field("version").toInt() > kStateVersion) {
    throw ModelError(source + " was written by a newer Densa");
  }
  const std::string architecture(architectureId(optionsOf(s.net)));
  const auto expect = [&](const char* key, const std::string& ours) {
    const auto theirs = text(key);
    if (theirs != ours) {
      throw ModelError(source + " has " + key + " '" + theirs + "', this trainer '" + ours + "'");
    }
  };
  expect("architecture", architecture);
  expect("stage", s.options.stage);
  expect("optimizer", s.options.optimizer);

  std::map<std::string, torch::Tensor> weights;
  for (const auto& entry : field("weights").toGenericDict()) {
    weights.emplace(entry.key().toStringRef(), entry.value().toTensor());
  }
  loadStateDict(*s.module, weights, path.string());

  try {
    const auto bytes = field("optimizer_state").toTensor().contiguous();
    std::istringstream stream(std::string(static_cast<const char*>(bytes.data_ptr()),
                                          static_cast<std::size_t>(bytes.numel())));
    torch::serialize::InputArchive archive;
    archive.load_from(stream, s.device);
    s.optimizer->load(archive);
  } catch (const std::exception& e) {
    throw ModelError(source + ": cannot restore the optimiser state: " + what(e));
  }

  s.step = field("step").toInt();
  auto cpu = at::globalContext().defaultGenerator(torch::kCPU);
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_state(field("rng_cpu").toTensor());
  }
  if (s.device.is_cuda()) {
    const auto it = dict.find(std::string("rng_cuda"));
    if (it != dict.end()) {
      auto cuda = at::globalContext().defaultGenerator(s.device);
      std::lock_guard<std::mutex> lock(cuda.mutex());
      cuda.set_state(it->value().toTensor());
    }
  }
}

WeightTransfer Trainer::setInitialWeightsFrom(const std::filesystem::path& checkpoint) {
  auto& s = *m_state;
  const auto previous = loadCheckpoint(checkpoint);
  const auto sourceState = stateDict(*moduleOf(previous.net));
  const std::string sourceArch(architectureId(optionsOf(previous.net)));
  const std::string targetArch(architectureId(optionsOf(s.net)));

  // target name -> source name
  const auto sourceName = [&](const std::string& name) -> std::optional<std::string> {
    if (sourceArch == targetArch) {
      return name;
    }
    const auto from = bodyPrefixes(sourceArch);
    for (const auto& [body, prefix] : bodyPrefixes(targetArch)) {
      const auto it = from.find(body);
      if (it != from.end() && startsWith(name, prefix)) {
        return it->second + name.substr(prefix.size());
      }
    }
    return std::nullopt;
  };

  WeightTransfer report;
  torch::NoGradGuard noGrad;
  for (auto& [name, tensor] : stateDict(*s.module)) {
    const auto mapped = sourceName(name);
    const auto it = mapped ? sourceState.find(*mapped) : sourceState.end();
    if (it == sourceState.end()) {
      report.notFound.push_back(name);
    } else if (it->second.sizes() != tensor.sizes()) {
      report.shapeMismatch.push_back(name);
    } else {
      tensor.copy_(it->second);
      report.loaded.push_back(name);
    }
  }
  if (report.loaded.empty()) {
    throw ModelError("checkpoint '" + checkpoint.string() + "' (" + sourceArch +
                     ") has no parameter that matches this " + targetArch + " by name and shape");
  }
  if (s.parallel()) {
    std::vector<torch::Tensor> all;
    for (auto& [name, tensor] : stateDict(*s.module)) {
      all.push_back(tensor);
    }
    s.distributed->broadcast(all, 0);
  }
  return report;
}

void Trainer::exportCheckpoint(const std::filesystem::path& path, ModelCard card) const {
  if (!isMainRank()) {
    return;
  }
  if (card.provenance.trainingStage.empty() || card.provenance.trainingStage == "untrained") {
    card.provenance.trainingStage = m_state->options.stage;
  }
  saveCheckpoint(m_state->net, std::move(card), path);
}

void Trainer::exportCheckpoint(const std::filesystem::path& path) const {
  exportCheckpoint(path, m_state->card);
}

const AnyNet& Trainer::net() const {
  return m_state->net;
}

const TrainerOptions& Trainer::options() const {
  return m_state->options;
}

const torch::Device& Trainer::device() const {
  return m_state->device;
}

std::int64_t Trainer::stepCount() const {
  return m_state->step;
}

std::vector<std::string> Trainer::trainableParameterNames() const {
  std::vector<std::string> names;
  for (const auto& [name, p] : m_state->trainable) {
    names.push_back(name);
  }
  return names;
}

bool Trainer::isMainRank() const {
  return !m_state->distributed || m_state->distributed->rank() == 0;
}

} // namespace densa::models
