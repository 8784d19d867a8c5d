// SPDX-License-Identifier: Apache-2.0
// GEMINI transfer-model ("gemini-unet") inference over a CT volume: isotropic axial grid, HU window
// scaled to [0, 1], sliding-window 3D tiles, labels mapped back onto the exact input grid.
#include "densa/app/gemini_segmenter.hpp"

#include "densa/app/sliding_window.hpp"
#include "densa/core/error.hpp"
#include "densa/core/hash.hpp"
#include "densa/core/postprocess.hpp"
#include "densa/core/resample.hpp"
#include "densa/models/error.hpp"
#include "densa/models/runtime.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include "pretrain_data.hpp"

#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <variant>

namespace densa::app {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One more voxel at the high end of every axis, copying the last one. The isotropic grid stops at
// the last whole step inside the input's extent (isotropicGrid), up to one step short of the
// input's last voxel centre; the copy lets nearest-neighbour resampling reach it.
core::LabelMap extendByOne(const core::LabelMap& labels) {
  const auto& s = labels.size();
  core::LabelMap out({s[0] + 1, s[1] + 1, s[2] + 1}, labels.geometry(), 0);
  for (std::size_t k = 0; k <= s[2]; ++k) {
    for (std::size_t j = 0; j <= s[1]; ++j) {
      const std::uint8_t* row = &labels.at(0, std::min(j, s[1] - 1), std::min(k, s[2] - 1));
      std::uint8_t* dst = &out.at(0, j, k);
      std::memcpy(dst, row, s[0]);
      dst[s[0]] = row[s[0] - 1];
    }
  }
  return out;
}

class GeminiUNetSegmenter final : public Segmenter {
public:
  GeminiUNetSegmenter(const fs::path& file, const SegmenterOptions& options)
      : m_device(models::resolveDevice(options.device))
      , m_model(models::loadCheckpoint(file, m_device)) {
    auto* net = std::get_if<models::GeminiUNet>(&m_model.net);
    if (net == nullptr) {
      throw models::ModelError(file.string() + ": is a '" +
                               std::string(models::architectureId(m_model.card.options)) +
                               "' checkpoint; the GEMINI segmenter needs a 'gemini-unet' model");
    }
    if ((*net)->options().numClasses != 3) {
      throw models::ModelError(file.string() + ": the 'gemini-unet' model has " +
                               std::to_string((*net)->options().numClasses) +
                               " classes; segmentation needs 3 (background, liver, tumour)");
    }
    (*net)->eval();
    const auto& pre = m_model.card.preprocessing;
    m_spacing = cardSpacing(m_model.card, file);
    if (!(m_spacing > 0)) {
      throw models::ModelError(file.string() +
                               ": the model card's isotropic spacing is not positive");
    }
    if (!(pre.huMax > pre.huMin)) {
      throw models::ModelError(file.string() + ": the model card's HU window [" +
                               std::to_string(pre.huMin) + ", " + std::to_string(pre.huMax) +
                               "] is empty");
    }
    if (options.tileSize < 16 || options.tileSize % 16 != 0) {
      throw core::InvalidArgument("GEMINI segmenter: tile size " +
                                  std::to_string(options.tileSize) +
                                  " is not a positive multiple of 16");
    }
    m_tiling.tile = options.tileSize;
    m_tiling.gaussian = options.gaussianTiles;
    m_liverThreshold = options.liverThreshold;
    m_tumourThreshold = options.tumourThreshold;
    m_minLesionMl = options.minLesionMl;
    const std::string card = models::toJson(m_model.card);
    m_identity.architecture = std::string(models::architectureId(m_model.card.options));
    m_identity.preset = m_model.card.preset;
    m_identity.file = fs::absolute(file).string();
    m_identity.trainingStage = m_model.card.provenance.trainingStage;
    m_identity.id = m_identity.architecture + "-" + m_identity.preset + "@" +
                    core::stableHashHex(card + std::to_string(fs::file_size(file)), 12);
  }

  [[nodiscard]] ModelIdentity identity() const override { return m_identity; }

