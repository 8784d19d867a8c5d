// SPDX-License-Identifier: Apache-2.0
// densa segment on the real CT in ../shared/data/totalseg_abdomen_ct with the bundled model: the
// label maps lie on the input grid (DICOM and NIfTI inputs) and overlap the reference liver in
// physical space.
#include "densa/app/batch.hpp"
#include "densa/app/cases.hpp"
#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/core/metrics.hpp"
#include "densa/core/resample.hpp"
#include "densa/io/dicom_seg.hpp"
#include "densa/io/image_file.hpp"
#include "densa/io/load.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

namespace densa::app {
namespace {

namespace fs = std::filesystem;

core::LabelMap liverOf(const fs::path& labels, const core::Grid& grid) {
  auto l = core::resampleOnto(
      std::get<core::LabelMap>(io::readImage(labels)), grid, core::Interpolation::Nearest);
  for (auto& v : l.voxels()) {
    v = v == 5 ? 1 : 0;
  }
  return l;
}

TEST(SegmentRealCt, DicomSeriesGivesALabelMapAndSegOnItsGrid) {
  DENSA_REQUIRE_DATA(dicom, "totalseg_abdomen_ct/dicom_j2k");
  DENSA_REQUIRE_DATA(reference, "totalseg_abdomen_ct/dicom_labels_totalseg.nii.gz");
  testing::TempDir tmp;
  const auto segmenter = loadHDenseUNetSegmenter(defaultModelPath());
  const CaseList cases = discoverCases(dicom);
  ASSERT_EQ(cases.cases.size(), 1U);
  BatchOptions options;
  options.output = tmp.path();
  std::ostringstream log;
  ASSERT_EQ(runBatch(cases, *segmenter, options, log).exitCode(), 0) << log.str();
  const fs::path dir = tmp / cases.cases[0].id;
  const auto labels = std::get<core::LabelMap>(io::readImage(dir / "label.nii.gz"));
  const io::LoadedVolume ct = io::loadVolume(dicom);
  EXPECT_EQ(labels.size(), core::sizeOf(ct.volume));
  EXPECT_TRUE(labels.geometry().approxEqual(core::geometryOf(ct.volume), 1e-4));
  EXPECT_EQ(io::readDicomSeg(dir / "seg.dcm", labels.size(), labels.geometry()), labels);
  // In physical space the predicted liver overlaps TotalSegmentator's (the LAS label map).
  const auto liver = liverOf(reference, core::gridOf(labels));
  auto predicted = labels;
  for (auto& v : predicted.voxels()) {
    v = v >= 1 ? 1 : 0;
  }
  EXPECT_GT(core::dice(core::overlap(predicted, liver)), 0.6);
}

// The whole data tree as one batch (what the "done when" asks): every case ends done or
// failed with a reason naming a file, and the real CT, stored twice (uncompressed and JPEG 2000
// copies of one anonymised series), is segmented in both copies with the same result.
TEST(SegmentRealCt, TheWholeDataTreeIsOneBatch) {
  DENSA_REQUIRE_DATA(root, ".");
  DENSA_REQUIRE_DATA(dicom, "totalseg_abdomen_ct/dicom_j2k");
  testing::TempDir tmp;
  const auto segmenter = loadHDenseUNetSegmenter(defaultModelPath());
  const CaseList cases = discoverCases(root);
  BatchOptions options;
  options.output = tmp.path();
  options.writeSeg = false;
  std::ostringstream log;
  const BatchReport report = runBatch(cases, *segmenter, options, log);
  std::vector<const CaseOutcome*> realCt;
  for (const auto& c : report.cases) {
    if (c.status == CaseOutcome::Status::Failed) {
      EXPECT_NE(c.reason.find(root.parent_path().string()), std::string::npos)
          << c.id << ": " << c.reason;
      // The one failure expected there: pydicom's 693_* copies of one CT slice, two of them with
      // different pixels under two SOPInstanceUIDs at one position (an inconsistent series).
      EXPECT_NE(c.reason.find("same slice position"), std::string::npos) << c.reason;
    } else {
      EXPECT_TRUE(fs::exists(tmp / c.id / "label.nii.gz")) << c.id;
      EXPECT_TRUE(fs::exists(tmp / c.id / "report.json")) << c.id;
    }
    if (c.id.starts_with("totalseg_abdomen_ct_dicom_")) {
      realCt.push_back(&c);
    }
  }
  EXPECT_LE(report.count(CaseOutcome::Status::Failed), 1U) << log.str();
  ASSERT_EQ(realCt.size(), 2U) << log.str();
  for (const auto* c : realCt) {
    EXPECT_EQ(c->status, CaseOutcome::Status::Done) << c->id << ": " << c->reason;
  }
  EXPECT_EQ(realCt[0]->liverMl, realCt[1]->liverMl);
  EXPECT_EQ(realCt[0]->lesions, realCt[1]->lesions);
  EXPECT_GT(realCt[0]->liverMl, 100.0);
}

TEST(SegmentRealCt, NiftiInputKeepsItsGrid) {
  DENSA_REQUIRE_DATA(nifti, "totalseg_abdomen_ct/nifti/example_ct_sm.nii.gz");
  const auto segmenter = loadHDenseUNetSegmenter(defaultModelPath());
  const auto ct = std::get<core::Volume<std::int16_t>>(io::readImage(nifti));
  const SegmentationResult r = segmenter->segment(ct, {});
  EXPECT_EQ(r.labels.size(), ct.size());
  EXPECT_EQ(r.labels.geometry(), ct.geometry());
}

} // namespace
} // namespace densa::app
