// SPDX-License-Identifier: Apache-2.0
// Similar-case search with an ADSL model over a case index (methods-spec §3, issue #8 items 5-6):
// the library behind `densa search` and the viewer's "Similar cases" panel.
#include "densa/app/similar_cases.hpp"

#include "densa/app/case_index.hpp"
#include "densa/app/case_io.hpp"
#include "densa/core/error.hpp"
#include "densa/core/hash.hpp"
#include "densa/core/orient.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/models/error.hpp"
#include "densa/models/runtime.hpp"

#include "similar_cases_detail.hpp"

#include <nlohmann/json.hpp>
#include <torch/nn/functional/upsampling.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <mutex>
#include <sstream>

namespace densa::app {

namespace fs = std::filesystem;

namespace detail {

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

void recordModel(const fs::path& dir, const IndexModel& m, double sliceStepMm) {
  nlohmann::json j;
  j["model"] = m.file.string();
  j["version"] = m.version;
  j["slice_step_mm"] = sliceStepMm;
  io::writeTextAtomically(dir / "model.json", j.dump(2) + "\n");
}

core::Volume<std::int16_t> axialCt(const core::Volume<std::int16_t>& ct) {
  return core::permuteAxes(ct, core::permutationToAxial(ct.geometry().direction));
}

std::vector<float> toVector(const torch::Tensor& row) {
  const torch::Tensor r = row.to(torch::kCPU, torch::kFloat32).contiguous();
  return {r.data_ptr<float>(), r.data_ptr<float>() + r.numel()};
}

torch::Tensor caseVector(const torch::Tensor& embeddings) {
  const torch::Tensor mean = embeddings.mean(0);
  return mean / mean.norm().clamp_min(1e-12);
}

EmbeddedTiles embedTiles(IndexModel& m,
                         const core::Volume<std::int16_t>& axial,
                         double sliceStepMm,
                         const torch::Device& device) {
  EmbeddedTiles e;
  e.tiles = bodyTiles(axial, m.spec, sliceStepMm);
  if (e.tiles.empty()) {
    return e;
  }
  std::vector<torch::Tensor> images;
  images.reserve(e.tiles.size());
  for (const auto& t : e.tiles) {
    images.push_back(t.image);
  }
  e.embedding = embedBatches(netOf(m), stackImages(images), device);
  return e;
}

} // namespace detail

namespace {

using namespace detail;

/// `attention` [1, h, w] upsampled bilinearly to `p`² pixels, [p, p] float on the CPU.
torch::Tensor upsampledAttention(const torch::Tensor& attention, std::int64_t p) {
  namespace F = torch::nn::functional;
  return F::interpolate(attention.unsqueeze(0).to(torch::kCPU, torch::kFloat32),
                        F::InterpolateFuncOptions()
                            .size(std::vector<std::int64_t>{p, p})
                            .mode(torch::kBilinear)
                            .align_corners(false))
      .squeeze()
      .contiguous();
}

/// A patch ([1, P, P] in [0, 1]) and the patch under its attention map ([1, h, w]) as a heat
/// overlay, side by side, each max(1, 256 / P)× larger.
RgbPicture attentionPicture(const torch::Tensor& patch, const torch::Tensor& attention) {
  const auto p = patch.size(-1);
  const auto scale = static_cast<std::size_t>(std::max<std::int64_t>(1, 256 / p));
  const auto ps = static_cast<std::size_t>(p) * scale;
  const torch::Tensor a = upsampledAttention(attention, p);
  const torch::Tensor g = patch.squeeze().to(torch::kCPU, torch::kFloat32).contiguous();
  RgbPicture pic;
  pic.width = 2 * ps;
  pic.height = ps;
  pic.rgb.resize(pic.width * pic.height * 3);
  const float* gp = g.data_ptr<float>();
  const float* ap = a.data_ptr<float>();
  for (std::size_t y = 0; y < pic.height; ++y) {
    for (std::size_t x = 0; x < pic.width; ++x) {
      const std::size_t px = (x % ps) / scale;
      const std::size_t py = y / scale;
      const std::size_t o = py * static_cast<std::size_t>(p) + px;
      const double grey = std::clamp<double>(gp[o], 0, 1) * 255;
      double r = grey;
      double gg = grey;
      double b = grey;
      if (x >= ps) {
        const double w = 0.6 * std::clamp<double>(ap[o], 0, 1);
        // heat: black -> red -> yellow
        const double heat = static_cast<double>(ap[o]);
        const double hr = 255 * std::min(1.0, 2 * heat);
        const double hg = 255 * std::clamp(2 * heat - 1, 0.0, 1.0);
        r = (1 - w) * grey + w * hr;
        gg = (1 - w) * grey + w * hg;
        b = (1 - w) * grey;
      }
      std::uint8_t* out = &pic.rgb[(y * pic.width + x) * 3];
      out[0] = static_cast<std::uint8_t>(std::lround(r));
      out[1] = static_cast<std::uint8_t>(std::lround(gg));
      out[2] = static_cast<std::uint8_t>(std::lround(b));
    }
  }
  return pic;
}

/// The attention map of a patch on slice `k` of the (axial) query's grid, as a one-slice volume
/// placed there: upsampled to the patch's pixels, then each voxel inside the patch takes the
/// nearest patch pixel's value; 0 elsewhere.
core::Volume<float> attentionOnSlice(const core::Volume<std::int16_t>& ct,
                                     int k,
                                     const core::Vec3& centreIndex,
                                     const AdslPatchSpec& spec,
                                     const torch::Tensor& attention) {
  const auto p = static_cast<std::int64_t>(spec.pixels);
  const torch::Tensor a = upsampledAttention(attention, p);
  const float* ap = a.data_ptr<float>();
  core::Geometry g = ct.geometry();
  g.origin = ct.indexToPhysical({0, 0, static_cast<double>(k)});
  core::Volume<float> out({ct.size()[0], ct.size()[1], 1}, g, 0.0F);
  const auto& sp = ct.geometry().spacing;
  for (std::size_t j = 0; j < ct.size()[1]; ++j) {
    for (std::size_t i = 0; i < ct.size()[0]; ++i) {
      const double u = ((static_cast<double>(i) - centreIndex[0]) * sp[0] / spec.patchMm + 0.5) *
                       static_cast<double>(p);
      const double v = ((static_cast<double>(j) - centreIndex[1]) * sp[1] / spec.patchMm + 0.5) *
                       static_cast<double>(p);
      if (u >= 0 && v >= 0 && u < static_cast<double>(p) && v < static_cast<double>(p)) {
        out.at(i, j, 0) = ap[static_cast<std::size_t>(v) * static_cast<std::size_t>(p) +
                             static_cast<std::size_t>(u)];
      }
    }
  }
  return out;
}

} // namespace

std::optional<fs::path> indexRecordedModel(const fs::path& indexDir) {
  std::ifstream in(indexDir / "model.json");
  if (!in) {
    return std::nullopt;
  }
  try {
    return fs::path(nlohmann::json::parse(in).at("model").get<std::string>());
  } catch (const std::exception&) {
    throw core::InputError(indexDir / "model.json", "is damaged (expected {\"model\": PATH})");
  }
}

struct SimilarCaseSearch::Impl {
  fs::path indexDir;
  torch::Device device;
  IndexModel model;
  CaseIndex index;
  std::optional<double> sliceStepMm;
  std::mutex mutex; // the network and the index serve one query at a time

