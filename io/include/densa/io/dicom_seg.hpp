// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"
#include "densa/io/dicom_series.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace densa::io {

/// One segment of a DICOM SEG: which label value it holds and how it is coded.
struct SegmentCode {
  std::uint8_t label = 1;
  std::string name;                          ///< SegmentLabel, e.g. "Liver"
  std::string categoryCode, categoryMeaning; ///< SNOMED CT (scheme SCT)
  std::string typeCode, typeMeaning;         ///< SNOMED CT (scheme SCT)
};

/// Liver (SCT 10200004, category Anatomical Structure 123037004) for label 1 and liver tumour
/// (Neoplasm SCT 108369006, category Morphologically Altered Structure 49755003) for label 2.
[[nodiscard]] std::vector<SegmentCode> liverTumourSegments();

struct DicomSegOptions {
  std::string seriesDescription = "Densa liver and tumour segmentation";
  int seriesNumber = 901;
  std::string algorithmName = "Densa H-DenseUNet";
  std::string softwareVersion = "0.1.0";
};

/// Writes `labels` as a binary DICOM Segmentation (DCMTK dcmseg) that references the source
/// series (patient, study and frame of reference imported from its first file; each frame derived
/// from the source image of the same slice). `labels` must lie on the grid of the loaded series.
/// Only segments with voxels are written, one frame per slice that holds them. Written atomically.
/// Throws core::InputError when the source is unusable or the file cannot be written.
void writeDicomSeg(const core::LabelMap& labels,
                   const DicomProvenance& source,
                   const std::filesystem::path& file,
                   const std::vector<SegmentCode>& segments = liverTumourSegments(),
                   const DicomSegOptions& options = {});

/// Reads a binary DICOM SEG back onto `grid` (size and geometry of the series it segments):
/// every frame is placed at the slice whose position matches its ImagePositionPatient, and its
/// voxels take the label of its segment (`segments` maps segment number 1, 2, … to labels in
/// order). Throws core::InputError on a malformed SEG or a frame off the grid.
[[nodiscard]] core::LabelMap readDicomSeg(
    const std::filesystem::path& file,
    const core::Size3& size,
    const core::Geometry& geometry,
    const std::vector<SegmentCode>& segments = liverTumourSegments());

} // namespace densa::io
