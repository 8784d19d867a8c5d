// SPDX-License-Identifier: Apache-2.0
#include "densa/app/case_index.hpp"

#include "densa/app/vector_search.hpp"
#include "densa/core/error.hpp"
#include "densa/core/retrieval.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <set>

namespace densa::app {
namespace {

namespace fs = std::filesystem;

constexpr int kDim = 16;

std::vector<float> randomVector(std::mt19937& rng, int dim = kDim) {
  std::normal_distribution<float> normal(0.0F, 1.0F);
  std::vector<float> v(static_cast<std::size_t>(dim));
  for (float& x : v) {
    x = normal(rng);
  }
  return v;
}

IndexUnit unit(const std::string& kind, std::vector<float> vector, const std::string& label = {}) {
  IndexUnit u;
  u.kind = kind;
  u.label = label;
  u.vector = std::move(vector);
  return u;
}

// 40 cases, each with a whole-case vector and 0–3 lesion vectors.
std::vector<IndexCase> syntheticCases(unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<IndexCase> cases;
  for (int c = 0; c < 40; ++c) {
    IndexCase ic;
    ic.caseId = "case-" + std::to_string(c);
    ic.sourcePath = "/data/ct/" + ic.caseId;
    ic.seriesUidHash = "h" + std::to_string(c);
    ic.units.push_back(unit("case", randomVector(rng)));
    for (int l = 0; l < c % 4; ++l) {
      IndexUnit u = unit("lesion", randomVector(rng), "lesion " + std::to_string(l + 1));
      u.positionMm = {1.5 * l, -2.0 * c, 3.25};
      u.extraJson = R"({"volume_ml": 1.5})";
      ic.units.push_back(std::move(u));
    }
    cases.push_back(std::move(ic));
  }
  return cases;
}

void expectSameHits(const std::vector<SearchHit>& a, const std::vector<SearchHit>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].caseId, b[i].caseId) << "rank " << i;
    EXPECT_EQ(a[i].vectorId, b[i].vectorId) << "rank " << i;
    EXPECT_EQ(a[i].distance, b[i].distance) << "rank " << i;
    EXPECT_EQ(a[i].unit.label, b[i].unit.label) << "rank " << i;
    EXPECT_EQ(a[i].sourcePath, b[i].sourcePath) << "rank " << i;
  }
}

std::vector<std::vector<SearchHit>> searchAll(const CaseIndex& index,
                                              const std::vector<std::vector<float>>& queries,
                                              const std::string& kind) {
  std::vector<std::vector<SearchHit>> all;
  for (const auto& q : queries) {
    all.push_back(index.search(q, 5, kind));
  }
  return all;
}

std::vector<std::vector<float>> queries(unsigned seed, int n = 10) {
  std::mt19937 rng(seed);
  std::vector<std::vector<float>> q;
  for (int i = 0; i < n; ++i) {
    q.push_back(randomVector(rng));
  }
  return q;
}

std::string thrownMessage(const std::function<void()>& f) {
  try {
    f();
  } catch (const core::InputError& e) {
    return e.what();
  }
  return "(no core::InputError thrown)";
}

