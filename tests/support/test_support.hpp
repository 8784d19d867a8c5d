// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <filesystem>
#include <optional>
#include <string>

namespace densa::testing {

/// The real test data folder (DENSA_DATA_DIR), or nullopt when absent.
[[nodiscard]] std::optional<std::filesystem::path> dataDir();

/// `dataDir()/relative`, or GTEST_SKIP-worthy nullopt when absent.
[[nodiscard]] std::optional<std::filesystem::path> dataPath(const std::string& relative);

/// A fresh temporary folder, removed with everything in it on destruction.
class TempDir {
public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return m_path; }

  [[nodiscard]] std::filesystem::path operator/(const std::string& name) const {
    return m_path / name;
  }

private:
  std::filesystem::path m_path;
};

/// An oblique, anisotropic geometry with a non-zero origin: geometry bugs show up with it.
[[nodiscard]] core::Geometry obliqueGeometry();

/// A ramp volume (value = i + 3j + 7k, as T) of `size` on `geometry`.
template <typename T>
[[nodiscard]] core::Volume<T> ramp(const core::Size3& size, const core::Geometry& geometry);

} // namespace densa::testing

#define DENSA_REQUIRE_DATA(var, relative)                                                          \
  const auto var##Opt = ::densa::testing::dataPath(relative);                                      \
  if (!var##Opt) {                                                                                 \
    GTEST_SKIP() << "test data not found: " << (relative) << " (set DENSA_DATA_DIR)";              \
  }                                                                                                \
  const std::filesystem::path var = *var##Opt
