// SPDX-License-Identifier: Apache-2.0
#include "densa/core/resample.hpp"

#include "densa/core/error.hpp"
#include "densa/core/itk_bridge.hpp"

#include <itkIdentityTransform.h>
#include <itkImage.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

namespace densa::core {

template <typename T>
Volume<T> resampleOnto(const Volume<T>& input,
                       const Grid& target,
                       Interpolation interpolation,
                       T outsideValue) {
  if (input.empty()) {
    throw InvalidArgument("resampleOnto: empty input volume");
  }
  using ImageType = itk::Image<T, 3>;
  auto filter = itk::ResampleImageFilter<ImageType, ImageType>::New();
  const auto source = toItk(input);
  filter->SetInput(source);
  filter->SetTransform(itk::IdentityTransform<double, 3>::New());
  if (interpolation == Interpolation::Nearest) {
    filter->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<ImageType, double>::New());
  } else {
    filter->SetInterpolator(itk::LinearInterpolateImageFunction<ImageType, double>::New());
  }
  typename ImageType::SizeType size;
  typename ImageType::SpacingType spacing;
  typename ImageType::PointType origin;
  typename ImageType::DirectionType direction;
  for (unsigned int d = 0; d < 3; ++d) {
    size[d] = target.size[d];
    spacing[d] = target.geometry.spacing[d];
    origin[d] = target.geometry.origin[d];
    for (unsigned int c = 0; c < 3; ++c) {
      direction(d, c) = target.geometry.direction[3 * d + c];
    }
  }
  filter->SetSize(size);
  filter->SetOutputSpacing(spacing);
  filter->SetOutputOrigin(origin);
  filter->SetOutputDirection(direction);
  filter->SetDefaultPixelValue(outsideValue);
  try {
    filter->Update();
  } catch (const itk::ExceptionObject& e) {
    throw InternalError(std::string("resampleOnto: ") + e.GetDescription());
  }
  return fromItk<T>(*filter->GetOutput());
}

template Volume<std::uint8_t> resampleOnto(const Volume<std::uint8_t>&,
                                           const Grid&,
                                           Interpolation,
                                           std::uint8_t);
template Volume<std::int16_t> resampleOnto(const Volume<std::int16_t>&,
                                           const Grid&,
                                           Interpolation,
                                           std::int16_t);
template Volume<float> resampleOnto(const Volume<float>&, const Grid&, Interpolation, float);

} // namespace densa::core
