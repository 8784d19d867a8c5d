// SPDX-License-Identifier: Apache-2.0
#include "densa/app/pretrain.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace densa::app {
namespace {

namespace fs = std::filesystem;

std::vector<std::vector<double>> metrics(const fs::path& file) {
  std::vector<std::vector<double>> rows;
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::stringstream s(line);
    std::vector<double> row;
    for (std::string f; std::getline(s, f, ',');) {
      row.push_back(std::stod(f));
    }
    rows.push_back(row);
  }
  return rows;
}

TEST(PretrainGeminiData, ShortPretrainingOnRealCtCropsLowersTheLosses) {
  DENSA_REQUIRE_DATA(dicom, "totalseg_abdomen_ct/dicom_uncompressed");
  DENSA_REQUIRE_DATA(nifti, "totalseg_abdomen_ct/nifti/example_ct.nii.gz");
  testing::TempDir tmp;
  std::ofstream(tmp / "real.yaml")
      << "datasets:\n  - path: " << dicom.string() << "\n  - path: " << nifti.string()
      << "\npreset: tiny\ncrop_size: 32\nspacing_mm: 3\nsteps: 30\n"
         "log_every: 10\ncheckpoint_every: 30\nseed: 3\n";
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(runPretrain({.config = tmp / "real.yaml",
                         .resume = std::nullopt,
                         .runDir = tmp / "run",
                         .overrides = {}},
                        out,
                        err),
            0)
      << err.str();
  EXPECT_NE(out.str().find("2 volume(s)"), std::string::npos) << out.str();
  const auto rows = metrics(tmp / "run" / "metrics.csv");
  ASSERT_EQ(rows.size(), 3U);
  // Columns: step, loss, gvs, gss, smooth, restoration, pairs/s, folding %.
  EXPECT_LT(rows.back()[1], rows.front()[1]) << "L_GEMINI did not fall";
  EXPECT_LT(rows.back()[5], rows.front()[5]) << "restoration loss did not fall";
  EXPECT_LT(rows.back()[3], rows.front()[3]) << "GSS did not fall";
}

} // namespace
} // namespace densa::app
