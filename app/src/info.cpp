// SPDX-License-Identifier: Apache-2.0
#include "densa/app/commands.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/core/error.hpp"
#include "densa/io/dicom_scan.hpp"
#include "densa/io/dicom_series.hpp"
#include "densa/io/image_file.hpp"

#include "progress.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>

namespace densa::app {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json vec(const core::Vec3& v) {
  return json::array({v[0], v[1], v[2]});
}

json describeVolume(const core::AnyVolume& volume) {
  const auto& g = core::geometryOf(volume);
  const auto& s = core::sizeOf(volume);
  const auto range = core::valueRange(volume);
  return {{"size", json::array({s[0], s[1], s[2]})},
          {"spacing_mm", vec(g.spacing)},
          {"origin_mm", vec(g.origin)},
          {"direction", json(std::vector<double>(g.direction.begin(), g.direction.end()))},
          {"orientation", core::orientationCode(g.direction)},
          {"pixel_type", std::string(core::toString(core::pixelType(volume)))},
          {"value_range", json::array({range.min, range.max})}};
}

std::string fmt(double v, int precision = 4) {
  std::ostringstream s;
  s << std::setprecision(precision) << v;
  return s.str();
}

void printVolume(std::ostream& out, const json& v, const std::string& indent) {
  const auto& size = v["size"];
  const auto& sp = v["spacing_mm"];
  const auto& o = v["origin_mm"];
  out << indent << "size       " << size[0] << " x " << size[1] << " x " << size[2] << " voxels ("
      << v["pixel_type"].get<std::string>() << ")\n";
  out << indent << "spacing    " << fmt(sp[0]) << " x " << fmt(sp[1]) << " x " << fmt(sp[2])
      << " mm\n";
  out << indent << "origin     (" << fmt(o[0], 6) << ", " << fmt(o[1], 6) << ", " << fmt(o[2], 6)
      << ") mm LPS\n";
  out << indent << "orientation " << v["orientation"].get<std::string>() << "\n";
  out << indent << "values     " << fmt(v["value_range"][0], 6) << " … "
      << fmt(v["value_range"][1], 6) << "\n";
}

} // namespace

int runInfo(const InfoOptions& options, std::ostream& out, std::ostream& err) {
  std::error_code ec;
  if (!fs::exists(options.input, ec)) {
    throw core::InputError(options.input, "no such file or folder");
  }
  json report;
  report["input"] = options.input.string();

  if (io::imageFormatFromPath(options.input) && fs::is_regular_file(options.input, ec)) {
    const auto volume = io::readImage(options.input);
    report["kind"] = "image";
    report["format"] = std::string(io::toString(*io::imageFormatFromPath(options.input)));
    report["volume"] = describeVolume(volume);
    if (options.json) {
      out << report.dump(2) << "\n";
    } else {
      out << options.input.string() << "  [" << report["format"].get<std::string>() << "]\n";
      printVolume(out, report["volume"], "  ");
    }
    return kExitOk;
  }

  Progress progress("scanning", err);
  io::ScanOptions scanOptions;
  scanOptions.progress = [&](std::size_t done, std::size_t total) {
    progress.update(done, total);
  };
  const io::DicomScan scan = io::scanDicom(options.input, scanOptions);
  progress.finish();
  report["kind"] = "dicom";
  report["files_seen"] = scan.filesSeen;
  json series = json::array();
  int failures = 0;
  for (std::size_t i = 0; i < scan.series.size(); ++i) {
    const auto& s = scan.series[i];
    json j{{"index", i},
           {"id", s.id},
           {"series_instance_uid", s.seriesInstanceUid},
           {"modality", s.modality},
           {"description", s.description},
           {"image_type", s.imageType},
           {"files", s.files.size()},
           {"slices", s.sliceCount()},
           {"rows", s.rows},
           {"columns", s.columns},
           {"slice_thickness_mm", s.sliceThickness}};
    json warnings = s.warnings;
    if (!options.headersOnly) {
      try {
        io::DicomLoadOptions load;
        load.resampleIrregular = options.resampleIrregular;
        load.correctGantryTilt = options.correctTilt;
        const auto loaded = io::loadDicomSeries(s, load);
        j["volume"] = describeVolume(loaded.volume);
        warnings = loaded.warnings;
        j["transfer_syntaxes"] = loaded.provenance.transferSyntaxes;
      } catch (const core::InputError& e) {
        j["error"] = e.what();
        ++failures;
      }
    }
    j["warnings"] = warnings;
    series.push_back(std::move(j));
  }
  report["series"] = series;
  json skipped = json::array();
  for (const auto& sk : scan.skipped) {
    skipped.push_back({{"file", sk.file.string()}, {"reason", sk.reason}});
  }
  report["skipped"] = skipped;

  if (options.json) {
    out << report.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    out << options.input.string() << ": " << scan.filesSeen << " file(s), " << scan.series.size()
        << " image series, " << scan.skipped.size() << " skipped\n";
    for (const auto& j : series) {
      out << "\n[" << j["index"] << "] " << j["id"].get<std::string>() << "\n";
      out << "  modality   " << j["modality"].get<std::string>() << "   '"
          << j["description"].get<std::string>() << "'   " << j["image_type"].get<std::string>()
          << "\n";
      out << "  slices     " << j["slices"] << " (" << j["files"] << " files)\n";
      if (j.contains("volume")) {
        printVolume(out, j["volume"], "  ");
      }
      if (j.contains("error")) {
        out << "  ERROR      " << j["error"].get<std::string>() << "\n";
      }
      for (const auto& w : j["warnings"]) {
        out << "  warning    " << w.get<std::string>() << "\n";
      }
    }
    if (!scan.skipped.empty()) {
      out << "\nskipped:\n";
      std::size_t shown = 0;
      for (const auto& sk : scan.skipped) {
        if (++shown > 20) {
          out << "  … and " << scan.skipped.size() - 20 << " more (see --json)\n";
          break;
        }
        out << "  " << sk.file.string() << ": " << sk.reason << "\n";
      }
    }
  }
  if (scan.series.empty()) {
    err << "densa: error: " << options.input.string() << ": no readable image found\n";
    return kExitBadInput;
  }
  return failures == static_cast<int>(scan.series.size()) ? kExitBadInput : kExitOk;
}

} // namespace densa::app
