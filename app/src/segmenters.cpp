// SPDX-License-Identifier: Apache-2.0
// The segmenter of a checkpoint's architecture.
#include "densa/app/segmenters.hpp"

#include "densa/app/gemini_segmenter.hpp"
#include "densa/models/error.hpp"
#include "densa/models/model_card.hpp"

namespace densa::app {

std::vector<std::string> segmenterArchitectures() {
  return {"hdenseunet", "gemini-unet"};
}

std::unique_ptr<Segmenter> loadSegmenter(const std::filesystem::path& model,
                                         const SegmenterOptions& options) {
  const models::ModelCard card = models::readModelCard(model);
  const std::string architecture(models::architectureId(card.options));
  if (architecture == "hdenseunet") {
    return loadHDenseUNetSegmenter(model, options);
  }
  if (architecture == "gemini-unet") {
    return loadGeminiUNetSegmenter(model, options);
  }
  std::string supported;
  for (const auto& a : segmenterArchitectures()) {
    supported += (supported.empty() ? "" : ", ") + a;
  }
  throw models::ModelError(model.string() + ": is a '" + architecture +
                           "' checkpoint, which cannot segment; segmentation models: " + supported +
                           (architecture == "gemini"
                                ? " (a pretrained 'gemini' model needs fine-tuning into a "
                                  "'gemini-unet' first)"
                                : ""));
}

} // namespace densa::app
