// SPDX-License-Identifier: Apache-2.0
#include "densa/app/datasets.hpp"

#include "densa/core/error.hpp"
#include "densa/core/hash.hpp"
#include "densa/core/orient.hpp"
#include "densa/core/resample.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/io/image_file.hpp"
#include "densa/io/load.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <random>
#include <regex>
#include <sstream>

namespace densa::app {

namespace fs = std::filesystem;

namespace {

std::string stemOf(const fs::path& p) {
  std::string n = p.filename().string();
  for (const std::string ext : {".nii.gz", ".nii", ".nrrd", ".mha"}) {
    if (n.size() > ext.size() && n.ends_with(ext)) {
      return n.substr(0, n.size() - ext.size());
    }
  }
  return p.stem().string();
}

} // namespace

Dataset readDataset(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw core::InputError(path, "no such dataset");
  }
  Dataset d;
  d.root = path;
  if (fs::is_regular_file(path, ec)) {
    d.layout = DatasetLayout::CsvManifest;
    std::ifstream in(path);
    std::string line;
    std::size_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (!line.empty() && line.back() == '\r') {
        line.pop_back();
      }
      if (line.empty() || line[0] == '#' || (n == 1 && line.find("image") != std::string::npos)) {
        continue;
      }
      const auto comma = line.find(',');
      if (comma == std::string::npos) {
        throw core::InputError(path, "line " + std::to_string(n) + ": expected 'image,label'");
      }
      fs::path image = line.substr(0, comma);
      fs::path label = line.substr(comma + 1);
      if (image.is_relative()) {
        image = path.parent_path() / image;
      }
      if (label.is_relative()) {
        label = path.parent_path() / label;
      }
      d.cases.push_back({stemOf(image), image, label});
    }
  } else if (fs::exists(path / "dataset.json")) {
    d.layout = DatasetLayout::Decathlon;
    std::ifstream in(path / "dataset.json");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
      for (const auto& t : j.at("training")) {
        const fs::path image = path / t.at("image").get<std::string>();
        const fs::path label = path / t.at("label").get<std::string>();
        d.cases.push_back({stemOf(image), image, label});
      }
    } catch (const nlohmann::json::exception& e) {
      throw core::InputError(path / "dataset.json",
                             std::string("not a Decathlon dataset.json: ") + e.what());
    }
  } else {
    // LiTS: volume-N / segmentation-N, possibly in sub-folders.
    const std::regex volume(R"(volume-(\d+)\.nii(\.gz)?)");
    std::map<std::string, fs::path> volumes;
    std::map<std::string, fs::path> segmentations;
    for (const auto& e : fs::recursive_directory_iterator(path, ec)) {
      const std::string name = e.path().filename().string();
      std::smatch m;
      if (std::regex_match(name, m, volume)) {
        volumes[m[1]] = e.path();
      } else if (std::regex_match(name, m, std::regex(R"(segmentation-(\d+)\.nii(\.gz)?)"))) {
        segmentations[m[1]] = e.path();
      }
    }
    if (!volumes.empty()) {
      d.layout = DatasetLayout::Lits;
      for (const auto& [n, v] : volumes) {
        if (!segmentations.contains(n)) {
          throw core::InputError(v, "has no segmentation-" + n + " next to it");
        }
        d.cases.push_back({"lits-" + n, v, segmentations[n]});
      }
    } else {
      d.layout = DatasetLayout::Phantoms;
      for (const auto& e : fs::directory_iterator(path, ec)) {
        if (e.is_directory() && fs::exists(e.path() / "label.nii.gz") &&
            fs::is_directory(e.path() / "dicom")) {
          d.cases.push_back(
              {e.path().filename().string(), e.path() / "dicom", e.path() / "label.nii.gz"});
        }
      }
    }
  }
  if (d.cases.empty()) {
    throw core::InputError(
        path, "no labelled case found (expected a LiTS, Decathlon, CSV or phantom layout)");
  }
  for (const auto& c : d.cases) {
    if (!fs::exists(c.image) || !fs::exists(c.label)) {
      throw core::InputError(fs::exists(c.image) ? c.label : c.image,
                             "listed in the dataset but missing");
    }
  }
  std::sort(
      d.cases.begin(), d.cases.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return d;
}

