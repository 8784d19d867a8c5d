// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/adsl.hpp"

#include "densa/models/error.hpp"

#include <torch/nn/functional/normalization.h>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace densa::models {
namespace {

torch::nn::Conv2d backboneConv(int in, int out, int kernel, int stride, int padding) {
  torch::nn::Conv2d conv(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
  torch::NoGradGuard noGrad;
  // torchvision ResNet: kaiming_normal_(mode="fan_out", nonlinearity="relu").
  torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
  return conv;
}

torch::nn::BatchNorm2d batchNorm(int channels) {
  // eps 1e-5, momentum 0.1, weight 1, bias 0: LibTorch's defaults, as torchvision.
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels).eps(1e-5).momentum(0.1));
}

torch::nn::Conv2d attentionConv(int in, int out) {
  // LibTorch's default Conv2d init equals PyTorch's (the reference does not re-initialise).
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(1).padding(1).bias(true));
}

torch::Tensor longIndex(const std::vector<std::int64_t>& values, const torch::Device& device) {
  return torch::tensor(values, torch::dtype(torch::kLong)).to(device);
}

// Xavier-normal (gain 1) over a fresh [rows, F] block and the default Linear bias
// U(-1/√F, 1/√F), written into `rows` of the Linear (the reference builds a fresh
// Linear(F, |rows|) and copies its Xavier-initialised weight and its bias).
void reinitialiseRows(torch::nn::Linear& linear, const std::vector<std::int64_t>& rows) {
  if (rows.empty()) {
    return;
  }
  torch::NoGradGuard noGrad;
  auto& weight = linear->weight;
  auto& bias = linear->bias;
  const auto fanIn = weight.size(1);
  const auto count = static_cast<std::int64_t>(rows.size());
  auto block = torch::empty({count, fanIn}, weight.options());
  torch::nn::init::xavier_normal_(block, 1.0);
  const double bound = 1.0 / std::sqrt(static_cast<double>(fanIn));
  auto fresh = torch::empty({count}, bias.options()).uniform_(-bound, bound);
  const auto index = longIndex(rows, weight.device());
  weight.index_copy_(0, index, block);
  bias.index_copy_(0, index, fresh);
}

} // namespace

// ---- backbone ----------------------------------------------------------------------------------

AdslBottleneckImpl::AdslBottleneckImpl(int inChannels, int width, int stride)
    : m_conv1(register_module("conv1", backboneConv(inChannels, width, 1, 1, 0)))
    , m_bn1(register_module("bn1", batchNorm(width)))
    , m_conv2(register_module("conv2", backboneConv(width, width, 3, stride, 1)))
    , m_bn2(register_module("bn2", batchNorm(width)))
    , m_conv3(register_module("conv3", backboneConv(width, 4 * width, 1, 1, 0)))
    , m_bn3(register_module("bn3", batchNorm(4 * width))) {
  if (stride != 1 || inChannels != 4 * width) {
    torch::nn::Sequential downsample;
    downsample->push_back(backboneConv(inChannels, 4 * width, 1, stride, 0));
    downsample->push_back(batchNorm(4 * width));
    m_downsample = register_module("downsample", downsample);
  }
}

torch::Tensor AdslBottleneckImpl::forward(const torch::Tensor& x) {
  auto y = torch::relu(m_bn1(m_conv1(x)));
  y = torch::relu(m_bn2(m_conv2(y)));
  y = m_bn3(m_conv3(y));
  const auto identity = m_downsample ? m_downsample->forward(x) : x;
  return torch::relu(y + identity);
}

AdslBackboneImpl::AdslBackboneImpl(const AdslOptions& options)
    : m_conv1(
          register_module("conv1", backboneConv(options.inChannels, options.stemChannels, 7, 2, 3)))
    , m_bn1(register_module("bn1", batchNorm(options.stemChannels))) {
  validate(options);
  int inplanes = options.stemChannels;
  for (std::size_t layer = 0; layer < options.blocks.size(); ++layer) {
    torch::nn::Sequential blocks;
    const int width = options.widths[layer];
    for (int b = 0; b < options.blocks[layer]; ++b) {
      const int stride = (b == 0 && layer > 0) ? 2 : 1;
      blocks->push_back(AdslBottleneck(inplanes, width, stride));
      inplanes = 4 * width;
    }
    m_layers.push_back(register_module("layer" + std::to_string(layer + 1), blocks));
  }
}

torch::Tensor AdslBackboneImpl::forward(const torch::Tensor& x) {
  auto y = torch::relu(m_bn1(m_conv1(x)));
  y = torch::max_pool2d(y, {3, 3}, {2, 2}, {1, 1});
  for (auto& layer : m_layers) {
    y = layer->forward(y);
  }
  return y;
}

// ---- attention ---------------------------------------------------------------------------------

