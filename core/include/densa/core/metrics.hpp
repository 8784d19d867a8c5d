// SPDX-License-Identifier: Apache-2.0
#pragma once

// Segmentation metrics, including the LiTS challenge metrics exactly as the official scorer defines
// them (methods-spec §1.12). Distances are in millimetres, with voxel coordinates = index × spacing
// (as the scorer does); masks are label maps where any non-zero voxel is foreground.

#include "densa/core/volume.hpp"

#include <cstdint>
#include <vector>

namespace densa::core {

/// The LiTS scorer's penalty for metrics that are undefined when a mask is empty.
inline constexpr double kLitsLarge = 9001.0;

/// Voxel-count overlap of two masks.
struct Overlap {
  std::uint64_t predicted = 0;    ///< |P|
  std::uint64_t reference = 0;    ///< |G|
  std::uint64_t intersection = 0; ///< |P ∩ G|
};

[[nodiscard]] Overlap overlap(const LabelMap& predicted, const LabelMap& reference);

/// Dice 2|P∩G| / (|P|+|G|); 1 when both masks are empty.
[[nodiscard]] double dice(const Overlap& o) noexcept;

/// Symmetric surface distances between the surfaces S(P) and S(G) (surface = mask XOR its
/// 18-neighbour erosion; see surfaceVoxels). Both masks must be non-empty.
struct SurfaceDistances {
  double assd = 0; ///< average symmetric surface distance, mm
  double msd = 0;  ///< maximum symmetric surface distance (Hausdorff), mm
  double rmsd = 0; ///< root-mean-square symmetric surface distance, mm
  /// 95th percentile Hausdorff: max of the two directed 95th percentiles (the convention of
  /// DeepMind's surface-distance and MONAI), mm.
  double hd95 = 0;
  /// Fraction of surface voxels of either mask within `tolerance` mm of the other surface
  /// (a voxel-count version of the surface Dice / NSD).
  double surfaceDice = 0;
};

/// Throws InvalidArgument when a mask is empty or the sizes differ. Uses exact Euclidean distance
/// maps (itk::SignedMaurerDistanceMapImageFilter) inside the masks' joint bounding box.
[[nodiscard]] SurfaceDistances surfaceDistances(const LabelMap& predicted,
                                                const LabelMap& reference,
                                                double toleranceMm = 2.0);

/// The scorer's per-object scores. When either mask is empty: dice 0, voe 1 and kLitsLarge for the
/// rest (the scorer's convention).
struct ObjectScores {
  double dice = 0;
  double jaccard = 0;
  double voe = 1;
  /// The scorer's RVD, medpy.ravd(reference, prediction) = (|G| − |P|) / |P|.
  double rvdScorer = kLitsLarge;
  /// The common RVD, (|P| − |G|) / |G|.
  double rvd = kLitsLarge;
  double assd = kLitsLarge;
  double msd = kLitsLarge;
  double rmsd = kLitsLarge;
  double hd95 = kLitsLarge;
  double surfaceDice = 0;
};

[[nodiscard]] ObjectScores scoreObject(const LabelMap& predicted,
                                       const LabelMap& reference,
                                       double toleranceMm = 2.0);

/// Lesion-wise detection (the scorer's detect_lesions): connected components (6-connectivity)
/// of P and G; reference lesions bridged by one predicted lesion are merged (each reference
/// lesion goes with the predicted lesion that overlaps it most); each predicted lesion is matched
/// to the merged reference lesion it overlaps most, and predictions matched to the same reference
/// are merged; a match is detected when its IoU > minIoU.
struct LesionDetection {
  std::size_t referenceLesions = 0;   ///< connected components of G
  std::size_t predictedLesions = 0;   ///< connected components of P
  std::size_t detectedReference = 0;  ///< reference components inside detected matches (TP)
  std::size_t detectedPredicted = 0;  ///< predicted components inside detected matches
  std::vector<ObjectScores> detected; ///< scores of each detected (merged) lesion pair
};

[[nodiscard]] LesionDetection detectLesions(const LabelMap& predictedLesions,
                                            const LabelMap& referenceLesions,
                                            double minIoU,
                                            double toleranceMm = 2.0);

/// All LiTS metrics of one case (labels: 0 background, 1 liver, 2 tumour).
struct LitsCase {
  double liverDice = 0;  ///< per-case rule: 0 when the prediction has no voxel labelled 1
  double lesionDice = 0; ///< per-case rule: 1 when both lesion masks are empty
  ObjectScores liver;    ///< liver = label ≥ 1; kLitsLarge penalties when no liver is predicted
  Overlap liverOverlap;
  Overlap lesionOverlap;
  LesionDetection lesions50;  ///< detection at IoU > 0.5 (the scorer's)
  LesionDetection lesions0;   ///< detection at IoU > 0
  double burdenReference = 0; ///< |label 2| / |label ≥ 1|, 0 when no liver
  double burdenPredicted = 0;
};

/// Throws InvalidArgument when the two label maps have different sizes.
[[nodiscard]] LitsCase evaluateLitsCase(const LabelMap& predicted,
                                        const LabelMap& reference,
                                        double toleranceMm = 2.0);

/// Means over cases (liver, per-case Dice), over detected lesions of all cases (lesion surface and
/// volume metrics), pooled counts (global Dice, detection precision/recall), and tumour burden.
struct LitsSummary {
  std::size_t cases = 0;
  double liverDicePerCase = 0;
  double liverDiceGlobal = 0;
  ObjectScores liverMean;
  double lesionDicePerCase = 0;
  double lesionDiceGlobal = 0;
  ObjectScores lesionMean;         ///< over lesions detected at IoU > 0.5
  std::size_t lesionsDetected = 0; ///< number of detected (merged) lesions averaged
  double precision50 = 0;
  double recall50 = 0;
  double precision0 = 0;
  double recall0 = 0;
  double burdenRmse = 0;
  double burdenMaxError = 0; ///< max |reference − prediction|
};

[[nodiscard]] LitsSummary summarise(const std::vector<LitsCase>& cases);

} // namespace densa::core
