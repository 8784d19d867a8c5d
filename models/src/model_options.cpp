// SPDX-License-Identifier: Apache-2.0
#include "densa/models/model_options.hpp"

#include "densa/models/error.hpp"

#include <string>
#include <type_traits>

namespace densa::models {
namespace {

DenseUNetOptions net3dDefaults() {
  DenseUNetOptions o;
  o.inChannels = 4;
  o.skips = false;
  o.decoderInit = DecoderInit::GlorotUniform;
  o.decoderDropout = 0.0;
  return o;
}

// "small": the topology of the paper with about a tenth of its parameters (CPU work).
HDenseUNetOptions smallPreset() {
  HDenseUNetOptions o;
  o.net2d.initFeatures = 48;
  o.net2d.growthRate = 24;
  o.net2d.blockLayers = {3, 6, 12, 8}; // blocks 120, 204, 390, 387 channels
  o.net2d.decoderChannels = {204, 120, 48, 48, 32};
  o.net3d = net3dDefaults();
  o.net3d.initFeatures = 32;
  o.net3d.growthRate = 16;
  o.net3d.blockLayers = {2, 2, 6, 4}; // blocks 64, 64, 128, 128 channels
  o.net3d.decoderChannels = {128, 64, 64, 32, 32};
  return o;
}

// "tiny": one layer per block and single-digit widths, for unit tests.
HDenseUNetOptions tinyPreset() {
  HDenseUNetOptions o;
  o.net2d.initFeatures = 8;
  o.net2d.growthRate = 4;
  o.net2d.blockLayers = {1, 1, 1, 1}; // blocks 12, 10, 9, 8 channels
  o.net2d.decoderChannels = {10, 12, 8, 8, 8};
  o.net3d = net3dDefaults();
  o.net3d.initFeatures = 8;
  o.net3d.growthRate = 4;
  o.net3d.blockLayers = {1, 1, 1, 1};
  o.net3d.decoderChannels = {8, 10, 12, 8, 8};
  return o;
}

void require(bool ok, const std::string& what) {
  if (!ok) {
    throw ModelError("invalid model options: " + what);
  }
}

} // namespace

std::string_view architectureId(const ModelOptions& options) {
  return std::visit([](const auto& o) { return std::remove_cvref_t<decltype(o)>::kId; }, options);
}

std::vector<std::string> presetNames() {
  return {"paper", "small", "tiny"};
}

DenseUNetOptions paperDenseUNet2d() {
  return DenseUNetOptions{};
}

DenseUNetOptions paperDenseUNet3d() {
  DenseUNetOptions o = net3dDefaults();
  o.growthRate = 32;
  o.blockLayers = {3, 4, 12, 8};
  o.decoderChannels = {504, 224, 192, 96, 64};
  return o;
}

HDenseUNetOptions hDenseUNetPreset(std::string_view preset) {
  if (preset == "paper") {
    HDenseUNetOptions o;
    o.net2d = paperDenseUNet2d();
    o.net3d = paperDenseUNet3d();
    return o;
  }
  if (preset == "small") {
    return smallPreset();
  }
  if (preset == "tiny") {
    return tinyPreset();
  }
  throw ModelError("unknown preset '" + std::string(preset) + "' (expected paper, small or tiny)");
}

CoarseLiverOptions coarseLiverPreset(std::string_view preset) {
  CoarseLiverOptions o;
  o.net =
      hDenseUNetPreset(preset == "tiny" ? "tiny" : (preset == "paper" ? "small" : preset)).net2d;
  o.net.numClasses = 2;
  o.net.skips = true;
  return o;
}

ModelOptions modelPreset(std::string_view architecture, std::string_view preset) {
  if (architecture == HDenseUNetOptions::kId) {
    return hDenseUNetPreset(preset);
  }
  if (architecture == DenseUNet2dOptions::kId) {
    return DenseUNet2dOptions{hDenseUNetPreset(preset).net2d};
  }
  if (architecture == DenseUNet3dOptions::kId) {
    DenseUNet3dOptions o{hDenseUNetPreset(preset).net3d};
    return o;
  }
  if (architecture == CoarseLiverOptions::kId) {
    return coarseLiverPreset(preset);
  }
  if (architecture == GeminiOptions::kId) {
    return geminiPreset(preset);
  }
  if (architecture == GeminiUNetOptions::kId) {
    return geminiUNetPreset(preset);
  }
  if (architecture == AdslOptions::kId) {
    return adslPreset(preset);
  }
  throw ModelError("unknown architecture '" + std::string(architecture) +
                   "' (expected hdenseunet, dense-unet-2d, dense-unet-3d, coarse-liver, gemini, "
                   "gemini-unet or adsl)");
}

void validate(const DenseUNetOptions& o) {
  require(o.inChannels > 0 && o.numClasses > 0, "channel counts must be positive");
  require(o.initFeatures > 0 && o.growthRate > 0 && o.bottleneckFactor > 0,
          "widths must be positive");
  require(o.compression > 0.0 && o.compression <= 1.0, "compression must lie in (0, 1]");
  require(o.blockLayers.size() == 4, "exactly 4 dense blocks are required");
  require(o.decoderChannels.size() == 5, "exactly 5 decoder widths are required");
  for (int n : o.blockLayers) {
    require(n > 0, "every dense block needs at least one layer");
  }
  for (int c : o.decoderChannels) {
    require(c > 0, "decoder widths must be positive");
  }
  require(o.decoderDropout >= 0.0 && o.decoderDropout < 1.0, "dropout must lie in [0, 1)");
}

void validate(const HDenseUNetOptions& o) {
  validate(o.net2d);
  validate(o.net3d);
  require(o.sliceContext >= 1 && o.sliceContext % 2 == 1, "sliceContext must be odd");
  require(o.net2d.inChannels == o.sliceContext, "net2d.inChannels must equal sliceContext");
  require(o.net3d.inChannels == 1 + o.net2d.numClasses,
          "net3d.inChannels must equal 1 + net2d.numClasses (image + auto-context maps)");
  require(o.net2d.decoderChannels.back() == o.net3d.decoderChannels.back(),
          "2D and 3D feature widths (last decoder widths) must match for the fusion sum");
  require(o.numClasses > 0, "numClasses must be positive");
  require(o.fusionDropout >= 0.0 && o.fusionDropout < 1.0, "fusionDropout must lie in [0, 1)");
}

void validate(const CoarseLiverOptions& o) {
  validate(o.net);
  require(o.downsample >= 1, "downsample must be >= 1");
}

} // namespace densa::models
