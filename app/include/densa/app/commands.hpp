// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>

namespace densa::app {

/// Options of `densa info`.
struct InfoOptions {
  std::filesystem::path input;
  bool json = false;
  bool headersOnly = false; ///< skip decoding (no HU range, no geometry checks)
  bool resampleIrregular = false;
  bool correctTilt = true;
};

/// Describes every volume/series found at `options.input` on `out`. Returns an exit code.
int runInfo(const InfoOptions& options, std::ostream& out, std::ostream& err);

/// Options of `densa convert`.
struct ConvertOptions {
  std::filesystem::path input;
  std::filesystem::path output;
  std::optional<std::string> series; ///< id, UID or index
  bool resampleIrregular = false;
  bool correctTilt = true;
  bool overwrite = true;
};

/// Converts any supported input to NIfTI/NRRD/MetaImage. Returns an exit code.
int runConvert(const ConvertOptions& options, std::ostream& out, std::ostream& err);

/// Options of `densa phantom`.
struct PhantomOptions {
  std::filesystem::path output;
  int cases = 1;
  std::uint64_t seed = 1;
  int size = 512; ///< in-plane matrix
  int slices = 48;
  double spacingXY = 0.0; ///< mm; 0: field of view 400 mm ± 10%, per case from the seed
  double spacingZ = 2.5;  ///< mm
};

/// Writes synthetic abdominal CT phantoms (DICOM series + NIfTI label maps). Returns an exit code.
int runPhantom(const PhantomOptions& options, std::ostream& out, std::ostream& err);

/// Options of `densa evaluate`.
struct EvaluateOptions {
  std::filesystem::path predicted; ///< a label map file or a folder of them
  std::filesystem::path reference; ///< a label map file or a folder of them
  std::filesystem::path output;    ///< report folder: cases.csv, summary.json
  double toleranceMm = 2.0;        ///< surface Dice tolerance
  std::string referenceMap;        ///< e.g. "5:1" maps reference label 5 to liver
  std::string predictedMap;
};

/// Scores predicted label maps against references with the LiTS metrics. Returns an exit code.
int runEvaluate(const EvaluateOptions& options, std::ostream& out, std::ostream& err);

/// Options of `densa segment`.
struct SegmentOptions {
  std::filesystem::path input;
  std::filesystem::path output;
  std::optional<std::filesystem::path> model;
  std::optional<std::filesystem::path> coarseModel;
  std::string device = "cpu";
  bool resume = false;
  bool overwrite = false;
  std::optional<std::string> series;
  bool noSeg = false;
  bool preview = false;
  std::optional<float> liverThreshold;
  std::optional<float> tumourThreshold;
  double minLesionMl = 0;
  bool liverBox = false;           ///< --roi liver-box (RoiMode::LiverBox)
  std::optional<double> inPlaneMm; ///< --in-plane-mm (SegmenterOptions::inPlaneMm)
  std::string precision = "auto";  ///< --precision (SegmenterOptions::precision)
  bool resampleIrregular = false;
  bool correctTilt = true;
};

/// Segments every CT found at `options.input`. Returns 0, or 3 when some cases failed.
int runSegment(const SegmentOptions& options, std::ostream& out, std::ostream& err);

/// The text of `densa --version`.
[[nodiscard]] std::string versionText();

} // namespace densa::app
