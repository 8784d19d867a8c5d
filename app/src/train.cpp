// SPDX-License-Identifier: Apache-2.0
// `densa train`: staged H-DenseUNet training (methods-spec §1.3, §1.9, §1.10) with a run folder.
#include "densa/app/train.hpp"

#include "densa/app/datasets.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/app/preview.hpp"
#include "densa/build_info.hpp"
#include "densa/core/error.hpp"
#include "densa/core/metrics.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/runtime.hpp"
#include "densa/models/torch/checkpoint.hpp"
#include "densa/models/torch/distributed.hpp"
#include "densa/models/torch/training.hpp"

#include "progress.hpp"
#include "run_config.hpp"
#include "svg_chart.hpp"
#include "train_gemini.hpp"

#include <torch/nn/functional/upsampling.h>
#include <torch/nn/functional/vision.h>
#include <torch/utils.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <fstream>
#include <future>
#include <iomanip>
#include <mutex>
#include <numbers>
#include <random>
#include <sstream>

namespace densa::app {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Configuration

namespace {

/// Every scalar key of a training config, in the order config.yaml lists them.
const std::vector<ConfigField<TrainConfig>>& trainFields() {
  using C = TrainConfig;
  static const std::vector<ConfigField<C>> fields{
      configField("architecture", &C::architecture),
      configField("preset", &C::preset),
      configField("stage", &C::stage),
      configField("init_from", &C::initFrom),
      configField("steps", &C::steps),
      configField("batch_size", &C::batchSize),
      configField("crop_size", &C::cropSize),
      configField("scale_min", &C::scaleMin),
      configField("scale_max", &C::scaleMax),
      configField("tumour_fraction", &C::tumourFraction),
      configField("rotation_degrees", &C::rotationDegrees),
      configField("intensity_scale", &C::intensityScale),
      configField("intensity_shift_hu", &C::intensityShiftHu),
      configField("noise_hu", &C::noiseHu),
      configField("optimizer", &C::optimizer),
      configField("learning_rate", &C::learningRate),
      configField("momentum", &C::momentum),
      configField("weight_decay", &C::weightDecay),
      configField("schedule", &C::schedule),
      configField("dice_weight", &C::diceWeight),
      configField("folds", &C::folds),
      configField("fold", &C::fold),
      configField("seed", &C::seed),
      configField("validate_every", &C::validateEvery),
      configField("checkpoint_every", &C::checkpointEvery),
      configField("log_every", &C::logEvery),
      configField("workers", &C::workers),
      configField("spacing_mm", &C::spacingMm),
      configField("hu_min", &C::huMin),
      configField("hu_max", &C::huMax),
      configField("threads", &C::threads),
      configField("device", &C::device),
      configField("cache_dir", &C::cacheDir),
  };
  return fields;
}

void applyKey(TrainConfig& c, const std::string& key, const YAML::Node& v) {
  if (key == "datasets") {
    c.datasets = parseTrainDatasets(v, key);
  } else if (key == "dataset") {
    c.datasets = {TrainDataset{configValue<std::string>(v, key), std::nullopt, false, false}};
  } else {
    applyConfigField(trainFields(), c, key, v);
  }
}

std::string toYaml(const TrainConfig& c) {
  YAML::Emitter e;
  e << YAML::BeginMap << YAML::Key << "datasets" << YAML::Value;
  emitTrainDatasets(e, c.datasets);
  emitConfigFields(trainFields(), c, e);
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

} // namespace

TrainConfig loadTrainConfig(const fs::path& file, const std::vector<std::string>& overrides) {
  TrainConfig c;
  readConfig(file, overrides, [&c](const std::string& key, const YAML::Node& value) {
    applyKey(c, key, value);
  });
  // Relative dataset paths are relative to the config file.
  for (auto& d : c.datasets) {
    d.path = configRelative(file, d.path);
  }
  if (c.datasets.empty()) {
    throw core::InvalidArgument("config " + file.string() + ": no datasets");
  }
  if (c.architecture != "hdenseunet" && c.architecture != "gemini-unet") {
    throw core::InvalidArgument(
        "config key 'architecture': expected hdenseunet or gemini-unet, got '" + c.architecture +
        "'");
  }
  if (c.stage != "coarse" && c.stage != "2d" && c.stage != "3dpart" && c.stage != "end2end") {
    throw core::InvalidArgument(
        "config key 'stage': expected coarse, 2d, 3dpart or end2end, got '" + c.stage + "'");
  }
  if (c.steps <= 0 || c.batchSize <= 0 || c.cropSize < 32 || c.cropSize % 32 != 0) {
    throw core::InvalidArgument(
        "config: steps and batch_size must be > 0, crop_size a multiple of 32");
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Sampling (§1.3)

namespace {

struct SampledVolume {
  TrainingVolume volume;
  std::vector<std::uint32_t> liver;  // voxel offsets with label >= 1
  std::vector<std::uint32_t> tumour; // voxel offsets with label == 2
  std::array<std::int64_t, 3> boxLow{0, 0, 0};
  std::array<std::int64_t, 3> boxHigh{0, 0, 0};
};

SampledVolume indexVolume(TrainingVolume v) {
  SampledVolume s;
  const auto [nx, ny, nz] = v.labels.size();
  s.boxLow = {
      static_cast<std::int64_t>(nx), static_cast<std::int64_t>(ny), static_cast<std::int64_t>(nz)};
  s.boxHigh = {0, 0, 0};
  for (std::size_t i = 0; i < v.labels.voxelCount(); ++i) {
    const auto l = v.labels.voxels()[i];
    if (l == 0) {
      continue;
    }
    s.liver.push_back(static_cast<std::uint32_t>(i));
    if (l == 2) {
      s.tumour.push_back(static_cast<std::uint32_t>(i));
    }
    const std::array<std::int64_t, 3> p{static_cast<std::int64_t>(i % nx),
                                        static_cast<std::int64_t>((i / nx) % ny),
                                        static_cast<std::int64_t>(i / (nx * ny))};
    for (std::size_t d = 0; d < 3; ++d) {
      s.boxLow[d] = std::min(s.boxLow[d], p[d]);
      s.boxHigh[d] = std::max(s.boxHigh[d], p[d]);
    }
  }
  if (s.liver.empty()) {
    s.boxLow = {0, 0, 0};
    s.boxHigh = {static_cast<std::int64_t>(nx) - 1,
                 static_cast<std::int64_t>(ny) - 1,
                 static_cast<std::int64_t>(nz) - 1};
  }
  s.volume = std::move(v);
  return s;
}

struct Batch {
  torch::Tensor input;  // 2D: [B, 3, S, S]; hybrid: [1, 1, D, S, S]
  torch::Tensor target; // 2D: [B, S, S];    hybrid: [1, D, S, S]
};

// One crop: `slices` slices centred on a liver or tumour voxel, per §1.3.
std::pair<torch::Tensor, torch::Tensor> sampleCrop(const SampledVolume& v,
                                                   const TrainConfig& c,
                                                   const models::PreprocessingContract& pre,
                                                   int slices,
                                                   std::mt19937_64& rng) {
  auto uniform = [&](double a, double b) {
    return std::uniform_real_distribution<double>(a, b)(rng);
  };
  const auto& ct = v.volume.ct;
  const auto [nx, ny, nz] = ct.size();
  std::uint32_t centre = 0;
  if (!v.tumour.empty() && uniform(0, 1) < c.tumourFraction) {
    centre = v.tumour[std::uniform_int_distribution<std::size_t>(0, v.tumour.size() - 1)(rng)];
  } else if (!v.liver.empty()) {
    centre = v.liver[std::uniform_int_distribution<std::size_t>(0, v.liver.size() - 1)(rng)];
  } else {
    centre = static_cast<std::uint32_t>(
        std::uniform_int_distribution<std::size_t>(0, ct.voxelCount() - 1)(rng));
  }
  std::array<std::int64_t, 3> p{static_cast<std::int64_t>(centre % nx),
                                static_cast<std::int64_t>((centre / nx) % ny),
                                static_cast<std::int64_t>(centre / (nx * ny))};
  const auto size = static_cast<std::int64_t>(c.cropSize * uniform(c.scaleMin, c.scaleMax));
  for (std::size_t d = 0; d < 2; ++d) { // keep the crop in the liver box (§1.3 step 4)
    p[d] = std::min(std::max(v.boxLow[d] + size / 2, p[d]), v.boxHigh[d] - size / 2 - 1);
  }
  const std::int64_t x0 = p[0] - size / 2;
  const std::int64_t y0 = p[1] - size / 2;
  const std::int64_t z0 = p[2] - slices / 2;
  std::vector<float> image(static_cast<std::size_t>(slices * size * size),
                           static_cast<float>(pre.huMin));
  std::vector<std::int64_t> label(image.size(), 0);
  for (std::int64_t s = 0; s < slices; ++s) {
    const auto z = static_cast<std::size_t>(
        std::clamp<std::int64_t>(z0 + s, 0, static_cast<std::int64_t>(nz) - 1));
    for (std::int64_t y = 0; y < size; ++y) {
      const std::int64_t yy = y0 + y;
      if (yy < 0 || yy >= static_cast<std::int64_t>(ny)) {
        continue;
      }
      for (std::int64_t x = 0; x < size; ++x) {
        const std::int64_t xx = x0 + x;
        if (xx < 0 || xx >= static_cast<std::int64_t>(nx)) {
          continue;
        }
        const std::size_t o = static_cast<std::size_t>((s * size + y) * size + x);
        const std::size_t src =
            ct.offset(static_cast<std::size_t>(xx), static_cast<std::size_t>(yy), z);
        image[o] = static_cast<float>(ct.voxels()[src]);
        label[o] = v.volume.labels.voxels()[src];
      }
    }
  }
  // Intensity augmentation (options; off by default as in the reference), on HU before the clip.
  // The random draws happen whether or not an option is on, so that turning one on does not shift
  // the other augmentations' random stream.
  const double contrast = 1 + c.intensityScale * uniform(-1, 1);
  const double shift = c.intensityShiftHu * uniform(-1, 1);
  const double angle = c.rotationDegrees * uniform(-1, 1) * std::numbers::pi / 180.0;
  const std::uint64_t noiseSeed = rng();
  auto raw = torch::from_blob(image.data(), {slices, size, size}, torch::kFloat32).clone();
  if (c.intensityScale > 0 || c.intensityShiftHu > 0) {
    const auto mean = raw.mean();
    raw = (raw - mean) * contrast + mean + shift;
  }
  if (c.noiseHu > 0) {
    auto gen = at::detail::createCPUGenerator(noiseSeed);
    raw = raw + torch::randn(raw.sizes(), gen, torch::kFloat32) * c.noiseHu;
  }
  auto img = raw.clamp(pre.huMin, pre.huMax).add(pre.intensityOffset);
  auto lab = torch::from_blob(label.data(), {slices, size, size}, torch::kInt64).clone();
  if (c.rotationDegrees > 0) {
    // In-plane rotation about the crop centre: image bilinear, label nearest, edges replicated.
    namespace F = torch::nn::functional;
    const double cs = std::cos(angle);
    const double sn = std::sin(angle);
    const auto theta = torch::tensor({{cs, -sn, 0.0}, {sn, cs, 0.0}}, torch::kFloat32)
                           .unsqueeze(0)
                           .expand({slices, 2, 3});
    const auto grid = F::affine_grid(theta, {slices, 1, size, size}, false);
    img = F::grid_sample(img.unsqueeze(1),
                         grid,
                         F::GridSampleFuncOptions()
                             .mode(torch::kBilinear)
                             .padding_mode(torch::kBorder)
                             .align_corners(false))
              .squeeze(1);
    lab = F::grid_sample(lab.unsqueeze(1).to(torch::kFloat32),
                         grid,
                         F::GridSampleFuncOptions()
                             .mode(torch::kNearest)
                             .padding_mode(torch::kBorder)
                             .align_corners(false))
              .squeeze(1)
              .to(torch::kInt64);
  }
  // One of 8 dihedral transforms, identical for image and label (§1.3 step 5).
  const int t = std::uniform_int_distribution<int>(0, 7)(rng);
  auto dihedral = [t](torch::Tensor x) {
    if (t & 1) {
      x = x.flip({2});
    }
    if (t & 2) {
      x = x.flip({1});
    }
    if (t & 4) {
      x = x.transpose(1, 2);
    }
    return x.contiguous();
  };
  img = dihedral(img);
  lab = dihedral(lab);
  // Back to crop_size: image cubic, label nearest (§1.3 step 6).
  namespace F = torch::nn::functional;
  const std::vector<std::int64_t> target{c.cropSize, c.cropSize};
  img = F::interpolate(
            img.unsqueeze(0),
            F::InterpolateFuncOptions().size(target).mode(torch::kBicubic).align_corners(false))
            .squeeze(0);
  lab = F::interpolate(lab.unsqueeze(0).to(torch::kFloat32),
                       F::InterpolateFuncOptions().size(target).mode(torch::kNearest))
            .squeeze(0)
            .to(torch::kInt64);
  return {img, lab};
}

Batch sampleBatch(const std::vector<SampledVolume>& volumes,
                  const TrainConfig& c,
                  const models::ModelCard& card,
                  std::int64_t step,
                  int rank) {
  // Every batch is a pure function of (seed, step, rank): resuming reproduces the data stream
  // exactly, and data-parallel ranks draw different samples.
  std::seed_seq seq{static_cast<std::uint64_t>(c.seed),
                    static_cast<std::uint64_t>(step),
                    static_cast<std::uint64_t>(rank),
                    std::uint64_t{0x44454e53}};
  std::mt19937_64 rng(seq);
  const bool hybrid = c.stage == "3dpart" || c.stage == "end2end";
  const bool coarse = c.stage == "coarse";
  std::vector<torch::Tensor> inputs;
  std::vector<torch::Tensor> targets;
  const int count = hybrid ? 1 : c.batchSize;
  for (int b = 0; b < count; ++b) {
    const auto& v = volumes[std::uniform_int_distribution<std::size_t>(0, volumes.size() - 1)(rng)];
    const int slices = hybrid ? card.preprocessing.windowDepth : card.preprocessing.sliceContext;
    auto [img, lab] = sampleCrop(v, c, card.preprocessing, slices, rng);
    if (hybrid) {
      inputs.push_back(img.unsqueeze(0)); // [1, D, S, S]
      targets.push_back(lab);             // [D, S, S]
    } else {
      inputs.push_back(img); // [3, S, S]
      // The centre slice (§1.3 step 7); the coarse net's classes are background / liver, where
      // liver includes the tumours.
      targets.push_back(coarse ? lab[slices / 2].gt(0).to(torch::kInt64) : lab[slices / 2]);
    }
  }
  return {torch::stack(inputs, 0), torch::stack(targets, 0)};
}

// ---------------------------------------------------------------------------------------------
// Run folder: metrics, report

struct MetricsRow {
  std::int64_t step = 0;
  double loss = 0;
  double lr = 0;
  double samplesPerSecond = 0;
  std::optional<double> liverDice;
  std::optional<double> tumourDice;
};

void writeReport(const fs::path& run,
                 const TrainConfig& c,
                 const std::vector<MetricsRow>& rows,
                 const std::string& bestNote) {
  std::vector<std::pair<double, double>> loss, liver, tumour;
  for (const auto& r : rows) {
    loss.emplace_back(static_cast<double>(r.step), r.loss);
    if (r.liverDice) {
      liver.emplace_back(static_cast<double>(r.step), *r.liverDice);
      tumour.emplace_back(static_cast<double>(r.step), *r.tumourDice);
    }
  }
  std::ostringstream html;
  html << reportHead("Densa training run") << "<h1>Densa training run</h1><p>" << c.architecture
       << " / " << c.preset << " / stage " << c.stage << ", " << rows.size() << " logged steps. "
       << bestNote << "</p>" << svgChart("Training loss", loss, "loss")
       << svgChart("Validation Dice", liver, "liver", tumour, "tumour");
  html << latestValidationPictureHtml(run);
  html << "<h2>Configuration</h2><pre>" << toYaml(c)
       << "</pre><p>Files: metrics.csv, train.log, best.densa, "
       << "last.densa, state.pt (resume with <code>densa train --resume " << run.string()
       << "</code>).</p>"
       << "</body></html>\n";
  io::writeTextAtomically(run / "report.html", html.str());
}

std::string rowCsv(const MetricsRow& r) {
  std::ostringstream s;
  s << r.step << "," << r.loss << "," << r.lr << "," << r.samplesPerSecond << ",";
  if (r.liverDice) {
    s << *r.liverDice << "," << *r.tumourDice;
  } else {
    s << ",";
  }
  return s.str();
}

} // namespace

// ---------------------------------------------------------------------------------------------
// The loop

int runTrain(const TrainCommand& command, std::ostream& out, std::ostream& err) {
  const fs::path run = command.resume.value_or(command.runDir);
  TrainConfig c;
  if (command.resume) {
    c = loadTrainConfig(run / "config.yaml", command.overrides);
  } else {
    if (!command.config) {
      throw core::InvalidArgument("densa train needs --config FILE (or --resume RUN_DIR)");
    }
    c = loadTrainConfig(*command.config, command.overrides);
    if (fs::exists(run / "state.pt")) {
      throw core::InvalidArgument("run folder " + run.string() +
                                  " already holds a run; use --resume " + run.string() +
                                  " or another folder");
    }
  }
  fs::create_directories(run);
  io::writeTextAtomically(run / "config.yaml",
                          "# densa " + std::string(build::kVersion) + " (git " + build::kGitHash +
                              ")\n" + toYaml(c));
  if (c.architecture == "gemini-unet") {
    return runTrainGeminiUNet(command, c, run, out, err);
  }
  models::setThreads(c.threads);
  const torch::Device device(models::resolveDevice(c.device));
  std::ofstream log(run / "train.log", std::ios::app);
  auto say = [&](const std::string& line) {
    out << line << "\n";
    log << line << "\n" << std::flush;
  };

  // Data: case-level split per dataset, preprocessing cache.
  const fs::path cache = c.cacheDir.empty() ? run / "cache" : c.cacheDir;
  std::vector<SampledVolume> train;
  std::vector<TrainingVolume> validation;
  for (const auto& d : c.datasets) {
    const Dataset ds = readDataset(d.path);
    Split split = d.validationOnly ? Split{{}, ds.cases}
                                   : (d.trainOnly ? Split{ds.cases, {}}
                                                  : splitCases(ds.cases, c.folds, c.fold, c.seed));
    for (const auto& lc : split.train) {
      train.push_back(indexVolume(loadTrainingVolumeCached(lc, cache, d.labelMap)));
    }
    for (const auto& lc : split.validation) {
      validation.push_back(loadTrainingVolumeCached(lc, cache, d.labelMap));
    }
  }
  if (train.empty()) {
    throw core::InvalidArgument("no training case (all held out?)");
  }
  say("densa train: " + std::to_string(train.size()) + " training and " +
      std::to_string(validation.size()) + " validation case(s); " + c.architecture + "/" +
      c.preset + " stage " + c.stage + " on " + device.str());

  // Network and trainer (models::Trainer: optimiser, schedule, stage freezing, gradient all-reduce
  // when several processes run, exact state).
  // Stage "coarse" trains the stage-0 coarse liver net (§1.8), a separate "coarse-liver"
  // checkpoint that densa segment loads as <model>.coarse.densa or with --coarse-model.
  const bool coarseStage = c.stage == "coarse";
  if (coarseStage && c.architecture != "hdenseunet") {
    throw core::InvalidArgument("config: stage 'coarse' belongs to architecture hdenseunet");
  }
  models::ModelCard card =
      models::makeModelCard(coarseStage ? "coarse-liver" : c.architecture, c.preset);
  if (const auto* o = std::get_if<models::CoarseLiverOptions>(&card.options);
      o != nullptr && c.cropSize % (32 * o->downsample) != 0) {
    throw core::InvalidArgument("config key 'crop_size': stage 'coarse' needs a multiple of " +
                                std::to_string(32 * o->downsample) + " (got " +
                                std::to_string(c.cropSize) + ")");
  }
  torch::manual_seed(c.seed);
  const auto distributed = models::DistributedContext::fromEnvironment(device);
  const int rank = distributed ? distributed->rank() : 0;
  const int world = distributed ? distributed->worldSize() : 1;
  const bool main = rank == 0;
  if (world > 1) {
    say("data-parallel: rank " + std::to_string(rank) + " of " + std::to_string(world) + " (" +
        distributed->backend() + ")");
  }
  models::TrainerOptions options;
  options.stage = c.stage;
  options.optimizer = c.optimizer;
  options.learningRate = c.learningRate;
  options.momentum = c.momentum;
  options.nesterov = c.optimizer == "sgd";
  options.weightDecay = c.weightDecay;
  options.schedule = c.schedule;
  options.totalSteps = c.steps;
  options.loss.diceWeight = c.diceWeight;
  models::Trainer trainer(models::makeNet(card.options), card, options, device, distributed);
  if (c.initFrom && !command.resume) {
    const auto transfer = trainer.setInitialWeightsFrom(*c.initFrom);
    say("initialised " + std::to_string(transfer.loaded.size()) + " tensors from " +
        c.initFrom->string());
  }
  const fs::path stateFile =
      run / (world > 1 ? "state-rank" + std::to_string(rank) + ".pt" : std::string("state.pt"));

  // Resume: the trainer's state (weights, optimiser, step, RNG) and the run's best score.
  std::int64_t step = 0;
  std::vector<MetricsRow> rows;
  double bestScore = -1;
  if (command.resume) {
    if (!fs::exists(stateFile)) {
      throw core::InputError(run, "holds no " + stateFile.filename().string() + " to resume from");
    }
    trainer.loadState(stateFile);
    step = trainer.stepCount();
    std::ifstream best(run / "best_score.txt");
    best >> bestScore;
    std::ifstream in(run / "metrics.csv");
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::stringstream ls(line);
      std::string f;
      std::vector<std::string> fields;
      while (std::getline(ls, f, ',')) {
        fields.push_back(f);
      }
      fields.resize(6);
      MetricsRow r;
      r.step = std::stoll(fields[0]);
      if (r.step > step) {
        break;
      }
      r.loss = std::stod(fields[1]);
      r.lr = std::stod(fields[2]);
      r.samplesPerSecond = std::stod(fields[3]);
      if (!fields[4].empty()) {
        r.liverDice = std::stod(fields[4]);
        r.tumourDice = std::stod(fields[5]);
      }
      rows.push_back(r);
    }
    say("resumed at step " + std::to_string(step));
  }
  card.provenance.densaVersion = build::kVersion;
  card.provenance.gitSha = build::kGitHash;
  card.provenance.trainingStage = c.stage;
  std::string data;
  for (const auto& d : c.datasets) {
    data += (data.empty() ? "" : "; ") + d.path.filename().string();
  }
  card.provenance.trainingData = data;

  auto saveState = [&] {
    trainer.saveState(stateFile);
    if (main) {
      io::writeTextAtomically(run / "best_score.txt", std::to_string(bestScore) + "\n");
    }
  };
  auto validate = [&](MetricsRow& row) {
    card.provenance.notes = "step " + std::to_string(step);
    trainer.exportCheckpoint(run / "last.densa", card);
    if (!main || validation.empty()) {
      return;
    }
    if (coarseStage) {
      // The coarse mask's Dice against liver + tumour; no tumour class.
      double sum = 0;
      for (std::size_t i = 0; i < validation.size(); ++i) {
        auto truth = validation[i].labels;
        for (auto& v : truth.voxels()) {
          v = v > 0 ? 1 : 0;
        }
        const auto mask = segmentCoarseLiver(run / "last.densa", validation[i].ct, c.device);
        sum += core::evaluateLitsCase(mask, truth).liverDice;
        if (i == 0) {
          char name[64];
          std::snprintf(name, sizeof name, "validation-%08lld.png", static_cast<long long>(step));
          writeMontagePng(run / name, validation[i].ct, &mask, {.slices = 8, .columns = 4});
        }
      }
      row.liverDice = sum / static_cast<double>(validation.size());
      row.tumourDice = 0.0;
      if (*row.liverDice > bestScore) {
        bestScore = *row.liverDice;
        fs::copy_file(run / "last.densa", run / "best.densa", fs::copy_options::overwrite_existing);
      }
      return;
    }
    SegmenterOptions segmenterOptions;
    segmenterOptions.device = c.device;
    segmenterOptions.precision = "fp32"; // best.densa is chosen on the reference arithmetic
    const auto segmenter = loadHDenseUNetSegmenter(run / "last.densa", segmenterOptions);
    std::vector<core::LitsCase> cases;
    for (std::size_t i = 0; i < validation.size(); ++i) {
      const auto result = segmenter->segment(validation[i].ct, {});
      cases.push_back(core::evaluateLitsCase(result.labels, validation[i].labels));
      if (i == 0) {
        char name[64];
        std::snprintf(name, sizeof name, "validation-%08lld.png", static_cast<long long>(step));
        writeMontagePng(run / name, validation[i].ct, &result.labels, {.slices = 8, .columns = 4});
      }
    }
    const auto s = core::summarise(cases);
    row.liverDice = s.liverDicePerCase;
    row.tumourDice = s.lesionDicePerCase;
    const double score = s.liverDicePerCase + s.lesionDicePerCase;
    if (score > bestScore) {
      bestScore = score;
      fs::copy_file(run / "last.densa", run / "best.densa", fs::copy_options::overwrite_existing);
    }
  };

  if (main && (!fs::exists(run / "metrics.csv") || !command.resume)) {
    io::writeTextAtomically(
        run / "metrics.csv",
        "step,loss,learning_rate,samples_per_second,val_liver_dice,val_tumour_dice\n");
  }
  Progress progress("training", err);
  // `workers` batches are prepared ahead in threads; each batch is a pure function of
  // (seed, step, rank), so the order of completion does not matter.
  std::deque<std::future<Batch>> ahead;
  std::int64_t queued = step;
  auto refill = [&] {
    while (static_cast<int>(ahead.size()) < std::max(1, c.workers) && queued < c.steps) {
      ahead.push_back(std::async(std::launch::async,
                                 sampleBatch,
                                 std::cref(train),
                                 std::cref(c),
                                 std::cref(card),
                                 queued,
                                 rank));
      ++queued;
    }
  };
  refill();
  double lossSum = 0;
  std::int64_t lossCount = 0;
  auto windowStart = Clock::now();
  std::int64_t samples = 0;
  while (step < c.steps) {
    Batch batch = ahead.front().get();
    ahead.pop_front();
    refill();
    const models::StepResult result = trainer.step(batch.input, batch.target);
    const double lr = result.learningRate;
    ++step;
    samples += batch.input.size(0);
    lossSum += result.loss;
    ++lossCount;
    progress.update(static_cast<double>(step), static_cast<double>(c.steps));
    const bool doValidate = step % c.validateEvery == 0 || step == c.steps;
    if (step % c.logEvery == 0 || doValidate) {
      MetricsRow row;
      row.step = step;
      row.loss = lossSum / static_cast<double>(lossCount);
      row.lr = lr;
      row.samplesPerSecond =
          static_cast<double>(samples) * world /
          std::max(1e-9, std::chrono::duration<double>(Clock::now() - windowStart).count());
      if (doValidate) {
        progress.finish();
        validate(row);
      }
      rows.push_back(row);
      std::ostringstream line;
      line << std::fixed << std::setprecision(4) << "step " << step << "/" << c.steps << "  loss "
           << row.loss << "  lr " << std::setprecision(6) << lr << std::setprecision(1) << "  "
           << row.samplesPerSecond << " samples/s";
      if (row.liverDice) {
        line << std::setprecision(3) << "  val liver Dice " << *row.liverDice << "  tumour Dice "
             << *row.tumourDice;
      }
      if (main) {
        std::ofstream(run / "metrics.csv", std::ios::app) << rowCsv(row) << "\n";
        log << line.str() << "\n" << std::flush;
        if (!progress.interactive() || doValidate) {
          out << line.str() << "\n";
        }
      }
      lossSum = 0;
      lossCount = 0;
      samples = 0;
      windowStart = Clock::now();
    }
    if (step % c.checkpointEvery == 0 || step == c.steps) {
      saveState();
      if (main) {
        writeReport(run,
                    c,
                    rows,
                    "Best validation liver+tumour Dice sum: " + std::to_string(bestScore) + ".");
      }
    }
  }
  for (auto& f : ahead) {
    f.wait();
  }
  progress.finish();
  if (!main) {
    return kExitOk;
  }
  if (!fs::exists(run / "best.densa")) {
    fs::copy_file(run / "last.densa", run / "best.densa", fs::copy_options::overwrite_existing);
  }
  writeReport(
      run, c, rows, "Best validation liver+tumour Dice sum: " + std::to_string(bestScore) + ".");
  say("done: " + (run / "best.densa").string() + ", report " + (run / "report.html").string());
  return kExitOk;
}

} // namespace densa::app
