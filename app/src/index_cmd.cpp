// SPDX-License-Identifier: Apache-2.0
// `densa index` and `densa search`: similar-case retrieval with an ADSL model (methods-spec §3,
// issue #8 items 5-6) over a persistent Faiss + SQLite index (densa/app/case_index.hpp).
#include "densa/app/adsl.hpp"
#include "densa/app/case_index.hpp"
#include "densa/app/case_io.hpp"
#include "densa/app/cases.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/app/similar_cases.hpp"
#include "densa/core/error.hpp"
#include "densa/core/hash.hpp"
#include "densa/core/orient.hpp"
#include "densa/core/resample.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/io/image_file.hpp"
#include "densa/io/png.hpp"
#include "densa/models/runtime.hpp"

#include "progress.hpp"
#include "similar_cases_detail.hpp"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

namespace densa::app {

namespace fs = std::filesystem;

namespace {

using namespace detail;

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
    if (const auto model = indexRecordedModel(command.index)) {
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
  recordModel(command.index, m, command.sliceStepMm);
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
  if (!command.model && !indexRecordedModel(command.index)) {
    (void)CaseIndex::open(command.index, ""); // a missing index is reported as such
    throw core::InvalidArgument("densa search: the index has no model.json; give --model");
  }
  const SimilarCaseSearch searcher(command.index, command.model, command.device);

  const LoadedCase loaded = loadCtPath(command.query);
  SimilarQuery query;
  query.sliceStepMm = command.sliceStepMm;
  query.k = command.k;
  query.hitPictures = !command.output.empty();
  if (command.pointMm) {
    if (command.pointMm->size() != 3) {
      throw core::InvalidArgument("--point needs three numbers: x,y,z in LPS mm");
    }
    query.pointMm = core::Vec3{(*command.pointMm)[0], (*command.pointMm)[1], (*command.pointMm)[2]};
  }
  // An ROI query: the patch is centred on the ROI's centroid on its largest axial slice.
  std::optional<core::LabelMap> roiLabels;
  std::optional<core::Vec3> roiCentre;
  if (!command.pointMm && command.roi) {
    const core::AxisPermutation p = core::permutationToAxial(loaded.ct.geometry().direction);
    core::LabelMap labels = loadLabelMap(
        *command.roi,
        command.roiLabel > 0 ? std::to_string(command.roiLabel) + ":1" : std::string("1:1,2:1"));
    if (labels.size() != loaded.ct.size() ||
        !labels.geometry().approxEqual(loaded.ct.geometry(), 1e-3)) {
      labels = core::resampleOnto(labels, core::gridOf(loaded.ct), core::Interpolation::Nearest);
    }
    labels = core::permuteAxes(labels, p);
    const core::Size3 size = labels.size();
    std::vector<std::size_t> perSlice(size[2], 0);
    for (std::size_t k = 0; k < size[2]; ++k) {
      for (std::size_t j = 0; j < size[1]; ++j) {
        for (std::size_t i = 0; i < size[0]; ++i) {
          if (labels.at(i, j, k) != 0) {
            ++perSlice[k];
          }
        }
      }
    }
    const auto best = static_cast<std::size_t>(std::max_element(perSlice.begin(), perSlice.end()) -
                                               perSlice.begin());
    double si = 0;
    double sj = 0;
    std::size_t count = 0;
    for (std::size_t j = 0; j < size[1]; ++j) {
      for (std::size_t i = 0; i < size[0]; ++i) {
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
    roiCentre = core::Vec3{si / static_cast<double>(count),
                           sj / static_cast<double>(count),
                           static_cast<double>(best)};
    roiLabels = std::move(labels);
  }
  SimilarResult found;
  try {
    found = roiCentre ? searcher.searchAtIndex(loaded.ct, *roiCentre, query)
                      : searcher.search(loaded.ct, query);
  } catch (const core::InputError& e) {
    if (!e.file().empty()) {
      throw;
    }
    throw core::InputError(command.query, e.what()); // name the query file
  }
  const bool patch = found.queryKind == "patch";

  nlohmann::json result;
  result["query"] = fs::absolute(command.query).string();
  result["index"] = fs::absolute(command.index).string();
  result["model_version"] = found.modelVersion;
  result["query_kind"] = found.queryKind;
  if (patch) {
    result["query_centre_mm"] = found.queryCentreMm;
  } else {
    result["query_tiles"] = found.queryTiles;
  }
  nlohmann::json jh = nlohmann::json::array();
  for (const auto& h : found.hits) {
    nlohmann::json j;
    j["rank"] = h.rank;
    j["case_id"] = h.caseId;
    j["source"] = h.sourcePath;
    j["score"] = h.score;
    j["distance"] = h.distance;
    if (patch) {
      j["match_centre_mm"] = *h.matchMm;
      j["match_slice"] = h.matchSlice;
    }
    jh.push_back(j);
  }
  result["hits"] = jh;

  if (!command.output.empty()) {
    fs::create_directories(command.output);
    const RgbPicture& qp = found.queryPicture;
    io::writePngRgb(command.output / "query_attention.png", qp.width, qp.height, qp.rgb);
    // The attention slice on the query's whole canonical axial grid.
    const core::Volume<std::int16_t> ct = axialCt(loaded.ct);
    core::Volume<float> onGrid(ct.size(), ct.geometry(), 0.0F);
    const auto k = static_cast<std::size_t>(found.querySlice);
    for (std::size_t j = 0; j < ct.size()[1]; ++j) {
      for (std::size_t i = 0; i < ct.size()[0]; ++i) {
        onGrid.at(i, j, k) = found.queryAttention.at(i, j, 0);
      }
    }
    io::writeImage(onGrid, command.output / "query_attention.nii.gz");
    result["attention_png"] = "query_attention.png";
    result["attention_nifti"] = "query_attention.nii.gz";
    result["attention_proxy_threshold"] = 0.5;
    if (roiLabels) {
      // The weakly supervised proxy mask (§3.8): the attention map upsampled onto the slice,
      // thresholded at 0.5, scored against the ROI on that slice.
      std::size_t inter = 0;
      std::size_t sa = 0;
      std::size_t sb = 0;
      for (std::size_t j = 0; j < ct.size()[1]; ++j) {
        for (std::size_t i = 0; i < ct.size()[0]; ++i) {
          const bool pa = found.queryAttention.at(i, j, 0) > 0.5F;
          const bool pb = roiLabels->at(i, j, k) != 0;
          inter += static_cast<std::size_t>(pa && pb);
          sa += static_cast<std::size_t>(pa);
          sb += static_cast<std::size_t>(pb);
        }
      }
      result["attention_proxy_dice"] =
          sa + sb == 0 ? 1.0 : 2.0 * static_cast<double>(inter) / static_cast<double>(sa + sb);
    }
    // The matched patch of each hit, pictured when its source could be re-read.
    for (std::size_t r = 0; r < found.hits.size(); ++r) {
      const RgbPicture& hp = found.hits[r].picture;
      if (hp.empty()) {
        continue;
      }
      const std::string name = "hit_" + std::to_string(r + 1) + "_attention.png";
      io::writePngRgb(command.output / name, hp.width, hp.height, hp.rgb);
      result["hits"][r]["attention_png"] = name;
    }
    io::writeTextAtomically(command.output / "results.json", result.dump(2) + "\n");
  }
  for (const auto& w : found.warnings) {
    err << "densa search: " << w << "\n";
  }

  if (command.json) {
    out << result.dump(2) << "\n";
  } else {
    out << "query " << command.query.string() << " (" << found.queryKind << ") against "
        << searcher.caseCount() << " case(s)\n";
    out << "rank  score   distance  case\n";
    for (const auto& h : found.hits) {
      out << std::setw(4) << h.rank << "  " << fixed(h.score) << "  " << fixed(h.distance)
          << "     " << h.caseId;
      if (patch) {
        const auto& p = *h.matchMm;
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
