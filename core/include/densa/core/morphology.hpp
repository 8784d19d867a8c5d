// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <cstdint>
#include <vector>

namespace densa::core {

/// Voxel neighbourhoods in 3-D: faces (6), faces + edges (18), faces + edges + corners (26).
enum class Connectivity { Faces6 = 6, Edges18 = 18, Full26 = 26 };

/// Connected components of the non-zero voxels of `mask`.
struct Components {
  Size3 size{0, 0, 0};
  std::vector<std::uint32_t> ids; ///< per voxel, 0 = background, 1..count
  std::uint32_t count = 0;
  std::vector<std::uint64_t> voxelCounts; ///< voxelCounts[id], index 0 unused
};

/// Labels the connected components of `mask != 0` (ITK ConnectedComponentImageFilter), numbered
/// in raster order of their first voxel. Geometry is not used.
[[nodiscard]] Components connectedComponents(const LabelMap& mask, Connectivity connectivity);

/// A mask (0/1) of the largest connected component of `mask != 0`; all zero when `mask` is empty.
/// Geometry is preserved.
[[nodiscard]] LabelMap largestComponent(const LabelMap& mask, Connectivity connectivity);

/// Fills the holes of `mask != 0` in 3-D: background voxels not connected (6-connectivity) to the
/// volume border become 1 (as scipy's binary_fill_holes). Geometry is preserved.
[[nodiscard]] LabelMap fillHoles(const LabelMap& mask);

/// Binary dilation of `mask != 0` by `iterations` steps of the 6-neighbour cross (scipy's
/// generate_binary_structure(3, 1)). Geometry is preserved.
[[nodiscard]] LabelMap dilate(const LabelMap& mask, int iterations = 1);

/// The mask `label == value` (0/1). Geometry is preserved.
[[nodiscard]] LabelMap equalTo(const LabelMap& labels, std::uint8_t value);

/// The mask `label >= value` (0/1). Geometry is preserved.
[[nodiscard]] LabelMap atLeast(const LabelMap& labels, std::uint8_t value);

/// Surface voxels of `mask != 0`: mask XOR erode(mask) with the 18-neighbourhood, voxels outside
/// the volume counting as background (the LiTS scorer's definition). Geometry is preserved.
[[nodiscard]] LabelMap surfaceVoxels(const LabelMap& mask);

} // namespace densa::core
