// SPDX-License-Identifier: Apache-2.0
#include "densa/io/dicom_scan.hpp"

#include "densa/core/error.hpp"
#include "densa/core/hash.hpp"

#include "dcmtk_setup.hpp"
#include "text.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

namespace densa::io {

namespace fs = std::filesystem;

namespace {

std::string getString(DcmItem& item, const DcmTagKey& tag, std::size_t maxLength = 256) {
  OFString value;
  if (item.findAndGetOFStringArray(tag, value).good()) {
    return detail::sanitize(std::string_view(value.c_str(), value.length()), maxLength);
  }
  return {};
}

std::optional<double> getDouble(DcmItem& item, const DcmTagKey& tag, unsigned long pos = 0) {
  Float64 value = 0;
  if (item.findAndGetFloat64(tag, value, pos).good() && std::isfinite(value)) {
    return value;
  }
  return std::nullopt;
}

int getInt(DcmItem& item, const DcmTagKey& tag, int fallback) {
  Sint32 s = 0;
  if (item.findAndGetSint32(tag, s).good()) {
    return s;
  }
  Uint16 u = 0;
  if (item.findAndGetUint16(tag, u).good()) {
    return u;
  }
  return fallback;
}

// A file with a DICM preamble, or a raw dataset that starts with a group 0x0002/0x0008 element
// (little or big endian). Anything else is not worth handing to the parser.
std::optional<std::string> notDicomReason(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return "cannot open file";
  }
  char head[132] = {};
  in.read(head, sizeof head);
  const auto got = in.gcount();
  if (got >= 132 && std::string_view(head + 128, 4) == "DICM") {
    return std::nullopt;
  }
  if (got >= 8) {
    const auto b0 = static_cast<unsigned char>(head[0]);
    const auto b1 = static_cast<unsigned char>(head[1]);
    if ((b1 == 0 && (b0 == 0x02 || b0 == 0x08)) || (b0 == 0 && (b1 == 0x02 || b1 == 0x08))) {
      return std::nullopt;
    }
  }
  if (got == 0) {
    return "empty file";
  }
  return "not DICOM (no DICM preamble and no DICOM element at the start)";
}

std::vector<fs::path> listFiles(const fs::path& root, std::vector<SkippedFile>& skipped) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_regular_file(root, ec)) {
    files.push_back(root);
    return files;
  }
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
  if (ec) {
    throw core::InputError(root, "cannot list folder: " + ec.message());
  }
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      skipped.push_back({it->path(), "cannot list: " + ec.message()});
      ec.clear();
      continue;
    }
    const auto& entry = *it;
    if (entry.is_regular_file(ec)) {
      const auto name = entry.path().filename().string();
      if (!name.empty() && name[0] == '.') {
        continue; // hidden files (.DS_Store, our own temporaries)
      }
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string rounded(double v, double step) {
  std::ostringstream s;
  s << std::llround(v / step);
  return s.str();
}

std::string geometryKey(const DicomFileInfo& f) {
  std::string key = f.frameOfReferenceUid + "|" + std::to_string(f.rows) + "x" +
                    std::to_string(f.columns) + "|" + std::to_string(f.frames > 1) + "|";
  if (f.orientation) {
    for (const double v : *f.orientation) {
      key += rounded(v, 1e-3) + ",";
    }
  }
  key += "|" + rounded(f.pixelSpacing[0], 1e-3) + "," + rounded(f.pixelSpacing[1], 1e-3);
  key += "|" + rounded(f.sliceThickness, 1e-2);
  return key;
}

// Transfer syntaxes DCMTK decodes itself (uncompressed, deflated): the copy kept when one instance
// is stored twice.
bool nativeSyntax(const std::string& uid) {
  return uid == "1.2.840.10008.1.2" || uid == "1.2.840.10008.1.2.1" ||
         uid == "1.2.840.10008.1.2.2" || uid == "1.2.840.10008.1.2.1.99";
}

// The same SOPInstanceUID twice in one series is one image stored twice (an export next to a
// compressed copy, say): one copy is kept (the uncompressed one, else the first by path), the
// others are named in a warning instead of failing the series as duplicate slices.
void dropDuplicateInstances(std::vector<DicomFileInfo>& members,
                            std::vector<std::string>& warnings) {
  std::map<std::pair<std::string, int>, std::size_t> kept; // (SOPInstanceUID, frame) -> index
  std::vector<DicomFileInfo> unique;
  std::vector<std::pair<fs::path, fs::path>> dropped; // (dropped, kept)
  for (auto& f : members) {
    if (f.sopInstanceUid.empty()) {
      unique.push_back(std::move(f));
      continue;
    }
    const auto [it, inserted] =
        kept.emplace(std::make_pair(f.sopInstanceUid, f.frame), unique.size());
    if (inserted) {
      unique.push_back(std::move(f));
      continue;
    }
    DicomFileInfo& current = unique[it->second];
    if (nativeSyntax(f.transferSyntax) && !nativeSyntax(current.transferSyntax)) {
      std::swap(current, f);
    }
    dropped.emplace_back(f.file, current.file);
  }
  if (!dropped.empty()) {
    warnings.push_back(std::to_string(dropped.size()) +
                       " file(s) hold instances already in this series (same SOPInstanceUID) and "
                       "were ignored, e.g. " +
                       dropped.front().first.string() + " (a copy of " +
                       dropped.front().second.string() + ")");
  }
  members = std::move(unique);
}

double normalPosition(const DicomFileInfo& f) {
  if (!f.position || !f.orientation) {
    return 0;
  }
  const auto& o = *f.orientation;
  const auto n = core::cross({o[0], o[1], o[2]}, {o[3], o[4], o[5]});
  return core::dot(*f.position, n);
}

} // namespace

