// SPDX-License-Identifier: Apache-2.0
#include "densa/app/case_index.hpp"

#include "densa/core/error.hpp"
#include "densa/core/hash.hpp"
#include "densa/io/atomic_file.hpp"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <new>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace densa::app {

namespace fs = std::filesystem;

namespace {

static_assert(std::endian::native == std::endian::little,
              "unit vectors are stored as little-endian float32");

using FaissId = faiss::Index::idx_t;

constexpr const char* kCatalogName = "catalog.sqlite";
constexpr const char* kVectorsName = "vectors.faiss";

std::string utcNow() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

int kindCode(const std::string& kind) {
  const auto& kinds = CaseIndex::unitKinds();
  const auto it = std::find(kinds.begin(), kinds.end(), kind);
  if (it == kinds.end()) {
    throw core::InvalidArgument("case index: unknown unit kind '" + kind +
                                "' (expected case, lesion, roi, slice or patch)");
  }
  return static_cast<int>(it - kinds.begin());
}

// --- SQLite, with every failure reported against the catalog file ---------------------------

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};

using DbHandle = std::unique_ptr<sqlite3, DbCloser>;

[[noreturn]] void throwDb(sqlite3* db, const fs::path& file, const std::string& doing) {
  throw core::InputError(file,
                         doing + ": " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

class Statement {
public:
  Statement(sqlite3* db, const fs::path& file, const char* sql)
      : m_db(db)
      , m_file(&file) {
    if (sqlite3_prepare_v2(db, sql, -1, &m_stmt, nullptr) != SQLITE_OK) {
      throwDb(db, file, "cannot read the case catalog");
    }
  }

  ~Statement() { sqlite3_finalize(m_stmt); }

  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, const std::string& text) {
    check(
        sqlite3_bind_text(m_stmt, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT));
    return *this;
  }

  Statement& bind(int i, std::int64_t value) {
    check(sqlite3_bind_int64(m_stmt, i, value));
    return *this;
  }

  Statement& bind(int i, double value) {
    check(sqlite3_bind_double(m_stmt, i, value));
    return *this;
  }

  Statement& bindBlob(int i, const void* data, std::size_t bytes) {
    check(sqlite3_bind_blob64(m_stmt, i, data, bytes, SQLITE_TRANSIENT));
    return *this;
  }

  /// Steps once: true when a row is available.
  bool step() {
    const int rc = sqlite3_step(m_stmt);
    if (rc == SQLITE_ROW) {
      return true;
    }
    if (rc != SQLITE_DONE) {
      throwDb(m_db, *m_file, "case catalog query failed");
    }
    return false;
  }

  void run() {
    step();
    reset();
  }

  void reset() {
    sqlite3_reset(m_stmt);
    sqlite3_clear_bindings(m_stmt);
  }

  [[nodiscard]] std::int64_t integer(int col) const { return sqlite3_column_int64(m_stmt, col); }

  [[nodiscard]] double real(int col) const { return sqlite3_column_double(m_stmt, col); }

  [[nodiscard]] std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, col));
    return p != nullptr
               ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col)))
               : std::string();
  }

  [[nodiscard]] std::pair<const void*, std::size_t> blob(int col) const {
    const void* p = sqlite3_column_blob(m_stmt, col);
    return {p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col))};
  }

private:
  void check(int rc) {
    if (rc != SQLITE_OK) {
      throwDb(m_db, *m_file, "case catalog: cannot bind a value");
    }
  }

  sqlite3* m_db;
  const fs::path* m_file;
  sqlite3_stmt* m_stmt = nullptr;
};

void exec(sqlite3* db, const fs::path& file, const char* sql, const char* doing) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string text = message != nullptr ? message : sqlite3_errmsg(db);
    sqlite3_free(message);
    throw core::InputError(file, std::string(doing) + ": " + text);
  }
}

/// BEGIN IMMEDIATE … COMMIT, rolled back when destroyed uncommitted.
class Transaction {
public:
  Transaction(sqlite3* db, const fs::path& file)
      : m_db(db)
      , m_file(file) {
    exec(db, file, "BEGIN IMMEDIATE", "cannot start a catalog transaction");
  }

