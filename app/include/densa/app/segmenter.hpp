// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace densa::app {

/// What a segmentation run produced for one CT.
struct SegmentationResult {
  core::LabelMap labels;                 ///< on the exact grid of the input CT
  std::map<std::string, double> seconds; ///< stage timings: preprocess, network, postprocess
  /// In-plane box the network windows ran on, as {x0, x1, y0, y1} (half-open voxel ranges of the
  /// network's axial grid: the input re-indexed to axial, resampled in-plane under an "in-plane"
  /// spacing policy; H-DenseUNet): the whole slice unless the ROI was restricted. All
  /// zero when a segmenter does not report one.
  std::array<std::int64_t, 4> roiBox{};
  /// Convolution GFLOP (2 x multiply-accumulates, models::hDenseUNetCost) of the stages in
  /// `seconds` that ran a network ("coarse" when the 2D branch found the ROI, "network"), for
  /// efficiency figures; empty when a segmenter does not report it.
  std::map<std::string, double> gflop;
};

/// Identity of the model behind a segmenter, for reports.
struct ModelIdentity {
  std::string id; ///< e.g. "hdenseunet-small@<hash>"
  std::string architecture;
  std::string preset;
  std::string file;
  std::string trainingStage;
  std::string precision = "fp32"; ///< the network's arithmetic ("fp32", "bf16")
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
