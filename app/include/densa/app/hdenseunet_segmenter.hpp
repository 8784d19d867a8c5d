// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/app/segmenter.hpp"
#include "densa/core/postprocess.hpp"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace densa::app {

/// Where the H-DenseUNet windows run in-plane (methods-spec §1.8, §1.11).
enum class RoiMode {
  /// Full slices, as the reference code (`test.py`) runs: the default.
  Full,
  /// The paper's "H-DenseUNet then runs only in that ROI": the windows run on the box around the
  /// coarse liver mask (15 mm margin, rounded out to multiples of 32 pixels); outside it the
  /// output is background. Without a coarse model, the 2D branch's own liver prediction on every
  /// slice is the coarse mask (z-range and box). Several times faster on a typical abdomen.
  LiverBox,
};

struct SegmenterOptions {
  std::string device = "cpu"; ///< "cpu", "cuda", "cuda:N"
  /// Overrides of the model card's thresholds.
  std::optional<float> liverThreshold;
  std::optional<float> tumourThreshold;
  /// A stage-0 coarse liver model (architecture "coarse-liver"); when absent, the file
  /// "<model stem>.coarse.densa" next to the model is used if it exists, else the windows cover
  /// every slice and the liver prediction itself gates the tumours.
  std::optional<std::filesystem::path> coarseModel;
  /// The paper's 2D-only baseline (§1.11 point 9): the 2D branch on every slice, no 3D windows.
  /// Also used when the model card says it was trained in the "2d" stage only.
  bool twoDOnly = false;
  /// Reuse each slice's 2D output across the overlapping windows (default). False recomputes the
  /// 2D branch for every window, as the reference does (for benchmarks).
  bool reuse2d = true;
  /// Full slices (reference, default) or the liver box (paper); see RoiMode.
  RoiMode roi = RoiMode::Full;
  /// H-DenseUNet pixel spacing policy: axial slices whose pixel spacing differs from this many mm
  /// by more than 25 % (beyond the training scale augmentation) are resampled to it (linear)
  /// before the network, and the labels mapped back onto the input grid (nearest). 0: never
  /// resample (the reference runs native 512 x 512 slices). Default: the model card's
  /// spacingPolicy ("native" or "in-plane X mm").
  std::optional<double> inPlaneMm;
  /// Lesions smaller than this (mL) become liver (core::removeSmallLesions). 0 (the default)
  /// keeps every lesion, as the reference post-processing and the LiTS scorer do.
  double minLesionMl = 0;
  /// H-DenseUNet arithmetic: "fp32", "bf16" (the network's weights and activations in bfloat16,
  /// probabilities accumulated in float; on the CPU only where it has AMX or AVX512-BF16, see
  /// cpuHasFastBf16, else core::InputError) or "auto" (default): bf16 on such CPUs, fp32 on others
  /// and on GPUs. ModelIdentity::precision records the one used.
  std::string precision = "auto";
  /// GEMINI transfer models ("gemini-unet"): edge of the cubic sliding-window tile in voxels of
  /// the model's isotropic grid (a positive multiple of 16); tiles overlap by at least half.
  int tileSize = 64;
  /// GEMINI transfer models: average the overlapping tiles' probabilities with a Gaussian weight
  /// centred on each tile (σ = tile/8, as nnU-Net) instead of a plain mean.
  bool gaussianTiles = true;
};

/// Whether this CPU runs bfloat16 convolutions natively (AMX-BF16 or AVX512-BF16 in
/// /proc/cpuinfo); elsewhere oneDNN emulates them, slower than float.
[[nodiscard]] bool cpuHasFastBf16();

/// The bundled default model: $DENSA_MODEL if set, else the first of
/// <exe dir>/../share/densa/models/default.densa and <source>/data/models/default.densa that
/// exists. Throws core::InputError (with what to do) when there is none.
[[nodiscard]] std::filesystem::path defaultModelPath();

/// Loads an H-DenseUNet checkpoint (and its coarse model) once, for many cases. Inference follows
/// methods-spec §1.11: HU clip + offset from the model card; the volume re-indexed to canonical
/// axial (no interpolation; in-plane resampling only under an "in-plane X mm" policy, see
/// SegmenterOptions::inPlaneMm); 2D branch computed once per slice and reused by every overlapping
/// window; windows of depth D (card) with stride D/4 over full-resolution slices, inner slices
/// averaged; thresholds; largest component, hole filling, tumour gating; the label map is mapped
/// back onto the exact input grid. Throws models::ModelError for a bad checkpoint.
[[nodiscard]] std::unique_ptr<Segmenter> loadHDenseUNetSegmenter(
    const std::filesystem::path& model, const SegmenterOptions& options = {});

/// Stage 0 alone: the mask (1 = liver) that a "coarse-liver" checkpoint gives a CT, on the CT's
/// exact grid, with the checkpoint card's HU window and offset; before the dilation that
/// densa segment applies. Used to validate `densa train` stage "coarse". Throws
/// models::ModelError for a missing, damaged or non-coarse checkpoint.
[[nodiscard]] core::LabelMap segmentCoarseLiver(const std::filesystem::path& coarseModel,
                                                const core::Volume<std::int16_t>& ct,
                                                const std::string& device = "cpu");

} // namespace densa::app
