// SPDX-License-Identifier: Apache-2.0
#include "densa/models/runtime.hpp"
#include "densa/models/torch/checkpoint.hpp"
#include "densa/models/torch/losses.hpp"

#include <gtest/gtest.h>
#include <torch/utils.h>

namespace densa::models {
namespace {

TEST(CudaDevice, TinyHybridNetGivesTheCpuAnswerAndTrains) {
  if (!cudaAvailable()) {
    GTEST_SKIP() << "no CUDA device";
  }
  torch::manual_seed(5);
  HDenseUNet cpu(hDenseUNetPreset("tiny"));
  cpu->eval();
  const auto path = std::filesystem::temp_directory_path() / "densa_cuda_test.densa";
  saveCheckpoint(cpu, makeModelCard("hdenseunet", "tiny"), path);
  auto gpu = std::get<HDenseUNet>(loadCheckpoint(path, torch::Device(resolveDevice("cuda"))).net);
  std::filesystem::remove(path);
  const auto volume = torch::randn({1, 1, 8, 64, 64});
  {
    torch::NoGradGuard noGrad;
    const auto a = cpu(volume).logits;
    const auto b = gpu(volume.to(torch::kCUDA)).logits.cpu();
    EXPECT_TRUE(torch::allclose(a, b, 1e-3, 1e-3));
  }
  gpu->train();
  const auto target = torch::randint(0, 3, {1, 8, 64, 64}, torch::kLong).to(torch::kCUDA);
  weightedCrossEntropy(gpu(volume.to(torch::kCUDA)).logits, target).backward();
  for (const auto& p : gpu->parameters()) {
    EXPECT_TRUE(p.grad().defined() && p.grad().is_cuda());
  }
}

} // namespace
} // namespace densa::models
