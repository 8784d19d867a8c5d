// SPDX-License-Identifier: Apache-2.0
#pragma once

// ADSL network (methods-spec §3.2-§3.4): the truncated ResNet-50 backbone, the attention map, the
// learner-partitioned embedding, per-learner normalisation, frozen BatchNorm, and the split of the
// last learner (Taylor importance, §3.4).
//
// Parameter names follow torchvision, so a torchvision resnet50 state_dict without layer4/fc
// loads by name under the prefix "backbone.": backbone.conv1, backbone.bn1,
// backbone.layer{1..N}.{i}.{conv1,bn1,conv2,bn2,conv3,bn3,downsample.0,downsample.1}. The
// attention convs are attention.layer{1,2,3} (the reference's AttentionLayer names), the embedding
// is embedding.{weight,bias}, and the learner partition is the int64 buffer "learner_of" [E].
//
// Initialisation: backbone convs Kaiming-normal (fan_out, ReLU gain), BN weight 1 and bias 0
// (torchvision); attention convs keep LibTorch's default Conv2d init (= PyTorch's, as in the
// reference); embedding weight Xavier-normal (gain 1) per learner slice, bias the default Linear
// init U(-1/√F, 1/√F) (reference `init_splitted`).

#include "densa/models/adsl_options.hpp"

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace densa::models {

/// torchvision's Bottleneck (v1.5: the stride sits on the 3x3 conv): conv1 1x1 (in -> w) + bn1 +
/// ReLU, conv2 3x3 stride s (w -> w) + bn2 + ReLU, conv3 1x1 (w -> 4w) + bn3, plus the identity
/// or `downsample` (0: conv 1x1 stride s, 1: BN) when the shape changes, then ReLU. No conv bias;
/// BN eps 1e-5, momentum 0.1.
class AdslBottleneckImpl : public torch::nn::Module {
public:
  AdslBottleneckImpl(int inChannels, int width, int stride);
  torch::Tensor forward(const torch::Tensor& x);

private:
  torch::nn::Conv2d m_conv1{nullptr};
  torch::nn::BatchNorm2d m_bn1{nullptr};
  torch::nn::Conv2d m_conv2{nullptr};
  torch::nn::BatchNorm2d m_bn2{nullptr};
  torch::nn::Conv2d m_conv3{nullptr};
  torch::nn::BatchNorm2d m_bn3{nullptr};
  torch::nn::Sequential m_downsample{nullptr}; ///< null when the identity fits
};

TORCH_MODULE(AdslBottleneck);

/// ResNet truncated after the last configured layer (layer3 for the paper): conv1 7x7/2 + bn1 +
/// ReLU + max-pool 3x3/2 (pad 1) + layer1..layerN (strides 1, 2, 2, ...). [N, C, H, W] ->
/// [N, 4 x widths.back(), H/16, W/16] for three layers (sizes rounded as the convolutions do).
class AdslBackboneImpl : public torch::nn::Module {
public:
  explicit AdslBackboneImpl(const AdslOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

private:
  torch::nn::Conv2d m_conv1{nullptr};
  torch::nn::BatchNorm2d m_bn1{nullptr};
  std::vector<torch::nn::Sequential> m_layers;
};

TORCH_MODULE(AdslBackbone);

/// The attention map (§3.2): conv3x3(F -> a0, pad 1) + ReLU, conv3x3(a0 -> a1, pad 1) + ReLU,
/// conv3x3(a1 -> 1, pad 1) + Sigmoid. Parameter names layer1, layer2, layer3.
class AdslAttentionImpl : public torch::nn::Module {
public:
  AdslAttentionImpl(int inChannels, const std::vector<int>& channels);
  torch::Tensor forward(const torch::Tensor& x);

private:
  torch::nn::Conv2d m_layer1{nullptr};
  torch::nn::Conv2d m_layer2{nullptr};
  torch::nn::Conv2d m_layer3{nullptr};
};

TORCH_MODULE(AdslAttention);

/// What AdslNet::forward returns.
struct AdslOutput {
  torch::Tensor embedding;   ///< [N, E]: each learner's dimensions L2-normalised separately
  torch::Tensor raw;         ///< [N, E]: the Linear output before normalisation
  torch::Tensor penultimate; ///< [N, F]: the pooled (and dropped-out) features, L2-normalised
  torch::Tensor attention;   ///< [N, 1, h, w]: the sigmoid attention map
};

/// The outcome of AdslNet::splitLastLearner.
struct AdslSplitResult {
  bool split = false; ///< a learner was added
  int keptDims = 0;   ///< dimensions the split learner keeps (n; 0 without a split)
  int newDims = 0;    ///< dimensions of the new learner (0 without a split)
  /// Embedding dimensions with v > 0.5, by v descending (ties: lower dimension first); filled
  /// whether or not the learner was split.
  std::vector<std::int64_t> important;
};

/// The ADSL network. Parameter groups (§3.6): backboneParameters() = backbone + attention,
/// embeddingParameters() = the embedding Linear.
class AdslNetImpl : public torch::nn::Module {
public:
  explicit AdslNetImpl(const AdslOptions& options);

  /// images [N, C, H, W] float, C = inChannels (or 1 when inChannels is 3: the grey image is
  /// repeated to RGB). Penultimate = L2-normalise(dropout(avgpool(F ⊙ A))), the embedding =
  /// Linear(dropout(avgpool(F ⊙ A))) normalised per learner.
  AdslOutput forward(const torch::Tensor& images);

  /// e[:, L_k] L2-normalised again (the slice a batch of cluster k trains, §3.3), [N, |L_k|].
  /// `embedding` [N, E] (normalised or raw).
  [[nodiscard]] torch::Tensor learnerEmbedding(const torch::Tensor& embedding, int k) const;

  /// The index set L_k of every learner, ascending dimensions; learner ids 0..K-1.
  [[nodiscard]] std::vector<std::vector<std::int64_t>> learnerNeurons() const;
  [[nodiscard]] int numLearners() const;

  /// DCML baseline partition: K contiguous slices of ceil(E / K) dimensions (the last one
  /// shorter), as the reference's `init_splitted`. Weights are not touched; call
  /// initialiseEmbedding() to re-initialise them per slice. Throws ModelError when K < 1 or a
  /// slice would be empty.
  void setEqualLearners(int k);
  /// Re-initialises the embedding Linear per learner slice (Xavier-normal gain 1 on that slice's
  /// rows, fresh bias U(-1/√F, 1/√F)); the constructor calls it with one learner.
  void initialiseEmbedding();

  /// §3.4: splits the most recent learner (the highest id). `importance` holds v (see
  /// taylorImportance) for that learner's dimensions in the order of learnerNeurons().back().
  /// Only when the learner owns > 10 dimensions and n = |{v > 0.5}| >= 5: the weight rows and
  /// biases of the important dimensions (by v descending) are gathered first and then scattered
  /// into the first n positions of the learner's index list (which stay with it); the remaining
  /// positions are re-initialised (Xavier-normal gain 1 over those rows, fresh bias) and become
  /// learner K. Works on the parameters' data under NoGradGuard: the parameter tensors (and so
  /// an optimiser's per-parameter state, e.g. Adam moments) stay the same objects.
  AdslSplitResult splitLastLearner(const torch::Tensor& importance);

  /// Keeps every BatchNorm in eval mode when options().freezeBatchNorm (their weights still
  /// train).
  void train(bool on = true) override;

  [[nodiscard]] std::vector<torch::Tensor> backboneParameters() const;
  [[nodiscard]] std::vector<torch::Tensor> embeddingParameters() const;

  [[nodiscard]] const AdslOptions& options() const { return m_options; }

  [[nodiscard]] AdslBackbone& backbone() { return m_backbone; }

  [[nodiscard]] AdslAttention& attention() { return m_attention; }

  [[nodiscard]] torch::nn::Linear& embedding() { return m_embedding; }

  /// The partition buffer [E] (int64 learner ids).
  [[nodiscard]] const torch::Tensor& learnerOf() const { return m_learnerOf; }

private:
  void freezeNorms();

  AdslOptions m_options;
  AdslBackbone m_backbone{nullptr};
  AdslAttention m_attention{nullptr};
  torch::nn::Linear m_embedding{nullptr};
  torch::Tensor m_learnerOf;
  std::vector<std::shared_ptr<torch::nn::Module>> m_norms;
};

TORCH_MODULE(AdslNet);

/// Taylor importance (§3.4) of D embedding dimensions from activations a and gradients g = ∂L/∂a,
/// both [N, D] (all samples of an epoch): s_j = mean_i(a_ij g_ij), v = |s| / ‖s‖₂, then min-max
/// rescaled to [0, 1]. Returns v [D] (float64 on the CPU). Guards: a zero ‖s‖ or a zero range
/// (all v equal) gives all zeros, so nothing is important (the reference divides by zero there).
[[nodiscard]] torch::Tensor taylorImportance(const torch::Tensor& activations,
                                             const torch::Tensor& gradients);

} // namespace densa::models
