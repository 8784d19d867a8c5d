// SPDX-License-Identifier: Apache-2.0
#pragma once

// Parameter counts and compute cost of the model presets (`densa model info`). This header pulls
// in no LibTorch header; the figures come from a shape walk over the options.

#include "densa/models/model_options.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace densa::models {

/// One sub-network of a preset. FLOPs count 2 x multiply-accumulates of convolutions (bias,
/// BN, ReLU, pooling, up-sampling and concatenation are not counted).
struct SubnetworkInfo {
  std::string name;             ///< "net2d", "net3d", "fusion", "net" (coarse)
  std::int64_t parameters = 0;  ///< trainable parameters (BN running statistics excluded)
  double gflopsPerSlice = 0.0;  ///< per 512x512 slice (3D parts: an 8-slice window / 8)
  double gflopsPerWindow = 0.0; ///< per 8-slice 512x512 window (2D parts: 8 slices)
};

/// One preset of an architecture.
struct PresetInfo {
  std::string architecture;
  std::string preset;
  std::vector<SubnetworkInfo> subnetworks;
  std::int64_t parameters = 0;
  double gflopsPerSlice = 0.0;
  double gflopsPerWindow = 0.0;
};

/// Architectures `densa model info` knows: "hdenseunet", "dense-unet-2d", "dense-unet-3d",
/// "coarse-liver", "gemini", "gemini-unet", "adsl". GEMINI's sub-networks are "backbone",
/// "deformer", "res_head" and "seg_head" (those present), each costed for one forward pass (a
/// pretraining iteration runs the backbone three times, the deformer twice and the restoration head
/// once). A 3D GEMINI is costed on the 8 x 512 x 512 window (the backbone's zero-padding to 16
/// slices included), a 2D one per 512 x 512 slice. ADSL's sub-networks are "backbone", "attention"
/// and "embedding"; its "slice" is one image of inputSize x inputSize pixels (the preset's patch
/// size, e.g. 224 x 224 for "paper") and its "window" 8 such images; the embedding's
/// multiply-accumulates are counted like a 1 x 1 convolution.
[[nodiscard]] std::vector<std::string> modelInfoArchitectures();

/// The preset table of an architecture ("h-dense-unet" is accepted for "hdenseunet"); all presets
/// when `preset` is empty. Throws ModelError for an unknown architecture or preset.
[[nodiscard]] std::vector<PresetInfo> describeModel(std::string_view architecture,
                                                    std::optional<std::string_view> preset = {});

/// Multiply-accumulates and parameters of a 2D or 3D DenseUNet / the hybrid net for an input size,
/// exposed for tests and benchmarks. Spatial sizes: {H, W} (2D) or {D, H, W} (3D).
struct CostEstimate {
  std::int64_t parameters = 0;
  double macs = 0.0;
};

[[nodiscard]] CostEstimate denseUNetCost(const DenseUNetOptions& options,
                                         int dim,
                                         const std::vector<std::int64_t>& spatial);

/// The hybrid net on one [1, 1, D, H, W] window: net2d over the D slices, net3d, fusion head.
struct HDenseUNetCost {
  CostEstimate net2d;
  CostEstimate net3d;
  CostEstimate fusion;
};

/// GEMINI's sub-networks on one input of spatial size {H, W} or {D, H, W} (batch 1): the
/// backbone on the input zero-padded to multiples of 16, the deformer on the features padded to
/// multiples of 4, the heads at the input size. Absent heads cost nothing.
struct GeminiCost {
  CostEstimate backbone;
  CostEstimate deformer;
  CostEstimate restorationHead;
  CostEstimate segmentationHead;
};

[[nodiscard]] GeminiCost geminiCost(const GeminiOptions& options,
                                    const std::vector<std::int64_t>& spatial);
/// The transfer model: backbone and segmentation head (deformer and restoration head zero).
[[nodiscard]] GeminiCost geminiUNetCost(const GeminiUNetOptions& options,
                                        const std::vector<std::int64_t>& spatial);

/// ADSL on one [1, C, height, width] image: the truncated ResNet (conv1, bn1, layer1..layerN; BN
/// affine parameters counted, running statistics not), the attention convs (with bias) and the
/// embedding Linear (F x E + E).
struct AdslCost {
  CostEstimate backbone;
  CostEstimate attention;
  CostEstimate embedding;
};

[[nodiscard]] AdslCost adslCost(const AdslOptions& options,
                                std::int64_t height,
                                std::int64_t width);

[[nodiscard]] HDenseUNetCost hDenseUNetCost(const HDenseUNetOptions& options,
                                            std::int64_t depth,
                                            std::int64_t height,
                                            std::int64_t width);

} // namespace densa::models
