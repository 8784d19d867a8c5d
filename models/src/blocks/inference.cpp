// SPDX-License-Identifier: Apache-2.0
// Built with -O3 and without the precompiled header (models/CMakeLists.txt): the loops below are
// meant to be auto-vectorised.
#include "densa/models/torch/inference.hpp"

#include <ATen/Parallel.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>

namespace densa::models {
namespace {

// Voxels per parallel task: large enough to amortise the task, small enough to split one slice.
constexpr std::int64_t kGrain = 32768;

// Element types: float, or bfloat16 as its 16 bits (computed in float, rounded to nearest even
// as c10::BFloat16 does; NaN stays NaN).
using Bf16Bits = std::uint16_t;

inline float widen(float v) {
  return v;
}

inline float widen(Bf16Bits v) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(v) << 16U);
}

template <class T>
inline T narrow(float v);

template <>
inline float narrow<float>(float v) {
  return v;
}

// In 32-bit lanes to the end (what GCC vectorises).
template <>
inline Bf16Bits narrow<Bf16Bits>(float v) {
  const auto u = std::bit_cast<std::uint32_t>(v);
  const std::uint32_t rounded = (u + 0x7FFFU + ((u >> 16U) & 1U)) >> 16U;
  return static_cast<Bf16Bits>(v != v ? 0x7FC0U : rounded); // NOLINT(misc-redundant-expression)
}

// max(v, 0) with NaN kept, as relu.
inline float relu(float v) {
  return v < 0.0F ? 0.0F : v;
}

// The loops, inlined into a baseline (x86-64: SSE2) and an AVX-512 function each; bfloat16's
// conversions vectorise well only with the wider instructions (measured here: the baseline
// bfloat16 loop was slower than LibTorch's three vectorised operators).
template <class T>
[[gnu::always_inline]] inline void planeLoop(
    const T* __restrict src, T* __restrict dst, float s, float t, std::int64_t count) {
  for (std::int64_t p = 0; p < count; ++p) {
    dst[p] = narrow<T>(relu(widen(src[p]) * s + t));
  }
}

template <class T>
[[gnu::always_inline]] inline void pixelLoop(const T* __restrict in,
                                             T* __restrict out,
                                             const float* __restrict scale,
                                             const float* __restrict shift,
                                             std::int64_t c,
                                             std::int64_t pixelStride,
                                             std::int64_t begin,
                                             std::int64_t end) {
  for (auto q = begin; q < end; ++q) {
    const T* __restrict src = in + q * pixelStride;
    T* __restrict dst = out + q * c;
    for (std::int64_t k = 0; k < c; ++k) {
      dst[k] = narrow<T>(relu(widen(src[k]) * scale[k] + shift[k]));
    }
  }
}

template <class T>
void planeBaseline(const T* src, T* dst, float s, float t, std::int64_t count) {
  planeLoop(src, dst, s, t, count);
}

template <class T>
[[gnu::target("avx512f,avx512bw,avx512vl,avx512dq")]] void planeAvx512(
    const T* src, T* dst, float s, float t, std::int64_t count) {
  planeLoop(src, dst, s, t, count);
}

template <class T>
void pixelsBaseline(const T* in,
                    T* out,
                    const float* scale,
                    const float* shift,
                    std::int64_t c,
                    std::int64_t pixelStride,
                    std::int64_t begin,
                    std::int64_t end) {
  pixelLoop(in, out, scale, shift, c, pixelStride, begin, end);
}

template <class T>
[[gnu::target("avx512f,avx512bw,avx512vl,avx512dq")]] void pixelsAvx512(const T* in,
                                                                        T* out,
                                                                        const float* scale,
                                                                        const float* shift,
                                                                        std::int64_t c,
                                                                        std::int64_t pixelStride,
                                                                        std::int64_t begin,
                                                                        std::int64_t end) {
  pixelLoop(in, out, scale, shift, c, pixelStride, begin, end);
}

