// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/gemini.hpp"

#include "densa/models/error.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include <torch/nn/functional/upsampling.h>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <cmath>
#include <string>

namespace densa::models {
namespace {

torch::nn::GroupNorm makeNorm(int channels, int groups) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels));
}

void checkInput(const torch::Tensor& x, int dims, int channels, const char* what) {
  if (!x.defined() || x.dim() != dims + 2) {
    throw ModelError(std::string(what) + ": expected a " + std::to_string(dims + 2) +
                     "-D input [N, C, " + (dims == 3 ? "D, H, W]" : "H, W]") + ", got " +
                     (x.defined() ? std::to_string(x.dim()) + "-D" : "nothing"));
  }
  if (x.size(1) != channels) {
    throw ModelError(std::string(what) + ": expected " + std::to_string(channels) +
                     " input channels, got " + std::to_string(x.size(1)));
  }
}

std::vector<std::int64_t> spatialSizes(const torch::Tensor& x) {
  return {x.sizes().begin() + 2, x.sizes().end()};
}

void requireSameBackbone(const GeminiBackboneOptions& target, const GeminiBackboneOptions& source) {
  std::string what;
  if (target.dims != source.dims) {
    what = "dims " + std::to_string(source.dims) + " vs " + std::to_string(target.dims);
  } else if (target.inChannels != source.inChannels) {
    what = "inChannels";
  } else if (target.channels != source.channels) {
    what = "channels";
  } else if (target.groupChannels != source.groupChannels) {
    what = "groupChannels";
  } else if (target.leakySlope != source.leakySlope) {
    what = "leakySlope";
  }
  if (!what.empty()) {
    throw ModelError("loadBackboneFrom: the backbones differ (" + what +
                     "; source vs target); build the target with transferOptions()");
  }
}

void copyBackbone(torch::nn::Module& target, const torch::nn::Module& source) {
  const std::string prefix = "backbone.";
  std::map<std::string, torch::Tensor> state;
  for (const auto& [name, tensor] : stateDict(source)) {
    if (name.rfind(prefix, 0) == 0) {
      state.emplace(name, tensor);
    }
  }
  auto targetState = stateDict(target);
  for (const auto& [name, tensor] : targetState) {
    if (name.rfind(prefix, 0) == 0 && state.find(name) == state.end()) {
      throw ModelError("loadBackboneFrom: the source has no '" + name + "'");
    }
  }
  torch::NoGradGuard noGrad;
  for (const auto& [name, tensor] : state) {
    const auto it = targetState.find(name);
    if (it == targetState.end() || it->second.sizes() != tensor.sizes()) {
      throw ModelError("loadBackboneFrom: '" + name + "' does not fit the target");
    }
    it->second.copy_(tensor);
  }
}

} // namespace

// ---- building blocks ---------------------------------------------------------------------------

ConvNdImpl::ConvNdImpl(int dims, int inChannels, int outChannels, int kernel)
    : m_dims(dims)
    , m_kernel(kernel) {
  if (dims != 2 && dims != 3) {
    throw ModelError("ConvNd: dims must be 2 or 3");
  }
  std::vector<std::int64_t> shape{outChannels, inChannels};
  for (int i = 0; i < dims; ++i) {
    shape.push_back(kernel);
  }
  weight = register_parameter("weight", torch::empty(shape));
  bias = register_parameter("bias", torch::empty({outChannels}));
  torch::NoGradGuard noGrad;
  torch::nn::init::kaiming_normal_(weight); // a = 0, fan_in, gain √2 (the reference's call)
  // LibTorch/PyTorch's default conv bias: U(-1/√fan_in, 1/√fan_in).
  const double fanIn = static_cast<double>(weight.numel() / outChannels);
  const double bound = 1.0 / std::sqrt(fanIn);
  bias.uniform_(-bound, bound);
}

torch::Tensor ConvNdImpl::forward(const torch::Tensor& x) {
  const std::int64_t pad = m_kernel / 2;
  if (m_dims == 2) {
    return torch::conv2d(x, weight, bias, 1, pad);
  }
  return torch::conv3d(x, weight, bias, 1, pad);
}

