// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/app/train.hpp"

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace densa::app {

/// A GEMINI pretraining run (methods-spec §2.6-§2.7), as read from YAML (snake_case keys).
struct PretrainConfig {
  /// Unlabelled CT: folder trees (every CT series and image file is a volume), dataset layouts
  /// (LiTS, Decathlon, phantoms: their images; labels are ignored) or CSV lists.
  std::vector<std::filesystem::path> datasets;
  /// "mip": alignment + self-restoration (GEMINI-MIP); "semi": alignment + few-shot
  /// segmentation of the labelled datasets (GEMINI-Semi, 3 classes: background, liver, tumour).
  std::string variant = "mip";
  /// semi: labelled datasets (any layout readDataset() knows; label_map as in densa train). Their
  /// images also join the unlabelled pool.
  std::vector<TrainDataset> labelled;
  double tumourFraction = 0.5; ///< semi: labelled crops centred on tumour (else liver) voxels
  std::string preset = "small";
  int cropSize = 64;      ///< random crops of crop_size³ voxels (whole CTs do not fit)
  double spacingMm = 2.0; ///< volumes are resampled to this isotropic spacing first
  double huMin = -200;    ///< HU window, scaled to [0, 1]
  double huMax = 300;
  double rotationDegrees = 20; ///< shared random rotation per axis (π/9, the reference)
  double scaleMin = 0.75;      ///< shared random scale per axis
  double scaleMax = 1.25;
  bool diffeomorphic = false; ///< scaling-and-squaring of a velocity field (not the reference)
  std::int64_t steps = 2000;
  double learningRate = 1e-4; ///< Adam, no schedule (the reference)
  std::uint64_t seed = 1;
  std::int64_t logEvery = 10;
  std::int64_t checkpointEvery = 200;
  int workers = 2; ///< pairs prepared ahead in threads
  int threads = 0;
  std::string device = "cpu";
};

/// Reads a YAML config, then applies `overrides` ("key=value"). Throws core::InvalidArgument
/// naming the key for unknown keys or bad values; relative dataset paths are relative to the file.
[[nodiscard]] PretrainConfig loadPretrainConfig(const std::filesystem::path& file,
                                                const std::vector<std::string>& overrides = {});

struct PretrainCommand {
  std::optional<std::filesystem::path> config;
  std::optional<std::filesystem::path> resume; ///< a run folder
  std::filesystem::path runDir;
  std::vector<std::string> overrides;
};

/// `densa pretrain gemini`: pairs of different volumes, random crops, a shared random affine
/// field, the GEMINI alignment step then the restoration step (two Adam steps per iteration),
/// gradients averaged over data-parallel ranks (MASTER_ADDR/PORT, RANK, WORLD_SIZE). Run folder:
/// config.yaml, metrics.csv, train.log, report.html (curves, a picture of one pair), last.densa
/// (a "gemini" checkpoint) and state.pt for an exact --resume; variant semi also writes
/// segmenter.densa (a "gemini-unet": backbone + segmentation head, for densa segment and the
/// viewer). Returns an exit code.
int runPretrain(const PretrainCommand& command, std::ostream& out, std::ostream& err);

struct RegisterOptions {
  std::filesystem::path moving;
  std::filesystem::path fixed;
  std::filesystem::path output;                     ///< a folder
  std::optional<std::filesystem::path> model;       ///< a "gemini" checkpoint
  std::optional<std::filesystem::path> labels;      ///< moving labels, warped with nearest
  std::optional<std::filesystem::path> fixedLabels; ///< to report Dice before and after
  std::string labelMap;                             ///< e.g. "5:1" for both label maps
  std::string device = "cpu";
};

/// `densa register`: warps MOVING (and its labels) onto FIXED's grid with a trained GEMINI
/// deformer, in physical space: both are resampled to the model's spacing on FIXED's frame, φ =
/// deformer(f_moving, f_fixed), the warped image and labels are resampled back onto FIXED's exact
/// grid. Writes warped.nii.gz, warped_labels.nii.gz and report.json (Jacobian statistics, % of
/// folding voxels, label Dice before/after when FIXED's labels are given).
int runRegister(const RegisterOptions& options, std::ostream& out, std::ostream& err);

} // namespace densa::app
