// SPDX-License-Identifier: Apache-2.0
// `densa train` for the GEMINI transfer model ("gemini-unet", methods-spec §2.5, §2.8): 3D crops
// of labelled CT on an isotropic grid, the GEMINI-Semi segmentation loss, Adam, optionally
// initialised from a `densa pretrain gemini` backbone.
#include "train_gemini.hpp"

#include "densa/app/datasets.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/app/preview.hpp"
#include "densa/app/segmenters.hpp"
#include "densa/build_info.hpp"
#include "densa/core/error.hpp"
#include "densa/core/metrics.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/runtime.hpp"
#include "densa/models/torch/checkpoint.hpp"
#include "densa/models/torch/distributed.hpp"
#include "densa/models/torch/gemini.hpp"
#include "densa/models/torch/gemini_losses.hpp"
#include "densa/models/torch/gemini_ops.hpp"

#include "pretrain_data.hpp"
#include "progress.hpp"
#include "run_config.hpp"
#include "svg_chart.hpp"

#include <torch/optim/adam.h>
#include <torch/serialize.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <fstream>
#include <future>
#include <iomanip>
#include <numbers>
#include <random>
#include <sstream>

namespace densa::app {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using IsoVolume = IsoLabelledVolume;

struct Batch {
  torch::Tensor input;  ///< [B, 1, S, S, S]
  torch::Tensor target; ///< [B, S, S, S] int64
};

/// A pure function of (seed, step, rank): crops centred on a tumour voxel with probability
/// tumour_fraction, else on a liver voxel (a random voxel without liver), under a random rotation
/// and scale (image linear, labels nearest).
Batch sampleBatch(const std::vector<IsoVolume>& volumes,
                  const TrainConfig& c,
                  std::int64_t step,
                  int rank) {
  std::seed_seq seq{static_cast<std::uint64_t>(c.seed),
                    static_cast<std::uint64_t>(step),
                    static_cast<std::uint64_t>(rank),
                    std::uint64_t{0x47554e45}};
  std::mt19937_64 rng(seq);
  const int s = c.cropSize;
  std::vector<torch::Tensor> inputs;
  std::vector<torch::Tensor> targets;
  for (int b = 0; b < c.batchSize; ++b) {
    const auto& v = volumes[static_cast<std::size_t>(models::uniform01(rng) *
                                                     static_cast<double>(volumes.size())) %
                            volumes.size()];
    auto [image, label] = labelledCrop(v, s, c.tumourFraction, rng);
    if (c.rotationDegrees > 0 || c.scaleMin != 1.0 || c.scaleMax != 1.0) {
      models::RandomAffineOptions affine;
      affine.maxRotation = c.rotationDegrees * std::numbers::pi / 180.0;
      affine.minScale = c.scaleMin;
      affine.maxScale = c.scaleMax;
      const auto field = models::randomAffineField({s, s, s}, rng, affine);
      image = models::warp(image, field);
      label = models::warp(label, field, models::Interp::Nearest);
    }
    inputs.push_back(image);
    targets.push_back(label.squeeze(1).round().to(torch::kInt64));
  }
  return {torch::cat(inputs, 0), torch::cat(targets, 0)};
}

struct Row {
  std::int64_t step = 0;
  double loss = 0;
  double samplesPerSecond = 0;
  std::optional<double> liverDice;
  std::optional<double> tumourDice;
};

void writeReport(const fs::path& run,
                 const TrainConfig& c,
                 const std::vector<Row>& rows,
                 const std::string& note) {
  std::vector<std::pair<double, double>> loss, liver, tumour;
  for (const auto& r : rows) {
    loss.emplace_back(static_cast<double>(r.step), r.loss);
    if (r.liverDice) {
      liver.emplace_back(static_cast<double>(r.step), *r.liverDice);
      tumour.emplace_back(static_cast<double>(r.step), *r.tumourDice);
    }
  }
  std::ostringstream html;
  html << reportHead("Densa training run") << "<h1>Densa training run: gemini-unet / " << c.preset
       << "</h1><p>" << note << "</p>"
       << svgChart("Training loss (100·(CE/K + Dice), the GEMINI-Semi loss)", loss, "loss")
       << svgChart("Validation Dice", liver, "liver", tumour, "tumour");
  html << latestValidationPictureHtml(run);
  html << "<p>Files: config.yaml, metrics.csv, train.log, best.densa, last.densa, state.pt "
          "(resume with <code>densa train --resume "
       << run.string() << "</code>).</p></body></html>\n";
  io::writeTextAtomically(run / "report.html", html.str());
}

} // namespace

