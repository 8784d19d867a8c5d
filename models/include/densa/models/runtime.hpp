// SPDX-License-Identifier: Apache-2.0
#pragma once

// LibTorch runtime settings. This header pulls in no LibTorch header.

#include <string>

namespace densa::models {

/// Version of the LibTorch Densa was built against, e.g. "1.13.0".
[[nodiscard]] std::string libtorchVersion();

/// Sets LibTorch's intra-op thread count; 0 means one per hardware core (LibTorch's default on
/// Debian is 1). Returns the count in effect.
int setThreads(int threads);

/// LibTorch's current intra-op thread count.
[[nodiscard]] int threads();

/// True when LibTorch was built with CUDA and a GPU is visible.
[[nodiscard]] bool cudaAvailable();

/// Resolves a user's device string ("cpu", "cuda", "cuda:1") to a canonical one, throwing
/// models::ModelError when CUDA is requested but not available.
[[nodiscard]] std::string resolveDevice(const std::string& device);

} // namespace densa::models