TEST(CaseIndex, SaveAndReopenGiveIdenticalResults) {
  testing::TempDir tmp;
  const auto q = queries(99);
  std::vector<std::vector<SearchHit>> before;
  std::vector<std::vector<SearchHit>> beforeLesions;
  {
    CaseIndex index = CaseIndex::create(tmp / "idx", "adsl-test@1", kDim);
    for (const auto& c : syntheticCases(1)) {
      index.add(c);
    }
    EXPECT_EQ(index.caseCount(), 40);
    EXPECT_EQ(index.unitCount(), 40 + 10 * (0 + 1 + 2 + 3));
    EXPECT_TRUE(index.hasUnsavedChanges());
    index.save();
    EXPECT_FALSE(index.hasUnsavedChanges());
    before = searchAll(index, q, "case");
    beforeLesions = searchAll(index, q, "lesion");
  }
  EXPECT_TRUE(fs::exists(tmp / "idx" / "vectors.faiss"));
  EXPECT_TRUE(fs::exists(tmp / "idx" / "catalog.sqlite"));
  const CaseIndex reopened = CaseIndex::open(tmp / "idx", "adsl-test@1");
  EXPECT_EQ(reopened.modelVersion(), "adsl-test@1");
  EXPECT_EQ(reopened.dim(), kDim);
  EXPECT_EQ(reopened.caseCount(), 40);
  const auto after = searchAll(reopened, q, "case");
  const auto afterLesions = searchAll(reopened, q, "lesion");
  for (std::size_t i = 0; i < q.size(); ++i) {
    expectSameHits(before[i], after[i]);
    expectSameHits(beforeLesions[i], afterLesions[i]);
  }
  // Lesion search returns distinct cases, each with a lesion unit and its stored fields.
  std::set<std::string> seen;
  for (const SearchHit& hit : afterLesions[0]) {
    EXPECT_TRUE(seen.insert(hit.caseId).second);
    EXPECT_EQ(hit.unit.kind, "lesion");
    EXPECT_EQ(hit.unit.extraJson, R"({"volume_ml": 1.5})");
    EXPECT_DOUBLE_EQ(hit.unit.positionMm[2], 3.25);
    EXPECT_TRUE(hit.unit.vector.empty());
  }
  // Ranked nearest first, score = 1 / (1 + distance).
  for (std::size_t r = 1; r < after[0].size(); ++r) {
    EXPECT_LE(after[0][r - 1].distance, after[0][r].distance);
  }
  EXPECT_DOUBLE_EQ(after[0][0].score, 1.0 / (1.0 + after[0][0].distance));
}

TEST(CaseIndex, FindsAnIndexedVectorFirstAtDistanceZero) {
  testing::TempDir tmp;
  CaseIndex index = CaseIndex::create(tmp / "idx", "m", kDim);
  const auto cases = syntheticCases(2);
  for (const auto& c : cases) {
    index.add(c);
  }
  const auto hits = index.search(cases[17].units[0].vector, 3);
  ASSERT_EQ(hits.size(), 3U);
  EXPECT_EQ(hits[0].caseId, "case-17");
  EXPECT_EQ(hits[0].distance, 0.0);
  EXPECT_EQ(hits[0].score, 1.0);
  EXPECT_EQ(hits[0].sourcePath, "/data/ct/case-17");
  EXPECT_EQ(hits[0].seriesUidHash, "h17");
}

TEST(CaseIndex, AddsReplacesAndRemovesIncrementally) {
  testing::TempDir tmp;
  std::mt19937 rng(5);
  CaseIndex index = CaseIndex::create(tmp / "idx", "m", kDim);
  for (const auto& c : syntheticCases(3)) {
    index.add(c);
  }
  const std::int64_t units = index.unitCount();

  // Replace case-5 (one case unit) by a case with two slice units and a new case vector.
  IndexCase replacement;
  replacement.caseId = "case-5";
  replacement.sourcePath = "/elsewhere";
  const std::vector<float> newVector = randomVector(rng);
  replacement.units.push_back(unit("case", newVector));
  replacement.units.push_back(unit("slice", randomVector(rng)));
  replacement.units.push_back(unit("slice", randomVector(rng)));
  index.add(replacement);
  EXPECT_EQ(index.caseCount(), 40);
  EXPECT_EQ(index.unitCount(), units - 2 + 3); // case-5 had a case unit and one lesion
  auto hits = index.search(newVector, 1);
  ASSERT_EQ(hits.size(), 1U);
  EXPECT_EQ(hits[0].caseId, "case-5");
  EXPECT_EQ(hits[0].sourcePath, "/elsewhere");
  EXPECT_EQ(hits[0].distance, 0.0);
  // Only case-5 has slices: a slice search finds one case even when asked for more.
  EXPECT_EQ(index.search(newVector, 4, "slice").size(), 1U);
  EXPECT_TRUE(index.search(newVector, 4, "patch").empty());

  EXPECT_TRUE(index.remove("case-5"));
  EXPECT_FALSE(index.remove("case-5"));
  EXPECT_FALSE(index.remove("no such case"));
  EXPECT_EQ(index.caseCount(), 39);
  EXPECT_EQ(index.unitCount(), units - 2);
  hits = index.search(newVector, 40);
  EXPECT_EQ(hits.size(), 39U);
  EXPECT_TRUE(std::none_of(
      hits.begin(), hits.end(), [](const SearchHit& h) { return h.caseId == "case-5"; }));
  const auto ids = index.caseIds();
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::count(ids.begin(), ids.end(), "case-5"), 0);

  // A batch is one transaction; a batch naming a case twice is refused whole.
  std::vector<IndexCase> batch = syntheticCases(8);
  batch.resize(3);
  batch[0].caseId = "batch-a";
  batch[1].caseId = "batch-b";
  batch[2].caseId = "batch-a";
  EXPECT_THROW(index.add(batch), core::InvalidArgument);
  EXPECT_EQ(index.caseCount(), 39);
  batch[2].caseId = "case-7"; // replaces an existing case
  index.add(batch);
  EXPECT_EQ(index.caseCount(), 41);
  EXPECT_EQ(index.search(batch[1].units[0].vector, 1)[0].caseId, "batch-b");
  EXPECT_EQ(index.search(batch[2].units[0].vector, 1)[0].caseId, "case-7");
  EXPECT_EQ(index.search(batch[2].units[0].vector, 1)[0].distance, 0.0);

  // Saved and reopened, the incremental state persists.
  index.save();
  const CaseIndex reopened = CaseIndex::open(tmp / "idx");
  EXPECT_EQ(reopened.unitCount(), index.unitCount());
  EXPECT_EQ(reopened.caseIds(), index.caseIds());
  expectSameHits(reopened.search(newVector, 10), index.search(newVector, 10));
}

