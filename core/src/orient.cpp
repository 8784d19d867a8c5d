// SPDX-License-Identifier: Apache-2.0
#include "densa/core/orient.hpp"

#include "densa/core/error.hpp"

#include <cmath>

namespace densa::core {

AxisPermutation permutationToAxial(const Mat3& direction) {
  // For each patient axis (L, P, S = rows 0, 1, 2 of the direction), the index axis pointing
  // most along it; ties resolved by preferring unused axes in order.
  AxisPermutation p;
  std::array<bool, 3> used{false, false, false};
  for (std::size_t r = 0; r < 3; ++r) {
    int best = -1;
    double bestValue = -1;
    for (std::size_t c = 0; c < 3; ++c) {
      const double v = std::abs(direction[3 * r + c]);
      if (!used[c] && v > bestValue) {
        best = static_cast<int>(c);
        bestValue = v;
      }
    }
    used[static_cast<std::size_t>(best)] = true;
    p.axis[r] = best;
    p.flip[r] = direction[3 * r + static_cast<std::size_t>(best)] < 0;
  }
  return p;
}

AxisPermutation inverse(const AxisPermutation& p) {
  AxisPermutation q;
  for (std::size_t a = 0; a < 3; ++a) {
    const auto src = static_cast<std::size_t>(p.axis[a]);
    q.axis[src] = static_cast<int>(a);
    q.flip[src] = p.flip[a];
  }
  return q;
}

template <typename T>
Volume<T> permuteAxes(const Volume<T>& volume, const AxisPermutation& p) {
  const Size3& in = volume.size();
  Size3 out{};
  for (std::size_t a = 0; a < 3; ++a) {
    out[a] = in[static_cast<std::size_t>(p.axis[a])];
  }
  // Geometry: output axis a is input axis axis[a], possibly reversed.
  const Geometry& g = volume.geometry();
  Geometry h;
  Vec3 originIndex{0, 0, 0};
  for (std::size_t a = 0; a < 3; ++a) {
    const auto src = static_cast<std::size_t>(p.axis[a]);
    h.spacing[a] = g.spacing[src];
    const double sign = p.flip[a] ? -1.0 : 1.0;
    for (std::size_t r = 0; r < 3; ++r) {
      h.direction[3 * r + a] = sign * g.direction[3 * r + src];
    }
    originIndex[src] = p.flip[a] ? static_cast<double>(in[src] - 1) : 0.0;
  }
  h.origin = g.indexToPhysical(originIndex);
  Volume<T> result(out, h);
  std::array<std::size_t, 3> idx{};
  for (std::size_t k = 0; k < out[2]; ++k) {
    for (std::size_t j = 0; j < out[1]; ++j) {
      for (std::size_t i = 0; i < out[0]; ++i) {
        const std::array<std::size_t, 3> o{i, j, k};
        for (std::size_t a = 0; a < 3; ++a) {
          const auto src = static_cast<std::size_t>(p.axis[a]);
          idx[src] = p.flip[a] ? in[src] - 1 - o[a] : o[a];
        }
        result.at(i, j, k) = volume.at(idx[0], idx[1], idx[2]);
      }
    }
  }
  return result;
}

template Volume<std::uint8_t> permuteAxes(const Volume<std::uint8_t>&, const AxisPermutation&);
template Volume<std::int16_t> permuteAxes(const Volume<std::int16_t>&, const AxisPermutation&);
template Volume<float> permuteAxes(const Volume<float>&, const AxisPermutation&);

} // namespace densa::core
