// SPDX-License-Identifier: Apache-2.0
// densa segment end to end on a synthetic 512 x 512 x N CT (N = DENSA_BENCH_SLICES, default 16;
// the figure is N = 100): seconds per stage (I/O, preprocessing, network,
// post-processing) and peak RSS per preset, and the hybrid network with the 2D branch reused
// across windows against recomputed per window (the reference). Untrained weights: speed only.
// Default/*: the bundled default model (small preset, trained) on full slices (reference) and on
// the liver box (`--roi liver-box`, the paper), whose ROI needs trained weights; *_Bf16: the same
// with `--precision bf16` (skipped on CPUs without AMX / AVX512-BF16); *_LibTorch: LibTorch's own
// convolutions instead of the direct oneDNN calls. Paper_*: the paper preset.
// Counters: <stage>_s seconds, <stage>_GFLOP convolution work, network_of_peak (achieved
// GFLOP/s over the machine's peak measured in the same run, see peak.hpp) and
// network_vs_bound (network seconds over GFLOP / peak: 1.0 would be the peak; target <= 1.5); bf16
// rows also network_vs_bf16_bound, against the bfloat16 convolution peak (peak.hpp).
//   DENSA_BENCH_SLICES=100 build/ci/tests/bench/segment_bench
#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/app/phantom.hpp"
#include "densa/io/image_file.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/runtime.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include "blocks/onednn_conv.hpp"
#include "peak.hpp"

#include <benchmark/benchmark.h>
#include <torch/utils.h>
#include <unistd.h>

#include <algorithm>
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

double gPeakGflops = 0.0;
double gPeakGflopsBf16 = 0.0;

void segmentWith(benchmark::State& state,
                 const fs::path& modelFile,
                 app::SegmenterOptions options) {
  models::setThreads(0);
  const auto segmenter = app::loadHDenseUNetSegmenter(modelFile, options);
  const fs::path file = ctFile();
  std::map<std::string, double> seconds;
  std::map<std::string, double> gflop;
  resetPeakRss();
  for (auto _ : state) {
    const auto t = std::chrono::steady_clock::now();
    const auto ct = std::get<core::Volume<std::int16_t>>(io::readImage(file));
    seconds["io"] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    const auto r = segmenter->segment(ct, {});
    for (const auto& [k, v] : r.seconds) {
      seconds[k] += v;
    }
    for (const auto& [k, v] : r.gflop) {
      gflop[k] += v;
    }
  }
  for (const auto& [k, v] : seconds) {
    state.counters[k + "_s"] = v / static_cast<double>(state.iterations());
  }
  for (const auto& [k, v] : gflop) {
    state.counters[k + "_GFLOP"] = v / static_cast<double>(state.iterations());
  }
  // Peak RSS first: the peak measurement below allocates. The peak is re-measured next to every
  // benchmark and the run's highest figure kept (this VM's speed drifts; a peak caught in a slow
  // moment would flatter the ratios).
  state.counters["peak_rss_MiB"] = static_cast<double>(peakRssKiB()) / 1024.0;
  gPeakGflops = std::max(gPeakGflops, densa::bench::measurePeakGflops(torch::kCPU));
  state.counters["peak_GFLOPs"] = gPeakGflops;
  if (gflop["network"] > 0 && seconds["network"] > 0) {
    state.counters["network_of_peak"] = gflop["network"] / seconds["network"] / gPeakGflops;
    state.counters["network_vs_bound"] = seconds["network"] / (gflop["network"] / gPeakGflops);
    if (options.precision == "bf16") {
      // bf16 work against the bf16 peak too (the float bound above flatters it).
      gPeakGflopsBf16 = std::max(gPeakGflopsBf16, densa::bench::measurePeakGflopsBf16());
      state.counters["peak_bf16_GFLOPs"] = gPeakGflopsBf16;
      state.counters["network_vs_bf16_bound"] =
          seconds["network"] / (gflop["network"] / gPeakGflopsBf16);
    }
  }
}

void segment(benchmark::State& state,
             const std::string& preset,
             const std::string& stage,
             bool reuse) {
  app::SegmenterOptions options;
  options.reuse2d = reuse;
  options.precision = "fp32"; // the figures the FLOP bound is about
  segmentWith(state, model(preset, stage), options);
}

void defaultModel(benchmark::State& state,
                  app::RoiMode roi,
                  const std::string& precision = "fp32",
                  bool directOneDnn = true) {
  if (precision == "bf16" && !app::cpuHasFastBf16()) {
    state.SkipWithError("this CPU has neither AMX nor AVX512-BF16");
    return;
  }
  app::SegmenterOptions options;
  options.roi = roi;
  options.precision = precision;
  models::detail::setDirectOneDnn(directOneDnn);
  segmentWith(state, app::defaultModelPath(), options);
  models::detail::setDirectOneDnn(true);
}

// *_LibTorch: the same with LibTorch's own convolutions and poolings instead of the direct oneDNN
// calls (models/src/blocks/onednn_conv.hpp): before/after in one run.
void BM_Segment_Default_FullSlices_LibTorch(benchmark::State& s) {
  defaultModel(s, app::RoiMode::Full, "fp32", false);
}

void BM_Segment_Default_LiverBox_LibTorch(benchmark::State& s) {
  defaultModel(s, app::RoiMode::LiverBox, "fp32", false);
}

void BM_Segment_Default_FullSlices_Bf16(benchmark::State& s) {
  defaultModel(s, app::RoiMode::Full, "bf16");
}

void BM_Segment_Default_LiverBox_Bf16(benchmark::State& s) {
  defaultModel(s, app::RoiMode::LiverBox, "bf16");
}

// The paper preset (untrained), full slices: about 10 s per 512 x 512 window on 2 cores.
void BM_Segment_Paper_Hybrid_Reuse2d(benchmark::State& s) {
  segment(s, "paper", "untrained", true);
}

void BM_Segment_Default_FullSlices(benchmark::State& s) {
  defaultModel(s, app::RoiMode::Full);
}

void BM_Segment_Default_LiverBox(benchmark::State& s) {
  defaultModel(s, app::RoiMode::LiverBox);
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
BENCHMARK(BM_Segment_Default_FullSlices)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_Segment_Default_FullSlices_LibTorch)
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->Iterations(1);
BENCHMARK(BM_Segment_Default_LiverBox)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_Segment_Default_LiverBox_LibTorch)
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->Iterations(1);
BENCHMARK(BM_Segment_Default_FullSlices_Bf16)
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->Iterations(1);
BENCHMARK(BM_Segment_Default_LiverBox_Bf16)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_Segment_Paper_Hybrid_Reuse2d)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);

} // namespace

int main(int argc, char** argv) {
  models::installHostTensorCache(); // as the densa CLI and viewer do
  benchmark::Initialize(&argc, argv);
  models::setThreads(0);
  gPeakGflops = densa::bench::measurePeakGflops(torch::kCPU);
  benchmark::AddCustomContext("peak_GFLOPs", std::to_string(gPeakGflops));
  benchmark::RunSpecifiedBenchmarks();
  std::error_code ec;
  fs::remove_all(scratch(), ec);
  return 0;
}
