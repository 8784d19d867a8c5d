// SPDX-License-Identifier: Apache-2.0
#include "densa/app/cases.hpp"

#include "densa/core/error.hpp"
#include "densa/core/hash.hpp"
#include "densa/io/image_file.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>

namespace densa::app {

namespace fs = std::filesystem;

namespace {

std::string stem(const fs::path& file) {
  std::string name = file.filename().string();
  for (const char* ext : {".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"}) {
    const std::string e = ext;
    if (name.size() > e.size() && name.ends_with(e)) {
      return name.substr(0, name.size() - e.size());
    }
  }
  return file.stem().string();
}

void addUnique(CaseList& list, CaseInput c) {
  std::set<std::string> used;
  for (const auto& e : list.cases) {
    used.insert(e.id);
  }
  const std::string base = c.id;
  for (int n = 2; used.contains(c.id); ++n) {
    c.id = base + "-" + std::to_string(n);
  }
  list.cases.push_back(std::move(c));
}

void addDicomCases(CaseList& list,
                   const fs::path& root,
                   const io::DicomScan& scan,
                   const std::optional<std::string>& seriesFilter) {
  const bool anyCt =
      std::any_of(scan.series.begin(), scan.series.end(), [](const auto& s) { return s.isCt(); });
  for (const auto& s : scan.series) {
    if (seriesFilter && s.id != *seriesFilter && s.seriesInstanceUid != *seriesFilter) {
      continue;
    }
    if (anyCt && !s.isCt() && !seriesFilter) {
      list.warnings.push_back("series " + s.id + " (" + s.modality + ") skipped: not CT");
      continue;
    }
    // Name: the folder of the series relative to the root, plus a short hash of the series id.
    std::error_code ec;
    fs::path rel = fs::relative(
        s.files.front().file.parent_path(), fs::is_directory(root) ? root : root.parent_path(), ec);
    std::string folder = ec || rel.empty() || rel == "." ? std::string("dicom") : rel.string();
    std::replace(folder.begin(), folder.end(), '/', '_');
    CaseInput c;
    c.id = sanitizeFileName(folder + "_s" + std::to_string(s.files.front().seriesNumber) + "_" +
                            core::stableHashHex(s.id, 8));
    c.path = root;
    c.series = s;
    c.description =
        s.modality + " '" + s.description + "' " + std::to_string(s.sliceCount()) + " slices";
    addUnique(list, std::move(c));
  }
}

} // namespace

std::string sanitizeFileName(std::string_view raw) {
  std::string out;
  for (const char c : raw) {
    if (out.size() >= 80) {
      break;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    out.push_back(ok ? c : '_');
  }
  while (out.find("..") != std::string::npos) {
    out.replace(out.find(".."), 2, "_");
  }
  while (!out.empty() && out.front() == '.') {
    out.front() = '_';
  }
  return out.empty() ? std::string("case") : out;
}

CaseList discoverCases(const fs::path& input, const std::optional<std::string>& seriesFilter) {
  std::error_code ec;
  if (!fs::exists(input, ec)) {
    throw core::InputError(input, "no such file or folder");
  }
  CaseList list;
  if (fs::is_regular_file(input, ec)) {
    if (io::imageFormatFromPath(input)) {
      addUnique(list,
                {sanitizeFileName(stem(input)), input, std::nullopt, input.filename().string()});
      return list;
    }
    if (input.extension() == ".csv" || input.extension() == ".txt") {
      std::ifstream in(input);
      std::string line;
      std::size_t lineNo = 0;
      while (std::getline(in, line)) {
        ++lineNo;
        if (!line.empty() && line.back() == '\r') {
          line.pop_back();
        }
        if (line.empty() || line[0] == '#' ||
            (lineNo == 1 && line.find("path") != std::string::npos)) {
          continue;
        }
        std::string id;
        std::string path = line;
        if (const auto comma = line.find(','); comma != std::string::npos) {
          id = line.substr(0, comma);
          path = line.substr(comma + 1);
        }
        fs::path p = path;
        if (p.is_relative()) {
          p = input.parent_path() / p;
        }
        if (!fs::exists(p, ec)) {
          list.skipped.push_back({p,
                                  "listed in " + input.filename().string() + " line " +
                                      std::to_string(lineNo) + " but does not exist"});
          continue;
        }
        if (io::imageFormatFromPath(p) && fs::is_regular_file(p, ec)) {
          addUnique(list,
                    {sanitizeFileName(id.empty() ? stem(p) : id),
                     p,
                     std::nullopt,
                     p.filename().string()});
        } else {
          const io::DicomScan scan = io::scanDicom(p);
          const std::size_t before = list.cases.size();
          addDicomCases(list, p, scan, seriesFilter);
          if (!id.empty() && list.cases.size() == before + 1) {
            list.cases.back().id = sanitizeFileName(id);
          }
          if (list.cases.size() == before) {
            list.skipped.push_back({p, "no DICOM image series found"});
          }
        }
      }
    } else {
      const io::DicomScan scan = io::scanDicom(input);
      addDicomCases(list, input, scan, seriesFilter);
      list.skipped = scan.skipped;
    }
  } else {
    // A folder: DICOM series and image files under it.
    const io::DicomScan scan = io::scanDicom(input);
    addDicomCases(list, input, scan, seriesFilter);
    for (const auto& sk : scan.skipped) {
      if (io::imageFormatFromPath(sk.file) && !seriesFilter) {
        std::string lowerName = sk.file.filename().string();
        std::transform(lowerName.begin(), lowerName.end(), lowerName.begin(), [](unsigned char ch) {
          return static_cast<char>(std::tolower(ch));
        });
        if (lowerName.find("label") != std::string::npos ||
            lowerName.find("seg") != std::string::npos ||
            lowerName.find("mask") != std::string::npos) {
          list.skipped.push_back({sk.file, "looks like a label map (name), not a CT"});
          continue;
        }
        addUnique(
            list,
            {sanitizeFileName(stem(sk.file)), sk.file, std::nullopt, sk.file.filename().string()});
      } else if (sk.file.extension() != ".raw" && sk.file.extension() != ".zraw") {
        list.skipped.push_back(sk);
      }
    }
  }
  if (list.cases.empty()) {
    throw core::InputError(input,
                           seriesFilter ? "no series matches '" + *seriesFilter + "'"
                                        : std::string("holds no CT series and no image file"));
  }
  return list;
}

} // namespace densa::app
