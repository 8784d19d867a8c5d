// SPDX-License-Identifier: Apache-2.0
#include "densa/models/runtime.hpp"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <utility>

namespace densa::models {
namespace {

constexpr std::size_t kMinCached = std::size_t{1} << 20; // smaller blocks: glibc's heap is fine
constexpr std::size_t kRounding = std::size_t{1} << 16;  // 64 KiB: fewer distinct sizes
constexpr std::size_t kAlignment = 64;                   // as LibTorch's own CPU allocator

// DataPtr context == data and a raw deleter, as LibTorch's raw_allocate() requires; the sizes of
// the cacheable blocks are looked up by address.
class CachingHostAllocator final : public c10::Allocator {
public:
  explicit CachingHostAllocator(std::size_t limit)
      : m_limit(limit) {}

  // LibTorch 2.3 made allocate() non-const and added copy_data().
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  c10::DataPtr allocate(std::size_t n) override {
    return allocateBlock(n);
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    std::memcpy(dest, src, count);
  }
#else
  c10::DataPtr allocate(std::size_t n) const override {
    return allocateBlock(n);
  }
#endif

  [[nodiscard]] c10::DeleterFnPtr raw_deleter() const override {
    return &CachingHostAllocator::release;
  }

  static void release(void* data);

private:
  c10::DataPtr allocateBlock(std::size_t n) const {
    void* data = nullptr;
    if (n < kMinCached) {
      if (posix_memalign(&data, kAlignment, std::max<std::size_t>(n, 1)) != 0) {
        throw std::bad_alloc();
      }
      return {data, data, &CachingHostAllocator::release, c10::Device(c10::kCPU)};
    }
    const std::size_t size = (n + kRounding - 1) / kRounding * kRounding;
    data = take(size);
    if (data == nullptr) {
      if (posix_memalign(&data, kAlignment, size) != 0) {
        throw std::bad_alloc();
      }
      const std::lock_guard<std::mutex> lock(m_mutex);
      m_sizes.emplace(data, size);
    }
    return {data, data, &CachingHostAllocator::release, c10::Device(c10::kCPU)};
  }

  void* take(std::size_t size) const {
    const std::lock_guard<std::mutex> lock(m_mutex);
    const auto it = m_free.find(size);
    if (it == m_free.end()) {
      return nullptr;
    }
    void* data = it->second->second;
    m_released.erase(it->second);
    m_free.erase(it);
    m_cached -= size;
    return data;
  }

  void give(void* data) const {
    const std::lock_guard<std::mutex> lock(m_mutex);
    const auto known = m_sizes.find(data);
    if (known == m_sizes.end()) { // a small block
      std::free(data);
      return;
    }
    const std::size_t size = known->second;
    if (size > m_limit) {
      m_sizes.erase(known);
      std::free(data);
      return;
    }
    // Make room by dropping the blocks released longest ago. The nets allocate the same sizes in
    // the same order window after window, so the most recently released are the next wanted;
    // dropping the largest first (this cache's earlier rule) dropped exactly the whole-window
    // feature maps, and missed twice as many bytes on a 512 x 512 hybrid run (trace replay).
    while (m_cached + size > m_limit && !m_released.empty()) {
      const auto oldest = std::prev(m_released.end());
      const auto [first, last] = m_free.equal_range(oldest->first);
      for (auto it = first; it != last; ++it) {
        if (it->second == oldest) {
          m_free.erase(it);
          break;
        }
      }
      m_cached -= oldest->first;
      m_sizes.erase(oldest->second);
      std::free(oldest->second);
      m_released.erase(oldest);
    }
    m_released.emplace_front(size, data);
    m_free.emplace(size, m_released.begin());
    m_cached += size;
  }

public:
  [[nodiscard]] std::size_t cached() const {
    const std::lock_guard<std::mutex> lock(m_mutex);
    return m_cached;
  }

private:
  std::size_t m_limit;
  mutable std::mutex m_mutex;
  mutable std::unordered_map<void*, std::size_t> m_sizes; // every live or cached large block
  // Cached blocks, most recently released first, and the same by size.
  mutable std::list<std::pair<std::size_t, void*>> m_released;
  mutable std::multimap<std::size_t, std::list<std::pair<std::size_t, void*>>::iterator> m_free;
  mutable std::size_t m_cached = 0;
};

// Never destroyed: tensors may be freed during static destruction.
CachingHostAllocator* gAllocator = nullptr;

void CachingHostAllocator::release(void* data) {
  if (data != nullptr) {
    gAllocator->give(data);
  }
}

} // namespace

std::size_t hostTensorCacheBytes() {
  return gAllocator == nullptr ? 0 : gAllocator->cached();
}

void installHostTensorCache(std::size_t maxCachedBytes) {
  static std::once_flag once;
  std::call_once(once, [maxCachedBytes] {
    gAllocator = new CachingHostAllocator(maxCachedBytes);
    c10::SetCPUAllocator(gAllocator, /*priority=*/1);
  });
}

} // namespace densa::models
