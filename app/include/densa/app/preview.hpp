// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

namespace densa::app {

/// An RGB picture, rows top to bottom.
struct RgbImage {
  std::size_t width = 0;
  std::size_t height = 0;
  std::vector<std::uint8_t> rgb;
};

struct MontageOptions {
  int slices = 12; ///< number of k slices shown
  int columns = 4;
  double windowCentre = 40; ///< HU (abdomen window by default)
  double windowWidth = 400; ///< HU
  int tileSize = 256;       ///< each slice is scaled to fit this many pixels
};

/// A montage of k slices of `ct` (windowed), with the label map drawn over it (liver green,
/// tumour red, semi-transparent), spread over the labelled extent when labels are given (else over
/// the whole volume). Each tile keeps the in-plane aspect from the spacing and is shown in
/// radiological convention for axial LPS grids (patient's right on the left, anterior up).
[[nodiscard]] RgbImage renderMontage(const core::Volume<std::int16_t>& ct,
                                     const core::LabelMap* labels,
                                     const MontageOptions& options = {});

/// renderMontage written as PNG (atomically).
void writeMontagePng(const std::filesystem::path& file,
                     const core::Volume<std::int16_t>& ct,
                     const core::LabelMap* labels,
                     const MontageOptions& options = {});

} // namespace densa::app
