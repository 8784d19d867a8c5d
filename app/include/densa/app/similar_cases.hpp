// SPDX-License-Identifier: Apache-2.0
#pragma once

// Similar-case search with an ADSL model over a case index (densa/app/case_index.hpp), as a
// library: `densa search` and the viewer's "Similar cases" panel are thin layers over it.
// This header pulls in no LibTorch, Faiss or SQLite header.

#include "densa/core/volume.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace densa::app {

/// An 8-bit RGB picture, row-major, 3 bytes a pixel (width × height × 3 bytes); empty when none.
struct RgbPicture {
  std::size_t width = 0;
  std::size_t height = 0;
  std::vector<std::uint8_t> rgb;

  [[nodiscard]] bool empty() const noexcept { return rgb.empty(); }
};

/// What to search for.
struct SimilarQuery {
  /// A patch query centred here (LPS mm); nullopt: a whole-case query. A single-slice image is
  /// always a patch query (centred on pointMm, else on the image's centre).
  std::optional<core::Vec3> pointMm;
  /// Case queries: tile the query every this many mm (as `densa index add --slice-step`; the
  /// index records the step it was built with, see SimilarCaseSearch::indexSliceStepMm()).
  double sliceStepMm = 10;
  int k = 10; ///< at most this many hits (fewer when the index holds fewer cases)
  /// Patch queries: re-read each hit's source to picture its matched patch (SimilarHit::picture).
  bool hitPictures = true;
};

/// One retrieved case, nearest first.
struct SimilarHit {
  int rank = 0; ///< 1-based
  std::string caseId;
  std::string sourcePath;            ///< the CT the case was indexed from (absolute)
  double score = 0;                  ///< 1 / (1 + distance), in (0, 1]
  double distance = 0;               ///< Euclidean distance of the best-matching unit to the query
  std::optional<core::Vec3> matchMm; ///< patch queries: the matched patch's centre (LPS mm)
  int matchSlice = -1; ///< patch queries: its axial slice on the case's canonical axial grid
  /// Patch queries with hitPictures: the matched patch and the patch under its attention heat map,
  /// side by side (as queryPicture); empty for case queries or when the source cannot be read
  /// (a warning says why).
  RgbPicture picture;
};

/// What a search found.
struct SimilarResult {
  std::string modelVersion; ///< "adsl/<preset>/<hash>"
  std::string queryKind;    ///< "case" or "patch"
  /// The query patch (patch queries), or the most central tile of the middle tiled slice (case
  /// queries): the patch and the patch under the model's attention heat map, side by side, each
  /// max(1, 256 / pixels)× larger.
  RgbPicture queryPicture;
  /// The attention map of that patch on its axial slice of the query's *canonical axial grid*
  /// (the query CT re-indexed exactly with core::permutationToAxial, as the index and the
  /// viewer's display see it): a one-slice volume (nx × ny × 1) placed at slice querySlice of
  /// that grid (same spacing and direction, its origin moved to the slice), where each voxel
  /// inside the patch takes the nearest attention value in [0, 1], 0 elsewhere. One slice, not
  /// the whole grid, so that a query on a large CT does not carry a CT-sized float volume.
  core::Volume<float> queryAttention;
  core::Vec3 queryCentreMm{}; ///< the pictured patch's centre (LPS mm)
  int querySlice = 0;         ///< its slice on the canonical axial grid
  std::size_t queryTiles = 0; ///< case queries: the tiles embedded
  std::vector<SimilarHit> hits;
  /// Things that did not stop the search (e.g. a hit whose source cannot be read any more).
  std::vector<std::string> warnings;
};

/// The model recorded next to an index by `densa index add` (DIR/model.json), if any. Throws
/// core::InputError when that file is damaged.
[[nodiscard]] std::optional<std::filesystem::path> indexRecordedModel(
    const std::filesystem::path& indexDir);

/// An ADSL model and the index built with it, ready for queries.
class SimilarCaseSearch {
public:
  /// Opens the index in `indexDir` and loads `model` (default: the model the index records) on
  /// `device` ("cpu", "cuda", "cuda:N"). Throws core::InputError for a missing or damaged index
  /// or model file, core::InvalidArgument when no model is given and the index records none,
  /// models::ModelError for a checkpoint that is not an "adsl" model, and core::InputError
  /// naming both versions when the index was built by another model.
  explicit SimilarCaseSearch(const std::filesystem::path& indexDir,
                             std::optional<std::filesystem::path> model = {},
                             std::string device = "cpu");
  SimilarCaseSearch(SimilarCaseSearch&&) noexcept;
  SimilarCaseSearch& operator=(SimilarCaseSearch&&) noexcept;
  SimilarCaseSearch(const SimilarCaseSearch&) = delete;
  SimilarCaseSearch& operator=(const SimilarCaseSearch&) = delete;
  ~SimilarCaseSearch();

  /// Searches the index for cases like `ctHu` (HU, any orientation, as loaded). `progress`, when
  /// given, is called with the fraction done between steps and may throw (e.g. core::Cancelled)
  /// to stop. Throws core::InputError when a case query finds no body tile, core::InvalidArgument
  /// when the point lies outside the CT or k < 1. Calls are serialised (one at a time).
  [[nodiscard]] SimilarResult search(const core::Volume<std::int16_t>& ctHu,
                                     const SimilarQuery& query,
                                     const std::function<void(double)>& progress = {}) const;

  /// A patch query centred at a continuous voxel index of `ctHu`'s canonical axial grid (for
  /// callers that found the centre there, e.g. `densa search --roi`); query.pointMm is ignored.
  [[nodiscard]] SimilarResult searchAtIndex(const core::Volume<std::int16_t>& ctHu,
                                            const core::Vec3& axialCentreIndex,
                                            const SimilarQuery& query,
                                            const std::function<void(double)>& progress = {}) const;

  [[nodiscard]] std::int64_t caseCount() const;
  [[nodiscard]] std::string modelVersion() const;
  [[nodiscard]] const std::filesystem::path& modelFile() const;
  [[nodiscard]] const std::filesystem::path& indexDir() const;
  /// The slice step the index was last added to with (recorded in DIR/model.json), if known.
  [[nodiscard]] std::optional<double> indexSliceStepMm() const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

} // namespace densa::app
