// SPDX-License-Identifier: Apache-2.0
#include "densa/app/batch.hpp"
#include "densa/app/cases.hpp"
#include "densa/app/commands.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/app/segmenters.hpp"

#include <ostream>

namespace densa::app {

int runSegment(const SegmentOptions& options, std::ostream& out, std::ostream& err) {
  const std::filesystem::path model = options.model ? *options.model : defaultModelPath();
  SegmenterOptions segmenterOptions;
  segmenterOptions.device = options.device;
  segmenterOptions.coarseModel = options.coarseModel;
  segmenterOptions.liverThreshold = options.liverThreshold;
  segmenterOptions.tumourThreshold = options.tumourThreshold;
  segmenterOptions.minLesionMl = options.minLesionMl;
  segmenterOptions.roi = options.liverBox ? RoiMode::LiverBox : RoiMode::Full;
  segmenterOptions.inPlaneMm = options.inPlaneMm;
  segmenterOptions.precision = options.precision;
  const auto segmenter = loadSegmenter(model, segmenterOptions); // once for all cases

  const CaseList cases = discoverCases(options.input, options.series);
  for (const auto& w : cases.warnings) {
    err << "densa: warning: " << w << "\n";
  }
  out << "model " << segmenter->identity().id << " (" << model.string() << ")\n"
      << cases.cases.size() << " case(s) in " << options.input.string();
  if (!cases.skipped.empty()) {
    out << ", " << cases.skipped.size() << " file(s) skipped (see manifest.json)";
  }
  out << "\n";

  BatchOptions batch;
  batch.output = options.output;
  batch.resume = options.resume;
  batch.overwrite = options.overwrite;
  batch.writeSeg = !options.noSeg;
  batch.preview = options.preview;
  batch.dicom.resampleIrregular = options.resampleIrregular;
  batch.dicom.correctGantryTilt = options.correctTilt;
  const BatchReport report = runBatch(cases, *segmenter, batch, err);
  out << report.count(CaseOutcome::Status::Done) << " done, "
      << report.count(CaseOutcome::Status::Failed) << " failed, "
      << report.count(CaseOutcome::Status::Skipped) << " skipped; see "
      << (options.output / "manifest.json").string() << "\n";
  for (const auto& c : report.cases) {
    if (c.status == CaseOutcome::Status::Failed) {
      err << "densa: case " << c.id << " failed: " << c.reason << "\n";
    }
  }
  return report.exitCode() == 0 ? kExitOk : kExitSomeFailed;
}

} // namespace densa::app
