// SPDX-License-Identifier: Apache-2.0
// H-DenseUNet inference over a CT volume (methods-spec §1.11) and the Volume <-> tensor bridge.
#include "densa/app/hdenseunet_segmenter.hpp"

#include "densa/core/error.hpp"
#include "densa/core/hash.hpp"
#include "densa/core/morphology.hpp"
#include "densa/core/orient.hpp"
#include "densa/core/postprocess.hpp"
#include "densa/core/resample.hpp"
#include "densa/models/error.hpp"
#include "densa/models/model_info.hpp"
#include "densa/models/runtime.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include <torch/nn/functional/padding.h>
#include <torch/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <regex>
#include <tuple>
#include <utility>

namespace densa::app {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Per-slice [C, H, W] tensors stacked along a new depth axis into [1, C, D, H, W]. Channels-last
// slices (the 2D branch's CPU inference features) give a channels-last volume, the layout the
// fusion stage runs in, in one contiguous copy per slice.
torch::Tensor stackDepth(const std::vector<torch::Tensor>& slices) {
  const auto& first = slices.front();
  if (first.dim() == 3 && first.size(0) > 1 && first.stride(0) == 1) {
    auto out = torch::empty(
        {1, first.size(0), static_cast<std::int64_t>(slices.size()), first.size(1), first.size(2)},
        first.options().memory_format(torch::MemoryFormat::ChannelsLast3d));
    for (std::size_t d = 0; d < slices.size(); ++d) {
      out[0].select(1, static_cast<std::int64_t>(d)).copy_(slices[d]);
    }
    return out;
  }
  return torch::stack(slices, 1).unsqueeze(0);
}

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::int64_t roundUp(std::int64_t v, std::int64_t m) {
  return (v + m - 1) / m * m;
}

// An axial CT as a float [Z, Hp, Wp] tensor: HU clipped to the card's window plus its offset,
// padded in-plane with air up to multiples of `multiple`.
torch::Tensor preprocessAxial(const core::Volume<std::int16_t>& axial,
                              const models::PreprocessingContract& pre,
                              std::int64_t multiple) {
  const auto [w, h, z] = axial.size();
  const auto W = static_cast<std::int64_t>(w);
  const auto H = static_cast<std::int64_t>(h);
  const auto volume = torch::from_blob(const_cast<std::int16_t*>(axial.data()),
                                       {static_cast<std::int64_t>(z), H, W},
                                       torch::kInt16)
                          .to(torch::kFloat32)
                          .clamp(pre.huMin, pre.huMax)
                          .add(pre.intensityOffset);
  namespace F = torch::nn::functional;
  return F::pad(volume,
                F::PadFuncOptions({0, roundUp(W, multiple) - W, 0, roundUp(H, multiple) - H})
                    .mode(torch::kConstant)
                    .value(static_cast<float>(pre.huMin + pre.intensityOffset)));
}

// The 2D network's input for each of `slices`: the slice stacked with its context neighbours
// (edge slices duplicated, never zeros), [N, context, H, W].
torch::Tensor contextBatch(const torch::Tensor& volume,
                           const std::vector<std::int64_t>& slices,
                           int context) {
  const std::int64_t z = volume.size(0);
  std::vector<torch::Tensor> inputs;
  for (const auto k : slices) {
    std::vector<torch::Tensor> neighbours;
    for (int o = -context / 2; o <= context / 2; ++o) {
      neighbours.push_back(volume[std::clamp<std::int64_t>(k + o, 0, z - 1)]);
    }
    inputs.push_back(torch::stack(neighbours, 0));
  }
  return torch::stack(inputs, 0);
}

// The coarse liver net on every slice of a preprocessed [Z, H, W] volume (H, W multiples of
// 32 x its downsampling), [Z, H, W] bool.
torch::Tensor coarseLiverSlices(models::CoarseLiverNet& net,
                                const torch::Tensor& volume,
                                const torch::Device& device) {
  const std::int64_t z = volume.size(0);
  const int context = static_cast<int>(net->options().net.inChannels);
  const auto stacked =
      models::slicesToBatch(volume.unsqueeze(0).unsqueeze(0), context); // [Z, ctx, H, W]
  std::vector<torch::Tensor> masks;
  constexpr std::int64_t kBatch = 4;
  for (std::int64_t s = 0; s < z; s += kBatch) {
    const auto logits = net->forward(stacked.slice(0, s, std::min(z, s + kBatch)).to(device));
    masks.push_back(logits.argmax(1).eq(1).to(torch::kCPU));
  }
  return torch::cat(masks, 0);
}

// The pixel spacing (mm) of a card's "in-plane X mm" spacing policy; 0 for "native".
double inPlanePolicyMm(const models::PreprocessingContract& pre, const fs::path& file) {
  if (pre.spacingPolicy == "native") {
    return 0.0;
  }
  static const std::regex kPolicy(R"(^in-plane ([0-9]*\.?[0-9]+) mm$)");
  std::smatch m;
  if (!std::regex_match(pre.spacingPolicy, m, kPolicy) || std::stod(m[1].str()) <= 0) {
    throw models::ModelError(file.string() + ": spacing policy '" + pre.spacingPolicy +
                             "' is not 'native' or 'in-plane X mm'");
  }
  return std::stod(m[1].str());
}

// The axial grid resampled in-plane to `mm` pixels over the same extent (voxel centres from the
// same origin; the slices are kept).
core::Grid inPlaneGrid(const core::Grid& axial, double mm) {
  core::Grid g = axial;
  for (int a = 0; a < 2; ++a) {
    const double extent = static_cast<double>(axial.size[a] - 1) * axial.geometry.spacing[a];
    g.size[a] = static_cast<std::size_t>(std::floor(extent / mm + 1e-6)) + 1;
    g.geometry.spacing[a] = mm;
  }
  return g;
}

// Per-slice accumulated class probabilities (liver, tumour) and the number of windows that hit it.
struct SliceAccumulator {
  torch::Tensor liver;
  torch::Tensor tumour;
  int hits = 0;
};

class HDenseUNetSegmenter final : public Segmenter {
public:
  HDenseUNetSegmenter(const fs::path& file, const SegmenterOptions& options)
      : m_device(models::resolveDevice(options.device))
      , m_model(models::loadCheckpoint(file, m_device)) {
    if (!std::holds_alternative<models::HDenseUNet>(m_model.net)) {
      throw models::ModelError(file.string() + ": is a '" +
                               std::string(models::architectureId(m_model.card.options)) +
                               "' checkpoint; densa segment needs an 'hdenseunet' model");
    }
    fs::path coarse =
        options.coarseModel.value_or(file.parent_path() / (file.stem().string() + ".coarse.densa"));
    if (options.coarseModel || fs::exists(coarse)) {
      m_coarse.emplace(models::loadCheckpoint(coarse, m_device));
      if (!std::holds_alternative<models::CoarseLiverNet>(m_coarse->net)) {
        throw models::ModelError(coarse.string() + ": is not a 'coarse-liver' checkpoint");
      }
      m_coarseFile = coarse;
    }
    // auto: bfloat16 where the CPU computes it natively (its masks agree with float: liver Dice
    // 0.9996 on the real CT of ../shared/data, tests/app DefaultModel.Bf16AgreesWithFloat).
    const std::string precision = options.precision != "auto"             ? options.precision
                                  : m_device.is_cpu() && cpuHasFastBf16() ? "bf16"
                                                                          : "fp32";
    if (precision == "bf16") {
      if (m_device.is_cpu() && !cpuHasFastBf16()) {
        throw core::InputError("--precision bf16: this CPU has neither AMX nor AVX512-BF16, so "
                               "bfloat16 would run slower than float; use --precision fp32");
      }
      m_dtype = torch::kBFloat16;
      auto& net = std::get<models::HDenseUNet>(m_model.net);
      net->to(m_dtype);
      // BatchNorm parameters and statistics stay float: inference folds them in float, and a
      // bfloat16 running mean would lose the folded shift (beta - mean * scale) to cancellation.
      for (const auto& module : net->modules(/*include_self=*/false)) {
        if (auto* bn2 = module->as<torch::nn::BatchNorm2d>()) {
          bn2->to(torch::kFloat);
        } else if (auto* bn3 = module->as<torch::nn::BatchNorm3d>()) {
          bn3->to(torch::kFloat);
        }
      }
    } else if (precision != "fp32") {
      throw core::InputError("--precision " + options.precision +
                             ": unknown precision (auto, fp32 or bf16)");
    }
    m_reuse2d = options.reuse2d;
    m_roi = options.roi;
    m_inPlaneMm = options.inPlaneMm.value_or(inPlanePolicyMm(m_model.card.preprocessing, file));
    m_minLesionMl = options.minLesionMl;
    m_twoDOnly = options.twoDOnly || m_model.card.provenance.trainingStage == "2d";
    m_thresholds.liver =
        options.liverThreshold.value_or(static_cast<float>(m_model.card.thresholds.liver));
    m_thresholds.tumour =
        options.tumourThreshold.value_or(static_cast<float>(m_model.card.thresholds.tumour));
    const std::string card = models::toJson(m_model.card);
    m_identity.architecture = std::string(models::architectureId(m_model.card.options));
    m_identity.preset = m_model.card.preset;
    m_identity.file = fs::absolute(file).string();
    m_identity.trainingStage = m_model.card.provenance.trainingStage;
    m_identity.precision = precision;
    m_identity.id = m_identity.architecture + "-" + m_identity.preset + "@" +
                    core::stableHashHex(card + std::to_string(fs::file_size(file)), 12);
    const auto depth = m_model.card.preprocessing.windowDepth;
    if (depth < 4 || depth % 4 != 0) {
      throw models::ModelError(file.string() + ": window depth " + std::to_string(depth) +
                               " is not a positive multiple of 4");
    }
  }

