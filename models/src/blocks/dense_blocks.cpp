// SPDX-License-Identifier: Apache-2.0
#include "densa/models/error.hpp"
#include "densa/models/torch/blocks.hpp"

#include "blocks/onednn_conv.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <cstdint>
#include <cstring>
#if defined(__x86_64__)
#  include <emmintrin.h>
#endif
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

namespace {

// conv(x) with the given weight and bias, then max(0, .) when `relu`.
template <int Dim>
torch::Tensor convolveWith(typename NdLayers<Dim>::Conv& conv,
                           const torch::Tensor& x,
                           const torch::Tensor& weight,
                           const torch::Tensor& bias,
                           bool relu) {
  const auto& o = conv->options;
  // Every convolution of these nets pads k/2 with zeros ("same" size at stride 1); the padding
  // option itself is a variant whose type differs between LibTorch 1.13 and 2.x.
  std::array<std::int64_t, Dim> padding{};
  for (int d = 0; d < Dim; ++d) {
    padding[static_cast<std::size_t>(d)] = weight.size(2 + d) / 2;
  }
  // Channels-last inference on the CPU: oneDNN called directly (blocks/onednn_conv.hpp), unless
  // the fast paths are off.
  if (auto y = detail::directConvolution(
          x, weight, bias, o.stride(), padding, o.dilation(), o.groups(), relu);
      y.defined()) {
    return y;
  }
  const auto optionalBias =
      bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::optional<torch::Tensor>();
  torch::Tensor y;
  if (inferenceFastPaths() && x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
      at::hasMKLDNN() && at::globalContext().userEnabledMkldnn()) {
    y = at::mkldnn_convolution(
        x, weight, optionalBias, padding, o.stride(), o.dilation(), o.groups());
  } else {
    const std::array<std::int64_t, Dim> outputPadding{};
    y = at::convolution(x,
                        weight,
                        optionalBias,
                        o.stride(),
                        padding,
                        o.dilation(),
                        false,
                        outputPadding,
                        o.groups());
  }
  return relu ? y.relu_() : y;
}

} // namespace

template <int Dim>
torch::Tensor convolve(typename NdLayers<Dim>::Conv& conv,
                       const torch::Tensor& x,
                       const torch::Tensor& weight,
                       const torch::Tensor& bias) {
  return convolveWith<Dim>(conv, x, weight, bias, false);
}

template <int Dim>
torch::Tensor convolve(typename NdLayers<Dim>::Conv& conv, const torch::Tensor& x) {
  return convolve<Dim>(conv, x, conv->weight, conv->bias);
}