AdslAttentionImpl::AdslAttentionImpl(int inChannels, const std::vector<int>& channels) {
  if (channels.size() != 2) {
    throw ModelError("AdslAttention: exactly 2 hidden widths are required");
  }
  m_layer1 = register_module("layer1", attentionConv(inChannels, channels[0]));
  m_layer2 = register_module("layer2", attentionConv(channels[0], channels[1]));
  m_layer3 = register_module("layer3", attentionConv(channels[1], 1));
}

torch::Tensor AdslAttentionImpl::forward(const torch::Tensor& x) {
  auto y = torch::relu(m_layer1(x));
  y = torch::relu(m_layer2(y));
  return torch::sigmoid(m_layer3(y));
}

// ---- AdslNet -----------------------------------------------------------------------------------

AdslNetImpl::AdslNetImpl(const AdslOptions& options)
    : m_options(options) {
  validate(options);
  const int features = featureChannels(options);
  m_backbone = register_module("backbone", AdslBackbone(options));
  m_attention = register_module("attention", AdslAttention(features, options.attentionChannels));
  m_embedding = register_module(
      "embedding",
      torch::nn::Linear(torch::nn::LinearOptions(features, options.embeddingDim).bias(true)));
  m_learnerOf = register_buffer("learner_of",
                                torch::zeros({options.embeddingDim}, torch::dtype(torch::kLong)));
  for (const auto& item : named_modules("", false)) {
    if (dynamic_cast<torch::nn::BatchNorm2dImpl*>(item.value().get()) != nullptr) {
      m_norms.push_back(item.value());
    }
  }
  initialiseEmbedding();
  freezeNorms();
}

AdslOutput AdslNetImpl::forward(const torch::Tensor& images) {
  if (!images.defined() || images.dim() != 4 || !images.is_floating_point()) {
    throw ModelError("AdslNet: expected a floating-point input [N, C, H, W]");
  }
  auto x = images;
  if (x.size(1) == 1 && m_options.inChannels == 3) {
    x = x.repeat({1, 3, 1, 1}); // grey -> RGB, as the reference's loader
  } else if (x.size(1) != m_options.inChannels) {
    throw ModelError("AdslNet: expected " + std::to_string(m_options.inChannels) +
                     " input channels, got " + std::to_string(x.size(1)));
  }
  AdslOutput out;
  const auto features = m_backbone(x);
  out.attention = m_attention(features);
  auto pooled = torch::adaptive_avg_pool2d(features * out.attention, {1, 1}).flatten(1);
  pooled = torch::dropout(pooled, m_options.dropout, is_training());
  namespace F = torch::nn::functional;
  out.penultimate = F::normalize(pooled, F::NormalizeFuncOptions().p(2).dim(1));
  out.raw = m_embedding(pooled);
  // Per-learner L2 norms without reading the partition on the host: squares summed into the
  // learner-id columns of an [N, E] scratch (ids < E), then gathered back per dimension.
  // Equals F.normalize(x[:, L_k]) per learner (eps 1e-12).
  const auto learnerOf = m_learnerOf.to(out.raw.device(), torch::kLong);
  const auto sums = torch::zeros_like(out.raw).index_add(1, learnerOf, out.raw.pow(2));
  const auto norms = sums.index_select(1, learnerOf).sqrt().clamp_min(1e-12);
  out.embedding = out.raw / norms;
  return out;
}

torch::Tensor AdslNetImpl::learnerEmbedding(const torch::Tensor& embedding, int k) const {
  const auto neurons = learnerNeurons();
  if (k < 0 || k >= static_cast<int>(neurons.size())) {
    throw ModelError("AdslNet::learnerEmbedding: no learner " + std::to_string(k) +
                     " (K = " + std::to_string(neurons.size()) + ")");
  }
  if (!embedding.defined() || embedding.dim() != 2 || embedding.size(1) != m_options.embeddingDim) {
    throw ModelError("AdslNet::learnerEmbedding: expected an embedding [N, " +
                     std::to_string(m_options.embeddingDim) + "]");
  }
  const auto index = longIndex(neurons[static_cast<std::size_t>(k)], embedding.device());
  namespace F = torch::nn::functional;
  return F::normalize(embedding.index_select(1, index), F::NormalizeFuncOptions().p(2).dim(1));
}

std::vector<std::vector<std::int64_t>> AdslNetImpl::learnerNeurons() const {
  const auto ids = m_learnerOf.to(torch::kCPU, torch::kLong).contiguous();
  const auto* data = ids.data_ptr<std::int64_t>();
  const auto n = ids.numel();
  std::int64_t k = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    k = std::max(k, data[j] + 1);
  }
  std::vector<std::vector<std::int64_t>> neurons(static_cast<std::size_t>(k));
  for (std::int64_t j = 0; j < n; ++j) {
    if (data[j] < 0) {
      throw ModelError("AdslNet: negative learner id in learner_of");
    }
    neurons[static_cast<std::size_t>(data[j])].push_back(j);
  }
  return neurons;
}

int AdslNetImpl::numLearners() const {
  return static_cast<int>(m_learnerOf.max().item<std::int64_t>()) + 1;
}

