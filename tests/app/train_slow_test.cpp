// SPDX-License-Identifier: Apache-2.0
// A short training run from scratch on phantoms learns the liver (issue: densa train, tests).
#include "densa/app/phantom.hpp"
#include "densa/app/train.hpp"
#include "densa/io/dicom_writer.hpp"
#include "densa/io/image_file.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace densa::app {
namespace {

namespace fs = std::filesystem;

TEST(TrainFromScratch, TinyPresetLearnsTheLiverOfHeldOutPhantomsInAMinute) {
  testing::TempDir tmp;
  for (int c = 0; c < 6; ++c) {
    PhantomSpec spec;
    spec.size = 192;
    spec.slices = 16;
    spec.spacingXY = 2.0;
    spec.spacingZ = 5.0;
    const Phantom p = makePhantom(spec, static_cast<std::uint64_t>(100 + c));
    const fs::path dir = tmp / "phantoms" / ("synthetic_phantom_00" + std::to_string(c));
    (void)io::writeDicomSeries(p.ct, dir / "dicom");
    io::writeImage(p.labels, dir / "label.nii.gz");
  }
  std::ofstream(tmp / "train.yaml")
      << "datasets:\n  - path: " << (tmp / "phantoms").string()
      << "\npreset: tiny\nstage: 2d\nsteps: 300\nbatch_size: 4\ncrop_size: 64\n"
         "optimizer: adam\nlearning_rate: 0.003\nschedule: poly\ndice_weight: 0.5\n"
         "folds: 3\nvalidate_every: 300\ncheckpoint_every: 300\nlog_every: 50\n";
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(runTrain({.config = tmp / "train.yaml",
                      .resume = std::nullopt,
                      .runDir = tmp / "run",
                      .overrides = {}},
                     out,
                     err),
            0)
      << err.str();
  std::ifstream metrics(tmp / "run" / "metrics.csv");
  std::string line;
  std::string last;
  while (std::getline(metrics, line)) {
    last = line;
  }
  // step,loss,learning_rate,samples_per_second,val_liver_dice,val_tumour_dice
  std::stringstream fields(last);
  std::string f;
  std::vector<std::string> v;
  while (std::getline(fields, f, ',')) {
    v.push_back(f);
  }
  ASSERT_GE(v.size(), 5U) << last;
  EXPECT_GE(std::stod(v[4]), 0.8) << "held-out liver Dice after 300 steps; " << out.str();
}

} // namespace
} // namespace densa::app
