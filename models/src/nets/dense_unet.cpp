// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/dense_unet.hpp"

#include "densa/models/error.hpp"

#include "blocks/onednn_conv.hpp"

#include <torch/utils.h>

#include <cmath>
#include <string>

namespace densa::models {

template <int Dim>
DenseUNetImpl<Dim>::DenseUNetImpl(const DenseUNetOptions& options, bool withClassifier)
    : m_options(options) {
  validate(options);
  using Conv = typename NdLayers<Dim>::Conv;
  using BatchNorm = typename NdLayers<Dim>::BatchNorm;
  const NormSettings encoderNorm{options.encoderBnEps, options.bnMomentum};
  const NormSettings decoderNorm{options.decoderBnEps, options.bnMomentum};
  const int k = options.growthRate;
  const int bottleneck = options.bottleneckFactor * k;

  m_conv0 =
      register_module("conv0",
                      Conv(torch::nn::ConvOptions<Dim>(options.inChannels, options.initFeatures, 7)
                               .stride(2)
                               .padding(3)
                               .bias(false)));
  glorotUniform(m_conv0->weight);
  m_norm0 = register_module("norm0",
                            BatchNorm(torch::nn::BatchNormOptions(options.initFeatures)
                                          .eps(encoderNorm.eps)
                                          .momentum(encoderNorm.momentum)));
  int channels = options.initFeatures;
  m_encoderChannels.push_back(channels);
  for (std::size_t b = 0; b < 4; ++b) {
    const std::string index = std::to_string(b + 1);
    m_blocks.push_back(register_module(
        "block" + index,
        DenseBlock<Dim>(channels, options.blockLayers[b], k, bottleneck, encoderNorm)));
    channels = m_blocks.back()->outChannels();
    m_encoderChannels.push_back(channels);
    if (b < 3) {
      const int reduced = static_cast<int>(std::floor(options.compression * channels));
      m_transitions.push_back(
          register_module("trans" + index, Transition<Dim>(channels, reduced, encoderNorm)));
      channels = reduced;
    }
  }
  m_norm5 = register_module("norm5",
                            BatchNorm(torch::nn::BatchNormOptions(channels)
                                          .eps(encoderNorm.eps)
                                          .momentum(encoderNorm.momentum)));
  for (std::size_t i = 0; i < 5; ++i) {
    UpBlockSettings s;
    s.inChannels = channels;
    s.outChannels = options.decoderChannels[i];
    // up0 adds block 3's output, up1 block 2's, up2 block 1's, up3 the stem's (§1.5).
    s.skipChannels = (options.skips && i < 4) ? m_encoderChannels[3 - i] : 0;
    s.depthScale = (Dim == 3 && i < 3) ? 1 : 2;
    s.upsampling = options.upsampling;
    s.init = options.decoderInit;
    s.dropout = i == 4 ? options.decoderDropout : 0.0;
    s.norm = decoderNorm;
    m_up.push_back(register_module("up" + std::to_string(i), UpBlock<Dim>(s)));
    channels = s.outChannels;
  }
  if (!withClassifier) {
    return;
  }
  m_classifier = register_module(
      "classifier", Conv(torch::nn::ConvOptions<Dim>(channels, options.numClasses, 1).bias(true)));
  glorotUniform(m_classifier->weight);
  torch::NoGradGuard noGrad;
  m_classifier->bias.zero_();
}

template <int Dim>
void DenseUNetImpl<Dim>::checkInput(const torch::Tensor& x) const {
  const std::string what = Dim == 2 ? "DenseUNet2d" : "DenseUNet3d";
  if (x.dim() != Dim + 2) {
    throw ModelError(what + ": expected a " + std::to_string(Dim + 2) + "-D input, got " +
                     std::to_string(x.dim()) + "-D");
  }
  if (x.size(1) != m_options.inChannels) {
    throw ModelError(what + ": expected " + std::to_string(m_options.inChannels) +
                     " input channels, got " + std::to_string(x.size(1)));
  }
  if (x.size(-1) % 32 != 0 || x.size(-2) % 32 != 0) {
    throw ModelError(what + ": height and width must be multiples of 32");
  }
  if (Dim == 3 && x.size(2) % 4 != 0) {
    throw ModelError(what + ": depth must be a multiple of 4 (got " + std::to_string(x.size(2)) +
                     ")");
  }
}

template <int Dim>
DenseUNetOutput DenseUNetImpl<Dim>::run(const torch::Tensor& x, StageOutputs* stages) {
  checkInput(x);
  const auto record = [stages](const char* name, const torch::Tensor& t) {
    if (stages != nullptr) {
      stages->emplace_back(name, t);
    }
  };
  // Inference on the CPU runs in channels-last (NHWC / NDHWC) layout: oneDNN's convolutions, 1x1
  // ones in particular, run up to 1.7x faster on it (tests/bench/models_bench). 3D nets do so only
  // where oneDNN is called directly (blocks/onednn_conv.hpp): LibTorch 1.13's own NDHWC path is
  // the slower one. The logits are returned contiguous (NCHW), the features channels-last strided
  // (same values and sizes; consumers needing raw memory call contiguous()).
  const bool channelsLast = (Dim == 2 || detail::directOneDnn()) && x.device().is_cpu() &&
                            !is_training() && !torch::GradMode::is_enabled();
  const auto layout =
      Dim == 2 ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::ChannelsLast3d;
  std::vector<torch::Tensor> skipSources; // stem, block1, block2, block3
  const bool inference = inferenceMode(*this);
  auto y = convBnRelu<Dim>(
      m_conv0, m_norm0, m_fold0, channelsLast ? x.contiguous(layout) : x, inference);
  record("conv1", y);
  skipSources.push_back(y);
  if (auto pooled = detail::directPooling(y,
                                          detail::Pooling::Max,
                                          std::vector<std::int64_t>(Dim, 3),
                                          std::vector<std::int64_t>(Dim, 2),
                                          std::vector<std::int64_t>(Dim, 1));
      pooled.defined()) {
    y = pooled;
  } else if constexpr (Dim == 2) {
    y = torch::max_pool2d(y, {3, 3}, {2, 2}, {1, 1});
  } else {
    y = floatForBf16Cpu(y, [](const torch::Tensor& t) {
      return torch::max_pool3d(t, {3, 3, 3}, {2, 2, 2}, {1, 1, 1});
    });
  }
  record("pool1", y);
  static const char* const kBlockNames[] = {"block1", "block2", "block3", "block4"};
  static const char* const kTransNames[] = {"trans1", "trans2", "trans3"};
  for (std::size_t b = 0; b < 4; ++b) {
    y = m_blocks[b](y);
    if (b < 3) {
      record(kBlockNames[b], y);
      skipSources.push_back(y);
      y = m_transitions[b](y);
      record(kTransNames[b], y);
    }
  }
  y = inference ? bnRelu(y, channelAffine(m_norm5)) : m_norm5(y).relu_();
  record("block4", y);
  static const char* const kUpNames[] = {"up0", "up1", "up2", "up3", "up4"};
  for (std::size_t i = 0; i < 5; ++i) {
    const bool withSkip = m_options.skips && i < 4;
    y = m_up[i]->forward(y, withSkip ? skipSources[3 - i] : torch::Tensor());
    record(kUpNames[i], y);
  }
  DenseUNetOutput out{y, m_classifier ? convolve<Dim>(m_classifier, y) : torch::Tensor()};
  if (channelsLast && out.logits.defined()) {
    out.logits = out.logits.contiguous(); // 3 channels: cheap; features stay channels-last
  }
  if (out.logits.defined()) {
    record("classifier", out.logits);
  }
  return out;
}

template <int Dim>
DenseUNetOutput DenseUNetImpl<Dim>::forward(const torch::Tensor& x) {
  return run(x, nullptr);
}

template <int Dim>
DenseUNetOutput DenseUNetImpl<Dim>::forwardStages(const torch::Tensor& x, StageOutputs& stages) {
  return run(x, &stages);
}

template class DenseUNetImpl<2>;
template class DenseUNetImpl<3>;

} // namespace densa::models
