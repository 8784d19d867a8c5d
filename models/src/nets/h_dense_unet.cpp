// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/h_dense_unet.hpp"

#include "densa/models/error.hpp"

#include <torch/utils.h>

#include <string>
#include <vector>

namespace densa::models {

torch::Tensor slicesToBatch(const torch::Tensor& volume, int sliceContext) {
  if (volume.dim() != 5) {
    throw ModelError("slicesToBatch: expected [N, C, D, H, W], got a " +
                     std::to_string(volume.dim()) + "-D tensor");
  }
  if (sliceContext < 1 || sliceContext % 2 != 1) {
    throw ModelError("slicesToBatch: sliceContext must be odd");
  }
  const std::int64_t n = volume.size(0);
  const std::int64_t c = volume.size(1);
  const std::int64_t depth = volume.size(2);
  const std::int64_t radius = sliceContext / 2;
  const auto base = torch::arange(depth, volume.options().dtype(torch::kLong));
  std::vector<torch::Tensor> shifted;
  for (std::int64_t offset = -radius; offset <= radius; ++offset) {
    shifted.push_back(volume.index_select(2, (base + offset).clamp(0, depth - 1)));
  }
  // [ctx, N, C, D, H, W] -> [N, D, ctx, C, H, W] -> [N*D, ctx*C, H, W]
  return torch::stack(shifted, 0)
      .permute({1, 3, 0, 2, 4, 5})
      .reshape({n * depth, sliceContext * c, volume.size(3), volume.size(4)});
}

torch::Tensor batchToSlices(const torch::Tensor& slices, std::int64_t batch, std::int64_t depth) {
  if (slices.dim() != 4 || slices.size(0) != batch * depth) {
    throw ModelError("batchToSlices: expected [N*D, C, H, W] with N*D = " +
                     std::to_string(batch * depth));
  }
  // Channels-last slices (CPU inference features) become a channels-last volume without a copy.
  const auto format = slices.dim() == 4 && slices.size(1) > 1 &&
                              slices.is_contiguous(torch::MemoryFormat::ChannelsLast)
                          ? torch::MemoryFormat::ChannelsLast3d
                          : torch::MemoryFormat::Contiguous;
  return slices.reshape({batch, depth, slices.size(1), slices.size(2), slices.size(3)})
      .permute({0, 2, 1, 3, 4})
      .contiguous(format);
}

HDenseUNetImpl::HDenseUNetImpl(const HDenseUNetOptions& options)
    : m_options(options) {
  validate(options);
  m_net2d = register_module("net2d", DenseUNet2d(options.net2d));
  m_net3d = register_module("net3d", DenseUNet3d(options.net3d, false));
  const int features = options.net3d.decoderChannels.back();
  m_fusionConv = register_module(
      "fusion_conv",
      torch::nn::Conv3d(torch::nn::Conv3dOptions(features, features, 3).padding(1).bias(true)));
  if (options.fusionDropout > 0.0) {
    m_fusionDropout = register_module("fusion_dropout", torch::nn::Dropout(options.fusionDropout));
  }
  m_fusionNorm = register_module("fusion_norm",
                                 torch::nn::BatchNorm3d(torch::nn::BatchNormOptions(features)
                                                            .eps(options.net3d.decoderBnEps)
                                                            .momentum(options.net3d.bnMomentum)));
  m_classifier = register_module(
      "classifier",
      torch::nn::Conv3d(torch::nn::Conv3dOptions(features, options.numClasses, 1).bias(true)));
  torch::NoGradGuard noGrad;
  for (auto* conv : {&m_fusionConv, &m_classifier}) {
    glorotUniform((*conv)->weight);
    (*conv)->bias.zero_();
  }
}

DenseUNetOutput HDenseUNetImpl::forward2d(const torch::Tensor& slices) {
  return m_net2d(slices);
}

HDenseUNetOutput HDenseUNetImpl::forward(const torch::Tensor& volume) {
  if (volume.dim() != 5 || volume.size(1) != 1) {
    throw ModelError("HDenseUNet: expected an [N, 1, D, H, W] volume");
  }
  const std::int64_t n = volume.size(0);
  const std::int64_t depth = volume.size(2);
  if (depth % 4 != 0) {
    throw ModelError("HDenseUNet: depth must be a multiple of 4 (got " + std::to_string(depth) +
                     ")");
  }
  DenseUNetOutput out2d;
  {
    // A frozen 2D branch needs no graph.
    torch::AutoGradMode gradMode(torch::GradMode::is_enabled() && !m_frozen2d);
    out2d = m_net2d(slicesToBatch(volume, m_options.sliceContext));
  }
  const auto features2d = batchToSlices(out2d.features, n, depth);
  const auto logits2d = batchToSlices(out2d.logits, n, depth);
  return {fuse(volume, features2d, logits2d), logits2d};
}

torch::Tensor HDenseUNetImpl::fuse(const torch::Tensor& volume,
                                   const torch::Tensor& features2d,
                                   const torch::Tensor& logits2d) {
  if (volume.dim() != 5 || features2d.dim() != 5 || logits2d.dim() != 5 ||
      volume.size(2) != features2d.size(2) || volume.size(2) != logits2d.size(2)) {
    throw ModelError("HDenseUNet::fuse: expected [N, C, D, H, W] volume, features and logits of "
                     "equal depth");
  }
  const auto context = torch::cat({volume, logits2d * m_options.autoContextScale}, 1);
  const auto features3d = m_net3d(context).features;
  // Channels-last 3D features (CPU inference, blocks/onednn_conv.hpp) keep that layout to the end.
  const bool channelsLast = features3d.dim() == 5 && features3d.size(1) > 1 &&
                            features3d.is_contiguous(torch::MemoryFormat::ChannelsLast3d);
  const auto addend =
      channelsLast ? features2d.contiguous(torch::MemoryFormat::ChannelsLast3d) : features2d;
  // Inference: the 3D features are this call's own, summed in place (one whole-window map less).
  const auto sum = inferenceMode(*this) && !features3d.requires_grad() &&
                           features3d.sizes() == addend.sizes() &&
                           features3d.scalar_type() == addend.scalar_type()
                       ? features3d.add_(addend)
                       : features3d + addend;
  torch::Tensor z;
  if (inferenceMode(*this)) { // dropout is the identity in eval mode
    z = convBnRelu<3>(m_fusionConv, m_fusionNorm, m_foldFusion, sum, true);
  } else {
    z = convolve<3>(m_fusionConv, sum);
    if (m_fusionDropout) {
      z = m_fusionDropout(z);
    }
    z = m_fusionNorm(z).relu_();
  }
  const auto logits = convolve<3>(m_classifier, z);
  return channelsLast ? logits.contiguous() : logits; // 3 channels: a cheap copy
}

void HDenseUNetImpl::freeze2d(bool frozen) {
  m_frozen2d = frozen;
  for (auto& p : m_net2d->parameters()) {
    p.set_requires_grad(!frozen);
  }
  if (frozen) {
    m_net2d->eval();
  } else {
    m_net2d->train(is_training());
  }
}

void HDenseUNetImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (m_frozen2d) {
    m_net2d->eval();
  }
}

CoarseLiverNetImpl::CoarseLiverNetImpl(const CoarseLiverOptions& options)
    : m_options(options) {
  validate(options);
  m_net = register_module("net", DenseUNet2d(options.net));
}

torch::Tensor CoarseLiverNetImpl::forward(const torch::Tensor& slices) {
  const std::int64_t f = m_options.downsample;
  if (slices.dim() != 4 || slices.size(2) % (32 * f) != 0 || slices.size(3) % (32 * f) != 0) {
    throw ModelError("CoarseLiverNet: expected [B, C, H, W] with H and W multiples of " +
                     std::to_string(32 * f));
  }
  if (f == 1) {
    return m_net(slices).logits;
  }
  const auto small = torch::avg_pool2d(slices, {f, f}, {f, f});
  return upsample(m_net(small).logits, {f, f}, Upsampling::Linear);
}

} // namespace densa::models
