// SPDX-License-Identifier: Apache-2.0
#pragma once

// GEMINI networks (methods-spec §2.3-§2.5): the UNet_base backbone, the deformer, the res_conv
// heads, the pretraining model GeminiNet and the transfer model GeminiUNet. The spatial dimension
// (2 or 3) is an option, not a template parameter: one class serves [N, C, H, W] and
// [N, C, D, H, W]. Every convolution is Kaiming-normal initialised (fan_in, gain √2, as PyTorch's
// kaiming_normal_ default) with LibTorch's default bias; GroupNorm weight 1, bias 0.

#include "densa/models/gemini_options.hpp"
#include "densa/models/torch/gemini_ops.hpp"

#include <torch/nn/module.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace densa::models {

struct LoadedModel;

/// Convolution whose spatial dimension (2 or 3) is chosen at run time; kernel k, stride 1, zero
/// padding k/2, with bias. Parameters: weight [out, in, k, k(, k)], bias [out] (the names and
/// shapes of torch::nn::Conv2d/Conv3d).
class ConvNdImpl : public torch::nn::Module {
public:
  ConvNdImpl(int dims, int inChannels, int outChannels, int kernel);
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight;
  torch::Tensor bias;

private:
  int m_dims;
  int m_kernel;
};

TORCH_MODULE(ConvNd);

/// "OneConv": conv3 -> GroupNorm(C / groupChannels) -> LeakyReLU. Parameters: conv, norm.
class GeminiConvBlockImpl : public torch::nn::Module {
public:
  GeminiConvBlockImpl(
      int dims, int inChannels, int outChannels, int groupChannels, double leakySlope);
  torch::Tensor forward(const torch::Tensor& x);

private:
  ConvNd m_conv{nullptr};
  torch::nn::GroupNorm m_norm{nullptr};
  double m_slope;
};

TORCH_MODULE(GeminiConvBlock);

/// "DoubleConv": two OneConv blocks. Parameters: conv1, norm1, conv2, norm2.
class GeminiDoubleConvImpl : public torch::nn::Module {
public:
  GeminiDoubleConvImpl(
      int dims, int inChannels, int outChannels, int groupChannels, double leakySlope);
  torch::Tensor forward(const torch::Tensor& x);

private:
  ConvNd m_conv1{nullptr};
  torch::nn::GroupNorm m_norm1{nullptr};
  ConvNd m_conv2{nullptr};
  torch::nn::GroupNorm m_norm2{nullptr};
  double m_slope;
};

TORCH_MODULE(GeminiDoubleConv);

/// Zero-pads the spatial axes of x to multiples of `multiple`, ⌊d/2⌋ before and the rest after
/// (d = the padding of that axis); `before` receives the leading pad per axis for cropping.
[[nodiscard]] torch::Tensor padToMultiple(const torch::Tensor& x,
                                          std::int64_t multiple,
                                          std::vector<std::int64_t>& before);
/// Crops the spatial axes of x to `sizes`, starting at `before`.
[[nodiscard]] torch::Tensor cropSpatial(const torch::Tensor& x,
                                        const std::vector<std::int64_t>& before,
                                        const std::vector<std::int64_t>& sizes);
/// x2 (bi/tri)linear up-sampling with align_corners = true.
[[nodiscard]] torch::Tensor upsampleLinear2x(const torch::Tensor& x);
/// 2 x 2 (x 2) max pooling, stride 2.
[[nodiscard]] torch::Tensor maxPool2x(const torch::Tensor& x);

