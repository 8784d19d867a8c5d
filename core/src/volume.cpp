// SPDX-License-Identifier: Apache-2.0
#include "densa/core/volume.hpp"

#include "densa/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace densa::core {

namespace {

std::size_t checkedCount(const Size3& size) {
  std::size_t n = 1;
  for (const auto s : size) {
    if (s != 0 && n > std::numeric_limits<std::size_t>::max() / s) {
      throw InvalidArgument("Volume: voxel count overflows");
    }
    n *= s;
  }
  return n;
}

void checkGeometry(const Geometry& geometry) {
  for (const double s : geometry.spacing) {
    if (!(s > 0.0) || !std::isfinite(s)) {
      throw InvalidArgument("Volume: spacing must be finite and > 0 mm, got " + std::to_string(s));
    }
  }
}

} // namespace

std::string_view toString(PixelType type) noexcept {
  switch (type) {
  case PixelType::UInt8:
    return "uint8";
  case PixelType::Int16:
    return "int16";
  case PixelType::Float32:
    return "float32";
  }
  return "?";
}

template <typename T>
Volume<T>::Volume(const Size3& size, const Geometry& geometry, T fill)
    : m_size(size)
    , m_geometry(geometry)
    , m_voxels(checkedCount(size), fill) {
  checkGeometry(geometry);
}

template <typename T>
Volume<T>::Volume(const Size3& size, const Geometry& geometry, std::vector<T> voxels)
    : m_size(size)
    , m_geometry(geometry)
    , m_voxels(std::move(voxels)) {
  checkGeometry(geometry);
  if (m_voxels.size() != checkedCount(size)) {
    throw InvalidArgument("Volume: buffer holds " + std::to_string(m_voxels.size()) +
                          " voxels, size needs " + std::to_string(checkedCount(size)));
  }
}

template <typename T>
void Volume<T>::setGeometry(const Geometry& geometry) {
  checkGeometry(geometry);
  m_geometry = geometry;
}

template class Volume<std::uint8_t>;
template class Volume<std::int16_t>;
template class Volume<float>;

PixelType pixelType(const AnyVolume& volume) noexcept {
  return std::visit(
      [](const auto& v) {
        return PixelTraits<typename std::decay_t<decltype(v)>::value_type>::kType;
      },
      volume);
}

const Size3& sizeOf(const AnyVolume& volume) noexcept {
  return std::visit([](const auto& v) -> const Size3& { return v.size(); }, volume);
}

const Geometry& geometryOf(const AnyVolume& volume) noexcept {
  return std::visit([](const auto& v) -> const Geometry& { return v.geometry(); }, volume);
}

ValueRange valueRange(const AnyVolume& volume) {
  return std::visit(
      [](const auto& v) {
        if (v.empty()) {
          throw InvalidArgument("valueRange: empty volume");
        }
        const auto [lo, hi] = std::minmax_element(v.voxels().begin(), v.voxels().end());
        return ValueRange{static_cast<double>(*lo), static_cast<double>(*hi)};
      },
      volume);
}

Volume<std::int16_t> roundToInt16(const Volume<float>& volume) {
  std::vector<std::int16_t> out(volume.voxelCount());
  std::transform(volume.voxels().begin(), volume.voxels().end(), out.begin(), [](float v) {
    return static_cast<std::int16_t>(std::clamp(std::lround(v), -32768L, 32767L));
  });
  return Volume<std::int16_t>(volume.size(), volume.geometry(), std::move(out));
}

Volume<float> toFloat(const AnyVolume& volume) {
  return std::visit(
      [](const auto& v) {
        std::vector<float> out(v.voxelCount());
        std::transform(v.voxels().begin(), v.voxels().end(), out.begin(), [](auto x) {
          return static_cast<float>(x);
        });
        return Volume<float>(v.size(), v.geometry(), std::move(out));
      },
      volume);
}

} // namespace densa::core
