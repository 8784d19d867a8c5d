// SPDX-License-Identifier: Apache-2.0
#include "densa/models/runtime.hpp"

#include <gtest/gtest.h>
#include <torch/types.h>

namespace densa::models {
namespace {

// Large CPU tensors reuse freed blocks of the same size; everything else behaves as before.
TEST(HostTensorCache, ReusesFreedBlocksOfTheSameSize) {
  installHostTensorCache();
  installHostTensorCache(); // idempotent
  const void* first = nullptr;
  {
    auto t = torch::empty({1 << 20}); // 4 MiB
    first = t.data_ptr();
    t.fill_(3.0F);
  }
  auto again = torch::empty({1 << 20});
  EXPECT_EQ(again.data_ptr(), first) << "a freed 4 MiB block should be handed out again";
  again.fill_(2.0F);
  auto other = torch::full({1 << 20}, 5.0F); // the cached block is taken: a new one
  EXPECT_NE(other.data_ptr(), again.data_ptr());
  EXPECT_EQ(again.sum().item<double>(), 2.0 * (1 << 20));
  EXPECT_EQ(other.sum().item<double>(), 5.0 * (1 << 20));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(other.data_ptr()) % 64, 0U);
  // Small tensors go to LibTorch's own allocator, unchanged.
  const auto small = torch::arange(10);
  EXPECT_EQ(small.sum().item<std::int64_t>(), 45);
}

// Over the limit (1.5 GiB by default), the blocks released longest ago go first: the nets allocate
// the same sizes in the same order window after window, so the newest are the next wanted. The
// blocks are never touched: untouched pages cost no memory.
TEST(HostTensorCache, DropsTheBlocksReleasedLongestAgo) {
  installHostTensorCache();
  constexpr std::int64_t kMiB = std::int64_t{1} << 20;
  const auto bytes = [](std::int64_t n) {
    return torch::empty({n}, torch::kByte);
  };
  auto small = bytes(200 * kMiB);
  auto large = bytes(900 * kMiB);
  auto medium = bytes(600 * kMiB);
  const void* largeAddress = large.data_ptr();
  small = torch::Tensor(); // oldest: whatever earlier tests left is older still
  large = torch::Tensor();
  medium = torch::Tensor(); // 1700 MiB released: the 200 MiB block (and older ones) must go
  EXPECT_EQ(hostTensorCacheBytes(), static_cast<std::size_t>(1500 * kMiB));
  const auto again = bytes(900 * kMiB);
  EXPECT_EQ(again.data_ptr(), largeAddress) << "the 900 MiB block should still be cached";
  EXPECT_EQ(hostTensorCacheBytes(), static_cast<std::size_t>(600 * kMiB));
}

} // namespace
} // namespace densa::models
