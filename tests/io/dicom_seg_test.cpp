// SPDX-License-Identifier: Apache-2.0
#include "densa/io/dicom_seg.hpp"

#include "densa/core/error.hpp"
#include "densa/io/dicom_scan.hpp"
#include "densa/io/dicom_writer.hpp"

#include "support/test_support.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <gtest/gtest.h>

namespace densa::io {
namespace {

struct Case {
  LoadedSeries series;
  core::LabelMap labels;
};

Case makeCase(const testing::TempDir& tmp) {
  const auto ct = testing::ramp<std::int16_t>({24, 20, 8}, testing::obliqueGeometry());
  (void)writeDicomSeries(ct, tmp / "ct");
  const DicomScan scan = scanDicom(tmp / "ct");
  Case c{loadDicomSeries(scan.series.at(0)),
         core::LabelMap(ct.size(), core::geometryOf(c.series.volume), 0)};
  c.labels = core::LabelMap(ct.size(), core::geometryOf(c.series.volume), 0);
  for (std::size_t k = 1; k < 6; ++k) {
    for (std::size_t j = 3; j < 15; ++j) {
      for (std::size_t i = 2; i < 20; ++i) {
        c.labels.at(i, j, k) = (i > 8 && i < 12 && j > 6 && j < 10 && k > 2) ? 2 : 1;
      }
    }
  }
  return c;
}

TEST(DicomSeg, RoundTripsVoxelForVoxelOnAnObliqueSeries) {
  testing::TempDir tmp;
  const Case c = makeCase(tmp);
  writeDicomSeg(c.labels, c.series.provenance, tmp / "seg.dcm");
  const core::LabelMap back = readDicomSeg(tmp / "seg.dcm", c.labels.size(), c.labels.geometry());
  EXPECT_EQ(back, c.labels);
}

TEST(DicomSeg, ReferencesTheSourceSeries) {
  testing::TempDir tmp;
  const Case c = makeCase(tmp);
  writeDicomSeg(c.labels, c.series.provenance, tmp / "seg.dcm");
  DcmFileFormat f;
  ASSERT_TRUE(f.loadFile((tmp / "seg.dcm").c_str()).good());
  OFString value;
  ASSERT_TRUE(f.getDataset()->findAndGetOFString(DCM_Modality, value).good());
  EXPECT_EQ(value, "SEG");
  ASSERT_TRUE(f.getDataset()->findAndGetOFString(DCM_StudyInstanceUID, value).good());
  EXPECT_EQ(std::string(value.c_str()), c.series.provenance.studyInstanceUid);
  ASSERT_TRUE(f.getDataset()->findAndGetOFString(DCM_FrameOfReferenceUID, value).good());
  EXPECT_EQ(std::string(value.c_str()), c.series.provenance.frameOfReferenceUid);
  // Liver frames on slices 1..5, tumour frames on 3..5.
  ASSERT_TRUE(f.getDataset()->findAndGetOFString(DCM_NumberOfFrames, value).good());
  EXPECT_EQ(value, "8");
  // The source image of each frame is referenced.
  DcmItem* item = nullptr;
  ASSERT_TRUE(
      f.getDataset()->findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, item, 0).good());
  DcmItem* derivation = nullptr;
  ASSERT_TRUE(item->findAndGetSequenceItem(DCM_DerivationImageSequence, derivation, 0).good());
  DcmItem* sourceImage = nullptr;
  ASSERT_TRUE(derivation->findAndGetSequenceItem(DCM_SourceImageSequence, sourceImage, 0).good());
  ASSERT_TRUE(sourceImage->findAndGetOFString(DCM_ReferencedSOPInstanceUID, value).good());
  EXPECT_EQ(std::string(value.c_str()), c.series.provenance.sopInstanceUids[1]);
}

TEST(DicomSeg, EmptyLabelMapIsRefusedAndLeavesNoFile) {
  testing::TempDir tmp;
  Case c = makeCase(tmp);
  std::fill(c.labels.voxels().begin(), c.labels.voxels().end(), 0);
  EXPECT_THROW(writeDicomSeg(c.labels, c.series.provenance, tmp / "seg.dcm"), core::InputError);
  EXPECT_FALSE(std::filesystem::exists(tmp / "seg.dcm"));
}

} // namespace
} // namespace densa::io
