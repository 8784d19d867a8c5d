// SPDX-License-Identifier: Apache-2.0
// densa segment end to end on a synthetic 512 x 512 x N CT (N = DENSA_BENCH_SLICES, default 16;
// the figure is N = 100): seconds per stage (I/O, preprocessing, network,
// post-processing) and peak RSS per preset, and the hybrid network with the 2D branch reused
// across windows against recomputed per window (the reference). Untrained weights: speed only.
//   build/ci/tests/bench/segment_bench --benchmark_min_time=1
#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/app/phantom.hpp"
#include "densa/io/image_file.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/runtime.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include <benchmark/benchmark.h>
#include <torch/utils.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;
using namespace densa;

fs::path scratch() {
  static const fs::path dir =
      fs::temp_directory_path() / ("densa-segment-bench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

const fs::path& ctFile() {
  static const fs::path file = [] {
    app::PhantomSpec spec;
    const char* env = std::getenv("DENSA_BENCH_SLICES");
    spec.slices = env ? std::atoi(env) : 16;
    const fs::path f = scratch() / "ct.nii";
    io::writeImage(app::makePhantom(spec, 1).ct, f);
    return f;
  }();
  return file;
}

fs::path model(const std::string& preset, const std::string& stage) {
  const fs::path f = scratch() / (preset + "-" + stage + ".densa");
  if (!fs::exists(f)) {
    auto card = models::makeModelCard("hdenseunet", preset);
    card.provenance.trainingStage = stage;
    torch::manual_seed(1);
    models::saveCheckpoint(models::makeNet(card.options), card, f);
  }
  return f;
}

long peakRssKiB() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      long v = 0;
      in >> v;
      return v;
    }
    std::getline(in, key);
  }
  return 0;
}

void resetPeakRss() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

void segment(benchmark::State& state,
             const std::string& preset,
             const std::string& stage,
             bool reuse) {
  models::setThreads(0);
  app::SegmenterOptions options;
  options.reuse2d = reuse;
  const auto segmenter = app::loadHDenseUNetSegmenter(model(preset, stage), options);
  const fs::path file = ctFile();
  std::map<std::string, double> seconds;
  resetPeakRss();
  for (auto _ : state) {
    const auto t = std::chrono::steady_clock::now();
    const auto ct = std::get<core::Volume<std::int16_t>>(io::readImage(file));
    seconds["io"] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    const auto r = segmenter->segment(ct, {});
    for (const auto& [k, v] : r.seconds) {
      seconds[k] += v;
    }
  }
  for (const auto& [k, v] : seconds) {
    state.counters[k + "_s"] = v / static_cast<double>(state.iterations());
  }
  state.counters["peak_rss_MiB"] = static_cast<double>(peakRssKiB()) / 1024.0;
}

void BM_Segment_Tiny_2d(benchmark::State& s) {
  segment(s, "tiny", "2d", true);
}

void BM_Segment_Small_2d(benchmark::State& s) {
  segment(s, "small", "2d", true);
}

void BM_Segment_Small_Hybrid_Reuse2d(benchmark::State& s) {
  segment(s, "small", "untrained", true);
}

void BM_Segment_Small_Hybrid_Recompute2d(benchmark::State& s) {
  segment(s, "small", "untrained", false);
}

BENCHMARK(BM_Segment_Tiny_2d)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_Segment_Small_2d)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_Segment_Small_Hybrid_Reuse2d)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_Segment_Small_Hybrid_Recompute2d)
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->Iterations(1);

} // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  std::error_code ec;
  fs::remove_all(scratch(), ec);
  return 0;
}
