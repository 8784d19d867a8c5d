// SPDX-License-Identifier: Apache-2.0
#include "densa/app/phantom.hpp"

#include "densa/io/dicom_writer.hpp"
#include "densa/io/image_file.hpp"
#include "densa/io/load.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

namespace densa::app {
namespace {

PhantomSpec smallSpec() {
  PhantomSpec spec;
  spec.size = 96;
  spec.slices = 24;
  spec.spacingZ = 3.0;
  return spec;
}

double meanWhere(const Phantom& p, std::uint8_t label, std::size_t& count) {
  double sum = 0;
  count = 0;
  for (std::size_t i = 0; i < p.ct.voxelCount(); ++i) {
    if (p.labels.voxels()[i] == label) {
      sum += p.ct.voxels()[i];
      ++count;
    }
  }
  return count ? sum / static_cast<double>(count) : 0;
}

TEST(MakePhantom, IsDeterministicPerSeedAndVariesAcrossSeeds) {
  const Phantom a = makePhantom(smallSpec(), 11);
  const Phantom b = makePhantom(smallSpec(), 11);
  const Phantom c = makePhantom(smallSpec(), 12);
  EXPECT_EQ(a.ct, b.ct);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_NE(a.ct, c.ct);
}

TEST(MakePhantom, HasAnEnhancedLiverInsideTheBodyAndAirOutside) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    const Phantom p = makePhantom(smallSpec(), seed);
    std::size_t liverVoxels = 0;
    const double liverHu = meanWhere(p, 1, liverVoxels);
    EXPECT_GT(liverVoxels, 1000U) << seed;
    EXPECT_GT(liverHu, 80) << seed;
    EXPECT_LT(liverHu, 140) << seed;
    std::size_t background = 0;
    (void)meanWhere(p, 0, background);
    EXPECT_LT(p.ct.at(0, 0, 0), -900); // a corner is air
    // The liver lies in the patient's right (LPS -x): its centroid has negative x.
    double x = 0;
    for (std::size_t k = 0; k < p.ct.size()[2]; ++k) {
      for (std::size_t j = 0; j < p.ct.size()[1]; ++j) {
        for (std::size_t i = 0; i < p.ct.size()[0]; ++i) {
          if (p.labels.at(i, j, k) == 1) {
            x += p.ct.indexToPhysical({double(i), double(j), double(k)})[0];
          }
        }
      }
    }
    EXPECT_LT(x / static_cast<double>(liverVoxels), 0.0);
  }
}

TEST(MakePhantom, TumoursDifferFromLiverAndLieInsideIt) {
  int withTumour = 0;
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    const Phantom p = makePhantom(smallSpec(), seed);
    std::size_t n = 0;
    const double tumourHu = meanWhere(p, 2, n);
    if (n == 0) {
      continue;
    }
    ++withTumour;
    std::size_t liverN = 0;
    const double liverHu = meanWhere(p, 1, liverN);
    EXPECT_GT(std::abs(tumourHu - liverHu), 20) << seed;
  }
  EXPECT_GE(withTumour, 3);
}

TEST(MakePhantom, SurvivesADicomRoundTripWithLabelsAligned) {
  const Phantom p = makePhantom(smallSpec(), 5);
  testing::TempDir tmp;
  (void)io::writeDicomSeries(p.ct, tmp / "dicom");
  io::writeImage(p.labels, tmp / "label.nii.gz");
  const io::LoadedVolume ct = io::loadVolume(tmp / "dicom");
  const auto labels = std::get<core::LabelMap>(io::readImage(tmp / "label.nii.gz"));
  const auto& loaded = std::get<core::Volume<std::int16_t>>(ct.volume);
  EXPECT_TRUE(std::ranges::equal(loaded.voxels(), p.ct.voxels()));
  EXPECT_TRUE(loaded.geometry().approxEqual(p.ct.geometry(), 1e-6)); // DS strings: 10 digits
  EXPECT_TRUE(labels.geometry().approxEqual(core::geometryOf(ct.volume), 1e-4));
  EXPECT_TRUE(std::ranges::equal(labels.voxels(), p.labels.voxels()));
}

} // namespace
} // namespace densa::app
