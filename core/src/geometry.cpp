// SPDX-License-Identifier: Apache-2.0
#include "densa/core/geometry.hpp"

#include "densa/core/error.hpp"

#include <cmath>

namespace densa::core {

Vec3 cross(const Vec3& a, const Vec3& b) noexcept {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

double dot(const Vec3& a, const Vec3& b) noexcept {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

double norm(const Vec3& a) noexcept {
  return std::sqrt(dot(a, a));
}

Vec3 Geometry::axis(int axis) const noexcept {
  const auto c = static_cast<std::size_t>(axis);
  return {direction[c], direction[3 + c], direction[6 + c]};
}

Vec3 Geometry::indexToPhysical(const Vec3& index) const noexcept {
  Vec3 p = origin;
  for (std::size_t r = 0; r < 3; ++r) {
    for (std::size_t c = 0; c < 3; ++c) {
      p[r] += direction[3 * r + c] * spacing[c] * index[c];
    }
  }
  return p;
}

Vec3 Geometry::physicalToIndex(const Vec3& point) const {
  // Solve (D * S) x = p - o with an explicit 3x3 inverse (D may be non-orthonormal).
  Mat3 m{};
  for (std::size_t r = 0; r < 3; ++r) {
    for (std::size_t c = 0; c < 3; ++c) {
      m[3 * r + c] = direction[3 * r + c] * spacing[c];
    }
  }
  const double det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
                     m[2] * (m[3] * m[7] - m[4] * m[6]);
  if (std::abs(det) < 1e-12) {
    throw InvalidArgument("physicalToIndex: singular geometry (direction * spacing)");
  }
  const Mat3 inv{(m[4] * m[8] - m[5] * m[7]) / det,
                 (m[2] * m[7] - m[1] * m[8]) / det,
                 (m[1] * m[5] - m[2] * m[4]) / det,
                 (m[5] * m[6] - m[3] * m[8]) / det,
                 (m[0] * m[8] - m[2] * m[6]) / det,
                 (m[2] * m[3] - m[0] * m[5]) / det,
                 (m[3] * m[7] - m[4] * m[6]) / det,
                 (m[1] * m[6] - m[0] * m[7]) / det,
                 (m[0] * m[4] - m[1] * m[3]) / det};
  const Vec3 d{point[0] - origin[0], point[1] - origin[1], point[2] - origin[2]};
  Vec3 x{};
  for (std::size_t r = 0; r < 3; ++r) {
    x[r] = inv[3 * r] * d[0] + inv[3 * r + 1] * d[1] + inv[3 * r + 2] * d[2];
  }
  return x;
}

bool Geometry::approxEqual(const Geometry& other, double tolerance) const noexcept {
  for (std::size_t i = 0; i < 3; ++i) {
    if (std::abs(spacing[i] - other.spacing[i]) > tolerance ||
        std::abs(origin[i] - other.origin[i]) > tolerance) {
      return false;
    }
  }
  for (std::size_t i = 0; i < 9; ++i) {
    if (std::abs(direction[i] - other.direction[i]) > tolerance) {
      return false;
    }
  }
  return true;
}

std::string orientationCode(const Mat3& direction) {
  // LPS: +x = L, +y = P, +z = S.
  static constexpr char kPositive[3] = {'L', 'P', 'S'};
  static constexpr char kNegative[3] = {'R', 'A', 'I'};
  std::string code(3, '?');
  for (std::size_t c = 0; c < 3; ++c) {
    std::size_t best = 0;
    for (std::size_t r = 1; r < 3; ++r) {
      if (std::abs(direction[3 * r + c]) > std::abs(direction[3 * best + c])) {
        best = r;
      }
    }
    code[c] = direction[3 * best + c] >= 0 ? kPositive[best] : kNegative[best];
  }
  return code;
}

bool isOrthonormal(const Mat3& direction, double tolerance) noexcept {
  for (std::size_t a = 0; a < 3; ++a) {
    for (std::size_t b = 0; b < 3; ++b) {
      double s = 0;
      for (std::size_t r = 0; r < 3; ++r) {
        s += direction[3 * r + a] * direction[3 * r + b];
      }
      if (std::abs(s - (a == b ? 1.0 : 0.0)) > tolerance) {
        return false;
      }
    }
  }
  return true;
}

} // namespace densa::core
