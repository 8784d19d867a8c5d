// SPDX-License-Identifier: Apache-2.0
// Throughput of the H-DenseUNet presets (slices/s) with the achieved GFLOP/s next to the machine's
// measured peak (large single-precision GEMMs and 3x3 / 1x1 convolutions in NCHW and channels-last
// layout) in the same run. Forward passes run in batches of 4 slices, as `densa segment` does.
//   build/<preset>/tests/bench/models_bench [--device=cuda] [--benchmark_filter=...]
// Counters: slices_per_s, GFLOPs (convolution FLOPs = 2 x MACs from the cost walker, the same
// figures `densa model info` prints; a backward pass is counted as 2 x forward), peak_GFLOPs,
// of_peak.
// train/<stage>/<preset>/<size>: full Trainer steps (forward, loss, backward, SGD-Nesterov update)
// per training stage on small inputs; counters samples_per_s (2D slices or 8-slice windows) and
// peak_RSS_MiB (the process's VmHWM, reset before each benchmark via /proc/self/clear_refs).
// gemini_pretrain/<preset>/<size>: GEMINI-MIP pretraining iterations (geminiPretrainStep: the
// alignment step on a pair, then the restoration step, Adam 1e-4, batch 1) on size^3 crops;
// counters iterations_per_s, GFLOPs (a forward pass = 3 backbones + 2 deformers + the restoration
// head, training counted as 3 x forward) and peak_RSS_MiB.
// On a machine that is busy with other work, set OMP_WAIT_POLICY=PASSIVE: OpenMP's spin-waiting
// otherwise inflated these step times about 20x in our runs.

#include "densa/models/model_info.hpp"
#include "densa/models/runtime.hpp"
#include "densa/models/torch/gemini_losses.hpp"
#include "densa/models/torch/h_dense_unet.hpp"
#include "densa/models/torch/losses.hpp"
#include "densa/models/torch/training.hpp"

#include "blocks/onednn_conv.hpp"
#include "peak.hpp"

#include <benchmark/benchmark.h>
#include <torch/cuda.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace densa::models;

torch::Device gDevice = torch::kCPU;
double gPeakGflops = 0.0;

void synchronize() {
  if (gDevice.is_cuda()) {
    torch::cuda::synchronize();
  }
}

void setCounters(benchmark::State& state,
                 double slicesPerIteration,
                 double gflopPerIteration,
                 double seconds) {
  // The peak is re-measured next to every benchmark and the highest figure of the run is kept:
  // this VM's speed drifts, and a peak caught in a slow moment would flatter of_peak.
  gPeakGflops = std::max(gPeakGflops, densa::bench::measurePeakGflops(gDevice));
  const auto iterations = static_cast<double>(state.iterations());
  const double gflops = gflopPerIteration * iterations / seconds;
  state.counters["slices_per_s"] = slicesPerIteration * iterations / seconds;
  state.counters["GFLOPs"] = gflops;
  state.counters["peak_GFLOPs"] = gPeakGflops;
  state.counters["of_peak"] = gflops / gPeakGflops;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// forward_plain/*: the inference fast paths off (models/torch/inference.hpp), i.e. the plain
// module graph; forward_libtorch/*: the fast paths with LibTorch's own convolutions and poolings
// (no direct oneDNN calls, models/src/blocks/onednn_conv.hpp); forward_fast/*: everything on. The
// ratios between them come from one run.
enum class Paths { Plain, LibTorch, Fast };

struct FastPathScope {
  explicit FastPathScope(Paths paths) {
    setInferenceFastPaths(paths != Paths::Plain);
    densa::models::detail::setDirectOneDnn(paths == Paths::Fast);
  }

  ~FastPathScope() {
    setInferenceFastPaths(true);
    densa::models::detail::setDirectOneDnn(true);
  }

  FastPathScope(const FastPathScope&) = delete;
  FastPathScope& operator=(const FastPathScope&) = delete;
};

// The 2D DenseUNet of a preset on `batch` 3-channel slices of size x size.
void twoD(benchmark::State& state,
          const std::string& preset,
          std::int64_t size,
          std::int64_t batch,
          bool backward,
          Paths paths = Paths::Fast) {
  const FastPathScope fastPaths(paths);
  torch::manual_seed(0);
  const auto options = hDenseUNetPreset(preset).net2d;
  DenseUNet2d net(options);
  net->to(gDevice);
  const auto input = torch::randn({batch, 3, size, size}, torch::TensorOptions().device(gDevice));
  const auto target = torch::randint(
      0, 3, {batch, size, size}, torch::TensorOptions().dtype(torch::kLong).device(gDevice));
  const double gflop = 2.0 * denseUNetCost(options, 2, {size, size}).macs / 1e9 *
                       static_cast<double>(batch) * (backward ? 3.0 : 1.0);
  if (backward) {
    net->train();
  } else {
    net->eval();
  }
  const auto pass = [&] {
    if (backward) {
      net->zero_grad();
      weightedCrossEntropy(net(input).logits, target).backward();
    } else {
      torch::NoGradGuard noGrad;
      benchmark::DoNotOptimize(net(input).logits);
    }
    synchronize();
  };
  pass(); // warm-up: oneDNN primitive creation, allocator
  double seconds = 0.0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    if (backward) {
      net->zero_grad();
      weightedCrossEntropy(net(input).logits, target).backward();
    } else {
      torch::NoGradGuard noGrad;
      benchmark::DoNotOptimize(net(input).logits);
    }
    synchronize();
    seconds += since(t0);
  }
  setCounters(state, static_cast<double>(batch), gflop, seconds);
}

