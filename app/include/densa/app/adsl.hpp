// SPDX-License-Identifier: Apache-2.0
#pragma once

// ADSL similar-case retrieval (methods-spec §3): `densa train adsl`, `densa index`, `densa search`.
// This header pulls in no LibTorch, Faiss or SQLite header.

#include "densa/app/train.hpp"

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace densa::app {

/// One labelled dataset of an ADSL run: any layout readDataset() knows, and the label values that
/// form classes (value -> class name; values sharing a name form one class, e.g. all ribs).
struct AdslDataset {
  std::filesystem::path path;
  std::map<int, std::string> classes;
};

/// An ADSL training run, as read from YAML (snake_case keys, see data/models/adsl-organs.yaml).
/// Defaults are the reference's (methods-spec §3.6) unless noted.
struct AdslTrainConfig {
  std::vector<AdslDataset> datasets;
  std::string preset = "small"; ///< "paper" (ResNet-50 to layer3, 224²), "small", "tiny"
  /// BatchNorm in eval mode throughout (the reference, which starts from ImageNet statistics).
  /// From scratch a frozen BN is the identity (mean 0, variance 1), so our configs turn it off.
  bool freezeBatchNorm = true;
  /// Self-supervised pretraining on CT slices instead of classes: every body tile of the training
  /// slabs (tiles on slices every tile_step_mm) is its own class and its augmented views are the
  /// positives of the same margin loss; validation and test stay the labelled patches.
  bool selfSupervised = false;
  double tileStepMm = 6;
  /// Start the backbone and the attention from this "adsl" checkpoint (e.g. a self-supervised
  /// run); the embedding starts fresh. ImageNet weights cannot be downloaded here.
  std::optional<std::filesystem::path> initFrom;
  // Items (§3 is about photographs; these are ours):
  double patchMm = 64; ///< patch side in mm
  int patchPixels = 0; ///< 0: the preset's input size
  double huMin = -200; ///< HU window scaled to [0, 1]
  double huMax = 300;
  int maxPerClass = 200;   ///< patches per class and case
  double minAreaMm2 = 100; ///< a structure must cover this much of a slice to give a patch
  /// Held-out split for model selection (the reference selects on its test split, §3.6 — a
  /// deviation): "slices" holds out every holdout_every-th block of holdout_block_mm along z in
  /// every case; "cases" holds out every holdout_every-th case.
  std::string holdout = "slices";
  int holdoutEvery = 3;
  double holdoutBlockMm = 12;
  // Schedule (§3.3-§3.6):
  int epochs = 300;
  int finetuneEpoch = 250; ///< whole-embedding fine-tune from this epoch
  int reclusterEvery = 2;
  int patience = 10;   ///< epochs without a better held-out NMI before a learner split
  bool dynamic = true; ///< ADSL learner splits; false: fixed learners (DCML, or one learner)
  int learners = 1;    ///< initial K (1 for ADSL)
  int batchSize = 32;
  int perClass = 8;
  int batchesPerEpoch = 0; ///< 0: as many as the cluster loaders hold (~items / batch)
  double lrBackbone = 1e-5;
  double lrEmbedding = 1e-5;
  double weightDecay = 1e-4; ///< coupled L2 (Adam), as the reference
  double alpha = 0.2;
  double beta = 1.2;
  double cutoff = 0.5;
  double scaleMin = 0.08; ///< RandomResizedCrop's smallest area fraction
  std::uint64_t seed = 0;
  int threads = 0;
  std::string device = "cpu";
  std::filesystem::path cacheDir; ///< default <run>/cache
};

/// Reads a YAML config, then applies `overrides` ("key=value"). Throws core::InvalidArgument naming
/// the key for unknown keys or bad values; relative dataset paths are relative to the file.
[[nodiscard]] AdslTrainConfig loadAdslConfig(const std::filesystem::path& file,
                                             const std::vector<std::string>& overrides = {});

/// `densa train adsl`: trains per the config into the run folder (config.yaml, metrics.csv,
/// train.log, report.html, retrieval.json, retrieval_per_class.csv, best.densa, last.densa,
/// state.pt and adsl_state.json for an exact --resume at an epoch boundary). Returns an exit code.
int runTrainAdsl(const TrainCommand& command, std::ostream& out, std::ostream& err);

/// `densa index add|remove|rebuild|info`.
struct IndexCommand {
  std::string action;                         ///< "add", "remove", "rebuild", "info"
  std::filesystem::path index;                ///< the index folder
  std::filesystem::path input;                ///< add: a CT file, DICOM folder or folder tree
  std::optional<std::filesystem::path> model; ///< add: an "adsl" checkpoint
  std::vector<std::string> caseIds;           ///< remove
  double sliceStepMm = 10;                    ///< add: tile slices every this many mm
  std::string device = "cpu";
  int threads = 0;
};

int runIndex(const IndexCommand& command, std::ostream& out, std::ostream& err);

/// `densa search QUERY --index DIR`.
struct SearchCommand {
  std::filesystem::path query; ///< a CT (case query), or a PNG/2D image (patch query)
  std::filesystem::path index;
  std::optional<std::filesystem::path> model; ///< default: the model the index was built with
  /// ROI query: a point (LPS mm) or a label map whose structure (value `roiLabel`, default any
  /// non-zero) centres the query patch.
  std::optional<std::vector<double>> pointMm;
  std::optional<std::filesystem::path> roi;
  int roiLabel = 0;
  int k = 10;
  bool json = false;
  std::filesystem::path output; ///< attention maps (PNG, NIfTI) and results.json; default none
  double sliceStepMm = 10;
  std::string device = "cpu";
  int threads = 0;
};

int runSearch(const SearchCommand& command, std::ostream& out, std::ostream& err);

} // namespace densa::app
