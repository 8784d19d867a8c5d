// SPDX-License-Identifier: Apache-2.0
// Similar-case retrieval (app::CaseIndex) on N random 128-d vectors, one "case" unit per case,
// N = 10k and 100k:
//   BuildIndex  create + one batched add + save (what indexing a cohort costs);
//   AddOneCase  one incremental add() of a case into an index of N (catalog transaction);
//   Search      one query, k = 10 cases, kind "case" (exact search + catalog look-ups of the hits;
//               the target is < 50 ms at 100k);
//   Open        open() of a saved index (checksum, Faiss read, catalog scan).
//   build/release/tests/bench/retrieval_bench --benchmark_min_time=1
#include "densa/app/case_index.hpp"

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <random>
#include <string>

namespace {

namespace fs = std::filesystem;
using densa::app::CaseIndex;
using densa::app::IndexCase;
using densa::app::IndexUnit;

constexpr int kDim = 128;

fs::path scratch() {
  static const fs::path dir =
      fs::temp_directory_path() / ("densa-retrieval-bench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

std::vector<float> randomVector(std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0F, 1.0F);
  std::vector<float> v(kDim);
  for (float& x : v) {
    x = normal(rng);
  }
  return v;
}

std::vector<IndexCase> randomCases(std::int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<IndexCase> cases(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    IndexCase& c = cases[static_cast<std::size_t>(i)];
    c.caseId = "case-" + std::to_string(i);
    c.sourcePath = "/data/ct/" + c.caseId;
    c.seriesUidHash = std::to_string(i * 7919);
    IndexUnit u;
    u.vector = randomVector(rng);
    c.units.push_back(std::move(u));
  }
  return cases;
}

// One saved index per size, shared by the benchmarks that only read it.
const fs::path& savedIndex(std::int64_t n) {
  static std::map<std::int64_t, fs::path> dirs;
  auto it = dirs.find(n);
  if (it == dirs.end()) {
    const fs::path dir = scratch() / ("shared-" + std::to_string(n));
    CaseIndex index = CaseIndex::create(dir, "bench@1", kDim);
    index.add(randomCases(n, 1));
    index.save();
    it = dirs.emplace(n, dir).first;
  }
  return it->second;
}

void BuildIndex(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const std::vector<IndexCase> cases = randomCases(n, 2);
  int run = 0;
  for (auto _ : state) {
    const fs::path dir = scratch() / ("build-" + std::to_string(n) + "-" + std::to_string(run++));
    CaseIndex index = CaseIndex::create(dir, "bench@1", kDim);
    index.add(cases);
    index.save();
    state.PauseTiming();
    fs::remove_all(dir);
    state.ResumeTiming();
  }
  state.counters["cases/s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

void AddOneCase(benchmark::State& state) {
  CaseIndex index = CaseIndex::open(savedIndex(state.range(0)));
  std::mt19937 rng(3);
  int i = 0;
  for (auto _ : state) {
    IndexCase c;
    c.caseId = "extra-" + std::to_string(i++ % 16); // replaces after 16: add + remove
    IndexUnit u;
    u.vector = randomVector(rng);
    c.units.push_back(std::move(u));
    index.add(c);
  }
  // Not saved; removing the extra cases leaves the catalog listing the saved vectors again.
  for (int j = 0; j < 16; ++j) {
    index.remove("extra-" + std::to_string(j));
  }
}

void Search(benchmark::State& state) {
  const CaseIndex index = CaseIndex::open(savedIndex(state.range(0)));
  std::mt19937 rng(4);
  std::vector<std::vector<float>> queries;
  for (int q = 0; q < 64; ++q) {
    queries.push_back(randomVector(rng));
  }
  std::size_t q = 0;
  for (auto _ : state) {
    const auto hits = index.search(queries[q++ % queries.size()], 10, "case");
    benchmark::DoNotOptimize(hits.data());
  }
}

void Open(benchmark::State& state) {
  const fs::path& dir = savedIndex(state.range(0));
  for (auto _ : state) {
    const CaseIndex index = CaseIndex::open(dir);
    benchmark::DoNotOptimize(index.unitCount());
  }
}

BENCHMARK(BuildIndex)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(Search)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);
BENCHMARK(AddOneCase)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);
BENCHMARK(Open)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

} // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  fs::remove_all(scratch(), ec);
  return 0;
}
