// SPDX-License-Identifier: Apache-2.0
// `densa train adsl`: attention-based dynamic subspace learners (methods-spec §3.3-§3.6) on CT
// patches centred on labelled structures.
#include "densa/app/adsl.hpp"
#include "densa/app/datasets.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/app/vector_search.hpp"
#include "densa/build_info.hpp"
#include "densa/core/error.hpp"
#include "densa/core/retrieval.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/models/adsl_options.hpp"
#include "densa/models/error.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/runtime.hpp"
#include "densa/models/torch/adsl.hpp"
#include "densa/models/torch/adsl_losses.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include "adsl_data.hpp"
#include "adsl_embed.hpp"
#include "progress.hpp"
#include "run_config.hpp"
#include "svg_chart.hpp"

#include <nlohmann/json.hpp>
#include <torch/nn/functional/normalization.h>
#include <torch/optim/adam.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

namespace densa::app {

namespace fs = std::filesystem;

namespace {

/// Every scalar key of an ADSL config, in the order config.yaml lists them.
const std::vector<ConfigField<AdslTrainConfig>>& adslFields() {
  using C = AdslTrainConfig;
  static const std::vector<ConfigField<C>> fields{
      configField("preset", &C::preset),
      configField("freeze_batchnorm", &C::freezeBatchNorm),
      configField("self_supervised", &C::selfSupervised),
      configField("tile_step_mm", &C::tileStepMm),
      configField("init_from", &C::initFrom),
      configField("patch_mm", &C::patchMm),
      configField("patch_pixels", &C::patchPixels),
      configField("hu_min", &C::huMin),
      configField("hu_max", &C::huMax),
      configField("max_per_class", &C::maxPerClass),
      configField("min_area_mm2", &C::minAreaMm2),
      configField("holdout", &C::holdout),
      configField("holdout_every", &C::holdoutEvery),
      configField("holdout_block_mm", &C::holdoutBlockMm),
      configField("epochs", &C::epochs),
      configField("finetune_epoch", &C::finetuneEpoch),
      configField("recluster_every", &C::reclusterEvery),
      configField("patience", &C::patience),
      configField("dynamic", &C::dynamic),
      configField("learners", &C::learners),
      configField("batch_size", &C::batchSize),
      configField("per_class", &C::perClass),
      configField("batches_per_epoch", &C::batchesPerEpoch),
      configField("lr_backbone", &C::lrBackbone),
      configField("lr_embedding", &C::lrEmbedding),
      configField("weight_decay", &C::weightDecay),
      configField("alpha", &C::alpha),
      configField("beta", &C::beta),
      configField("cutoff", &C::cutoff),
      configField("scale_min", &C::scaleMin),
      configField("seed", &C::seed),
      configField("threads", &C::threads),
      configField("device", &C::device),
      configField("cache_dir", &C::cacheDir),
  };
  return fields;
}

void applyKey(AdslTrainConfig& c, const std::string& key, const YAML::Node& v) {
  if (key != "datasets") {
    applyConfigField(adslFields(), c, key, v);
    return;
  }
  c.datasets.clear();
  for (const auto& d : v) {
    AdslDataset ds;
    ds.path = configValue<std::string>(d["path"], "datasets.path");
    if (!d["classes"] || !d["classes"].IsMap()) {
      throw core::InvalidArgument("config key 'datasets': each dataset needs 'classes', a map "
                                  "of label value to class name, e.g. {5: liver, 1: spleen}");
    }
    for (const auto& kv : d["classes"]) {
      ds.classes[configValue<int>(kv.first, "classes")] =
          configValue<std::string>(kv.second, "classes");
    }
    c.datasets.push_back(ds);
  }
}

std::string configYaml(const AdslTrainConfig& c) {
  YAML::Emitter e;
  e << YAML::BeginMap << YAML::Key << "datasets" << YAML::Value << YAML::BeginSeq;
  for (const auto& d : c.datasets) {
    e << YAML::BeginMap << YAML::Key << "path" << YAML::Value << fs::absolute(d.path).string()
      << YAML::Key << "classes" << YAML::Value << YAML::Flow << d.classes << YAML::EndMap;
  }
  e << YAML::EndSeq;
  emitConfigFields(adslFields(), c, e);
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

/// Self-supervised tile classes are numbered from here (labelled classes are 0, 1, …).
constexpr int kFirstTileClass = 1 << 20;

/// Starts `net`'s backbone and attention from `file` (an "adsl" checkpoint of the same preset).
void initialiseFrom(models::AdslNet& net, const fs::path& file) {
  const models::LoadedModel source = models::loadCheckpoint(file);
  const auto* other = std::get_if<models::AdslNet>(&source.net);
  if (other == nullptr) {
    throw models::ModelError(file.string() + ": init_from needs an 'adsl' checkpoint, not a '" +
                             std::string(models::architectureId(source.card.options)) + "'");
  }
  const auto from = models::stateDict(**other);
  torch::NoGradGuard noGrad;
  int copied = 0;
  for (auto& item : net->named_parameters()) {
    if (item.key().rfind("backbone.", 0) != 0 && item.key().rfind("attention.", 0) != 0) {
      continue;
    }
    const auto it = from.find(item.key());
    if (it == from.end() || !it->second.sizes().equals(item.value().sizes())) {
      throw models::ModelError(file.string() + ": '" + item.key() +
                               "' is missing or has another shape (another preset?)");
    }
    item.value().copy_(it->second);
    ++copied;
  }
  for (auto& item : net->named_buffers()) {
    const auto it = from.find(item.key());
    if ((item.key().rfind("backbone.", 0) == 0 || item.key().rfind("attention.", 0) == 0) &&
        it != from.end() && it->second.sizes().equals(item.value().sizes())) {
      item.value().copy_(it->second);
    }
  }
  if (copied == 0) {
    throw models::ModelError(file.string() + ": no backbone parameter to start from");
  }
}

/// The patches of every dataset, split into training and held-out items; class names.
struct ItemSet {
  std::vector<AdslItem> train;
  std::vector<AdslItem> heldOut; ///< validation: model selection and the split trigger
  std::vector<AdslItem> test;    ///< never seen in training or selection; scored at the end
  std::size_t tileClasses = 0;   ///< self-supervised: one class per tile
  std::vector<std::string> classNames;
};

ItemSet loadItems(const AdslTrainConfig& c,
                  const AdslPatchSpec& spec,
                  const fs::path& cache,
                  std::ostream& say) {
  ItemSet s;
  std::map<std::string, int> classId;
  std::size_t caseIndex = 0;
  for (const auto& d : c.datasets) {
    std::map<int, int> valueMap;
    for (const auto& [value, name] : d.classes) {
      auto [it, inserted] = classId.emplace(name, static_cast<int>(s.classNames.size()));
      if (inserted) {
        s.classNames.push_back(name);
      }
      valueMap[value] = it->second + 1;
    }
    const Dataset ds = readDataset(d.path);
    for (const auto& lc : ds.cases) {
      const TrainingVolume v = loadTrainingVolumeCached(lc, cache, valueMap);
      auto items = labelledPatches(v,
                                   static_cast<int>(s.classNames.size()),
                                   spec,
                                   c.maxPerClass,
                                   c.minAreaMm2,
                                   c.seed + 7919 * caseIndex);
      // Every holdout_every-th unit (case, or block of slices) is held out; held-out units
      // alternate between validation and test.
      const auto unitOf = [&](const AdslItem& item) {
        return c.holdout == "cases"
                   ? static_cast<int>(caseIndex)
                   : static_cast<int>(
                         std::floor(item.slice * v.ct.geometry().spacing[2] / c.holdoutBlockMm));
      };
      for (auto& item : items) {
        const int unit = unitOf(item);
        if (unit % c.holdoutEvery != c.holdoutEvery - 1) {
          if (!c.selfSupervised) {
            s.train.push_back(std::move(item));
          }
        } else if ((unit / c.holdoutEvery) % 2 == 0) {
          s.heldOut.push_back(std::move(item));
        } else {
          s.test.push_back(std::move(item));
        }
      }
      std::size_t tiles = 0;
      if (c.selfSupervised) {
        // Each body tile of the training slabs is a class of its own, entered twice so that the
        // class-balanced sampler draws it (its views differ by the training transform).
        for (auto& t : bodyTiles(v.ct, spec, c.tileStepMm)) {
          AdslItem item;
          item.image = t.image;
          item.caseId = v.id;
          item.slice = t.slice;
          item.centreIndex = t.centreIndex;
          item.centreMm = t.centreMm;
          if (unitOf(item) % c.holdoutEvery == c.holdoutEvery - 1) {
            continue;
          }
          item.label = kFirstTileClass + static_cast<int>(s.tileClasses++);
          s.train.push_back(item);
          s.train.push_back(std::move(item));
          ++tiles;
        }
      }
      say << "  " << lc.id << ": " << v.ct.size()[0] << "x" << v.ct.size()[1] << "x"
          << v.ct.size()[2] << ", " << items.size() << " labelled patches";
      if (c.selfSupervised) {
        say << ", " << tiles << " unlabelled training tiles";
      }
      say << "\n";
      ++caseIndex;
    }
  }
  return s;
}

std::vector<int> labelsOf(const std::vector<AdslItem>& items) {
  std::vector<int> l;
  l.reserve(items.size());
  for (const auto& i : items) {
    l.push_back(i.label);
  }
  return l;
}

std::vector<torch::Tensor> imagesOf(const std::vector<AdslItem>& items) {
  std::vector<torch::Tensor> v;
  v.reserve(items.size());
  for (const auto& i : items) {
    v.push_back(i.image);
  }
  return v;
}

/// Recall@K and NMI of `features` [N, D] for `labels` (§3.7): exact Euclidean kNN without the
/// query, k-means with as many clusters as classes present.
struct RetrievalScores {
  core::RecallReport recall;
  double nmi = 0;
};

RetrievalScores score(const torch::Tensor& features,
                      const std::vector<int>& labels,
                      std::uint64_t seed) {
  const torch::Tensor f = features.to(torch::kCPU, torch::kFloat32).contiguous();
  const auto n = f.size(0);
  const auto dim = static_cast<int>(f.size(1));
  RetrievalScores s;
  const auto neighbours = nearestNeighbours(f.data_ptr<float>(), n, dim, 8, true);
  s.recall = core::recallAtK(neighbours, labels, {1, 2, 4, 8});
  const std::set<int> present(labels.begin(), labels.end());
  const auto clusters = kmeansAssign(
      f.data_ptr<float>(), n, dim, static_cast<int>(present.size()), 100, static_cast<int>(seed));
  s.nmi = core::normalizedMutualInformation(labels, clusters);
  return s;
}

nlohmann::json scoresJson(const RetrievalScores& s, const std::vector<std::string>& names) {
  nlohmann::json j;
  j["nmi"] = s.nmi;
  for (std::size_t i = 0; i < s.recall.ks.size(); ++i) {
    j["recall_at_" + std::to_string(s.recall.ks[i])] = s.recall.overall[i];
  }
  nlohmann::json per = nlohmann::json::object();
  for (const auto& [cls, values] : s.recall.perClass) {
    nlohmann::json pc;
    pc["items"] = s.recall.classCount.at(cls);
    for (std::size_t i = 0; i < s.recall.ks.size(); ++i) {
      pc["recall_at_" + std::to_string(s.recall.ks[i])] = values[i];
    }
    per[cls >= 0 && static_cast<std::size_t>(cls) < names.size()
            ? names[static_cast<std::size_t>(cls)]
            : std::to_string(cls)] = pc;
  }
  j["per_class"] = per;
  return j;
}

struct EpochRow {
  int epoch = 0;
  double loss = 0;
  int learners = 1;
  double nmi = 0;
  double r1 = 0;
  double r2 = 0;
  double r4 = 0;
  double r8 = 0;
  std::string event;
};

void writeReport(const fs::path& run,
                 const AdslTrainConfig& c,
                 const std::vector<EpochRow>& rows,
                 const std::string& note) {
  std::vector<std::pair<double, double>> loss, nmi, r1, k;
  std::string events;
  for (const auto& r : rows) {
    loss.emplace_back(r.epoch, r.loss);
    nmi.emplace_back(r.epoch, r.nmi);
    r1.emplace_back(r.epoch, r.r1);
    k.emplace_back(r.epoch, r.learners);
    if (!r.event.empty()) {
      events += "<li>epoch " + std::to_string(r.epoch) + ": " + r.event + "</li>";
    }
  }
  std::ostringstream html;
  html << reportHead("Densa ADSL run") << "<h1>Densa ADSL run: " << c.preset << "</h1><p>" << note
       << "</p>" << svgChart("Training margin loss", loss, "loss")
       << svgChart("Held-out retrieval", nmi, "NMI", r1, "Recall@1")
       << svgChart("Subspace learners K", k, "K");
  if (!events.empty()) {
    html << "<h2>Events</h2><ul>" << events << "</ul>";
  }
  html << "<p>Files: config.yaml, metrics.csv, train.log, retrieval.json, "
          "retrieval_per_class.csv, best.densa (best held-out NMI), last.densa, state.pt, "
          "adsl_state.json (resume with <code>densa train adsl --resume "
       << run.string() << "</code>).</p></body></html>\n";
  io::writeTextAtomically(run / "report.html", html.str());
}

/// Items of each class within each cluster (§3.3 step 4: classes with one item are dropped).
using ClusterClasses = std::vector<std::map<int, std::vector<std::size_t>>>;

ClusterClasses groupByCluster(const std::vector<int>& cluster,
                              const std::vector<int>& labels,
                              int k) {
  ClusterClasses g(static_cast<std::size_t>(k));
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    if (cluster[i] >= 0 && cluster[i] < k) {
      g[static_cast<std::size_t>(cluster[i])][labels[i]].push_back(i);
    }
  }
  for (auto& classes : g) {
    std::erase_if(classes, [](const auto& kv) { return kv.second.size() < 2; });
  }
  return g;
}

/// A class-balanced batch from one cluster: batch/perClass classes, perClass items each
/// (without replacement when the class has enough).
std::vector<std::size_t> balancedBatch(const std::map<int, std::vector<std::size_t>>& classes,
                                       int batchSize,
                                       int perClass,
                                       std::mt19937_64& rng) {
  std::vector<int> ids;
  for (const auto& [cls, items] : classes) {
    ids.push_back(cls);
  }
  std::shuffle(ids.begin(), ids.end(), rng);
  const auto want = static_cast<std::size_t>(std::max(2, batchSize / std::max(1, perClass)));
  ids.resize(std::min(ids.size(), want));
  std::vector<std::size_t> batch;
  for (const int cls : ids) {
    auto pool = classes.at(cls);
    std::shuffle(pool.begin(), pool.end(), rng);
    for (int t = 0; t < perClass; ++t) {
      batch.push_back(pool[static_cast<std::size_t>(t) % pool.size()]);
    }
  }
  return batch;
}

} // namespace

AdslTrainConfig loadAdslConfig(const fs::path& file, const std::vector<std::string>& overrides) {
  AdslTrainConfig c;
  readConfig(file, overrides, [&c](const std::string& key, const YAML::Node& value) {
    applyKey(c, key, value);
  });
  for (auto& d : c.datasets) {
    d.path = configRelative(file, d.path);
  }
  if (c.datasets.empty()) {
    throw core::InvalidArgument("config " + file.string() + ": no datasets");
  }
  if (c.holdout != "slices" && c.holdout != "cases") {
    throw core::InvalidArgument("config key 'holdout': expected slices or cases, got '" +
                                c.holdout + "'");
  }
  if (c.epochs <= 0 || c.batchSize < 4 || c.perClass < 2 || c.learners < 1 || c.holdoutEvery < 2 ||
      c.patchMm <= 0 || c.patchPixels < 0 || c.huMax <= c.huMin || c.reclusterEvery < 1 ||
      c.scaleMin <= 0 || c.scaleMin > 1) {
    throw core::InvalidArgument(
        "config " + file.string() +
        ": epochs > 0, batch_size >= 4, per_class >= 2, learners >= 1, holdout_every >= 2, "
        "patch_mm > 0, hu_max > hu_min, recluster_every >= 1 and 0 < scale_min <= 1 are required");
  }
  return c;
}

int runTrainAdsl(const TrainCommand& command, std::ostream& out, std::ostream& err) {
  using Clock = std::chrono::steady_clock;
  fs::path run = command.resume ? *command.resume : command.runDir;
  AdslTrainConfig c;
  if (command.resume) {
    c = loadAdslConfig(run / "config.yaml", command.overrides);
  } else {
    if (!command.config) {
      throw core::InvalidArgument("densa train adsl needs --config FILE (or --resume RUN)");
    }
    c = loadAdslConfig(*command.config, command.overrides);
    fs::create_directories(run);
    io::writeTextAtomically(run / "config.yaml", configYaml(c));
  }
  models::setThreads(c.threads);
  const torch::Device device(models::resolveDevice(c.device));
  std::ofstream log(run / "train.log", std::ios::app);
  auto say = [&](const std::string& line) {
    out << line << "\n";
    log << line << "\n" << std::flush;
  };

  models::ModelCard card = models::makeModelCard("adsl", c.preset);
  auto& options = std::get<models::AdslOptions>(card.options);
  AdslPatchSpec spec;
  spec.patchMm = c.patchMm;
  spec.pixels = c.patchPixels > 0 ? c.patchPixels : options.inputSize;
  spec.huMin = c.huMin;
  spec.huMax = c.huMax;
  options.inputSize = spec.pixels;
  options.freezeBatchNorm = c.freezeBatchNorm;
  setAdslContract(card, spec);
  card.provenance.densaVersion = build::kVersion;
  card.provenance.gitSha = build::kGitHash;
  card.provenance.trainingStage =
      c.selfSupervised ? "self-supervised" : (c.initFrom ? "init-from-checkpoint" : "scratch");

  std::ostringstream loading;
  loading << "densa train adsl: reading " << c.datasets.size() << " dataset(s)\n";
  const fs::path cache = c.cacheDir.empty() ? run / "cache" : c.cacheDir;
  ItemSet items = loadItems(c, spec, cache, loading);
  say(loading.str());
  card.labels = items.classNames;
  if (items.train.empty() || items.heldOut.empty()) {
    throw core::InvalidArgument("densa train adsl: " + std::to_string(items.train.size()) +
                                " training and " + std::to_string(items.heldOut.size()) +
                                " held-out patches; both sets need patches (check classes, "
                                "min_area_mm2 and holdout)");
  }
  const std::vector<int> trainLabels = labelsOf(items.train);
  const std::vector<int> heldLabels = labelsOf(items.heldOut);
  const torch::Tensor trainImages = stackImages(imagesOf(items.train));
  const torch::Tensor heldImages = stackImages(imagesOf(items.heldOut));
  {
    std::ostringstream s;
    s << "  " << items.classNames.size() << " classes, " << items.train.size() << " training and "
      << items.heldOut.size() << " validation and " << items.test.size() << " test patches of "
      << spec.patchMm << " mm at " << spec.pixels << " px; adsl/" << c.preset << " on "
      << device.str();
    say(s.str());
  }

  torch::manual_seed(static_cast<std::uint64_t>(c.seed));
  models::AnyNet any = models::makeNet(card.options);
  models::AdslNet& net = std::get<models::AdslNet>(any);
  if (c.learners > 1) {
    net->setEqualLearners(c.learners);
  }
  if (c.initFrom && !command.resume) {
    initialiseFrom(net, *c.initFrom);
    say("  backbone and attention from " + c.initFrom->string());
  }
  net->to(device);
  net->train();
  std::vector<torch::optim::OptimizerParamGroup> paramGroups;
  paramGroups.emplace_back(
      net->backboneParameters(),
      std::make_unique<torch::optim::AdamOptions>(
          torch::optim::AdamOptions(c.lrBackbone).weight_decay(c.weightDecay)));
  paramGroups.emplace_back(
      net->embeddingParameters(),
      std::make_unique<torch::optim::AdamOptions>(
          torch::optim::AdamOptions(c.lrEmbedding).weight_decay(c.weightDecay)));
  torch::optim::Adam optimizer(std::move(paramGroups),
                               torch::optim::AdamOptions(c.lrBackbone).weight_decay(c.weightDecay));

  // Run state beyond weights and optimiser.
  int epoch = 0;
  int bestEpoch = 0;
  double bestNmi = -1;
  bool exploration = true;
  bool reclusterPending = false;
  std::vector<int> cluster(items.train.size(), 0);
  std::vector<EpochRow> rows;
  nlohmann::json retrieval;
  const fs::path stateFile = run / "state.pt";
  const fs::path adslStateFile = run / "adsl_state.json";
  if (command.resume) {
    std::ifstream in(adslStateFile);
    if (!in) {
      throw core::InputError(adslStateFile, "is missing: nothing to resume");
    }
    const nlohmann::json s = nlohmann::json::parse(in);
    // the learner partition first: the weights' shapes do not depend on it, the buffer does not
    // either, but the loss instances do
    loadRunState(stateFile, *net, optimizer, device);
    epoch = s.at("epoch").get<int>();
    bestEpoch = s.at("best_epoch").get<int>();
    bestNmi = s.at("best_nmi").get<double>();
    exploration = s.at("exploration").get<bool>();
    reclusterPending = s.at("recluster_pending").get<bool>();
    cluster = s.at("clusters").get<std::vector<int>>();
    retrieval = s.at("retrieval");
    for (const auto& r : s.at("rows")) {
      rows.push_back({r.at("epoch").get<int>(),
                      r.at("loss").get<double>(),
                      r.at("learners").get<int>(),
                      r.at("nmi").get<double>(),
                      r.at("r1").get<double>(),
                      r.at("r2").get<double>(),
                      r.at("r4").get<double>(),
                      r.at("r8").get<double>(),
                      r.at("event").get<std::string>()});
    }
    if (cluster.size() != items.train.size()) {
      throw core::InputError(adslStateFile, "does not match the training patches (data changed?)");
    }
    say("resumed at epoch " + std::to_string(epoch));
  } else {
    // Baselines before any training (issue #8 item 9): raw pixels and the untrained network's
    // attention-pooled features, on the validation and the test patches.
    say("  baselines: raw pixels and untrained pooled features");
    const auto baselines = [&](const std::vector<AdslItem>& set) {
      nlohmann::json j;
      if (set.empty()) {
        return j;
      }
      const torch::Tensor images = stackImages(imagesOf(set));
      const std::vector<int> labels = labelsOf(set);
      const auto pixels = evalTransform(images).flatten(1);
      j["raw_pixels"] = scoresJson(
          score(torch::nn::functional::normalize(pixels, {}), labels, c.seed), items.classNames);
      j["untrained_pooled"] = scoresJson(
          score(embedBatches(net, images, device).penultimate, labels, c.seed), items.classNames);
      return j;
    };
    retrieval["validation"] = baselines(items.heldOut);
    retrieval["test"] = baselines(items.test);
    io::writeTextAtomically(run / "metrics.csv", "epoch,loss,learners,nmi,r1,r2,r4,r8,event\n");
  }

  models::MarginLossOptions lossOptions;
  lossOptions.alpha = c.alpha;
  lossOptions.beta = c.beta;
  lossOptions.cutoff = c.cutoff;
  Progress progress("training", err);
  const int totalEpochs = c.epochs;
  while (epoch < totalEpochs) {
    const auto start = Clock::now();
    torch::manual_seed(c.seed * 1000003ULL + static_cast<std::uint64_t>(epoch));
    std::mt19937_64 rng(c.seed * 7777777ULL + static_cast<std::uint64_t>(epoch));
    const bool finetune = epoch >= c.finetuneEpoch;
    int k = finetune ? 1 : net->numLearners();
    EpochRow row;
    row.epoch = epoch;
    // Data assignment (§3.3): re-cluster the penultimate features every recluster_every epochs
    // once there is more than one learner; match cluster ids to the previous ones (Hungarian).
    if (finetune) {
      std::fill(cluster.begin(), cluster.end(), 0);
    } else if (k > 1 && (epoch % c.reclusterEvery == 0)) {
      const AdslEmbedding e = embedBatches(net, trainImages, device);
      const torch::Tensor f = e.penultimate.contiguous();
      std::vector<int> fresh =
          kmeansAssign(f.data_ptr<float>(),
                       f.size(0),
                       static_cast<int>(f.size(1)),
                       k,
                       100,
                       static_cast<int>(c.seed + static_cast<std::uint64_t>(epoch)));
      std::vector<int> previous = cluster;
      for (auto& p : previous) {
        p = std::max(p, 0);
      }
      const std::vector<int> map = core::matchClusterIds(previous, fresh, k);
      for (auto& id : fresh) {
        id = map[static_cast<std::size_t>(id)];
      }
      cluster = fresh;
      reclusterPending = false;
      net->train();
    }
    const ClusterClasses groups = groupByCluster(cluster, trainLabels, k);
    // Round-robin over the cluster loaders (§3.3): one batch from cluster 1, one from cluster 2, …
    std::vector<int> schedule;
    {
      std::vector<int> perCluster(static_cast<std::size_t>(k), 0);
      for (int q = 0; q < k; ++q) {
        std::size_t n = 0;
        for (const auto& [cls, idx] : groups[static_cast<std::size_t>(q)]) {
          n += idx.size();
        }
        if (groups[static_cast<std::size_t>(q)].size() >= 2) {
          perCluster[static_cast<std::size_t>(q)] =
              static_cast<int>((n + static_cast<std::size_t>(c.batchSize) - 1) /
                               static_cast<std::size_t>(c.batchSize));
        }
      }
      const int rounds = *std::max_element(perCluster.begin(), perCluster.end());
      for (int r = 0; r < rounds; ++r) {
        for (int q = 0; q < k; ++q) {
          if (r < perCluster[static_cast<std::size_t>(q)]) {
            schedule.push_back(q);
          }
        }
      }
      if (c.batchesPerEpoch > 0 && !schedule.empty()) {
        std::vector<int> fixed;
        for (int b = 0; b < c.batchesPerEpoch; ++b) {
          fixed.push_back(schedule[static_cast<std::size_t>(b) % schedule.size()]);
        }
        schedule = fixed;
      }
    }
    if (schedule.empty()) {
      throw core::InvalidArgument("densa train adsl: no cluster holds two classes with two "
                                  "patches each; add data or lower min_area_mm2");
    }
    // Taylor statistics of the epoch (§3.4): mean over samples of a · ∂L/∂a per dimension.
    torch::Tensor taylor = torch::zeros({options.embeddingDim}, torch::kFloat64);
    std::int64_t taylorCount = 0;
    double lossSum = 0;
    for (std::size_t b = 0; b < schedule.size(); ++b) {
      const int q = schedule[b];
      const auto batch =
          balancedBatch(groups[static_cast<std::size_t>(q)], c.batchSize, c.perClass, rng);
      std::vector<std::int64_t> idx(batch.begin(), batch.end());
      std::vector<std::int64_t> lab;
      for (const auto i : batch) {
        lab.push_back(trainLabels[i]);
      }
      const torch::Tensor x =
          trainTransform(trainImages.index_select(0, torch::tensor(idx)), c.scaleMin, rng)
              .to(device);
      const torch::Tensor y = torch::tensor(lab).to(device);
      models::AdslOutput o = net->forward(x);
      torch::Tensor e;
      if (finetune) {
        e = torch::nn::functional::normalize(o.raw,
                                             torch::nn::functional::NormalizeFuncOptions().dim(1));
      } else {
        o.embedding.retain_grad();
        e = net->learnerEmbedding(o.embedding, q);
      }
      const torch::Tensor loss = models::marginLoss(e, y, lossOptions);
      lossSum += loss.item<double>();
      optimiserStep(loss, *net, optimizer, nullptr);
      if (!finetune && o.embedding.grad().defined()) {
        taylor +=
            (o.embedding.detach() * o.embedding.grad()).sum(0).to(torch::kCPU, torch::kFloat64);
        taylorCount += x.size(0);
      }
      progress.update(b + 1, schedule.size());
    }
    progress.finish();
    row.loss = lossSum / static_cast<double>(schedule.size());
    // Held-out evaluation (§3.7) drives model selection and the split trigger.
    const AdslEmbedding held = embedBatches(net, heldImages, device);
    const RetrievalScores s = score(held.embedding, heldLabels, c.seed);
    row.nmi = s.nmi;
    row.r1 = s.recall.overall[0];
    row.r2 = s.recall.overall[1];
    row.r4 = s.recall.overall[2];
    row.r8 = s.recall.overall[3];
    card.provenance.notes = "epoch " + std::to_string(epoch);
    models::saveCheckpoint(any, card, run / "last.densa");
    if (s.nmi > bestNmi) {
      bestNmi = s.nmi;
      bestEpoch = epoch;
      exploration = true;
      fs::copy_file(run / "last.densa", run / "best.densa", fs::copy_options::overwrite_existing);
      retrieval["best_epoch"] = epoch;
      retrieval["best_learners"] = net->numLearners();
      retrieval["validation"]["embedding"] = scoresJson(s, items.classNames);
      retrieval["validation"]["pooled"] =
          scoresJson(score(held.penultimate, heldLabels, c.seed), items.classNames);
    }
    // Dynamic addition of a learner (§3.4): plateau of the held-out NMI, last learner only.
    if (c.dynamic && epoch > 0 && epoch >= bestEpoch + c.patience && exploration &&
        epoch < c.finetuneEpoch && taylorCount > 0) {
      const auto neurons = net->learnerNeurons();
      const auto& last = neurons.back();
      const torch::Tensor s_ = (taylor / static_cast<double>(taylorCount))
                                   .to(torch::kFloat32)
                                   .index_select(0, torch::tensor(last));
      const torch::Tensor importance =
          models::taylorImportance(s_.unsqueeze(0), torch::ones_like(s_).unsqueeze(0));
      const models::AdslSplitResult split = net->splitLastLearner(importance);
      if (split.split) {
        exploration = false; // re-enabled by the next best NMI: one split per plateau
        reclusterPending = true;
        row.event = "split: learner " + std::to_string(neurons.size() - 1) + " keeps " +
                    std::to_string(split.keptDims) + " dims, new learner " +
                    std::to_string(neurons.size()) + " gets " + std::to_string(split.newDims);
      } else {
        row.event = "plateau; no split (" + std::to_string(last.size()) + " dims, " +
                    std::to_string(split.important.size()) + " important)";
      }
    }
    row.learners = net->numLearners();
    rows.push_back(row);
    ++epoch;
    {
      std::ofstream f(run / "metrics.csv", std::ios::app);
      f << row.epoch << "," << row.loss << "," << row.learners << "," << row.nmi << "," << row.r1
        << "," << row.r2 << "," << row.r4 << "," << row.r8 << "," << row.event << "\n";
    }
    std::ostringstream line;
    line << std::setprecision(4) << "epoch " << row.epoch + 1 << "/" << totalEpochs << "  loss "
         << row.loss << "  K " << row.learners << "  held-out NMI " << row.nmi << "  R@1 " << row.r1
         << "  R@8 " << row.r8 << "  ("
         << std::chrono::duration<double>(Clock::now() - start).count() << " s)";
    if (!row.event.empty()) {
      line << "  " << row.event;
    }
    say(line.str());
    // State for an exact resume at this epoch boundary.
    saveRunState(stateFile, *net, optimizer, epoch, bestNmi);
    nlohmann::json state;
    state["epoch"] = epoch;
    state["best_epoch"] = bestEpoch;
    state["best_nmi"] = bestNmi;
    state["exploration"] = exploration;
    state["recluster_pending"] = reclusterPending;
    state["clusters"] = cluster;
    state["retrieval"] = retrieval;
    nlohmann::json jr = nlohmann::json::array();
    for (const auto& r : rows) {
      jr.push_back({{"epoch", r.epoch},
                    {"loss", r.loss},
                    {"learners", r.learners},
                    {"nmi", r.nmi},
                    {"r1", r.r1},
                    {"r2", r.r2},
                    {"r4", r.r4},
                    {"r8", r.r8},
                    {"event", r.event}});
    }
    state["rows"] = jr;
    io::writeTextAtomically(adslStateFile, state.dump(1));
    io::writeTextAtomically(run / "retrieval.json", retrieval.dump(2) + "\n");
    std::ostringstream csv;
    csv << "class,items,recall_at_1,recall_at_2,recall_at_4,recall_at_8\n";
    if (retrieval["validation"].contains("embedding")) {
      for (const auto& [name, pc] : retrieval["validation"]["embedding"]["per_class"].items()) {
        csv << name << "," << pc["items"] << "," << pc["recall_at_1"] << "," << pc["recall_at_2"]
            << "," << pc["recall_at_4"] << "," << pc["recall_at_8"] << "\n";
      }
    }
    io::writeTextAtomically(run / "retrieval_per_class.csv", csv.str());
    std::ostringstream note;
    note << std::setprecision(4) << "Best held-out NMI " << bestNmi << " at epoch " << bestEpoch
         << " with " << net->numLearners() << " learner(s) now.";
    writeReport(run, c, rows, note.str());
  }
  // The test patches, scored once with the selected model (§3.7 metrics).
  if (!items.test.empty()) {
    models::LoadedModel best = models::loadCheckpoint(run / "best.densa", device);
    auto& bestNet = std::get<models::AdslNet>(best.net);
    const torch::Tensor images = stackImages(imagesOf(items.test));
    const std::vector<int> labels = labelsOf(items.test);
    const AdslEmbedding e = embedBatches(bestNet, images, device);
    retrieval["test"]["embedding"] =
        scoresJson(score(e.embedding, labels, c.seed), items.classNames);
    retrieval["test"]["pooled"] =
        scoresJson(score(e.penultimate, labels, c.seed), items.classNames);
    io::writeTextAtomically(run / "retrieval.json", retrieval.dump(2) + "\n");
    std::ostringstream line;
    line << std::setprecision(4) << "test (" << items.test.size() << " patches, best model): NMI "
         << retrieval["test"]["embedding"]["nmi"].get<double>() << "  R@1 "
         << retrieval["test"]["embedding"]["recall_at_1"].get<double>() << "  R@8 "
         << retrieval["test"]["embedding"]["recall_at_8"].get<double>();
    say(line.str());
  }
  say("done: " + (run / "best.densa").string() + ", report " + (run / "report.html").string());
  return kExitOk;
}

} // namespace densa::app
