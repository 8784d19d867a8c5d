// SPDX-License-Identifier: Apache-2.0
// `densa evaluate`: the LiTS metrics (methods-spec §1.12) over matched cases.
#include "densa/app/case_io.hpp"
#include "densa/app/commands.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/core/error.hpp"
#include "densa/core/metrics.hpp"
#include "densa/core/resample.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/io/image_file.hpp"

#include "progress.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>

namespace densa::app {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Case id of a label file: its name without extension and without the usual role words, so that
// "segmentation-12.nii" (LiTS), "volume-12.nii.gz", "case_12_pred.nii.gz" and "case_12.nii.gz"
// pair up.
std::string caseId(const fs::path& file) {
  std::string name = file.filename().string();
  for (const char* ext : {".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"}) {
    if (name.size() > std::strlen(ext) && name.ends_with(ext)) {
      name.resize(name.size() - std::strlen(ext));
      break;
    }
  }
  for (const char* prefix : {"segmentation-",
                             "segmentation_",
                             "volume-",
                             "volume_",
                             "label-",
                             "label_",
                             "pred-",
                             "pred_",
                             "seg-",
                             "seg_"}) {
    if (name.starts_with(prefix)) {
      name = name.substr(std::strlen(prefix));
      break;
    }
  }
  for (const char* suffix : {"_segmentation",
                             "_labels",
                             "_label",
                             "_pred",
                             "_seg",
                             "-labels",
                             "-label",
                             "-pred",
                             "-seg",
                             ".labels",
                             ".label"}) {
    if (name.size() > std::strlen(suffix) && name.ends_with(suffix)) {
      name.resize(name.size() - std::strlen(suffix));
      break;
    }
  }
  return name;
}

std::map<std::string, fs::path> labelFiles(const fs::path& path) {
  std::map<std::string, fs::path> out;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    out[caseId(path)] = path;
    return out;
  }
  if (!fs::is_directory(path, ec)) {
    throw core::InputError(path, "no such file or folder");
  }
  for (const auto& e : fs::directory_iterator(path)) {
    if (e.is_regular_file() && io::imageFormatFromPath(e.path()) &&
        e.path().extension() != ".raw") {
      const std::string id = caseId(e.path());
      if (out.contains(id)) {
        throw core::InputError(
            e.path(), "case id '" + id + "' is also used by " + out[id].filename().string());
      }
      out[id] = e.path();
    }
  }
  if (out.empty()) {
    throw core::InputError(path, "holds no label map (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd)");
  }
  return out;
}

json scoresJson(const core::ObjectScores& s) {
  return {{"dice", s.dice},
          {"voe", s.voe},
          {"rvd", s.rvd},
          {"rvd_scorer", s.rvdScorer},
          {"assd_mm", s.assd},
          {"msd_mm", s.msd},
          {"rmsd_mm", s.rmsd},
          {"hd95_mm", s.hd95},
          {"surface_dice", s.surfaceDice}};
}

std::string num(double v) {
  std::ostringstream s;
  s << std::setprecision(6) << v;
  return s.str();
}

} // namespace

