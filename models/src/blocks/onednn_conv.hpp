// SPDX-License-Identifier: Apache-2.0
#pragma once

// Inference convolutions called on oneDNN directly (models/ private). LibTorch 1.13's
// at::mkldnn_convolution re-lays-out the weights on every call, cannot fuse the following ReLU,
// only runs the direct algorithm, and sends channels-last 3D inputs to a slower path. Called
// directly, oneDNN keeps each weight in the layout its kernel wants (once per weight version),
// fuses the ReLU, runs channels-last 2D and 3D tensors without re-layout, and runs wide 3x3 2D
// convolutions (and, per kernel plane along depth, wide 3x3x3 ones) with its Winograd F(4x4, 3x3)
// kernel. Built only where LibTorch itself links the
// system oneDNN (Debian's libtorch-dev: DENSA_WITH_ONEDNN); elsewhere, and for anything this path
// does not take, callers fall back to LibTorch.

#include <torch/types.h>

#include <cstdint>

namespace densa::models::detail {

/// True when this build calls oneDNN directly and that is switched on: setDirectOneDnn and
/// setInferenceFastPaths (inference.hpp) both on, the default. When false, directConvolution and
/// directPooling return undefined tensors.
[[nodiscard]] bool directOneDnn();

/// Switches the direct oneDNN calls off (LibTorch's own convolutions and poolings) or back on, for
/// the whole process: benchmarks and tests compare both.
void setDirectOneDnn(bool on);

/// conv(x, weight) + bias, then max(0, .) when `relu`, for a float or bfloat16 (weights of the
/// same type, bias float or bfloat16) CPU channels-last x (NHWC or
/// NDHWC strides; channels contiguous) with autograd off, zero padding `padding` on both sides and
/// one group. The result is channels-last. Returns an undefined tensor when this path does not
/// apply (not built, another dtype, device or layout, autograd on, oneDNN offers no optimised
/// kernel): the caller then computes it with LibTorch.
[[nodiscard]] torch::Tensor directConvolution(const torch::Tensor& x,
                                              const torch::Tensor& weight,
                                              const torch::Tensor& bias,
                                              c10::IntArrayRef stride,
                                              c10::IntArrayRef padding,
                                              c10::IntArrayRef dilation,
                                              std::int64_t groups,
                                              bool relu);

/// Max or average pooling (zero padding excluded from averages and maxima, as LibTorch's
/// max_pool and avg_pool with count_include_pad only where no padding is used) of a float or
/// bfloat16 CPU
/// channels-last x, result channels-last; undefined where this path does not apply. LibTorch 1.13's
/// 3D poolings return NCDHW from channels-last input, at a third of the speed.
/// As directConvolution (no dilation, one group), with each spatial dimension padded by
/// `paddingBegin` at its start and `paddingEnd` at its end.
[[nodiscard]] torch::Tensor directConvolutionPadded(const torch::Tensor& x,
                                                    const torch::Tensor& weight,
                                                    const torch::Tensor& bias,
                                                    c10::IntArrayRef stride,
                                                    c10::IntArrayRef paddingBegin,
                                                    c10::IntArrayRef paddingEnd,
                                                    bool relu);

enum class Pooling { Max, Average };
[[nodiscard]] torch::Tensor directPooling(const torch::Tensor& x,
                                          Pooling kind,
                                          c10::IntArrayRef kernel,
                                          c10::IntArrayRef stride,
                                          c10::IntArrayRef padding);

/// Counters since the process started (tests): primitives built, calls served, Winograd ones.
struct DirectConvolutionStats {
  std::int64_t built = 0;
  std::int64_t calls = 0;
  std::int64_t winogradCalls = 0;
  std::int64_t weightBytes = 0;        ///< re-laid-out weights alive, with the sources they pin
  std::int64_t depthWinogradCalls = 0; ///< 3x3x3 layers run as depth-split 2D Winograd
  std::int64_t depthFoldCalls = 0; ///< narrow bf16 3D layers run with depth folded into channels
};

[[nodiscard]] DirectConvolutionStats directConvolutionStats();

/// Switches the Winograd kernels off (on by default) for the whole process; tests compare both.
/// Wide 3x3 2D layers run oneDNN's Winograd F(4x4, 3x3) kernel. Wide 3x3x3 layers on large slices
/// run it per kernel plane along depth: the three planes stacked as output channels of one 2D
/// convolution over the slices, each output slice then summed from its depth neighbours' planes,
/// in bands of rows that keep the stacked planes near setDepthWinogradBandBytes (32 MiB).
void setDirectWinograd(bool on);

/// The stacked-plane bytes per band of the depth-split Winograd path (tests use small bands);
/// primitives built afterwards follow it.
void setDepthWinogradBandBytes(std::int64_t bytes);

} // namespace densa::models::detail
