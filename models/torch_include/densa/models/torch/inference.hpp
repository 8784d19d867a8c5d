// SPDX-License-Identifier: Apache-2.0
#pragma once

// Inference-only fast paths of the DenseNet blocks (eval mode, autograd off). They compute the
// same function as the training graph, in fewer memory passes:
//  - a convolution followed by BatchNorm runs as one convolution with the BN folded into its
//    weights and bias (cached, recomputed when a source tensor changes);
//  - BatchNorm + ReLU in front of a convolution runs as one pass on the CPU (bnRelu);
//  - a dense block appends each layer's features to one preallocated buffer instead of
//    concatenating all features again after every layer.
// Training always takes the plain module graph.

#include <torch/nn/modules/batchnorm.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace densa::models {

/// Switches the fast paths (including the oneDNN routing of `convolve` and the one-pass
/// up-sample-and-add) on (default) or off for the whole process; off reproduces the plain module
/// graph, for benchmarks (models_bench's forward_plain/*) and for debugging.
void setInferenceFastPaths(bool on);
[[nodiscard]] bool inferenceFastPaths();

/// True when `module` may take the inference fast paths: they are on, eval mode, autograd off.
[[nodiscard]] bool inferenceMode(const torch::nn::Module& module);

/// Per-channel affine form of an inference BatchNorm: y = x * scale + shift.
struct ChannelAffine {
  torch::Tensor scale; ///< [C]
  torch::Tensor shift; ///< [C]
};

/// Computed in float whatever the module's dtype (a bfloat16 model keeps its folding exact).
template <class BatchNormHolder>
[[nodiscard]] ChannelAffine channelAffine(const BatchNormHolder& bn) {
  const auto f = [](const torch::Tensor& t) {
    return t.to(torch::kFloat);
  };
  const auto scale = f(bn->weight) * torch::rsqrt(f(bn->running_var) + bn->options.eps());
  return {scale, f(bn->bias) - f(bn->running_mean) * scale};
}

/// relu(x * scale + shift) per channel of x ([N, C, ...]). On the CPU for float tensors that are
/// channel-planar (N, C, spatial contiguous) or channels-last (channels contiguous per pixel, any
/// pixel stride), one pass writing a compact tensor of the same layout; otherwise generic ops.
[[nodiscard]] torch::Tensor bnRelu(const torch::Tensor& x, const ChannelAffine& affine);

/// Cached weight and bias of a convolution with a following inference BatchNorm folded in:
/// w' = w * scale (per output channel), b' = b * scale + shift.
class FoldedConv {
public:
  /// `sources`: the tensors the folded pair derives from (conv weight and bias, BN parameters and
  /// running statistics); the pair is rebuilt when any of them was replaced or modified.
  /// `weight`'s layout is kept, or made channels-last when `channelsLast`. Without `affine` the
  /// pair is just the (re-laid-out) weight and bias.
  std::pair<torch::Tensor, torch::Tensor> get(const std::vector<torch::Tensor>& sources,
                                              bool channelsLast,
                                              const std::function<ChannelAffine()>& affine,
                                              const torch::Tensor& weight,
                                              const torch::Tensor& bias);

private:
  std::mutex m_mutex;
  std::vector<std::pair<const void*, std::int64_t>> m_key;
  std::vector<c10::Storage> m_storages;
  bool m_channelsLast = false;
  torch::Tensor m_weight;
  torch::Tensor m_bias;
};

} // namespace densa::models