std::size_t DicomSeries::sliceCount() const noexcept {
  std::size_t n = 0;
  for (const auto& f : files) {
    n += static_cast<std::size_t>(std::max(f.frames, 1));
  }
  return n;
}

bool DicomSeries::isOriginalAxial() const {
  return imageType.find("ORIGINAL") != std::string::npos &&
         imageType.find("AXIAL") != std::string::npos;
}

namespace {

// ImageOrientationPatient of `item`, each direction normalised; none when absent or degenerate.
std::optional<std::array<double, 6>> orientationOf(DcmItem& item) {
  std::array<double, 6> iop{};
  for (unsigned long i = 0; i < 6; ++i) {
    const auto v = getDouble(item, DCM_ImageOrientationPatient, i);
    if (!v) {
      return std::nullopt;
    }
    iop[i] = *v;
  }
  const double rn = core::norm({iop[0], iop[1], iop[2]});
  const double cn = core::norm({iop[3], iop[4], iop[5]});
  if (rn <= 0.5 || cn <= 0.5) {
    return std::nullopt;
  }
  for (int i = 0; i < 3; ++i) {
    iop[static_cast<std::size_t>(i)] /= rn;
    iop[static_cast<std::size_t>(i + 3)] /= cn;
  }
  return iop;
}

// PixelSpacing of `item` as {between columns, between rows}; none when absent or not positive.
std::optional<std::array<double, 2>> pixelSpacingOf(DcmItem& item) {
  const auto sy = getDouble(item, DCM_PixelSpacing, 0); // between rows
  const auto sx = getDouble(item, DCM_PixelSpacing, 1); // between columns
  if (sx && sy && *sx > 0 && *sy > 0) {
    return std::array<double, 2>{*sx, *sy};
  }
  return std::nullopt;
}

void loadHeader(const fs::path& file, DcmFileFormat& format) {
  detail::quietDcmtk();
  if (auto reason = notDicomReason(file)) {
    throw core::InputError(file, *reason);
  }
  const OFCondition status = format.loadFileUntilTag(
      file.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect, DCM_PixelData);
  if (status.bad()) {
    throw core::InputError(file, std::string("unreadable DICOM header: ") + status.text());
  }
}

DicomFileInfo headerOf(const fs::path& file, DcmFileFormat& format) {
  DcmDataset& ds = *format.getDataset();
  DicomFileInfo info;
  info.file = file;
  info.sopClassUid = getString(ds, DCM_SOPClassUID);
  if (info.sopClassUid.empty()) {
    info.sopClassUid = getString(*format.getMetaInfo(), DCM_MediaStorageSOPClassUID);
  }
  info.sopInstanceUid = getString(ds, DCM_SOPInstanceUID);
  if (info.sopInstanceUid.empty()) {
    info.sopInstanceUid = getString(*format.getMetaInfo(), DCM_MediaStorageSOPInstanceUID);
  }
  info.studyInstanceUid = getString(ds, DCM_StudyInstanceUID);
  info.seriesInstanceUid = getString(ds, DCM_SeriesInstanceUID);
  info.frameOfReferenceUid = getString(ds, DCM_FrameOfReferenceUID);
  info.modality = getString(ds, DCM_Modality, 16);
  info.seriesDescription = getString(ds, DCM_SeriesDescription);
  info.imageType = getString(ds, DCM_ImageType);
  info.transferSyntax = DcmXfer(ds.getOriginalXfer()).getXferID();
  info.seriesNumber = getInt(ds, DCM_SeriesNumber, 0);
  info.instanceNumber = getInt(ds, DCM_InstanceNumber, 0);
  info.rows = getInt(ds, DCM_Rows, 0);
  info.columns = getInt(ds, DCM_Columns, 0);
  info.frames = std::max(1, getInt(ds, DCM_NumberOfFrames, 1));
  info.bitsAllocated = getInt(ds, DCM_BitsAllocated, 0);
  if (info.rows <= 0 || info.columns <= 0) {
    const std::string what =
        info.modality.empty() ? std::string("DICOM object") : "a " + info.modality + " object";
    throw core::InputError(file, "not an image (" + what + " without Rows/Columns)");
  }
  const auto px = getDouble(ds, DCM_ImagePositionPatient, 0);
  const auto py = getDouble(ds, DCM_ImagePositionPatient, 1);
  const auto pz = getDouble(ds, DCM_ImagePositionPatient, 2);
  if (px && py && pz) {
    info.position = core::Vec3{*px, *py, *pz};
  }
  info.orientation = orientationOf(ds);
  if (const auto spacing = pixelSpacingOf(ds)) {
    info.pixelSpacing = *spacing;
    info.hasPixelSpacing = true;
  }
  info.sliceThickness = getDouble(ds, DCM_SliceThickness).value_or(0);
  info.rescaleSlope = getDouble(ds, DCM_RescaleSlope).value_or(1);
  info.rescaleIntercept = getDouble(ds, DCM_RescaleIntercept).value_or(0);
  info.gantryTilt = getDouble(ds, DCM_GantryDetectorTilt).value_or(0);
  return info;
}

// The first item of `sequence` in a frame's own functional groups, else in the shared ones.
DcmItem* functionalGroup(DcmItem* frame, DcmItem* shared, const DcmTagKey& sequence) {
  DcmItem* item = nullptr;
  if (frame != nullptr && frame->findAndGetSequenceItem(sequence, item, 0).good() &&
      item != nullptr) {
    return item;
  }
  if (shared != nullptr && shared->findAndGetSequenceItem(sequence, item, 0).good() &&
      item != nullptr) {
    return item;
  }
  return nullptr;
}

// One entry per frame of an enhanced image (see readDicomFrames); empty when some frame has no
// plane position.
std::vector<DicomFileInfo> framesOf(const DicomFileInfo& info, DcmDataset& ds) {
  DcmItem* shared = nullptr;
  if (ds.findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0).bad()) {
    shared = nullptr;
  }
  std::vector<DicomFileInfo> frames;
  for (int k = 0; k < info.frames; ++k) {
    DcmItem* own = nullptr;
    if (ds.findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, own, k).bad() ||
        own == nullptr) {
      return {};
    }
    DcmItem* plane = functionalGroup(own, shared, DCM_PlanePositionSequence);
    if (plane == nullptr) {
      return {};
    }
    const auto px = getDouble(*plane, DCM_ImagePositionPatient, 0);
    const auto py = getDouble(*plane, DCM_ImagePositionPatient, 1);
    const auto pz = getDouble(*plane, DCM_ImagePositionPatient, 2);
    if (!px || !py || !pz) {
      return {};
    }
    DicomFileInfo f = info;
    f.frame = k;
    f.frames = 1;
    f.position = core::Vec3{*px, *py, *pz};
    if (DcmItem* o = functionalGroup(own, shared, DCM_PlaneOrientationSequence)) {
      f.orientation = orientationOf(*o);
    }
    if (DcmItem* m = functionalGroup(own, shared, DCM_PixelMeasuresSequence)) {
      if (const auto spacing = pixelSpacingOf(*m)) {
        f.pixelSpacing = *spacing;
        f.hasPixelSpacing = true;
      }
      f.sliceThickness = getDouble(*m, DCM_SliceThickness).value_or(f.sliceThickness);
    }
    if (DcmItem* v = functionalGroup(own, shared, DCM_PixelValueTransformationSequence)) {
      f.rescaleSlope = getDouble(*v, DCM_RescaleSlope).value_or(f.rescaleSlope);
      f.rescaleIntercept = getDouble(*v, DCM_RescaleIntercept).value_or(f.rescaleIntercept);
    }
    frames.push_back(std::move(f));
  }
  return frames;
}

} // namespace

