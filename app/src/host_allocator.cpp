// SPDX-License-Identifier: Apache-2.0
#include "densa/app/host_allocator.hpp"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>

namespace densa::app {
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

  c10::DataPtr allocate(std::size_t n) const override {
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

  [[nodiscard]] c10::DeleterFnPtr raw_deleter() const override {
    return &CachingHostAllocator::release;
  }

  static void release(void* data);

private:
  void* take(std::size_t size) const {
    const std::lock_guard<std::mutex> lock(m_mutex);
    const auto it = m_free.find(size);
    if (it == m_free.end()) {
      return nullptr;
    }
    void* data = it->second;
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
    // Make room by dropping the largest cached blocks first (stale sizes of an earlier
    // workload are the ones that no longer match).
    while (m_cached + size > m_limit && !m_free.empty()) {
      const auto last = std::prev(m_free.end());
      m_cached -= last->first;
      m_sizes.erase(last->second);
      std::free(last->second);
      m_free.erase(last);
    }
    m_free.emplace(size, data);
    m_cached += size;
  }

  std::size_t m_limit;
  mutable std::mutex m_mutex;
  mutable std::unordered_map<void*, std::size_t> m_sizes; // every live or cached large block
  mutable std::multimap<std::size_t, void*> m_free;
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

void installHostTensorCache(std::size_t maxCachedBytes) {
  static std::once_flag once;
  std::call_once(once, [maxCachedBytes] {
    gAllocator = new CachingHostAllocator(maxCachedBytes);
    c10::SetCPUAllocator(gAllocator, /*priority=*/1);
  });
}

} // namespace densa::app
