// SPDX-License-Identifier: Apache-2.0
#pragma once

// A size-keyed cache in front of LibTorch's CPU tensor allocator. This header pulls in no
// LibTorch header.

#include <cstddef>

namespace densa::app {

/// Installs, once per process, a caching allocator for LibTorch CPU tensors of 1 MiB or more:
/// freed blocks (up to `maxCachedBytes` in all, those released longest ago dropped first) are
/// handed out again for requests of the same size (rounded up to 64 KiB). Without it every tensor
/// above glibc's 32 MB mmap limit is a fresh mapping that the kernel page-faults and zeroes, and a
/// 512 x 512 hybrid window allocates several of ~270 MB: about a third of its time (measured). Call
/// it at start-up, before the first tensor; the densa CLI and the viewer do.
void installHostTensorCache(std::size_t maxCachedBytes = std::size_t{3} << 29); // 1.5 GiB

/// Bytes of freed blocks the cache holds now (0 before installHostTensorCache).
[[nodiscard]] std::size_t hostTensorCacheBytes();

} // namespace densa::app