  ~Transaction() {
    if (!m_done) {
      sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit() {
    exec(m_db, m_file, "COMMIT", "cannot commit to the case catalog");
    m_done = true;
  }

private:
  sqlite3* m_db;
  const fs::path& m_file;
  bool m_done = false;
};

DbHandle openDb(const fs::path& file, bool create) {
  sqlite3* raw = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
  const int rc = sqlite3_open_v2(file.c_str(), &raw, flags, nullptr);
  DbHandle db(raw);
  if (rc != SQLITE_OK) {
    throwDb(raw, file, "cannot open the case catalog");
  }
  sqlite3_busy_timeout(raw, 10000);
  sqlite3_extended_result_codes(raw, 1);
  // Write-ahead log with synchronous=NORMAL: a commit is atomic and survives a crash of the
  // program without an fsync per transaction (a power cut may lose the last commits, never
  // consistency). Best effort: a file system without shared memory keeps the rollback journal.
  sqlite3_exec(raw, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
  sqlite3_exec(raw, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
  return db;
}

constexpr const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cases(case_id TEXT PRIMARY KEY, source_path TEXT NOT NULL,
                   series_uid_hash TEXT NOT NULL, added_utc TEXT NOT NULL,
                   unit_count INTEGER NOT NULL);
CREATE TABLE units(vector_id INTEGER PRIMARY KEY, case_id TEXT NOT NULL REFERENCES cases(case_id),
                   kind TEXT NOT NULL, label TEXT NOT NULL, x_mm REAL NOT NULL, y_mm REAL NOT NULL,
                   z_mm REAL NOT NULL, slice INTEGER NOT NULL, extra TEXT NOT NULL,
                   vector BLOB NOT NULL);
CREATE INDEX units_case ON units(case_id);
)sql";

// --- Faiss ---------------------------------------------------------------------------------

/// Selects the positions of the flat index whose unit has one kind.
struct KindSelector : faiss::IDSelector {
  const std::uint8_t* kinds = nullptr;
  std::uint8_t kind = 0;

  [[nodiscard]] bool is_member(FaissId position) const override { return kinds[position] == kind; }
};

std::unique_ptr<faiss::IndexIDMap2> emptyIndex(int dim) {
  auto index = std::make_unique<faiss::IndexIDMap2>(new faiss::IndexFlatL2(dim));
  index->own_fields = true;
  return index;
}

} // namespace

// --------------------------------------------------------------------------------------------

struct CaseIndex::Impl {
  fs::path dir;
  fs::path catalogPath;
  fs::path vectorsPath;
  DbHandle db;
  std::string modelVersion;
  int dim = 0;
  std::unique_ptr<faiss::IndexIDMap2> index;
  // Per position of the flat index (parallel to index->id_map): the unit's kind and case.
  std::vector<std::uint8_t> kindOfPosition;
  std::vector<std::int32_t> caseOfPosition;
  std::vector<std::string> caseNames; // case key → id (removed cases leave unused keys)
  std::unordered_map<std::string, std::int32_t> caseKeys;
  std::vector<std::int64_t> kindCount = std::vector<std::int64_t>(5, 0);
  bool dirty = false;

  explicit Impl(const fs::path& folder)
      : dir(folder)
      , catalogPath(folder / kCatalogName)
      , vectorsPath(folder / kVectorsName) {}

  std::int32_t caseKey(const std::string& caseId) {
    const auto [it, inserted] =
        caseKeys.emplace(caseId, static_cast<std::int32_t>(caseNames.size()));
    if (inserted) {
      caseNames.push_back(caseId);
    }
    return it->second;
  }

  [[nodiscard]] const faiss::IndexFlat& flat() const {
    return *static_cast<const faiss::IndexFlat*>(index->index);
  }

  void setMeta(const std::string& key, const std::string& value) {
    Statement(db.get(), catalogPath, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)")
        .bind(1, key)
        .bind(2, value)
        .run();
  }

  std::unordered_map<std::string, std::string> readMeta() {
    std::unordered_map<std::string, std::string> meta;
    Statement st(db.get(), catalogPath, "SELECT key, value FROM meta");
    while (st.step()) {
      meta[st.text(0)] = st.text(1);
    }
    return meta;
  }

  void loadMeta(const std::string& expectedModelVersion) {
    std::unordered_map<std::string, std::string> meta;
    try {
      meta = readMeta();
    } catch (const core::InputError&) {
      throw core::InputError(
          catalogPath, std::string("not a readable case catalog: ") + sqlite3_errmsg(db.get()));
    }
    const auto get = [&](const std::string& key) {
      const auto it = meta.find(key);
      if (it == meta.end()) {
        throw core::InputError(catalogPath,
                               "not a case catalog: no '" + key + "' in its meta table");
      }
      return it->second;
    };
    const std::string format = get("format_version");
    if (format != std::to_string(kFormatVersion)) {
      throw core::InputError(catalogPath,
                             "case index format version " + format + "; this Densa reads version " +
                                 std::to_string(kFormatVersion));
    }
    modelVersion = get("model_version");
    if (!expectedModelVersion.empty() && expectedModelVersion != modelVersion) {
      throw core::InputError(dir,
                             "the case index was built with model '" + modelVersion +
                                 "', not with '" + expectedModelVersion +
                                 "': embeddings of different models are not comparable; "
                                 "build a new index for this model");
    }
    try {
      dim = std::stoi(get("dim"));
    } catch (const std::logic_error&) {
      throw core::InputError(catalogPath, "bad dim '" + get("dim") + "' in its meta table");
    }
    if (dim < 1) {
      throw core::InputError(catalogPath, "bad dim " + std::to_string(dim) + " in its meta table");
    }
  }

  /// Reads vectors.faiss, checks it against the size and checksum recorded in the catalog, and
  /// only then parses it.
  void loadVectors() {
    std::error_code ec;
    if (!fs::is_regular_file(vectorsPath, ec)) {
      throw core::InputError(vectorsPath,
                             "missing (the case index is incomplete; openAndRebuild re-creates it "
                             "from catalog.sqlite)");
    }
    faiss::VectorIOReader reader;
    {
      std::ifstream in(vectorsPath, std::ios::binary);
      reader.data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (in.bad()) {
        throw core::InputError(vectorsPath, "cannot be read");
      }
    }
    const auto meta = readMeta();
    const auto bytes = meta.find("vectors_bytes");
    const auto checksum = meta.find("vectors_fnv1a");
    const std::string actualChecksum = core::stableHashHex(
        std::string_view(reinterpret_cast<const char*>(reader.data.data()), reader.data.size()));
    if (bytes == meta.end() || checksum == meta.end() ||
        bytes->second != std::to_string(reader.data.size()) || checksum->second != actualChecksum) {
      throw core::InputError(
          vectorsPath,
          "damaged, truncated or out of date: " + std::to_string(reader.data.size()) +
              " bytes with checksum " + actualChecksum + ", but catalog.sqlite records " +
              (bytes == meta.end() ? std::string("none") : bytes->second) +
              " bytes with checksum " +
              (checksum == meta.end() ? std::string("none") : checksum->second) +
              " (changes not saved, or the file was altered; openAndRebuild re-creates it from the "
              "catalog)");
    }
    std::unique_ptr<faiss::Index> loaded;
    try {
      loaded.reset(faiss::read_index(&reader));
    } catch (const faiss::FaissException& e) {
      throw core::InputError(vectorsPath, std::string("not a readable Faiss index: ") + e.what());
    } catch (const std::bad_alloc&) {
      throw core::InputError(vectorsPath, "not a readable Faiss index (implausible sizes)");
    }
    auto* idmap = dynamic_cast<faiss::IndexIDMap2*>(loaded.get());
    if (idmap == nullptr || dynamic_cast<faiss::IndexFlatL2*>(idmap->index) == nullptr) {
      throw core::InputError(vectorsPath, "not an IndexIDMap2 over IndexFlatL2");
    }
    if (idmap->d != dim) {
      throw core::InputError(vectorsPath,
                             "holds vectors of " + std::to_string(idmap->d) +
                                 " values; catalog.sqlite says " + std::to_string(dim));
    }
    loaded.release();
    index.reset(idmap);
    index->own_fields = true;
  }

  /// Fills the per-position tables from the catalog, checking that both list the same vectors.
  void loadUnitTable() {
    std::unordered_map<std::int64_t, std::pair<std::int32_t, std::uint8_t>> units;
    Statement st(db.get(), catalogPath, "SELECT vector_id, case_id, kind FROM units");
    while (st.step()) {
      int code = 0;
      try {
        code = kindCode(st.text(2));
      } catch (const core::InvalidArgument& e) {
        throw core::InputError(catalogPath, e.what());
      }
      units[st.integer(0)] = {caseKey(st.text(1)), static_cast<std::uint8_t>(code)};
    }
    if (static_cast<std::int64_t>(units.size()) != index->ntotal) {
      throw core::InputError(
          vectorsPath,
          "holds " + std::to_string(index->ntotal) + " vectors but catalog.sqlite lists " +
              std::to_string(units.size()) +
              " units: changes were not saved, or a file was replaced (openAndRebuild "
              "re-creates it)");
    }
    kindOfPosition.assign(static_cast<std::size_t>(index->ntotal), 0);
    caseOfPosition.assign(static_cast<std::size_t>(index->ntotal), 0);
    std::fill(kindCount.begin(), kindCount.end(), 0);
    for (std::size_t p = 0; p < index->id_map.size(); ++p) {
      const auto it = units.find(index->id_map[p]);
      if (it == units.end()) {
        throw core::InputError(
            vectorsPath,
            "holds vector id " + std::to_string(index->id_map[p]) +
                " that catalog.sqlite does not list: changes were not saved, or a "
                "file was replaced (openAndRebuild re-creates it)");
      }
      caseOfPosition[p] = it->second.first;
      kindOfPosition[p] = it->second.second;
      ++kindCount[it->second.second];
    }
  }

  /// Re-creates the Faiss index and the per-position tables from the catalog's vectors.
  void rebuildFromCatalog() {
    auto fresh = emptyIndex(dim);
    std::vector<float> values;
    std::vector<FaissId> ids;
    std::vector<std::uint8_t> kinds;
    std::vector<std::int32_t> cases;
    std::vector<std::int64_t> counts(kindCount.size(), 0);
    const std::size_t bytes = static_cast<std::size_t>(dim) * sizeof(float);
    Statement st(db.get(),
                 catalogPath,
                 "SELECT vector_id, case_id, kind, vector FROM units ORDER BY vector_id");
    while (st.step()) {
      const auto [data, size] = st.blob(3);
      if (size != bytes) {
        throw core::InputError(catalogPath,
                               "unit " + std::to_string(st.integer(0)) + " has a " +
                                   std::to_string(size) + "-byte vector; expected " +
                                   std::to_string(bytes));
      }
      int code = 0;
      try {
        code = kindCode(st.text(2));
      } catch (const core::InvalidArgument& e) {
        throw core::InputError(catalogPath, e.what());
      }
      ids.push_back(st.integer(0));
      const std::size_t at = values.size();
      values.resize(at + static_cast<std::size_t>(dim));
      std::memcpy(values.data() + at, data, bytes);
      kinds.push_back(static_cast<std::uint8_t>(code));
      cases.push_back(caseKey(st.text(1)));
      ++counts[static_cast<std::size_t>(code)];
    }
    if (!ids.empty()) {
      fresh->add_with_ids(static_cast<FaissId>(ids.size()), values.data(), ids.data());
    }
    index = std::move(fresh);
    kindOfPosition = std::move(kinds);
    caseOfPosition = std::move(cases);
    kindCount = std::move(counts);
    dirty = true;
  }

  /// Removes vector ids from the Faiss index and the per-position tables.
  void removeVectors(const std::vector<std::int64_t>& ids) {
    if (ids.empty()) {
      return;
    }
    const std::unordered_set<std::int64_t> gone(ids.begin(), ids.end());
    std::vector<char> keep(index->id_map.size());
    for (std::size_t p = 0; p < keep.size(); ++p) {
      keep[p] = gone.count(index->id_map[p]) == 0 ? 1 : 0;
    }
    const std::vector<FaissId> faissIds(ids.begin(), ids.end());
    const faiss::IDSelectorBatch selector(faissIds.size(), faissIds.data());
    index->remove_ids(selector);
    // Faiss compacts the remaining vectors in order; do the same.
    std::size_t out = 0;
    for (std::size_t p = 0; p < keep.size(); ++p) {
      if (keep[p] != 0) {
        kindOfPosition[out] = kindOfPosition[p];
        caseOfPosition[out] = caseOfPosition[p];
        ++out;
      } else {
        --kindCount[kindOfPosition[p]];
      }
    }
    kindOfPosition.resize(out);
    caseOfPosition.resize(out);
    if (static_cast<FaissId>(out) != index->ntotal) {
      throw core::InternalError("case index: vector table out of step after a removal");
    }
    dirty = true;
  }

  std::vector<std::int64_t> vectorIdsOf(const std::string& caseId) {
    std::vector<std::int64_t> ids;
    Statement st(db.get(), catalogPath, "SELECT vector_id FROM units WHERE case_id = ?");
    st.bind(1, caseId);
    while (st.step()) {
      ids.push_back(st.integer(0));
    }
    return ids;
  }
};

// --------------------------------------------------------------------------------------------

const std::vector<std::string>& CaseIndex::unitKinds() {
  static const std::vector<std::string> kinds{"case", "lesion", "roi", "slice", "patch"};
  return kinds;
}

CaseIndex::CaseIndex(std::unique_ptr<Impl> impl)
    : m_impl(std::move(impl)) {}

CaseIndex::CaseIndex(CaseIndex&&) noexcept = default;
CaseIndex& CaseIndex::operator=(CaseIndex&&) noexcept = default;
CaseIndex::~CaseIndex() = default;

CaseIndex CaseIndex::create(const fs::path& dir, const std::string& modelVersion, int dim) {
  if (modelVersion.empty()) {
    throw core::InvalidArgument("case index: the model version must not be empty");
  }
  if (dim < 1) {
    throw core::InvalidArgument("case index: dim must be at least 1, got " + std::to_string(dim));
  }
  auto impl = std::make_unique<Impl>(dir);
  std::error_code ec;
  if (fs::exists(impl->catalogPath, ec) || fs::exists(impl->vectorsPath, ec)) {
    throw core::InputError(dir, "already holds a case index; open it instead");
  }
  fs::create_directories(dir, ec);
  if (ec) {
    throw core::InputError(dir, "cannot create the folder: " + ec.message());
  }
  try {
    impl->db = openDb(impl->catalogPath, true);
    {
      Transaction tx(impl->db.get(), impl->catalogPath);
      exec(impl->db.get(), impl->catalogPath, kSchema, "cannot create the case catalog");
      impl->setMeta("format_version", std::to_string(kFormatVersion));
      impl->setMeta("model_version", modelVersion);
      impl->setMeta("dim", std::to_string(dim));
      impl->setMeta("created", utcNow());
      tx.commit();
    }
    impl->modelVersion = modelVersion;
    impl->dim = dim;
    impl->index = emptyIndex(dim);
    CaseIndex result(std::move(impl));
    result.save();
    return result;
  } catch (...) {
    if (impl) {
      impl->db.reset();
    }
    fs::remove(dir / kCatalogName, ec);
    fs::remove(dir / kVectorsName, ec);
    throw;
  }
}

CaseIndex CaseIndex::open(const fs::path& dir, const std::string& expectedModelVersion) {
  auto impl = std::make_unique<Impl>(dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw core::InputError(dir, "no such folder");
  }
  if (!fs::is_regular_file(impl->catalogPath, ec)) {
    throw core::InputError(impl->catalogPath, "missing: this folder holds no case index");
  }
  impl->db = openDb(impl->catalogPath, false);
  impl->loadMeta(expectedModelVersion);
  impl->loadVectors();
  impl->loadUnitTable();
  return CaseIndex(std::move(impl));
}

CaseIndex CaseIndex::openAndRebuild(const fs::path& dir, const std::string& expectedModelVersion) {
  auto impl = std::make_unique<Impl>(dir);
  std::error_code ec;
  if (!fs::is_regular_file(impl->catalogPath, ec)) {
    throw core::InputError(impl->catalogPath, "missing: this folder holds no case index");
  }
  impl->db = openDb(impl->catalogPath, false);
  impl->loadMeta(expectedModelVersion);
  impl->rebuildFromCatalog();
  CaseIndex result(std::move(impl));
  result.save();
  return result;
}

CaseIndex CaseIndex::openOrCreate(const fs::path& dir, const std::string& modelVersion, int dim) {
  std::error_code ec;
  if (!fs::exists(dir / kCatalogName, ec)) {
    return create(dir, modelVersion, dim);
  }
  CaseIndex index = open(dir, modelVersion);
  if (index.dim() != dim) {
    throw core::InputError(dir,
                           "the case index holds vectors of " + std::to_string(index.dim()) +
                               " values, not " + std::to_string(dim));
  }
  return index;
}

void CaseIndex::add(const IndexCase& c) {
  add(std::vector<IndexCase>{c});
}

void CaseIndex::add(const std::vector<IndexCase>& cases) {
  Impl& s = *m_impl;
  // Validate everything first: a refused batch changes nothing.
  std::vector<int> codes;
  std::unordered_set<std::string> batchIds;
  std::size_t unitTotal = 0;
  for (const IndexCase& c : cases) {
    if (c.caseId.empty()) {
      throw core::InvalidArgument("case index: empty case id");
    }
    if (!batchIds.insert(c.caseId).second) {
      throw core::InvalidArgument("case index: case '" + c.caseId + "' twice in one batch");
    }
    for (std::size_t u = 0; u < c.units.size(); ++u) {
      const IndexUnit& unit = c.units[u];
      const std::string where = "case index: case '" + c.caseId + "' unit " + std::to_string(u);
      codes.push_back(kindCode(unit.kind));
      if (unit.vector.size() != static_cast<std::size_t>(s.dim)) {
        throw core::InvalidArgument(where + " has " + std::to_string(unit.vector.size()) +
                                    " values; the index holds " + std::to_string(s.dim));
      }
      if (!std::all_of(
              unit.vector.begin(), unit.vector.end(), [](float v) { return std::isfinite(v); })) {
        throw core::InvalidArgument(where + " has a non-finite value");
      }
      if (!std::all_of(unit.positionMm.begin(), unit.positionMm.end(), [](double v) {
            return std::isfinite(v);
          })) {
        throw core::InvalidArgument(where + " has a non-finite position");
      }
      if (!nlohmann::json::accept(unit.extraJson)) {
        throw core::InvalidArgument(where + ": extraJson is not JSON");
      }
    }
    unitTotal += c.units.size();
  }
  if (cases.empty()) {
    return;
  }

  Transaction tx(s.db.get(), s.catalogPath);
  // Vector ids are never reused (next_vector_id only grows), so any change to the catalog that
  // was not saved shows as a different id set in vectors.faiss.
  std::int64_t nextId = 0;
  {
    Statement st(s.db.get(),
                 s.catalogPath,
                 "SELECT MAX(COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = "
                 "'next_vector_id'), 0), COALESCE((SELECT MAX(vector_id) + 1 FROM units), 0))");
    st.step();
    nextId = st.integer(0);
  }
  s.setMeta("next_vector_id", std::to_string(nextId + static_cast<std::int64_t>(unitTotal)));
  Statement selectOld(s.db.get(), s.catalogPath, "SELECT vector_id FROM units WHERE case_id = ?");
  Statement deleteUnits(s.db.get(), s.catalogPath, "DELETE FROM units WHERE case_id = ?");
  Statement deleteCase(s.db.get(), s.catalogPath, "DELETE FROM cases WHERE case_id = ?");
  Statement insertCase(s.db.get(),
                       s.catalogPath,
                       "INSERT INTO cases(case_id, source_path, series_uid_hash, added_utc, "
                       "unit_count) VALUES(?, ?, ?, ?, ?)");
  Statement insertUnit(s.db.get(),
                       s.catalogPath,
                       "INSERT INTO units(vector_id, case_id, kind, label, x_mm, y_mm, z_mm, "
                       "slice, extra, vector) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  const std::string now = utcNow();
  std::vector<std::int64_t> oldIds;
  std::vector<FaissId> ids;
  std::vector<float> values;
  values.reserve(unitTotal * static_cast<std::size_t>(s.dim));
  for (const IndexCase& c : cases) {
    selectOld.bind(1, c.caseId);
    while (selectOld.step()) {
      oldIds.push_back(selectOld.integer(0));
    }
    selectOld.reset();
    deleteUnits.bind(1, c.caseId).run();
    deleteCase.bind(1, c.caseId).run();
    insertCase.bind(1, c.caseId)
        .bind(2, c.sourcePath)
        .bind(3, c.seriesUidHash)
        .bind(4, now)
        .bind(5, static_cast<std::int64_t>(c.units.size()))
        .run();
    for (const IndexUnit& unit : c.units) {
      const std::int64_t id = nextId++;
      insertUnit.bind(1, id)
          .bind(2, c.caseId)
          .bind(3, unit.kind)
          .bind(4, unit.label)
          .bind(5, unit.positionMm[0])
          .bind(6, unit.positionMm[1])
          .bind(7, unit.positionMm[2])
          .bind(8, static_cast<std::int64_t>(unit.slice))
          .bind(9, unit.extraJson)
          .bindBlob(10, unit.vector.data(), unit.vector.size() * sizeof(float))
          .run();
      ids.push_back(id);
      values.insert(values.end(), unit.vector.begin(), unit.vector.end());
    }
  }
  tx.commit();

  // The catalog is committed: bring the vectors in step.
  s.removeVectors(oldIds);
  if (!ids.empty()) {
    s.index->add_with_ids(static_cast<FaissId>(ids.size()), values.data(), ids.data());
    std::size_t u = 0;
    for (const IndexCase& c : cases) {
      const std::int32_t key = s.caseKey(c.caseId);
      for (std::size_t i = 0; i < c.units.size(); ++i, ++u) {
        s.kindOfPosition.push_back(static_cast<std::uint8_t>(codes[u]));
        s.caseOfPosition.push_back(key);
        ++s.kindCount[static_cast<std::size_t>(codes[u])];
      }
    }
  }
  s.dirty = true;
}

bool CaseIndex::remove(const std::string& caseId) {
  Impl& s = *m_impl;
  Transaction tx(s.db.get(), s.catalogPath);
  bool existed = false;
  {
    Statement st(s.db.get(), s.catalogPath, "SELECT 1 FROM cases WHERE case_id = ?");
    st.bind(1, caseId);
    existed = st.step();
  }
  if (!existed) {
    return false;
  }
  const std::vector<std::int64_t> ids = s.vectorIdsOf(caseId);
  Statement(s.db.get(), s.catalogPath, "DELETE FROM units WHERE case_id = ?").bind(1, caseId).run();
  Statement(s.db.get(), s.catalogPath, "DELETE FROM cases WHERE case_id = ?").bind(1, caseId).run();
  tx.commit();
  s.removeVectors(ids);
  s.dirty = true;
  return true;
}

void CaseIndex::rebuild() {
  m_impl->rebuildFromCatalog();
}

void CaseIndex::save() {
  Impl& s = *m_impl;
  faiss::VectorIOWriter writer;
  try {
    faiss::write_index(s.index.get(), &writer);
  } catch (const faiss::FaissException& e) {
    throw core::InternalError(std::string("case index: Faiss cannot serialise the vectors: ") +
                              e.what());
  }
  const std::string checksum = core::stableHashHex(
      std::string_view(reinterpret_cast<const char*>(writer.data.data()), writer.data.size()));
  io::writeAtomically(s.vectorsPath, [&](const fs::path& temp) {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(writer.data.data()),
              static_cast<std::streamsize>(writer.data.size()));
    out.close();
    if (!out) {
      throw core::InputError(s.vectorsPath, "cannot be written");
    }
  });
  Transaction tx(s.db.get(), s.catalogPath);
  s.setMeta("vectors_bytes", std::to_string(writer.data.size()));
  s.setMeta("vectors_fnv1a", checksum);
  tx.commit();
  s.dirty = false;
}

bool CaseIndex::hasUnsavedChanges() const noexcept {
  return m_impl->dirty;
}

std::vector<SearchHit> CaseIndex::search(const std::vector<float>& query,
                                         int k,
                                         const std::string& kind) const {
  const Impl& s = *m_impl;
  if (query.size() != static_cast<std::size_t>(s.dim)) {
    throw core::InvalidArgument("case index: a query of " + std::to_string(query.size()) +
                                " values; the index holds " + std::to_string(s.dim));
  }
  if (k < 1) {
    throw core::InvalidArgument("case index: k must be at least 1");
  }
  const int code = kindCode(kind);
  const std::int64_t available = s.kindCount[static_cast<std::size_t>(code)];
  if (available == 0) {
    return {};
  }
  KindSelector selector;
  selector.kinds = s.kindOfPosition.data();
  selector.kind = static_cast<std::uint8_t>(code);
  faiss::SearchParameters params;
  params.sel = &selector;
  const faiss::SearchParameters* searchParams = available == s.index->ntotal ? nullptr : &params;

  // Search units, keep each case's nearest unit; widen the search until k cases are found.
  std::vector<std::pair<FaissId, float>> best; // (position, squared distance)
  std::int64_t want = std::min<std::int64_t>(available, std::max(4 * k, k + 16));
  for (;;) {
    std::vector<float> distances(static_cast<std::size_t>(want));
    std::vector<FaissId> positions(static_cast<std::size_t>(want));
    try {
      s.flat().search(1, query.data(), want, distances.data(), positions.data(), searchParams);
    } catch (const faiss::FaissException& e) {
      throw core::InternalError(std::string("case index: Faiss search failed: ") + e.what());
    }
    best.clear();
    std::unordered_set<std::int32_t> seen;
    for (std::int64_t r = 0; r < want && static_cast<int>(best.size()) < k; ++r) {
      const FaissId p = positions[static_cast<std::size_t>(r)];
      if (p < 0) {
        break;
      }
      if (seen.insert(s.caseOfPosition[static_cast<std::size_t>(p)]).second) {
        best.emplace_back(p, distances[static_cast<std::size_t>(r)]);
      }
    }
    if (static_cast<int>(best.size()) >= k || want >= available) {
      break;
    }
    want = std::min(available, want * 4);
  }

  std::vector<SearchHit> hits;
  hits.reserve(best.size());
  Statement st(s.db.get(),
               s.catalogPath,
               "SELECT c.case_id, c.source_path, c.series_uid_hash, u.kind, u.label, u.x_mm, "
               "u.y_mm, u.z_mm, u.slice, u.extra FROM units u JOIN cases c ON c.case_id = "
               "u.case_id WHERE u.vector_id = ?");
  for (const auto& [position, squared] : best) {
    SearchHit hit;
    hit.vectorId = s.index->id_map[static_cast<std::size_t>(position)];
    st.bind(1, static_cast<std::int64_t>(hit.vectorId));
    if (!st.step()) {
      throw core::InputError(s.catalogPath,
                             "lists no unit " + std::to_string(hit.vectorId) +
                                 " (changed by another program?)");
    }
    hit.caseId = st.text(0);
    hit.sourcePath = st.text(1);
    hit.seriesUidHash = st.text(2);
    hit.unit.kind = st.text(3);
    hit.unit.label = st.text(4);
    hit.unit.positionMm = {st.real(5), st.real(6), st.real(7)};
    hit.unit.slice = static_cast<int>(st.integer(8));
    hit.unit.extraJson = st.text(9);
    st.reset();
    hit.distance = std::sqrt(std::max(0.0, static_cast<double>(squared)));
    hit.score = 1.0 / (1.0 + hit.distance);
    hits.push_back(std::move(hit));
  }
  return hits;
}

std::int64_t CaseIndex::caseCount() const {
  Statement st(m_impl->db.get(), m_impl->catalogPath, "SELECT COUNT(*) FROM cases");
  st.step();
  return st.integer(0);
}

std::int64_t CaseIndex::unitCount() const {
  return m_impl->index->ntotal;
}

std::string CaseIndex::modelVersion() const {
  return m_impl->modelVersion;
}

int CaseIndex::dim() const {
  return m_impl->dim;
}

const fs::path& CaseIndex::directory() const {
  return m_impl->dir;
}

std::vector<std::string> CaseIndex::caseIds() const {
  std::vector<std::string> ids;
  Statement st(m_impl->db.get(), m_impl->catalogPath, "SELECT case_id FROM cases ORDER BY case_id");
  while (st.step()) {
    ids.push_back(st.text(0));
  }
  return ids;
}

} // namespace densa::app