void AdslNetImpl::setEqualLearners(int k) {
  const int e = m_options.embeddingDim;
  if (k < 1 || k > e) {
    throw ModelError("AdslNet::setEqualLearners: K must lie in [1, " + std::to_string(e) + "]");
  }
  const int slice = (e + k - 1) / k; // ceil(E / K), the reference's slice length
  if ((k - 1) * slice >= e) {
    throw ModelError("AdslNet::setEqualLearners: " + std::to_string(k) + " slices of " +
                     std::to_string(slice) +
                     " leave a learner without dimensions (E = " + std::to_string(e) + ")");
  }
  std::vector<std::int64_t> ids(static_cast<std::size_t>(e));
  for (int j = 0; j < e; ++j) {
    ids[static_cast<std::size_t>(j)] = j / slice;
  }
  torch::NoGradGuard noGrad;
  m_learnerOf.copy_(longIndex(ids, m_learnerOf.device()));
}

void AdslNetImpl::initialiseEmbedding() {
  for (const auto& rows : learnerNeurons()) {
    reinitialiseRows(m_embedding, rows);
  }
}

AdslSplitResult AdslNetImpl::splitLastLearner(const torch::Tensor& importance) {
  const auto neurons = learnerNeurons();
  const auto& last = neurons.back();
  const auto m = static_cast<std::int64_t>(last.size());
  if (!importance.defined() || importance.dim() != 1 || importance.numel() != m) {
    throw ModelError("AdslNet::splitLastLearner: expected one importance per dimension of the "
                     "last learner (" +
                     std::to_string(m) + ")");
  }
  const auto v = importance.to(torch::kCPU, torch::kDouble).contiguous();
  const auto* values = v.data_ptr<double>();
  std::vector<std::int64_t> positions;
  for (std::int64_t j = 0; j < m; ++j) {
    if (values[j] > 0.5) { // NaN is never important
      positions.push_back(j);
    }
  }
  std::stable_sort(positions.begin(), positions.end(), [values](std::int64_t a, std::int64_t b) {
    return values[a] > values[b];
  });
  AdslSplitResult result;
  for (auto p : positions) {
    result.important.push_back(last[static_cast<std::size_t>(p)]);
  }
  const auto n = static_cast<std::int64_t>(positions.size());
  if (m <= 10 || n < 5) {
    return result;
  }
  const int newId = static_cast<int>(neurons.size());
  const std::vector<std::int64_t> kept(last.begin(), last.begin() + n);
  const std::vector<std::int64_t> moved(last.begin() + n, last.end());
  {
    torch::NoGradGuard noGrad;
    auto& weight = m_embedding->weight;
    auto& bias = m_embedding->bias;
    const auto device = weight.device();
    const auto source = longIndex(result.important, device);
    const auto target = longIndex(kept, device);
    // Gather first (index_select copies), then scatter: no source row is overwritten before it
    // has been read, unlike the reference's in-place row-by-row copy.
    const auto rows = weight.index_select(0, source);
    const auto biases = bias.index_select(0, source);
    weight.index_copy_(0, target, rows);
    bias.index_copy_(0, target, biases);
    reinitialiseRows(m_embedding, moved);
    m_learnerOf.index_fill_(0, longIndex(moved, m_learnerOf.device()), newId);
  }
  result.split = true;
  result.keptDims = static_cast<int>(n);
  result.newDims = static_cast<int>(moved.size());
  return result;
}

void AdslNetImpl::train(bool on) {
  torch::nn::Module::train(on);
  freezeNorms();
}

void AdslNetImpl::freezeNorms() {
  if (!m_options.freezeBatchNorm) {
    return;
  }
  for (auto& norm : m_norms) {
    norm->eval();
  }
}

std::vector<torch::Tensor> AdslNetImpl::backboneParameters() const {
  auto out = m_backbone->parameters();
  for (const auto& p : m_attention->parameters()) {
    out.push_back(p);
  }
  return out;
}

std::vector<torch::Tensor> AdslNetImpl::embeddingParameters() const {
  return m_embedding->parameters();
}

torch::Tensor taylorImportance(const torch::Tensor& activations, const torch::Tensor& gradients) {
  if (!activations.defined() || !gradients.defined() || activations.dim() != 2 ||
      activations.sizes() != gradients.sizes() || activations.size(0) == 0) {
    throw ModelError("taylorImportance: expected activations and gradients of one shape [N, D], "
                     "N > 0");
  }
  torch::NoGradGuard noGrad;
  const auto a = activations.detach().to(torch::kCPU, torch::kDouble);
  const auto g = gradients.detach().to(torch::kCPU, torch::kDouble);
  const auto s = (a * g).mean(0);
  const double norm = s.norm().item<double>();
  if (!(norm > 0.0) || !std::isfinite(norm)) {
    return torch::zeros_like(s);
  }
  const auto v = s.abs() / norm;
  const double low = v.min().item<double>();
  const double high = v.max().item<double>();
  if (!(high > low)) {
    return torch::zeros_like(v);
  }
  return (v - low) / (high - low);
}

} // namespace densa::models