namespace {

bool channelsLastLayout(const torch::Tensor& x) {
  return x.dim() >= 4 && x.size(1) > 1 && x.stride(1) == 1;
}

// The conv's weight and bias with the BN folded in (inference).
template <int Dim>
std::pair<torch::Tensor, torch::Tensor> foldedConvBn(typename NdLayers<Dim>::Conv& conv,
                                                     typename NdLayers<Dim>::BatchNorm& bn,
                                                     FoldedConv& fold,
                                                     bool channelsLast) {
  return fold.get(
      // num_batches_tracked: a train-mode BN forward updates the running statistics in place
      // without bumping their version counters, but it does increment this one.
      {conv->weight,
       conv->bias,
       bn->weight,
       bn->bias,
       bn->running_mean,
       bn->running_var,
       bn->num_batches_tracked},
      channelsLast,
      [&bn] { return channelAffine(bn); },
      conv->weight,
      conv->bias);
}

// Nearest up-sampling by 2 followed by a 3-tap convolution, along one dimension: output 2i + p
// reads the up-sampled voxels 2i + p - 1 .. 2i + p + 1, which are input voxels i - 1, i, i (p = 0)
// or i, i, i + 1 (p = 1). So parity 0 is a 2-tap convolution of the input with taps (w0, w1 + w2)
// over i - 1, i, and parity 1 one with (w0 + w1, w2) over i, i + 1. Over the dimensions with
// factor 2 (the others keep their 3 taps): [parities, O, C, kernel...], parities in row-major
// order of their per-dimension bits (first dimension most significant).
torch::Tensor parityWeights(const torch::Tensor& weight, const std::vector<std::int64_t>& scale) {
  std::vector<torch::Tensor> current{weight.to(torch::kFloat)};
  for (std::size_t d = 0; d < scale.size(); ++d) {
    if (scale[d] != 2) {
      continue;
    }
    const auto dim = static_cast<std::int64_t>(2 + d);
    std::vector<torch::Tensor> next;
    for (const auto& w : current) {
      const auto w0 = w.narrow(dim, 0, 1);
      const auto w1 = w.narrow(dim, 1, 1);
      const auto w2 = w.narrow(dim, 2, 1);
      next.push_back(torch::cat({w0, w1 + w2}, dim));
      next.push_back(torch::cat({w0 + w1, w2}, dim));
    }
    current = std::move(next);
  }
  return torch::stack(current).to(weight.scalar_type());
}

// `bytes` (a multiple of 64) to a 64-byte aligned `to` with non-temporal stores where the CPU has
// them (SSE2: every x86-64): the destination is written once and read by the next layer much
// later, so its lines are not read first (no read-for-ownership) and do not evict the source.
inline void streamLines(char* to, const char* from, std::size_t bytes) {
#if defined(__x86_64__)
  for (std::size_t i = 0; i < bytes; i += 16) {
    __m128i v;
    std::memcpy(&v, from + i, sizeof v);
    _mm_stream_si128(reinterpret_cast<__m128i*>(to + i), v); // NOLINT: aligned by the caller
  }
#else
  std::memcpy(to, from, bytes);
#endif
}

// y's pixels (channels-last) into out's (channels-last) at offset + scale * index per spatial
// dimension.
void scatterPixels(const torch::Tensor& y,
                   torch::Tensor& out,
                   const std::vector<std::int64_t>& offset,
                   const std::vector<std::int64_t>& scale) {
  const std::int64_t spatial = y.dim() - 2;
  const std::int64_t last = spatial - 1;
  const std::int64_t width = y.size(2 + last);
  std::int64_t rows = y.size(0);
  for (std::int64_t d = 0; d < last; ++d) {
    rows *= y.size(2 + d);
  }
  const auto element = static_cast<std::size_t>(y.element_size());
  const auto pixelBytes = static_cast<std::size_t>(y.size(1)) * element;
  const auto* from = static_cast<const char*>(y.data_ptr());
  auto* to = static_cast<char*>(out.data_ptr());
  const auto lastStep = scale[static_cast<std::size_t>(last)] * out.stride(2 + last);
  const auto lastOffset = offset[static_cast<std::size_t>(last)] * out.stride(2 + last);
  // Whole 64-byte lines per pixel, every pixel on a line boundary.
  const bool streaming = pixelBytes % 64 == 0 && reinterpret_cast<std::uintptr_t>(to) % 64 == 0 &&
                         (out.stride(0) * static_cast<std::int64_t>(element)) % 64 == 0;
  at::parallel_for(0, rows, 1, [&](std::int64_t begin, std::int64_t end) {
    for (auto row = begin; row < end; ++row) {
      std::int64_t rest = row;
      std::int64_t in = 0;
      std::int64_t at = lastOffset;
      for (std::int64_t d = last - 1; d >= 0; --d) {
        const std::int64_t i = rest % y.size(2 + d);
        rest /= y.size(2 + d);
        const auto k = static_cast<std::size_t>(d);
        in += i * y.stride(2 + d);
        at += (offset[k] + scale[k] * i) * out.stride(2 + d);
      }
      in += rest * y.stride(0);
      at += rest * out.stride(0);
      for (std::int64_t w = 0; w < width; ++w) {
        char* const pixel = to + static_cast<std::size_t>(at + w * lastStep) * element;
        const char* const source =
            from + static_cast<std::size_t>(in + w * y.stride(2 + last)) * element;
        if (streaming) {
          streamLines(pixel, source, pixelBytes);
        } else {
          std::memcpy(pixel, source, pixelBytes);
        }
      }
    }
#if defined(__x86_64__)
    _mm_sfence(); // the streamed lines are visible before the task ends
#endif
  });
}

} // namespace

template <int Dim>
torch::Tensor convBnRelu(typename NdLayers<Dim>::Conv& conv,
                         typename NdLayers<Dim>::BatchNorm& bn,
                         FoldedConv& fold,
                         const torch::Tensor& x,
                         bool inference) {
  if (!inference) {
    return bn(convolve<Dim>(conv, x)).relu_();
  }
  const auto [weight, bias] = foldedConvBn<Dim>(conv, bn, fold, channelsLastLayout(x));
  return convolveWith<Dim>(conv, x, weight, bias, true);
}

template torch::Tensor convolve<2>(NdLayers<2>::Conv&, const torch::Tensor&);
template torch::Tensor convolve<3>(NdLayers<3>::Conv&, const torch::Tensor&);
template torch::Tensor convolve<2>(NdLayers<2>::Conv&,
                                   const torch::Tensor&,
                                   const torch::Tensor&,
                                   const torch::Tensor&);
