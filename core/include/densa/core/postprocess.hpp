// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <cstddef>

namespace densa::core {

/// Decision thresholds of H-DenseUNet's post-processing (methods-spec §1.11).
struct LiverTumourThresholds {
  float liver = 0.5F;  ///< p(liver) ≥ this
  float tumour = 0.9F; ///< p(tumour) ≥ this
};

/// H-DenseUNet's post-processing (methods-spec §1.11, steps 5–8), on the probability maps of one
/// case: liver = p(liver) ≥ t_liver, tumour = p(tumour) ≥ t_tumour, liver |= tumour; keep the
/// largest 26-connected liver component and fill its holes; gate the tumour by `coarseLiver`
/// (dilated once more, largest component, holes filled) and fill its holes; the result is the
/// liver with tumour voxels set to 2. All inputs share one grid, which the output keeps.
/// Throws InvalidArgument when sizes differ.
[[nodiscard]] LabelMap postprocessLiverTumour(const Volume<float>& liverProbability,
                                              const Volume<float>& tumourProbability,
                                              const LabelMap& coarseLiver,
                                              const LiverTumourThresholds& thresholds = {});

/// The same post-processing on already thresholded masks (`liverMask` = p(liver) ≥ t or tumour,
/// `tumourMask` = p(tumour) ≥ t), for callers that threshold slice by slice to bound memory.
[[nodiscard]] LabelMap postprocessLiverTumourMasks(const LabelMap& liverMask,
                                                   const LabelMap& tumourMask,
                                                   const LabelMap& coarseLiver);

/// Lesions (26-connected components of label 2) smaller than `minVolumeMl` (from the voxel
/// spacing) become liver (label 1): a reporting filter beyond the reference post-processing, off
/// at 0. Returns the number of lesions removed.
std::size_t removeSmallLesions(LabelMap& labels, double minVolumeMl);

} // namespace densa::core
