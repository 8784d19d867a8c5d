// SPDX-License-Identifier: Apache-2.0
// `densa index` and `densa search`: similar-case retrieval with an ADSL model (methods-spec §3,
// issue #8 items 5-6) over a persistent Faiss + SQLite index (densa/app/case_index.hpp).
#include "densa/app/adsl.hpp"
#include "densa/app/case_index.hpp"
#include "densa/app/case_io.hpp"
#include "densa/app/cases.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/core/error.hpp"
#include "densa/core/hash.hpp"
#include "densa/core/orient.hpp"
#include "densa/core/resample.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/io/image_file.hpp"
#include "densa/io/png.hpp"
#include "densa/models/error.hpp"
#include "densa/models/runtime.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include "adsl_data.hpp"
#include "adsl_embed.hpp"
#include "progress.hpp"

#include <nlohmann/json.hpp>
#include <torch/nn/functional/upsampling.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

namespace densa::app {

namespace fs = std::filesystem;

namespace {

/// The model an index is built with: its file and version ("adsl/<preset>/<hash of the file>").
struct IndexModel {
  fs::path file;
  std::string version;
  models::LoadedModel loaded;
  AdslPatchSpec spec;
};

IndexModel loadIndexModel(const fs::path& file, const torch::Device& device) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw core::InputError(file, "cannot be read");
  }
  std::ostringstream bytes;
  bytes << in.rdbuf();
  IndexModel m{fs::absolute(file), {}, models::loadCheckpoint(file, device), {}};
  if (!std::holds_alternative<models::AdslNet>(m.loaded.net)) {
    throw models::ModelError(file.string() + ": is a '" +
                             std::string(models::architectureId(m.loaded.card.options)) +
                             "' checkpoint; similar-case search needs an 'adsl' model (densa "
                             "train adsl)");
  }
  m.spec = adslContract(m.loaded.card, file);
  m.version = "adsl/" + m.loaded.card.preset + "/" + core::stableHashHex(bytes.str(), 16);
  return m;
}

models::AdslNet& netOf(IndexModel& m) {
  return std::get<models::AdslNet>(m.loaded.net);
}

/// The model file recorded next to an index (DIR/model.json), so that search needs no --model.
void recordModel(const fs::path& dir, const IndexModel& m) {
  nlohmann::json j;
  j["model"] = m.file.string();
  j["version"] = m.version;
  io::writeTextAtomically(dir / "model.json", j.dump(2) + "\n");
}

std::optional<fs::path> recordedModel(const fs::path& dir) {
  std::ifstream in(dir / "model.json");
  if (!in) {
    return std::nullopt;
  }
  try {
    return fs::path(nlohmann::json::parse(in).at("model").get<std::string>());
  } catch (const std::exception&) {
    throw core::InputError(dir / "model.json", "is damaged (expected {\"model\": PATH})");
  }
}

core::Volume<std::int16_t> axialCt(const core::Volume<std::int16_t>& ct) {
  return core::permuteAxes(ct, core::permutationToAxial(ct.geometry().direction));
}

std::vector<float> toVector(const torch::Tensor& row) {
  const torch::Tensor r = row.to(torch::kCPU, torch::kFloat32).contiguous();
  return {r.data_ptr<float>(), r.data_ptr<float>() + r.numel()};
}

/// The case-level vector: the mean of the unit embeddings, L2-normalised.
torch::Tensor caseVector(const torch::Tensor& embeddings) {
  const torch::Tensor mean = embeddings.mean(0);
  return mean / mean.norm().clamp_min(1e-12);
}

/// Units of one CT: body tiles every sliceStepMm, embedded.
struct EmbeddedTiles {
  std::vector<AdslTile> tiles;
  AdslEmbedding embedding;
};

