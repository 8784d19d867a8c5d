// SPDX-License-Identifier: Apache-2.0
#include "adsl_data.hpp"

#include "densa/core/error.hpp"

#include <torch/nn/functional/upsampling.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace densa::app {

namespace {

float sampleHu(const core::Volume<std::int16_t>& ct, std::size_t k, double i, double j) {
  const auto& s = ct.size();
  const double fi = std::floor(i);
  const double fj = std::floor(j);
  const double ti = i - fi;
  const double tj = j - fj;
  double value = 0;
  for (int dj = 0; dj < 2; ++dj) {
    for (int di = 0; di < 2; ++di) {
      const double w = (di ? ti : 1 - ti) * (dj ? tj : 1 - tj);
      if (w == 0) {
        continue;
      }
      const double ii = fi + di;
      const double jj = fj + dj;
      double hu = -1024;
      if (ii >= 0 && jj >= 0 && ii < static_cast<double>(s[0]) && jj < static_cast<double>(s[1])) {
        hu = ct.at(static_cast<std::size_t>(ii), static_cast<std::size_t>(jj), k);
      }
      value += w * hu;
    }
  }
  return static_cast<float>(value);
}

} // namespace

torch::Tensor axialPatch(const core::Volume<std::int16_t>& ct,
                         int k,
                         double ci,
                         double cj,
                         const AdslPatchSpec& spec,
                         double scale) {
  if (k < 0 || static_cast<std::size_t>(k) >= ct.size()[2] || spec.pixels < 1 ||
      spec.patchMm <= 0 || spec.huMax <= spec.huMin) {
    throw core::InvalidArgument("axialPatch: bad slice, patch size or HU window");
  }
  const int p = spec.pixels;
  const double side = spec.patchMm * scale;
  const auto& sp = ct.geometry().spacing;
  torch::Tensor out = torch::empty({1, p, p}, torch::kFloat32);
  float* o = out.data_ptr<float>();
  const double range = spec.huMax - spec.huMin;
  for (int v = 0; v < p; ++v) {
    const double j = cj + ((v + 0.5) / p - 0.5) * side / sp[1];
    for (int u = 0; u < p; ++u) {
      const double i = ci + ((u + 0.5) / p - 0.5) * side / sp[0];
      const double hu = sampleHu(ct, static_cast<std::size_t>(k), i, j);
      o[v * p + u] = static_cast<float>(std::clamp((hu - spec.huMin) / range, 0.0, 1.0));
    }
  }
  return out;
}

std::vector<AdslItem> labelledPatches(const TrainingVolume& v,
                                      int classCount,
                                      const AdslPatchSpec& spec,
                                      int maxPerClass,
                                      double minAreaMm2,
                                      std::uint64_t seed) {
  const auto& s = v.labels.size();
  if (v.ct.size() != s) {
    throw core::InvalidArgument("labelledPatches: CT and labels of '" + v.id + "' differ in size");
  }
  const auto& sp = v.ct.geometry().spacing;
  const double pixelArea = sp[0] * sp[1];
  // voxels[class][slice] = in-plane offsets of that class on that slice
  std::vector<std::vector<std::vector<std::uint32_t>>> voxels(
      static_cast<std::size_t>(classCount), std::vector<std::vector<std::uint32_t>>(s[2]));
  const std::size_t plane = s[0] * s[1];
  for (std::size_t k = 0; k < s[2]; ++k) {
    const std::uint8_t* lab = v.labels.data() + k * plane;
    for (std::size_t o = 0; o < plane; ++o) {
      const int c = static_cast<int>(lab[o]) - 1;
      if (c >= 0 && c < classCount) {
        voxels[static_cast<std::size_t>(c)][k].push_back(static_cast<std::uint32_t>(o));
      }
    }
  }
  constexpr int kMaxPerSlice = 8;
  std::mt19937_64 rng(seed);
  std::vector<AdslItem> items;
  for (int c = 0; c < classCount; ++c) {
    std::vector<std::size_t> slices;
    for (std::size_t k = 0; k < s[2]; ++k) {
      if (static_cast<double>(voxels[static_cast<std::size_t>(c)][k].size()) * pixelArea >=
          minAreaMm2) {
        slices.push_back(k);
      }
    }
    if (slices.empty()) {
      continue;
    }
    const std::size_t n =
        std::min<std::size_t>(static_cast<std::size_t>(std::max(maxPerClass, 0)),
                              slices.size() * static_cast<std::size_t>(kMaxPerSlice));
    for (std::size_t t = 0; t < n; ++t) {
      const std::size_t k = slices[t * slices.size() / n];
      const auto& candidates = voxels[static_cast<std::size_t>(c)][k];
      std::uniform_int_distribution<std::size_t> pick(0, candidates.size() - 1);
      const std::uint32_t o = candidates[pick(rng)];
      AdslItem item;
      item.label = c;
      item.caseId = v.id;
      item.slice = static_cast<int>(k);
      const double ci = static_cast<double>(o % s[0]);
      const double cj = static_cast<double>(o / s[0]);
      item.centreIndex = {ci, cj, static_cast<double>(k)};
      item.centreMm = v.ct.indexToPhysical(item.centreIndex);
      item.image = axialPatch(v.ct, static_cast<int>(k), ci, cj, spec);
      items.push_back(std::move(item));
    }
  }
  return items;
}

