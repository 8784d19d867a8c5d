// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace densa::app {

/// One labelled case of a training set.
struct LabelledCase {
  std::string id;
  std::filesystem::path image; ///< an image file or a DICOM folder
  std::filesystem::path label; ///< a label map file
};

/// Which on-disk layout a dataset uses.
enum class DatasetLayout { Lits, Decathlon, CsvManifest, Phantoms };

struct Dataset {
  DatasetLayout layout = DatasetLayout::Lits;
  std::filesystem::path root;
  std::vector<LabelledCase> cases; ///< sorted by id
};

/// Reads a dataset, detecting its layout: the LiTS layout (volume-N.nii[.gz] with
/// segmentation-N.nii[.gz]); the Medical Segmentation Decathlon layout (dataset.json with
/// imagesTr/ and labelsTr/; Task03_Liver labels 0/1/2); a CSV manifest (header "image,label",
/// paths relative to the CSV); or a folder written by `densa phantom` (synthetic_phantom_*/dicom +
/// label.nii.gz). Throws core::InputError naming what is missing.
[[nodiscard]] Dataset readDataset(const std::filesystem::path& path);

/// A case-level split into `folds` folds with a fixed seed: returns {train, validation} for
/// fold `fold` (0-based). With folds <= 1 everything is training.
struct Split {
  std::vector<LabelledCase> train;
  std::vector<LabelledCase> validation;
};

[[nodiscard]] Split splitCases(const std::vector<LabelledCase>& cases,
                               int folds,
                               int fold,
                               std::uint64_t seed);

/// A case loaded for training: CT (HU) and labels (0/1/2) on one canonical axial grid.
struct TrainingVolume {
  std::string id;
  core::Volume<std::int16_t> ct;
  core::LabelMap labels;
};

/// Loads a case: the CT from its image file or DICOM folder, the label map resampled onto the CT
/// grid (nearest) when its grid differs, both re-indexed to canonical axial. `labelMap` maps raw
/// label values to 0/1/2 (e.g. {5: 1} for a TotalSegmentator liver, everything else 0); without
/// it, values other than 0, 1, 2 are refused with a clear error naming the file.
[[nodiscard]] TrainingVolume loadTrainingVolume(
    const LabelledCase& c, const std::optional<std::map<int, int>>& labelMap = std::nullopt);

/// As loadTrainingVolume, through a cache folder keyed by the files (path, size, mtime) and the
/// label map: a cached case loads from two raw files without decoding or resampling.
[[nodiscard]] TrainingVolume loadTrainingVolumeCached(
    const LabelledCase& c,
    const std::filesystem::path& cacheDir,
    const std::optional<std::map<int, int>>& labelMap);

} // namespace densa::app
