// SPDX-License-Identifier: Apache-2.0
#include "densa/io/dicom_seg.hpp"

#include "densa/core/error.hpp"
#include "densa/io/atomic_file.hpp"

#include "dcmtk_setup.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgseg.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <dcmtk/dcmseg/segutils.h>

#include <cmath>
#include <cstdio>
#include <memory>

namespace densa::io {

namespace fs = std::filesystem;

namespace {

std::string decimal(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string newUid() {
  char buf[100];
  dcmGenerateUniqueIdentifier(buf, SITE_SERIES_UID_ROOT);
  return buf;
}

void check(const OFCondition& status, const fs::path& file, const std::string& what) {
  if (status.bad()) {
    throw core::InputError(file, "DICOM SEG: " + what + ": " + status.text());
  }
}

} // namespace

std::vector<SegmentCode> liverTumourSegments() {
  return {{1, "Liver", "123037004", "Anatomical Structure", "10200004", "Liver"},
          {2,
           "Liver tumour",
           "49755003",
           "Morphologically Altered Structure",
           "108369006",
           "Neoplasm"}};
}

void writeDicomSeg(const core::LabelMap& labels,
                   const DicomProvenance& source,
                   const fs::path& file,
                   const std::vector<SegmentCode>& segments,
                   const DicomSegOptions& options) {
  detail::quietDcmtk();
  if (source.files.empty()) {
    throw core::InputError(file, "DICOM SEG needs the source DICOM series (none recorded)");
  }
  const auto [w, h, depth] = labels.size();
  if (w > 65535 || h > 65535) {
    throw core::InvalidArgument("writeDicomSeg: slice too large");
  }
  const auto& g = labels.geometry();

  IODGeneralEquipmentModule::EquipmentInfo equipment(
      "Densa", "Densa", "1", options.softwareVersion.c_str());
  ContentIdentificationMacro content(
      "1", "SEGMENTATION", options.seriesDescription.c_str(), "Densa");
  DcmSegmentation* raw = nullptr;
  check(DcmSegmentation::createBinarySegmentation(
            raw, static_cast<Uint16>(h), static_cast<Uint16>(w), equipment, content),
        file,
        "create");
  std::unique_ptr<DcmSegmentation> seg(raw);
  check(seg->importFromSourceImage(source.files.front().c_str()),
        source.files.front(),
        "import patient/study");
  check(seg->getSeries().setSeriesInstanceUID(newUid()), file, "series UID");
  check(seg->getSeries().setSeriesNumber(std::to_string(options.seriesNumber).c_str()),
        file,
        "series number");
  check(seg->getSeries().setSeriesDescription(options.seriesDescription.c_str()),
        file,
        "series description");

  // Shared functional groups: orientation and pixel measures.
  const core::Vec3 row = g.axis(0);
  const core::Vec3 col = g.axis(1);
  std::unique_ptr<FGPlaneOrientationPatient> orientation(
      FGPlaneOrientationPatient::createMinimal(decimal(row[0]).c_str(),
                                               decimal(row[1]).c_str(),
                                               decimal(row[2]).c_str(),
                                               decimal(col[0]).c_str(),
                                               decimal(col[1]).c_str(),
                                               decimal(col[2]).c_str()));
  check(seg->addForAllFrames(*orientation), file, "orientation");
  FGPixelMeasures measures;
  check(measures.setPixelSpacing((decimal(g.spacing[1]) + "\\" + decimal(g.spacing[0])).c_str()),
        file,
        "spacing");
  check(measures.setSliceThickness(decimal(g.spacing[2]).c_str()), file, "thickness");
  check(measures.setSpacingBetweenSlices(decimal(g.spacing[2]).c_str()),
        file,
        "spacing between slices");
  check(seg->addForAllFrames(measures), file, "pixel measures");

  const std::string dimensionUid = newUid();
  check(seg->getDimensions().addDimensionIndex(DCM_ReferencedSegmentNumber,
                                               dimensionUid.c_str(),
                                               DCM_SegmentIdentificationSequence,
                                               "ReferencedSegmentNumber"),
        file,
        "dimension");
  check(seg->getDimensions().addDimensionIndex(DCM_ImagePositionPatient,
                                               dimensionUid.c_str(),
                                               DCM_PlanePositionSequence,
                                               "ImagePositionPatient"),
        file,
        "dimension");

  const bool sliceAligned = source.sopInstanceUids.size() == depth;
  std::vector<Uint8> frame(w * h);
  std::size_t frames = 0;
  for (const auto& code : segments) {
    std::vector<std::size_t> present;
    for (std::size_t k = 0; k < depth; ++k) {
      const auto* p = labels.data() + k * w * h;
      if (std::any_of(p, p + w * h, [&](std::uint8_t v) { return v == code.label; })) {
        present.push_back(k);
      }
    }
    if (present.empty()) {
      continue;
    }
    DcmSegment* segment = nullptr;
    check(DcmSegment::create(
              segment,
              code.name.c_str(),
              CodeSequenceMacro(code.categoryCode.c_str(), "SCT", code.categoryMeaning.c_str()),
              CodeSequenceMacro(code.typeCode.c_str(), "SCT", code.typeMeaning.c_str()),
              DcmSegTypes::SAT_AUTOMATIC,
              options.algorithmName.c_str()),
          file,
          "segment");
    Uint16 number = 0;
    check(seg->addSegment(segment, number), file, "add segment");
    for (const std::size_t k : present) {
      const auto* p = labels.data() + k * w * h;
      std::transform(p, p + w * h, frame.begin(), [&](std::uint8_t v) {
        return static_cast<Uint8>(v == code.label);
      });
      const core::Vec3 ipp = g.indexToPhysical({0, 0, static_cast<double>(k)});
      std::unique_ptr<FGPlanePosPatient> position(FGPlanePosPatient::createMinimal(
          decimal(ipp[0]).c_str(), decimal(ipp[1]).c_str(), decimal(ipp[2]).c_str()));
      FGFrameContent frameContent;
      check(frameContent.setDimensionIndexValues(number, 0), file, "frame content");
      check(frameContent.setDimensionIndexValues(static_cast<Uint32>(k + 1), 1),
            file,
            "frame content");
      OFVector<FGBase*> perFrame;
      perFrame.push_back(position.get());
      perFrame.push_back(&frameContent);
      std::unique_ptr<FGDerivationImage> derivation;
      if (sliceAligned && !source.sopClassUid.empty() && !source.sopInstanceUids[k].empty()) {
        OFVector<ImageSOPInstanceReferenceMacro> refs(1);
        refs[0].setReferencedSOPClassUID(source.sopClassUid.c_str(), OFFalse);
        refs[0].setReferencedSOPInstanceUID(source.sopInstanceUids[k].c_str(), OFFalse);
        derivation.reset(DcmSegmentation::createDerivationImageFG(refs, "Segmented by Densa"));
        if (derivation) {
          perFrame.push_back(derivation.get());
        }
      }
      check(seg->addFrame(frame.data(), number, perFrame), file, "add frame");
      ++frames;
    }
  }
  if (frames == 0) {
    throw core::InputError(file,
                           "DICOM SEG: the label map holds none of the segments; nothing to write");
  }
  writeAtomically(file,
                  [&](const fs::path& temp) { check(seg->saveFile(temp.c_str()), file, "save"); });
}

core::LabelMap readDicomSeg(const fs::path& file,
                            const core::Size3& size,
                            const core::Geometry& geometry,
                            const std::vector<SegmentCode>& segments) {
  detail::quietDcmtk();
  DcmSegmentation* raw = nullptr;
  check(DcmSegmentation::loadFile(file.c_str(), raw), file, "load");
  std::unique_ptr<DcmSegmentation> seg(raw);
  const auto [w, h, depth] = size;
  core::LabelMap out(size, geometry, 0);
  const std::size_t frames = seg->getNumberOfFrames();
  for (std::size_t f = 0; f < frames; ++f) {
    auto* segFg = dynamic_cast<FGSegmentation*>(
        seg->getFunctionalGroups().get(static_cast<Uint32>(f), DcmFGTypes::EFG_SEGMENTATION));
    auto* posFg = dynamic_cast<FGPlanePosPatient*>(
        seg->getFunctionalGroups().get(static_cast<Uint32>(f), DcmFGTypes::EFG_PLANEPOSPATIENT));
    Uint16 number = 0;
    Float64 x = 0, y = 0, z = 0;
    if (segFg == nullptr || posFg == nullptr || segFg->getReferencedSegmentNumber(number).bad() ||
        posFg->getImagePositionPatient(x, y, z).bad()) {
      throw core::InputError(
          file, "DICOM SEG frame " + std::to_string(f + 1) + " lacks segment or position");
    }
    if (number == 0 || number > segments.size()) {
      throw core::InputError(file,
                             "DICOM SEG frame " + std::to_string(f + 1) + " has unknown segment " +
                                 std::to_string(number));
    }
    const core::Vec3 index = geometry.physicalToIndex({x, y, z});
    const long k = std::lround(index[2]);
    if (std::abs(index[0]) > 0.01 || std::abs(index[1]) > 0.01 ||
        std::abs(index[2] - static_cast<double>(k)) > 0.01 || k < 0 ||
        k >= static_cast<long>(depth)) {
      throw core::InputError(
          file, "DICOM SEG frame " + std::to_string(f + 1) + " does not lie on the image grid");
    }
    const DcmIODTypes::Frame* packed = seg->getFrame(f);
    std::unique_ptr<DcmIODTypes::Frame> unpacked(
        DcmSegUtils::unpackBinaryFrame(packed, static_cast<Uint16>(h), static_cast<Uint16>(w)));
    if (!unpacked || unpacked->length < w * h) {
      throw core::InputError(
          file, "DICOM SEG frame " + std::to_string(f + 1) + " has too little pixel data");
    }
    const std::uint8_t label = segments[number - 1].label;
    auto* dst = out.data() + static_cast<std::size_t>(k) * w * h;
    for (std::size_t i = 0; i < w * h; ++i) {
      if (unpacked->pixData[i] != 0) {
        dst[i] = label;
      }
    }
  }
  return out;
}

} // namespace densa::io
