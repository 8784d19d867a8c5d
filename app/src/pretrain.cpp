// SPDX-License-Identifier: Apache-2.0
// `densa pretrain gemini` (methods-spec §2.6-§2.7) and `densa register` (§2.8).
#include "densa/app/pretrain.hpp"

#include "densa/app/case_io.hpp"
#include "densa/app/cases.hpp"
#include "densa/app/datasets.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/build_info.hpp"
#include "densa/core/error.hpp"
#include "densa/core/orient.hpp"
#include "densa/core/resample.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/io/png.hpp"
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
#include <yaml-cpp/yaml.h>

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

std::string mm(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

/// Every scalar key of a pretraining config, in the order config.yaml lists them.
const std::vector<ConfigField<PretrainConfig>>& pretrainFields() {
  using C = PretrainConfig;
  static const std::vector<ConfigField<C>> fields{
      configField("tumour_fraction", &C::tumourFraction),
      configField("variant", &C::variant),
      configField("preset", &C::preset),
      configField("crop_size", &C::cropSize),
      configField("spacing_mm", &C::spacingMm),
      configField("hu_min", &C::huMin),
      configField("hu_max", &C::huMax),
      configField("rotation_degrees", &C::rotationDegrees),
      configField("scale_min", &C::scaleMin),
      configField("scale_max", &C::scaleMax),
      configField("diffeomorphic", &C::diffeomorphic),
      configField("steps", &C::steps),
      configField("learning_rate", &C::learningRate),
      configField("seed", &C::seed),
      configField("log_every", &C::logEvery),
      configField("checkpoint_every", &C::checkpointEvery),
      configField("workers", &C::workers),
      configField("threads", &C::threads),
      configField("device", &C::device),
  };
  return fields;
}

void applyKey(PretrainConfig& c, const std::string& key, const YAML::Node& v) {
  if (key == "datasets") {
    c.datasets.clear();
    if (v.IsSequence()) {
      for (const auto& d : v) {
        c.datasets.emplace_back(
            configValue<std::string>(d.IsMap() ? d["path"] : d, "datasets.path"));
      }
    } else {
      c.datasets.emplace_back(configValue<std::string>(v, key));
    }
  } else if (key == "labelled") {
    c.labelled = parseTrainDatasets(v, key);
  } else {
    applyConfigField(pretrainFields(), c, key, v);
  }
}

std::string toYaml(const PretrainConfig& c) {
  YAML::Emitter e;
  e << YAML::BeginMap << YAML::Key << "datasets" << YAML::Value << YAML::BeginSeq;
  for (const auto& d : c.datasets) {
    e << YAML::BeginMap << YAML::Key << "path" << YAML::Value << d.string() << YAML::EndMap;
  }
  e << YAML::EndSeq;
  if (!c.labelled.empty()) {
    e << YAML::Key << "labelled" << YAML::Value;
    emitTrainDatasets(e, c.labelled);
  }
  emitConfigFields(pretrainFields(), c, e);
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

// ---------------------------------------------------------------------------------------------
// Pairs

struct Pair {
  torch::Tensor a;         ///< [1, 1, S, S, S] in [0, 1], after the shared spatial transform
  torch::Tensor b;         ///< a different volume, same transform
  torch::Tensor corrupted; ///< Ã: a with the appearance corruption (mip)
  torch::Tensor x;         ///< a labelled crop, same transform (semi)
  torch::Tensor y;         ///< its labels [1, S, S, S] int64 (nearest)
};

/// A crop of `size`³ at a random position (zero-padded where the volume is smaller); crops that
/// are mostly air are redrawn a few times.
torch::Tensor randomCrop(const torch::Tensor& volume, int size, std::mt19937_64& rng) {
  const auto d = volume.size(2);
  const auto h = volume.size(3);
  const auto w = volume.size(4);
  torch::Tensor best;
  double bestMean = -1;
  for (int attempt = 0; attempt < 8; ++attempt) {
    auto pick = [&](std::int64_t n) {
      return n > size ? static_cast<std::int64_t>(models::uniform01(rng) *
                                                  static_cast<double>(n - size + 1))
                      : 0;
    };
    const std::int64_t z = pick(d);
    const std::int64_t y = pick(h);
    const std::int64_t x = pick(w);
    torch::Tensor crop = torch::zeros({1, 1, size, size, size});
    const auto cz = std::min<std::int64_t>(size, d - z);
    const auto cy = std::min<std::int64_t>(size, h - y);
    const auto cx = std::min<std::int64_t>(size, w - x);
    crop.narrow(2, 0, cz).narrow(3, 0, cy).narrow(4, 0, cx).copy_(
        volume.narrow(2, z, cz).narrow(3, y, cy).narrow(4, x, cx));
    const double mean = crop.mean().item<double>();
    if (mean > bestMean) {
      bestMean = mean;
      best = crop;
    }
    if (mean > 0.15) {
      break;
    }
  }
  return best;
}

Pair samplePair(const std::vector<PretrainVolume>& volumes,
                const std::vector<IsoLabelledVolume>& labelled,
                const PretrainConfig& c,
                std::int64_t step,
                int rank) {
  // A pure function of (seed, step, rank): an exact resume replays the same pairs.
  std::seed_seq seq{static_cast<std::uint64_t>(c.seed),
                    static_cast<std::uint64_t>(step),
                    static_cast<std::uint64_t>(rank),
                    std::uint64_t{0x47454d49}};
  std::mt19937_64 rng(seq);
  const std::size_t n = volumes.size();
  const auto ia = static_cast<std::size_t>(models::uniform01(rng) * static_cast<double>(n)) % n;
  std::size_t ib = ia;
  if (n > 1) { // two different subjects (§2.7)
    ib = (ia + 1 + static_cast<std::size_t>(models::uniform01(rng) * static_cast<double>(n - 1))) %
         n;
  }
  Pair p;
  auto a = randomCrop(volumes[ia].image, c.cropSize, rng);
  auto b = randomCrop(volumes[ib].image, c.cropSize, rng);
  models::RandomAffineOptions affine;
  affine.maxRotation = c.rotationDegrees * std::numbers::pi / 180.0;
  affine.minScale = c.scaleMin;
  affine.maxScale = c.scaleMax;
  const auto field = models::randomAffineField({c.cropSize, c.cropSize, c.cropSize}, rng, affine);
  p.a = models::warp(a, field);
  p.b = models::warp(b, field);
  if (labelled.empty()) {
    p.corrupted = models::corruptAppearance(p.a, rng);
  } else {
    const auto& v = labelled[static_cast<std::size_t>(models::uniform01(rng) *
                                                      static_cast<double>(labelled.size())) %
                             labelled.size()];
    auto [x, y] = labelledCrop(v, c.cropSize, c.tumourFraction, rng);
    p.x = models::warp(x, field);
    p.y = models::warp(y, field, models::Interp::Nearest).squeeze(1).round().to(torch::kInt64);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Run folder

std::string metricsHeader(const PretrainConfig& c) {
  return std::string("step,loss,gvs,gss,smooth,") +
         (c.variant == "semi" ? "segmentation" : "restoration") +
         ",pairs_per_second,folding_percent\n";
}

std::vector<std::vector<double>> readMetrics(const fs::path& file) {
  std::vector<std::vector<double>> rows;
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::stringstream ls(line);
    std::string f;
    std::vector<double> row;
    while (std::getline(ls, f, ',')) {
      row.push_back(f.empty() ? 0.0 : std::stod(f));
    }
    if (row.size() == 8) {
      rows.push_back(row);
    }
  }
  return rows;
}

/// Grey panels side by side: the middle axial slice of each [1, 1, D, H, W] tensor in [0, 1].
void writePairPng(const fs::path& file, const std::vector<torch::Tensor>& panels) {
  const auto h = static_cast<std::size_t>(panels.front().size(3));
  const auto w = static_cast<std::size_t>(panels.front().size(4));
  const std::size_t gap = 4;
  const std::size_t width = panels.size() * w + (panels.size() - 1) * gap;
  std::vector<std::uint8_t> rgb(width * h * 3, 255);
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const auto slice = panels[p]
                           .detach()
                           .to(torch::kCPU)
                           .select(2, panels[p].size(2) / 2)
                           .reshape({static_cast<std::int64_t>(h), static_cast<std::int64_t>(w)})
                           .clamp(0, 1)
                           .contiguous();
    const float* v = slice.data_ptr<float>();
    for (std::size_t y = 0; y < h; ++y) {
      for (std::size_t x = 0; x < w; ++x) {
        const auto g = static_cast<std::uint8_t>(std::lround(v[y * w + x] * 255));
        const std::size_t o = (y * width + p * (w + gap) + x) * 3;
        rgb[o] = rgb[o + 1] = rgb[o + 2] = g;
      }
    }
  }
  io::writePngRgb(file, width, h, rgb);
}

void writeReport(const fs::path& run, const PretrainConfig& c, const std::string& note) {
  const auto rows = readMetrics(run / "metrics.csv");
  std::vector<std::pair<double, double>> loss, gvs, gss, smooth, res, folding;
  for (const auto& r : rows) {
    loss.emplace_back(r[0], r[1]);
    gvs.emplace_back(r[0], r[2]);
    gss.emplace_back(r[0], r[3]);
    smooth.emplace_back(r[0], r[4]);
    res.emplace_back(r[0], r[5]);
    folding.emplace_back(r[0], r[7]);
  }
  std::ostringstream html;
  html << reportHead("Densa GEMINI pretraining") << "<h1>GEMINI pretraining (" << c.variant << ", "
       << c.preset << ")</h1><p>" << rows.size() << " logged steps. " << note << "</p>"
       << svgChart("L_GEMINI = 1.0·GVS + 0.8·GSS + 0.4·smooth", loss, "total")
       << svgChart("GVS (masked local NCC) and GSS (masked cosine)", gvs, "GVS", gss, "GSS")
       << svgChart("Smoothness of the fields", smooth, "smooth")
       << (c.variant == "semi" ? svgChart("Segmentation of the labelled crops (100·(CE/K + Dice))",
                                          res,
                                          "segmentation")
                               : svgChart("Restoration (100·MSE)", res, "restoration"))
       << svgChart("Folding voxels of φ_AB (|J| ≤ 0), %", folding, "folding %");
  if (fs::exists(run / "pair.png")) {
    html << "<h2>Last logged pair (middle axial slice)</h2><p>A, B, A warped onto B by φ_AB, "
         << (c.variant == "semi" ? "a labelled crop, its liver probability"
                                 : "Ã (corrupted A), restored A")
         << "</p><img src='pair.png' style='max-width:100%'>";
  }
  html << "<h2>Configuration</h2><pre>" << toYaml(c)
       << "</pre><p>Files: metrics.csv, train.log, last.densa (a <code>gemini</code> checkpoint: "
          "<code>densa register</code>, transfer), state.pt (resume with <code>densa pretrain "
          "gemini --resume "
       << run.string() << "</code>).</p></body></html>\n";
  io::writeTextAtomically(run / "report.html", html.str());
}

} // namespace

PretrainConfig loadPretrainConfig(const fs::path& file, const std::vector<std::string>& overrides) {
  PretrainConfig c;
  readConfig(file, overrides, [&c](const std::string& key, const YAML::Node& value) {
    applyKey(c, key, value);
  });
  for (auto& d : c.datasets) {
    d = configRelative(file, d);
  }
  for (auto& d : c.labelled) {
    d.path = configRelative(file, d.path);
  }
  if (c.datasets.empty()) {
    throw core::InvalidArgument("config " + file.string() + ": no datasets");
  }
  if (c.variant != "mip" && c.variant != "semi") {
    throw core::InvalidArgument("config key 'variant': expected mip or semi, got '" + c.variant +
                                "'");
  }
  if (c.steps <= 0 || c.cropSize < 16 || c.cropSize % 16 != 0 || c.spacingMm <= 0 ||
      c.huMax <= c.huMin || c.scaleMin <= 0 || c.scaleMax < c.scaleMin || c.logEvery <= 0 ||
      c.checkpointEvery <= 0) {
    throw core::InvalidArgument("config: steps > 0, crop_size a multiple of 16, spacing_mm > 0, "
                                "hu_max > hu_min, 0 < scale_min <= scale_max, log_every and "
                                "checkpoint_every > 0");
  }
  return c;
}

int runPretrain(const PretrainCommand& command, std::ostream& out, std::ostream& err) {
  fs::path run = command.runDir;
  PretrainConfig c;
  if (command.resume) {
    run = *command.resume;
    c = loadPretrainConfig(run / "config.yaml", command.overrides);
  } else {
    if (!command.config) {
      throw core::InvalidArgument("densa pretrain gemini needs --config FILE (or --resume RUN)");
    }
    c = loadPretrainConfig(*command.config, command.overrides);
    if (run.empty()) {
      run = fs::path("runs") / ("gemini-" + command.config->stem().string());
    }
  }
  models::setThreads(c.threads);
  const torch::Device device(models::resolveDevice(c.device));
  const auto distributed = models::DistributedContext::fromEnvironment(device);
  const int rank = distributed ? distributed->rank() : 0;
  const int world = distributed ? distributed->worldSize() : 1;
  const bool main = rank == 0;
  fs::create_directories(run);
  std::ofstream log;
  if (main) {
    log.open(run / "train.log", std::ios::app);
    if (!command.resume) {
      io::writeTextAtomically(run / "config.yaml", toYaml(c));
    }
  }
  auto say = [&](const std::string& line) {
    if (main) {
      out << line << "\n";
      log << line << "\n";
      log.flush();
    }
  };
  say("densa " + std::string(build::kVersion) + " (git " + build::kGitHash +
      ") pretrain gemini: " + run.string());

  // Data: every volume resampled to the isotropic spacing and scaled to [0, 1] once.
  const PretrainPreprocessing pre{c.spacingMm, c.huMin, c.huMax};
  std::vector<PretrainVolume> volumes = loadPretrainVolumes(c.datasets, pre, err);
  // GEMINI-Semi: the labelled cases on the same isotropic grid; their images join the pool.
  std::vector<IsoLabelledVolume> labelled;
  if (c.variant == "semi") {
    if (c.labelled.empty()) {
      throw core::InvalidArgument("variant semi needs 'labelled': datasets with label maps");
    }
    for (const auto& d : c.labelled) {
      for (const auto& lc : readDataset(d.path).cases) {
        labelled.push_back(
            toIsoLabelled(loadTrainingVolume(lc, d.labelMap), c.spacingMm, c.huMin, c.huMax));
        volumes.push_back({labelled.back().id, labelled.back().image});
      }
    }
  }
  if (volumes.empty()) {
    throw core::InputError(c.datasets.front(), "holds no CT volume to pretrain on");
  }
  say(std::to_string(volumes.size()) + " volume(s) at " + mm(c.spacingMm) + " mm; crops of " +
      std::to_string(c.cropSize) + "³ voxels; " + c.preset + " preset on " + device.str() +
      (world > 1 ? "; data-parallel rank " + std::to_string(rank) + " of " + std::to_string(world) +
                       " (" + distributed->backend() + ")"
                 : std::string()));
  if (volumes.size() == 1) {
    say("warning: one volume only: pairs are two crops of the same subject, not two subjects");
  }

  // Network, card and optimiser.
  models::ModelCard card = models::makeModelCard("gemini", c.preset);
  auto& options = std::get<models::GeminiOptions>(card.options);
  options.diffeomorphic = c.diffeomorphic;
  options.restorationHead = c.variant == "mip";
  options.segmentationClasses = c.variant == "semi" ? 3 : 0;
  card.labels = {"background", "liver", "tumour"};
  card.preprocessing.huMin = c.huMin;
  card.preprocessing.huMax = c.huMax;
  card.preprocessing.intensityOffset = 0;
  card.preprocessing.spacingPolicy = "isotropic " + mm(c.spacingMm) +
                                     " mm; HU window "
                                     "scaled to [0, 1]";
  card.provenance.densaVersion = build::kVersion;
  card.provenance.gitSha = build::kGitHash;
  card.provenance.trainingStage = "gemini-" + c.variant;
  card.provenance.trainingData = std::to_string(volumes.size() - labelled.size()) +
                                 " unlabelled and " + std::to_string(labelled.size()) +
                                 " labelled CT volume(s)";
  torch::manual_seed(c.seed);
  models::AnyNet any = models::makeNet(card.options);
  models::GeminiNet& net = std::get<models::GeminiNet>(any);
  net->to(device);
  net->train();
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(c.learningRate));
  const fs::path stateFile =
      run / (world > 1 ? "state-rank" + std::to_string(rank) + ".pt" : std::string("state.pt"));
  std::int64_t step = 0;
  if (command.resume) {
    step = loadRunState(stateFile, *net, optimizer, device).step;
    say("resumed at step " + std::to_string(step));
  } else if (distributed) {
    broadcastParameters(*net, *distributed);
  }
  if (main && (!fs::exists(run / "metrics.csv") || !command.resume)) {
    io::writeTextAtomically(run / "metrics.csv", metricsHeader(c));
  }

  auto saveState = [&] {
    saveRunState(stateFile, *net, optimizer, step, -1);
    if (main) {
      models::saveCheckpoint(any, card, run / "last.densa");
      if (c.variant == "semi") {
        // The segmentation model alone: backbone + segmentation head as a "gemini-unet" (the
        // parameter names are the same), for densa segment and the viewer.
        models::ModelCard unetCard = card;
        unetCard.options = models::transferOptions(options, 3);
        models::AnyNet unet = models::makeNet(unetCard.options);
        const auto all = models::stateDict(*net);
        std::map<std::string, torch::Tensor> subset;
        for (const auto& [name, value] : models::stateDict(*models::moduleOf(unet))) {
          subset[name] = all.at(name);
        }
        models::loadStateDict(*models::moduleOf(unet), subset, (run / "last.densa").string());
        models::saveCheckpoint(unet, unetCard, run / "segmenter.densa");
      }
    }
  };

  auto optimise = [&](const torch::Tensor& loss) {
    return optimiserStep(loss, *net, optimizer, distributed.get());
  };

  std::deque<std::future<Pair>> ahead;
  std::int64_t queued = step;
  auto refill = [&] {
    while (static_cast<int>(ahead.size()) < std::max(1, c.workers) && queued < c.steps) {
      ahead.push_back(std::async(std::launch::async,
                                 samplePair,
                                 std::cref(volumes),
                                 std::cref(labelled),
                                 std::cref(c),
                                 queued,
                                 rank));
      ++queued;
    }
  };
  refill();
  Progress progress("pretraining", err);
  std::array<double, 5> sums{};
  std::int64_t count = 0;
  std::int64_t skipped = 0;
  auto windowStart = Clock::now();
  while (step < c.steps) {
    Pair pair = ahead.front().get();
    ahead.pop_front();
    refill();
    const auto a = pair.a.to(device);
    const auto b = pair.b.to(device);
    // Step 1: the alignment objective L_GEMINI (GVS + GSS + smoothness).
    const models::GeminiAlignmentLoss l = models::geminiAlignmentLoss(net, a, b);
    const double total = l.total.item<double>();
    const double gvs = l.gvs.item<double>();
    const double gss = l.gss.item<double>();
    const double smooth = l.smooth.item<double>();
    skipped += optimise(l.total) ? 0 : 1;
    const torch::Tensor flowAB = l.flowAB.detach();
    // Step 2 (a second Adam step in the same iteration, as the reference): self-restoration
    // (mip) or segmentation of a labelled crop (semi).
    torch::Tensor second;
    torch::Tensor secondLoss;
    if (c.variant == "semi") {
      const torch::Tensor logits = net->segment(pair.x.to(device));
      secondLoss = models::semiSegmentationLoss(logits, pair.y.to(device));
      second = torch::softmax(logits.detach(), 1).narrow(1, 1, 1);
    } else {
      second = net->restore(pair.corrupted.to(device));
      secondLoss = models::restorationLoss(second, a);
    }
    const double res = secondLoss.item<double>();
    skipped += optimise(secondLoss) ? 0 : 1;
    ++step;
    sums[0] += total;
    sums[1] += gvs;
    sums[2] += gss;
    sums[3] += smooth;
    sums[4] += res;
    ++count;
    progress.update(static_cast<std::size_t>(step), static_cast<std::size_t>(c.steps));
    if (main && (step % c.logEvery == 0 || step == c.steps)) {
      const double seconds = std::chrono::duration<double>(Clock::now() - windowStart).count();
      const models::JacobianStats jac = models::jacobianStats(flowAB.to(torch::kCPU));
      std::ostringstream row;
      row << step << "," << sums[0] / count << "," << sums[1] / count << "," << sums[2] / count
          << "," << sums[3] / count << "," << sums[4] / count << ","
          << static_cast<double>(count * world) / std::max(seconds, 1e-9) << ","
          << 100.0 * jac.foldingFraction << "\n";
      {
        std::ofstream csv(run / "metrics.csv", std::ios::app);
        csv << row.str();
      }
      std::ostringstream line;
      line << std::setprecision(4) << "step " << step << "/" << c.steps << "  loss "
           << sums[0] / count << " (GVS " << sums[1] / count << ", GSS " << sums[2] / count
           << ", smooth " << sums[3] / count << ")  "
           << (c.variant == "semi" ? "segmentation " : "restoration ") << sums[4] / count
           << "  folding " << 100.0 * jac.foldingFraction << " %";
      if (skipped > 0) {
        line << "  (" << skipped << " non-finite step(s) skipped)";
      }
      if (progress.interactive()) {
        log << line.str() << "\n";
      } else {
        say(line.str());
      }
      {
        torch::NoGradGuard noGrad;
        writePairPng(run / "pair.png",
                     {pair.a,
                      pair.b,
                      models::warp(a, flowAB).to(torch::kCPU),
                      c.variant == "semi" ? pair.x : pair.corrupted,
                      second.detach().to(torch::kCPU)});
      }
      sums = {};
      count = 0;
      windowStart = Clock::now();
    }
    if (step % c.checkpointEvery == 0 || step == c.steps) {
      saveState();
      if (main) {
        writeReport(run, c, "Last checkpoint at step " + std::to_string(step) + ".");
      }
    }
  }
  for (auto& f : ahead) {
    f.wait();
  }
  progress.finish();
  if (distributed) {
    distributed->barrier();
  }
  say("done: " + (run / "last.densa").string() + ", report " + (run / "report.html").string());
  return kExitOk;
}

} // namespace densa::app