TEST(CaseIndex, ManyUnitsPerCaseStillGiveKDistinctCases) {
  testing::TempDir tmp;
  std::mt19937 rng(11);
  CaseIndex index = CaseIndex::create(tmp / "idx", "m", kDim);
  const std::vector<float> centre = randomVector(rng);
  // case-near has 100 slices all close to the query; the others one slice each, farther away.
  IndexCase near;
  near.caseId = "near";
  for (int s = 0; s < 100; ++s) {
    std::vector<float> v = centre;
    v[0] += 0.001F * static_cast<float>(s);
    IndexUnit u = unit("slice", v);
    u.slice = s;
    near.units.push_back(std::move(u));
  }
  index.add(near);
  for (int c = 0; c < 10; ++c) {
    IndexCase other;
    other.caseId = "other-" + std::to_string(c);
    std::vector<float> v = centre;
    v[1] += 1.0F + static_cast<float>(c);
    other.units.push_back(unit("slice", v));
    index.add(other);
  }
  const auto hits = index.search(centre, 5, "slice");
  ASSERT_EQ(hits.size(), 5U);
  EXPECT_EQ(hits[0].caseId, "near");
  EXPECT_EQ(hits[0].unit.slice, 0);
  for (int r = 1; r < 5; ++r) {
    EXPECT_EQ(hits[static_cast<std::size_t>(r)].caseId, "other-" + std::to_string(r - 1));
  }
}

TEST(CaseIndex, RebuildGivesIdenticalResults) {
  testing::TempDir tmp;
  const auto q = queries(7);
  CaseIndex index = CaseIndex::create(tmp / "idx", "m", kDim);
  for (const auto& c : syntheticCases(4)) {
    index.add(c);
  }
  index.remove("case-3");
  const auto before = searchAll(index, q, "case");
  const auto beforeLesions = searchAll(index, q, "lesion");
  index.rebuild();
  const auto after = searchAll(index, q, "case");
  const auto afterLesions = searchAll(index, q, "lesion");
  for (std::size_t i = 0; i < q.size(); ++i) {
    expectSameHits(before[i], after[i]);
    expectSameHits(beforeLesions[i], afterLesions[i]);
  }
}

