// SPDX-License-Identifier: Apache-2.0
#include "densa/core/metrics.hpp"

#include "densa/core/error.hpp"
#include "densa/core/itk_bridge.hpp"
#include "densa/core/morphology.hpp"

#include <itkImage.h>
#include <itkSignedMaurerDistanceMapImageFilter.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace densa::core {

namespace {

void requireSameSize(const LabelMap& a, const LabelMap& b, const char* what) {
  if (a.size() != b.size()) {
    throw InvalidArgument(std::string(what) + ": masks differ in size");
  }
}

struct Box {
  std::array<std::size_t, 3> lo{};
  std::array<std::size_t, 3> hi{}; // exclusive
  bool empty = true;
};

// Joint bounding box of the non-zero voxels of a and b, padded by `pad` voxels (clipped).
Box jointBox(const LabelMap& a, const LabelMap& b, std::size_t pad) {
  Box box;
  const auto [nx, ny, nz] = a.size();
  for (std::size_t z = 0; z < nz; ++z) {
    for (std::size_t y = 0; y < ny; ++y) {
      for (std::size_t x = 0; x < nx; ++x) {
        const std::size_t i = a.offset(x, y, z);
        if (a.voxels()[i] == 0 && b.voxels()[i] == 0) {
          continue;
        }
        const std::array<std::size_t, 3> p{x, y, z};
        for (std::size_t d = 0; d < 3; ++d) {
          box.lo[d] = box.empty ? p[d] : std::min(box.lo[d], p[d]);
          box.hi[d] = box.empty ? p[d] + 1 : std::max(box.hi[d], p[d] + 1);
        }
        box.empty = false;
      }
    }
  }
  for (std::size_t d = 0; d < 3; ++d) {
    box.lo[d] = box.lo[d] >= pad ? box.lo[d] - pad : 0;
    box.hi[d] = std::min(box.hi[d] + pad, a.size()[d]);
  }
  return box;
}

LabelMap crop(const LabelMap& v, const Box& box) {
  const Size3 size{box.hi[0] - box.lo[0], box.hi[1] - box.lo[1], box.hi[2] - box.lo[2]};
  Geometry g;
  g.spacing = v.geometry().spacing; // the scorer uses index × spacing; origin does not matter
  LabelMap out(size, g, 0);
  for (std::size_t z = 0; z < size[2]; ++z) {
    for (std::size_t y = 0; y < size[1]; ++y) {
      for (std::size_t x = 0; x < size[0]; ++x) {
        out.at(x, y, z) = v.at(x + box.lo[0], y + box.lo[1], z + box.lo[2]) != 0 ? 1 : 0;
      }
    }
  }
  return out;
}

// Distance (mm) from every voxel to the nearest non-zero voxel of `surface`.
std::vector<float> distanceTo(const LabelMap& surface) {
  using In = itk::Image<std::uint8_t, 3>;
  using Out = itk::Image<float, 3>;
  auto filter = itk::SignedMaurerDistanceMapImageFilter<In, Out>::New();
  filter->SetInput(toItk(surface));
  filter->SetUseImageSpacing(true);
  filter->SetSquaredDistance(false);
  filter->SetInsideIsPositive(false);
  filter->SetBackgroundValue(0);
  try {
    filter->Update();
  } catch (const itk::ExceptionObject& e) {
    throw InternalError(std::string("surface distance map: ") + e.GetDescription());
  }
  const float* p = filter->GetOutput()->GetBufferPointer();
  std::vector<float> out(p, p + surface.voxelCount());
  for (auto& d : out) {
    d = std::max(d, 0.0F); // voxels of the surface itself (or enclosed by it) are at distance 0
  }
  return out;
}

double percentile95(std::vector<double> v) {
  if (v.empty()) {
    return 0;
  }
  // Linear interpolation between order statistics (numpy's default).
  std::sort(v.begin(), v.end());
  const double rank = 0.95 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (rank - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

LabelMap maskOfIds(const Components& c,
                   const std::vector<std::uint32_t>& ids,
                   const LabelMap& like) {
  std::vector<bool> keep(c.count + 1, false);
  for (const auto id : ids) {
    keep[id] = true;
  }
  LabelMap out(like.size(), like.geometry(), 0);
  for (std::size_t i = 0; i < c.ids.size(); ++i) {
    out.voxels()[i] = keep[c.ids[i]] ? 1 : 0;
  }
  return out;
}

} // namespace

Overlap overlap(const LabelMap& predicted, const LabelMap& reference) {
  requireSameSize(predicted, reference, "overlap");
  Overlap o;
  for (std::size_t i = 0; i < predicted.voxelCount(); ++i) {
    const bool p = predicted.voxels()[i] != 0;
    const bool g = reference.voxels()[i] != 0;
    o.predicted += p;
    o.reference += g;
    o.intersection += p && g;
  }
  return o;
}

double dice(const Overlap& o) noexcept {
  const auto sum = o.predicted + o.reference;
  return sum == 0 ? 1.0 : 2.0 * static_cast<double>(o.intersection) / static_cast<double>(sum);
}

SurfaceDistances surfaceDistances(const LabelMap& predicted,
                                  const LabelMap& reference,
                                  double toleranceMm) {
  requireSameSize(predicted, reference, "surfaceDistances");
  const Box box = jointBox(predicted, reference, 1);
  if (box.empty) {
    throw InvalidArgument("surfaceDistances: both masks are empty");
  }
  const LabelMap p = crop(predicted, box);
  const LabelMap g = crop(reference, box);
  const LabelMap sp = surfaceVoxels(p);
  const LabelMap sg = surfaceVoxels(g);
  const bool spEmpty =
      std::none_of(sp.voxels().begin(), sp.voxels().end(), [](auto v) { return v != 0; });
  const bool sgEmpty =
      std::none_of(sg.voxels().begin(), sg.voxels().end(), [](auto v) { return v != 0; });
  if (spEmpty || sgEmpty) {
    throw InvalidArgument("surfaceDistances: a mask is empty");
  }
  const std::vector<float> toG = distanceTo(sg);
  const std::vector<float> toP = distanceTo(sp);
  std::vector<double> fromP;
  std::vector<double> fromG;
  for (std::size_t i = 0; i < sp.voxelCount(); ++i) {
    if (sp.voxels()[i] != 0) {
      fromP.push_back(toG[i]);
    }
    if (sg.voxels()[i] != 0) {
      fromG.push_back(toP[i]);
    }
  }
  SurfaceDistances out;
  double sum = 0;
  double sumSq = 0;
  double maxD = 0;
  std::size_t within = 0;
  for (const auto* set : {&fromP, &fromG}) {
    for (const double d : *set) {
      sum += d;
      sumSq += d * d;
      maxD = std::max(maxD, d);
      within += d <= toleranceMm ? 1 : 0;
    }
  }
  const auto n = static_cast<double>(fromP.size() + fromG.size());
  out.assd = sum / n;
  out.rmsd = std::sqrt(sumSq / n);
  out.msd = maxD;
  out.hd95 = std::max(percentile95(fromP), percentile95(fromG));
  out.surfaceDice = static_cast<double>(within) / n;
  return out;
}

ObjectScores scoreObject(const LabelMap& predicted, const LabelMap& reference, double toleranceMm) {
  const Overlap o = overlap(predicted, reference);
  ObjectScores s;
  if (o.predicted == 0 || o.reference == 0) {
    return s; // the scorer's penalties
  }
  s.dice = dice(o);
  s.jaccard = s.dice / (2.0 - s.dice);
  s.voe = 1.0 - s.jaccard;
  const auto p = static_cast<double>(o.predicted);
  const auto g = static_cast<double>(o.reference);
  s.rvdScorer = (g - p) / p;
  s.rvd = (p - g) / g;
  const SurfaceDistances d = surfaceDistances(predicted, reference, toleranceMm);
  s.assd = d.assd;
  s.msd = d.msd;
  s.rmsd = d.rmsd;
  s.hd95 = d.hd95;
  s.surfaceDice = d.surfaceDice;
  return s;
}

LesionDetection detectLesions(const LabelMap& predictedLesions,
                              const LabelMap& referenceLesions,
                              double minIoU,
                              double toleranceMm) {
  requireSameSize(predictedLesions, referenceLesions, "detectLesions");
  const Components pc = connectedComponents(predictedLesions, Connectivity::Faces6);
  const Components gc = connectedComponents(referenceLesions, Connectivity::Faces6);
  LesionDetection out;
  out.referenceLesions = gc.count;
  out.predictedLesions = pc.count;
  if (gc.count == 0 || pc.count == 0) {
    return out;
  }
  // Intersection counts I[p][g] (sparse).
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> inter;
  for (std::size_t i = 0; i < pc.ids.size(); ++i) {
    if (pc.ids[i] != 0 && gc.ids[i] != 0) {
      ++inter[{pc.ids[i], gc.ids[i]}];
    }
  }
  // Each reference lesion goes with the predicted lesion that overlaps it most (lowest id on ties);
  // reference lesions sharing that predictor merge into one group.
  std::vector<std::uint32_t> bestPredictor(gc.count + 1, 0);
  std::vector<std::uint64_t> bestOverlap(gc.count + 1, 0);
  for (const auto& [key, n] : inter) {
    const auto [p, g] = key;
    if (n > bestOverlap[g]) {
      bestOverlap[g] = n;
      bestPredictor[g] = p;
    }
  }
  std::vector<std::uint32_t> group(gc.count + 1, 0); // reference id -> group id (a reference id)
  std::map<std::uint32_t, std::uint32_t> groupOfPredictor;
  for (std::uint32_t g = 1; g <= gc.count; ++g) {
    if (bestPredictor[g] == 0) {
      group[g] = g;
      continue;
    }
    auto [it, inserted] = groupOfPredictor.emplace(bestPredictor[g], g);
    group[g] = it->second;
  }
  // Each predicted lesion goes to the merged reference group it overlaps most.
  std::map<std::uint32_t, std::map<std::uint32_t, std::uint64_t>> perPredGroup;
  for (const auto& [key, n] : inter) {
    perPredGroup[key.first][group[key.second]] += n;
  }
  std::map<std::uint32_t, std::vector<std::uint32_t>> predsOfGroup;
  for (const auto& [p, groups] : perPredGroup) {
    const auto best =
        std::max_element(groups.begin(), groups.end(), [](const auto& a, const auto& b) {
          return a.second < b.second || (a.second == b.second && a.first > b.first);
        });
    predsOfGroup[best->first].push_back(p);
  }
  for (const auto& [g, preds] : predsOfGroup) {
    std::vector<std::uint32_t> refs;
    for (std::uint32_t r = 1; r <= gc.count; ++r) {
      if (group[r] == g) {
        refs.push_back(r);
      }
    }
    const LabelMap pm = maskOfIds(pc, preds, predictedLesions);
    const LabelMap gm = maskOfIds(gc, refs, referenceLesions);
    const Overlap o = overlap(pm, gm);
    const double iou = static_cast<double>(o.intersection) /
                       static_cast<double>(o.predicted + o.reference - o.intersection);
    if (iou > minIoU) {
      out.detectedReference += refs.size();
      out.detectedPredicted += preds.size();
      out.detected.push_back(scoreObject(pm, gm, toleranceMm));
    }
  }
  return out;
}

LitsCase evaluateLitsCase(const LabelMap& predicted,
                          const LabelMap& reference,
                          double toleranceMm) {
  requireSameSize(predicted, reference, "evaluateLitsCase");
  LitsCase c;
  const LabelMap predLiver = atLeast(predicted, 1);
  const LabelMap refLiver = atLeast(reference, 1);
  const LabelMap predLesion = equalTo(predicted, 2);
  const LabelMap refLesion = equalTo(reference, 2);
  c.liverOverlap = overlap(predLiver, refLiver);
  c.lesionOverlap = overlap(predLesion, refLesion);
  const bool predHasLabel1 = std::any_of(
      predicted.voxels().begin(), predicted.voxels().end(), [](auto v) { return v == 1; });
  c.liverDice = predHasLabel1 ? dice(c.liverOverlap) : 0.0;
  c.liver = predHasLabel1 ? scoreObject(predLiver, refLiver, toleranceMm) : ObjectScores{};
  c.lesionDice = dice(c.lesionOverlap); // 1 when both are empty
  c.lesions50 = detectLesions(predLesion, refLesion, 0.5, toleranceMm);
  c.lesions0 = detectLesions(predLesion, refLesion, 0.0, toleranceMm);
  auto burden = [](const Overlap& lesion, const Overlap& liver, bool predictedSide) {
    const auto les = predictedSide ? lesion.predicted : lesion.reference;
    const auto liv = predictedSide ? liver.predicted : liver.reference;
    return liv == 0 ? 0.0 : static_cast<double>(les) / static_cast<double>(liv);
  };
  c.burdenReference = burden(c.lesionOverlap, c.liverOverlap, false);
  c.burdenPredicted = burden(c.lesionOverlap, c.liverOverlap, true);
  return c;
}

namespace {

void accumulate(ObjectScores& sum, const ObjectScores& s) {
  sum.dice += s.dice;
  sum.jaccard += s.jaccard;
  sum.voe += s.voe;
  sum.rvdScorer += s.rvdScorer;
  sum.rvd += s.rvd;
  sum.assd += s.assd;
  sum.msd += s.msd;
  sum.rmsd += s.rmsd;
  sum.hd95 += s.hd95;
  sum.surfaceDice += s.surfaceDice;
}

ObjectScores divided(ObjectScores s, double n) {
  if (n == 0) {
    return ObjectScores{};
  }
  for (double* v : {&s.dice,
                    &s.jaccard,
                    &s.voe,
                    &s.rvdScorer,
                    &s.rvd,
                    &s.assd,
                    &s.msd,
                    &s.rmsd,
                    &s.hd95,
                    &s.surfaceDice}) {
    *v /= n;
  }
  return s;
}

double ratio(std::size_t a, std::size_t b) {
  return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b);
}

} // namespace

LitsSummary summarise(const std::vector<LitsCase>& cases) {
  LitsSummary s;
  s.cases = cases.size();
  if (cases.empty()) {
    return s;
  }
  ObjectScores zero{0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  ObjectScores liverSum = zero;
  ObjectScores lesionSum = zero;
  std::uint64_t liverI = 0, liverS = 0, lesionI = 0, lesionS = 0;
  std::size_t ref50 = 0, det50 = 0, pred50 = 0, predDet50 = 0, ref0 = 0, det0 = 0, pred0 = 0,
              predDet0 = 0;
  double burdenSq = 0;
  for (const auto& c : cases) {
    s.liverDicePerCase += c.liverDice;
    s.lesionDicePerCase += c.lesionDice;
    accumulate(liverSum, c.liver);
    for (const auto& l : c.lesions50.detected) {
      accumulate(lesionSum, l);
      ++s.lesionsDetected;
    }
    liverI += c.liverOverlap.intersection;
    liverS += c.liverOverlap.predicted + c.liverOverlap.reference;
    lesionI += c.lesionOverlap.intersection;
    lesionS += c.lesionOverlap.predicted + c.lesionOverlap.reference;
    ref50 += c.lesions50.referenceLesions;
    det50 += c.lesions50.detectedReference;
    pred50 += c.lesions50.predictedLesions;
    predDet50 += c.lesions50.detectedPredicted;
    ref0 += c.lesions0.referenceLesions;
    det0 += c.lesions0.detectedReference;
    pred0 += c.lesions0.predictedLesions;
    predDet0 += c.lesions0.detectedPredicted;
    const double e = c.burdenReference - c.burdenPredicted;
    burdenSq += e * e;
    s.burdenMaxError = std::max(s.burdenMaxError, std::abs(e));
  }
  const auto n = static_cast<double>(cases.size());
  s.liverDicePerCase /= n;
  s.lesionDicePerCase /= n;
  s.liverMean = divided(liverSum, n);
  s.lesionMean = divided(lesionSum, static_cast<double>(s.lesionsDetected));
  s.liverDiceGlobal =
      liverS == 0 ? 1.0 : 2.0 * static_cast<double>(liverI) / static_cast<double>(liverS);
  s.lesionDiceGlobal =
      lesionS == 0 ? 1.0 : 2.0 * static_cast<double>(lesionI) / static_cast<double>(lesionS);
  s.precision50 = ratio(predDet50, pred50);
  s.recall50 = ratio(det50, ref50);
  s.precision0 = ratio(predDet0, pred0);
  s.recall0 = ratio(det0, ref0);
  s.burdenRmse = std::sqrt(burdenSq / n);
  return s;
}

} // namespace densa::core