GeminiConvBlockImpl::GeminiConvBlockImpl(
    int dims, int inChannels, int outChannels, int groupChannels, double leakySlope)
    : m_conv(register_module("conv", ConvNd(dims, inChannels, outChannels, 3)))
    , m_norm(register_module("norm", makeNorm(outChannels, outChannels / groupChannels)))
    , m_slope(leakySlope) {}

torch::Tensor GeminiConvBlockImpl::forward(const torch::Tensor& x) {
  return torch::leaky_relu(m_norm(m_conv(x)), m_slope);
}

GeminiDoubleConvImpl::GeminiDoubleConvImpl(
    int dims, int inChannels, int outChannels, int groupChannels, double leakySlope)
    : m_conv1(register_module("conv1", ConvNd(dims, inChannels, outChannels, 3)))
    , m_norm1(register_module("norm1", makeNorm(outChannels, outChannels / groupChannels)))
    , m_conv2(register_module("conv2", ConvNd(dims, outChannels, outChannels, 3)))
    , m_norm2(register_module("norm2", makeNorm(outChannels, outChannels / groupChannels)))
    , m_slope(leakySlope) {}

torch::Tensor GeminiDoubleConvImpl::forward(const torch::Tensor& x) {
  auto y = torch::leaky_relu(m_norm1(m_conv1(x)), m_slope);
  return torch::leaky_relu(m_norm2(m_conv2(y)), m_slope);
}

torch::Tensor padToMultiple(const torch::Tensor& x,
                            std::int64_t multiple,
                            std::vector<std::int64_t>& before) {
  const auto dims = x.dim() - 2;
  before.assign(static_cast<std::size_t>(dims), 0);
  std::vector<std::int64_t> pads; // constant_pad_nd order: last axis first, (before, after)
  bool any = false;
  for (std::int64_t a = dims - 1; a >= 0; --a) {
    const auto size = x.size(2 + a);
    const auto total = (multiple - size % multiple) % multiple;
    before[static_cast<std::size_t>(a)] = total / 2;
    pads.push_back(total / 2);
    pads.push_back(total - total / 2);
    any = any || total > 0;
  }
  return any ? torch::constant_pad_nd(x, pads, 0.0) : x;
}

torch::Tensor cropSpatial(const torch::Tensor& x,
                          const std::vector<std::int64_t>& before,
                          const std::vector<std::int64_t>& sizes) {
  auto y = x;
  for (std::size_t a = 0; a < sizes.size(); ++a) {
    const auto dim = static_cast<std::int64_t>(a) + 2;
    if (y.size(dim) != sizes[a]) {
      y = y.narrow(dim, before[a], sizes[a]);
    }
  }
  return y;
}

torch::Tensor upsampleLinear2x(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  std::vector<std::int64_t> size;
  for (std::int64_t d = 2; d < x.dim(); ++d) {
    size.push_back(2 * x.size(d));
  }
  auto options = F::InterpolateFuncOptions().size(size).align_corners(true);
  if (x.dim() == 4) {
    options.mode(torch::kBilinear);
  } else {
    options.mode(torch::kTrilinear);
  }
  return F::interpolate(x, options);
}

torch::Tensor maxPool2x(const torch::Tensor& x) {
  if (x.dim() == 4) {
    return torch::max_pool2d(x, {2, 2}, {2, 2});
  }
  return torch::max_pool3d(x, {2, 2, 2}, {2, 2, 2});
}

// ---- UNetBase ----------------------------------------------------------------------------------

UNetBaseImpl::UNetBaseImpl(const GeminiBackboneOptions& options)
    : m_options(options) {
  validate(options);
  const auto& c = options.channels;
  const auto block = [&](const char* name, int in, int out) {
    return register_module(
        name, GeminiDoubleConv(options.dims, in, out, options.groupChannels, options.leakySlope));
  };
  m_down.push_back(block("inc", options.inChannels, c[0]));
  m_down.push_back(block("down1", c[0], c[1]));
  m_down.push_back(block("down2", c[1], c[2]));
  m_down.push_back(block("down3", c[2], c[3]));
  m_down.push_back(block("down4", c[3], c[4]));
  m_up.push_back(block("up1", c[4] + c[3], c[5]));
  m_up.push_back(block("up2", c[5] + c[2], c[6]));
  m_up.push_back(block("up3", c[6] + c[1], c[7]));
  m_up.push_back(block("up4", c[7] + c[0], c[8]));
}

