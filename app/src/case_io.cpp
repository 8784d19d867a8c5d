// SPDX-License-Identifier: Apache-2.0
#include "densa/app/case_io.hpp"

#include "densa/build_info.hpp"
#include "densa/core/error.hpp"
#include "densa/core/geometry.hpp"
#include "densa/io/image_file.hpp"
#include "densa/io/load.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <sstream>
#include <variant>

namespace densa::app {

using nlohmann::json;

namespace {

/// HU as int16 from whatever was read; 8-bit images are refused; odd value ranges warned about.
void setCt(LoadedCase& out, core::AnyVolume volume, const std::filesystem::path& source) {
  if (core::pixelType(volume) == core::PixelType::UInt8) {
    throw core::InputError(source, "is an 8-bit image (a label map?), not a CT in HU");
  }
  if (auto* ct = std::get_if<core::Volume<std::int16_t>>(&volume)) {
    out.ct = std::move(*ct);
  } else {
    out.ct = core::roundToInt16(std::get<core::Volume<float>>(volume)); // float CT: round to HU
  }
  const auto range = core::valueRange(out.ct);
  if (range.max < -500 || range.min > 0) {
    out.warnings.push_back("value range " + std::to_string(static_cast<int>(range.min)) + ".." +
                           std::to_string(static_cast<int>(range.max)) +
                           " does not look like CT in HU");
  }
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

LoadedCase loadCase(const CaseInput& c, const io::DicomLoadOptions& dicomOptions) {
  const auto start = std::chrono::steady_clock::now();
  LoadedCase out;
  core::AnyVolume volume;
  if (c.series) {
    io::LoadedSeries s = io::loadDicomSeries(*c.series, dicomOptions);
    volume = std::move(s.volume);
    out.dicom = std::move(s.provenance);
    out.warnings = std::move(s.warnings);
  } else {
    volume = io::readImage(c.path);
  }
  setCt(out, std::move(volume), c.path);
  out.seconds = secondsSince(start);
  return out;
}

LoadedCase loadCtPath(const std::filesystem::path& path) {
  const auto start = std::chrono::steady_clock::now();
  io::LoadedVolume loaded = io::loadVolume(path);
  LoadedCase out;
  out.dicom = std::move(loaded.dicom);
  out.warnings = std::move(loaded.warnings);
  setCt(out, std::move(loaded.volume), path);
  out.seconds = secondsSince(start);
  return out;
}

namespace {

// "5:1,6:2" -> lookup table. Without a map every value maps to itself; with one, values it does
// not name are background (label 1 of a multi-organ map is not the liver).
std::array<int, 256> parseMap(const std::string& text) {
  std::array<int, 256> table{};
  for (int i = 0; i < 256; ++i) {
    table[static_cast<std::size_t>(i)] = text.empty() ? i : 0;
  }
  std::stringstream s(text);
  std::string pair;
  while (std::getline(s, pair, ',')) {
    const auto colon = pair.find(':');
    int from = -1;
    int to = -1;
    if (colon != std::string::npos) {
      std::from_chars(pair.data(), pair.data() + colon, from);
      std::from_chars(pair.data() + colon + 1, pair.data() + pair.size(), to);
    }
    if (from < 0 || from > 255 || to < 0 || to > 2) {
      throw core::InvalidArgument("bad label map '" + pair +
                                  "' (expected FROM:TO, TO in 0..2, e.g. 5:1)");
    }
    table[static_cast<std::size_t>(from)] = to;
  }
  return table;
}

} // namespace

core::LabelMap loadLabelMap(const std::filesystem::path& file, const std::string& mapText) {
  const std::array<int, 256> map = parseMap(mapText);
  const bool mapAllOthersToZero = !mapText.empty();
  const core::AnyVolume any = io::readImage(file);
  if (core::pixelType(any) == core::PixelType::Float32) {
    throw core::InputError(file, "is a floating-point image, not a label map");
  }
  core::LabelMap labels(core::sizeOf(any), core::geometryOf(any), 0);
  bool bad = false;
  int badValue = 0;
  std::visit(
      [&](const auto& v) {
        for (std::size_t i = 0; i < v.voxelCount(); ++i) {
          const auto raw = static_cast<int>(v.voxels()[i]);
          int mapped = raw >= 0 && raw < 256 ? map[static_cast<std::size_t>(raw)] : raw;
          if (mapped > 2 || mapped < 0) {
            if (mapAllOthersToZero) {
              mapped = 0;
            } else if (!bad) {
              bad = true;
              badValue = raw;
            }
          }
          labels.voxels()[i] = static_cast<std::uint8_t>(std::clamp(mapped, 0, 2));
        }
      },
      any);
  if (bad) {
    throw core::InputError(file,
                           "holds label value " + std::to_string(badValue) +
                               "; expected 0 background, 1 liver, 2 tumour (map others, e.g. "
                               "5:1 for a TotalSegmentator liver)");
  }
  return labels;
}

namespace {

json lesionJson(const core::Lesion& l) {
  return {{"id", l.id},
          {"volume_ml", l.volumeMl},
          {"longest_axial_diameter_mm", l.longestDiameterMm},
          {"diameter_slice", l.diameterSlice},
          {"centroid_lps_mm", {l.centroidMm[0], l.centroidMm[1], l.centroidMm[2]}},
          {"voxels", l.voxels}};
}

} // namespace

std::string caseReportJson(const CaseReportInput& in) {
  if (in.loaded == nullptr || in.stats == nullptr) {
    throw core::InvalidArgument("caseReportJson needs the loaded case and its statistics");
  }
  const LoadedCase& loaded = *in.loaded;
  const core::LiverTumourStats& stats = *in.stats;
  json lesions = json::array();
  for (const auto& l : stats.lesions) {
    lesions.push_back(lesionJson(l));
  }
  json input{{"path", in.source.string()}, {"description", in.description}};
  if (loaded.dicom) {
    input["series_id"] = loaded.dicom->seriesId;
    input["series_instance_uid"] = loaded.dicom->seriesInstanceUid;
    input["study_instance_uid"] = loaded.dicom->studyInstanceUid;
    input["files"] = loaded.dicom->files.size();
  }
  const auto& g = loaded.ct.geometry();
  input["size"] = {loaded.ct.size()[0], loaded.ct.size()[1], loaded.ct.size()[2]};
  input["spacing_mm"] = {g.spacing[0], g.spacing[1], g.spacing[2]};
  input["orientation"] = core::orientationCode(g.direction);
  std::vector<std::string> warnings = loaded.warnings;
  warnings.insert(warnings.end(), in.warnings.begin(), in.warnings.end());
  const json report{
      {"case", in.caseId},
      {"densa_version", std::string(build::kVersion) + " (git " + build::kGitHash + ")"},
      {"model",
       {{"id", in.model.id},
        {"architecture", in.model.architecture},
        {"preset", in.model.preset},
        {"file", in.model.file},
        {"training_stage", in.model.trainingStage},
        {"precision", in.model.precision}}},
      {"input", input},
      {"liver_volume_ml", stats.liverVolumeMl},
      {"tumour_volume_ml", stats.tumourVolumeMl},
      {"tumour_burden_percent", stats.tumourBurdenPercent},
      {"lesion_count", stats.lesions.size()},
      {"lesions", lesions},
      {"timings_s", in.seconds},
      {"outputs", in.outputs},
      {"warnings", warnings}};
  return report.dump(2);
}

} // namespace densa::app
