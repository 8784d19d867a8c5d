// SPDX-License-Identifier: Apache-2.0
#include "densa/app/batch.hpp"

#include "densa/app/case_io.hpp"
#include "densa/app/preview.hpp"
#include "densa/build_info.hpp"
#include "densa/core/error.hpp"
#include "densa/core/lesions.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/io/dicom_seg.hpp"
#include "densa/io/image_file.hpp"

#include "progress.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <fstream>
#include <future>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace densa::app {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string utcNow() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool finishedWith(const fs::path& report, const std::string& modelId) {
  std::ifstream in(report);
  if (!in) {
    return false;
  }
  try {
    const json j = json::parse(in);
    return j.at("model").at("id").get<std::string>() == modelId;
  } catch (const std::exception&) {
    return false;
  }
}

const char* statusName(CaseOutcome::Status s) {
  switch (s) {
  case CaseOutcome::Status::Done:
    return "done";
  case CaseOutcome::Status::Failed:
    return "failed";
  case CaseOutcome::Status::Skipped:
    return "skipped";
  }
  return "?";
}

} // namespace

std::size_t BatchReport::count(CaseOutcome::Status status) const {
  return static_cast<std::size_t>(std::count_if(
      cases.begin(), cases.end(), [&](const CaseOutcome& c) { return c.status == status; }));
}

int BatchReport::exitCode() const {
  return count(CaseOutcome::Status::Failed) > 0 ? 3 : 0;
}

