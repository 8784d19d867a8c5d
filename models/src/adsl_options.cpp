// SPDX-License-Identifier: Apache-2.0
#include "densa/models/adsl_options.hpp"

#include "densa/models/error.hpp"

#include <string>

namespace densa::models {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) {
    throw ModelError("invalid ADSL options: " + what);
  }
}

} // namespace

AdslOptions adslPreset(std::string_view preset) {
  AdslOptions o;
  if (preset == "paper") {
    return o;
  }
  if (preset == "small") {
    o.inChannels = 1;
    o.stemChannels = 16;
    o.blocks = {2, 2, 2};
    o.widths = {16, 32, 64};
    o.attentionChannels = {64, 16};
    o.inputSize = 96;
    return o;
  }
  if (preset == "tiny") {
    o.inChannels = 1;
    o.stemChannels = 8;
    o.blocks = {1, 1, 1};
    o.widths = {8, 16, 32};
    o.attentionChannels = {32, 8};
    o.inputSize = 64;
    return o;
  }
  throw ModelError("unknown preset '" + std::string(preset) + "' (expected paper, small or tiny)");
}

void validate(const AdslOptions& o) {
  require(o.inChannels > 0, "inChannels must be positive");
  require(o.stemChannels > 0, "stemChannels must be positive");
  require(!o.blocks.empty() && o.blocks.size() == o.widths.size(),
          "blocks and widths need one entry per layer (at least one layer)");
  for (std::size_t i = 0; i < o.blocks.size(); ++i) {
    require(o.blocks[i] > 0, "every layer needs at least one bottleneck");
    require(o.widths[i] > 0, "bottleneck widths must be positive");
  }
  require(o.attentionChannels.size() == 2, "exactly 2 attention widths are required");
  for (int c : o.attentionChannels) {
    require(c > 0, "attention widths must be positive");
  }
  require(o.embeddingDim > 0, "embeddingDim must be positive");
  require(o.dropout >= 0.0 && o.dropout < 1.0, "dropout must lie in [0, 1)");
  require(o.inputSize > 0, "inputSize must be positive");
}

int featureChannels(const AdslOptions& options) {
  return options.widths.empty() ? 0 : 4 * options.widths.back();
}

} // namespace densa::models
