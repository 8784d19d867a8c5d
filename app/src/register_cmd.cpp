// SPDX-License-Identifier: Apache-2.0
// `densa register`: CT-to-CT deformable registration with a trained GEMINI deformer (§2.8).
#include "densa/app/case_io.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/app/pretrain.hpp"
#include "densa/build_info.hpp"
#include "densa/core/error.hpp"
#include "densa/core/metrics.hpp"
#include "densa/core/resample.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/io/image_file.hpp"
#include "densa/models/error.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/runtime.hpp"
#include "densa/models/torch/checkpoint.hpp"
#include "densa/models/torch/gemini.hpp"
#include "densa/models/torch/gemini_ops.hpp"

#include "pretrain_data.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ostream>

namespace densa::app {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// Dice of label ≥ 1 (the liver including its tumours) between two maps on one grid.
double liverDice(const core::LabelMap& a, const core::LabelMap& b) {
  std::size_t both = 0;
  std::size_t na = 0;
  std::size_t nb = 0;
  for (std::size_t i = 0; i < a.voxelCount(); ++i) {
    const bool x = a.voxels()[i] >= 1;
    const bool y = b.voxels()[i] >= 1;
    both += x && y ? 1 : 0;
    na += x ? 1 : 0;
    nb += y ? 1 : 0;
  }
  return na + nb == 0 ? 1.0 : 2.0 * static_cast<double>(both) / static_cast<double>(na + nb);
}

} // namespace

int runRegister(const RegisterOptions& options, std::ostream& out, std::ostream& err) {
  (void)err;
  const auto start = std::chrono::steady_clock::now();
  if (!options.model) {
    throw core::InvalidArgument("densa register needs --model FILE (a densa pretrain gemini "
                                "checkpoint, e.g. runs/gemini/last.densa)");
  }
  const torch::Device device(models::resolveDevice(options.device));
  models::LoadedModel model = models::loadCheckpoint(*options.model, device);
  auto* netPtr = std::get_if<models::GeminiNet>(&model.net);
  if (netPtr == nullptr) {
    throw models::ModelError(options.model->string() + ": is a '" +
                             std::string(models::architectureId(model.card.options)) +
                             "' checkpoint; densa register needs a 'gemini' model");
  }
  models::GeminiNet& net = *netPtr;
  net->eval();
  const double spacing = cardSpacing(model.card, *options.model);
  const double huMin = model.card.preprocessing.huMin;
  const double huMax = model.card.preprocessing.huMax;

  const LoadedCase fixed = loadCtPath(options.fixed);
  const LoadedCase moving = loadCtPath(options.moving);
  // The registration grid: FIXED re-indexed to axial and resampled to the model's spacing. MOVING
  // is put on it by physical position (no initial alignment beyond the scanners' frames).
  const core::Volume<float> fixedIso = toIsotropicAxial(fixed.ct, spacing);
  const core::Grid grid = core::gridOf(fixedIso);
  const core::Volume<float> movingIso = core::resampleOnto(
      core::toFloat(core::AnyVolume(moving.ct)), grid, core::Interpolation::Linear, -1024.0F);
  const auto loaded = since(start);

  torch::NoGradGuard noGrad;
  const auto t0 = std::chrono::steady_clock::now();
  const torch::Tensor fixedHu = toTensor(fixedIso).to(device);
  const torch::Tensor movingHu = toTensor(movingIso).to(device);
  const torch::Tensor fFixed = net->features(scaleWindow(fixedHu, huMin, huMax));
  const torch::Tensor fMoving = net->features(scaleWindow(movingHu, huMin, huMax));
  const torch::Tensor flow = net->flow(fMoving, fFixed); // warps MOVING onto FIXED's grid
  const models::JacobianStats jac = models::jacobianStats(flow.to(torch::kCPU));
  // The unclipped HU image is warped (the window is only the network's input).
  const core::Volume<float> warpedIso = fromTensor(models::warp(movingHu, flow), grid);
  const auto network = since(t0);

  fs::create_directories(options.output);
  const core::Grid fixedGrid = core::gridOf(fixed.ct);
  io::writeImage(core::roundToInt16(core::resampleOnto(
                     warpedIso, fixedGrid, core::Interpolation::Linear, -1024.0F)),
                 options.output / "warped.nii.gz");
  json report{{"densa_version", std::string(build::kVersion) + " (git " + build::kGitHash + ")"},
              {"model", options.model->string()},
              {"moving", options.moving.string()},
              {"fixed", options.fixed.string()},
              {"registration_spacing_mm", spacing},
              {"registration_grid", {grid.size[0], grid.size[1], grid.size[2]}},
              {"jacobian",
               {{"folding_percent", 100.0 * jac.foldingFraction},
                {"min", jac.min},
                {"max", jac.max},
                {"mean", jac.mean},
                {"voxels", jac.voxels}}},
              {"outputs", {{"warped", "warped.nii.gz"}}}};
  if (options.labels) {
    const core::LabelMap labels = loadLabelMap(*options.labels, options.labelMap);
    const core::LabelMap labelsIso =
        core::resampleOnto(labels, grid, core::Interpolation::Nearest, std::uint8_t{0});
    core::Volume<float> asFloat = core::toFloat(core::AnyVolume(labelsIso));
    const core::Volume<float> warpedLabelsIso =
        fromTensor(models::warp(toTensor(asFloat).to(device), flow, models::Interp::Nearest), grid);
    core::LabelMap warpedLabels(grid.size, grid.geometry, 0);
    for (std::size_t i = 0; i < warpedLabels.voxelCount(); ++i) {
      warpedLabels.voxels()[i] = static_cast<std::uint8_t>(
          std::lround(std::clamp(warpedLabelsIso.voxels()[i], 0.0F, 255.0F)));
    }
    const core::LabelMap onFixed =
        core::resampleOnto(warpedLabels, fixedGrid, core::Interpolation::Nearest, std::uint8_t{0});
    io::writeImage(onFixed, options.output / "warped_labels.nii.gz");
    report["outputs"]["warped_labels"] = "warped_labels.nii.gz";
    if (options.fixedLabels) {
      const core::LabelMap reference =
          core::resampleOnto(loadLabelMap(*options.fixedLabels, options.labelMap),
                             fixedGrid,
                             core::Interpolation::Nearest,
                             std::uint8_t{0});
      const core::LabelMap before =
          core::resampleOnto(labels, fixedGrid, core::Interpolation::Nearest, std::uint8_t{0});
      report["liver_dice"] = {{"before", liverDice(before, reference)},
                              {"after", liverDice(onFixed, reference)}};
    }
  }
  report["timings_s"] = {{"load", loaded}, {"network", network}, {"total", since(start)}};
  io::writeTextAtomically(options.output / "report.json", report.dump(2));
  out << "registered " << options.moving.string() << " onto " << options.fixed.string() << " at "
      << spacing << " mm: " << 100.0 * jac.foldingFraction << " % folding voxels (|J| <= 0)";
  if (report.contains("liver_dice")) {
    out << ", liver Dice " << report["liver_dice"]["before"].get<double>() << " -> "
        << report["liver_dice"]["after"].get<double>();
  }
  out << "\noutputs in " << options.output.string() << "\n";
  return kExitOk;
}

} // namespace densa::app