  [[nodiscard]] ModelIdentity identity() const override { return m_identity; }

  [[nodiscard]] SegmentationResult segment(
      const core::Volume<std::int16_t>& ct,
      const std::function<void(double)>& progress) const override;

private:
  torch::Tensor coarseMask(const torch::Tensor& volume) const;
  /// Also returns how many slices the 2D branch ran on.
  std::pair<torch::Tensor, std::int64_t> liverMask2d(
      const torch::Tensor& volume,
      std::int64_t step,
      const std::function<void(double)>& progress) const;

  torch::Device m_device;
  torch::ScalarType m_dtype = torch::kFloat; ///< the network's inputs and weights
  mutable models::LoadedModel m_model;       // modules run forward() in a const segment()
  mutable std::optional<models::LoadedModel> m_coarse;
  fs::path m_coarseFile;
  core::LiverTumourThresholds m_thresholds;
  bool m_twoDOnly = false;
  bool m_reuse2d = true;
  RoiMode m_roi = RoiMode::Full;
  double m_inPlaneMm = 0.0; ///< 0: native spacing
  double m_minLesionMl = 0;
  ModelIdentity m_identity;
};

// Stage 0: the coarse liver mask of every slice, [Z, H, W] bool.
torch::Tensor HDenseUNetSegmenter::coarseMask(const torch::Tensor& volume) const {
  return coarseLiverSlices(std::get<models::CoarseLiverNet>(m_coarse->net), volume, m_device);
}

// The 2D branch's liver prediction (liver or tumour more probable than background), [Z, H, W]
// bool: the coarse mask of RoiMode::LiverBox when there is no stage-0 model. Only every
// `step`-th slice (and the last) is run; each one's mask also covers the step - 1 slices on
// either side (a conservative z-extent and the same in-plane box at a fraction of the cost).
std::pair<torch::Tensor, std::int64_t> HDenseUNetSegmenter::liverMask2d(
    const torch::Tensor& volume,
    std::int64_t step,
    const std::function<void(double)>& progress) const {
  auto& net = std::get<models::HDenseUNet>(m_model.net);
  const std::int64_t z = volume.size(0);
  const int context = net->options().sliceContext;
  std::vector<std::int64_t> sampled;
  for (std::int64_t k = 0; k < z; k += step) {
    sampled.push_back(k);
  }
  if (sampled.back() != z - 1) {
    sampled.push_back(z - 1);
  }
  auto mask = torch::zeros({z, volume.size(1), volume.size(2)}, torch::kBool);
  constexpr std::size_t kBatch = 4;
  for (std::size_t b0 = 0; b0 < sampled.size(); b0 += kBatch) {
    const std::size_t b1 = std::min(sampled.size(), b0 + kBatch);
    const std::vector<std::int64_t> batch(sampled.begin() + static_cast<std::ptrdiff_t>(b0),
                                          sampled.begin() + static_cast<std::ptrdiff_t>(b1));
    const auto liver =
        torch::softmax(net->forward2d(contextBatch(volume, batch, context).to(m_device, m_dtype))
                           .logits.to(torch::kFloat),
                       1)
            .select(1, 0)
            .lt(0.5)
            .to(torch::kCPU);
    for (std::size_t b = b0; b < b1; ++b) {
      const std::int64_t k = sampled[b];
      const auto covered =
          mask.slice(0, std::max<std::int64_t>(0, k - step + 1), std::min(z, k + step));
      covered.logical_or_(liver[static_cast<std::int64_t>(b - b0)].unsqueeze(0));
    }
    if (progress) {
      progress(static_cast<double>(b1) / static_cast<double>(sampled.size()));
    }
  }
  return {mask, static_cast<std::int64_t>(sampled.size())};
}

SegmentationResult HDenseUNetSegmenter::segment(const core::Volume<std::int16_t>& ct,
                                                const std::function<void(double)>& progress) const {
  torch::NoGradGuard noGrad;
  SegmentationResult result;
  auto t = Clock::now();
  const auto& pre = m_model.card.preprocessing;
  auto& net = std::get<models::HDenseUNet>(m_model.net);

  // Canonical axial grid (exact re-indexing), resampled in-plane if the spacing policy says so,
  // then HU clip and offset.
  const core::AxisPermutation perm = core::permutationToAxial(ct.geometry().direction);
  const core::Volume<std::int16_t> native = core::permuteAxes(ct, perm);
  const auto& nativeSpacing = native.geometry().spacing;
  const bool resampled =
      m_inPlaneMm > 0 && (std::max(nativeSpacing[0], nativeSpacing[1]) > 1.25 * m_inPlaneMm ||
                          std::min(nativeSpacing[0], nativeSpacing[1]) < m_inPlaneMm / 1.25);
  const core::Volume<std::int16_t> axial =
      resampled ? core::resampleOnto(native,
                                     inPlaneGrid(core::gridOf(native), m_inPlaneMm),
                                     core::Interpolation::Linear,
                                     std::int16_t{-1024})
                : native;
  const auto [w, h, z] = axial.size();
  const auto W = static_cast<std::int64_t>(w);
  const auto H = static_cast<std::int64_t>(h);
  const auto Z = static_cast<std::int64_t>(z);
  const std::int64_t depth = pre.windowDepth;
  const std::int64_t stride = std::max(1, pre.windowStride);
  std::int64_t multiple = 32;
  if (m_coarse) {
    multiple *= std::get<models::CoarseLiverNet>(m_coarse->net)->options().downsample;
  }
  const std::int64_t Hp = roundUp(H, multiple);
  const std::int64_t Wp = roundUp(W, multiple);
  auto volume = preprocessAxial(axial, pre, multiple);
  if (Z < depth) {
    // Shorter than one window: repeat the last slice (edge duplication, never zeros).
    volume = torch::cat({volume, volume.slice(0, Z - 1, Z).expand({depth - Z, Hp, Wp})}, 0);
  }
  const std::int64_t Zp = volume.size(0);
  result.seconds["preprocess"] = since(t);

  // Stage 0: coarse liver ROI along z.
  t = Clock::now();
  std::int64_t zmin = 0;
  std::int64_t zmax = Zp - 1;
  torch::Tensor coarse;  // the stage-0 model's mask: z-range, box and tumour gate
  torch::Tensor roiMask; // the mask that sets the z-range (and the box in LiverBox mode)
  const bool liverBox = m_roi == RoiMode::LiverBox && !m_twoDOnly;
  // Progress: the 2D pass of LiverBox mode takes the first quarter, the windows the rest.
  const double windowsFrom = liverBox && !m_coarse ? 0.25 : 0.0;
  if (m_coarse) {
    coarse = coarseMask(volume);
    roiMask = coarse;
  } else if (liverBox) {
    // Sampled slices at most 6 mm apart: the liver spans centimetres in z.
    const auto step = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(std::floor(6.0 / axial.geometry().spacing[2])));
    std::int64_t sampled = 0;
    std::tie(roiMask, sampled) = liverMask2d(volume, step, [&](double f) {
      if (progress) {
        progress(f * windowsFrom);
      }
    });
    result.gflop["coarse"] = static_cast<double>(sampled) * 2.0 *
                             models::hDenseUNetCost(net->options(), depth, Hp, Wp).net2d.macs /
                             static_cast<double>(depth) / 1e9;
  }
  // In-plane working box: the whole padded slice, or the ROI box (LiverBox mode).
  std::int64_t y0 = 0;
  std::int64_t x0 = 0;
  std::int64_t Hw = Hp;
  std::int64_t Ww = Wp;
  if (roiMask.defined()) {
    const auto any = roiMask.flatten(1).any(1).nonzero();
    if (any.numel() > 0) {
      zmin = any.min().item<std::int64_t>();
      zmax = any.max().item<std::int64_t>();
      if (liverBox) {
        const auto rows = roiMask.any(0).any(1).nonzero();
        const auto cols = roiMask.any(0).any(0).nonzero();
        const auto& spacing = axial.geometry().spacing;
        constexpr double kMarginMm = 15.0;
        const auto my = static_cast<std::int64_t>(std::ceil(kMarginMm / spacing[1]));
        const auto mx = static_cast<std::int64_t>(std::ceil(kMarginMm / spacing[0]));
        // Rounded out to multiples of 32 (the network's input constraint) inside the slice.
        const auto box = [](std::int64_t lo, std::int64_t hi, std::int64_t size) {
          lo = std::max<std::int64_t>(0, lo) / 32 * 32;
          hi = std::min(size, roundUp(std::min(hi, size), 32));
          return std::pair{lo, hi};
        };
        const auto [ylo, yhi] =
            box(rows.min().item<std::int64_t>() - my, rows.max().item<std::int64_t>() + 1 + my, Hp);
        const auto [xlo, xhi] =
            box(cols.min().item<std::int64_t>() - mx, cols.max().item<std::int64_t>() + 1 + mx, Wp);
        y0 = ylo;
        x0 = xlo;
        Hw = yhi - ylo;
        Ww = xhi - xlo;
      }
    }
  }
  const auto work =
      (Hw == Hp && Ww == Wp) ? volume : volume.slice(1, y0, y0 + Hw).slice(2, x0, x0 + Ww);
  result.roiBox = {x0, std::min(W, x0 + Ww), y0, std::min(H, y0 + Hw)};
  result.seconds["coarse"] = since(t);

