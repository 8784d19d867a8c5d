// SPDX-License-Identifier: Apache-2.0
#pragma once

// Conversions between core::Volume and itk::Image, for the .cpp files of core/ and io/ that use
// ITK privately. ITK types are only forward-declared here: this header pulls in no ITK header,
// so including it costs nothing, and a caller must include <itkImage.h> itself to use it.

#include "densa/core/volume.hpp"

namespace itk {
template <typename TPixel, unsigned int VDimension>
class Image;
template <typename TObject>
class SmartPointer;
} // namespace itk

namespace densa::core {

/// A new ITK image holding a copy of the voxels; spacing, origin and direction are kept exactly.
template <typename T>
[[nodiscard]] itk::SmartPointer<itk::Image<T, 3>> toItk(const Volume<T>& volume);

/// A Volume holding a copy of the buffered region of `image`, with its geometry.
template <typename T>
[[nodiscard]] Volume<T> fromItk(const itk::Image<T, 3>& image);

} // namespace densa::core