int runTrainGeminiUNet(const TrainCommand& command,
                       TrainConfig c,
                       const fs::path& run,
                       std::ostream& out,
                       std::ostream& err) {
  models::setThreads(c.threads);
  const torch::Device device(models::resolveDevice(c.device));
  const auto distributed = models::DistributedContext::fromEnvironment(device);
  const int rank = distributed ? distributed->rank() : 0;
  const int world = distributed ? distributed->worldSize() : 1;
  const bool main = rank == 0;
  std::ofstream log;
  if (main) {
    log.open(run / "train.log", std::ios::app);
  }
  auto say = [&](const std::string& line) {
    if (main) {
      out << line << "\n";
      log << line << "\n" << std::flush;
    }
  };

  // The model card: preset, or the pretrained backbone's preprocessing when initialising from a
  // GEMINI checkpoint (its features only mean something on the input it was pretrained on).
  models::ModelCard card = models::makeModelCard("gemini-unet", c.preset);
  double spacing = c.spacingMm;
  double huMin = c.huMin;
  double huMax = c.huMax;
  std::optional<models::LoadedModel> init;
  if (c.initFrom) {
    init = models::loadCheckpoint(*c.initFrom, device);
    spacing = cardSpacing(init->card, *c.initFrom);
    huMin = init->card.preprocessing.huMin;
    huMax = init->card.preprocessing.huMax;
    const auto* pretrained = std::get_if<models::GeminiOptions>(&init->card.options);
    const auto* unet = std::get_if<models::GeminiUNetOptions>(&init->card.options);
    if (pretrained != nullptr) {
      card.options = models::transferOptions(*pretrained, 3);
    } else if (unet != nullptr) {
      card.options = *unet;
    } else {
      throw models::ModelError(c.initFrom->string() + ": is a '" +
                               std::string(models::architectureId(init->card.options)) +
                               "' checkpoint; gemini-unet starts from 'gemini' or 'gemini-unet'");
    }
    card.preset = init->card.preset;
  }
  card.labels = {"background", "liver", "tumour"};
  card.preprocessing.huMin = huMin;
  card.preprocessing.huMax = huMax;
  card.preprocessing.intensityOffset = 0;
  std::ostringstream policy;
  policy << "isotropic " << spacing << " mm; HU window scaled to [0, 1]";
  card.preprocessing.spacingPolicy = policy.str();
  card.provenance.densaVersion = build::kVersion;
  card.provenance.gitSha = build::kGitHash;
  card.provenance.trainingStage = c.initFrom ? "gemini-transfer" : "scratch";

  // Data: the same datasets, splits and cache as H-DenseUNet training, then the isotropic grid.
  const fs::path cache = c.cacheDir.empty() ? run / "cache" : c.cacheDir;
  std::vector<IsoVolume> train;
  std::vector<TrainingVolume> validation;
  for (const auto& d : c.datasets) {
    const Dataset ds = readDataset(d.path);
    Split split = d.validationOnly ? Split{{}, ds.cases}
                                   : (d.trainOnly ? Split{ds.cases, {}}
                                                  : splitCases(ds.cases, c.folds, c.fold, c.seed));
    for (const auto& lc : split.train) {
      train.push_back(
          toIsoLabelled(loadTrainingVolumeCached(lc, cache, d.labelMap), spacing, huMin, huMax));
    }
    for (const auto& lc : split.validation) {
      validation.push_back(loadTrainingVolumeCached(lc, cache, d.labelMap));
    }
  }
  if (train.empty()) {
    throw core::InvalidArgument("no training case (all held out?)");
  }
  std::ostringstream intro;
  intro << "densa train: " << train.size() << " training and " << validation.size()
        << " validation case(s); gemini-unet/" << card.preset << " at " << spacing
        << " mm, crops of " << c.cropSize << "³ on " << device.str();
  if (c.initFrom) {
    intro << "; backbone from " << c.initFrom->string();
  }
  say(intro.str());

  torch::manual_seed(c.seed);
  models::AnyNet any = models::makeNet(card.options);
  models::GeminiUNet& net = std::get<models::GeminiUNet>(any);
  if (init && !command.resume) {
    models::loadBackboneFrom(net, *init);
  }
  net->to(device);
  net->train();
  torch::optim::Adam optimizer(
      net->parameters(), torch::optim::AdamOptions(c.learningRate).weight_decay(c.weightDecay));
  const fs::path stateFile =
      run / (world > 1 ? "state-rank" + std::to_string(rank) + ".pt" : std::string("state.pt"));
  std::int64_t step = 0;
  double bestScore = -1;
  std::vector<Row> rows;
  if (command.resume) {
    const RunState state = loadRunState(stateFile, *net, optimizer, device);
    step = state.step;
    bestScore = state.bestScore;
    std::ifstream in(run / "metrics.csv");
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::stringstream ls(line);
      std::vector<std::string> f;
      for (std::string x; std::getline(ls, x, ',');) {
        f.push_back(x);
      }
      f.resize(6);
      Row r;
      r.step = std::stoll(f[0]);
      if (r.step > step) {
        break;
      }
      r.loss = std::stod(f[1]);
      r.samplesPerSecond = f[3].empty() ? 0.0 : std::stod(f[3]);
      if (!f[4].empty()) {
        r.liverDice = std::stod(f[4]);
        r.tumourDice = f[5].empty() ? 0.0 : std::stod(f[5]);
      }
      rows.push_back(r);
    }
    say("resumed at step " + std::to_string(step));
  } else if (distributed) {
    broadcastParameters(*net, *distributed);
  }
  if (main && (!fs::exists(run / "metrics.csv") || !command.resume)) {
    io::writeTextAtomically(
        run / "metrics.csv",
        "step,loss,learning_rate,samples_per_second,val_liver_dice,val_tumour_dice\n");
  }

  auto saveState = [&] {
    saveRunState(stateFile, *net, optimizer, step, bestScore);
  };
  auto validate = [&](Row& row) {
    card.provenance.notes = "step " + std::to_string(step);
    models::saveCheckpoint(any, card, run / "last.densa");
    if (validation.empty()) {
      return;
    }
    net->eval();
    SegmenterOptions options;
    options.device = c.device;
    const auto segmenter = loadSegmenter(run / "last.densa", options);
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
    net->train();
    const auto s = core::summarise(cases);
    row.liverDice = s.liverDicePerCase;
    row.tumourDice = s.lesionDicePerCase;
    const double score = s.liverDicePerCase + s.lesionDicePerCase;
    if (score > bestScore) {
      bestScore = score;
      fs::copy_file(run / "last.densa", run / "best.densa", fs::copy_options::overwrite_existing);
    }
  };

  std::deque<std::future<Batch>> ahead;
  std::int64_t queued = step;
  auto refill = [&] {
    while (static_cast<int>(ahead.size()) < std::max(1, c.workers) && queued < c.steps) {
      ahead.push_back(std::async(
          std::launch::async, sampleBatch, std::cref(train), std::cref(c), queued, rank));
      ++queued;
    }
  };
  refill();
  Progress progress("training", err);
  double lossSum = 0;
  std::int64_t lossCount = 0;
  std::int64_t samples = 0;
  auto windowStart = Clock::now();
  while (step < c.steps) {
    Batch batch = ahead.front().get();
    ahead.pop_front();
    refill();
    const auto logits = net->forward(batch.input.to(device));
    const auto loss = models::semiSegmentationLoss(logits, batch.target.to(device));
    const double value = loss.item<double>();
    optimiserStep(loss, *net, optimizer, distributed.get());
    ++step;
    samples += batch.input.size(0) * world;
    lossSum += value;
    ++lossCount;
    progress.update(static_cast<std::size_t>(step), static_cast<std::size_t>(c.steps));
    const bool logNow = step % c.logEvery == 0 || step == c.steps;
    const bool validateNow = step % c.validateEvery == 0 || step == c.steps;
    if (main && (logNow || validateNow)) {
      Row row;
      row.step = step;
      row.loss = lossSum / static_cast<double>(std::max<std::int64_t>(1, lossCount));
      row.samplesPerSecond =
          static_cast<double>(samples) /
          std::max(1e-9, std::chrono::duration<double>(Clock::now() - windowStart).count());
      if (validateNow) {
        validate(row);
      }
      std::ostringstream csv;
      csv << row.step << "," << row.loss << "," << c.learningRate << "," << row.samplesPerSecond
          << ",";
      if (row.liverDice) {
        csv << *row.liverDice << "," << *row.tumourDice;
      } else {
        csv << ",";
      }
      {
        std::ofstream f(run / "metrics.csv", std::ios::app);
        f << csv.str() << "\n";
      }
      std::ostringstream line;
      line << std::setprecision(4) << "step " << step << "/" << c.steps << "  loss " << row.loss
           << "  " << row.samplesPerSecond << " samples/s";
      if (row.liverDice) {
        line << "  val liver Dice " << *row.liverDice << "  tumour Dice " << *row.tumourDice;
      }
      if (progress.interactive()) {
        log << line.str() << "\n";
      } else {
        say(line.str());
      }
      rows.push_back(row);
      lossSum = 0;
      lossCount = 0;
      samples = 0;
      windowStart = Clock::now();
    }
    if (step % c.checkpointEvery == 0 || step == c.steps) {
      if (main) {
        models::saveCheckpoint(any, card, run / "last.densa");
      }
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
  if (main) {
    if (!fs::exists(run / "best.densa")) {
      fs::copy_file(run / "last.densa", run / "best.densa", fs::copy_options::overwrite_existing);
    }
    say("done: " + (run / "best.densa").string() + ", report " + (run / "report.html").string());
  }
  return kExitOk;
}

} // namespace densa::app
