// SPDX-License-Identifier: Apache-2.0
#pragma once

// LibTorch runtime settings. This header pulls in no LibTorch header.

#include <cstddef>
#include <string>

namespace densa::models {

/// Version of the LibTorch Densa was built against, e.g. "1.13.0".
[[nodiscard]] std::string libtorchVersion();

/// Sets LibTorch's intra-op thread count; 0 means one per hardware core (LibTorch's default on
/// Debian is 1). Returns the count in effect.
int setThreads(int threads);

/// Installs, once per process, a caching allocator for LibTorch CPU tensors of 1 MiB or more:
/// freed blocks (up to `maxCachedBytes` in all, those released longest ago dropped first) are
/// handed out again for requests of the same size (rounded up to 64 KiB). Without it every tensor
/// above glibc's 32 MB mmap limit is a fresh mapping that the kernel page-faults and zeroes, and a
/// 512 x 512 hybrid window allocates several of ~270 MB: about a third of its time (measured). Call
/// it at start-up, before the first tensor; the densa CLI, the viewer and the benchmarks do.
void installHostTensorCache(std::size_t maxCachedBytes = std::size_t{3} << 29); // 1.5 GiB

/// Bytes of freed blocks the cache holds now (0 before installHostTensorCache).
[[nodiscard]] std::size_t hostTensorCacheBytes();

/// LibTorch's current intra-op thread count.
[[nodiscard]] int threads();

/// True when LibTorch was built with CUDA and a GPU is visible.
[[nodiscard]] bool cudaAvailable();

/// Resolves a user's device string ("cpu", "cuda", "cuda:1") to a canonical one, throwing
/// models::ModelError when CUDA is requested but not available.
[[nodiscard]] std::string resolveDevice(const std::string& device);

} // namespace densa::models
