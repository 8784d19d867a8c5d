// SPDX-License-Identifier: Apache-2.0
#include "densa/app/case_io.hpp"

#include "densa/core/error.hpp"
#include "densa/io/image_file.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace densa::app {
namespace {

core::LabelMap multiOrgan() {
  // 1 = spleen, 5 = liver, 7 = pancreas, as in TotalSegmentator's class map.
  core::LabelMap m({4, 1, 1});
  m.at(0, 0, 0) = 0;
  m.at(1, 0, 0) = 1;
  m.at(2, 0, 0) = 5;
  m.at(3, 0, 0) = 7;
  return m;
}

TEST(LoadLabelMap, MapKeepsOnlyTheNamedValues) {
  testing::TempDir dir;
  io::writeImage(multiOrgan(), dir / "seg.nii.gz");
  const core::LabelMap liver = loadLabelMap(dir / "seg.nii.gz", "5:1");
  EXPECT_EQ(liver.at(0, 0, 0), 0);
  EXPECT_EQ(liver.at(1, 0, 0), 0) << "spleen (1) must not become liver";
  EXPECT_EQ(liver.at(2, 0, 0), 1);
  EXPECT_EQ(liver.at(3, 0, 0), 0);
  const core::LabelMap two = loadLabelMap(dir / "seg.nii.gz", "5:1,7:2");
  EXPECT_EQ(two.at(3, 0, 0), 2);
  EXPECT_EQ(two.at(1, 0, 0), 0);
}

TEST(LoadLabelMap, WithoutAMapRefusesForeignValuesNamingFileAndValue) {
  testing::TempDir dir;
  io::writeImage(multiOrgan(), dir / "seg.nii.gz");
  try {
    (void)loadLabelMap(dir / "seg.nii.gz");
    FAIL() << "expected an InputError";
  } catch (const core::InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("seg.nii.gz"), std::string::npos) << what;
    EXPECT_NE(what.find("label value 5"), std::string::npos) << what;
  }
  EXPECT_THROW((void)loadLabelMap(dir / "seg.nii.gz", "5:3"), core::InvalidArgument);
  EXPECT_THROW((void)loadLabelMap(dir / "seg.nii.gz", "five"), core::InvalidArgument);
}

TEST(CaseReport, StatesVolumesLesionsModelAndInput) {
  LoadedCase loaded;
  loaded.ct = core::Volume<std::int16_t>({8, 8, 4});
  loaded.warnings = {"from loading"};
  core::LiverTumourStats stats;
  stats.liverVolumeMl = 12.5;
  stats.tumourVolumeMl = 1.25;
  stats.tumourBurdenPercent = 10;
  stats.lesions.push_back({});
  stats.lesions.back().id = 1;
  stats.lesions.back().volumeMl = 1.25;
  CaseReportInput in;
  in.caseId = "c1";
  in.loaded = &loaded;
  in.stats = &stats;
  in.model.id = "m@1";
  in.outputs = {{"labels", "label.nii.gz"}};
  in.warnings = {"extra"};
  const auto j = nlohmann::json::parse(caseReportJson(in));
  EXPECT_EQ(j.at("case"), "c1");
  EXPECT_DOUBLE_EQ(j.at("liver_volume_ml").get<double>(), 12.5);
  EXPECT_EQ(j.at("lesion_count"), 1);
  EXPECT_DOUBLE_EQ(j.at("lesions").at(0).at("volume_ml").get<double>(), 1.25);
  EXPECT_EQ(j.at("model").at("id"), "m@1");
  EXPECT_EQ(j.at("input").at("size").at(2), 4);
  EXPECT_EQ(j.at("outputs").at("labels"), "label.nii.gz");
  EXPECT_EQ(j.at("warnings").size(), 2U);
  in.stats = nullptr;
  EXPECT_THROW((void)caseReportJson(in), core::InvalidArgument);
}

} // namespace
} // namespace densa::app
