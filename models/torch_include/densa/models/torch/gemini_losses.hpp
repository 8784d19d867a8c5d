// SPDX-License-Identifier: Apache-2.0
#pragma once

// GEMINI losses (methods-spec §2.6) and one pretraining iteration (§2.7: an alignment step, then
// a restoration step, with the same optimiser). Layout as in gemini_ops.hpp.

#include "densa/models/torch/gemini.hpp"

#include <torch/optim/optimizer.h>
#include <torch/types.h>

namespace densa::models {

/// L_smo(φ) = (1/n_dim) Σ_axes mean((φ(p + e_axis) − φ(p))²): forward differences, each mean over
/// batch, channels and positions. Scalar.
[[nodiscard]] torch::Tensor smoothnessLoss(const torch::Tensor& flow);

/// Masked squared local NCC (GVS). Window sums over `window`^n_dim voxels with zero padding (a
/// ones-kernel box filter, applied axis by axis; for C > 1 channels the per-channel sums are
/// averaged over channels, as the reference does), n = window^n_dim:
///   cross = ΣIJ − ΣI·ΣJ/n, varI = ΣI² − (ΣI)²/n, varJ likewise, cc = cross² / (varI·varJ + 1e−5),
///   NCC_M = 1 − Σ_p M(p)·cc(p) / Σ_p (M(p) + 1e−6).
/// `mask` [N, 1, ...S] (e.g. validityMask); undefined = the unmasked GVSL form 1 − mean(cc).
/// i, j: [N, C, ...S]. Scalar.
[[nodiscard]] torch::Tensor localNccLoss(const torch::Tensor& i,
                                         const torch::Tensor& j,
                                         const torch::Tensor& mask = {},
                                         int window = 9);

/// Masked cosine (GSS): 1 − Σ_p M(p)·⟨u(p)/‖u(p)‖, v(p)/‖v(p)‖⟩ / Σ_p M(p), norms over channels
/// with eps 1e−12 (‖u‖ is max(‖u‖, 1e−12)). `mask` [N, 1, ...S]; undefined = 1 − mean. Scalar.
[[nodiscard]] torch::Tensor maskedCosineLoss(const torch::Tensor& u,
                                             const torch::Tensor& v,
                                             const torch::Tensor& mask = {});

/// M = W(1, φ) with nearest interpolation, detached: 1 where p + φ(p) rounds into the grid.
/// [N, 1, ...S] in φ's dtype.
[[nodiscard]] torch::Tensor validityMask(const torch::Tensor& flow);

/// Weights of L_GEMINI (the reference's values).
struct GeminiLossWeights {
  double gvs = 1.0;       ///< λ_GVS
  double gss = 0.8;       ///< weight of the whole GSS sum
  double smooth = 0.4;    ///< λ_smo
  double positive = 0.1;  ///< positive-pair term (flow detached: trains the backbone)
  double alignment = 1.0; ///< semantic-alignment term (features detached: trains φ)
  int nccWindow = 9;
};

/// The two GSS terms of one direction (unweighted):
///   positive  = cos_M(W(fMoving, sg φ), fFixed)      — no gradient reaches φ (the deformer);
///   alignment = cos_M(W(sg fMoving, φ), sg fFixed)   — no gradient reaches the features directly.
/// In the full model φ is computed from the (non-detached) features, as in the reference, so the
/// alignment term still reaches the backbone through the deformer's input.
struct GeminiGssTerms {
  torch::Tensor positive;
  torch::Tensor alignment;
};

[[nodiscard]] GeminiGssTerms gssTerms(const torch::Tensor& fMoving,
                                      const torch::Tensor& fFixed,
                                      const torch::Tensor& flow,
                                      const torch::Tensor& mask);

/// L_GEMINI of a pair and its parts (scalars) and the two fields.
struct GeminiAlignmentLoss {
  torch::Tensor total;  ///< gvs·L_GVS + gss·L_GSS + smooth·L_smo
  torch::Tensor gvs;    ///< NCC_M_AB(W(A, φ_AB), B) + NCC_M_BA(W(B, φ_BA), A)
  torch::Tensor gss;    ///< positive·(both positive terms) + alignment·(both alignment terms)
  torch::Tensor smooth; ///< L_smo(φ_AB) + L_smo(φ_BA)
  torch::Tensor flowAB; ///< warps A onto B's grid
  torch::Tensor flowBA;
};

/// The alignment objective of §2.6 for images A, B [N, C, ...S] (two different subjects).
[[nodiscard]] GeminiAlignmentLoss geminiAlignmentLoss(GeminiNet& net,
                                                      const torch::Tensor& a,
                                                      const torch::Tensor& b,
                                                      const GeminiLossWeights& weights = {});

/// L_res = scale · mean((restored − original)²) (scale 100 in the reference).
[[nodiscard]] torch::Tensor restorationLoss(const torch::Tensor& restored,
                                            const torch::Tensor& original,
                                            double scale = 100.0);

/// GEMINI-Semi segmentation loss: scale · (CE + Dice) with P = softmax(logits) over K classes,
///   CE   = −mean over all N·K·voxels of Y·log(P + 1e−6)   (the true CE divided by K),
///   Dice = 1 − mean_{n,k} (2ΣYP + 1) / (ΣY² + ΣP² + 1), sums over voxels, all K channels
///          (background included).
/// sigmoid (the chest X-ray variant): P = sigmoid(logits), CE replaced by
/// −mean(Y·log(P + 1e−6) + (1 − Y)·log(1 − P + 1e−6)).
struct SemiSegmentationLossOptions {
  double scale = 100.0;
  bool sigmoid = false;
};

/// `target`: int64 labels [N, ...S] in [0, K), or a float one-hot / multi-label tensor shaped
/// like the logits. Scalar.
[[nodiscard]] torch::Tensor semiSegmentationLoss(const torch::Tensor& logits,
                                                 const torch::Tensor& target,
                                                 const SemiSegmentationLossOptions& options = {});

/// The scalars of one pretraining iteration.
struct GeminiStepResult {
  double total = 0.0; ///< L_GEMINI
  double gvs = 0.0;
  double gss = 0.0;
  double smooth = 0.0;
  double restoration = 0.0;      ///< L_res (0 without a restoration head)
  bool alignmentSkipped = false; ///< non-finite L_GEMINI: no update
  bool restorationSkipped = false;
};

/// One GEMINI-MIP iteration (§2.7 steps 3-5): L_GEMINI on (A, B), backward, optimiser step, zero
/// the gradients; then 100·MSE(R(N_θ(Ã)), A), backward, step, zero. A non-finite loss skips its
/// step (the reference skips ±inf; its nan check never fires, here nan is skipped too). Without a
/// restoration head, or with an undefined `corrupted`, the second step is left out.
GeminiStepResult geminiPretrainStep(GeminiNet& net,
                                    torch::optim::Optimizer& optimizer,
                                    const torch::Tensor& a,
                                    const torch::Tensor& b,
                                    const torch::Tensor& corrupted,
                                    const GeminiLossWeights& weights = {});

} // namespace densa::models