// The hybrid net on one 8-slice window.
void hybrid(benchmark::State& state,
            const std::string& preset,
            std::int64_t size,
            bool backward,
            Paths paths = Paths::Fast) {
  const FastPathScope fastPaths(paths);
  torch::manual_seed(0);
  const auto options = hDenseUNetPreset(preset);
  HDenseUNet net(options);
  net->to(gDevice);
  const auto input = torch::randn({1, 1, 8, size, size}, torch::TensorOptions().device(gDevice));
  const auto target = torch::randint(
      0, 3, {1, 8, size, size}, torch::TensorOptions().dtype(torch::kLong).device(gDevice));
  const auto cost = hDenseUNetCost(options, 8, size, size);
  const double gflop =
      2.0 * (cost.net2d.macs + cost.net3d.macs + cost.fusion.macs) / 1e9 * (backward ? 3.0 : 1.0);
  WeightedCrossEntropyOptions ce;
  ce.excludeEdgeSlices = true;
  if (backward) {
    net->train();
  } else {
    net->eval();
  }
  const auto pass = [&] {
    if (backward) {
      net->zero_grad();
      weightedCrossEntropy(net(input).logits, target, ce).backward();
    } else {
      torch::NoGradGuard noGrad;
      benchmark::DoNotOptimize(net(input).logits);
    }
    synchronize();
  };
  pass(); // warm-up: oneDNN primitive creation, allocator
  double seconds = 0.0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    if (backward) {
      net->zero_grad();
      weightedCrossEntropy(net(input).logits, target, ce).backward();
    } else {
      torch::NoGradGuard noGrad;
      benchmark::DoNotOptimize(net(input).logits);
    }
    synchronize();
    seconds += since(t0);
  }
  setCounters(state, 8.0, gflop, seconds);
}

// Resets the peak resident set size (Linux >= 4.0); false where that is not possible.
bool resetPeakRss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

// VmHWM of /proc/self/status in MiB (0 where unavailable).
double peakRssMiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::stod(line.substr(6)) / 1024.0; // "VmHWM:   123456 kB"
    }
  }
  return 0.0;
}

// Trainer steps of one stage: "coarse" and "2d" on `batch` slices of size x size, "3dpart" and
// "end2end" on one [1, 1, 8, size, size] window.
void training(benchmark::State& state,
              const std::string& stage,
              const std::string& preset,
              std::int64_t size,
              std::int64_t batch) {
  const bool reset = resetPeakRss();
  torch::manual_seed(0);
  const std::string architecture = stage == "coarse" ? "coarse-liver" : "hdenseunet";
  TrainerOptions options;
  options.stage = stage;
  Trainer trainer(makeNet(modelPreset(architecture, preset)),
                  makeModelCard(architecture, preset),
                  options,
                  gDevice);
  const bool hybrid = stage == "3dpart" || stage == "end2end";
  const auto input =
      hybrid ? torch::randn({1, 1, 8, size, size}) : torch::randn({batch, 3, size, size});
  const auto target =
      hybrid ? torch::randint(0, 3, {1, 8, size, size}, torch::kLong)
             : torch::randint(0, stage == "coarse" ? 2 : 3, {batch, size, size}, torch::kLong);
  (void)trainer.step(input, target); // warm-up
  synchronize();
  double seconds = 0.0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(trainer.step(input, target).loss);
    synchronize();
    seconds += since(t0);
  }
  const double samples = hybrid ? 1.0 : static_cast<double>(batch);
  state.counters["samples_per_s"] = samples * static_cast<double>(state.iterations()) / seconds;
  state.counters["peak_RSS_MiB"] = peakRssMiB();
  if (!reset) {
    state.SetLabel("peak RSS is the process's, not reset");
  }
}

// GEMINI-MIP pretraining iterations on [1, 1, size, size, size] crops.
void geminiPretrain(benchmark::State& state, const std::string& preset, std::int64_t size) {
  const bool reset = resetPeakRss();
  torch::manual_seed(0);
  const auto options = geminiPreset(preset);
  GeminiNet net(options);
  net->to(gDevice);
  net->train();
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(1e-4));
  const auto a = torch::rand({1, 1, size, size, size});
  const auto b = torch::rand({1, 1, size, size, size});
  std::mt19937_64 rng(0);
  const auto corrupted = corruptAppearance(a, rng).to(gDevice);
  const auto da = a.to(gDevice);
  const auto db = b.to(gDevice);
  const auto cost = geminiCost(options, {size, size, size});
  const double forwardMacs =
      3.0 * cost.backbone.macs + 2.0 * cost.deformer.macs + cost.restorationHead.macs;
  const double gflop = 2.0 * forwardMacs * 3.0 / 1e9;
  (void)geminiPretrainStep(net, adam, da, db, corrupted); // warm-up
  synchronize();
  double seconds = 0.0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(geminiPretrainStep(net, adam, da, db, corrupted).total);
    synchronize();
    seconds += since(t0);
  }
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["iterations_per_s"] = iterations / seconds;
  state.counters["GFLOPs"] = gflop * iterations / seconds;
  state.counters["peak_RSS_MiB"] = peakRssMiB();
  if (!reset) {
    state.SetLabel("peak RSS is the process's, not reset");
  }
}

