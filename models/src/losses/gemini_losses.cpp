// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/gemini_losses.hpp"

#include "densa/models/error.hpp"

#include <torch/utils.h>

#include <cmath>
#include <string>

namespace densa::models {
namespace {

void checkSpatialPair(const torch::Tensor& a, const torch::Tensor& b, const char* what) {
  if (!a.defined() || !b.defined() || (a.dim() != 4 && a.dim() != 5) || a.sizes() != b.sizes()) {
    throw ModelError(std::string(what) +
                     ": expected two tensors of one shape [N, C, H, W] or [N, C, D, H, W]");
  }
}

void checkMask(const torch::Tensor& mask, const torch::Tensor& like, const char* what) {
  if (!mask.defined()) {
    return;
  }
  if (mask.dim() != like.dim() || mask.size(0) != like.size(0) ||
      mask.sizes().slice(2) != like.sizes().slice(2)) {
    throw ModelError(std::string(what) + ": the mask must be [N, 1, ...] on the inputs' grid");
  }
}

// Window sums with zero padding of every channel of x [N, K, ...S]: the window^n_dim box filter as
// three (two) one-axis convolutions with a ones kernel, grouped per channel — the same sums as one
// convolution with a window^n_dim ones kernel (up to the order of the float additions), at
// n_dim·window instead of window^n_dim operations per voxel.
torch::Tensor boxSum(const torch::Tensor& x, int window) {
  const auto dims = x.dim() - 2;
  const auto channels = x.size(1);
  const std::int64_t pad = window / 2;
  auto y = x;
  for (std::int64_t a = 0; a < dims; ++a) {
    std::vector<std::int64_t> kernel{channels, 1};
    std::vector<std::int64_t> padding;
    for (std::int64_t b = 0; b < dims; ++b) {
      kernel.push_back(a == b ? window : 1);
      padding.push_back(a == b ? pad : 0);
    }
    const auto ones = torch::ones(kernel, x.options());
    y = dims == 2 ? torch::conv2d(y, ones, {}, 1, padding, 1, channels)
                  : torch::conv3d(y, ones, {}, 1, padding, 1, channels);
  }
  return y;
}

} // namespace

torch::Tensor smoothnessLoss(const torch::Tensor& flow) {
  if (!flow.defined() || (flow.dim() != 4 && flow.dim() != 5)) {
    throw ModelError("smoothnessLoss: expected a field [N, n_dim, ...]");
  }
  const auto dims = flow.dim() - 2;
  torch::Tensor sum;
  for (std::int64_t a = 0; a < dims; ++a) {
    const std::int64_t d = a + 2;
    const auto size = flow.size(d);
    const auto diff = flow.narrow(d, 1, size - 1) - flow.narrow(d, 0, size - 1);
    const auto term = (diff * diff).mean();
    sum = sum.defined() ? sum + term : term;
  }
  return sum / static_cast<double>(dims);
}

torch::Tensor localNccLoss(const torch::Tensor& i,
                           const torch::Tensor& j,
                           const torch::Tensor& mask,
                           int window) {
  checkSpatialPair(i, j, "localNccLoss");
  checkMask(mask, i, "localNccLoss");
  if (window < 1 || window % 2 == 0) {
    throw ModelError("localNccLoss: the window must be odd and positive");
  }
  const double n = std::pow(static_cast<double>(window), static_cast<double>(i.dim() - 2));
  // Window sums of I, J, I², J², IJ in one pass; for C > 1 the per-channel sums are averaged over
  // the channels (the reference's grouped convolution followed by a channel mean).
  const auto sums = boxSum(torch::cat({i, j, i * i, j * j, i * j}, 1), window);
  auto shape = sums.sizes().vec();
  shape[1] = i.size(1);
  shape.insert(shape.begin() + 1, 5);
  const auto perQuantity = sums.view(shape).mean(2); // [N, 5, ...S]
  const auto sumI = perQuantity.narrow(1, 0, 1);
  const auto sumJ = perQuantity.narrow(1, 1, 1);
  const auto sumI2 = perQuantity.narrow(1, 2, 1);
  const auto sumJ2 = perQuantity.narrow(1, 3, 1);
  const auto sumIJ = perQuantity.narrow(1, 4, 1);
  const auto cross = sumIJ - sumI * sumJ / n;
  const auto varI = sumI2 - sumI * sumI / n;
  const auto varJ = sumJ2 - sumJ * sumJ / n;
  const auto cc = cross * cross / (varI * varJ + 1e-5);
  if (!mask.defined()) {
    return 1.0 - cc.mean();
  }
  return 1.0 - (cc * mask).sum() / (mask + 1e-6).sum();
}

torch::Tensor maskedCosineLoss(const torch::Tensor& u,
                               const torch::Tensor& v,
                               const torch::Tensor& mask) {
  checkSpatialPair(u, v, "maskedCosineLoss");
  checkMask(mask, u, "maskedCosineLoss");
  const auto un = u / u.norm(2, 1, true).clamp_min(1e-12);
  const auto vn = v / v.norm(2, 1, true).clamp_min(1e-12);
  const auto cosine = (un * vn).sum(1, true);
  if (!mask.defined()) {
    return 1.0 - cosine.mean();
  }
  return 1.0 - (cosine * mask).sum() / mask.sum();
}

torch::Tensor validityMask(const torch::Tensor& flow) {
  if (!flow.defined() || (flow.dim() != 4 && flow.dim() != 5)) {
    throw ModelError("validityMask: expected a field [N, n_dim, ...]");
  }
  torch::NoGradGuard noGrad;
  auto shape = flow.sizes().vec();
  shape[1] = 1;
  const auto field = flow.detach();
  return warp(torch::ones(shape, field.options()), field, Interp::Nearest).detach();
}

GeminiGssTerms gssTerms(const torch::Tensor& fMoving,
                        const torch::Tensor& fFixed,
                        const torch::Tensor& flow,
                        const torch::Tensor& mask) {
  GeminiGssTerms t;
  t.positive = maskedCosineLoss(warp(fMoving, flow.detach()), fFixed, mask);
  t.alignment = maskedCosineLoss(warp(fMoving.detach(), flow), fFixed.detach(), mask);
  return t;
}

GeminiAlignmentLoss geminiAlignmentLoss(GeminiNet& net,
                                        const torch::Tensor& a,
                                        const torch::Tensor& b,
                                        const GeminiLossWeights& weights) {
  const auto pair = net->forward(a, b);
  const auto maskAB = validityMask(pair.flowAB);
  const auto maskBA = validityMask(pair.flowBA);
  GeminiAlignmentLoss loss;
  loss.flowAB = pair.flowAB;
  loss.flowBA = pair.flowBA;
  loss.smooth = smoothnessLoss(pair.flowAB) + smoothnessLoss(pair.flowBA);
  loss.gvs = localNccLoss(warp(a, pair.flowAB), b, maskAB, weights.nccWindow) +
             localNccLoss(warp(b, pair.flowBA), a, maskBA, weights.nccWindow);
  const auto ab = gssTerms(pair.featuresA, pair.featuresB, pair.flowAB, maskAB);
  const auto ba = gssTerms(pair.featuresB, pair.featuresA, pair.flowBA, maskBA);
  loss.gss = weights.positive * ab.positive + weights.alignment * ab.alignment +
             weights.positive * ba.positive + weights.alignment * ba.alignment;
  loss.total = weights.gvs * loss.gvs + weights.gss * loss.gss + weights.smooth * loss.smooth;
  return loss;
}

torch::Tensor restorationLoss(const torch::Tensor& restored,
                              const torch::Tensor& original,
                              double scale) {
  if (!restored.defined() || !original.defined() || restored.sizes() != original.sizes()) {
    throw ModelError("restorationLoss: restored and original must have one shape");
  }
  const auto diff = restored - original;
  return scale * (diff * diff).mean();
}

torch::Tensor semiSegmentationLoss(const torch::Tensor& logits,
                                   const torch::Tensor& target,
                                   const SemiSegmentationLossOptions& options) {
  if (!logits.defined() || logits.dim() < 3 || !target.defined()) {
    throw ModelError("semiSegmentationLoss: expected logits [N, K, ...]");
  }
  torch::Tensor y;
  if (target.dim() == logits.dim()) {
    if (target.sizes() != logits.sizes()) {
      throw ModelError("semiSegmentationLoss: a one-hot target must be shaped like the logits");
    }
    y = target.to(logits.scalar_type());
  } else {
    if (target.dim() != logits.dim() - 1 || target.size(0) != logits.size(0) ||
        target.sizes().slice(1) != logits.sizes().slice(2) ||
        target.scalar_type() != torch::kLong) {
      throw ModelError("semiSegmentationLoss: expected int64 labels [N, ...] on the logits' grid");
    }
    y = torch::zeros_like(logits).scatter_(1, target.unsqueeze(1), 1.0);
  }
  const auto p = options.sigmoid ? torch::sigmoid(logits) : torch::softmax(logits, 1);
  torch::Tensor ce;
  if (options.sigmoid) {
    ce = -(y * torch::log(p + 1e-6) + (1.0 - y) * torch::log(1.0 - p + 1e-6)).mean();
  } else {
    ce = -(y * torch::log(p + 1e-6)).mean();
  }
  std::vector<std::int64_t> spatial;
  for (std::int64_t d = 2; d < logits.dim(); ++d) {
    spatial.push_back(d);
  }
  const auto overlap = (y * p).sum(spatial);
  const auto dice =
      1.0 - ((2.0 * overlap + 1.0) / ((y * y).sum(spatial) + (p * p).sum(spatial) + 1.0)).mean();
  return options.scale * (ce + dice);
}

namespace {

/// Gradients back to "none" (PyTorch 2's zero_grad default, which the reference runs on): a
/// parameter without a gradient in the next step is then skipped by Adam rather than taking a
/// momentum-only step on a zero gradient.
void clearGradients(GeminiNet& net) {
  for (auto& p : net->parameters()) {
    p.mutable_grad() = torch::Tensor();
  }
}

} // namespace

GeminiStepResult geminiPretrainStep(GeminiNet& net,
                                    torch::optim::Optimizer& optimizer,
                                    const torch::Tensor& a,
                                    const torch::Tensor& b,
                                    const torch::Tensor& corrupted,
                                    const GeminiLossWeights& weights) {
  GeminiStepResult result;
  {
    const auto loss = geminiAlignmentLoss(net, a, b, weights);
    result.total = loss.total.item<double>();
    result.gvs = loss.gvs.item<double>();
    result.gss = loss.gss.item<double>();
    result.smooth = loss.smooth.item<double>();
    result.alignmentSkipped = !std::isfinite(result.total);
    if (!result.alignmentSkipped) {
      loss.total.backward();
      optimizer.step();
    }
    clearGradients(net);
  }
  if (net->restorationHead() && corrupted.defined()) {
    const auto loss = restorationLoss(net->restore(corrupted), a);
    result.restoration = loss.item<double>();
    result.restorationSkipped = !std::isfinite(result.restoration);
    if (!result.restorationSkipped) {
      loss.backward();
      optimizer.step();
    }
    clearGradients(net);
  }
  return result;
}

} // namespace densa::models
