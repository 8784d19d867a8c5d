// SPDX-License-Identifier: Apache-2.0
#include "densa/models/runtime.hpp"

#include "densa/models/error.hpp"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/types.h>
#include <torch/version.h>

#include <thread>

namespace densa::models {

std::string libtorchVersion() {
  return TORCH_VERSION;
}

int setThreads(int requested) {
  const int n = requested > 0 ? requested
                              : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  return at::get_num_threads();
}

int threads() {
  return at::get_num_threads();
}

bool cudaAvailable() {
  return torch::cuda::is_available();
}

std::string resolveDevice(const std::string& device) {
  if (device.empty() || device == "cpu") {
    return "cpu";
  }
  if (device.rfind("cuda", 0) == 0) {
    if (!cudaAvailable()) {
      throw ModelError(
          "device '" + device +
          "' requested but this LibTorch has no CUDA or no GPU is visible; use --device cpu");
    }
    try {
      return torch::Device(device).str();
    } catch (const c10::Error&) {
      throw ModelError("invalid device '" + device + "' (expected cpu, cuda or cuda:N)");
    }
  }
  throw ModelError("invalid device '" + device + "' (expected cpu, cuda or cuda:N)");
}

} // namespace densa::models