int runEvaluate(const EvaluateOptions& options, std::ostream& out, std::ostream& err) {
  const auto references = labelFiles(options.reference);
  const auto predictions = labelFiles(options.predicted);
  const bool single = references.size() == 1 && predictions.size() == 1;

  std::vector<core::LitsCase> cases;
  std::vector<std::string> ids;
  json caseRows = json::array();
  std::string csv = "case,liver_dice,liver_voe,liver_rvd,liver_rvd_scorer,liver_assd_mm,liver_msd_"
                    "mm,liver_rmsd_mm,liver_hd95_mm,"
                    "liver_surface_dice,lesion_dice,reference_lesions,predicted_lesions,detected_"
                    "iou50,detected_iou0,"
                    "burden_reference,burden_predicted,note\n";
  Progress progress("evaluating", err);
  std::size_t done = 0;
  for (const auto& [id, refFile] : references) {
    progress.update(done++, references.size());
    core::LabelMap ref = loadLabelMap(refFile, options.referenceMap);
    std::string note;
    core::LabelMap pred(ref.size(), ref.geometry(), 0);
    auto match = predictions.find(id);
    if (single) {
      match = predictions.begin();
    }
    if (match == predictions.end()) {
      note = "no prediction: scored as empty";
      err << "densa: warning: case " << id
          << ": no prediction found; scored as an empty prediction\n";
    } else {
      pred = loadLabelMap(match->second, options.predictedMap);
      if (pred.size() != ref.size() || !pred.geometry().approxEqual(ref.geometry(), 1e-3)) {
        pred = core::resampleOnto(pred, core::gridOf(ref), core::Interpolation::Nearest);
        note = "prediction resampled onto the reference grid (nearest)";
        err << "densa: warning: case " << id << ": " << note << "\n";
      }
    }
    const core::LitsCase c = core::evaluateLitsCase(pred, ref, options.toleranceMm);
    cases.push_back(c);
    ids.push_back(id);
    const auto& l = c.liver;
    csv += id + "," + num(c.liverDice) + "," + num(l.voe) + "," + num(l.rvd) + "," +
           num(l.rvdScorer) + "," + num(l.assd) + "," + num(l.msd) + "," + num(l.rmsd) + "," +
           num(l.hd95) + "," + num(l.surfaceDice) + "," + num(c.lesionDice) + "," +
           std::to_string(c.lesions50.referenceLesions) + "," +
           std::to_string(c.lesions50.predictedLesions) + "," +
           std::to_string(c.lesions50.detectedReference) + "," +
           std::to_string(c.lesions0.detectedReference) + "," + num(c.burdenReference) + "," +
           num(c.burdenPredicted) + "," + note + "\n";
    json row{
        {"case", id},
        {"reference", refFile.string()},
        {"prediction", match == predictions.end() ? json(nullptr) : json(match->second.string())},
        {"liver_dice", c.liverDice},
        {"liver", scoresJson(c.liver)},
        {"lesion_dice", c.lesionDice},
        {"reference_lesions", c.lesions50.referenceLesions},
        {"predicted_lesions", c.lesions50.predictedLesions},
        {"detected_iou50", c.lesions50.detectedReference},
        {"detected_iou0", c.lesions0.detectedReference},
        {"burden_reference", c.burdenReference},
        {"burden_predicted", c.burdenPredicted}};
    if (!note.empty()) {
      row["note"] = note;
    }
    caseRows.push_back(std::move(row));
  }
  progress.update(done, references.size());
  progress.finish();
  for (const auto& [id, file] : predictions) {
    if (!references.contains(id) && !single) {
      err << "densa: warning: " << file.string() << ": no reference with case id '" << id
          << "'; ignored\n";
    }
  }

  const core::LitsSummary s = core::summarise(cases);
  json summary{
      {"cases", s.cases},
      {"tolerance_mm", options.toleranceMm},
      {"liver",
       {{"dice_per_case", s.liverDicePerCase},
        {"dice_global", s.liverDiceGlobal},
        {"mean", scoresJson(s.liverMean)}}},
      {"lesion",
       {{"dice_per_case", s.lesionDicePerCase},
        {"dice_global", s.lesionDiceGlobal},
        {"detected_lesions", s.lesionsDetected},
        {"mean_over_detected", scoresJson(s.lesionMean)},
        {"precision_iou50", s.precision50},
        {"recall_iou50", s.recall50},
        {"precision_iou0", s.precision0},
        {"recall_iou0", s.recall0}}},
      {"tumour_burden", {{"rmse", s.burdenRmse}, {"max_abs_error", s.burdenMaxError}}},
      {"definitions",
       {{"rvd", "(|P| - |G|) / |G|"},
        {"rvd_scorer", "LiTS scorer: medpy.ravd(reference, prediction) = (|G| - |P|) / |P|"},
        {"surfaces", "mask XOR 18-neighbour erosion; distances in mm from index x spacing"},
        {"hd95", "max of the two directed 95th percentiles"},
        {"surface_dice", "fraction of surface voxels within tolerance_mm of the other surface"},
        {"empty_cases",
         "lesion Dice 1 when both empty; liver Dice 0 and LARGE=9001 distances when the prediction "
         "has no label 1"},
        {"lesion_detection",
         "6-connected components, scorer's merging; detected when IoU > 0.5 (or > 0)"}}},
      {"per_case", caseRows}};
  io::writeTextAtomically(options.output / "cases.csv", csv);
  io::writeTextAtomically(options.output / "summary.json", summary.dump(2));

  out << "cases: " << s.cases << "\n"
      << std::fixed << std::setprecision(4) << "liver   Dice per case " << s.liverDicePerCase
      << "  global " << s.liverDiceGlobal << "  VOE " << s.liverMean.voe << "  RVD "
      << s.liverMean.rvd << "  ASSD " << s.liverMean.assd << " mm  MSD " << s.liverMean.msd
      << " mm  HD95 " << s.liverMean.hd95 << " mm\n"
      << "lesion  Dice per case " << s.lesionDicePerCase << "  global " << s.lesionDiceGlobal
      << "  precision@0.5 " << s.precision50 << "  recall@0.5 " << s.recall50 << "  ("
      << s.lesionsDetected << " detected)\n"
      << "tumour burden RMSE " << s.burdenRmse << "  max error " << s.burdenMaxError << "\n"
      << "wrote " << (options.output / "cases.csv").string() << " and "
      << (options.output / "summary.json").string() << "\n";
  return kExitOk;
}

} // namespace densa::app
