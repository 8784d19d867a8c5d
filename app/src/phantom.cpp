// SPDX-License-Identifier: Apache-2.0
#include "densa/app/phantom.hpp"

#include "densa/app/commands.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/app/preview.hpp"
#include "densa/core/error.hpp"
#include "densa/io/dicom_writer.hpp"
#include "densa/io/image_file.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <ostream>
#include <random>

namespace densa::app {

namespace {

struct Blob {
  core::Vec3 centre; // mm
  core::Vec3 radii;  // mm
  double wobble = 0; // relative radius modulation
  double phase = 0;
};

// Inside test for an ellipsoid whose radius is modulated by a smooth angular function.
bool inside(const Blob& b, const core::Vec3& p) {
  const double dx = (p[0] - b.centre[0]) / b.radii[0];
  const double dy = (p[1] - b.centre[1]) / b.radii[1];
  const double dz = (p[2] - b.centre[2]) / b.radii[2];
  const double r2 = dx * dx + dy * dy + dz * dz;
  if (b.wobble == 0) {
    return r2 <= 1;
  }
  const double theta = std::atan2(dy, dx);
  const double limit = 1 + b.wobble * std::sin(3 * theta + b.phase) * std::cos(2 * dz + b.phase);
  return r2 <= limit * limit;
}

} // namespace

Phantom makePhantom(const PhantomSpec& spec, std::uint64_t seed) {
  if (spec.size < 16 || spec.slices < 1) {
    throw core::InvalidArgument("makePhantom: size must be >= 16 and slices >= 1");
  }
  std::mt19937_64 rng(seed);
  auto uniform = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  const auto n = static_cast<std::size_t>(spec.size);
  const auto depth = static_cast<std::size_t>(spec.slices);
  const double sxy = spec.spacingXY > 0 ? spec.spacingXY : 400.0 / spec.size * uniform(0.9, 1.1);
  core::Geometry g;
  g.spacing = {sxy, sxy, spec.spacingZ};
  g.origin = {-sxy * (spec.size - 1) / 2.0,
              -sxy * (spec.size - 1) / 2.0,
              -spec.spacingZ * (spec.slices - 1) / 2.0};
  Phantom out{
      core::Volume<std::int16_t>({n, n, depth}, g, -1000), core::LabelMap({n, n, depth}, g, 0), 0};

  const double zHalf = spec.spacingZ * spec.slices / 2.0;
  const double bodyA = uniform(140, 165); // left-right semi-axis, mm
  const double bodyB = uniform(100, 120); // antero-posterior
  const double fat = uniform(10, 25);
  // LPS: the patient's right is -x, anterior is -y.
  const Blob liver{{uniform(-75, -50), uniform(-20, 5), uniform(-0.2, 0.2) * zHalf},
                   {uniform(65, 90), uniform(55, 75), std::max(zHalf * uniform(0.7, 1.1), 20.0)},
                   uniform(0.05, 0.15),
                   uniform(0, 6.28)};
  const Blob spine{{0, bodyB - fat - 35, 0}, {18, 16, 1e9}, 0, 0};
  const Blob aorta{{uniform(10, 20), bodyB - fat - 65, 0}, {11, 11, 1e9}, 0, 0};
  const Blob kidneyR{{-65, bodyB - fat - 45, uniform(-0.3, 0.1) * zHalf}, {28, 22, 45}, 0.05, 1};
  const Blob kidneyL{{65, bodyB - fat - 45, uniform(-0.2, 0.2) * zHalf}, {28, 22, 45}, 0.05, 2};
  std::vector<std::pair<Blob, double>> tumours;
  const int count = std::uniform_int_distribution<int>(0, spec.maxTumours)(rng);
  for (int t = 0; t < count; ++t) {
    const double r = uniform(5, 18);
    const core::Vec3 c{liver.centre[0] + uniform(-0.5, 0.5) * liver.radii[0],
                       liver.centre[1] + uniform(-0.5, 0.5) * liver.radii[1],
                       liver.centre[2] + uniform(-0.5, 0.5) * liver.radii[2]};
    tumours.push_back(
        {Blob{c, {r, r * uniform(0.8, 1.2), r * uniform(0.8, 1.2)}, 0.1, uniform(0, 6)},
         uniform(0, 1) < 0.75 ? uniform(20, 55) : uniform(140, 180)});
  }
  const double liverHu = uniform(95, 125);
  std::normal_distribution<double> noise(0.0, uniform(8, 15));

  for (std::size_t k = 0; k < depth; ++k) {
    for (std::size_t j = 0; j < n; ++j) {
      for (std::size_t i = 0; i < n; ++i) {
        const core::Vec3 p = g.indexToPhysical(
            {static_cast<double>(i), static_cast<double>(j), static_cast<double>(k)});
        const double e = std::pow(p[0] / bodyA, 2) + std::pow(p[1] / bodyB, 2);
        if (e > 1) {
          continue;
        }
        const double inner = std::pow(p[0] / (bodyA - fat), 2) + std::pow(p[1] / (bodyB - fat), 2);
        double hu = inner > 1 ? -100 : 35; // fat, else abdominal soft tissue
        if (inner <= 1 && inner > 0.8) {
          hu = 55; // muscle wall
          const double angle = std::atan2(p[1], p[0]);
          if (std::fmod(std::abs(angle) + 0.2 * std::sin(p[2] / 20), 0.45) < 0.08 &&
              p[1] > -bodyB * 0.6) {
            hu = 700; // ribs
          }
        }
        std::uint8_t label = 0;
        if (inside(spine, p)) {
          hu = 350;
        } else if (inside(aorta, p)) {
          hu = 180;
        } else if (inside(kidneyR, p) || inside(kidneyL, p)) {
          hu = 165;
        } else if (inner <= 0.8 && inside(liver, p)) {
          hu = liverHu;
          label = 1;
          for (const auto& [blob, tumourHu] : tumours) {
            if (inside(blob, p)) {
              hu = tumourHu;
              label = 2;
            }
          }
        }
        hu += noise(rng);
        out.ct.at(i, j, k) = static_cast<std::int16_t>(std::clamp(std::lround(hu), -1024L, 3071L));
        out.labels.at(i, j, k) = label;
      }
    }
  }
  for (const auto& v : out.labels.voxels()) {
    if (v == 2) {
      out.tumours = static_cast<int>(tumours.size());
      break;
    }
  }
  return out;
}

int runPhantom(const PhantomOptions& options, std::ostream& out, std::ostream& /*err*/) {
  for (int c = 0; c < options.cases; ++c) {
    PhantomSpec spec;
    spec.size = options.size;
    spec.slices = options.slices;
    spec.spacingXY = options.spacingXY;
    spec.spacingZ = options.spacingZ;
    const std::uint64_t seed = options.seed * 1000003ULL + static_cast<std::uint64_t>(c);
    const Phantom phantom = makePhantom(spec, seed);
    char name[64];
    std::snprintf(name, sizeof name, "synthetic_phantom_%03d", c);
    const auto dir = options.output / name;
    io::DicomWriteOptions dicom;
    dicom.patientId = std::string("DENSA-SYNTH-") + std::to_string(c);
    dicom.seriesDescription = "SYNTHETIC CT phantom (Densa) seed " + std::to_string(seed);
    const auto files = io::writeDicomSeries(phantom.ct, dir / "dicom", dicom);
    io::writeImage(phantom.labels, dir / "label.nii.gz");
    writeMontagePng(dir / "preview.png", phantom.ct, &phantom.labels);
    const auto& sp = phantom.ct.geometry().spacing;
    out << "wrote " << dir.string() << "  " << files.size() << " DICOM slices, spacing " << sp[0]
        << " x " << sp[1] << " x " << sp[2] << " mm, " << phantom.tumours << " tumour(s)\n";
  }
  return kExitOk;
}

} // namespace densa::app