  [[nodiscard]] SegmentationResult segment(
      const core::Volume<std::int16_t>& ct,
      const std::function<void(double)>& progress) const override;

private:
  // Labels 0/1/2 on the isotropic grid from the class probabilities [3, D, H, W].
  [[nodiscard]] torch::Tensor labelsOf(const torch::Tensor& probs) const;

  torch::Device m_device;
  mutable models::LoadedModel m_model; // modules run forward() in a const segment()
  double m_spacing = 2.0;
  SlidingWindowOptions m_tiling;
  std::optional<float> m_liverThreshold;
  std::optional<float> m_tumourThreshold;
  double m_minLesionMl = 0;
  ModelIdentity m_identity;
};

torch::Tensor GeminiUNetSegmenter::labelsOf(const torch::Tensor& probs) const {
  const torch::Tensor argmax = probs.argmax(0);
  const torch::Tensor liver =
      m_liverThreshold ? probs[1].ge(*m_liverThreshold) : argmax.ne(0); // tumour is added below
  const torch::Tensor tumour = m_tumourThreshold ? probs[2].ge(*m_tumourThreshold) : argmax.eq(2);
  return liver.to(torch::kUInt8).masked_fill(tumour, 2).contiguous();
}

SegmentationResult GeminiUNetSegmenter::segment(const core::Volume<std::int16_t>& ct,
                                                const std::function<void(double)>& progress) const {
  torch::NoGradGuard noGrad;
  SegmentationResult result;
  auto t = Clock::now();
  const auto& pre = m_model.card.preprocessing;
  auto& net = std::get<models::GeminiUNet>(m_model.net);

  // Canonical axial (exact re-indexing), isotropic (linear), HU window scaled to [0, 1].
  core::Grid grid;
  torch::Tensor image;
  {
    const core::Volume<float> iso = toIsotropicAxial(ct, m_spacing);
    grid = core::gridOf(iso);
    image = scaleWindow(toTensor(iso), pre.huMin, pre.huMax);
  }
  result.seconds["preprocess"] = since(t);

  t = Clock::now();
  const torch::Tensor probs = slidingWindowProbabilities(
      image,
      [&](const torch::Tensor& tile) { return net->probabilities(tile.to(m_device)); },
      m_tiling,
      progress);
  image = torch::Tensor();
  const torch::Tensor labels = labelsOf(probs);
  result.seconds["network"] = since(t);

  // Back onto the exact input grid (nearest), then the H-DenseUNet post-processing there.
  t = Clock::now();
  core::LabelMap iso(grid.size,
                     grid.geometry,
                     std::vector<std::uint8_t>(labels.data_ptr<std::uint8_t>(),
                                               labels.data_ptr<std::uint8_t>() + labels.numel()));
  const core::LabelMap onInput = core::resampleOnto(
      extendByOne(iso), core::gridOf(ct), core::Interpolation::Nearest, std::uint8_t{0});
  core::LabelMap liver(onInput.size(), onInput.geometry(), 0);
  core::LabelMap tumour(onInput.size(), onInput.geometry(), 0);
  for (std::size_t i = 0; i < onInput.voxelCount(); ++i) {
    liver.voxels()[i] = onInput.voxels()[i] != 0 ? 1 : 0;
    tumour.voxels()[i] = onInput.voxels()[i] == 2 ? 1 : 0;
  }
  // No coarse model: the liver prediction itself gates the tumours (as H-DenseUNet without one).
  result.labels = core::postprocessLiverTumourMasks(liver, tumour, liver);
  core::removeSmallLesions(result.labels, m_minLesionMl);
  result.labels.setGeometry(ct.geometry()); // resampleOnto keeps the target grid; be exact anyway
  result.seconds["postprocess"] = since(t);
  return result;
}

} // namespace

std::unique_ptr<Segmenter> loadGeminiUNetSegmenter(const fs::path& model,
                                                   const SegmenterOptions& options) {
  return std::make_unique<GeminiUNetSegmenter>(model, options);
}

} // namespace densa::app
