// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace densa::app {

/// One dataset of a training configuration.
struct TrainDataset {
  std::filesystem::path path;                 ///< LiTS, Decathlon, CSV manifest or phantom folder
  std::optional<std::map<int, int>> labelMap; ///< e.g. {5: 1} for a TotalSegmentator liver
  bool validationOnly = false;                ///< every case held out
  bool trainOnly = false;                     ///< never held out
};

/// A training run, as read from YAML (keys in snake_case, see data/models/default-train.yaml).
struct TrainConfig {
  std::vector<TrainDataset> datasets;
  std::string architecture = "hdenseunet"; ///< or "gemini-unet" (GEMINI transfer, 3D crops)
  std::string preset = "small";
  std::string stage = "2d"; ///< "2d", "3dpart", "end2end"
  std::optional<std::filesystem::path> initFrom;
  std::int64_t steps = 1000;
  int batchSize = 4; ///< 2D stage; hybrid stages use 1
  int cropSize = 224;
  double scaleMin = 0.8;
  double scaleMax = 1.2;
  double tumourFraction = 0.5; ///< crops centred on tumour (else liver) voxels
  // Augmentation beyond the reference's (§1.3: scale + dihedral only); each 0 = off (default).
  double rotationDegrees = 0;  ///< in-plane rotation, uniform in ±this
  double intensityScale = 0;   ///< HU contrast factor, uniform in 1 ± this (about the crop mean)
  double intensityShiftHu = 0; ///< HU offset, uniform in ±this
  double noiseHu = 0;          ///< Gaussian noise σ in HU
  std::string optimizer = "adam"; ///< "sgd" (Nesterov, the reference) or "adam"
  double learningRate = 1e-3;
  double momentum = 0.9;
  double weightDecay = 0.0;
  std::string schedule = "poly"; ///< "constant", "poly", "cosine"
  double diceWeight = 0.0;       ///< loss = CE + diceWeight * soft Dice
  int folds = 5;
  int fold = 0;
  std::uint64_t seed = 1;
  std::int64_t validateEvery = 200;
  std::int64_t checkpointEvery = 200;
  std::int64_t logEvery = 10;
  int workers = 2; ///< batches prepared ahead in worker threads (≥ 1)
  int threads = 0;
  std::string device = "cpu";
  std::filesystem::path cacheDir; ///< default <run>/cache
  // gemini-unet only (taken from the init_from checkpoint when there is one):
  double spacingMm = 2.0; ///< isotropic resampling
  double huMin = -200;    ///< HU window scaled to [0, 1]
  double huMax = 300;
};

/// Reads a YAML config, then applies `overrides` ("key=value", same keys). Throws
/// core::InvalidArgument naming the key for unknown keys or bad values.
[[nodiscard]] TrainConfig loadTrainConfig(const std::filesystem::path& file,
                                          const std::vector<std::string>& overrides = {});

struct TrainCommand {
  std::optional<std::filesystem::path> config;
  std::optional<std::filesystem::path> resume; ///< a run folder
  std::filesystem::path runDir;
  std::vector<std::string> overrides;
};

/// `densa train`: trains per the config into the run folder (config.yaml as resolved, metrics.csv,
/// train.log, checkpoints/, best.densa, last.densa, report.html). Returns an exit code.
int runTrain(const TrainCommand& command, std::ostream& out, std::ostream& err);

} // namespace densa::app
