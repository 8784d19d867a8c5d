// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

namespace densa::core {

enum class Interpolation { Nearest, Linear };

/// Target grid for resampling.
struct Grid {
  Size3 size{0, 0, 0};
  Geometry geometry;
};

/// Resamples `input` onto `target` in physical (LPS) space; voxels that map outside the input
/// take `outsideValue`. Geometry: the result has exactly the target grid. Label maps must use
/// Interpolation::Nearest. Uses itk::ResampleImageFilter.
template <typename T>
[[nodiscard]] Volume<T> resampleOnto(const Volume<T>& input,
                                     const Grid& target,
                                     Interpolation interpolation,
                                     T outsideValue = T{});

/// The grid of an existing volume.
template <typename T>
[[nodiscard]] Grid gridOf(const Volume<T>& volume) {
  return {volume.size(), volume.geometry()};
}

} // namespace densa::core
