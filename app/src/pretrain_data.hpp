// SPDX-License-Identifier: Apache-2.0
#pragma once
// Volumes for GEMINI pretraining and registration (private to app/): CT resampled to an isotropic
// grid in the canonical axial orientation, the HU window scaled to [0, 1], as LibTorch tensors.

#include "densa/app/datasets.hpp"
#include "densa/core/resample.hpp"
#include "densa/core/volume.hpp"
#include "densa/models/error.hpp"
#include "densa/models/model_card.hpp"

#include <torch/types.h>

#include <filesystem>
#include <iosfwd>
#include <random>
#include <string>
#include <vector>

namespace densa::app {

struct PretrainPreprocessing {
  double spacingMm = 2.0;
  double huMin = -200;
  double huMax = 300;
};

struct PretrainVolume {
  std::string id;
  torch::Tensor image; ///< [1, 1, D, H, W] float in [0, 1] (D along k)
};

/// The isotropic spacing (mm) of a GEMINI card's spacing policy ("isotropic 2 mm; HU window ...",
/// written by densa pretrain gemini). Throws models::ModelError naming `file` when the policy is
/// not an isotropic spacing.
[[nodiscard]] double cardSpacing(const models::ModelCard& card, const std::filesystem::path& file);

/// The isotropic grid (spacing `spacingMm`) covering `grid`'s voxel centres, same origin and
/// direction.
[[nodiscard]] core::Grid isotropicGrid(const core::Grid& grid, double spacingMm);

/// A CT (HU) re-indexed to axial (exactly) and resampled (linear) onto its isotropic grid.
[[nodiscard]] core::Volume<float> toIsotropicAxial(const core::Volume<std::int16_t>& ct,
                                                   double spacingMm);

/// [1, 1, D, H, W] float tensor of a volume's voxels (no copy of the geometry).
[[nodiscard]] torch::Tensor toTensor(const core::Volume<float>& volume);
/// clamp((HU − huMin) / (huMax − huMin), 0, 1).
[[nodiscard]] torch::Tensor scaleWindow(const torch::Tensor& hu, double huMin, double huMax);
/// The voxels of a [1, 1, D, H, W] tensor on `grid`.
[[nodiscard]] core::Volume<float> fromTensor(const torch::Tensor& t, const core::Grid& grid);

/// A labelled volume on the isotropic grid, with the voxels crops are centred on.
struct IsoLabelledVolume {
  std::string id;
  torch::Tensor image;              ///< [1, 1, D, H, W] in [0, 1]
  torch::Tensor labels;             ///< [1, 1, D, H, W] float 0/1/2
  std::vector<std::int64_t> liver;  ///< voxel offsets with label >= 1
  std::vector<std::int64_t> tumour; ///< voxel offsets with label 2
};

/// A canonical-axial training volume resampled onto its isotropic grid (CT linear, labels
/// nearest), the HU window scaled to [0, 1].
[[nodiscard]] IsoLabelledVolume toIsoLabelled(const TrainingVolume& v,
                                              double spacingMm,
                                              double huMin,
                                              double huMax);

/// A size³ crop of `v` centred on a tumour voxel with probability tumourFraction, else on a liver
/// voxel (a random voxel when there is no liver), zero-padded: {image, labels}, each
/// [1, 1, size, size, size] float.
[[nodiscard]] std::pair<torch::Tensor, torch::Tensor> labelledCrop(const IsoLabelledVolume& v,
                                                                   int size,
                                                                   double tumourFraction,
                                                                   std::mt19937_64& rng);

/// Every CT volume of `datasets` (folder trees, dataset layouts, CSV lists), preprocessed.
/// Volumes that cannot be read are reported on `err` and skipped.
[[nodiscard]] std::vector<PretrainVolume> loadPretrainVolumes(
    const std::vector<std::filesystem::path>& datasets,
    const PretrainPreprocessing& pre,
    std::ostream& err);

} // namespace densa::app
