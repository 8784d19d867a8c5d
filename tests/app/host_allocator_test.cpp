// SPDX-License-Identifier: Apache-2.0
#include "densa/app/host_allocator.hpp"

#include <gtest/gtest.h>
#include <torch/types.h>

namespace densa::app {
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

} // namespace
} // namespace densa::app
