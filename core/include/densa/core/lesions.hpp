// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <cstddef>
#include <vector>

namespace densa::core {

/// One tumour (a 26-connected component of label 2).
struct Lesion {
  int id = 0; ///< 1 = largest
  std::size_t voxels = 0;
  double volumeMl = 0; ///< voxels × voxel volume / 1000
  double longestDiameterMm =
      0; ///< longest in-plane diameter over the k slices, voxel centre to centre
  std::size_t diameterSlice = 0;  ///< k of the slice holding it
  Vec3 centroidMm{0, 0, 0};       ///< LPS, mm
  Size3 boundingBoxLow{0, 0, 0};  ///< voxel index, inclusive
  Size3 boundingBoxHigh{0, 0, 0}; ///< voxel index, inclusive
};

/// Volumes and the lesion table of a liver/tumour label map (0 background, 1 liver, 2 tumour).
struct LiverTumourStats {
  double liverVolumeMl = 0;       ///< label ≥ 1 (the liver including its tumours)
  double tumourVolumeMl = 0;      ///< label 2
  double tumourBurdenPercent = 0; ///< 100 × tumour / liver; 0 without liver
  std::vector<Lesion> lesions;    ///< largest first
};

/// Measures `labels` in physical units from its geometry. For an axial series the k slices are
/// axial, so `longestDiameterMm` is the longest axial diameter (as RECIST measures).
[[nodiscard]] LiverTumourStats measureLiverTumour(const LabelMap& labels);

} // namespace densa::core