DicomFileInfo readDicomHeader(const fs::path& file) {
  DcmFileFormat format;
  loadHeader(file, format);
  return headerOf(file, format);
}

std::vector<DicomFileInfo> readDicomFrames(const fs::path& file) {
  DcmFileFormat format;
  loadHeader(file, format);
  DicomFileInfo info = headerOf(file, format);
  if (info.frames > 1) {
    auto frames = framesOf(info, *format.getDataset());
    if (!frames.empty()) {
      return frames;
    }
  }
  return {std::move(info)};
}

std::vector<DicomSeries> groupIntoSeries(std::vector<DicomFileInfo> files) {
  // Group by UID + geometry key; then name groups.
  std::map<std::string, std::map<std::string, std::vector<DicomFileInfo>>> byUid;
  for (auto& f : files) {
    // Without a UID, folders also separate series (anonymised copies of one series side by side
    // would otherwise merge into one with every slice twice).
    auto key = geometryKey(f);
    if (f.seriesInstanceUid.empty()) {
      key += "|" + f.file.parent_path().string();
    }
    byUid[f.seriesInstanceUid][key].push_back(std::move(f));
  }
  std::vector<DicomSeries> result;
  for (auto& [uid, groups] : byUid) {
    std::vector<std::vector<DicomFileInfo>*> ordered;
    for (auto& [key, members] : groups) {
      ordered.push_back(&members);
    }
    // Sub-series of one UID in the order of their first slice along the normal.
    std::sort(ordered.begin(), ordered.end(), [](const auto* a, const auto* b) {
      auto lowest = [](const std::vector<DicomFileInfo>& m) {
        double v = normalPosition(m.front());
        for (const auto& f : m) {
          v = std::min(v, normalPosition(f));
        }
        return v;
      };
      return lowest(*a) < lowest(*b);
    });
    int sub = 0;
    for (auto* members : ordered) {
      ++sub;
      std::sort(members->begin(), members->end(), [](const auto& a, const auto& b) {
        return a.file < b.file;
      });
      DicomSeries s;
      dropDuplicateInstances(*members, s.warnings);
      const DicomFileInfo& first = members->front();
      s.seriesInstanceUid = uid;
      if (uid.empty()) {
        s.id = "noUID-" +
               core::stableHashHex(geometryKey(first) + first.file.parent_path().string(), 8);
        s.warnings.push_back("empty SeriesInstanceUID: grouped by frame of reference, orientation "
                             "and matrix size");
      } else {
        s.id = ordered.size() > 1 && sub > 1 ? uid + "#" + std::to_string(sub) : uid;
        if (ordered.size() > 1) {
          s.warnings.push_back("SeriesInstanceUID covers " + std::to_string(ordered.size()) +
                               " incompatible geometries; this is sub-series " +
                               std::to_string(sub));
        }
      }
      s.studyInstanceUid = first.studyInstanceUid;
      s.frameOfReferenceUid = first.frameOfReferenceUid;
      s.modality = first.modality;
      s.description = first.seriesDescription;
      s.imageType = first.imageType;
      s.rows = first.rows;
      s.columns = first.columns;
      s.frames = first.frames;
      s.pixelSpacing = first.pixelSpacing;
      s.sliceThickness = first.sliceThickness;
      s.orientation = first.orientation;
      s.files = std::move(*members);
      result.push_back(std::move(s));
    }
  }
  std::stable_sort(result.begin(), result.end(), [](const DicomSeries& a, const DicomSeries& b) {
    if (a.isCt() != b.isCt()) {
      return a.isCt();
    }
    if (a.sliceCount() != b.sliceCount()) {
      return a.sliceCount() > b.sliceCount();
    }
    return a.id < b.id;
  });
  return result;
}

