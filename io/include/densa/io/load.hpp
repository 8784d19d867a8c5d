// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"
#include "densa/io/dicom_scan.hpp"
#include "densa/io/dicom_series.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace densa::io {

/// One volume, from whichever source a user pointed at.
struct LoadedVolume {
  core::AnyVolume volume;
  std::filesystem::path source;
  std::optional<DicomProvenance> dicom; ///< set when the source was DICOM
  std::vector<std::string> warnings;
};

struct LoadOptions {
  SeriesSelection selection;
  DicomLoadOptions dicom;
};

/// Loads `path`: a NIfTI/NRRD/MetaImage file, or a DICOM file or folder tree (the series chosen by
/// `options.selection`, see selectSeries). Throws core::InputError naming the file and problem.
[[nodiscard]] LoadedVolume loadVolume(const std::filesystem::path& path,
                                      const LoadOptions& options = {});

} // namespace densa::io
