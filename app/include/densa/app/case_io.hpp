// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/app/cases.hpp"
#include "densa/app/segmenter.hpp"
#include "densa/core/lesions.hpp"
#include "densa/core/volume.hpp"
#include "densa/io/dicom_series.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace densa::app {

/// A CT read for segmentation, in HU on its own grid.
struct LoadedCase {
  core::Volume<std::int16_t> ct;
  std::optional<io::DicomProvenance> dicom; ///< set for DICOM inputs
  std::vector<std::string> warnings;
  double seconds = 0; ///< reading time
};

/// Reads one case: its DICOM series (`c.series`) or its image file (`c.path`). Float images are
/// rounded to HU; 8-bit images (label maps) are refused; a value range that does not look like HU
/// adds a warning. Throws core::InputError naming the file and the problem.
[[nodiscard]] LoadedCase loadCase(const CaseInput& c,
                                  const io::DicomLoadOptions& dicomOptions = {});

/// Reads the CT at `path`: an image file, or a DICOM file or folder tree (its series chosen by
/// io::selectSeries' rules). Same conversions and errors as loadCase.
[[nodiscard]] LoadedCase loadCtPath(const std::filesystem::path& path);

/// Reads a label map (0 background, 1 liver, 2 tumour) from an image file. `map` ("5:1,6:2")
/// names the values to keep and what they become; every value it does not name is background (so
/// a multi-organ map such as TotalSegmentator's gives its liver with "5:1", and its spleen, 1,
/// does not become liver). Without a map, any value outside 0..2 is refused. Throws
/// core::InputError naming the file and the value, and core::InvalidArgument for a malformed map.
[[nodiscard]] core::LabelMap loadLabelMap(const std::filesystem::path& file,
                                          const std::string& map = {});

/// Everything the per-case report (report.json) states.
struct CaseReportInput {
  std::string caseId;
  std::filesystem::path source; ///< the input path
  std::string description;
  const LoadedCase* loaded = nullptr;
  const core::LiverTumourStats* stats = nullptr;
  ModelIdentity model;
  std::map<std::string, double> seconds;      ///< stage timings
  std::map<std::string, std::string> outputs; ///< e.g. {"labels", "label.nii.gz"}
  std::vector<std::string> warnings;          ///< in addition to the loaded case's
};

/// The per-case JSON report (liver volume in mL, tumour burden, lesion table with volume mL,
/// longest axial diameter mm and LPS centroid; model; input provenance; timings), as text. Used by
/// `densa segment` and by the viewer's export.
[[nodiscard]] std::string caseReportJson(const CaseReportInput& input);

} // namespace densa::app