/// UNet_base (§2.3): [N, inChannels, ...S] (any S) -> dense features [N, channels[8], ...S].
/// Parameter names: inc, down1-down4, up1-up4, each {conv1, norm1, conv2, norm2}.
class UNetBaseImpl : public torch::nn::Module {
public:
  explicit UNetBaseImpl(const GeminiBackboneOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

  [[nodiscard]] const GeminiBackboneOptions& options() const { return m_options; }

private:
  GeminiBackboneOptions m_options;
  std::vector<GeminiDoubleConv> m_down; // inc, down1 ... down4
  std::vector<GeminiDoubleConv> m_up;   // up1 ... up4
};

TORCH_MODULE(UNetBase);

/// The deformer of §2.4 (UNet_shallow + flow conv): [N, 2F, ...S] (cat[f_moving, f_fixed]) ->
/// [N, n_dim, ...S], the raw output (a displacement field in voxel units, channel order (d, h, w),
/// or a velocity field for the diffeomorphic option). The input is zero-padded to multiples of 4
/// and the output cropped back. Parameter names: c1-c5 {conv, norm}, flow.
class GeminiDeformerImpl : public torch::nn::Module {
public:
  GeminiDeformerImpl(int dims,
                     int inChannels,
                     const std::vector<int>& channels,
                     int groupChannels,
                     double leakySlope);
  torch::Tensor forward(const torch::Tensor& x);

private:
  int m_dims;
  std::vector<GeminiConvBlock> m_blocks; // c1 ... c5
  ConvNd m_flow{nullptr};
};

TORCH_MODULE(GeminiDeformer);

/// The res_conv head of §2.5: conv3(F -> hidden) + GroupNorm(groups) + LeakyReLU + conv1(hidden ->
/// K). Raw output (no softmax). Parameter names: conv1, norm, conv2.
class GeminiHeadImpl : public torch::nn::Module {
public:
  GeminiHeadImpl(int dims,
                 int inChannels,
                 const GeminiHeadOptions& options,
                 int outChannels,
                 double leakySlope);
  torch::Tensor forward(const torch::Tensor& x);

private:
  ConvNd m_conv1{nullptr};
  torch::nn::GroupNorm m_norm{nullptr};
  ConvNd m_conv2{nullptr};
  double m_slope;
};

TORCH_MODULE(GeminiHead);

/// The alignment forward pass of a pair (A, B): f_A, f_B, φ_AB = deformer(cat[f_A, f_B]) and
/// φ_BA = deformer(cat[f_B, f_A]) ("warp A by φ_AB" lands on B's grid).
struct GeminiPairOutput {
  torch::Tensor featuresA;
  torch::Tensor featuresB;
  torch::Tensor flowAB;
  torch::Tensor flowBA;
};

/// GEMINI for pretraining: backbone, deformer, restoration head (K = inChannels, i.e. 1 as in the
/// paper), optional segmentation head (K classes). Parameter names: backbone.*, deformer.*,
/// res_head.*, seg_head.*.
class GeminiNetImpl : public torch::nn::Module {
public:
  explicit GeminiNetImpl(const GeminiOptions& options);

  /// Dense features f = N_θ(x).
  torch::Tensor features(const torch::Tensor& x);
  /// φ mapping `moving` onto `fixed`'s grid: deformer(cat[fMoving, fFixed]); integrated by
  /// scaling and squaring when options().diffeomorphic.
  torch::Tensor flow(const torch::Tensor& fMoving, const torch::Tensor& fFixed);
  /// f_A, f_B, φ_AB, φ_BA (A and B run through the backbone as one batch [A; B], the two
  /// deformer inputs likewise: per item the same as separate calls of features() and flow()).
  GeminiPairOutput forward(const torch::Tensor& a, const torch::Tensor& b);
  /// Restoration R(N_θ(x)) (throws ModelError without a restoration head).
  torch::Tensor restore(const torch::Tensor& x);
  /// Segmentation logits (throws ModelError without a segmentation head); softmax = probabilities.
  torch::Tensor segment(const torch::Tensor& x);

  [[nodiscard]] const GeminiOptions& options() const { return m_options; }

  [[nodiscard]] UNetBase& backbone() { return m_backbone; }

  [[nodiscard]] GeminiDeformer& deformer() { return m_deformer; }

  /// Null holders when absent.
  [[nodiscard]] GeminiHead& restorationHead() { return m_restorationHead; }

  [[nodiscard]] GeminiHead& segmentationHead() { return m_segmentationHead; }

private:
  GeminiOptions m_options;
  UNetBase m_backbone{nullptr};
  GeminiDeformer m_deformer{nullptr};
  GeminiHead m_restorationHead{nullptr};
  GeminiHead m_segmentationHead{nullptr};
};

TORCH_MODULE(GeminiNet);

/// The transfer model: backbone + segmentation head (softmax over K classes). Parameter names:
/// backbone.* (identical to GeminiNet's), seg_head.*.
class GeminiUNetImpl : public torch::nn::Module {
public:
  explicit GeminiUNetImpl(const GeminiUNetOptions& options);

  /// Logits [N, K, ...S].
  torch::Tensor forward(const torch::Tensor& x);
  /// softmax(forward(x)) over the classes.
  torch::Tensor probabilities(const torch::Tensor& x);
  /// Dense features of the backbone.
  torch::Tensor features(const torch::Tensor& x);

  [[nodiscard]] const GeminiUNetOptions& options() const { return m_options; }

  [[nodiscard]] UNetBase& backbone() { return m_backbone; }

  [[nodiscard]] GeminiHead& segmentationHead() { return m_head; }

private:
  GeminiUNetOptions m_options;
  UNetBase m_backbone{nullptr};
  GeminiHead m_head{nullptr};
};

TORCH_MODULE(GeminiUNet);

/// Copies the backbone weights of a pretrained net into `target` (every "backbone.*" parameter
/// and buffer, on target's device). The backbone options (dims, inChannels, channels,
/// groupChannels) must agree; throws ModelError naming the difference.
void loadBackboneFrom(GeminiUNet& target, GeminiNet& source);
void loadBackboneFrom(GeminiUNet& target, GeminiUNet& source);
/// The same from a loaded "gemini" or "gemini-unet" checkpoint (throws ModelError for another
/// architecture).
void loadBackboneFrom(GeminiUNet& target, const LoadedModel& source);

} // namespace densa::models
