// SPDX-License-Identifier: Apache-2.0
#include "densa/models/runtime.hpp"

#include "densa/models/error.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace densa::models {
namespace {

TEST(Runtime, SetThreadsDefaultsToCoreCount) {
  const int n = setThreads(0);
  EXPECT_EQ(n, static_cast<int>(std::max(1U, std::thread::hardware_concurrency())));
  EXPECT_EQ(setThreads(1), 1);
  EXPECT_EQ(threads(), 1);
}

TEST(Runtime, ReportsLibtorchVersion) {
  EXPECT_FALSE(libtorchVersion().empty());
  EXPECT_NE(libtorchVersion().find('.'), std::string::npos);
}

TEST(Runtime, ResolvesDevices) {
  EXPECT_EQ(resolveDevice("cpu"), "cpu");
  EXPECT_THROW((void)resolveDevice("tpu"), ModelError);
  if (!cudaAvailable()) {
    EXPECT_THROW((void)resolveDevice("cuda"), ModelError);
  } else {
    EXPECT_EQ(resolveDevice("cuda:0"), "cuda:0");
  }
}

} // namespace
} // namespace densa::models
