// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/geometry.hpp"

#include <cstdint>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

namespace densa::core {

/// Pixel types a Volume may hold.
enum class PixelType { UInt8, Int16, Float32 };

[[nodiscard]] std::string_view toString(PixelType type) noexcept;

template <typename T>
struct PixelTraits;

template <>
struct PixelTraits<std::uint8_t> {
  static constexpr PixelType kType = PixelType::UInt8;
};

template <>
struct PixelTraits<std::int16_t> {
  static constexpr PixelType kType = PixelType::Int16;
};

template <>
struct PixelTraits<float> {
  static constexpr PixelType kType = PixelType::Float32;
};

/// A 3-D image as a value type: a voxel buffer (i fastest, then j, then k — ITK order) plus its
/// Geometry (mm, LPS). Copies are deep and explicit in cost; moves are O(1) and leave the source
/// empty. Typical element types: `std::int16_t` for CT in HU, `float` for network input/output,
/// `std::uint8_t` for label maps (0 background, 1 liver, 2 tumour).
template <typename T>
class Volume {
public:
  using value_type = T;

  Volume() = default;

  /// A volume of `size` voxels, every voxel set to `fill`. Throws InvalidArgument if the voxel
  /// count overflows or any spacing is not strictly positive.
  explicit Volume(const Size3& size, const Geometry& geometry = {}, T fill = T{});

  /// Takes ownership of `voxels`; throws InvalidArgument when its length is not the voxel count.
  Volume(const Size3& size, const Geometry& geometry, std::vector<T> voxels);

  [[nodiscard]] const Size3& size() const noexcept { return m_size; }

  [[nodiscard]] const Geometry& geometry() const noexcept { return m_geometry; }

  void setGeometry(const Geometry& geometry);

  [[nodiscard]] std::size_t voxelCount() const noexcept { return m_voxels.size(); }

  [[nodiscard]] bool empty() const noexcept { return m_voxels.empty(); }

  [[nodiscard]] std::span<T> voxels() noexcept { return m_voxels; }

  [[nodiscard]] std::span<const T> voxels() const noexcept { return m_voxels; }

  [[nodiscard]] T* data() noexcept { return m_voxels.data(); }

  [[nodiscard]] const T* data() const noexcept { return m_voxels.data(); }

  /// Linear offset of voxel (i, j, k); no bounds check.
  [[nodiscard]] std::size_t offset(std::size_t i, std::size_t j, std::size_t k) const noexcept {
    return i + m_size[0] * (j + m_size[1] * k);
  }

  [[nodiscard]] T& at(std::size_t i, std::size_t j, std::size_t k) noexcept {
    return m_voxels[offset(i, j, k)];
  }

  [[nodiscard]] const T& at(std::size_t i, std::size_t j, std::size_t k) const noexcept {
    return m_voxels[offset(i, j, k)];
  }

  /// Physical LPS position (mm) of voxel centre (i, j, k).
  [[nodiscard]] Vec3 indexToPhysical(const Vec3& index) const noexcept {
    return m_geometry.indexToPhysical(index);
  }

  [[nodiscard]] Vec3 physicalToIndex(const Vec3& point) const {
    return m_geometry.physicalToIndex(point);
  }

  /// Voxel buffer size in bytes.
  [[nodiscard]] std::size_t byteSize() const noexcept { return m_voxels.size() * sizeof(T); }

  [[nodiscard]] bool operator==(const Volume& other) const = default;

private:
  Size3 m_size{0, 0, 0};
  Geometry m_geometry;
  std::vector<T> m_voxels;
};

/// A label map: 0 background, 1 liver, 2 tumour (other values allowed for multi-organ maps).
using LabelMap = Volume<std::uint8_t>;
using CtVolume = Volume<std::int16_t>;

/// A volume of any supported pixel type, as returned by readers that do not know the type in
/// advance.
using AnyVolume = std::variant<Volume<std::uint8_t>, Volume<std::int16_t>, Volume<float>>;

[[nodiscard]] PixelType pixelType(const AnyVolume& volume) noexcept;
[[nodiscard]] const Size3& sizeOf(const AnyVolume& volume) noexcept;
[[nodiscard]] const Geometry& geometryOf(const AnyVolume& volume) noexcept;

/// Minimum and maximum voxel value as doubles; throws InvalidArgument on an empty volume.
struct ValueRange {
  double min = 0;
  double max = 0;
};

[[nodiscard]] ValueRange valueRange(const AnyVolume& volume);

/// Converts to float (exact for uint8 and int16).
[[nodiscard]] Volume<float> toFloat(const AnyVolume& volume);

/// Rounds to the nearest integer and saturates to int16 (e.g. a float CT to HU). Geometry is kept.
[[nodiscard]] Volume<std::int16_t> roundToInt16(const Volume<float>& volume);

extern template class Volume<std::uint8_t>;
extern template class Volume<std::int16_t>;
extern template class Volume<float>;

} // namespace densa::core
