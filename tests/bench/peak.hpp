// SPDX-License-Identifier: Apache-2.0
// The machine's measured single-precision peak for the benchmarks' "of_peak" figures.
#pragma once

#include <benchmark/benchmark.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace densa::bench {

// Peak: the best of a few large float GEMMs (2048^3 on CPU, 8192^3 on GPU) and large
// convolutions, 3x3 (512 -> 512 channels at 56x56 / 112x112) and 1x1 (512 -> 192, batch 4), each
// in NCHW and channels-last layout: the fastest library path this machine has for the shapes the
// network runs.
inline double measurePeakGflops(const torch::Device& device) {
  const auto opts = torch::TensorOptions().device(device);
  const std::int64_t n = device.is_cuda() ? 8192 : 2048;
  const std::int64_t hw = device.is_cuda() ? 112 : 56;
  const auto a = torch::randn({n, n}, opts);
  const auto b = torch::randn({n, n}, opts);
  const auto x3 = torch::randn({1, 512, hw, hw}, opts);
  const auto w3 = torch::randn({512, 512, 3, 3}, opts);
  const auto x1 = torch::randn({4, 512, hw, hw}, opts);
  const auto w1 = torch::randn({192, 512, 1, 1}, opts);
  const auto cl = torch::MemoryFormat::ChannelsLast;

  struct Candidate {
    std::function<torch::Tensor()> run;
    double flop;
  };

  const double hw2 = static_cast<double>(hw * hw);
  const std::vector<Candidate> candidates = {
      {[&] { return torch::mm(a, b); }, 2.0 * static_cast<double>(n * n * n)},
      {[&] { return torch::conv2d(x3, w3, {}, 1, 1); }, 2.0 * 512 * 512 * 9 * hw2},
      {[&, x = x3.contiguous(cl)] { return torch::conv2d(x, w3, {}, 1, 1); },
       2.0 * 512 * 512 * 9 * hw2},
      {[&] { return torch::conv2d(x1, w1); }, 2.0 * 4 * 512 * 192 * hw2},
      {[&, x = x1.contiguous(cl)] { return torch::conv2d(x, w1); }, 2.0 * 4 * 512 * 192 * hw2},
  };
  double best = 0.0;
  for (const auto& c : candidates) {
    for (int i = 0; i < 3; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(c.run());
      if (device.is_cuda()) {
        torch::cuda::synchronize();
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (i > 0) { // the first is a warm-up
        best = std::max(best, c.flop / s / 1e9);
      }
    }
  }
  return best;
}

// The bfloat16 peak on the CPU (AMX / AVX512-BF16 oneDNN kernels where the CPU has them): the
// best of large channels-last bfloat16 convolutions, 3x3 (512 -> 512 channels at 56x56) and 1x1
// (512 -> 192, batch 4). The bound for `--precision bf16` runs.
inline double measurePeakGflopsBf16() {
  const auto opts = torch::TensorOptions().dtype(torch::kBFloat16);
  const auto cl = torch::MemoryFormat::ChannelsLast;
  const std::int64_t hw = 56;
  const auto x3 = torch::randn({1, 512, hw, hw}, opts).contiguous(cl);
  const auto w3 = torch::randn({512, 512, 3, 3}, opts);
  const auto x1 = torch::randn({4, 512, hw, hw}, opts).contiguous(cl);
  const auto w1 = torch::randn({192, 512, 1, 1}, opts);
  const double hw2 = static_cast<double>(hw * hw);

  struct Candidate {
    std::function<torch::Tensor()> run;
    double flop;
  };

  const std::vector<Candidate> candidates = {
      {[&] { return torch::conv2d(x3, w3, {}, 1, 1); }, 2.0 * 512 * 512 * 9 * hw2},
      {[&] { return torch::conv2d(x1, w1); }, 2.0 * 4 * 512 * 192 * hw2}};
  double best = 0.0;
  for (const auto& c : candidates) {
    for (int i = 0; i < 4; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(c.run());
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (i > 0) {
        best = std::max(best, c.flop / s / 1e9);
      }
    }
  }
  return best;
}

} // namespace densa::bench