  // Windows of `depth` slices, stride depth/4, inner slices kept (§1.11 step 3-4).
  t = Clock::now();
  const std::int64_t last = std::max<std::int64_t>(0, std::min(Zp, zmax + 10) - depth);
  const std::int64_t first = std::max<std::int64_t>(0, std::min(zmin - 5, last));
  std::vector<std::int64_t> starts;
  for (std::int64_t s = first; s <= last && !m_twoDOnly; s += stride) {
    starts.push_back(s);
  }
  if (!m_twoDOnly && (starts.empty() || starts.back() != last)) {
    starts.push_back(last);
  }
  const int context = net->options().sliceContext;
  std::map<std::int64_t, std::pair<torch::Tensor, torch::Tensor>>
      cache2d; // slice -> (features, logits)
  std::map<std::int64_t, SliceAccumulator> accumulators;
  std::int64_t slices2d = 0;     // 2D branch slices on the working box
  std::int64_t slices2dFull = 0; // 2D-only inference on full slices
  std::int64_t windowsRun = 0;
  std::vector<std::uint8_t> liverMask(static_cast<std::size_t>(Zp * Hp * Wp), 0);
  std::vector<std::uint8_t> tumourMask(liverMask.size(), 0);
  auto finalize = [&](std::int64_t slice) {
    auto it = accumulators.find(slice);
    if (it == accumulators.end()) {
      return;
    }
    const auto liver = (it->second.liver / (it->second.hits + 1e-4))
                           .ge(m_thresholds.liver)
                           .to(torch::kUInt8)
                           .contiguous();
    const auto tumour = (it->second.tumour / (it->second.hits + 1e-4))
                            .ge(m_thresholds.tumour)
                            .to(torch::kUInt8)
                            .contiguous();
    // The working box's rows into the full padded slice (outside the box: background).
    const auto rows = liver.size(0);
    const auto cols = liver.size(1);
    for (std::int64_t j = 0; j < rows; ++j) {
      const auto dst = static_cast<std::size_t>((slice * Hp + y0 + j) * Wp + x0);
      std::memcpy(liverMask.data() + dst,
                  liver.data_ptr<std::uint8_t>() + j * cols,
                  static_cast<std::size_t>(cols));
      std::memcpy(tumourMask.data() + dst,
                  tumour.data_ptr<std::uint8_t>() + j * cols,
                  static_cast<std::size_t>(cols));
    }
    accumulators.erase(it);
  };
  if (m_twoDOnly) {
    // 2D-only inference: softmax of the 2D branch's logits, slice by slice (stride 1, §1.11 pt 9).
    const std::int64_t lo = std::max<std::int64_t>(0, zmin - 5);
    const std::int64_t hi = std::min(Zp, zmax + 11);
    constexpr std::int64_t kBatch = 4;
    for (std::int64_t k0 = lo; k0 < hi; k0 += kBatch) {
      const std::int64_t k1 = std::min(hi, k0 + kBatch);
      std::vector<std::int64_t> batch;
      for (std::int64_t k = k0; k < k1; ++k) {
        batch.push_back(k);
      }
      slices2dFull += k1 - k0;
      const auto probs =
          torch::softmax(
              net->forward2d(
                     contextBatch(volume, batch, net->options().sliceContext).to(m_device, m_dtype))
                  .logits.to(torch::kFloat),
              1)
              .to(torch::kCPU);
      for (std::int64_t k = k0; k < k1; ++k) {
        auto& acc = accumulators[k];
        acc.liver = probs[k - k0][1].clone();
        acc.tumour = probs[k - k0][2].clone();
        acc.hits = 1;
        finalize(k);
      }
      if (progress) {
        progress(static_cast<double>(k1 - lo) /
                 static_cast<double>(std::max<std::int64_t>(1, hi - lo)));
      }
    }
  }
  for (std::size_t wi = 0; wi < starts.size(); ++wi) {
    const std::int64_t s = starts[wi];
    // Slices before this window's first inner slice are final; their 2D outputs are not needed
    // again.
    while (!accumulators.empty() && accumulators.begin()->first < s) {
      finalize(accumulators.begin()->first);
    }
    while (!cache2d.empty() && cache2d.begin()->first < s) {
      cache2d.erase(cache2d.begin());
    }
    if (!m_reuse2d) {
      cache2d.clear(); // the reference's per-window recomputation
    }
    // 2D branch once per slice: the slices of this window not computed by an earlier window,
    // plus (when reusing) those of the next windows up to a batch of 4 slices (throughput).
    std::vector<std::int64_t> missing;
    const std::int64_t lastNeeded = starts.back() + depth;
    for (std::int64_t k = s; k < lastNeeded; ++k) {
      const bool inWindow = k < s + depth;
      if (!inWindow && (!m_reuse2d || missing.empty() || missing.size() >= 4)) {
        break;
      }
      if (!cache2d.contains(k)) {
        missing.push_back(k);
      }
    }
    if (!missing.empty()) {
      const auto out2d = net->forward2d(contextBatch(work, missing, context).to(m_device, m_dtype));
      slices2d += static_cast<std::int64_t>(missing.size());
      for (std::size_t i = 0; i < missing.size(); ++i) {
        cache2d[missing[i]] = {out2d.features[static_cast<std::int64_t>(i)],
                               out2d.logits[static_cast<std::int64_t>(i)]};
      }
    }
    std::vector<torch::Tensor> features;
    std::vector<torch::Tensor> logits;
    for (std::int64_t k = s; k < s + depth; ++k) {
      features.push_back(cache2d.at(k).first);
      logits.push_back(cache2d.at(k).second);
    }
    const auto window = work.slice(0, s, s + depth).unsqueeze(0).unsqueeze(0).to(m_device, m_dtype);
    ++windowsRun;
    const auto fused = net->fuse(window, stackDepth(features), stackDepth(logits));
    const auto probs = torch::softmax(fused.to(torch::kFloat), 1).to(torch::kCPU)[0]; // [C,D,H,W]
    for (std::int64_t d = 0; d < depth; ++d) {
      const bool inner = d > 0 && d < depth - 1;
      const bool volumeEdge = (d == 0 && s == 0) || (d == depth - 1 && s + depth == Zp);
      if (!inner && !volumeEdge) {
        continue;
      }
      auto& acc = accumulators[s + d];
      if (acc.hits == 0) {
        acc.liver = probs[1][d].clone();
        acc.tumour = probs[2][d].clone();
      } else {
        acc.liver += probs[1][d];
        acc.tumour += probs[2][d];
      }
      ++acc.hits;
    }
    if (progress) {
      progress(windowsFrom + (1.0 - windowsFrom) * static_cast<double>(wi + 1) /
                                 static_cast<double>(starts.size()));
    }
  }
  while (!accumulators.empty()) {
    finalize(accumulators.begin()->first);
  }
  result.seconds["network"] = since(t);
  {
    const auto cost = models::hDenseUNetCost(net->options(), depth, Hw, Ww);
    const auto full = models::hDenseUNetCost(net->options(), depth, Hp, Wp);
    result.gflop["network"] =
        2.0 / 1e9 *
        (static_cast<double>(slices2d) * cost.net2d.macs / static_cast<double>(depth) +
         static_cast<double>(slices2dFull) * full.net2d.macs / static_cast<double>(depth) +
         static_cast<double>(windowsRun) * (cost.net3d.macs + cost.fusion.macs));
  }

