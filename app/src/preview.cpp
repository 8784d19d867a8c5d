// SPDX-License-Identifier: Apache-2.0
#include "densa/app/preview.hpp"

#include "densa/core/error.hpp"
#include "densa/io/png.hpp"

#include <algorithm>
#include <cmath>

namespace densa::app {

RgbImage renderMontage(const core::Volume<std::int16_t>& ct,
                       const core::LabelMap* labels,
                       const MontageOptions& options) {
  if (ct.empty()) {
    throw core::InvalidArgument("renderMontage: empty volume");
  }
  if (labels != nullptr && labels->size() != ct.size()) {
    throw core::InvalidArgument("renderMontage: label map and CT differ in size");
  }
  const auto [nx, ny, nz] = ct.size();
  // Slices to show: spread over the labelled extent if any, else over the volume.
  std::size_t k0 = 0;
  std::size_t k1 = nz - 1;
  if (labels != nullptr) {
    std::size_t first = nz;
    std::size_t last = 0;
    for (std::size_t k = 0; k < nz; ++k) {
      const auto* p = labels->data() + k * nx * ny;
      if (std::any_of(p, p + nx * ny, [](auto v) { return v != 0; })) {
        first = std::min(first, k);
        last = k;
      }
    }
    if (first < nz) {
      k0 = first;
      k1 = last;
    }
  }
  const int count = std::clamp<int>(options.slices, 1, static_cast<int>(k1 - k0 + 1));
  const int columns = std::clamp(options.columns, 1, count);
  const int rows = (count + columns - 1) / columns;
  // Tile size keeping the physical aspect.
  const double widthMm = static_cast<double>(nx) * ct.geometry().spacing[0];
  const double heightMm = static_cast<double>(ny) * ct.geometry().spacing[1];
  const double scale = options.tileSize / std::max(widthMm, heightMm);
  const auto tileW = static_cast<std::size_t>(std::max(1.0, std::round(widthMm * scale)));
  const auto tileH = static_cast<std::size_t>(std::max(1.0, std::round(heightMm * scale)));
  RgbImage img;
  img.width = tileW * static_cast<std::size_t>(columns);
  img.height = tileH * static_cast<std::size_t>(rows);
  img.rgb.assign(img.width * img.height * 3, 0);
  // Radiological display: patient right (-x in LPS) on the left of the screen, anterior up.
  const bool flipX = ct.geometry().direction[0] < 0;
  const bool flipY = ct.geometry().direction[4] < 0;
  const double lo = options.windowCentre - options.windowWidth / 2;
  for (int t = 0; t < count; ++t) {
    const std::size_t k = count == 1 ? (k0 + k1) / 2
                                     : k0 + static_cast<std::size_t>(std::llround(
                                                double(t) * double(k1 - k0) / (count - 1)));
    const std::size_t ox = static_cast<std::size_t>(t % columns) * tileW;
    const std::size_t oy = static_cast<std::size_t>(t / columns) * tileH;
    for (std::size_t y = 0; y < tileH; ++y) {
      auto j =
          std::min(ny - 1, static_cast<std::size_t>((static_cast<double>(y) + 0.5) / tileH * ny));
      if (flipY) {
        j = ny - 1 - j;
      }
      for (std::size_t x = 0; x < tileW; ++x) {
        auto i =
            std::min(nx - 1, static_cast<std::size_t>((static_cast<double>(x) + 0.5) / tileW * nx));
        if (flipX) {
          i = nx - 1 - i;
        }
        const double v = std::clamp((ct.at(i, j, k) - lo) / options.windowWidth, 0.0, 1.0) * 255.0;
        double r = v, g = v, b = v;
        const std::uint8_t label = labels != nullptr ? labels->at(i, j, k) : 0;
        if (label == 1) {
          r = 0.65 * r;
          g = 0.65 * g + 0.35 * 220;
          b = 0.65 * b;
        } else if (label >= 2) {
          r = 0.45 * r + 0.55 * 255;
          g = 0.45 * g + 0.55 * 40;
          b = 0.45 * b + 0.55 * 40;
        }
        const std::size_t o = ((oy + y) * img.width + ox + x) * 3;
        img.rgb[o] = static_cast<std::uint8_t>(r);
        img.rgb[o + 1] = static_cast<std::uint8_t>(g);
        img.rgb[o + 2] = static_cast<std::uint8_t>(b);
      }
    }
  }
  return img;
}

void writeMontagePng(const std::filesystem::path& file,
                     const core::Volume<std::int16_t>& ct,
                     const core::LabelMap* labels,
                     const MontageOptions& options) {
  const RgbImage img = renderMontage(ct, labels, options);
  io::writePngRgb(file, img.width, img.height, img.rgb);
}

} // namespace densa::app
