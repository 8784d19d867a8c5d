// SPDX-License-Identifier: Apache-2.0
#pragma once

// Architecture options and presets of ADSL, attention-based dynamic subspace learners
// (methods-spec §3.2). This header pulls in no LibTorch header.

#include <string_view>
#include <vector>

namespace densa::models {

/// ADSL (§3.2): a ResNet-50 truncated after layer3 (torchvision layout: conv1 7x7/2 + BN + ReLU +
/// max-pool 3x3/2, bottleneck layers with strides 1, 2, 2), a sigmoid attention map gating the
/// features, global average pooling, dropout and a linear embedding whose dimensions are
/// partitioned among K learners (each learner's slice L2-normalised separately). Defaults are the
/// paper's network.
struct AdslOptions {
  static constexpr std::string_view kId = "adsl";
  /// Input channels. The paper converts grey images to RGB (3); forward() repeats a 1-channel
  /// input when inChannels is 3.
  int inChannels = 3;
  int stemChannels = 64;                 ///< conv1 7x7/2 + bn1 + ReLU + max-pool 3x3/2
  std::vector<int> blocks{3, 4, 6};      ///< bottlenecks in layer1..layerN (layer4 removed)
  std::vector<int> widths{64, 128, 256}; ///< bottleneck widths; a block outputs 4 x width
  /// Attention convs 3x3: F -> a0 -> a1 -> 1 (+ ReLU, ReLU, Sigmoid). The reference uses F/8 and
  /// F/32 (128, 32 for F = 1024).
  std::vector<int> attentionChannels{128, 32};
  int embeddingDim = 128;
  double dropout = 0.01; ///< on the pooled features
  /// Informative: the training/evaluation patch size in pixels (costing in `densa model info`);
  /// the network accepts any size with at least one feature pixel.
  int inputSize = 224;
  /// Reference: every BatchNorm stays in eval mode (running statistics never update); their
  /// affine weights still train.
  bool freezeBatchNorm = true;
};

/// ADSL presets. "paper": §3.2 exactly (ResNet-50 to layer3, 1024 features, 224 x 224 inputs,
/// 3 channels). "small": widths 16-32-64 (256 features), blocks 2-2-2, stem 16, attention 64-16,
/// inputs 96 x 96. "tiny": widths 8-16-32 (128 features), blocks 1-1-1, stem 8, attention 32-8,
/// inputs 64 x 64. small and tiny take 1 channel (CT). Embedding (128), dropout and loss are the
/// paper's in every preset. Throws ModelError for an unknown name.
[[nodiscard]] AdslOptions adslPreset(std::string_view preset);

/// Throws ModelError when the options cannot form the topology: non-positive channels, widths or
/// sizes, blocks and widths of different (or zero) lengths, not exactly 2 attention widths,
/// dropout outside [0, 1).
void validate(const AdslOptions& options);

/// Channels of the backbone's output: 4 x widths.back() (1024 for the paper).
[[nodiscard]] int featureChannels(const AdslOptions& options);

} // namespace densa::models