  // Post-processing on the original (unpadded) axial grid, then back to the input grid.
  t = Clock::now();
  core::LabelMap liver(axial.size(), axial.geometry(), 0);
  core::LabelMap tumour(axial.size(), axial.geometry(), 0);
  core::LabelMap gate(axial.size(), axial.geometry(), 0);
  const auto coarseAccessor =
      coarse.defined() ? coarse.to(torch::kUInt8).contiguous() : torch::Tensor();
  for (std::int64_t k = 0; k < Z; ++k) {
    for (std::int64_t j = 0; j < H; ++j) {
      const std::size_t src = static_cast<std::size_t>((k * Hp + j) * Wp);
      const std::size_t dst = static_cast<std::size_t>((k * H + j) * W);
      std::memcpy(liver.data() + dst, liverMask.data() + src, static_cast<std::size_t>(W));
      std::memcpy(tumour.data() + dst, tumourMask.data() + src, static_cast<std::size_t>(W));
      if (coarseAccessor.defined()) {
        std::memcpy(gate.data() + dst,
                    coarseAccessor.data_ptr<std::uint8_t>() + src,
                    static_cast<std::size_t>(W));
      }
    }
  }
  if (!coarseAccessor.defined()) {
    gate = liver; // no stage-0 model: the liver prediction gates the tumours
  } else {
    gate = core::dilate(gate, 1); // §1.11 step 2: the coarse mask dilated once
  }
  core::LabelMap labelsAxial = core::postprocessLiverTumourMasks(liver, tumour, gate);
  core::removeSmallLesions(labelsAxial, m_minLesionMl);
  if (resampled) {
    labelsAxial = core::resampleOnto(
        labelsAxial, core::gridOf(native), core::Interpolation::Nearest, std::uint8_t{0});
  }
  result.labels = core::permuteAxes(labelsAxial, core::inverse(perm));
  result.labels.setGeometry(ct.geometry()); // identical up to rounding; keep the input's exactly
  result.seconds["postprocess"] = since(t);
  return result;
}

} // namespace

