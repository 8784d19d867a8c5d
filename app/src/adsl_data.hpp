// SPDX-License-Identifier: Apache-2.0
#pragma once

// Items of ADSL similar-case retrieval (methods-spec §3, issue #8 item 3), private to app/: square
// 2D patches of a fixed physical size (mm) on axial slices, in an HU window scaled to [0, 1],
//  - centred on labelled structures (organ classes of multi-organ label maps, liver/tumour of
//    phantoms) for training and evaluation, and
//  - tiled over the body on slices every few mm for the case index (units of a case).
// The ADSL reference works on RGB photographs resized to 224²; CT has a physical scale, so a
// patch here is always patchMm wide whatever the scanner's pixel size.

#include "densa/app/datasets.hpp"
#include "densa/core/volume.hpp"

#include <torch/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace densa::app {

/// What a patch is: its side in mm, its pixels, its HU window.
struct AdslPatchSpec {
  double patchMm = 64;
  int pixels = 64;
  double huMin = -200;
  double huMax = 300;
};

/// The classes of a training set: class names, and for loadTrainingVolume the label value ->
/// class id + 1 map (0 stays background). Several label values may share a class.
struct AdslClasses {
  std::vector<std::string> names;
  std::map<int, int> valueMap;
};

/// One labelled patch.
struct AdslItem {
  torch::Tensor image; ///< [1, P, P] float in [0, 1]
  int label = 0;       ///< class id
  std::string caseId;
  int slice = 0;            ///< axial slice index of the case's canonical axial grid
  core::Vec3 centreMm{};    ///< LPS
  core::Vec3 centreIndex{}; ///< continuous (i, j, k) on the canonical axial grid
};

/// A square patch of side spec.patchMm × scale on axial slice `k` of a canonical-axial CT (HU),
/// centred at the continuous in-plane index (ci, cj), sampled bilinearly at spec.pixels² (outside
/// the image: -1024 HU), the window scaled to [0, 1]. [1, P, P] float.
[[nodiscard]] torch::Tensor axialPatch(const core::Volume<std::int16_t>& ct,
                                       int k,
                                       double ci,
                                       double cj,
                                       const AdslPatchSpec& spec,
                                       double scale = 1.0);

/// Patches centred on the labelled structures of `v` (labels = class id + 1, as loaded with
/// AdslClasses::valueMap): for each class, the slices where it covers at least minAreaMm2; on
/// each, a voxel of the class drawn at random is the centre. At most maxPerClass items per class
/// (the slices spread evenly), deterministic for a seed.
[[nodiscard]] std::vector<AdslItem> labelledPatches(const TrainingVolume& v,
                                                    int classCount,
                                                    const AdslPatchSpec& spec,
                                                    int maxPerClass,
                                                    double minAreaMm2,
                                                    std::uint64_t seed);

/// A unit of a case for the index: a patch tiled over the body.
struct AdslTile {
  torch::Tensor image; ///< [1, P, P]
  int slice = 0;
  core::Vec3 centreMm{};
  core::Vec3 centreIndex{};
};

/// Non-overlapping patchMm tiles on axial slices every sliceStepMm (at least one slice, centred),
/// kept when at least half of the tile's pixels are body (HU > -500).
[[nodiscard]] std::vector<AdslTile> bodyTiles(const core::Volume<std::int16_t>& ct,
                                              const AdslPatchSpec& spec,
                                              double sliceStepMm);

/// [N, 1, P, P] of the items' images.
[[nodiscard]] torch::Tensor stackImages(const std::vector<torch::Tensor>& images);

/// The training transform: a random resized crop (area fraction in [scaleMin, 1], aspect in
/// [3/4, 4/3], torchvision's RandomResizedCrop rule with 10 attempts then the centre) resized back
/// to the input size, random horizontal and vertical flips. `batch` [N, 1, P, P].
[[nodiscard]] torch::Tensor trainTransform(const torch::Tensor& batch,
                                           double scaleMin,
                                           std::mt19937_64& rng);

/// The evaluation transform: the central 224/256 of the patch resized back to P (the reference's
/// Resize(256) + CenterCrop(224)).
[[nodiscard]] torch::Tensor evalTransform(const torch::Tensor& batch);

} // namespace densa::app