EmbeddedTiles embedTiles(IndexModel& m,
                         const core::Volume<std::int16_t>& ct,
                         double sliceStepMm,
                         const torch::Device& device) {
  EmbeddedTiles e;
  e.tiles = bodyTiles(ct, m.spec, sliceStepMm);
  if (e.tiles.empty()) {
    return e;
  }
  std::vector<torch::Tensor> images;
  for (const auto& t : e.tiles) {
    images.push_back(t.image);
  }
  e.embedding = embedBatches(netOf(m), stackImages(images), device);
  return e;
}

/// An RGB picture of a patch ([1, P, P] in [0, 1]) and its attention map ([1, h, w]): the patch
/// and the patch under a heat overlay, side by side, each `scale`× larger.
std::vector<std::uint8_t> attentionPicture(const torch::Tensor& patch,
                                           const torch::Tensor& attention,
                                           int scale,
                                           std::size_t& width,
                                           std::size_t& height) {
  namespace F = torch::nn::functional;
  const auto p = patch.size(-1);
  const torch::Tensor a = F::interpolate(attention.unsqueeze(0).to(torch::kFloat32),
                                         F::InterpolateFuncOptions()
                                             .size(std::vector<std::int64_t>{p, p})
                                             .mode(torch::kBilinear)
                                             .align_corners(false))
                              .squeeze()
                              .contiguous();
  const torch::Tensor g = patch.squeeze().to(torch::kFloat32).contiguous();
  width = static_cast<std::size_t>(2 * p * scale);
  height = static_cast<std::size_t>(p * scale);
  std::vector<std::uint8_t> rgb(width * height * 3);
  const float* gp = g.data_ptr<float>();
  const float* ap = a.data_ptr<float>();
  for (std::size_t y = 0; y < height; ++y) {
    for (std::size_t x = 0; x < width; ++x) {
      const std::size_t px =
          (x % static_cast<std::size_t>(p * scale)) / static_cast<std::size_t>(scale);
      const std::size_t py = y / static_cast<std::size_t>(scale);
      const std::size_t o = py * static_cast<std::size_t>(p) + px;
      const double grey = std::clamp<double>(gp[o], 0, 1) * 255;
      double r = grey;
      double gg = grey;
      double b = grey;
      if (x >= static_cast<std::size_t>(p * scale)) {
        const double w = 0.6 * std::clamp<double>(ap[o], 0, 1);
        // heat: black -> red -> yellow
        const double heat = static_cast<double>(ap[o]);
        const double hr = 255 * std::min(1.0, 2 * heat);
        const double hg = 255 * std::clamp(2 * heat - 1, 0.0, 1.0);
        r = (1 - w) * grey + w * hr;
        gg = (1 - w) * grey + w * hg;
        b = (1 - w) * grey;
      }
      std::uint8_t* out = &rgb[(y * width + x) * 3];
      out[0] = static_cast<std::uint8_t>(std::lround(r));
      out[1] = static_cast<std::uint8_t>(std::lround(gg));
      out[2] = static_cast<std::uint8_t>(std::lround(b));
    }
  }
  return rgb;
}

void writeAttentionPng(const fs::path& file,
                       const torch::Tensor& patch,
                       const torch::Tensor& attention) {
  std::size_t w = 0;
  std::size_t h = 0;
  const int scale = std::max<int>(1, static_cast<int>(256 / patch.size(-1)));
  const auto rgb = attentionPicture(patch, attention, scale, w, h);
  io::writePngRgb(file, w, h, rgb);
}