torch::Tensor UNetBaseImpl::forward(const torch::Tensor& x) {
  checkInput(x, m_options.dims, m_options.inChannels, "UNetBase");
  const auto sizes = spatialSizes(x);
  std::vector<std::int64_t> before;
  std::vector<torch::Tensor> skips; // x1 ... x4
  auto y = m_down[0](padToMultiple(x, 16, before));
  for (std::size_t i = 1; i < m_down.size(); ++i) {
    skips.push_back(y);
    y = m_down[i](maxPool2x(y));
  }
  for (std::size_t i = 0; i < m_up.size(); ++i) {
    y = m_up[i](torch::cat({skips[skips.size() - 1 - i], upsampleLinear2x(y)}, 1));
  }
  return cropSpatial(y, before, sizes);
}

// ---- deformer ----------------------------------------------------------------------------------

GeminiDeformerImpl::GeminiDeformerImpl(int dims,
                                       int inChannels,
                                       const std::vector<int>& channels,
                                       int groupChannels,
                                       double leakySlope)
    : m_dims(dims) {
  if (channels.size() != 5) {
    throw ModelError("GeminiDeformer: exactly 5 widths are required");
  }
  const auto& d = channels;
  const int inputs[5] = {inChannels, d[0], d[1], d[2] + d[1], d[3] + d[0]};
  for (std::size_t i = 0; i < 5; ++i) {
    m_blocks.push_back(
        register_module("c" + std::to_string(i + 1),
                        GeminiConvBlock(dims, inputs[i], d[i], groupChannels, leakySlope)));
  }
  m_flow = register_module("flow", ConvNd(dims, d[4], dims, 3));
}

torch::Tensor GeminiDeformerImpl::forward(const torch::Tensor& x) {
  if (!x.defined() || x.dim() != m_dims + 2) {
    throw ModelError("GeminiDeformer: expected a " + std::to_string(m_dims + 2) + "-D input");
  }
  const auto sizes = spatialSizes(x);
  std::vector<std::int64_t> before;
  const auto c1 = m_blocks[0](padToMultiple(x, 4, before));
  const auto c2 = m_blocks[1](maxPool2x(c1));
  const auto c3 = m_blocks[2](maxPool2x(c2));
  const auto c4 = m_blocks[3](torch::cat({upsampleLinear2x(c3), c2}, 1));
  const auto c5 = m_blocks[4](torch::cat({upsampleLinear2x(c4), c1}, 1));
  return cropSpatial(m_flow(c5), before, sizes);
}

// ---- head --------------------------------------------------------------------------------------

GeminiHeadImpl::GeminiHeadImpl(
    int dims, int inChannels, const GeminiHeadOptions& options, int outChannels, double leakySlope)
    : m_conv1(register_module("conv1", ConvNd(dims, inChannels, options.hiddenChannels, 3)))
    , m_norm(register_module("norm", makeNorm(options.hiddenChannels, options.groups)))
    , m_conv2(register_module("conv2", ConvNd(dims, options.hiddenChannels, outChannels, 1)))
    , m_slope(leakySlope) {}

torch::Tensor GeminiHeadImpl::forward(const torch::Tensor& x) {
  return m_conv2(torch::leaky_relu(m_norm(m_conv1(x)), m_slope));
}

// ---- GeminiNet ---------------------------------------------------------------------------------

GeminiNetImpl::GeminiNetImpl(const GeminiOptions& options)
    : m_options(options) {
  validate(options);
  const auto& b = options.backbone;
  const int features = b.channels.back();
  m_backbone = register_module("backbone", UNetBase(b));
  m_deformer = register_module(
      "deformer",
      GeminiDeformer(
          b.dims, 2 * features, options.deformerChannels, b.groupChannels, b.leakySlope));
  if (options.restorationHead) {
    m_restorationHead = register_module(
        "res_head", GeminiHead(b.dims, features, options.head, b.inChannels, b.leakySlope));
  }
  if (options.segmentationClasses > 0) {
    m_segmentationHead = register_module(
        "seg_head",
        GeminiHead(b.dims, features, options.head, options.segmentationClasses, b.leakySlope));
  }
}