TEST(CaseIndex, StoresHostileStringsVerbatim) {
  testing::TempDir tmp;
  std::mt19937 rng(3);
  CaseIndex index = CaseIndex::create(tmp / "idx", "m", kDim);
  IndexCase c;
  c.caseId = "x'); DROP TABLE cases; --\"";
  c.sourcePath = "/data/it's \"here\"/\xc3\xa9";
  IndexUnit u = unit("case", randomVector(rng), "'; DELETE FROM units; --");
  const std::vector<float> v = u.vector;
  c.units.push_back(std::move(u));
  index.add(c);
  index.save();
  const CaseIndex reopened = CaseIndex::open(tmp / "idx");
  const auto hits = reopened.search(v, 1);
  ASSERT_EQ(hits.size(), 1U);
  EXPECT_EQ(hits[0].caseId, c.caseId);
  EXPECT_EQ(hits[0].sourcePath, c.sourcePath);
  EXPECT_EQ(hits[0].unit.label, "'; DELETE FROM units; --");
  EXPECT_EQ(reopened.caseIds(), std::vector<std::string>{c.caseId});
}

TEST(CaseIndex, RejectsBadArguments) {
  testing::TempDir tmp;
  std::mt19937 rng(3);
  EXPECT_THROW((void)CaseIndex::create(tmp / "a", "", kDim), core::InvalidArgument);
  EXPECT_THROW((void)CaseIndex::create(tmp / "b", "m", 0), core::InvalidArgument);
  CaseIndex index = CaseIndex::create(tmp / "idx", "m", kDim);
  IndexCase c;
  c.caseId = "c";
  c.units.push_back(unit("case", randomVector(rng, kDim + 1)));
  EXPECT_THROW(index.add(c), core::InvalidArgument);
  c.units[0] = unit("organ", randomVector(rng));
  EXPECT_THROW(index.add(c), core::InvalidArgument);
  c.units[0] = unit("case", randomVector(rng));
  c.units[0].vector[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(index.add(c), core::InvalidArgument);
  c.units[0] = unit("case", randomVector(rng));
  c.units[0].extraJson = "{not json";
  EXPECT_THROW(index.add(c), core::InvalidArgument);
  c.caseId.clear();
  EXPECT_THROW(index.add(c), core::InvalidArgument);
  EXPECT_EQ(index.caseCount(), 0);
  EXPECT_THROW((void)index.search(randomVector(rng, 3), 1), core::InvalidArgument);
  EXPECT_THROW((void)index.search(randomVector(rng), 0), core::InvalidArgument);
  EXPECT_THROW((void)index.search(randomVector(rng), 1, "organ"), core::InvalidArgument);
  EXPECT_TRUE(index.search(randomVector(rng), 3).empty());
}

TEST(CaseIndex, CreateRefusesAnExistingIndexAndOpenOrCreateReusesIt) {
  testing::TempDir tmp;
  {
    CaseIndex index = CaseIndex::create(tmp / "idx", "m", kDim);
    index.add(syntheticCases(5)[0]);
    index.save();
  }
  const std::string message =
      thrownMessage([&] { (void)CaseIndex::create(tmp / "idx", "m", kDim); });
  EXPECT_NE(message.find("already holds a case index"), std::string::npos) << message;
  EXPECT_EQ(CaseIndex::openOrCreate(tmp / "idx", "m", kDim).caseCount(), 1);
  EXPECT_THROW((void)CaseIndex::openOrCreate(tmp / "idx", "m", kDim + 1), core::InputError);
  EXPECT_EQ(CaseIndex::openOrCreate(tmp / "new", "m", kDim).caseCount(), 0);
  EXPECT_THROW((void)CaseIndex::open(tmp / "missing"), core::InputError);
}

TEST(CaseIndex, RefusesAnotherModelVersionNamingBoth) {
  testing::TempDir tmp;
  (void)CaseIndex::create(tmp / "idx", "adsl-resnet50@abc", kDim);
  const std::string message =
      thrownMessage([&] { (void)CaseIndex::open(tmp / "idx", "adsl-resnet50@def"); });
  EXPECT_NE(message.find("adsl-resnet50@abc"), std::string::npos) << message;
  EXPECT_NE(message.find("adsl-resnet50@def"), std::string::npos) << message;
  EXPECT_NE(message.find((tmp / "idx").string()), std::string::npos) << message;
  EXPECT_THROW((void)CaseIndex::openOrCreate(tmp / "idx", "other", kDim), core::InputError);
  EXPECT_NO_THROW((void)CaseIndex::open(tmp / "idx"));
}

class DamagedIndex : public ::testing::Test {
protected:
  void SetUp() override {
    CaseIndex index = CaseIndex::create(dir(), "m", kDim);
    for (const auto& c : syntheticCases(6)) {
      index.add(c);
    }
    index.save();
    expected = index.search(queries(1)[0], 5);
  }

  [[nodiscard]] fs::path dir() const { return tmp / "idx"; }

  void expectRefusedThenRepaired(const std::string& file) {
    const std::string message = thrownMessage([&] { (void)CaseIndex::open(dir()); });
    EXPECT_NE(message.find(file), std::string::npos) << message;
    if (file == "vectors.faiss") {
      const CaseIndex repaired = CaseIndex::openAndRebuild(dir());
      expectSameHits(repaired.search(queries(1)[0], 5), expected);
      EXPECT_NO_THROW((void)CaseIndex::open(dir()));
    }
  }

  testing::TempDir tmp;
  std::vector<SearchHit> expected;
};

TEST_F(DamagedIndex, TruncatedVectorsAreRefused) {
  const fs::path file = dir() / "vectors.faiss";
  fs::resize_file(file, fs::file_size(file) / 2);
  expectRefusedThenRepaired("vectors.faiss");
}

TEST_F(DamagedIndex, OverwrittenVectorBytesAreRefused) {
  const fs::path file = dir() / "vectors.faiss";
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8); // inside the header: the dimension and counts
    const char junk[16] = {'\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f',
                           '\x7f'};
    f.write(junk, sizeof junk);
  }
  expectRefusedThenRepaired("vectors.faiss");
}

