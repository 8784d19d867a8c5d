// SPDX-License-Identifier: Apache-2.0
#include "densa/core/lesions.hpp"

#include "densa/core/morphology.hpp"

#include <algorithm>
#include <cmath>

namespace densa::core {

namespace {

// Longest distance (mm) between two boundary pixels of component `id` in slice k.
double longestInPlane(const Components& c, std::uint32_t id, std::size_t k, const Geometry& g) {
  const auto [nx, ny, nz] = c.size;
  std::vector<std::array<double, 2>> boundary;
  auto at = [&](long x, long y) {
    if (x < 0 || y < 0 || x >= static_cast<long>(nx) || y >= static_cast<long>(ny)) {
      return false;
    }
    return c.ids[static_cast<std::size_t>(x) + nx * (static_cast<std::size_t>(y) + ny * k)] == id;
  };
  for (long y = 0; y < static_cast<long>(ny); ++y) {
    for (long x = 0; x < static_cast<long>(nx); ++x) {
      if (at(x, y) && (!at(x - 1, y) || !at(x + 1, y) || !at(x, y - 1) || !at(x, y + 1))) {
        boundary.push_back(
            {static_cast<double>(x) * g.spacing[0], static_cast<double>(y) * g.spacing[1]});
      }
    }
  }
  double best = 0;
  for (std::size_t a = 0; a < boundary.size(); ++a) {
    for (std::size_t b = a + 1; b < boundary.size(); ++b) {
      const double dx = boundary[a][0] - boundary[b][0];
      const double dy = boundary[a][1] - boundary[b][1];
      best = std::max(best, dx * dx + dy * dy);
    }
  }
  return std::sqrt(best);
}

} // namespace

LiverTumourStats measureLiverTumour(const LabelMap& labels) {
  LiverTumourStats stats;
  const auto& g = labels.geometry();
  const double voxelMl = g.spacing[0] * g.spacing[1] * g.spacing[2] / 1000.0;
  std::size_t liver = 0;
  std::size_t tumour = 0;
  for (const auto v : labels.voxels()) {
    liver += v >= 1 ? 1 : 0;
    tumour += v == 2 ? 1 : 0;
  }
  stats.liverVolumeMl = static_cast<double>(liver) * voxelMl;
  stats.tumourVolumeMl = static_cast<double>(tumour) * voxelMl;
  stats.tumourBurdenPercent =
      liver == 0 ? 0.0 : 100.0 * static_cast<double>(tumour) / static_cast<double>(liver);
  if (tumour == 0) {
    return stats;
  }
  const Components c = connectedComponents(equalTo(labels, 2), Connectivity::Full26);
  const auto [nx, ny, nz] = labels.size();
  std::vector<Lesion> lesions(c.count);
  std::vector<std::array<double, 3>> sums(c.count, {0, 0, 0});
  for (std::uint32_t id = 1; id <= c.count; ++id) {
    lesions[id - 1].boundingBoxLow = {nx, ny, nz};
  }
  for (std::size_t k = 0; k < nz; ++k) {
    for (std::size_t j = 0; j < ny; ++j) {
      for (std::size_t i = 0; i < nx; ++i) {
        const auto id = c.ids[labels.offset(i, j, k)];
        if (id == 0) {
          continue;
        }
        Lesion& l = lesions[id - 1];
        ++l.voxels;
        sums[id - 1][0] += static_cast<double>(i);
        sums[id - 1][1] += static_cast<double>(j);
        sums[id - 1][2] += static_cast<double>(k);
        const Size3 p{i, j, k};
        for (std::size_t d = 0; d < 3; ++d) {
          l.boundingBoxLow[d] = std::min(l.boundingBoxLow[d], p[d]);
          l.boundingBoxHigh[d] = std::max(l.boundingBoxHigh[d], p[d]);
        }
      }
    }
  }
  for (std::uint32_t id = 1; id <= c.count; ++id) {
    Lesion& l = lesions[id - 1];
    const auto n = static_cast<double>(l.voxels);
    l.volumeMl = n * voxelMl;
    l.centroidMm =
        g.indexToPhysical({sums[id - 1][0] / n, sums[id - 1][1] / n, sums[id - 1][2] / n});
    for (std::size_t k = l.boundingBoxLow[2]; k <= l.boundingBoxHigh[2]; ++k) {
      const double d = longestInPlane(c, id, k, g);
      if (d > l.longestDiameterMm) {
        l.longestDiameterMm = d;
        l.diameterSlice = k;
      }
    }
  }
  std::stable_sort(lesions.begin(), lesions.end(), [](const Lesion& a, const Lesion& b) {
    return a.voxels > b.voxels;
  });
  for (std::size_t i = 0; i < lesions.size(); ++i) {
    lesions[i].id = static_cast<int>(i + 1);
  }
  stats.lesions = std::move(lesions);
  return stats;
}

} // namespace densa::core
