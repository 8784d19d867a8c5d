// SPDX-License-Identifier: Apache-2.0
#include "support/test_support.hpp"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <random>

namespace densa::testing {

namespace fs = std::filesystem;

std::optional<fs::path> dataDir() {
  // ctest sets DENSA_DATA_DIR (CMake cache variable, default ../shared/data next to the source).
  const char* dir = std::getenv("DENSA_DATA_DIR");
  if (dir != nullptr && *dir != '\0' && fs::is_directory(dir)) {
    return fs::path(dir);
  }
  return std::nullopt;
}

std::optional<fs::path> dataPath(const std::string& relative) {
  const auto dir = dataDir();
  if (!dir || !fs::exists(*dir / relative)) {
    return std::nullopt;
  }
  return *dir / relative;
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  m_path = fs::temp_directory_path() / ("densa-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(counter++) + "-" + std::to_string(rd()));
  fs::create_directories(m_path);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(m_path, ec);
}

core::Geometry obliqueGeometry() {
  // Rotation of 20 degrees about z then 10 degrees about x.
  const double a = 20.0 * M_PI / 180.0;
  const double b = 10.0 * M_PI / 180.0;
  const double ca = std::cos(a), sa = std::sin(a), cb = std::cos(b), sb = std::sin(b);
  core::Geometry g;
  g.spacing = {0.75, 0.8, 2.5};
  g.origin = {-120.25, 33.5, -410.0};
  // R = Rx(b) * Rz(a)
  g.direction = {ca, -sa, 0, cb * sa, cb * ca, -sb, sb * sa, sb * ca, cb};
  return g;
}

template <typename T>
core::Volume<T> ramp(const core::Size3& size, const core::Geometry& geometry) {
  core::Volume<T> v(size, geometry);
  for (std::size_t k = 0; k < size[2]; ++k) {
    for (std::size_t j = 0; j < size[1]; ++j) {
      for (std::size_t i = 0; i < size[0]; ++i) {
        v.at(i, j, k) = static_cast<T>(i + 3 * j + 7 * k);
      }
    }
  }
  return v;
}

template core::Volume<std::uint8_t> ramp(const core::Size3&, const core::Geometry&);
template core::Volume<std::int16_t> ramp(const core::Size3&, const core::Geometry&);
template core::Volume<float> ramp(const core::Size3&, const core::Geometry&);

} // namespace densa::testing