bool hasAvx512() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return yes;
}

// out[c][p] = max(0, in[c][p] * s[c] + t[c]) for every channel plane (contiguous spatial planes).
template <class T>
void planar(const torch::Tensor& x,
            torch::Tensor& out,
            const float* scale,
            const float* shift,
            std::int64_t planeSize) {
  const std::int64_t n = x.size(0);
  const std::int64_t c = x.size(1);
  const auto* in = static_cast<const T*>(x.data_ptr());
  auto* o = static_cast<T*>(out.data_ptr());
  const std::int64_t inBatchStride = x.stride(0);
  const auto plane = hasAvx512() ? &planeAvx512<T> : &planeBaseline<T>;
  at::parallel_for(0, n * c, std::max<std::int64_t>(1, kGrain / planeSize), [&](auto b, auto e) {
    for (auto item = b; item < e; ++item) {
      const std::int64_t batch = item / c;
      const std::int64_t channel = item % c;
      plane(in + batch * inBatchStride + channel * planeSize,
            o + item * planeSize,
            scale[channel],
            shift[channel],
            planeSize);
    }
  });
}

// Channels-last: pixel q's channels at in[q * pixelStride + 0..c), written compact.
template <class T>
void interleaved(const torch::Tensor& x,
                 torch::Tensor& out,
                 const float* scale,
                 const float* shift,
                 std::int64_t pixels,
                 std::int64_t pixelStride) {
  const std::int64_t c = x.size(1);
  const auto* in = static_cast<const T*>(x.data_ptr());
  auto* o = static_cast<T*>(out.data_ptr());
  const auto run = hasAvx512() ? &pixelsAvx512<T> : &pixelsBaseline<T>;
  at::parallel_for(0, pixels, std::max<std::int64_t>(1, kGrain / c), [&](auto b, auto e) {
    run(in, o, scale, shift, c, pixelStride, b, e);
  });
}

std::atomic<bool> gFastPaths{true};

} // namespace

void setInferenceFastPaths(bool on) {
  gFastPaths = on;
}

bool inferenceFastPaths() {
  return gFastPaths;
}

bool inferenceMode(const torch::nn::Module& module) {
  return gFastPaths && !module.is_training() && !torch::GradMode::is_enabled();
}

