// SPDX-License-Identifier: Apache-2.0
#pragma once

// DenseNet building blocks in 2D and 3D (methods-spec §1.5, §1.6): Caffe-DenseNet convention with
// each BN+Scale pair folded into one BatchNorm, encoder convolutions without bias.
// Tensor layout: [N, C, H, W] (Dim = 2) or [N, C, D, H, W] (Dim = 3).

#include "densa/models/model_options.hpp"
#include "densa/models/torch/inference.hpp"

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace densa::models {

/// Maps the spatial dimension to LibTorch's layer types.
template <int Dim>
struct NdLayers;

template <>
struct NdLayers<2> {
  using Conv = torch::nn::Conv2d;
  using BatchNorm = torch::nn::BatchNorm2d;
};

template <>
struct NdLayers<3> {
  using Conv = torch::nn::Conv3d;
  using BatchNorm = torch::nn::BatchNorm3d;
};

/// Epsilon and momentum (LibTorch convention) of a BatchNorm.
struct NormSettings {
  double eps = 1.1e-5;
  double momentum = 0.01;
};

/// A module holder for the templated blocks (TORCH_MODULE does not take templates).
template <class Impl>
class Holder : public torch::nn::ModuleHolder<Impl> {
public:
  using torch::nn::ModuleHolder<Impl>::ModuleHolder;
};

/// Dense layer: BN-ReLU -> 1x1 conv to bottleneck -> BN-ReLU -> 3x3 conv (zero-pad 1) to k ->
/// concatenate [input, new] on channels. Parameters: norm1, conv1, norm2, conv2.
template <int Dim>
class DenseLayerImpl : public torch::nn::Module {
public:
  DenseLayerImpl(int inChannels, int growthRate, int bottleneckWidth, NormSettings norm);
  /// [N, C, ...] -> [N, C + growthRate, ...]
  torch::Tensor forward(const torch::Tensor& x);
  /// Inference only: the growthRate new feature channels for input x (x not repeated).
  torch::Tensor newFeatures(const torch::Tensor& x);

private:
  FoldedConv m_fold1; // conv1 with norm2 folded in
  FoldedConv m_fold2; // conv2's weight in the input's layout
  typename NdLayers<Dim>::BatchNorm m_norm1{nullptr};
  typename NdLayers<Dim>::Conv m_conv1{nullptr};
  typename NdLayers<Dim>::BatchNorm m_norm2{nullptr};
  typename NdLayers<Dim>::Conv m_conv2{nullptr};
};

template <int Dim>
using DenseLayer = Holder<DenseLayerImpl<Dim>>;

/// Dense block of `layers` dense layers (layer1 ... layerN): C -> C + layers * growthRate.
template <int Dim>
class DenseBlockImpl : public torch::nn::Module {
public:
  DenseBlockImpl(
      int inChannels, int layers, int growthRate, int bottleneckWidth, NormSettings norm);
  torch::Tensor forward(const torch::Tensor& x);

  [[nodiscard]] int outChannels() const { return m_outChannels; }

private:
  std::vector<DenseLayer<Dim>> m_layers;
  int m_outChannels;
};

template <int Dim>
using DenseBlock = Holder<DenseBlockImpl<Dim>>;

/// Transition: BN-ReLU -> 1x1 conv to outChannels -> 2x2 average pool, stride 2 (in-plane only
/// in 3D: the depth is kept, §1.6). Parameters: norm, conv.
template <int Dim>
class TransitionImpl : public torch::nn::Module {
public:
  TransitionImpl(int inChannels, int outChannels, NormSettings norm);
  torch::Tensor forward(const torch::Tensor& x);

private:
  typename NdLayers<Dim>::BatchNorm m_norm{nullptr};
  typename NdLayers<Dim>::Conv m_conv{nullptr};
};

template <int Dim>
using Transition = Holder<TransitionImpl<Dim>>;

/// Settings of one decoder up-block.
struct UpBlockSettings {
  int inChannels = 0;
  int outChannels = 0;
  int skipChannels = 0; ///< 0: no sum-skip; != inChannels: a 1x1 projection "skip" (bias)
  int depthScale = 2;   ///< 3D only: x2 or x1 along depth (in-plane is always x2)
  Upsampling upsampling = Upsampling::Nearest;
  DecoderInit init = DecoderInit::Normal005;
  double dropout = 0.0; ///< before the BN
  NormSettings norm{1e-3, 0.01};
};

/// Decoder "upsampling layer": x2 upsample -> [+ skip] -> 3x3 conv (bias) -> [dropout] -> BN ->
/// ReLU. Parameters: [skip], conv, norm.
template <int Dim>
class UpBlockImpl : public torch::nn::Module {
public:
  explicit UpBlockImpl(const UpBlockSettings& settings);
  /// `skip` is ignored (may be undefined) when the block was built without a skip.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& skip = {});

private:
  /// Inference without a skip: nearest up-sampling and the convolution in one, on the
  /// low-resolution input (undefined where the direct oneDNN path is not available).
  torch::Tensor upsampledConvolution(const torch::Tensor& x,
                                     const std::vector<std::int64_t>& scale);

  FoldedConv m_fold; // conv with norm folded in
  std::mutex m_parityMutex;
  torch::Tensor m_paritySource;  // the folded weight m_parityWeights derive from (held)
  torch::Tensor m_parityWeights; // [parities, O, C, kernel...], see upsampledConvolution
  UpBlockSettings m_settings;
  typename NdLayers<Dim>::Conv m_skip{nullptr};
  typename NdLayers<Dim>::Conv m_conv{nullptr};
  torch::nn::Dropout m_dropout{nullptr};
  typename NdLayers<Dim>::BatchNorm m_norm{nullptr};
};

template <int Dim>
using UpBlock = Holder<UpBlockImpl<Dim>>;

/// `conv(x)`, except that on the CPU (float) it always takes oneDNN's convolution. LibTorch's own
/// choice falls back to its unfold+GEMM `slow_conv3d` for 3D inputs with batch 1 once
/// N*C*D*H <= 20480 (a 2D heuristic that ignores W): the deep, low-resolution layers of the 3D
/// DenseUNet, where that path ran at a fraction of oneDNN's speed (tests/bench/models_bench).
template <int Dim>
torch::Tensor convolve(typename NdLayers<Dim>::Conv& conv, const torch::Tensor& x);

/// The same with other weights and bias (undefined bias: none), e.g. from a FoldedConv.
template <int Dim>
torch::Tensor convolve(typename NdLayers<Dim>::Conv& conv,
                       const torch::Tensor& x,
                       const torch::Tensor& weight,
                       const torch::Tensor& bias);

/// Convolution followed by BatchNorm and ReLU. In inference mode (see inferenceMode) one
/// convolution with the BN folded into cached weights; otherwise the three modules in turn.
template <int Dim>
torch::Tensor convBnRelu(typename NdLayers<Dim>::Conv& conv,
                         typename NdLayers<Dim>::BatchNorm& bn,
                         FoldedConv& fold,
                         const torch::Tensor& x,
                         bool inference);

/// upsample(x, scale, mode) + addend, in one pass for nearest up-sampling (a broadcast sum over a
/// view of addend), which keeps addend's memory layout.
torch::Tensor upsampleAdd(const torch::Tensor& x,
                          const std::vector<std::int64_t>& scale,
                          Upsampling mode,
                          const torch::Tensor& addend);

/// op(x), computed in float for a bfloat16 CPU tensor (and cast back): LibTorch 1.13 has no
/// bfloat16 CPU kernels for max_pool3d and avg_pool3d.
torch::Tensor floatForBf16Cpu(const torch::Tensor& x,
                              const std::function<torch::Tensor(const torch::Tensor&)>& op);

/// Up-samples the spatial axes of x by `scale` ({H, W} or {D, H, W}) with nearest or (bi/tri)linear
/// interpolation (align_corners = false).
torch::Tensor upsample(const torch::Tensor& x,
                       const std::vector<std::int64_t>& scale,
                       Upsampling mode);

/// Keras' Glorot-uniform (fan_in = C_in * kernel volume, fan_out = C_out * kernel volume).
void glorotUniform(torch::Tensor& weight);

extern template class DenseLayerImpl<2>;
extern template class DenseLayerImpl<3>;
extern template class DenseBlockImpl<2>;
extern template class DenseBlockImpl<3>;
extern template class TransitionImpl<2>;
extern template class TransitionImpl<3>;
extern template class UpBlockImpl<2>;
extern template class UpBlockImpl<3>;

} // namespace densa::models
