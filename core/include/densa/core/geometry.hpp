// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstddef>
#include <string>

namespace densa::core {

using Vec3 = std::array<double, 3>;
/// Row-major 3x3 matrix.
using Mat3 = std::array<double, 9>;
/// Number of voxels along i (x, fastest), j (y) and k (z, slowest).
using Size3 = std::array<std::size_t, 3>;

/// Where a voxel grid lies in patient space. Units are millimetres and the frame is **LPS**
/// (+x towards the patient's left, +y posterior, +z superior), as in DICOM and ITK.
/// `direction` is row-major; its column c is the unit vector of index axis c in LPS.
/// physical = origin + direction * diag(spacing) * index.
struct Geometry {
  Vec3 spacing{1.0, 1.0, 1.0};
  Vec3 origin{0.0, 0.0, 0.0};
  Mat3 direction{1, 0, 0, 0, 1, 0, 0, 0, 1};

  /// Physical LPS position (mm) of a continuous index (i, j, k).
  [[nodiscard]] Vec3 indexToPhysical(const Vec3& index) const noexcept;
  /// Continuous index of a physical LPS point (mm). Exact inverse of indexToPhysical for
  /// orthonormal directions; a general 3x3 inverse is used otherwise.
  [[nodiscard]] Vec3 physicalToIndex(const Vec3& point) const;
  /// Unit vector of index axis `axis` (0, 1, 2) in LPS.
  [[nodiscard]] Vec3 axis(int axis) const noexcept;

  /// True when every component agrees within `tolerance` (mm for spacing/origin, unitless for
  /// direction).
  [[nodiscard]] bool approxEqual(const Geometry& other, double tolerance = 1e-4) const noexcept;

  /// Exact equality of every component.
  [[nodiscard]] bool operator==(const Geometry& other) const = default;
};

/// Three-letter orientation code of a direction matrix in the ITK/DICOM convention: for each
/// index axis, the patient direction it points *towards* (e.g. "LPS" for identity, "LAS" for a
/// flipped j axis; NIfTI tools call the same grid "RAI"). Oblique axes take their closest letter.
[[nodiscard]] std::string orientationCode(const Mat3& direction);

/// True when `direction` is orthonormal within `tolerance`.
[[nodiscard]] bool isOrthonormal(const Mat3& direction, double tolerance = 1e-4) noexcept;

[[nodiscard]] Vec3 cross(const Vec3& a, const Vec3& b) noexcept;
[[nodiscard]] double dot(const Vec3& a, const Vec3& b) noexcept;
[[nodiscard]] double norm(const Vec3& a) noexcept;

} // namespace densa::core
