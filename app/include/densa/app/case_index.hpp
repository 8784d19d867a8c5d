// SPDX-License-Identifier: Apache-2.0
#pragma once

// A persistent similar-case index (ADSL retrieval): embedding vectors of cases and of their parts
// (lesions, ROIs, slices, patches) with exact Euclidean search, in one folder:
//
//   DIR/catalog.sqlite   SQLite, the source of truth. Tables
//                          meta(key, value): format_version, model_version, dim, created,
//                                            vectors_bytes, vectors_fnv1a (of vectors.faiss)
//                          cases(case_id PRIMARY KEY, source_path, series_uid_hash, added_utc,
//                                unit_count)
//                          units(vector_id INTEGER PRIMARY KEY, case_id, kind, label, x_mm, y_mm,
//                                z_mm, slice, extra (JSON text), vector (BLOB, dim float32 LE))
//                        Every add/remove is one transaction (write-ahead log, synchronous=NORMAL:
//                        DIR also holds catalog.sqlite-wal/-shm while the index is open).
//   DIR/vectors.faiss    Faiss IndexIDMap2 over IndexFlatL2 (ids = units.vector_id), written
//                        atomically by save(); its size and checksum are recorded in meta, so a
//                        damaged, truncated or out-of-date file is refused by open() with a
//                        message, never parsed. Since the catalog keeps every vector, rebuild() /
//                        openAndRebuild() re-create it without re-embedding.
//
// Not thread-safe: use one CaseIndex per thread, or lock around it. Faiss's OpenMP thread count is
// the process's (see vector_search.hpp).

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace densa::app {

/// One embedded unit of a case.
struct IndexUnit {
  std::string kind = "case";          ///< "case", "lesion", "roi", "slice" or "patch"
  std::string label;                  ///< free text (e.g. "HCC", "lesion 3")
  std::array<double, 3> positionMm{}; ///< LPS mm (e.g. a lesion centroid); 0 when not relevant
  int slice = -1;                     ///< slice index for "slice" units, else −1
  std::string extraJson = "{}";       ///< any JSON value, stored as text
  std::vector<float> vector;          ///< dim values, finite (empty in search results)
};

/// One case and its units.
struct IndexCase {
  std::string caseId; ///< unique key; adding an existing id replaces that case
  std::string sourcePath;
  std::string seriesUidHash; ///< a hash of the SeriesInstanceUID, never the UID itself
  std::vector<IndexUnit> units;
};

/// One retrieved case.
struct SearchHit {
  std::string caseId;
  std::string sourcePath;
  std::string seriesUidHash;
  double distance = 0; ///< Euclidean distance of the best-matching unit to the query
  double score = 0;    ///< similarity 1 / (1 + distance), in (0, 1], 1 for an identical vector
  std::int64_t vectorId = -1; ///< the best-matching unit's vector id
  IndexUnit unit;             ///< the best-matching unit, without its vector
};

class CaseIndex {
public:
  /// The on-disk format this code writes and reads.
  static constexpr int kFormatVersion = 1;

  /// Creates an empty index in `dir` (created if missing) for embeddings of `dim` values from
  /// model `modelVersion` (non-empty, e.g. "adsl-resnet50@3f2a…"), and writes both files. Throws
  /// core::InputError when `dir` already holds an index (open it instead) or cannot be written,
  /// core::InvalidArgument for an empty model version or dim < 1.
  [[nodiscard]] static CaseIndex create(const std::filesystem::path& dir,
                                        const std::string& modelVersion,
                                        int dim);

  /// Opens the index in `dir`. With a non-empty `expectedModelVersion`, an index built by another
  /// model is refused (the message names both versions and the folder): vectors of different
  /// models are not comparable. Throws core::InputError naming the file when it is missing,
  /// damaged, truncated, of another format version, or when vectors.faiss does not match the
  /// catalog (changes not saved, or the file was altered; openAndRebuild recovers).
  [[nodiscard]] static CaseIndex open(const std::filesystem::path& dir,
                                      const std::string& expectedModelVersion = {});

  /// open() when `dir` holds an index (its dim must be `dim`), else create().
  [[nodiscard]] static CaseIndex openOrCreate(const std::filesystem::path& dir,
                                              const std::string& modelVersion,
                                              int dim);

  /// Opens the catalog of `dir` without reading vectors.faiss, rebuilds the vectors from it and
  /// saves: the repair for a damaged or out-of-date vectors.faiss. Same model check as open().
  [[nodiscard]] static CaseIndex openAndRebuild(const std::filesystem::path& dir,
                                                const std::string& expectedModelVersion = {});

  CaseIndex(CaseIndex&&) noexcept;
  CaseIndex& operator=(CaseIndex&&) noexcept;
  CaseIndex(const CaseIndex&) = delete;
  CaseIndex& operator=(const CaseIndex&) = delete;
  /// Does not save: call save() to keep vector changes.
  ~CaseIndex();

  /// Adds `c`, replacing a case with the same id (its units are all replaced). The catalog is
  /// committed at once; the vectors are searchable at once and written to disk by save(). Throws
  /// core::InvalidArgument (nothing changed) for an empty case id, an unknown kind, a vector of
  /// the wrong size or with a non-finite value, or extraJson that is not JSON.
  void add(const IndexCase& c);

  /// add() for many cases in one catalog transaction (much faster than one add() per case).
  /// Throws core::InvalidArgument (nothing changed) as add(), or when a case id appears twice.
  void add(const std::vector<IndexCase>& cases);

  /// Removes a case and its units; false when there was none.
  bool remove(const std::string& caseId);

  /// Re-creates the vector index from the vectors stored in the catalog (no re-embedding).
  void rebuild();

  /// Writes vectors.faiss atomically and records its checksum in the catalog.
  void save();

  /// True when vectors changed since the last save().
  [[nodiscard]] bool hasUnsavedChanges() const noexcept;

  /// The `k` most similar cases to `query` (dim values): the units of kind `kind` are searched
  /// exactly, each case is represented by its best (nearest) unit, and cases are ranked by that
  /// unit's distance, nearest first. Fewer than k hits when fewer cases have such units. Throws
  /// core::InvalidArgument for a query of the wrong size, k < 1 or an unknown kind.
  [[nodiscard]] std::vector<SearchHit> search(const std::vector<float>& query,
                                              int k,
                                              const std::string& kind = "case") const;

  [[nodiscard]] std::int64_t caseCount() const;
  [[nodiscard]] std::int64_t unitCount() const;
  [[nodiscard]] std::string modelVersion() const;
  [[nodiscard]] int dim() const;
  [[nodiscard]] const std::filesystem::path& directory() const;
  /// Every case id, sorted.
  [[nodiscard]] std::vector<std::string> caseIds() const;

  /// The unit kinds an index accepts.
  [[nodiscard]] static const std::vector<std::string>& unitKinds();

private:
  struct Impl;
  explicit CaseIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

} // namespace densa::app