torch::Tensor bnRelu(const torch::Tensor& x, const ChannelAffine& affine) {
  const auto generic = [&] {
    std::vector<std::int64_t> shape(static_cast<std::size_t>(x.dim()), 1);
    shape[1] = x.size(1);
    return (x * affine.scale.to(x.scalar_type()).view(shape) +
            affine.shift.to(x.scalar_type()).view(shape))
        .relu_();
  };
  // Float and bfloat16 (`--precision bf16`: one pass instead of three bfloat16 operators).
  const bool bf16 = x.scalar_type() == torch::kBFloat16;
  if (!x.device().is_cpu() || (x.scalar_type() != torch::kFloat && !bf16) || x.dim() < 3 ||
      x.numel() == 0) {
    return generic();
  }
  const auto scale = affine.scale.to(torch::kFloat).contiguous();
  const auto shift = affine.shift.to(torch::kFloat).contiguous();
  const std::int64_t n = x.size(0);
  const std::int64_t c = x.size(1);
  TORCH_CHECK(scale.numel() == c && shift.numel() == c,
              "bnRelu: ",
              c,
              " channels but ",
              scale.numel(),
              " scales and ",
              shift.numel(),
              " shifts");
  std::int64_t spatial = 1;
  for (std::int64_t d = 2; d < x.dim(); ++d) {
    spatial *= x.size(d);
  }
  // Channel-planar: spatial dimensions row-major and contiguous, channels spatial apart.
  bool planarLayout = x.stride(1) == spatial || c == 1;
  {
    std::int64_t expected = 1;
    for (std::int64_t d = x.dim() - 1; d >= 2; --d) {
      planarLayout = planarLayout && (x.size(d) == 1 || x.stride(d) == expected);
      expected *= x.size(d);
    }
  }
  if (planarLayout) {
    auto out = torch::empty(x.sizes(), x.options().memory_format(torch::MemoryFormat::Contiguous));
    (bf16 ? planar<Bf16Bits>
          : planar<float>)(x, out, scale.data_ptr<float>(), shift.data_ptr<float>(), spatial);
    return out;
  }
  // Channels-last: channels contiguous, pixels row-major `pixelStride` floats apart, batches
  // spatial * pixelStride apart.
  if (x.stride(1) == 1 && (x.dim() == 4 || x.dim() == 5)) {
    const std::int64_t pixelStride = x.stride(x.dim() - 1);
    bool ok = pixelStride >= c;
    std::int64_t expected = pixelStride;
    for (std::int64_t d = x.dim() - 1; d >= 2; --d) {
      ok = ok && (x.size(d) == 1 || x.stride(d) == expected);
      expected *= x.size(d);
    }
    ok = ok && (n == 1 || x.stride(0) == expected);
    if (ok) {
      const auto format =
          x.dim() == 4 ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::ChannelsLast3d;
      auto out = torch::empty(x.sizes(), x.options().memory_format(format));
      (bf16 ? interleaved<Bf16Bits> : interleaved<float>)(x,
                                                          out,
                                                          scale.data_ptr<float>(),
                                                          shift.data_ptr<float>(),
                                                          n * spatial,
                                                          pixelStride);
      return out;
    }
  }
  return generic();
}

std::pair<torch::Tensor, torch::Tensor> FoldedConv::get(
    const std::vector<torch::Tensor>& sources,
    bool channelsLast,
    const std::function<ChannelAffine()>& affine,
    const torch::Tensor& weight,
    const torch::Tensor& bias) {
  // Keyed by data pointer and version counter: an in-place update (optimizer step, checkpoint
  // load) bumps the version, a replaced tensor has another pointer. The storages of the last key
  // are held, so a new tensor can never reuse one of their addresses.
  std::vector<std::pair<const void*, std::int64_t>> key;
  key.reserve(sources.size());
  for (const auto& t : sources) {
    // Inference tensors (c10::InferenceMode) have no version counter, and cannot change.
    key.emplace_back(t.defined() ? t.data_ptr() : nullptr,
                     !t.defined()       ? -1
                     : t.is_inference() ? 0
                                        : t._version());
  }
  const std::lock_guard<std::mutex> lock(m_mutex);
  if (m_weight.defined() && key == m_key && channelsLast == m_channelsLast) {
    return {m_weight, m_bias};
  }
  m_storages.clear();
  for (const auto& t : sources) {
    if (t.defined()) {
      m_storages.push_back(t.storage());
    }
  }
  torch::NoGradGuard noGrad;
  auto w = weight;
  auto b = bias;
  if (affine) {
    const auto a = affine();
    std::vector<std::int64_t> shape(static_cast<std::size_t>(weight.dim()), 1);
    shape[0] = weight.size(0);
    // In float, stored in the weight's dtype (bfloat16 models).
    w = (weight.to(torch::kFloat) * a.scale.view(shape)).to(weight.scalar_type());
    b = (bias.defined() ? bias.to(torch::kFloat) * a.scale + a.shift : a.shift.clone())
            .to(weight.scalar_type());
  }
  if (channelsLast) {
    w = w.contiguous(w.dim() == 4 ? torch::MemoryFormat::ChannelsLast
                                  : torch::MemoryFormat::ChannelsLast3d);
  } else if (affine) {
    w = w.contiguous();
  }
  m_key = std::move(key);
  m_channelsLast = channelsLast;
  m_weight = w;
  m_bias = b;
  return {m_weight, m_bias};
}

} // namespace densa::models