/// The attention map of a patch on the query's slice grid: upsampled to the patch's pixels, then
/// each voxel of slice `k` inside the patch takes the nearest patch pixel's value; 0 elsewhere.
core::Volume<float> attentionOnGrid(const core::Volume<std::int16_t>& ct,
                                    int k,
                                    const core::Vec3& centreIndex,
                                    const AdslPatchSpec& spec,
                                    const torch::Tensor& attention) {
  namespace F = torch::nn::functional;
  const auto p = static_cast<std::int64_t>(spec.pixels);
  const torch::Tensor a = F::interpolate(attention.unsqueeze(0).to(torch::kFloat32),
                                         F::InterpolateFuncOptions()
                                             .size(std::vector<std::int64_t>{p, p})
                                             .mode(torch::kBilinear)
                                             .align_corners(false))
                              .squeeze()
                              .contiguous();
  const float* ap = a.data_ptr<float>();
  core::Volume<float> out(ct.size(), ct.geometry(), 0.0F);
  const auto& sp = ct.geometry().spacing;
  for (std::size_t j = 0; j < ct.size()[1]; ++j) {
    for (std::size_t i = 0; i < ct.size()[0]; ++i) {
      const double u = ((static_cast<double>(i) - centreIndex[0]) * sp[0] / spec.patchMm + 0.5) *
                       static_cast<double>(p);
      const double v = ((static_cast<double>(j) - centreIndex[1]) * sp[1] / spec.patchMm + 0.5) *
                       static_cast<double>(p);
      if (u >= 0 && v >= 0 && u < static_cast<double>(p) && v < static_cast<double>(p)) {
        out.at(i, j, static_cast<std::size_t>(k)) =
            ap[static_cast<std::size_t>(v) * static_cast<std::size_t>(p) +
               static_cast<std::size_t>(u)];
      }
    }
  }
  return out;
}

std::string fixed(double v, int digits = 3) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

} // namespace

// ---------------------------------------------------------------------------------------------
// densa index

int runIndex(const IndexCommand& command, std::ostream& out, std::ostream& err) {
  models::setThreads(command.threads);
  const torch::Device device(models::resolveDevice(command.device));
  if (command.action == "info") {
    const CaseIndex index = CaseIndex::open(command.index, "");
    out << "index " << command.index.string() << "\n  model version " << index.modelVersion()
        << "\n  dimension " << index.dim() << "\n  cases " << index.caseCount() << "\n  units "
        << index.unitCount() << "\n";
    if (const auto model = recordedModel(command.index)) {
      out << "  model " << model->string() << "\n";
    }
    return kExitOk;
  }
  if (command.action == "remove") {
    CaseIndex index = CaseIndex::open(command.index, "");
    int removed = 0;
    for (const auto& id : command.caseIds) {
      if (index.remove(id)) {
        ++removed;
      } else {
        err << "densa index remove: no case '" << id << "' in " << command.index.string() << "\n";
      }
    }
    index.save();
    out << "removed " << removed << " case(s); " << index.caseCount() << " left\n";
    return removed == static_cast<int>(command.caseIds.size()) ? kExitOk : kExitSomeFailed;
  }
  if (command.action == "rebuild") {
    CaseIndex index = CaseIndex::open(command.index, "");
    index.rebuild();
    index.save();
    out << "rebuilt " << command.index.string() << ": " << index.caseCount() << " cases, "
        << index.unitCount() << " units\n";
    return kExitOk;
  }
  if (command.action != "add") {
    throw core::InvalidArgument("densa index: unknown action '" + command.action + "'");
  }
  if (!command.model) {
    throw core::InvalidArgument("densa index add needs --model (an adsl checkpoint)");
  }
  IndexModel m = loadIndexModel(*command.model, device);
  const int dim =
      static_cast<int>(std::get<models::AdslOptions>(m.loaded.card.options).embeddingDim);
  CaseIndex index = CaseIndex::openOrCreate(command.index, m.version, dim);
  recordModel(command.index, m);
  const CaseList list = discoverCases(command.input);
  Progress progress("indexing", err);
  int added = 0;
  int failed = 0;
  for (std::size_t n = 0; n < list.cases.size(); ++n) {
    const CaseInput& c = list.cases[n];
    try {
      const LoadedCase loaded = loadCase(c);
      const core::Volume<std::int16_t> ct = axialCt(loaded.ct);
      const EmbeddedTiles e = embedTiles(m, ct, command.sliceStepMm, device);
      if (e.tiles.empty()) {
        throw core::InputError(c.path, "has no body tile (is it a CT in HU?)");
      }
      IndexCase ic;
      ic.caseId = c.id;
      ic.sourcePath = fs::absolute(c.path).string();
      if (loaded.dicom) {
        ic.seriesUidHash = core::stableHashHex(loaded.dicom->seriesInstanceUid, 16);
      }
      IndexUnit whole;
      whole.kind = "case";
      whole.vector = toVector(caseVector(e.embedding.embedding));
      ic.units.push_back(whole);
      for (std::size_t t = 0; t < e.tiles.size(); ++t) {
        IndexUnit u;
        u.kind = "patch";
        u.positionMm = e.tiles[t].centreMm;
        u.slice = e.tiles[t].slice;
        u.vector = toVector(e.embedding.embedding[static_cast<std::int64_t>(t)]);
        ic.units.push_back(std::move(u));
      }
      index.add(ic);
      ++added;
    } catch (const std::exception& ex) {
      ++failed;
      err << "densa index add: " << c.id << ": " << ex.what() << "\n";
    }
    progress.update(n + 1, list.cases.size());
  }
  progress.finish();
  index.save();
  out << "indexed " << added << " case(s) into " << command.index.string() << " ("
      << index.caseCount() << " cases, " << index.unitCount() << " units, model " << m.version
      << ")";
  if (failed > 0) {
    out << "; " << failed << " failed";
  }
  out << "\n";
  return failed == 0 ? kExitOk : kExitSomeFailed;
}

