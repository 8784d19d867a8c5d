// SPDX-License-Identifier: Apache-2.0
#include "densa/models/error.hpp"
#include "densa/models/torch/blocks.hpp"

#include <torch/nn/functional/upsampling.h>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <string>

namespace densa::models {
namespace {

template <int Dim>
using Conv = typename NdLayers<Dim>::Conv;
template <int Dim>
using BatchNorm = typename NdLayers<Dim>::BatchNorm;

template <int Dim>
BatchNorm<Dim> makeNorm(int channels, NormSettings s) {
  return BatchNorm<Dim>(torch::nn::BatchNormOptions(channels).eps(s.eps).momentum(s.momentum));
}

// Encoder convolution: no bias, Glorot-uniform (Keras default; the reference then loads ImageNet
// weights into the 2D encoder).
template <int Dim>
Conv<Dim> makeConv(int in, int out, int kernel, int padding, bool bias) {
  Conv<Dim> conv(torch::nn::ConvOptions<Dim>(in, out, kernel).padding(padding).bias(bias));
  glorotUniform(conv->weight);
  if (bias) {
    torch::NoGradGuard noGrad;
    conv->bias.zero_();
  }
  return conv;
}

} // namespace

void glorotUniform(torch::Tensor& weight) {
  torch::nn::init::xavier_uniform_(weight);
}

torch::Tensor upsample(const torch::Tensor& x,
                       const std::vector<std::int64_t>& scale,
                       Upsampling mode) {
  const auto spatial = static_cast<std::int64_t>(scale.size());
  if (x.dim() != spatial + 2) {
    throw ModelError("upsample: tensor rank does not match the scale");
  }
  std::vector<std::int64_t> size;
  for (std::int64_t i = 0; i < spatial; ++i) {
    size.push_back(x.size(2 + i) * scale[static_cast<std::size_t>(i)]);
  }
  namespace F = torch::nn::functional;
  auto options = F::InterpolateFuncOptions().size(size);
  if (mode == Upsampling::Nearest) {
    options.mode(torch::kNearest);
  } else if (spatial == 2) {
    options.mode(torch::kBilinear).align_corners(false);
  } else {
    options.mode(torch::kTrilinear).align_corners(false);
  }
  return F::interpolate(x, options);
}

// ---- DenseLayer -------------------------------------------------------------------------------

template <int Dim>
DenseLayerImpl<Dim>::DenseLayerImpl(int inChannels,
                                    int growthRate,
                                    int bottleneckWidth,
                                    NormSettings norm)
    : m_norm1(register_module("norm1", makeNorm<Dim>(inChannels, norm)))
    , m_conv1(register_module("conv1", makeConv<Dim>(inChannels, bottleneckWidth, 1, 0, false)))
    , m_norm2(register_module("norm2", makeNorm<Dim>(bottleneckWidth, norm)))
    , m_conv2(register_module("conv2", makeConv<Dim>(bottleneckWidth, growthRate, 3, 1, false))) {}

template <int Dim>
torch::Tensor DenseLayerImpl<Dim>::forward(const torch::Tensor& x) {
  // In-place ReLU on the fresh BatchNorm outputs (autograd-safe: BN's backward keeps its input, not
  // its output): one memory pass and one allocation fewer per activation.
  auto y = m_conv1(m_norm1(x).relu_());
  y = m_conv2(m_norm2(y).relu_());
  return torch::cat({x, y}, 1);
}

// ---- DenseBlock -------------------------------------------------------------------------------

template <int Dim>
DenseBlockImpl<Dim>::DenseBlockImpl(
    int inChannels, int layers, int growthRate, int bottleneckWidth, NormSettings norm)
    : m_outChannels(inChannels + layers * growthRate) {
  for (int i = 0; i < layers; ++i) {
    m_layers.push_back(register_module(
        "layer" + std::to_string(i + 1),
        DenseLayer<Dim>(inChannels + i * growthRate, growthRate, bottleneckWidth, norm)));
  }
}

template <int Dim>
torch::Tensor DenseBlockImpl<Dim>::forward(const torch::Tensor& x) {
  auto y = x;
  for (auto& layer : m_layers) {
    y = layer(y);
  }
  return y;
}

// ---- Transition -------------------------------------------------------------------------------

template <int Dim>
TransitionImpl<Dim>::TransitionImpl(int inChannels, int outChannels, NormSettings norm)
    : m_norm(register_module("norm", makeNorm<Dim>(inChannels, norm)))
    , m_conv(register_module("conv", makeConv<Dim>(inChannels, outChannels, 1, 0, false))) {}

template <int Dim>
torch::Tensor TransitionImpl<Dim>::forward(const torch::Tensor& x) {
  auto y = m_conv(m_norm(x).relu_());
  if constexpr (Dim == 2) {
    return torch::avg_pool2d(y, {2, 2}, {2, 2});
  } else {
    return torch::avg_pool3d(y, {1, 2, 2}, {1, 2, 2});
  }
}

// ---- UpBlock ----------------------------------------------------------------------------------

template <int Dim>
UpBlockImpl<Dim>::UpBlockImpl(const UpBlockSettings& settings)
    : m_settings(settings) {
  if (settings.skipChannels > 0 && settings.skipChannels != settings.inChannels) {
    m_skip = register_module("skip",
                             makeConv<Dim>(settings.skipChannels, settings.inChannels, 1, 0, true));
  }
  m_conv =
      register_module("conv", makeConv<Dim>(settings.inChannels, settings.outChannels, 3, 1, true));
  if (settings.init == DecoderInit::Normal005) {
    torch::NoGradGuard noGrad;
    m_conv->weight.normal_(0.0, 0.05);
  }
  if (settings.dropout > 0.0) {
    m_dropout = register_module("dropout", torch::nn::Dropout(settings.dropout));
  }
  m_norm = register_module("norm", makeNorm<Dim>(settings.outChannels, settings.norm));
}

template <int Dim>
torch::Tensor UpBlockImpl<Dim>::forward(const torch::Tensor& x, const torch::Tensor& skip) {
  std::vector<std::int64_t> scale(Dim, 2);
  if constexpr (Dim == 3) {
    scale[0] = m_settings.depthScale;
  }
  auto y = upsample(x, scale, m_settings.upsampling);
  if (m_settings.skipChannels > 0) {
    if (!skip.defined() || skip.sizes().slice(2) != y.sizes().slice(2)) {
      throw ModelError("up-block: the skip tensor is missing or its spatial size differs from the "
                       "up-sampled input (input sizes must be multiples of 32)");
    }
    y = y + (m_skip ? m_skip(skip) : skip);
  }
  y = m_conv(y);
  if (m_dropout) {
    y = m_dropout(y);
  }
  return m_norm(y).relu_();
}

template class DenseLayerImpl<2>;
template class DenseLayerImpl<3>;
template class DenseBlockImpl<2>;
template class DenseBlockImpl<3>;
template class TransitionImpl<2>;
template class TransitionImpl<3>;
template class UpBlockImpl<2>;
template class UpBlockImpl<3>;

} // namespace densa::models
