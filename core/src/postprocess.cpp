// SPDX-License-Identifier: Apache-2.0
#include "densa/core/postprocess.hpp"

#include "densa/core/error.hpp"
#include "densa/core/morphology.hpp"

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

LabelMap postprocessLiverTumourMasks(const LabelMap& liverMask,
                                     const LabelMap& tumourMask,
                                     const LabelMap& coarseLiver) {
  if (liverMask.size() != tumourMask.size() || liverMask.size() != coarseLiver.size()) {
    throw InvalidArgument("postprocessLiverTumourMasks: masks differ in size");
  }
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