Split splitCases(const std::vector<LabelledCase>& cases, int folds, int fold, std::uint64_t seed) {
  Split s;
  if (folds <= 1) {
    s.train = cases;
    return s;
  }
  if (fold < 0 || fold >= folds) {
    throw core::InvalidArgument("fold " + std::to_string(fold) + " is not in 0.." +
                                std::to_string(folds - 1));
  }
  std::vector<std::size_t> order(cases.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  for (std::size_t i = 0; i < order.size(); ++i) {
    (static_cast<int>(i % static_cast<std::size_t>(folds)) == fold ? s.validation : s.train)
        .push_back(cases[order[i]]);
  }
  return s;
}

TrainingVolume loadTrainingVolume(const LabelledCase& c,
                                  const std::optional<std::map<int, int>>& labelMap) {
  const io::LoadedVolume loaded = io::loadVolume(c.image);
  core::Volume<std::int16_t> ct;
  if (const auto* v = std::get_if<core::Volume<std::int16_t>>(&loaded.volume)) {
    ct = *v;
  } else if (const auto* f = std::get_if<core::Volume<float>>(&loaded.volume)) {
    ct = core::roundToInt16(*f);
  } else {
    throw core::InputError(c.image, "is an 8-bit image, not a CT in HU");
  }
  const core::AnyVolume rawLabels = io::readImage(c.label);
  core::LabelMap labels(core::sizeOf(rawLabels), core::geometryOf(rawLabels), 0);
  std::visit(
      [&](const auto& v) {
        for (std::size_t i = 0; i < v.voxelCount(); ++i) {
          const auto raw = static_cast<int>(v.voxels()[i]);
          int mapped = raw;
          if (labelMap) {
            const auto it = labelMap->find(raw);
            mapped = it == labelMap->end() ? 0 : it->second;
          } else if (raw < 0 || raw > 2) {
            throw core::InputError(
                c.label,
                "holds label " + std::to_string(raw) +
                    "; expected 0 background, 1 liver, 2 tumour (or give a label map)");
          }
          labels.voxels()[i] = static_cast<std::uint8_t>(mapped);
        }
      },
      rawLabels);
  if (labels.size() != ct.size() || !labels.geometry().approxEqual(ct.geometry(), 1e-3)) {
    labels = core::resampleOnto(labels, core::gridOf(ct), core::Interpolation::Nearest);
  }
  const core::AxisPermutation p = core::permutationToAxial(ct.geometry().direction);
  return {c.id, core::permuteAxes(ct, p), core::permuteAxes(labels, p)};
}

TrainingVolume loadTrainingVolumeCached(const LabelledCase& c,
                                        const fs::path& cacheDir,
                                        const std::optional<std::map<int, int>>& labelMap) {
  std::ostringstream key;
  for (const auto& p : {c.image, c.label}) {
    std::error_code ec;
    key << fs::absolute(p).string() << "|";
    if (fs::is_regular_file(p, ec)) {
      key << fs::file_size(p, ec) << "|" << fs::last_write_time(p, ec).time_since_epoch().count()
          << "|";
    } else {
      for (const auto& e : fs::directory_iterator(p, ec)) {
        key << e.path().filename().string() << ":" << e.file_size(ec) << ";";
      }
    }
  }
  if (labelMap) {
    for (const auto& [a, b] : *labelMap) {
      key << a << ">" << b << ",";
    }
  }
  const fs::path base = cacheDir / (c.id + "-" + std::to_string(core::stableHash(key.str())));
  const fs::path ctFile = base.string() + ".ct.nii";
  const fs::path labelFile = base.string() + ".labels.nii";
  if (fs::exists(ctFile) && fs::exists(labelFile)) {
    try {
      return {c.id,
              std::get<core::Volume<std::int16_t>>(io::readImage(ctFile)),
              std::get<core::LabelMap>(io::readImage(labelFile))};
    } catch (const std::exception&) {
      // a damaged cache entry: rebuild it below
    }
  }
  TrainingVolume v = loadTrainingVolume(c, labelMap);
  fs::create_directories(cacheDir);
  io::writeImage(v.ct, ctFile);
  io::writeImage(v.labels, labelFile);
  // Return what the cache holds (NIfTI keeps geometry in float32), so that a run and its resume,
  // which reads the cache, see bit-identical voxels and geometry.
  return {c.id,
          std::get<core::Volume<std::int16_t>>(io::readImage(ctFile)),
          std::get<core::LabelMap>(io::readImage(labelFile))};
}

} // namespace densa::app
