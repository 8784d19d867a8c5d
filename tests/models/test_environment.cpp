// SPDX-License-Identifier: Apache-2.0
// One LibTorch thread for every models test: the nets in these tests are tiny, and OpenMP worker
// threads competing with a parallel build cost far more than they bring.
#include "densa/models/runtime.hpp"

#include <gtest/gtest.h>

namespace densa::models {
namespace {

class SingleThreadEnvironment : public ::testing::Environment {
public:
  void SetUp() override { setThreads(1); }
};

[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new SingleThreadEnvironment);

} // namespace
} // namespace densa::models