bool cpuHasFastBf16() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) {
      line += ' ';
      return line.find(" amx_bf16 ") != std::string::npos ||
             line.find(" avx512_bf16 ") != std::string::npos;
    }
  }
  return false;
}

fs::path defaultModelPath() {
  if (const char* env = std::getenv("DENSA_MODEL"); env != nullptr && *env != '\0') {
    if (!fs::exists(env)) {
      throw core::InputError(env, "DENSA_MODEL points to a missing file");
    }
    return env;
  }
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / ".." / "share" / "densa" / "models" / "default.densa");
  }
  candidates.emplace_back(DENSA_SOURCE_DIR "/data/models/default.densa");
  for (const auto& c : candidates) {
    if (fs::exists(c)) {
      return fs::weakly_canonical(c);
    }
  }
  throw core::InputError(
      "no default model found (looked for data/models/default.densa); pass --model FILE or "
      "set DENSA_MODEL");
}

std::unique_ptr<Segmenter> loadHDenseUNetSegmenter(const fs::path& model,
                                                   const SegmenterOptions& options) {
  return std::make_unique<HDenseUNetSegmenter>(model, options);
}

core::LabelMap segmentCoarseLiver(const fs::path& coarseModel,
                                  const core::Volume<std::int16_t>& ct,
                                  const std::string& device) {
  torch::NoGradGuard noGrad;
  const torch::Device dev = models::resolveDevice(device);
  auto model = models::loadCheckpoint(coarseModel, dev);
  auto* net = std::get_if<models::CoarseLiverNet>(&model.net);
  if (net == nullptr) {
    throw models::ModelError(coarseModel.string() + ": is not a 'coarse-liver' checkpoint");
  }
  const auto& pre = model.card.preprocessing;
  const core::AxisPermutation perm = core::permutationToAxial(ct.geometry().direction);
  const core::Volume<std::int16_t> axial = core::permuteAxes(ct, perm);
  const auto W = static_cast<std::int64_t>(axial.size()[0]);
  const auto H = static_cast<std::int64_t>(axial.size()[1]);
  const auto volume = preprocessAxial(axial, pre, 32 * (*net)->options().downsample);
  const auto mask = coarseLiverSlices(*net, volume, dev)
                        .slice(1, 0, H)
                        .slice(2, 0, W)
                        .to(torch::kUInt8)
                        .contiguous();
  core::LabelMap labels(axial.size(), axial.geometry(), 0);
  std::memcpy(labels.data(), mask.data_ptr<std::uint8_t>(), labels.voxelCount());
  core::LabelMap out = core::permuteAxes(labels, core::inverse(perm));
  out.setGeometry(ct.geometry());
  return out;
}

} // namespace densa::app
