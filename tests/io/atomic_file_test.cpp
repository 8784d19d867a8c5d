// SPDX-License-Identifier: Apache-2.0
#include "densa/io/atomic_file.hpp"

#include "densa/core/error.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace densa::io {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t entries(const fs::path& dir) {
  return static_cast<std::size_t>(
      std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

TEST(WriteAtomically, ReplacesTargetAndLeavesNoTemporaries) {
  testing::TempDir tmp;
  writeTextAtomically(tmp / "a.txt", "one");
  writeTextAtomically(tmp / "a.txt", "two");
  EXPECT_EQ(slurp(tmp / "a.txt"), "two");
  EXPECT_EQ(entries(tmp.path()), 1U);
}

TEST(WriteAtomically, FailedWriterKeepsOldTargetAndCleansUp) {
  testing::TempDir tmp;
  writeTextAtomically(tmp / "a.txt", "old");
  EXPECT_THROW(writeAtomically(tmp / "a.txt",
                               [](const fs::path& temp) {
                                 std::ofstream(temp) << "half-written";
                                 throw core::InputError("simulated failure");
                               }),
               core::InputError);
  EXPECT_EQ(slurp(tmp / "a.txt"), "old");
  EXPECT_EQ(entries(tmp.path()), 1U);
}

TEST(WriteAtomically, MovesDetachedDataFilesToo) {
  testing::TempDir tmp;
  writeAtomically(tmp / "x.mhd", [](const fs::path& temp) {
    std::ofstream(temp.parent_path() / "x.raw") << "data";
    std::ofstream(temp) << "header";
  });
  EXPECT_EQ(slurp(tmp / "x.raw"), "data");
  EXPECT_EQ(slurp(tmp / "x.mhd"), "header");
  EXPECT_EQ(entries(tmp.path()), 2U);
}

TEST(WriteAtomically, CreatesMissingFolders) {
  testing::TempDir tmp;
  writeTextAtomically(tmp.path() / "deep" / "er" / "b.txt", "hi");
  EXPECT_EQ(slurp(tmp.path() / "deep" / "er" / "b.txt"), "hi");
}

} // namespace
} // namespace densa::io