BatchReport runBatch(const CaseList& list,
                     const Segmenter& segmenter,
                     const BatchOptions& options,
                     std::ostream& log) {
  const std::string started = utcNow();
  const ModelIdentity model = segmenter.identity();
  fs::create_directories(options.output);
  BatchReport report;
  Progress progress("segmenting", log);
  const bool tty = progress.interactive();

  // Decide up front which cases run, so that reading the next one can start early.
  std::vector<const CaseInput*> todo;
  for (const auto& c : list.cases) {
    const fs::path reportFile = options.output / c.id / "report.json";
    if (fs::exists(reportFile) && !options.overwrite) {
      CaseOutcome o;
      o.id = c.id;
      o.status = CaseOutcome::Status::Skipped;
      if (options.resume && finishedWith(reportFile, model.id)) {
        o.reason = "finished earlier (--continue)";
      } else if (options.resume) {
        todo.push_back(&c); // finished with another model or unreadable: redo
        continue;
      } else {
        o.reason = "outputs exist; use --continue to keep them or --overwrite to replace them";
      }
      report.cases.push_back(o);
      continue;
    }
    todo.push_back(&c);
  }

  std::future<LoadedCase> next;
  auto startLoad = [&](std::size_t i) {
    next = std::async(std::launch::async, loadCase, std::cref(*todo[i]), std::cref(options.dicom));
  };
  if (!todo.empty()) {
    startLoad(0);
  }
  for (std::size_t i = 0; i < todo.size(); ++i) {
    const CaseInput& c = *todo[i];
    const auto start = Clock::now();
    CaseOutcome o;
    o.id = c.id;
    try {
      LoadedCase loaded = next.get();
      if (i + 1 < todo.size()) {
        startLoad(i + 1); // overlaps with this case's inference
      }
      SegmentationResult result = segmenter.segment(loaded.ct, [&](double f) {
        progress.update(static_cast<double>(i) + f, static_cast<double>(todo.size()));
      });
      if (result.labels.size() != loaded.ct.size()) {
        throw core::InternalError("segmenter returned a label map of the wrong size");
      }
      const auto writeStart = Clock::now();
      const fs::path dir = options.output / c.id;
      fs::create_directories(dir);
      io::writeImage(result.labels, dir / "label.nii.gz");
      std::map<std::string, std::string> outputs{{"labels", "label.nii.gz"}};
      if (loaded.dicom && options.writeSeg) {
        try {
          io::writeDicomSeg(result.labels, *loaded.dicom, dir / "seg.dcm");
          outputs["dicom_seg"] = "seg.dcm";
        } catch (const core::InputError& e) {
          loaded.warnings.push_back(std::string("no DICOM SEG: ") + e.what());
        }
      }
      if (options.preview) {
        writeMontagePng(dir / "preview.png", loaded.ct, &result.labels);
        outputs["preview"] = "preview.png";
      }
      const core::LiverTumourStats stats = core::measureLiverTumour(result.labels);
      CaseReportInput r;
      r.caseId = c.id;
      r.source = c.path;
      r.description = c.description;
      r.loaded = &loaded;
      r.stats = &stats;
      r.model = model;
      r.seconds = result.seconds;
      r.seconds["load"] = loaded.seconds;
      r.seconds["write"] = since(writeStart);
      r.seconds["total"] = since(start) + loaded.seconds;
      r.outputs = outputs;
      io::writeTextAtomically(dir / "report.json", caseReportJson(r));
      o.status = CaseOutcome::Status::Done;
      o.liverMl = stats.liverVolumeMl;
      o.tumourMl = stats.tumourVolumeMl;
      o.burdenPercent = stats.tumourBurdenPercent;
      o.lesions = stats.lesions.size();
      if (!stats.lesions.empty()) {
        o.largestLesionMl = stats.lesions.front().volumeMl;
        for (const auto& l : stats.lesions) {
          o.largestDiameterMm = std::max(o.largestDiameterMm, l.longestDiameterMm);
        }
      }
    } catch (const std::exception& e) {
      if (i + 1 < todo.size() && !next.valid()) {
        startLoad(i + 1);
      }
      o.status = CaseOutcome::Status::Failed;
      o.reason = e.what();
    }
    o.seconds = since(start);
    report.cases.push_back(o);
    if (!tty) {
      std::ostringstream line;
      line << "[" << (i + 1) << "/" << todo.size() << "] " << c.id << ": " << statusName(o.status);
      if (o.status == CaseOutcome::Status::Done) {
        line << std::fixed << std::setprecision(1) << " in " << o.seconds << " s (liver "
             << o.liverMl << " mL, " << o.lesions << " lesion(s))";
      } else {
        line << ": " << o.reason;
      }
      log << line.str() << "\n";
    } else if (o.status == CaseOutcome::Status::Failed) {
      progress.finish();
      log << "densa: case " << c.id << " failed: " << o.reason << "\n";
    }
  }
  progress.finish();

  // Cohort table and manifest.
  std::ostringstream csv;
  csv << "case,status,liver_ml,tumour_ml,tumour_burden_percent,lesions,largest_lesion_ml,largest_"
         "diameter_mm,"
         "seconds,reason\n";
  json cases = json::array();
  for (const auto& o : report.cases) {
    std::string reason = o.reason;
    std::replace(reason.begin(), reason.end(), ',', ';');
    std::replace(reason.begin(), reason.end(), '\n', ' ');
    csv << o.id << "," << statusName(o.status) << "," << o.liverMl << "," << o.tumourMl << ","
        << o.burdenPercent << "," << o.lesions << "," << o.largestLesionMl << ","
        << o.largestDiameterMm << "," << o.seconds << "," << reason << "\n";
    cases.push_back({{"case", o.id},
                     {"status", statusName(o.status)},
                     {"reason", o.reason},
                     {"seconds", o.seconds}});
  }
  json skippedInputs = json::array();
  for (const auto& s : list.skipped) {
    skippedInputs.push_back({{"file", s.file.string()}, {"reason", s.reason}});
  }
  const json manifest{
      {"densa_version", std::string(build::kVersion) + " (git " + build::kGitHash + ")"},
      {"started_utc", started},
      {"finished_utc", utcNow()},
      {"model", {{"id", model.id}, {"file", model.file}}},
      {"done", report.count(CaseOutcome::Status::Done)},
      {"failed", report.count(CaseOutcome::Status::Failed)},
      {"skipped", report.count(CaseOutcome::Status::Skipped)},
      {"cases", cases},
      {"inputs_skipped", skippedInputs},
      {"warnings", list.warnings}};
  io::writeTextAtomically(options.output / "cohort.csv", csv.str());
  io::writeTextAtomically(options.output / "manifest.json", manifest.dump(2));
  return report;
}

} // namespace densa::app
