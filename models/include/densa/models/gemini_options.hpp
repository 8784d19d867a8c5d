// SPDX-License-Identifier: Apache-2.0
#pragma once

// Architecture options and presets of GEMINI (dense contrastive pretraining with a homeomorphism
// prior, methods-spec §2.3-§2.5) and of its transfer model. This header pulls in no LibTorch
// header.

#include <string_view>
#include <vector>

namespace densa::models {

/// The `UNet_base` backbone of §2.3: a 4-level U-Net of "DoubleConv" blocks (conv3 + GroupNorm +
/// LeakyReLU, twice), max-pool down, (bi/tri)linear x2 up (align_corners = true), concatenation
/// skips [skip, up]. The input is zero-padded to a multiple of 16 per axis and the output cropped
/// back, so any size works. Output: the dense feature map, channels.back() channels at full
/// resolution.
struct GeminiBackboneOptions {
  int dims = 3;       ///< 3: [N, C, D, H, W]; 2: [N, C, H, W]
  int inChannels = 1; ///< image channels
  /// inc, down1-down4, up1-up4 (paper: 32, 64, 128, 256, 512, 256, 128, 64, 32).
  std::vector<int> channels{32, 64, 128, 256, 512, 256, 128, 64, 32};
  int groupChannels = 8;   ///< channels per GroupNorm group (groups = C / groupChannels)
  double leakySlope = 0.2; ///< LeakyReLU negative slope
};

/// The `res_conv` head of §2.5: conv3(F -> hidden) + GroupNorm(groups, hidden) + LeakyReLU +
/// conv1(hidden -> K). Paper: hidden 16, 4 groups (of 4 channels).
struct GeminiHeadOptions {
  int hiddenChannels = 16;
  int groups = 4;
};

/// GEMINI for pretraining (§2.2-§2.6): backbone + deformer (`UNet_shallow` + flow conv, §2.4) +
/// restoration head (K = 1, the MIP "fundament") + optional segmentation head (GEMINI-Semi).
struct GeminiOptions {
  static constexpr std::string_view kId = "gemini";
  GeminiBackboneOptions backbone;
  /// c1-c5 of the deformer trunk (paper: 32, 64, 64, 64, 32); its input is 2 x the feature width
  /// and it uses the backbone's groupChannels and leakySlope.
  std::vector<int> deformerChannels{32, 64, 64, 64, 32};
  GeminiHeadOptions head;
  bool restorationHead = true; ///< the K = 1 restoration head (GEMINI-MIP)
  int segmentationClasses = 0; ///< K of a softmax segmentation head (GEMINI-Semi); 0 = none
  /// false (reference): the deformer output is the displacement field. true: it is a stationary
  /// velocity field integrated by scaling and squaring (not the published method, §2.11.8).
  bool diffeomorphic = false;
  int integrationSteps = 7; ///< scaling-and-squaring steps when diffeomorphic
};

/// The transfer model for fine-tuning and inference: the same backbone (parameter names
/// "backbone.*", identical to a "gemini" checkpoint's) + a segmentation head with K classes
/// (softmax). The head has the §2.5 res_conv layout.
struct GeminiUNetOptions {
  static constexpr std::string_view kId = "gemini-unet";
  GeminiBackboneOptions backbone;
  GeminiHeadOptions head;
  int numClasses = 3; ///< K: background, liver, tumour
};

/// GEMINI presets. "paper" is §2.3/§2.4 exactly. "small" halves every backbone and deformer width
/// (16, 32, 64, 128, 256, 128, 64, 32, 16 / 16, 32, 32, 32, 16; 8 channels per group). "tiny"
/// quarters them (8, 16, 32, 64, 128, 64, 32, 16, 8 / 8, 16, 16, 16, 8) with 4 channels per
/// group, so that the 8-channel layers keep 2 groups. The head stays 16 wide with 4 groups in every
/// preset. Throws ModelError for an unknown name.
[[nodiscard]] GeminiOptions geminiPreset(std::string_view preset);

/// The transfer model of a preset: the preset's backbone and head, numClasses 3.
[[nodiscard]] GeminiUNetOptions geminiUNetPreset(std::string_view preset);

/// The transfer model for a pretrained GEMINI: its backbone and head settings, `numClasses`.
[[nodiscard]] GeminiUNetOptions transferOptions(const GeminiOptions& pretrained, int numClasses);

/// Throws ModelError when the options cannot form the topology: dims not 2 or 3, not 9 backbone
/// or 5 deformer widths, a width not a positive multiple of groupChannels, a head whose width is
/// not divisible by its groups, negative classes, integrationSteps < 0, leakySlope < 0.
void validate(const GeminiBackboneOptions& options);
void validate(const GeminiOptions& options);
void validate(const GeminiUNetOptions& options);

} // namespace densa::models