torch::Tensor GeminiNetImpl::features(const torch::Tensor& x) {
  return m_backbone(x);
}

torch::Tensor GeminiNetImpl::flow(const torch::Tensor& fMoving, const torch::Tensor& fFixed) {
  if (!fMoving.defined() || !fFixed.defined() || fMoving.sizes() != fFixed.sizes()) {
    throw ModelError("GeminiNet::flow: the two feature maps must have one shape");
  }
  auto out = m_deformer(torch::cat({fMoving, fFixed}, 1));
  if (m_options.diffeomorphic) {
    out = integrateVelocity(out, m_options.integrationSteps);
  }
  return out;
}

GeminiPairOutput GeminiNetImpl::forward(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined() || a.sizes() != b.sizes()) {
    throw ModelError("GeminiNet: A and B must have one shape");
  }
  // A and B (and the two deformer inputs) go through as one batch: the same per-item result as
  // two passes (GroupNorm is per item), half the kernel launches, and LibTorch's CPU convolution
  // takes its fast (oneDNN) path for batches > 1 where it would use the slow reference path for
  // small single-item 3D inputs.
  const auto n = a.size(0);
  const auto both = features(torch::cat({a, b}, 0));
  GeminiPairOutput out;
  out.featuresA = both.narrow(0, 0, n);
  out.featuresB = both.narrow(0, n, n);
  auto fields = m_deformer(torch::cat({torch::cat({out.featuresA, out.featuresB}, 1),
                                       torch::cat({out.featuresB, out.featuresA}, 1)},
                                      0));
  if (m_options.diffeomorphic) {
    fields = integrateVelocity(fields, m_options.integrationSteps);
  }
  out.flowAB = fields.narrow(0, 0, n);
  out.flowBA = fields.narrow(0, n, n);
  return out;
}

torch::Tensor GeminiNetImpl::restore(const torch::Tensor& x) {
  if (!m_restorationHead) {
    throw ModelError("GeminiNet: this net has no restoration head");
  }
  return m_restorationHead(features(x));
}

torch::Tensor GeminiNetImpl::segment(const torch::Tensor& x) {
  if (!m_segmentationHead) {
    throw ModelError("GeminiNet: this net has no segmentation head (segmentationClasses = 0)");
  }
  return m_segmentationHead(features(x));
}

// ---- GeminiUNet --------------------------------------------------------------------------------

GeminiUNetImpl::GeminiUNetImpl(const GeminiUNetOptions& options)
    : m_options(options) {
  validate(options);
  const auto& b = options.backbone;
  m_backbone = register_module("backbone", UNetBase(b));
  m_head = register_module(
      "seg_head",
      GeminiHead(b.dims, b.channels.back(), options.head, options.numClasses, b.leakySlope));
}

torch::Tensor GeminiUNetImpl::forward(const torch::Tensor& x) {
  return m_head(m_backbone(x));
}

torch::Tensor GeminiUNetImpl::probabilities(const torch::Tensor& x) {
  return torch::softmax(forward(x), 1);
}

torch::Tensor GeminiUNetImpl::features(const torch::Tensor& x) {
  return m_backbone(x);
}

// ---- transfer ----------------------------------------------------------------------------------

void loadBackboneFrom(GeminiUNet& target, GeminiNet& source) {
  requireSameBackbone(target->options().backbone, source->options().backbone);
  copyBackbone(*target, *source);
}

void loadBackboneFrom(GeminiUNet& target, GeminiUNet& source) {
  requireSameBackbone(target->options().backbone, source->options().backbone);
  copyBackbone(*target, *source);
}

void loadBackboneFrom(GeminiUNet& target, const LoadedModel& source) {
  if (const auto* net = std::get_if<GeminiNet>(&source.net)) {
    auto copy = *net;
    loadBackboneFrom(target, copy);
  } else if (const auto* unet = std::get_if<GeminiUNet>(&source.net)) {
    auto copy = *unet;
    loadBackboneFrom(target, copy);
  } else {
    throw ModelError("loadBackboneFrom: the checkpoint holds a '" +
                     std::string(architectureId(source.card.options)) +
                     "', not a gemini or gemini-unet");
  }
}

} // namespace densa::models