// ---------------------------------------------------------------------------------------------
// densa search

int runSearch(const SearchCommand& command, std::ostream& out, std::ostream& err) {
  models::setThreads(command.threads);
  const torch::Device device(models::resolveDevice(command.device));
  const CaseIndex probe = CaseIndex::open(command.index, "");
  std::optional<fs::path> modelFile = command.model;
  if (!modelFile) {
    modelFile = recordedModel(command.index);
  }
  if (!modelFile) {
    throw core::InvalidArgument("densa search: the index has no model.json; give --model");
  }
  IndexModel m = loadIndexModel(*modelFile, device);
  const CaseIndex index = CaseIndex::open(command.index, m.version);
  (void)probe;

  const LoadedCase loaded = loadCtPath(command.query);
  const core::Volume<std::int16_t> ct = axialCt(loaded.ct);
  nlohmann::json result;
  result["query"] = fs::absolute(command.query).string();
  result["index"] = fs::absolute(command.index).string();
  result["model_version"] = m.version;
  std::vector<float> queryVector;
  std::string kind;
  torch::Tensor queryPatch;
  torch::Tensor queryAttention;
  int querySlice = 0;
  core::Vec3 queryCentre{};
  std::optional<core::LabelMap> roiLabels;
  const bool twoD = ct.size()[2] == 1;
  if (command.pointMm || command.roi || twoD) {
    // A patch query: centred on the point, on the ROI's centroid, or on a 2D image's centre.
    kind = "patch";
    if (command.pointMm) {
      if (command.pointMm->size() != 3) {
        throw core::InvalidArgument("--point needs three numbers: x,y,z in LPS mm");
      }
      queryCentre =
          ct.physicalToIndex({(*command.pointMm)[0], (*command.pointMm)[1], (*command.pointMm)[2]});
    } else if (command.roi) {
      core::LabelMap labels = loadLabelMap(
          *command.roi,
          command.roiLabel > 0 ? std::to_string(command.roiLabel) + ":1" : std::string("1:1,2:1"));
      const core::AxisPermutation p = core::permutationToAxial(loaded.ct.geometry().direction);
      if (labels.size() != loaded.ct.size() ||
          !labels.geometry().approxEqual(loaded.ct.geometry(), 1e-3)) {
        labels = core::resampleOnto(labels, core::gridOf(loaded.ct), core::Interpolation::Nearest);
      }
      labels = core::permuteAxes(labels, p);
      double si = 0;
      double sj = 0;
      std::vector<std::size_t> perSlice(ct.size()[2], 0);
      std::size_t count = 0;
      for (std::size_t k = 0; k < ct.size()[2]; ++k) {
        for (std::size_t j = 0; j < ct.size()[1]; ++j) {
          for (std::size_t i = 0; i < ct.size()[0]; ++i) {
            if (labels.at(i, j, k) != 0) {
              ++perSlice[k];
            }
          }
        }
      }
      const auto best = static_cast<std::size_t>(
          std::max_element(perSlice.begin(), perSlice.end()) - perSlice.begin());
      for (std::size_t j = 0; j < ct.size()[1]; ++j) {
        for (std::size_t i = 0; i < ct.size()[0]; ++i) {
          if (labels.at(i, j, best) != 0) {
            si += static_cast<double>(i);
            sj += static_cast<double>(j);
            ++count;
          }
        }
      }
      if (count == 0) {
        throw core::InputError(*command.roi, "holds no voxel of the ROI label");
      }
      queryCentre = {si / static_cast<double>(count),
                     sj / static_cast<double>(count),
                     static_cast<double>(best)};
      roiLabels = std::move(labels);
    } else {
      queryCentre = {(static_cast<double>(ct.size()[0]) - 1) / 2,
                     (static_cast<double>(ct.size()[1]) - 1) / 2,
                     0};
    }
    querySlice = static_cast<int>(std::lround(queryCentre[2]));
    if (querySlice < 0 || querySlice >= static_cast<int>(ct.size()[2])) {
      throw core::InvalidArgument("the query point lies outside the query CT");
    }
    queryPatch = axialPatch(ct, querySlice, queryCentre[0], queryCentre[1], m.spec);
    const AdslEmbedding e = embedBatches(netOf(m), queryPatch.unsqueeze(0), device);
    queryVector = toVector(e.embedding[0]);
    queryAttention = e.attention[0];
    result["query_kind"] = "patch";
    result["query_centre_mm"] = ct.indexToPhysical(queryCentre);
  } else {
    kind = "case";
    const EmbeddedTiles e = embedTiles(m, ct, command.sliceStepMm, device);
    if (e.tiles.empty()) {
      throw core::InputError(command.query, "has no body tile (is it a CT in HU?)");
    }
    queryVector = toVector(caseVector(e.embedding.embedding));
    // The most central tile of the middle tiled slice stands for the case in the picture.
    std::size_t pick = 0;
    double bestDistance = 1e300;
    const double midK = static_cast<double>(ct.size()[2] - 1) / 2;
    const double midI = static_cast<double>(ct.size()[0] - 1) / 2;
    const double midJ = static_cast<double>(ct.size()[1] - 1) / 2;
    for (std::size_t t = 0; t < e.tiles.size(); ++t) {
      const auto& q = e.tiles[t].centreIndex;
      const double d = std::hypot(q[0] - midI, q[1] - midJ) + 1000 * std::abs(q[2] - midK);
      if (d < bestDistance) {
        bestDistance = d;
        pick = t;
      }
    }
    queryPatch = e.tiles[pick].image;
    queryAttention = e.embedding.attention[static_cast<std::int64_t>(pick)];
    querySlice = e.tiles[pick].slice;
    queryCentre = e.tiles[pick].centreIndex;
    result["query_kind"] = "case";
    result["query_tiles"] = e.tiles.size();
  }
  const std::vector<SearchHit> hits = index.search(queryVector, command.k, kind);

  nlohmann::json jh = nlohmann::json::array();
  for (std::size_t r = 0; r < hits.size(); ++r) {
    const auto& h = hits[r];
    nlohmann::json j;
    j["rank"] = r + 1;
    j["case_id"] = h.caseId;
    j["source"] = h.sourcePath;
    j["score"] = h.score;
    j["distance"] = h.distance;
    if (kind == "patch") {
      j["match_centre_mm"] = h.unit.positionMm;
      j["match_slice"] = h.unit.slice;
    }
    jh.push_back(j);
  }
  result["hits"] = jh;

  if (!command.output.empty()) {
    fs::create_directories(command.output);
    writeAttentionPng(command.output / "query_attention.png", queryPatch, queryAttention);
    io::writeImage(attentionOnGrid(ct, querySlice, queryCentre, m.spec, queryAttention),
                   command.output / "query_attention.nii.gz");
    result["attention_png"] = "query_attention.png";
    result["attention_nifti"] = "query_attention.nii.gz";
    result["attention_proxy_threshold"] = 0.5;
    if (roiLabels) {
      // The weakly supervised proxy mask (§3.8): the attention map upsampled onto the slice,
      // thresholded at 0.5, scored against the ROI on that slice.
      const core::Volume<float> a =
          attentionOnGrid(ct, querySlice, queryCentre, m.spec, queryAttention);
      std::size_t inter = 0;
      std::size_t sa = 0;
      std::size_t sb = 0;
      const auto k = static_cast<std::size_t>(querySlice);
      for (std::size_t j = 0; j < ct.size()[1]; ++j) {
        for (std::size_t i = 0; i < ct.size()[0]; ++i) {
          const bool pa = a.at(i, j, k) > 0.5F;
          const bool pb = roiLabels->at(i, j, k) != 0;
          inter += static_cast<std::size_t>(pa && pb);
          sa += static_cast<std::size_t>(pa);
          sb += static_cast<std::size_t>(pb);
        }
      }
      result["attention_proxy_dice"] =
          sa + sb == 0 ? 1.0 : 2.0 * static_cast<double>(inter) / static_cast<double>(sa + sb);
    }
    // The matched patch of each hit, re-read from its source when it is still there.
    for (std::size_t r = 0; r < hits.size(); ++r) {
      const auto& h = hits[r];
      if (kind != "patch") {
        continue;
      }
      try {
        const core::Volume<std::int16_t> hct = axialCt(loadCtPath(h.sourcePath).ct);
        const core::Vec3 idx = hct.physicalToIndex(h.unit.positionMm);
        const torch::Tensor patch = axialPatch(hct, h.unit.slice, idx[0], idx[1], m.spec);
        const AdslEmbedding e = embedBatches(netOf(m), patch.unsqueeze(0), device);
        const std::string name = "hit_" + std::to_string(r + 1) + "_attention.png";
        writeAttentionPng(command.output / name, patch, e.attention[0]);
        result["hits"][r]["attention_png"] = name;
      } catch (const std::exception& ex) {
        err << "densa search: cannot picture hit " << r + 1 << " (" << h.sourcePath
            << "): " << ex.what() << "\n";
      }
    }
    io::writeTextAtomically(command.output / "results.json", result.dump(2) + "\n");
  }

  if (command.json) {
    out << result.dump(2) << "\n";
  } else {
    out << "query " << command.query.string() << " (" << result["query_kind"].get<std::string>()
        << ") against " << index.caseCount() << " case(s)\n";
    out << "rank  score   distance  case\n";
    for (std::size_t r = 0; r < hits.size(); ++r) {
      out << std::setw(4) << r + 1 << "  " << fixed(hits[r].score) << "  "
          << fixed(hits[r].distance) << "     " << hits[r].caseId;
      if (kind == "patch") {
        const auto& p = hits[r].unit.positionMm;
        out << "  at (" << fixed(p[0], 1) << ", " << fixed(p[1], 1) << ", " << fixed(p[2], 1)
            << ") mm";
      }
      out << "\n";
    }
    if (!command.output.empty()) {
      out << "attention maps and results.json in " << command.output.string() << "\n";
    }
  }
  return kExitOk;
}

} // namespace densa::app
