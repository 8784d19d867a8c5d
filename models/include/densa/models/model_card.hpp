// SPDX-License-Identifier: Apache-2.0
#pragma once

// The JSON model card stored in every Densa checkpoint, and the checkpoint container. This header
// pulls in no LibTorch header: app/ and gui/ can read a card without touching weights.

#include "densa/models/model_options.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace densa::models {

/// How the model expects its input volume (§1.2, §1.11).
struct PreprocessingContract {
  double huMin = -200.0; ///< HU window: clip to [huMin, huMax]
  double huMax = 250.0;
  double intensityOffset = -48.0;       ///< added after clipping (the reference subtracts mean 48)
  std::string spacingPolicy = "native"; ///< "native": no resampling (the reference runs 512x512)
  int windowDepth = 8;                  ///< slices per 3D inference window
  int windowStride = 2;                 ///< window step along z
  int sliceContext = 3;                 ///< slices per 2D input
};

/// Decision thresholds of the post-processing (§1.11).
struct Thresholds {
  double liver = 0.5;
  double tumour = 0.9;
};

/// Where the weights came from.
struct Provenance {
  std::string densaVersion;
  std::string gitSha;
  std::string createdUtc;      ///< ISO 8601; filled by saveCheckpoint() when empty
  std::string libtorchVersion; ///< filled by saveCheckpoint() when empty
  std::string trainingStage;   ///< e.g. "2d", "3dpart", "end2end", "imported", "untrained"
  std::string trainingData;    ///< data-set name or manifest hash
  std::string notes;
};

/// Everything needed to rebuild and use a model, stored as JSON in the checkpoint.
struct ModelCard {
  static constexpr int kFormatVersion = 1;
  int formatVersion = kFormatVersion;
  std::string preset;   ///< informative ("paper", "small", "tiny", "custom")
  ModelOptions options; ///< the architecture (its registry id is architectureId(options))
  std::vector<std::string> labels{"background", "liver", "tumour"};
  PreprocessingContract preprocessing;
  Thresholds thresholds;
  Provenance provenance;
};

/// A card for a preset of an architecture ("hdenseunet", "dense-unet-2d", "dense-unet-3d",
/// "coarse-liver", "gemini", "gemini-unet", "adsl"); the coarse net gets labels {background,
/// liver}, a "gemini" net without a segmentation head and an "adsl" embedding net no labels.
/// Throws ModelError.
[[nodiscard]] ModelCard makeModelCard(std::string_view architecture, std::string_view preset);

/// JSON codec. parseModelCard throws ModelError for invalid JSON, a missing key, an unknown
/// architecture or a newer format version.
[[nodiscard]] std::string toJson(const ModelCard& card);
[[nodiscard]] ModelCard parseModelCard(std::string_view json);

/// Reads only the card of a checkpoint file (the header and the JSON; weights are not checked).
/// Throws ModelError for a file that is not a Densa checkpoint.
[[nodiscard]] ModelCard readModelCard(const std::filesystem::path& path);

/// The checkpoint container, byte for byte (little-endian):
///   16 bytes  magic "DENSA-CHECKPOINT"
///   u32       container version (1)
///   u32       reserved (0)
///   u64       card size in bytes
///   u64       weights size in bytes
///   u64       FNV-1a 64-bit hash of card bytes followed by weights bytes
///   card      UTF-8 JSON (toJson)
///   weights   a PyTorch zip archive of a dict {name: tensor} (torch::pickle_save; Python's
///             torch.load opens the extracted bytes)
/// The file is written to a temporary sibling and renamed into place.
struct CheckpointContents {
  std::string card;
  std::vector<char> weights;
};

inline constexpr std::uint32_t kCheckpointContainerVersion = 1;

/// Writes the container atomically (temp file + rename). Throws ModelError.
void writeCheckpointFile(const std::filesystem::path& path, const CheckpointContents& contents);
/// Reads and verifies the container (magic, version, sizes, hash). Throws ModelError with the
/// reason: not a Densa checkpoint, truncated, trailing bytes, corrupted, newer version.
[[nodiscard]] CheckpointContents readCheckpointFile(const std::filesystem::path& path,
                                                    bool withWeights = true);

} // namespace densa::models
