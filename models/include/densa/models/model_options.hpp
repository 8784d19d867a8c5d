// SPDX-License-Identifier: Apache-2.0
#pragma once

// Architecture options and presets of the H-DenseUNet family (methods-spec §1.5-§1.8) and the
// registry of every architecture (GEMINI's options are in gemini_options.hpp, ADSL's in
// adsl_options.hpp). This header pulls in no LibTorch header.

#include "densa/models/adsl_options.hpp"
#include "densa/models/gemini_options.hpp"

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace densa::models {

/// Decoder up-sampling: the reference (Keras UpSampling) is nearest-neighbour; the paper text says
/// bilinear. `Linear` means bilinear in 2D and trilinear in 3D (align_corners = false).
enum class Upsampling { Nearest, Linear };

/// Initialisation of the decoder's 3x3(x3) convolutions: the 2D reference uses Keras "normal"
/// (N(0, 0.05^2)), the 3D reference Keras' default Glorot-uniform.
enum class DecoderInit { Normal005, GlorotUniform };

/// One DenseUNet (2D or 3D; the dimension is the network's template parameter). The topology is
/// fixed: stem (7x7 conv s2 + 3x3 max-pool s2), four dense blocks with three transitions, five
/// up-blocks and a 1x1 classifier. Defaults are the paper's 2D DenseUNet-167 (§1.5).
struct DenseUNetOptions {
  int inChannels = 3;                          ///< 3 adjacent slices (2D) / image + maps (3D)
  int numClasses = 3;                          ///< background, liver, tumour
  int initFeatures = 96;                       ///< stem output channels
  int growthRate = 48;                         ///< k
  int bottleneckFactor = 4;                    ///< 1x1 bottleneck width = factor * k
  double compression = 0.5;                    ///< transition: floor(compression * C)
  std::vector<int> blockLayers{6, 12, 36, 24}; ///< four dense blocks
  std::vector<int> decoderChannels{768, 384, 96, 96, 64}; ///< up0..up4; the last = feature width
  bool skips = true; ///< UNet sum-skips (paper); false = released 2D code / 3D code
  Upsampling upsampling = Upsampling::Nearest;
  DecoderInit decoderInit = DecoderInit::Normal005;
  double decoderDropout = 0.3;  ///< dropout before the BN of up4 (2D reference); 0 = none
  double encoderBnEps = 1.1e-5; ///< Caffe-DenseNet BN(+Scale, folded) epsilon
  double decoderBnEps = 1e-3;   ///< Keras default epsilon (decoder, fusion head)
  double bnMomentum = 0.01;     ///< LibTorch convention; = 1 - Keras momentum 0.99
};

/// The 2D DenseUNet as a stand-alone model (stage 1 of training).
struct DenseUNet2dOptions : DenseUNetOptions {
  static constexpr std::string_view kId = "dense-unet-2d";
};

/// The 3D DenseUNet as a stand-alone model (its classifier output is unused by the hybrid net).
struct DenseUNet3dOptions : DenseUNetOptions {
  static constexpr std::string_view kId = "dense-unet-3d";
};

/// H-DenseUNet (§1.7): the 2D DenseUNet on every slice (with its neighbours), the 3D DenseUNet on
/// the volume concatenated with 250x the 2D logits, features summed, and a fusion head.
struct HDenseUNetOptions {
  static constexpr std::string_view kId = "hdenseunet";
  DenseUNetOptions net2d; ///< inChannels must equal sliceContext
  DenseUNetOptions net3d; ///< inChannels must equal 1 + net2d.numClasses
  int sliceContext = 3;   ///< slices per 2D input (i-1, i, i+1; edges duplicated)
  double autoContextScale = 250.0;
  double fusionDropout = 0.3; ///< 0.1 in the reference's 3dpart stage, 0.3 end-to-end
  int numClasses = 3;
};

/// Stage-0 coarse liver network (§1.8): a small 2D DenseUNet (liver vs background) run on slices
/// down-sampled by `downsample` (average pooling), its logits up-sampled bilinearly back.
struct CoarseLiverOptions {
  static constexpr std::string_view kId = "coarse-liver";
  DenseUNetOptions net;
  int downsample = 2;
};

/// Every architecture the registry can build; the checkpoint's model card names one.
using ModelOptions = std::variant<HDenseUNetOptions,
                                  DenseUNet2dOptions,
                                  DenseUNet3dOptions,
                                  CoarseLiverOptions,
                                  GeminiOptions,
                                  GeminiUNetOptions,
                                  AdslOptions>;

/// Registry id of the options' architecture ("hdenseunet", "dense-unet-2d", ..., "gemini",
/// "gemini-unet", "adsl").
[[nodiscard]] std::string_view architectureId(const ModelOptions& options);

/// Names of the presets, smallest last: "paper", "small", "tiny".
[[nodiscard]] std::vector<std::string> presetNames();

/// The 2D DenseUNet-167 of §1.5 (paper: skips on) and the 3D DenseUNet-65 of §1.6.
[[nodiscard]] DenseUNetOptions paperDenseUNet2d();
[[nodiscard]] DenseUNetOptions paperDenseUNet3d();

/// H-DenseUNet preset: "paper" is exact; "small" and "tiny" keep the topology with fewer layers and
/// channels. Throws ModelError for an unknown name.
[[nodiscard]] HDenseUNetOptions hDenseUNetPreset(std::string_view preset);

/// Coarse liver network preset ("paper" = "small": the small 2D DenseUNet, 2 classes, 2x down).
[[nodiscard]] CoarseLiverOptions coarseLiverPreset(std::string_view preset);

/// Options of any architecture by registry id and preset (throws ModelError). Registry ids:
/// hdenseunet, dense-unet-2d, dense-unet-3d, coarse-liver, gemini, gemini-unet, adsl.
[[nodiscard]] ModelOptions modelPreset(std::string_view architecture, std::string_view preset);

/// Throws ModelError when the options cannot form the fixed topology (block/decoder counts,
/// positive widths, 2D/3D compatibility of the hybrid net).
void validate(const DenseUNetOptions& options);
void validate(const HDenseUNetOptions& options);
void validate(const CoarseLiverOptions& options);

} // namespace densa::models
