// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace densa::io {

/// What to put in the headers of a written CT series.
struct DicomWriteOptions {
  std::string patientName = "SYNTHETIC^PHANTOM";
  std::string patientId = "DENSA-SYNTH";
  std::string seriesDescription = "SYNTHETIC CT (Densa)";
  std::string studyInstanceUid;    ///< generated when empty
  std::string seriesInstanceUid;   ///< generated when empty
  std::string frameOfReferenceUid; ///< generated when empty
  int seriesNumber = 1;
  std::string filePrefix = "slice"; ///< files are <prefix>_<k:04>.dcm
  /// Mark the images as synthetic (ImageType DERIVED\SECONDARY, BurnedInAnnotation NO and a
  /// "SYNTHETIC" ImageComments). Off only for tests that need ORIGINAL\PRIMARY\AXIAL.
  bool synthetic = true;
};

/// Writes `ct` (HU) as a CT Image Storage series, one file per k slice, Explicit VR Little Endian,
/// stored as unsigned 16-bit with RescaleIntercept -1024. ImagePositionPatient and
/// ImageOrientationPatient follow the volume's geometry. Each file is written atomically.
/// Returns the files in slice order. Throws core::InputError when a file cannot be written.
std::vector<std::filesystem::path> writeDicomSeries(const core::Volume<std::int16_t>& ct,
                                                    const std::filesystem::path& folder,
                                                    DicomWriteOptions options = {});

} // namespace densa::io
