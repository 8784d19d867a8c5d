// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <functional>
#include <map>
#include <string>

namespace densa::app {

/// What a segmentation run produced for one CT.
struct SegmentationResult {
  core::LabelMap labels;                 ///< on the exact grid of the input CT
  std::map<std::string, double> seconds; ///< stage timings: preprocess, network, postprocess
};

/// Identity of the model behind a segmenter, for reports.
struct ModelIdentity {
  std::string id; ///< e.g. "hdenseunet-small@<hash>"
  std::string architecture;
  std::string preset;
  std::string file;
  std::string trainingStage;
};

/// Segments liver and tumour in a CT volume (HU). Implementations are loaded once and reused for
/// every case of a batch; `segment` must be safe to call repeatedly (not concurrently).
class Segmenter {
public:
  virtual ~Segmenter() = default;
  [[nodiscard]] virtual ModelIdentity identity() const = 0;
  /// `progress` receives the fraction done (0..1) of this case.
  [[nodiscard]] virtual SegmentationResult segment(
      const core::Volume<std::int16_t>& ct, const std::function<void(double)>& progress) const = 0;
};

} // namespace densa::app
