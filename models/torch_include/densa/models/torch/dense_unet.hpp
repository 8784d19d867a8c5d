// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/models/model_options.hpp"
#include "densa/models/torch/blocks.hpp"

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

namespace densa::models {

/// Output of a DenseUNet: the last decoder features (X2d / X3d in §1.7) and the class logits.
struct DenseUNetOutput {
  torch::Tensor features; ///< [N, decoderChannels[4], (D,) H, W]
  torch::Tensor logits;   ///< [N, numClasses, (D,) H, W]; undefined without a classifier
};

/// Named stage outputs, in order: conv1, pool1, block1, trans1, block2, trans2, block3, trans3,
/// block4 (after its BN-ReLU), up0 ... up4, classifier (the rows of §1.5 / §1.6).
using StageOutputs = std::vector<std::pair<std::string, torch::Tensor>>;

/// DenseUNet in 2D (DenseUNet-167 of §1.5 with the paper preset) or 3D (DenseUNet-65 of §1.6).
///
/// Input [N, inChannels, H, W] (2D) or [N, inChannels, D, H, W] (3D): H and W multiples of 32, D a
/// multiple of 4 (the 3D stem and pool halve the depth; transitions keep it; up0-up2 scale depth
/// x1, up3-up4 x2). Output sizes equal input sizes.
///
/// Parameter names (state-dict keys, pinned by tests and used by the Python import):
/// conv0, norm0, block{1-4}.layer{i}.{norm1,conv1,norm2,conv2}, trans{1-3}.{norm,conv}, norm5,
/// up{0-4}.{skip,conv,norm} (skip only where a sum-skip needs a 1x1 projection), classifier.
template <int Dim>
class DenseUNetImpl : public torch::nn::Module {
public:
  /// Without the classifier (the hybrid net's 3D branch, whose logits are unused) forward()
  /// returns undefined logits.
  explicit DenseUNetImpl(const DenseUNetOptions& options, bool withClassifier = true);

  DenseUNetOutput forward(const torch::Tensor& x);
  /// As forward(), and appends each stage's output to `stages`.
  DenseUNetOutput forwardStages(const torch::Tensor& x, StageOutputs& stages);

  [[nodiscard]] const DenseUNetOptions& options() const { return m_options; }

  /// Channels of the stem and of the four dense-block outputs (the skip sources).
  [[nodiscard]] std::vector<int> encoderChannels() const { return m_encoderChannels; }

private:
  DenseUNetOutput run(const torch::Tensor& x, StageOutputs* stages);
  void checkInput(const torch::Tensor& x) const;

  DenseUNetOptions m_options;
  std::vector<int> m_encoderChannels;
  FoldedConv m_fold0; // conv0 with norm0 folded in (inference)
  typename NdLayers<Dim>::Conv m_conv0{nullptr};
  typename NdLayers<Dim>::BatchNorm m_norm0{nullptr};
  std::vector<DenseBlock<Dim>> m_blocks;
  std::vector<Transition<Dim>> m_transitions;
  typename NdLayers<Dim>::BatchNorm m_norm5{nullptr};
  std::vector<UpBlock<Dim>> m_up;
  typename NdLayers<Dim>::Conv m_classifier{nullptr};
};

using DenseUNet2dImpl = DenseUNetImpl<2>;
using DenseUNet3dImpl = DenseUNetImpl<3>;
TORCH_MODULE(DenseUNet2d);
TORCH_MODULE(DenseUNet3d);

extern template class DenseUNetImpl<2>;
extern template class DenseUNetImpl<3>;

} // namespace densa::models