template torch::Tensor convolve<3>(NdLayers<3>::Conv&,
                                   const torch::Tensor&,
                                   const torch::Tensor&,
                                   const torch::Tensor&);
template torch::Tensor convBnRelu<2>(
    NdLayers<2>::Conv&, NdLayers<2>::BatchNorm&, FoldedConv&, const torch::Tensor&, bool);
template torch::Tensor convBnRelu<3>(
    NdLayers<3>::Conv&, NdLayers<3>::BatchNorm&, FoldedConv&, const torch::Tensor&, bool);

torch::Tensor floatForBf16Cpu(const torch::Tensor& x,
                              const std::function<torch::Tensor(const torch::Tensor&)>& op) {
  if (x.scalar_type() == torch::kBFloat16 && x.device().is_cpu()) {
    return op(x.to(torch::kFloat)).to(torch::kBFloat16);
  }
  return op(x);
}

torch::Tensor upsampleAdd(const torch::Tensor& x,
                          const std::vector<std::int64_t>& scale,
                          Upsampling mode,
                          const torch::Tensor& addend) {
  const auto spatial = static_cast<std::int64_t>(scale.size());
  if (!inferenceFastPaths() || mode != Upsampling::Nearest || x.dim() != spatial + 2 ||
      addend.dim() != x.dim()) {
    return upsample(x, scale, mode) + addend;
  }
  // addend viewed as [N, C, d0, s0, d1, s1, ...] plus x viewed as [N, C, d0, 1, d1, 1, ...]:
  // nearest up-sampling by integer factors, summed in the same pass.
  std::vector<std::int64_t> split{x.size(0), x.size(1)};
  std::vector<std::int64_t> broadcast{x.size(0), x.size(1)};
  for (std::int64_t i = 0; i < spatial; ++i) {
    const auto s = scale[static_cast<std::size_t>(i)];
    if (addend.size(2 + i) != x.size(2 + i) * s) {
      throw ModelError("upsampleAdd: the addend's size is not the up-sampled size");
    }
    split.insert(split.end(), {x.size(2 + i), s});
    broadcast.insert(broadcast.end(), {x.size(2 + i), 1});
  }
  return (addend.view(split) + x.view(broadcast)).reshape(addend.sizes());
}

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
  if (inferenceMode(*this)) {
    return torch::cat({x, newFeatures(x)}, 1);
  }
  auto y = convolve<Dim>(m_conv1, m_norm1(x).relu_());
  y = convolve<Dim>(m_conv2, m_norm2(y).relu_());
  return torch::cat({x, y}, 1);
}