std::vector<AdslTile> bodyTiles(const core::Volume<std::int16_t>& ct,
                                const AdslPatchSpec& spec,
                                double sliceStepMm) {
  const auto& s = ct.size();
  const auto& sp = ct.geometry().spacing;
  if (s[2] == 0) {
    return {};
  }
  const auto step = static_cast<std::size_t>(std::max(1.0, std::round(sliceStepMm / sp[2])));
  const std::size_t count = (s[2] - 1) / step + 1;
  const std::size_t first = (s[2] - 1 - (count - 1) * step) / 2;
  const double tileI = spec.patchMm / sp[0];
  const double tileJ = spec.patchMm / sp[1];
  const auto nI = static_cast<int>(std::floor(static_cast<double>(s[0]) / tileI));
  const auto nJ = static_cast<int>(std::floor(static_cast<double>(s[1]) / tileJ));
  const double offI = (static_cast<double>(s[0]) - nI * tileI) / 2;
  const double offJ = (static_cast<double>(s[1]) - nJ * tileJ) / 2;
  std::vector<AdslTile> tiles;
  constexpr int kProbe = 8;
  for (std::size_t k = first; k < s[2]; k += step) {
    for (int tj = 0; tj < nJ; ++tj) {
      for (int ti = 0; ti < nI; ++ti) {
        const double i0 = offI + ti * tileI;
        const double j0 = offJ + tj * tileJ;
        int body = 0;
        for (int b = 0; b < kProbe; ++b) {
          for (int a = 0; a < kProbe; ++a) {
            const auto i = static_cast<std::size_t>(i0 + (a + 0.5) * tileI / kProbe);
            const auto j = static_cast<std::size_t>(j0 + (b + 0.5) * tileJ / kProbe);
            if (i < s[0] && j < s[1] && ct.at(i, j, k) > -500) {
              ++body;
            }
          }
        }
        if (body * 2 < kProbe * kProbe) {
          continue;
        }
        AdslTile tile;
        tile.slice = static_cast<int>(k);
        // centre of the tile in continuous index space (voxel centres at integers)
        tile.centreIndex = {i0 + tileI / 2 - 0.5, j0 + tileJ / 2 - 0.5, static_cast<double>(k)};
        tile.centreMm = ct.indexToPhysical(tile.centreIndex);
        tile.image =
            axialPatch(ct, static_cast<int>(k), tile.centreIndex[0], tile.centreIndex[1], spec);
        tiles.push_back(std::move(tile));
      }
    }
  }
  return tiles;
}

torch::Tensor stackImages(const std::vector<torch::Tensor>& images) {
  if (images.empty()) {
    throw core::InvalidArgument("stackImages: no images");
  }
  return torch::stack(images);
}

torch::Tensor trainTransform(const torch::Tensor& batch, double scaleMin, std::mt19937_64& rng) {
  namespace F = torch::nn::functional;
  const std::int64_t n = batch.size(0);
  const std::int64_t h = batch.size(2);
  const std::int64_t w = batch.size(3);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<torch::Tensor> out;
  out.reserve(static_cast<std::size_t>(n));
  const double logLo = std::log(3.0 / 4.0);
  const double logHi = std::log(4.0 / 3.0);
  for (std::int64_t b = 0; b < n; ++b) {
    std::int64_t ch = h;
    std::int64_t cw = w;
    std::int64_t y0 = 0;
    std::int64_t x0 = 0;
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double area = static_cast<double>(h * w) * (scaleMin + (1 - scaleMin) * unit(rng));
      const double ratio = std::exp(logLo + (logHi - logLo) * unit(rng));
      const auto tw = static_cast<std::int64_t>(std::lround(std::sqrt(area * ratio)));
      const auto th = static_cast<std::int64_t>(std::lround(std::sqrt(area / ratio)));
      if (tw > 0 && th > 0 && tw <= w && th <= h) {
        cw = tw;
        ch = th;
        y0 = static_cast<std::int64_t>(unit(rng) * static_cast<double>(h - th + 1));
        x0 = static_cast<std::int64_t>(unit(rng) * static_cast<double>(w - tw + 1));
        y0 = std::min(y0, h - th);
        x0 = std::min(x0, w - tw);
        break;
      }
    }
    torch::Tensor crop = batch[b].slice(1, y0, y0 + ch).slice(2, x0, x0 + cw).unsqueeze(0);
    crop = F::interpolate(crop,
                          F::InterpolateFuncOptions()
                              .size(std::vector<std::int64_t>{h, w})
                              .mode(torch::kBilinear)
                              .align_corners(false));
    if (unit(rng) < 0.5) {
      crop = crop.flip({3});
    }
    if (unit(rng) < 0.5) {
      crop = crop.flip({2});
    }
    out.push_back(crop.squeeze(0));
  }
  return torch::stack(out);
}

torch::Tensor evalTransform(const torch::Tensor& batch) {
  namespace F = torch::nn::functional;
  const std::int64_t h = batch.size(2);
  const std::int64_t w = batch.size(3);
  const auto ch = static_cast<std::int64_t>(std::lround(static_cast<double>(h) * 224.0 / 256.0));
  const auto cw = static_cast<std::int64_t>(std::lround(static_cast<double>(w) * 224.0 / 256.0));
  const std::int64_t y0 = (h - ch) / 2;
  const std::int64_t x0 = (w - cw) / 2;
  const torch::Tensor crop = batch.slice(2, y0, y0 + ch).slice(3, x0, x0 + cw);
  return F::interpolate(crop,
                        F::InterpolateFuncOptions()
                            .size(std::vector<std::int64_t>{h, w})
                            .mode(torch::kBilinear)
                            .align_corners(false));
}

} // namespace densa::app
