// SPDX-License-Identifier: Apache-2.0
#include "pretrain_data.hpp"

#include "densa/app/case_io.hpp"
#include "densa/app/cases.hpp"
#include "densa/app/datasets.hpp"
#include "densa/core/error.hpp"
#include "densa/core/orient.hpp"
#include "densa/models/error.hpp"
#include "densa/models/torch/gemini_ops.hpp"

#include <cmath>
#include <ostream>
#include <regex>

namespace densa::app {

namespace fs = std::filesystem;

double cardSpacing(const models::ModelCard& card, const fs::path& file) {
  static const std::regex kSpacing(R"(isotropic ([0-9.]+) mm)");
  std::smatch m;
  if (!std::regex_search(card.preprocessing.spacingPolicy, m, kSpacing)) {
    throw models::ModelError(file.string() + ": the model card's spacing policy '" +
                             card.preprocessing.spacingPolicy +
                             "' names no isotropic spacing (expected 'isotropic N mm; ...', as "
                             "densa pretrain gemini writes)");
  }
  return std::stod(m[1].str());
}

core::Grid isotropicGrid(const core::Grid& grid, double spacingMm) {
  core::Grid out = grid;
  for (std::size_t a = 0; a < 3; ++a) {
    const double extent = static_cast<double>(grid.size[a] - 1) * grid.geometry.spacing[a];
    out.size[a] = static_cast<std::size_t>(std::floor(extent / spacingMm + 1e-6)) + 1;
    out.geometry.spacing[a] = spacingMm;
  }
  return out;
}

core::Volume<float> toIsotropicAxial(const core::Volume<std::int16_t>& ct, double spacingMm) {
  const core::AxisPermutation p = core::permutationToAxial(ct.geometry().direction);
  core::Volume<float> axial = core::toFloat(core::AnyVolume(core::permuteAxes(ct, p)));
  return core::resampleOnto(
      axial, isotropicGrid(core::gridOf(axial), spacingMm), core::Interpolation::Linear, -1024.0F);
}

torch::Tensor toTensor(const core::Volume<float>& volume) {
  const auto& s = volume.size();
  return torch::from_blob(const_cast<float*>(volume.data()),
                          {1,
                           1,
                           static_cast<std::int64_t>(s[2]),
                           static_cast<std::int64_t>(s[1]),
                           static_cast<std::int64_t>(s[0])},
                          torch::kFloat32)
      .clone();
}

torch::Tensor scaleWindow(const torch::Tensor& hu, double huMin, double huMax) {
  return ((hu - huMin) / (huMax - huMin)).clamp(0, 1);
}

core::Volume<float> fromTensor(const torch::Tensor& t, const core::Grid& grid) {
  const auto c = t.detach().to(torch::kCPU).to(torch::kFloat32).contiguous();
  if (static_cast<std::size_t>(c.numel()) != grid.size[0] * grid.size[1] * grid.size[2]) {
    throw core::InternalError("tensor size does not match its grid");
  }
  std::vector<float> voxels(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return {grid.size, grid.geometry, std::move(voxels)};
}

std::vector<PretrainVolume> loadPretrainVolumes(const std::vector<fs::path>& datasets,
                                                const PretrainPreprocessing& pre,
                                                std::ostream& err) {
  std::vector<CaseInput> inputs;
  for (const auto& path : datasets) {
    bool layout = false;
    if (fs::is_directory(path)) {
      try {
        const Dataset d = readDataset(path); // LiTS, Decathlon, phantoms: their images
        for (const auto& lc : d.cases) {
          const CaseList images = discoverCases(lc.image);
          for (const auto& c : images.cases) {
            CaseInput ci = c;
            ci.id = lc.id;
            inputs.push_back(ci);
          }
        }
        layout = true;
      } catch (const core::Error&) {
        layout = false; // not a labelled layout: any CT under the tree
      }
    }
    if (!layout) {
      const CaseList list = discoverCases(path);
      inputs.insert(inputs.end(), list.cases.begin(), list.cases.end());
    }
  }
  std::vector<PretrainVolume> out;
  for (const auto& input : inputs) {
    try {
      const LoadedCase loaded = loadCase(input);
      const core::Volume<float> iso = toIsotropicAxial(loaded.ct, pre.spacingMm);
      out.push_back({input.id, scaleWindow(toTensor(iso), pre.huMin, pre.huMax)});
    } catch (const std::exception& e) {
      err << "densa: skipping " << input.path.string() << ": " << e.what() << "\n";
    }
  }
  return out;
}

IsoLabelledVolume toIsoLabelled(const TrainingVolume& v,
                                double spacingMm,
                                double huMin,
                                double huMax) {
  const core::Grid grid = isotropicGrid(core::gridOf(v.ct), spacingMm);
  const auto ct = core::resampleOnto(
      core::toFloat(core::AnyVolume(v.ct)), grid, core::Interpolation::Linear, -1024.0F);
  const auto labels =
      core::resampleOnto(v.labels, grid, core::Interpolation::Nearest, std::uint8_t{0});
  IsoLabelledVolume out;
  out.id = v.id;
  out.image = scaleWindow(toTensor(ct), huMin, huMax);
  out.labels = toTensor(core::toFloat(core::AnyVolume(labels)));
  for (std::size_t i = 0; i < labels.voxelCount(); ++i) {
    if (labels.voxels()[i] >= 1) {
      out.liver.push_back(static_cast<std::int64_t>(i));
    }
    if (labels.voxels()[i] == 2) {
      out.tumour.push_back(static_cast<std::int64_t>(i));
    }
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> labelledCrop(const IsoLabelledVolume& v,
                                                     int size,
                                                     double tumourFraction,
                                                     std::mt19937_64& rng) {
  const std::int64_t s = size;
  const auto d = v.image.size(2);
  const auto h = v.image.size(3);
  const auto w = v.image.size(4);
  auto pick = [&](const std::vector<std::int64_t>& list) {
    return list[static_cast<std::size_t>(models::uniform01(rng) *
                                         static_cast<double>(list.size())) %
                list.size()];
  };
  std::int64_t centre = 0;
  if (!v.tumour.empty() && models::uniform01(rng) < tumourFraction) {
    centre = pick(v.tumour);
  } else if (!v.liver.empty()) {
    centre = pick(v.liver);
  } else {
    centre = static_cast<std::int64_t>(models::uniform01(rng) * static_cast<double>(d * h * w));
  }
  const std::array<std::int64_t, 3> p{centre / (h * w), (centre / w) % h, centre % w};
  const std::array<std::int64_t, 3> n{d, h, w};
  torch::Tensor image = torch::zeros({1, 1, s, s, s});
  torch::Tensor label = torch::zeros({1, 1, s, s, s});
  std::array<std::int64_t, 3> src{};
  std::array<std::int64_t, 3> dst{};
  std::array<std::int64_t, 3> len{};
  for (std::size_t a = 0; a < 3; ++a) {
    const std::int64_t start = p[a] - s / 2; // may lie outside: zero padding
    src[a] = std::max<std::int64_t>(0, start);
    dst[a] = src[a] - start;
    len[a] = std::min<std::int64_t>(n[a], start + s) - src[a];
  }
  if (len[0] > 0 && len[1] > 0 && len[2] > 0) {
    auto region = [&](const torch::Tensor& t) {
      return t.narrow(2, src[0], len[0]).narrow(3, src[1], len[1]).narrow(4, src[2], len[2]);
    };
    auto into = [&](torch::Tensor& t) {
      return t.narrow(2, dst[0], len[0]).narrow(3, dst[1], len[1]).narrow(4, dst[2], len[2]);
    };
    into(image).copy_(region(v.image));
    into(label).copy_(region(v.labels));
  }
  return {image, label};
}

} // namespace densa::app