TEST_F(DamagedIndex, MissingVectorsAreRefused) {
  fs::remove(dir() / "vectors.faiss");
  expectRefusedThenRepaired("vectors.faiss");
}

TEST_F(DamagedIndex, UnsavedChangesAreDetected) {
  {
    CaseIndex index = CaseIndex::open(dir());
    index.remove("case-0");
    // no save()
  }
  expectRefusedThenRepaired("vectors.faiss");
  EXPECT_EQ(CaseIndex::open(dir()).caseCount(), 39);
}

TEST_F(DamagedIndex, AJunkCatalogIsRefused) {
  std::ofstream(dir() / "catalog.sqlite", std::ios::binary | std::ios::trunc)
      << std::string(4096, 'x');
  expectRefusedThenRepaired("catalog.sqlite");
  EXPECT_THROW((void)CaseIndex::openAndRebuild(dir()), core::InputError);
}

TEST_F(DamagedIndex, ATruncatedCatalogIsRefused) {
  const fs::path file = dir() / "catalog.sqlite";
  fs::resize_file(file, 100);
  expectRefusedThenRepaired("catalog.sqlite");
}

// --- vector_search ----------------------------------------------------------------------------

// `perClass` points around each of `centres` (dim 8), with Gaussian noise of `sigma`.
std::vector<float> blobs(const std::vector<std::vector<float>>& centres,
                         int perClass,
                         float sigma,
                         unsigned seed,
                         std::vector<int>& labels) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0F, sigma);
  std::vector<float> data;
  labels.clear();
  for (int i = 0; i < perClass; ++i) {
    for (std::size_t c = 0; c < centres.size(); ++c) {
      for (const float x : centres[c]) {
        data.push_back(x + noise(rng));
      }
      labels.push_back(static_cast<int>(c));
    }
  }
  return data;
}

