// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/geometry.hpp"

#include <array>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace densa::io {

/// What Densa reads from one DICOM file's header (never the pixel data). Strings are sanitised:
/// control characters and non-ASCII bytes are replaced by '?', and each is cut to 256 characters.
struct DicomFileInfo {
  std::filesystem::path file;
  std::string sopClassUid;
  std::string sopInstanceUid;
  std::string studyInstanceUid;
  std::string seriesInstanceUid;
  std::string frameOfReferenceUid;
  std::string modality;
  std::string seriesDescription;
  std::string imageType;      ///< backslash-separated values, e.g. ORIGINAL\PRIMARY\AXIAL
  std::string transferSyntax; ///< UID of the transfer syntax the file is stored in
  int seriesNumber = 0;
  int instanceNumber = 0;
  int rows = 0;
  int columns = 0;
  int frames = 1; ///< NumberOfFrames (1 when absent; 1 for one frame of an enhanced image)
  int frame = -1; ///< one frame of an enhanced (multi-frame) image: its index; -1: the whole file
  int bitsAllocated = 0;
  std::optional<core::Vec3> position;               ///< ImagePositionPatient (mm, LPS)
  std::optional<std::array<double, 6>> orientation; ///< ImageOrientationPatient (row\column)
  std::array<double, 2> pixelSpacing{1.0, 1.0};     ///< {x: between columns, y: between rows}, mm
  bool hasPixelSpacing = false;
  double sliceThickness = 0;
  double rescaleSlope = 1;
  double rescaleIntercept = 0;
  double gantryTilt = 0; ///< GantryDetectorTilt, degrees
};

/// A file the scan did not use, and why.
struct SkippedFile {
  std::filesystem::path file;
  std::string reason;
};

/// One image series: files of one SeriesInstanceUID that share frame of reference, orientation,
/// matrix size, pixel spacing and slice thickness (a UID covering several geometries is split
/// into sub-series; files with an empty UID are grouped by geometry alone).
struct DicomSeries {
  std::string
      id; ///< the SeriesInstanceUID, suffixed "#2", "#3"… for sub-series; "noUID-…" when empty
  std::string seriesInstanceUid;
  std::string studyInstanceUid;
  std::string frameOfReferenceUid;
  std::string modality;
  std::string description;
  std::string imageType;
  int rows = 0;
  int columns = 0;
  int frames = 1;
  std::array<double, 2> pixelSpacing{1.0, 1.0};
  double sliceThickness = 0;
  std::optional<std::array<double, 6>> orientation;
  std::vector<DicomFileInfo> files; ///< in scan order; loading sorts along the slice normal
  std::vector<std::string> warnings;

  /// Number of slices (files × frames).
  [[nodiscard]] std::size_t sliceCount() const noexcept;

  /// True for Modality CT.
  [[nodiscard]] bool isCt() const noexcept { return modality == "CT"; }

  /// True when ImageType holds ORIGINAL and AXIAL.
  [[nodiscard]] bool isOriginalAxial() const;
};

/// The result of scanning a folder tree.
struct DicomScan {
  std::vector<DicomSeries> series; ///< ordered: CT first, then by slice count (descending)
  std::vector<SkippedFile> skipped;
  std::size_t filesSeen = 0;
};

struct ScanOptions {
  /// Worker threads (0: one per core).
  unsigned threads = 0;
  /// Called now and then with (files done, files total).
  std::function<void(std::size_t, std::size_t)> progress;
};

/// Reads one file's header with DCMTK, stopping before the pixel data. Throws core::InputError
/// naming the file when it is not DICOM, is unreadable, or is not an image (no Rows/Columns).
[[nodiscard]] DicomFileInfo readDicomHeader(const std::filesystem::path& file);

/// readDicomHeader, then, for an enhanced (multi-frame) image whose functional groups give every
/// frame a plane position, one entry per frame (`frame` set; position, orientation, pixel spacing,
/// slice thickness and rescale from the frame's own groups, else the shared ones). Anything else:
/// the file's header alone.
[[nodiscard]] std::vector<DicomFileInfo> readDicomFrames(const std::filesystem::path& file);

/// Scans `root` (a folder, searched recursively, or a single file) for DICOM images. Non-DICOM,
/// non-image and unreadable files are listed in `skipped` with a reason; the scan never throws
/// for a bad file. Throws core::InputError when `root` does not exist.
[[nodiscard]] DicomScan scanDicom(const std::filesystem::path& root,
                                  const ScanOptions& options = {});

/// Groups headers into series (see DicomSeries) and orders them as scanDicom does.
[[nodiscard]] std::vector<DicomSeries> groupIntoSeries(std::vector<DicomFileInfo> files);

/// How to choose one series among many.
struct SeriesSelection {
  std::optional<std::string> id;    ///< a DicomSeries::id or a SeriesInstanceUID
  std::optional<std::size_t> index; ///< position in DicomScan::series (0-based)
};

/// Picks the series to segment. With an explicit id or index, that series. Otherwise, by rules:
/// Modality CT, then ImageType ORIGINAL\…\AXIAL, then most slices, then thinnest slices.
/// Throws core::InputError (listing what was found) when nothing matches.
[[nodiscard]] const DicomSeries& selectSeries(const DicomScan& scan,
                                              const SeriesSelection& selection = {});

} // namespace densa::io