void registerAll() {
  const bool gpu = gDevice.is_cuda();
  // The same forward passes with the inference fast paths off (before/after in one run).
  for (const auto& [preset, size] :
       std::vector<std::pair<std::string, std::int64_t>>{{"small", 512}, {"paper", 224}}) {
    const std::string suffix = preset + "/" + std::to_string(size);
    const std::vector<std::pair<Paths, std::string>> variants = {
        {Paths::Plain, "forward_plain"},
        {Paths::LibTorch, "forward_libtorch"},
        {Paths::Fast, "forward_fast"}};
    for (const auto& [paths, kind] : variants) {
      auto* b = benchmark::RegisterBenchmark(
          (kind + "/net2d/" + suffix).c_str(),
          [=, p = paths](benchmark::State& s) { twoD(s, preset, size, 4, false, p); });
      b->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
    }
    for (const auto& [paths, kind] : variants) {
      auto* b = benchmark::RegisterBenchmark(
          (kind + "/hdenseunet_window8/" + suffix).c_str(),
          [=, p = paths](benchmark::State& s) { hybrid(s, preset, size, false, p); });
      b->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
    }
  }
  for (const std::string preset : {"tiny", "small", "paper"}) {
    for (const std::int64_t size : {32, 64, 96}) {
      if (preset == "paper" && size == 32) {
        continue;
      }
      const std::string name = "gemini_pretrain/" + preset + "/" + std::to_string(size);
      benchmark::RegisterBenchmark(name.c_str(),
                                   [=](benchmark::State& s) { geminiPretrain(s, preset, size); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  for (const std::string preset : {"tiny", "small", "paper"}) {
    for (const std::string stage : {"coarse", "2d", "3dpart", "end2end"}) {
      const std::int64_t size = 64; // coarse: multiples of 64 (2x down-sampling)
      const std::int64_t batch = 4;
      const std::string name = "train/" + stage + "/" + preset + "/" + std::to_string(size);
      auto* b = benchmark::RegisterBenchmark(
          name.c_str(), [=](benchmark::State& s) { training(s, stage, preset, size, batch); });
      b->Unit(benchmark::kMillisecond)->UseRealTime();
      if (preset == "paper" && !gpu) {
        b->Iterations(2); // seconds per step on a laptop CPU
      }
    }
  }
  for (const std::string preset : {"tiny", "small", "paper"}) {
    const bool paper = preset == "paper";
    for (const std::int64_t size : {224, 512}) {
      // Batches of 4 slices, as `densa segment` runs the 2D network (training backward passes at
      // 512 on the CPU: one slice).
      const std::int64_t batch = 4;
      const int iterations = paper && !gpu ? 2 : 0;
      for (const bool backward : {false, true}) {
        const std::string name = std::string(backward ? "forward_backward" : "forward") +
                                 "/net2d/" + preset + "/" + std::to_string(size);
        auto* b = benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
          twoD(s, preset, size, backward && size == 512 && !gpu ? 1 : batch, backward);
        });
        b->Unit(benchmark::kMillisecond)->UseRealTime();
        if (iterations > 0) {
          b->Iterations(iterations);
        }
      }
      for (const bool backward : {false, true}) {
        if (paper && !gpu && (size == 512 || backward)) {
          continue; // minutes per window on a laptop CPU; run it on a GPU
        }
        const std::string name = std::string(backward ? "forward_backward" : "forward") +
                                 "/hdenseunet_window8/" + preset + "/" + std::to_string(size);
        auto* b = benchmark::RegisterBenchmark(
            name.c_str(), [=](benchmark::State& s) { hybrid(s, preset, size, backward); });
        b->Unit(benchmark::kMillisecond)->UseRealTime();
        if (paper && !gpu) {
          b->Iterations(1);
        }
      }
    }
  }
}

} // namespace

int main(int argc, char** argv) {
  installHostTensorCache(); // as the densa CLI and viewer do: the figures are what densa runs
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--device=", 9) == 0) {
      gDevice = torch::Device(resolveDevice(argv[i] + 9));
    } else {
      args.push_back(argv[i]);
    }
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  const int threads = setThreads(0);
  gPeakGflops = densa::bench::measurePeakGflops(gDevice);
  benchmark::AddCustomContext("device", gDevice.str());
  benchmark::AddCustomContext("torch_threads", std::to_string(threads));
  benchmark::AddCustomContext("peak_GFLOPs (GEMM/conv)", std::to_string(gPeakGflops));
  registerAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