// Faiss initialises k-means with k random points, and with one redo (as the reference) a run can
// end in a local minimum that merges two blobs. The run of least inertia over a few seeds — what
// nredo > 1 would keep — recovers the blobs exactly.
TEST(KmeansAssign, RecoversThreeSeparatedBlobs) {
  const std::vector<std::vector<float>> centres{
      {0, 0, 0, 0, 0, 0, 0, 0}, {10, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 10, 0, 0, 0, 0, 0}};
  std::vector<int> labels;
  const std::vector<float> data = blobs(centres, 50, 0.5F, 1, labels);
  const auto n = static_cast<std::int64_t>(labels.size());
  double bestInertia = std::numeric_limits<double>::infinity();
  std::vector<int> best;
  for (int seed = 0; seed < 10; ++seed) {
    std::vector<float> centroids;
    const std::vector<int> clusters = kmeansAssign(data.data(), n, 8, 3, 100, seed, &centroids);
    ASSERT_EQ(clusters.size(), labels.size());
    ASSERT_EQ(centroids.size(), 3U * 8U);
    double inertia = 0;
    for (std::size_t i = 0; i < clusters.size(); ++i) {
      for (std::size_t d = 0; d < 8; ++d) {
        const double diff =
            data[i * 8 + d] - centroids[static_cast<std::size_t>(clusters[i]) * 8 + d];
        inertia += diff * diff;
      }
    }
    if (inertia < bestInertia) {
      bestInertia = inertia;
      best = clusters;
    }
    // Same seed, same clustering.
    EXPECT_EQ(kmeansAssign(data.data(), n, 8, 3, 100, seed), clusters);
  }
  EXPECT_DOUBLE_EQ(core::normalizedMutualInformation(labels, best), 1.0);
  EXPECT_THROW((void)kmeansAssign(data.data(), 2, 8, 3), core::InvalidArgument);
}

TEST(NearestNeighbours, ExcludesTheQueryItselfEvenAmongDuplicates) {
  // Points 0, 1 and 2 coincide; 3 is near; 4 is far.
  const std::vector<float> data{0, 0, 0, 0, 0, 0, 0.1F, 0, 5, 5};
  const auto nn = nearestNeighbours(data.data(), 5, 2, 2, true);
  ASSERT_EQ(nn.size(), 5U);
  for (std::int64_t q = 0; q < 3; ++q) {
    const auto& list = nn[static_cast<std::size_t>(q)];
    ASSERT_EQ(list.size(), 2U) << q;
    EXPECT_EQ(std::count(list.begin(), list.end(), q), 0) << q;
    // The two other duplicates, at distance 0.
    std::set<std::int64_t> got(list.begin(), list.end());
    std::set<std::int64_t> others{0, 1, 2};
    others.erase(q);
    EXPECT_EQ(got, others) << q;
  }
  EXPECT_EQ(nn[3].size(), 2U);
  EXPECT_EQ(std::count(nn[3].begin(), nn[3].end(), 3), 0);
  EXPECT_EQ(nn[4][0], 3);
  // Without exclusion, each query finds a distance-0 point first (itself or a duplicate).
  const auto withSelf = nearestNeighbours(data.data(), 5, 2, 1, false);
  EXPECT_EQ(withSelf[4][0], 4);
  EXPECT_EQ(withSelf[3][0], 3);
  // k larger than the data: every other point.
  const auto all = nearestNeighbours(data.data(), 5, 2, 10, true);
  EXPECT_EQ(all[4].size(), 4U);
}

TEST(NearestNeighbours, GiveHighRecallOnASeparableSet) {
  std::mt19937 rng(4);
  std::vector<std::vector<float>> centres;
  for (int c = 0; c < 10; ++c) {
    std::vector<float> centre = randomVector(rng, 32);
    for (float& x : centre) {
      x *= 3.0F;
    }
    centres.push_back(centre);
  }
  std::vector<int> labels;
  const std::vector<float> data = blobs(centres, 30, 1.0F, 2, labels);
  const auto n = static_cast<std::int64_t>(labels.size());
  const auto nn = nearestNeighbours(data.data(), n, 32, 8, true);
  const core::RecallReport recall = core::recallAtK(nn, labels);
  EXPECT_GE(recall.overall[0], 0.95);
  EXPECT_GE(recall.overall[3], recall.overall[0]);
  EXPECT_EQ(recall.classCount.size(), 10U);
  // k-means with k = #classes recovers the classes (the NMI protocol of §3.7).
  const std::vector<int> clusters = kmeansAssign(data.data(), n, 32, 10);
  EXPECT_GE(core::normalizedMutualInformation(labels, clusters), 0.9);
}

} // namespace
} // namespace densa::app
