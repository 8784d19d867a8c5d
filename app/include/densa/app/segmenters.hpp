// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/app/segmenter.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace densa::app {

/// The model architectures loadSegmenter() can run: "hdenseunet", "gemini-unet".
[[nodiscard]] std::vector<std::string> segmenterArchitectures();

/// Reads the model card of `model` and loads the segmenter of its architecture:
/// loadHDenseUNetSegmenter() for "hdenseunet", loadGeminiUNetSegmenter() for "gemini-unet".
/// Throws models::ModelError for a file that is not a Densa checkpoint and for any other
/// architecture (the message names the file, its architecture and the supported ones).
[[nodiscard]] std::unique_ptr<Segmenter> loadSegmenter(const std::filesystem::path& model,
                                                       const SegmenterOptions& options = {});

} // namespace densa::app