DicomScan scanDicom(const fs::path& root, const ScanOptions& options) {
  std::error_code ec;
  if (!fs::exists(root, ec)) {
    throw core::InputError(root, "no such file or folder");
  }
  detail::quietDcmtk();
  DicomScan scan;
  const std::vector<fs::path> paths = listFiles(root, scan.skipped);
  scan.filesSeen = paths.size();

  std::vector<std::vector<DicomFileInfo>> infos(paths.size());
  std::vector<std::string> reasons(paths.size());
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> done{0};
  std::mutex progressMutex;
  auto worker = [&] {
    for (std::size_t i = next++; i < paths.size(); i = next++) {
      try {
        infos[i] = readDicomFrames(paths[i]);
      } catch (const core::InputError& e) {
        reasons[i] = e.what();
        // Keep only the problem: the path is reported separately.
        const std::string prefix = paths[i].string() + ": ";
        if (reasons[i].starts_with(prefix)) {
          reasons[i] = reasons[i].substr(prefix.size());
        }
      } catch (const std::exception& e) {
        reasons[i] = std::string("unreadable: ") + e.what();
      }
      const auto d = ++done;
      if (options.progress && (d % 64 == 0 || d == paths.size())) {
        const std::lock_guard lock(progressMutex);
        options.progress(d, paths.size());
      }
    }
  };
  unsigned threads = options.threads ? options.threads : std::thread::hardware_concurrency();
  threads = std::clamp<unsigned>(threads, 1, 16);
  threads =
      static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(paths.size(), 1)));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) {
    pool.emplace_back(worker);
  }
  worker();
  for (auto& t : pool) {
    t.join();
  }

  std::vector<DicomFileInfo> images;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (!infos[i].empty()) {
      std::move(infos[i].begin(), infos[i].end(), std::back_inserter(images));
    } else {
      scan.skipped.push_back({paths[i], reasons[i]});
    }
  }
  scan.series = groupIntoSeries(std::move(images));
  return scan;
}

