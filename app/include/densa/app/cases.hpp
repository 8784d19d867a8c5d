// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/io/dicom_scan.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace densa::app {

/// One volume to process in a batch.
struct CaseInput {
  std::string id;                        ///< safe as a file name, unique in the batch
  std::filesystem::path path;            ///< an image file, or the DICOM root it was found under
  std::optional<io::DicomSeries> series; ///< set for DICOM cases
  std::string description;               ///< for people: file name or series description
};

/// What a batch input holds.
struct CaseList {
  std::vector<CaseInput> cases;
  std::vector<io::SkippedFile> skipped; ///< files that are no case, with the reason
  std::vector<std::string> warnings;
};

/// Finds the cases of `input`: an image file (one case); a CSV list (one path per line, optionally
/// `id,path`; a header line naming "path" is skipped; relative paths are relative to the CSV); or
/// a folder, in which every CT series (every image series when none is CT) under the tree and every
/// NIfTI/NRRD/MetaImage file is a case. `seriesFilter` keeps only DICOM series whose id or UID
/// matches. Throws core::InputError when `input` does not exist or holds no case.
[[nodiscard]] CaseList discoverCases(const std::filesystem::path& input,
                                     const std::optional<std::string>& seriesFilter = std::nullopt);

/// Turns arbitrary text (DICOM tags, file names) into a safe file name: letters, digits, '-', '_'
/// and '.', no leading dot, no "..", at most 80 characters, never empty.
[[nodiscard]] std::string sanitizeFileName(std::string_view raw);

} // namespace densa::app
