// SPDX-License-Identifier: Apache-2.0
#pragma once

// Dense spatial transformer, displacement-field utilities and the augmentations of GEMINI
// (methods-spec §2.4 "Spatial transformer", §2.7). Layout: images [N, C, D, H, W] (3D) or
// [N, C, H, W] (2D); displacement fields [N, n_dim, D, H, W] / [N, n_dim, H, W] in voxel units
// with channel order = array axes (d, h, w) / (h, w).

#include <torch/types.h>

#include <cstdint>
#include <numbers>
#include <random>
#include <vector>

namespace densa::models {

/// Interpolation of warp(): (bi/tri)linear for images and features, nearest for masks and labels.
enum class Interp { Linear, Nearest };

/// Backward warp W(I, φ)(p) = I(p + φ(p)) with zero padding outside I: "warp A by φ_AB" gives an
/// image on B's grid. Equivalent to grid_sample(align_corners = true, padding zeros) with the
/// coordinates normalised as 2·((p+φ)/(S−1) − 0.5) and reordered to (x, y, z), but the sampling is
/// done in voxel units (gather of the 2^n_dim neighbours), so a zero field is a bit-exact identity
/// (grid_sample's normalise/unnormalise round trip is not). Nearest rounds half to even, as
/// grid_sample does. Differentiable in the image and the field.
/// `image` [N, C, ...S], `flow` [N or 1, n_dim, ...S] on the same device and dtype; returns
/// [N, C, ...S]. Throws ModelError for mismatched shapes.
[[nodiscard]] torch::Tensor warp(const torch::Tensor& image,
                                 const torch::Tensor& flow,
                                 Interp interp = Interp::Linear);

/// Scaling and squaring of a stationary velocity field v: φ = v / 2^steps, then `steps` times
/// φ ← φ + W(φ, φ) (linear). steps = 0 returns v. The result is a displacement field like v.
[[nodiscard]] torch::Tensor integrateVelocity(const torch::Tensor& velocity, int steps = 7);

/// Jacobian determinant of the map p -> p + φ(p), per voxel: [N, ...S]. Derivatives are central
/// differences (φ(p+e) − φ(p−e))/2 inside and one-sided differences on the first and last voxel of
/// each axis (an axis of size 1 has derivative 0). A zero field gives exactly 1.
[[nodiscard]] torch::Tensor jacobianDeterminant(const torch::Tensor& flow);

/// Summary of jacobianDeterminant over all voxels of all batch items.
struct JacobianStats {
  double foldingFraction = 0.0; ///< fraction of voxels with det <= 0 (the paper's |J_φ| <= 0 %)
  double min = 0.0;
  double max = 0.0;
  double mean = 0.0;
  std::int64_t voxels = 0;
};

[[nodiscard]] JacobianStats jacobianStats(const torch::Tensor& flow);

/// The displacement field of the affine map p -> A·(p − c) + c, c = (S − 1)/2 the grid centre, in
/// voxel units: φ(p) = A·(p − c) + c − p. `matrix` is n_dim x n_dim (row-major, axes (d, h, w) /
/// (h, w)). Returns [1, n_dim, ...S] float on `options`' device.
[[nodiscard]] torch::Tensor affineField(const std::vector<std::int64_t>& spatial,
                                        const std::vector<double>& matrix,
                                        const torch::TensorOptions& options = {});

/// Random spatial augmentation of §2.7: per-axis rotation U(−maxRotation, maxRotation) and per-axis
/// scale U(minScale, maxScale) (isotropicScale: one factor for all axes, the heart Semi loader),
/// no translation, shear or elastic part. A = Scale · Rz · Ry · Rx in 3D (Rx rotates about the
/// first array axis, as the reference's x), A = Scale · R in 2D.
struct RandomAffineOptions {
  double maxRotation = std::numbers::pi / 9.0;
  double minScale = 0.75;
  double maxScale = 1.25;
  bool isotropicScale = false;
};

/// The matrix A (n_dim x n_dim, row-major) drawn from `rng`.
[[nodiscard]] std::vector<double> randomAffineMatrix(int dims,
                                                     std::mt19937_64& rng,
                                                     const RandomAffineOptions& options = {});

/// affineField(spatial, randomAffineMatrix(...)): a field usable by warp(); the reference applies
/// the same field to A, B and Ã. The reference centres the output grid at S//2 rather than
/// (S − 1)/2 (a half-voxel shift on even axes); this keeps the spec's "no translation".
[[nodiscard]] torch::Tensor randomAffineField(const std::vector<std::int64_t>& spatial,
                                              std::mt19937_64& rng,
                                              const RandomAffineOptions& options = {},
                                              const torch::TensorOptions& tensorOptions = {});

/// Models-Genesis appearance corruption used by GEMINI-MIP (§2.7) on intensities in [0, 1]. The
/// three transforms run in this order, each on every batch item independently (channels share the
/// random choices).
struct AppearanceCorruptionOptions {
  double shuffleProbability = 0.8; ///< local pixel shuffling
  int shuffleBlocks = 5000;        ///< blocks per volume
  int shuffleBlockDivisor = 20;    ///< block side = S / 20 per axis (no-op if that is 0)
  double bezierProbability = 0.9;  ///< Bézier intensity map
  int bezierSamples = 100000;      ///< points on the curve (the reference's nTimes)
  bool inPainting = true;          ///< always attempted, as in the reference
  int inPaintingMaxCuboids = 30;
  double inPaintingContinue = 0.95; ///< each cuboid (the first too) is drawn with this probability
  int inPaintingMargin = 3;         ///< cuboids start in [margin, S − side − margin)
};

/// Local pixel shuffling: `shuffleBlocks` blocks of side S/20 per axis at uniform positions are
/// read from the input, their voxels permuted by one permutation shared by all blocks, and written
/// back in order (later blocks overwrite earlier ones). Applied with the given probability.
[[nodiscard]] torch::Tensor localPixelShuffle(const torch::Tensor& image,
                                              std::mt19937_64& rng,
                                              double probability = 0.8,
                                              const AppearanceCorruptionOptions& options = {});

/// Bézier intensity map: a cubic Bézier curve through (0,0), two U(0,1)² control points and (1,1),
/// its sampled x and y values each sorted ascending (a monotone map, as in the GEMINI reference),
/// applied by piecewise-linear interpolation (values outside [0, 1] are clamped to the ends).
[[nodiscard]] torch::Tensor bezierIntensityMap(const torch::Tensor& image,
                                               std::mt19937_64& rng,
                                               double probability = 0.9,
                                               const AppearanceCorruptionOptions& options = {});

/// In-painting: up to inPaintingMaxCuboids cuboids, each drawn while U(0,1) < inPaintingContinue,
/// with sides U[S/10, S/5) (at least 1) per axis, filled with U(0,1) noise.
[[nodiscard]] torch::Tensor inPaint(const torch::Tensor& image,
                                    std::mt19937_64& rng,
                                    const AppearanceCorruptionOptions& options = {});

/// The three in order: Ã = inPaint(bezier(shuffle(A))). `image` is a float CPU tensor
/// [N, C, ...S] (2D or 3D); returns a new tensor, the input is not modified. Same seed, same
/// output.
[[nodiscard]] torch::Tensor corruptAppearance(const torch::Tensor& image,
                                              std::mt19937_64& rng,
                                              const AppearanceCorruptionOptions& options = {});

/// U[0, 1) from 53 bits of `rng` (portable, unlike std::uniform_real_distribution).
[[nodiscard]] double uniform01(std::mt19937_64& rng);

} // namespace densa::models
