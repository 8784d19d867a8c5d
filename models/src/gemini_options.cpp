// SPDX-License-Identifier: Apache-2.0
#include "densa/models/gemini_options.hpp"

#include "densa/models/error.hpp"

#include <string>

namespace densa::models {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) {
    throw ModelError("invalid GEMINI options: " + what);
  }
}

std::vector<int> scaled(const std::vector<int>& widths, int divisor) {
  std::vector<int> out;
  out.reserve(widths.size());
  for (int w : widths) {
    out.push_back(w / divisor);
  }
  return out;
}

} // namespace

GeminiOptions geminiPreset(std::string_view preset) {
  GeminiOptions o;
  if (preset == "paper") {
    return o;
  }
  if (preset == "small") {
    o.backbone.channels = scaled(o.backbone.channels, 2);
    o.deformerChannels = scaled(o.deformerChannels, 2);
    return o;
  }
  if (preset == "tiny") {
    o.backbone.channels = scaled(o.backbone.channels, 4);
    o.deformerChannels = scaled(o.deformerChannels, 4);
    o.backbone.groupChannels = 4; // 8-channel layers: 2 groups rather than 1
    return o;
  }
  throw ModelError("unknown preset '" + std::string(preset) + "' (expected paper, small or tiny)");
}

GeminiUNetOptions geminiUNetPreset(std::string_view preset) {
  const auto pretrained = geminiPreset(preset);
  return transferOptions(pretrained, GeminiUNetOptions{}.numClasses);
}

GeminiUNetOptions transferOptions(const GeminiOptions& pretrained, int numClasses) {
  GeminiUNetOptions o;
  o.backbone = pretrained.backbone;
  o.head = pretrained.head;
  o.numClasses = numClasses;
  return o;
}

void validate(const GeminiBackboneOptions& o) {
  require(o.dims == 2 || o.dims == 3, "dims must be 2 or 3");
  require(o.inChannels > 0, "inChannels must be positive");
  require(o.channels.size() == 9, "exactly 9 backbone widths are required");
  require(o.groupChannels > 0, "groupChannels must be positive");
  for (int c : o.channels) {
    require(c > 0 && c % o.groupChannels == 0,
            "backbone width " + std::to_string(c) +
                " is not a positive multiple of groupChannels " + std::to_string(o.groupChannels));
  }
  require(o.leakySlope >= 0.0, "leakySlope must not be negative");
}

namespace {

void validateHead(const GeminiHeadOptions& h) {
  require(h.hiddenChannels > 0 && h.groups > 0 && h.hiddenChannels % h.groups == 0,
          "the head width must be a positive multiple of its GroupNorm groups");
}

} // namespace

void validate(const GeminiOptions& o) {
  validate(o.backbone);
  require(o.deformerChannels.size() == 5, "exactly 5 deformer widths are required");
  for (int c : o.deformerChannels) {
    require(c > 0 && c % o.backbone.groupChannels == 0,
            "deformer width " + std::to_string(c) +
                " is not a positive multiple of groupChannels " +
                std::to_string(o.backbone.groupChannels));
  }
  validateHead(o.head);
  require(o.segmentationClasses >= 0, "segmentationClasses must not be negative");
  require(o.integrationSteps >= 0 && o.integrationSteps <= 30,
          "integrationSteps must lie in [0, 30]");
}

void validate(const GeminiUNetOptions& o) {
  validate(o.backbone);
  validateHead(o.head);
  require(o.numClasses > 0, "numClasses must be positive");
}

} // namespace densa::models
