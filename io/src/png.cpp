// SPDX-License-Identifier: Apache-2.0
#include "densa/io/png.hpp"

#include "densa/core/error.hpp"
#include "densa/io/atomic_file.hpp"

#include <itkImage.h>
#include <itkImageFileWriter.h>
#include <itkPNGImageIO.h>
#include <itkRGBPixel.h>

#include <algorithm>

namespace densa::io {

void writePngRgb(const std::filesystem::path& file,
                 std::size_t width,
                 std::size_t height,
                 std::span<const std::uint8_t> rgb) {
  if (width == 0 || height == 0 || rgb.size() != width * height * 3) {
    throw core::InvalidArgument("writePngRgb: buffer does not hold width x height x 3 bytes");
  }
  using Pixel = itk::RGBPixel<std::uint8_t>;
  using Image = itk::Image<Pixel, 2>;
  auto image = Image::New();
  Image::RegionType region;
  region.SetSize(0, width);
  region.SetSize(1, height);
  image->SetRegions(region);
  image->Allocate();
  auto* dst = image->GetBufferPointer();
  for (std::size_t i = 0; i < width * height; ++i) {
    dst[i].Set(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
  }
  writeAtomically(file, [&](const std::filesystem::path& temp) {
    auto writer = itk::ImageFileWriter<Image>::New();
    writer->SetImageIO(itk::PNGImageIO::New());
    writer->SetFileName(temp.string());
    writer->SetInput(image);
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& e) {
      throw core::InputError(file, std::string("cannot write PNG: ") + e.GetDescription());
    }
  });
}

} // namespace densa::io
