// SPDX-License-Identifier: Apache-2.0
#include "densa/core/postprocess.hpp"

#include "densa/core/error.hpp"
#include "densa/core/morphology.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace densa::core {

LabelMap postprocessLiverTumour(const Volume<float>& liverProbability,
                                const Volume<float>& tumourProbability,
                                const LabelMap& coarseLiver,
                                const LiverTumourThresholds& thresholds) {
  if (liverProbability.size() != tumourProbability.size() ||
      liverProbability.size() != coarseLiver.size()) {
    throw InvalidArgument(
        "postprocessLiverTumour: probability maps and coarse mask differ in size");
  }
  const auto& g = liverProbability.geometry();
  LabelMap liver(liverProbability.size(), g, 0);
  LabelMap tumour(liverProbability.size(), g, 0);
  for (std::size_t i = 0; i < liver.voxelCount(); ++i) {
    const bool t = tumourProbability.voxels()[i] >= thresholds.tumour;
    tumour.voxels()[i] = t ? 1 : 0;
    liver.voxels()[i] = (t || liverProbability.voxels()[i] >= thresholds.liver) ? 1 : 0;
  }
  return postprocessLiverTumourMasks(liver, tumour, coarseLiver);
}

namespace {

// §1.11 steps 5-8 on masks of one size.
LabelMap postprocessInBox(const LabelMap& liverMask,
                          const LabelMap& tumourMask,
                          const LabelMap& coarseLiver) {
  const auto& g = liverMask.geometry();
  LabelMap liver = liverMask;
  LabelMap tumour = tumourMask;
  for (std::size_t i = 0; i < liver.voxelCount(); ++i) {
    liver.voxels()[i] = (liver.voxels()[i] != 0 || tumour.voxels()[i] != 0) ? 1 : 0;
  }
  liver = fillHoles(largestComponent(liver, Connectivity::Full26));
  const LabelMap gate = fillHoles(largestComponent(dilate(coarseLiver, 1), Connectivity::Full26));
  for (std::size_t i = 0; i < tumour.voxelCount(); ++i) {
    tumour.voxels()[i] = (tumour.voxels()[i] != 0 && gate.voxels()[i] != 0) ? 1 : 0;
  }
  tumour = fillHoles(tumour);
  LabelMap out(liver.size(), g, 0);
  for (std::size_t i = 0; i < out.voxelCount(); ++i) {
    out.voxels()[i] = tumour.voxels()[i] != 0 ? 2 : liver.voxels()[i];
  }
  return out;
}

// The index box [lo, hi) of the nonzero voxels of the masks, grown by `margin` inside the grid;
// empty (lo == hi on some axis) when every mask is empty.
std::pair<Size3, Size3> foregroundBox(const std::vector<const LabelMap*>& masks,
                                      std::size_t margin) {
  const Size3 size = masks.front()->size();
  Size3 lo = size;
  Size3 hi{0, 0, 0};
  for (std::size_t k = 0; k < size[2]; ++k) {
    for (std::size_t j = 0; j < size[1]; ++j) {
      for (std::size_t i = 0; i < size[0]; ++i) {
        bool any = false;
        for (const auto* m : masks) {
          any = any || m->at(i, j, k) != 0;
        }
        if (any) {
          const Size3 p{i, j, k};
          for (int a = 0; a < 3; ++a) {
            lo[a] = std::min(lo[a], p[a]);
            hi[a] = std::max(hi[a], p[a] + 1);
          }
        }
      }
    }
  }
  if (hi[0] == 0) {
    return {Size3{0, 0, 0}, Size3{0, 0, 0}};
  }
  for (int a = 0; a < 3; ++a) {
    lo[a] = lo[a] > margin ? lo[a] - margin : 0;
    hi[a] = std::min(size[a], hi[a] + margin);
  }
  return {lo, hi};
}

LabelMap cropTo(const LabelMap& m, const Size3& lo, const Size3& hi) {
  LabelMap out({hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]}, m.geometry(), 0);
  for (std::size_t k = lo[2]; k < hi[2]; ++k) {
    for (std::size_t j = lo[1]; j < hi[1]; ++j) {
      std::copy_n(&m.at(lo[0], j, k), hi[0] - lo[0], &out.at(0, j - lo[1], k - lo[2]));
    }
  }
  return out;
}

} // namespace

LabelMap postprocessLiverTumourMasks(const LabelMap& liverMask,
                                     const LabelMap& tumourMask,
                                     const LabelMap& coarseLiver) {
  if (liverMask.size() != tumourMask.size() || liverMask.size() != coarseLiver.size()) {
    throw InvalidArgument("postprocessLiverTumourMasks: masks differ in size");
  }
  // Only inside the box of every foreground voxel plus 2 voxels: one for the gate's dilation and
  // one of background all round, so that hole filling sees the same outside. The same result as
  // on the whole grid, in a fraction of the time for a liver inside a whole-abdomen CT.
  const auto [lo, hi] = foregroundBox({&liverMask, &tumourMask, &coarseLiver}, 2);
  LabelMap out(liverMask.size(), liverMask.geometry(), 0);
  if (hi[0] == lo[0]) {
    return out;
  }
  const LabelMap box = postprocessInBox(
      cropTo(liverMask, lo, hi), cropTo(tumourMask, lo, hi), cropTo(coarseLiver, lo, hi));
  for (std::size_t k = lo[2]; k < hi[2]; ++k) {
    for (std::size_t j = lo[1]; j < hi[1]; ++j) {
      std::copy_n(&box.at(0, j - lo[1], k - lo[2]), hi[0] - lo[0], &out.at(lo[0], j, k));
    }
  }
  return out;
}

std::size_t removeSmallLesions(LabelMap& labels, double minVolumeMl) {
  if (minVolumeMl <= 0) {
    return 0;
  }
  const auto& sp = labels.geometry().spacing;
  const double voxelMl = sp[0] * sp[1] * sp[2] / 1000.0;
  LabelMap tumour = equalTo(labels, 2);
  const Components c = connectedComponents(tumour, Connectivity::Full26);
  std::vector<bool> small(c.count + 1, false);
  std::size_t removed = 0;
  for (std::uint32_t id = 1; id <= c.count; ++id) {
    if (static_cast<double>(c.voxelCounts[id]) * voxelMl < minVolumeMl) {
      small[id] = true;
      ++removed;
    }
  }
  if (removed == 0) {
    return 0;
  }
  auto voxels = labels.voxels();
  for (std::size_t n = 0; n < voxels.size(); ++n) {
    if (c.ids[n] != 0 && small[c.ids[n]]) {
      voxels[n] = 1;
    }
  }
  return removed;
}

} // namespace densa::core
