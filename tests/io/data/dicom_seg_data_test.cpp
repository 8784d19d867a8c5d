// SPDX-License-Identifier: Apache-2.0
// DICOM SEG on the real CT (../shared/data/totalseg_abdomen_ct), whose study/series/SOP UIDs are
// empty in the dataset (anonymiser output).
#include "densa/core/resample.hpp"
#include "densa/io/dicom_scan.hpp"
#include "densa/io/dicom_seg.hpp"
#include "densa/io/image_file.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

namespace densa::io {
namespace {

TEST(DicomSegData, LiverOfTheRealCtRoundTrips) {
  DENSA_REQUIRE_DATA(dir, "totalseg_abdomen_ct/dicom_uncompressed");
  DENSA_REQUIRE_DATA(labelsFile, "totalseg_abdomen_ct/dicom_labels_totalseg.nii.gz");
  const DicomScan scan = scanDicom(dir);
  const LoadedSeries ct = loadDicomSeries(scan.series.at(0));
  const auto multi = std::get<core::LabelMap>(readImage(labelsFile));
  auto labels = core::resampleOnto(
      multi, {core::sizeOf(ct.volume), core::geometryOf(ct.volume)}, core::Interpolation::Nearest);
  for (auto& v : labels.voxels()) {
    v = v == 5 ? 1 : 0; // liver
  }
  testing::TempDir tmp;
  writeDicomSeg(labels, ct.provenance, tmp / "seg.dcm");
  EXPECT_EQ(readDicomSeg(tmp / "seg.dcm", labels.size(), labels.geometry()), labels);
}

} // namespace
} // namespace densa::io
