// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <array>

namespace densa::core {

/// An exact re-indexing of a voxel grid: output axis a reads input axis `axis[a]`, reversed when
/// `flip[a]`. No interpolation; geometry is updated so every voxel keeps its physical position.
struct AxisPermutation {
  std::array<int, 3> axis{0, 1, 2};
  std::array<bool, 3> flip{false, false, false};

  [[nodiscard]] bool isIdentity() const noexcept {
    return axis == std::array<int, 3>{0, 1, 2} && flip == std::array<bool, 3>{false, false, false};
  }
};

/// The permutation that brings a grid closest to the canonical axial orientation "LPS"
/// (i → patient left, j → posterior, k → superior: the orientation of a head-first supine axial
/// DICOM series). A feet-first series gets its k axis reversed; a coronal or sagittal one has its
/// axes swapped so that k runs along the body.
[[nodiscard]] AxisPermutation permutationToAxial(const Mat3& direction);

/// Applies `p` to `volume` (voxels and geometry).
template <typename T>
[[nodiscard]] Volume<T> permuteAxes(const Volume<T>& volume, const AxisPermutation& p);

/// The inverse of `p`: permuteAxes(permuteAxes(v, p), inverse(p)) == v.
[[nodiscard]] AxisPermutation inverse(const AxisPermutation& p);

} // namespace densa::core
