// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/app/segmenter.hpp"

#include <filesystem>
#include <memory>

namespace densa::app {

/// Loads a GEMINI transfer model ("gemini-unet" checkpoint with 3 classes: background, liver,
/// tumour) once, for many cases. segment(): the CT re-indexed to canonical axial and resampled
/// (linear) to the card's isotropic spacing (spacingPolicy "isotropic N mm; ..."), the HU window
/// [huMin, huMax] scaled to [0, 1]; sliding-window inference over cubic tiles of
/// options.tileSize voxels (≥ 50 % overlap, clamped inside the volume, zero-padded where the
/// volume is smaller than a tile), softmax probabilities averaged over the tiles (Gaussian-
/// weighted when options.gaussianTiles); labels by argmax, or by the thresholds of H-DenseUNet
/// (p(liver) ≥ t, p(tumour) ≥ t) when options.liverThreshold / tumourThreshold are given;
/// nearest-neighbour resampling onto the exact input grid; then H-DenseUNet's post-processing
/// (largest liver component, holes filled, tumours gated by the liver) and
/// options.minLesionMl. Memory: the isotropic image and K + 1 float maps on the isotropic grid.
/// options.coarseModel, twoDOnly and reuse2d do not apply. Throws models::ModelError for a bad
/// checkpoint, another architecture or a card without an isotropic spacing, and
/// core::InvalidArgument for a tile size that is not a positive multiple of 16.
[[nodiscard]] std::unique_ptr<Segmenter> loadGeminiUNetSegmenter(
    const std::filesystem::path& model, const SegmenterOptions& options = {});

} // namespace densa::app
