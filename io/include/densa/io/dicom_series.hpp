// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"
#include "densa/io/dicom_scan.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace densa::io {

/// How to treat series that are not a regular grid.
struct DicomLoadOptions {
  /// Gantry tilt (slices stepped off their normal) is corrected by shifting every slice in-plane
  /// onto a rectilinear grid, with bilinear interpolation, as dcm2niix does. When false, a tilted
  /// series is refused with a clear error.
  bool correctGantryTilt = true;
  /// Non-uniform spacing or missing slices are refused by default; when true the series is
  /// resampled (linear along the normal) to its median slice step instead.
  bool resampleIrregular = false;
  /// Relative tolerance on slice steps before a series counts as non-uniform.
  double spacingTolerance = 0.02;
  /// Decoding threads (0: one per core).
  unsigned threads = 0;
};

/// Where a loaded volume came from, for DICOM SEG and reports.
struct DicomProvenance {
  std::string seriesId;
  std::string seriesInstanceUid;
  std::string studyInstanceUid;
  std::string frameOfReferenceUid;
  std::string sopClassUid;
  std::string modality;
  std::string description;
  std::vector<std::filesystem::path> files;  ///< in slice order (k = 0, 1, …)
  std::vector<std::string> sopInstanceUids;  ///< in slice order
  std::vector<std::string> transferSyntaxes; ///< distinct UIDs
};

/// A loaded series.
struct LoadedSeries {
  /// int16 when the rescaled values are integers that fit (CT in HU), float32 otherwise.
  core::AnyVolume volume;
  DicomProvenance provenance;
  std::vector<std::string> warnings;
  /// Gantry tilt found, degrees (0 when none).
  double tiltDegrees = 0;
};

/// Loads a series: slices sorted by position along the slice normal (never by file name or
/// InstanceNumber), pixels decoded by GDCM through ITK (every transfer syntax GDCM supports:
/// uncompressed LE/BE, deflate, RLE, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000),
/// rescale slope/intercept applied (HU for CT). Geometry: origin = position of the first slice,
/// direction columns = row, column and slice normal (right-handed), spacing = pixel spacing and
/// the mean slice step. Throws core::InputError naming the file and the problem for missing
/// slices, non-uniform spacing, duplicate positions, multi-frame files, inconsistent matrix
/// size, truncated or undecodable pixel data.
[[nodiscard]] LoadedSeries loadDicomSeries(const DicomSeries& series,
                                           const DicomLoadOptions& options = {});

} // namespace densa::io