  Impl(fs::path dir, torch::Device d, IndexModel m, CaseIndex i)
      : indexDir(std::move(dir))
      , device(d)
      , model(std::move(m))
      , index(std::move(i)) {}

  SimilarResult run(const core::Volume<std::int16_t>& ctHu,
                    std::optional<core::Vec3> centreIndex,
                    const SimilarQuery& query,
                    const std::function<void(double)>& progress);
};

SimilarCaseSearch::SimilarCaseSearch(const fs::path& indexDir,
                                     std::optional<fs::path> model,
                                     std::string device) {
  const torch::Device d(models::resolveDevice(device));
  // Open first: a missing or damaged index is reported before any model is read.
  (void)CaseIndex::open(indexDir, "");
  if (!model) {
    model = indexRecordedModel(indexDir);
  }
  if (!model) {
    throw core::InvalidArgument(indexDir.string() +
                                ": the index records no model (model.json); give the adsl model "
                                "it was built with");
  }
  IndexModel m = loadIndexModel(*model, d);
  CaseIndex index = CaseIndex::open(indexDir, m.version);
  m_impl = std::make_unique<Impl>(indexDir, d, std::move(m), std::move(index));
  try {
    std::ifstream in(indexDir / "model.json");
    if (in) {
      const auto j = nlohmann::json::parse(in);
      if (j.contains("slice_step_mm") && j.at("slice_step_mm").is_number()) {
        m_impl->sliceStepMm = j.at("slice_step_mm").get<double>();
      }
    }
  } catch (const std::exception&) {
    // model.json was read above when it matters; the slice step is only a hint
  }
}

SimilarCaseSearch::SimilarCaseSearch(SimilarCaseSearch&&) noexcept = default;
SimilarCaseSearch& SimilarCaseSearch::operator=(SimilarCaseSearch&&) noexcept = default;
SimilarCaseSearch::~SimilarCaseSearch() = default;

std::int64_t SimilarCaseSearch::caseCount() const {
  const std::lock_guard lock(m_impl->mutex);
  return m_impl->index.caseCount();
}

std::string SimilarCaseSearch::modelVersion() const {
  return m_impl->model.version;
}

const fs::path& SimilarCaseSearch::modelFile() const {
  return m_impl->model.file;
}

const fs::path& SimilarCaseSearch::indexDir() const {
  return m_impl->indexDir;
}

std::optional<double> SimilarCaseSearch::indexSliceStepMm() const {
  return m_impl->sliceStepMm;
}

SimilarResult SimilarCaseSearch::search(const core::Volume<std::int16_t>& ctHu,
                                        const SimilarQuery& query,
                                        const std::function<void(double)>& progress) const {
  const std::lock_guard lock(m_impl->mutex);
  return m_impl->run(ctHu, std::nullopt, query, progress);
}

SimilarResult SimilarCaseSearch::searchAtIndex(const core::Volume<std::int16_t>& ctHu,
                                               const core::Vec3& axialCentreIndex,
                                               const SimilarQuery& query,
                                               const std::function<void(double)>& progress) const {
  const std::lock_guard lock(m_impl->mutex);
  return m_impl->run(ctHu, axialCentreIndex, query, progress);
}

SimilarResult SimilarCaseSearch::Impl::run(const core::Volume<std::int16_t>& ctHu,
                                           std::optional<core::Vec3> centreIndex,
                                           const SimilarQuery& query,
                                           const std::function<void(double)>& progress) {
  const auto step = [&](double f) {
    if (progress) {
      progress(f);
    }
  };
  if (query.k < 1) {
    throw core::InvalidArgument("similar-case search: k must be at least 1");
  }
  if (ctHu.empty()) {
    throw core::InvalidArgument("similar-case search: the query CT is empty");
  }
  step(0);
  // The canonical axial grid (the index's); no copy when the CT is on it already.
  const core::AxisPermutation toAxial = core::permutationToAxial(ctHu.geometry().direction);
  std::optional<core::Volume<std::int16_t>> permuted;
  if (!toAxial.isIdentity()) {
    permuted = core::permuteAxes(ctHu, toAxial);
  }
  const core::Volume<std::int16_t>& ct = permuted ? *permuted : ctHu;
  SimilarResult result;
  result.modelVersion = model.version;
  std::vector<float> queryVector;
  torch::Tensor queryPatch;
  torch::Tensor queryAttention;
  core::Vec3 queryCentre{};
  const bool twoD = ct.size()[2] == 1;
  if (centreIndex || query.pointMm || twoD) {
    // A patch query: centred on the point, or on a 2D image's centre.
    result.queryKind = "patch";
    if (centreIndex) {
      queryCentre = *centreIndex;
    } else if (query.pointMm) {
      queryCentre = ct.physicalToIndex(*query.pointMm);
    } else {
      queryCentre = {(static_cast<double>(ct.size()[0]) - 1) / 2,
                     (static_cast<double>(ct.size()[1]) - 1) / 2,
                     0};
    }
    result.querySlice = static_cast<int>(std::lround(queryCentre[2]));
    if (result.querySlice < 0 || result.querySlice >= static_cast<int>(ct.size()[2])) {
      throw core::InvalidArgument("the query point lies outside the query CT");
    }
    queryPatch = axialPatch(ct, result.querySlice, queryCentre[0], queryCentre[1], model.spec);
    const AdslEmbedding e = embedBatches(netOf(model), queryPatch.unsqueeze(0), device);
    queryVector = toVector(e.embedding[0]);
    queryAttention = e.attention[0];
  } else {
    result.queryKind = "case";
    const EmbeddedTiles e = embedTiles(model, ct, query.sliceStepMm, device);
    if (e.tiles.empty()) {
      throw core::InputError("the query has no body tile (is it a CT in HU?)");
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
    result.querySlice = e.tiles[pick].slice;
    queryCentre = e.tiles[pick].centreIndex;
    result.queryTiles = e.tiles.size();
  }
  result.queryCentreMm = ct.indexToPhysical(queryCentre);
  result.queryPicture = attentionPicture(queryPatch, queryAttention);
  result.queryAttention =
      attentionOnSlice(ct, result.querySlice, queryCentre, model.spec, queryAttention);
  step(0.5);

  const bool patch = result.queryKind == "patch";
  const std::vector<SearchHit> hits = index.search(queryVector, query.k, result.queryKind);
  for (std::size_t r = 0; r < hits.size(); ++r) {
    const auto& h = hits[r];
    SimilarHit s;
    s.rank = static_cast<int>(r + 1);
    s.caseId = h.caseId;
    s.sourcePath = h.sourcePath;
    s.score = h.score;
    s.distance = h.distance;
    if (patch) {
      s.matchMm = h.unit.positionMm;
      s.matchSlice = h.unit.slice;
    }
    result.hits.push_back(std::move(s));
  }
  if (patch && query.hitPictures) {
    // The matched patch of each hit, re-read from its source when it is still there.
    for (std::size_t r = 0; r < hits.size(); ++r) {
      step(0.5 + 0.5 * static_cast<double>(r) / static_cast<double>(hits.size()));
      const auto& h = hits[r];
      try {
        const core::Volume<std::int16_t> hct = axialCt(loadCtPath(h.sourcePath).ct);
        const core::Vec3 idx = hct.physicalToIndex(h.unit.positionMm);
        const torch::Tensor p = axialPatch(hct, h.unit.slice, idx[0], idx[1], model.spec);
        const AdslEmbedding e = embedBatches(netOf(model), p.unsqueeze(0), device);
        result.hits[r].picture = attentionPicture(p, e.attention[0]);
      } catch (const core::Cancelled&) {
        throw;
      } catch (const std::exception& ex) {
        result.warnings.push_back("cannot picture hit " + std::to_string(r + 1) + " (" +
                                  h.sourcePath + "): " + ex.what());
      }
    }
  }
  step(1);
  return result;
}

} // namespace densa::app
