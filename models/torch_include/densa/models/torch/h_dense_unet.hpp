// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/models/model_options.hpp"
#include "densa/models/torch/dense_unet.hpp"

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>

namespace densa::models {

/// [N, C, D, H, W] -> [N*D, C*sliceContext, H, W]: for every slice d (batch row n*D + d) the slices
/// d-r ... d+r (r = sliceContext/2) of every channel, offset-major; beyond the ends the edge slice
/// is duplicated (slice 0 -> (s0, s0, s1)), never zero-padded (§1.4).
[[nodiscard]] torch::Tensor slicesToBatch(const torch::Tensor& volume, int sliceContext);

/// [N*D, C, H, W] -> [N, C, D, H, W], the inverse restacking of per-slice outputs.
[[nodiscard]] torch::Tensor batchToSlices(const torch::Tensor& slices,
                                          std::int64_t batch,
                                          std::int64_t depth);

/// Outputs of H-DenseUNet.
struct HDenseUNetOutput {
  torch::Tensor logits;   ///< fused logits yH [N, numClasses, D, H, W]
  torch::Tensor logits2d; ///< the 2D branch's logits restacked, [N, net2d.numClasses, D, H, W]
};

/// H-DenseUNet (§1.7). Input [N, 1, D, H, W] (mean-subtracted HU; D a multiple of 4, H and W
/// multiples of 32):
///   I2d = slicesToBatch(I); (X2d, y2d) = net2d(I2d), restacked with batchToSlices;
///   X3d = net3d(cat[I, 250 * y2d]).features (raw logits as auto-context);
///   yH  = classifier(ReLU(BN(Dropout(conv3x3x3(X3d + X2d))))).
/// Parameter names: net2d.*, net3d.* (see DenseUNetImpl), fusion_conv, fusion_norm, classifier.
class HDenseUNetImpl : public torch::nn::Module {
public:
  explicit HDenseUNetImpl(const HDenseUNetOptions& options);

  HDenseUNetOutput forward(const torch::Tensor& volume);
  /// The 2D stage alone (training stage 1): [B, sliceContext, H, W] -> features, logits.
  DenseUNetOutput forward2d(const torch::Tensor& slices);
  /// The 3D branch and fusion head on precomputed 2D outputs (inference reuses each slice's 2D
  /// output across overlapping windows): volume [N, 1, D, H, W], features2d [N, F, D, H, W],
  /// logits2d [N, net2d.numClasses, D, H, W] -> fused logits [N, numClasses, D, H, W].
  /// forward(v) == fuse(v, restacked forward2d outputs of v).
  torch::Tensor fuse(const torch::Tensor& volume,
                     const torch::Tensor& features2d,
                     const torch::Tensor& logits2d);

  /// Stage 2 ("3dpart"): freezes the 2D branch (no gradients, BN in inference mode even when the
  /// rest trains); false unfreezes it.
  void freeze2d(bool frozen = true);

  [[nodiscard]] bool frozen2d() const { return m_frozen2d; }

  void train(bool on = true) override;

  [[nodiscard]] const HDenseUNetOptions& options() const { return m_options; }

  [[nodiscard]] DenseUNet2d& net2d() { return m_net2d; }

  [[nodiscard]] DenseUNet3d& net3d() { return m_net3d; }

private:
  HDenseUNetOptions m_options;
  bool m_frozen2d = false;
  DenseUNet2d m_net2d{nullptr};
  DenseUNet3d m_net3d{nullptr};
  FoldedConv m_foldFusion; // fusion_conv with fusion_norm folded in (inference)
  torch::nn::Conv3d m_fusionConv{nullptr};
  torch::nn::Dropout m_fusionDropout{nullptr};
  torch::nn::BatchNorm3d m_fusionNorm{nullptr};
  torch::nn::Conv3d m_classifier{nullptr};
};

TORCH_MODULE(HDenseUNet);

/// Stage-0 coarse liver network (§1.8, see models/README.md): [B, 3, H, W] slices ->
/// [B, 2, H, W] liver logits, computed on slices average-pooled by `downsample` and up-sampled
/// bilinearly. H and W must be multiples of 32 * downsample. Parameter names: net.*.
class CoarseLiverNetImpl : public torch::nn::Module {
public:
  explicit CoarseLiverNetImpl(const CoarseLiverOptions& options);
  torch::Tensor forward(const torch::Tensor& slices);

  [[nodiscard]] const CoarseLiverOptions& options() const { return m_options; }

private:
  CoarseLiverOptions m_options;
  DenseUNet2d m_net{nullptr};
};

TORCH_MODULE(CoarseLiverNet);

} // namespace densa::models