template <int Dim>
torch::Tensor DenseLayerImpl<Dim>::newFeatures(const torch::Tensor& x) {
  const auto y =
      convBnRelu<Dim>(m_conv1, m_norm2, m_fold1, bnRelu(x, channelAffine(m_norm1)), true);
  const auto [weight, bias] =
      m_fold2.get({m_conv2->weight}, channelsLastLayout(y), {}, m_conv2->weight, {});
  return convolve<Dim>(m_conv2, y, weight, bias);
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
  if (inferenceMode(*this)) {
    // Every layer appends its features to one buffer in x's layout: no concatenation of all the
    // block's features per layer.
    std::vector<std::int64_t> sizes(x.sizes().begin(), x.sizes().end());
    sizes[1] = m_outChannels;
    const auto format = !channelsLastLayout(x) ? torch::MemoryFormat::Contiguous
                        : Dim == 2             ? torch::MemoryFormat::ChannelsLast
                                               : torch::MemoryFormat::ChannelsLast3d;
    auto buffer = torch::empty(sizes, x.options().memory_format(format));
    std::int64_t filled = x.size(1);
    buffer.narrow(1, 0, filled).copy_(x);
    for (auto& layer : m_layers) {
      const auto y = layer->newFeatures(buffer.narrow(1, 0, filled));
      buffer.narrow(1, filled, y.size(1)).copy_(y);
      filled += y.size(1);
    }
    return buffer;
  }
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
  auto y = convolve<Dim>(
      m_conv, inferenceMode(*this) ? bnRelu(x, channelAffine(m_norm)) : m_norm(x).relu_());
  const std::vector<std::int64_t> window =
      Dim == 2 ? std::vector<std::int64_t>{2, 2} : std::vector<std::int64_t>{1, 2, 2};
  if (auto pooled = detail::directPooling(
          y, detail::Pooling::Average, window, window, std::vector<std::int64_t>(Dim, 0));
      pooled.defined()) {
    return pooled;
  }
  if constexpr (Dim == 2) {
    return torch::avg_pool2d(y, {2, 2}, {2, 2});
  } else {
    return floatForBf16Cpu(y, [](const torch::Tensor& t) {
      return torch::avg_pool3d(t, {1, 2, 2}, {1, 2, 2});
    });
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

// For each output parity (per up-sampled dimension: even or odd output index), one convolution
// of the low-resolution input with the parity's summed taps (parityWeights), padded on one side
// only, written into that parity's voxels: 4 (2D) or up to 8 (3D) convolutions with 2-tap
// kernels instead of one 3-tap kernel at the up-sampled size, 9/4 (2D) to 27/8 (3D x2 in depth)
// times fewer multiply-adds, and the up-sampled tensor is never made. The BN is folded in, the
// ReLU fused.
template <int Dim>
torch::Tensor UpBlockImpl<Dim>::upsampledConvolution(const torch::Tensor& x,
                                                     const std::vector<std::int64_t>& scale) {
  if (m_settings.upsampling != Upsampling::Nearest || !detail::directOneDnn() ||
      !x.device().is_cpu() || x.dim() != Dim + 2 || !channelsLastLayout(x)) {
    return {};
  }
  const auto [weight, bias] = foldedConvBn<Dim>(m_conv, m_norm, m_fold, true);
  torch::Tensor parity;
  {
    const std::lock_guard<std::mutex> lock(m_parityMutex);
    if (!m_paritySource.defined() || !m_paritySource.is_same(weight)) {
      torch::NoGradGuard noGrad;
      m_parityWeights = parityWeights(weight, scale);
      m_paritySource = weight;
    }
    parity = m_parityWeights;
  }
  std::vector<std::int64_t> outSizes{x.size(0), weight.size(0)};
  for (int d = 0; d < Dim; ++d) {
    outSizes.push_back(x.size(2 + d) * scale[static_cast<std::size_t>(d)]);
  }
  auto out =
      torch::empty(outSizes,
                   x.options().memory_format(Dim == 2 ? torch::MemoryFormat::ChannelsLast
                                                      : torch::MemoryFormat::ChannelsLast3d));
  const std::vector<std::int64_t> ones(Dim, 1);
  for (std::int64_t p = 0; p < parity.size(0); ++p) {
    std::vector<std::int64_t> padBegin(Dim, 1);
    std::vector<std::int64_t> padEnd(Dim, 1);
    std::vector<std::int64_t> offset(Dim, 0);
    std::int64_t bits = p;
    for (int d = Dim - 1; d >= 0; --d) {
      const auto k = static_cast<std::size_t>(d);
      if (scale[k] == 2) {
        offset[k] = bits & 1;
        bits >>= 1;
        padBegin[k] = 1 - offset[k]; // parity 0 reads i - 1, i; parity 1 reads i, i + 1
        padEnd[k] = offset[k];
      }
    }
    const auto y =
        detail::directConvolutionPadded(x, parity[p], bias, ones, padBegin, padEnd, true);
    if (!y.defined()) {
      return {};
    }
    scatterPixels(y, out, offset, scale);
  }
  return out;
}

template <int Dim>
torch::Tensor UpBlockImpl<Dim>::forward(const torch::Tensor& x, const torch::Tensor& skip) {
  std::vector<std::int64_t> scale(Dim, 2);
  if constexpr (Dim == 3) {
    scale[0] = m_settings.depthScale;
  }
  torch::Tensor y;
  if (m_settings.skipChannels > 0) {
    bool sizesMatch = skip.defined() && skip.dim() == x.dim();
    for (int d = 0; sizesMatch && d < Dim; ++d) {
      sizesMatch = skip.size(2 + d) == x.size(2 + d) * scale[static_cast<std::size_t>(d)];
    }
    if (!sizesMatch) {
      throw ModelError("up-block: the skip tensor is missing or its spatial size differs from the "
                       "up-sampled input (input sizes must be multiples of 32)");
    }
    y = upsampleAdd(x, scale, m_settings.upsampling, m_skip ? convolve<Dim>(m_skip, skip) : skip);
  } else {
    if (inferenceMode(*this)) {
      if (auto z = upsampledConvolution(x, scale); z.defined()) {
        return z;
      }
    }
    y = upsample(x, scale, m_settings.upsampling);
  }
  if (inferenceMode(*this)) { // dropout is the identity in eval mode
    return convBnRelu<Dim>(m_conv, m_norm, m_fold, y, true);
  }
  y = convolve<Dim>(m_conv, y);
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
