// SPDX-License-Identifier: Apache-2.0
#pragma once

// The pieces of similar-case retrieval shared by `densa index` (index_cmd.cpp) and
// SimilarCaseSearch (similar_cases.cpp); private to app/.

#include "densa/core/volume.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include "adsl_data.hpp"
#include "adsl_embed.hpp"

#include <torch/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace densa::app::detail {

/// The model an index is built with: its file and version ("adsl/<preset>/<hash of the file>").
struct IndexModel {
  std::filesystem::path file;
  std::string version;
  models::LoadedModel loaded;
  AdslPatchSpec spec;
};

/// Loads an "adsl" checkpoint; models::ModelError for another architecture.
[[nodiscard]] IndexModel loadIndexModel(const std::filesystem::path& file,
                                        const torch::Device& device);

[[nodiscard]] models::AdslNet& netOf(IndexModel& m);

/// Records the model (and the slice step of the last add) next to an index (DIR/model.json), so
/// that search needs no model argument.
void recordModel(const std::filesystem::path& dir, const IndexModel& m, double sliceStepMm);

/// The CT re-indexed exactly to the canonical axial orientation.
[[nodiscard]] core::Volume<std::int16_t> axialCt(const core::Volume<std::int16_t>& ct);

[[nodiscard]] std::vector<float> toVector(const torch::Tensor& row);

/// The case-level vector: the mean of the unit embeddings, L2-normalised.
[[nodiscard]] torch::Tensor caseVector(const torch::Tensor& embeddings);

/// Units of one CT: body tiles every sliceStepMm, embedded.
struct EmbeddedTiles {
  std::vector<AdslTile> tiles;
  AdslEmbedding embedding;
};

[[nodiscard]] EmbeddedTiles embedTiles(IndexModel& m,
                                       const core::Volume<std::int16_t>& axial,
                                       double sliceStepMm,
                                       const torch::Device& device);

} // namespace densa::app::detail
