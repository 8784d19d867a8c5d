// SPDX-License-Identifier: Apache-2.0
#include "densa/core/itk_bridge.hpp"

#include <itkImage.h>

#include <algorithm>

namespace densa::core {

template <typename T>
itk::SmartPointer<itk::Image<T, 3>> toItk(const Volume<T>& volume) {
  using ImageType = itk::Image<T, 3>;
  auto image = ImageType::New();
  typename ImageType::RegionType region;
  typename ImageType::SpacingType spacing;
  typename ImageType::PointType origin;
  typename ImageType::DirectionType direction;
  for (unsigned int d = 0; d < 3; ++d) {
    region.SetIndex(d, 0);
    region.SetSize(d, volume.size()[d]);
    spacing[d] = volume.geometry().spacing[d];
    origin[d] = volume.geometry().origin[d];
    for (unsigned int c = 0; c < 3; ++c) {
      direction(d, c) = volume.geometry().direction[3 * d + c];
    }
  }
  image->SetRegions(region);
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  image->Allocate();
  std::copy(volume.voxels().begin(), volume.voxels().end(), image->GetBufferPointer());
  return image;
}

template <typename T>
Volume<T> fromItk(const itk::Image<T, 3>& image) {
  const auto region = image.GetBufferedRegion();
  Size3 size{};
  Geometry geometry;
  for (unsigned int d = 0; d < 3; ++d) {
    size[d] = region.GetSize(d);
    geometry.spacing[d] = image.GetSpacing()[d];
    for (unsigned int c = 0; c < 3; ++c) {
      geometry.direction[3 * d + c] = image.GetDirection()(d, c);
    }
  }
  // The buffered region may not start at index 0: take the physical point of its first voxel.
  typename itk::Image<T, 3>::PointType first;
  image.TransformIndexToPhysicalPoint(region.GetIndex(), first);
  for (unsigned int d = 0; d < 3; ++d) {
    geometry.origin[d] = first[d];
  }
  const std::size_t n = region.GetNumberOfPixels();
  std::vector<T> voxels(image.GetBufferPointer(), image.GetBufferPointer() + n);
  return Volume<T>(size, geometry, std::move(voxels));
}

template itk::SmartPointer<itk::Image<std::uint8_t, 3>> toItk(const Volume<std::uint8_t>&);
template itk::SmartPointer<itk::Image<std::int16_t, 3>> toItk(const Volume<std::int16_t>&);
template itk::SmartPointer<itk::Image<float, 3>> toItk(const Volume<float>&);
template Volume<std::uint8_t> fromItk(const itk::Image<std::uint8_t, 3>&);
template Volume<std::int16_t> fromItk(const itk::Image<std::int16_t, 3>&);
template Volume<float> fromItk(const itk::Image<float, 3>&);

} // namespace densa::core
