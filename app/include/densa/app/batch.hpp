// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/app/cases.hpp"
#include "densa/app/segmenter.hpp"
#include "densa/io/dicom_series.hpp"

#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

namespace densa::app {

struct BatchOptions {
  std::filesystem::path output;
  bool resume = false;    ///< --continue: keep cases whose report.json exists for the same model
  bool overwrite = false; ///< replace finished cases
  bool writeSeg = true;   ///< DICOM SEG for DICOM inputs
  bool preview = false;   ///< preview.png per case
  io::DicomLoadOptions dicom;
};

/// How one case ended.
struct CaseOutcome {
  enum class Status { Done, Failed, Skipped };
  std::string id;
  Status status = Status::Failed;
  std::string reason; ///< for Failed and Skipped
  double seconds = 0;
  double liverMl = 0;
  double tumourMl = 0;
  double burdenPercent = 0;
  std::size_t lesions = 0;
  double largestLesionMl = 0;
  double largestDiameterMm = 0;
};

struct BatchReport {
  std::vector<CaseOutcome> cases;
  [[nodiscard]] std::size_t count(CaseOutcome::Status status) const;
  /// 0 when no case failed, 3 otherwise.
  [[nodiscard]] int exitCode() const;
};

/// Segments every case with one loaded `segmenter`. Per case, in OUTPUT/<id>/ and each written
/// atomically: label.nii.gz (0/1/2 on the input grid), seg.dcm (DICOM inputs), preview.png
/// (with `preview`), and report.json last — its presence marks the case finished. The next
/// case is read while the current one is segmented. A failing case is recorded and the batch
/// goes on. Per run: OUTPUT/cohort.csv and OUTPUT/manifest.json. Progress goes to `log`.
[[nodiscard]] BatchReport runBatch(const CaseList& cases,
                                   const Segmenter& segmenter,
                                   const BatchOptions& options,
                                   std::ostream& log);

} // namespace densa::app
