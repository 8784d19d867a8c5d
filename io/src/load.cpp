// SPDX-License-Identifier: Apache-2.0
#include "densa/io/load.hpp"

#include "densa/core/error.hpp"
#include "densa/io/image_file.hpp"

namespace densa::io {

LoadedVolume loadVolume(const std::filesystem::path& path, const LoadOptions& options) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw core::InputError(path, "no such file or folder");
  }
  if (imageFormatFromPath(path) && std::filesystem::is_regular_file(path, ec)) {
    return {readImage(path), path, std::nullopt, {}};
  }
  const DicomScan scan = scanDicom(path);
  if (scan.series.empty()) {
    std::string why = "no DICOM image series found";
    if (!scan.skipped.empty()) {
      why += " (" + std::to_string(scan.skipped.size()) +
             " file(s) skipped; first: " + scan.skipped.front().file.filename().string() + ": " +
             scan.skipped.front().reason + ")";
    }
    throw core::InputError(path, why);
  }
  const DicomSeries& series = selectSeries(scan, options.selection);
  LoadedSeries loaded = loadDicomSeries(series, options.dicom);
  LoadedVolume out{
      std::move(loaded.volume), path, std::move(loaded.provenance), std::move(loaded.warnings)};
  if (scan.series.size() > 1) {
    out.warnings.push_back(std::to_string(scan.series.size()) + " series found; loaded " +
                           series.id + " (choose another with --series)");
  }
  return out;
}

} // namespace densa::io