const DicomSeries& selectSeries(const DicomScan& scan, const SeriesSelection& selection) {
  auto describe = [&] {
    std::string list;
    for (std::size_t i = 0; i < scan.series.size(); ++i) {
      const auto& s = scan.series[i];
      list += "\n  [" + std::to_string(i) + "] " + s.id + "  " + s.modality + "  " +
              std::to_string(s.sliceCount()) + " slices  '" + s.description + "'";
    }
    return list.empty() ? std::string(" (no image series found)") : list;
  };
  if (selection.index) {
    if (*selection.index >= scan.series.size()) {
      throw core::InputError("series index " + std::to_string(*selection.index) +
                             " is out of range; series found:" + describe());
    }
    return scan.series[*selection.index];
  }
  std::vector<const DicomSeries*> candidates;
  for (const auto& s : scan.series) {
    if (!selection.id || s.id == *selection.id || s.seriesInstanceUid == *selection.id) {
      candidates.push_back(&s);
    }
  }
  if (candidates.empty()) {
    throw core::InputError(selection.id ? "no series matches '" + *selection.id +
                                              "'; series found:" + describe()
                                        : "no DICOM image series found" + describe());
  }
  const bool anyCt =
      std::any_of(candidates.begin(), candidates.end(), [](const auto* s) { return s->isCt(); });
  if (anyCt) {
    std::erase_if(candidates, [](const auto* s) { return !s->isCt(); });
  }
  const auto best =
      std::min_element(candidates.begin(), candidates.end(), [](const auto* a, const auto* b) {
        if (a->isOriginalAxial() != b->isOriginalAxial()) {
          return a->isOriginalAxial();
        }
        if (a->sliceCount() != b->sliceCount()) {
          return a->sliceCount() > b->sliceCount();
        }
        return a->sliceThickness < b->sliceThickness;
      });
  return **best;
}

} // namespace densa::io
