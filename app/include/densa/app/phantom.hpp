// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <cstdint>

namespace densa::app {

/// Geometry and content knobs of one synthetic abdominal CT.
struct PhantomSpec {
  int size = 512; ///< in-plane matrix
  int slices = 48;
  double spacingXY = 0.0; ///< mm; 0: field of view 400 mm ± 10% (0.7–0.86 mm at 512)
  double spacingZ = 2.5;  ///< mm
  int maxTumours = 3;
};

/// A synthetic CT (HU) with its exact label map (0 background, 1 liver, 2 tumour).
struct Phantom {
  core::Volume<std::int16_t> ct;
  core::LabelMap labels;
  int tumours = 0;
};

/// Generates one phantom: air, a body ellipse with subcutaneous fat and muscle, spine, ribs,
/// aorta, kidneys, a liver of varied shape and position in the patient's right upper abdomen
/// (contrast-enhanced, ~100 HU) with 0–maxTumours hypo- or hyperdense lesions, and Gaussian noise.
/// Deterministic for a given seed. Geometry: identity direction (LPS), centred on the origin.
[[nodiscard]] Phantom makePhantom(const PhantomSpec& spec, std::uint64_t seed);

} // namespace densa::app
