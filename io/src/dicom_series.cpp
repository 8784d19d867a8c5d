// SPDX-License-Identifier: Apache-2.0
#include "densa/io/dicom_series.hpp"

#include "densa/core/error.hpp"

#include "dcmtk_setup.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <itkGDCMImageIO.h>
#include <itkImage.h>
#include <itkImageFileReader.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <numbers>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

namespace densa::io {

namespace fs = std::filesystem;

namespace {

struct Slice {
  const DicomFileInfo* info = nullptr;
  double z = 0; // position along the slice normal, mm
  std::vector<float> pixels;
  float lowest = 0;
  float highest = 0;
  bool integral = true;
};

// Value range and integrality of a decoded slice (computed in the decoding threads).
void measure(Slice& slice) {
  float lo = std::numeric_limits<float>::max();
  float hi = std::numeric_limits<float>::lowest();
  bool integral = true;
  for (const float v : slice.pixels) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    // Exact for |v| < 2^24; larger values fail the int16 range test anyway.
    integral &= std::abs(v) < 16777216.0F && static_cast<float>(static_cast<std::int32_t>(v)) == v;
  }
  slice.lowest = lo;
  slice.highest = hi;
  slice.integral = integral;
}

// Runs body(i) for i in [0, count) on up to `threads` threads.
template <typename Body>
void parallelFor(std::size_t count, unsigned threads, Body body) {
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i = next++; i < count; i = next++) {
      body(i);
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads && t < count; ++t) {
    pool.emplace_back(worker);
  }
  worker();
  for (auto& t : pool) {
    t.join();
  }
}

std::string mm(double v) {
  std::ostringstream s;
  s.precision(4);
  s << v << " mm";
  return s.str();
}

// Native (uncompressed, incl. deflated and big endian) pixel data is read with DCMTK, which checks
// that the data is complete (GDCM silently pads truncated files). Returns nullopt for
// encapsulated (compressed) transfer syntaxes, which GDCM decodes. `frames`: entries of one file,
// decoded from one read of it (the frames of an enhanced image; each with its own rescale).
std::optional<std::vector<std::vector<float>>> decodeNativeFrames(
    const std::vector<const DicomFileInfo*>& frames) {
  const DicomFileInfo& info = *frames.front();
  DcmFileFormat format;
  OFCondition status = format.loadFile(
      info.file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect);
  if (status.bad()) {
    throw core::InputError(info.file,
                           std::string("cannot read pixel data (truncated or corrupt file): ") +
                               status.text());
  }
  DcmDataset& ds = *format.getDataset();
  if (DcmXfer(ds.getOriginalXfer()).isEncapsulated()) {
    if (info.frame >= 0) {
      throw core::InputError(info.file,
                             "is a compressed multi-frame (enhanced) image (transfer syntax " +
                                 info.transferSyntax +
                                 "); Densa decodes enhanced images uncompressed only — "
                                 "decompress it first (e.g. dcmdjpeg, gdcmconv --raw)");
    }
    return std::nullopt;
  }
  Uint16 bitsAllocated = 0;
  Uint16 bitsStored = 0;
  Uint16 pixelRepresentation = 0;
  Uint16 samples = 1;
  (void)ds.findAndGetUint16(DCM_BitsAllocated, bitsAllocated);
  if (ds.findAndGetUint16(DCM_BitsStored, bitsStored).bad() || bitsStored == 0) {
    bitsStored = bitsAllocated;
  }
  (void)ds.findAndGetUint16(DCM_PixelRepresentation, pixelRepresentation);
  (void)ds.findAndGetUint16(DCM_SamplesPerPixel, samples);
  if (samples != 1) {
    throw core::InputError(info.file,
                           "has " + std::to_string(samples) +
                               " samples per pixel (colour); Densa reads greyscale images only");
  }
  if ((bitsAllocated != 8 && bitsAllocated != 16) || bitsStored > bitsAllocated) {
    throw core::InputError(info.file,
                           "unsupported BitsAllocated/BitsStored " + std::to_string(bitsAllocated) +
                               "/" + std::to_string(bitsStored));
  }
  DcmElement* element = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, element).bad() || element == nullptr) {
    throw core::InputError(info.file, "has no pixel data");
  }
  const std::size_t count =
      static_cast<std::size_t>(info.rows) * static_cast<std::size_t>(info.columns);
  // Frames of an enhanced image follow each other in the pixel data.
  const auto frameOf = [](const DicomFileInfo* f) {
    return f->frame < 0 ? std::size_t{0} : static_cast<std::size_t>(f->frame);
  };
  std::size_t frameEnd = 0;
  for (const auto* f : frames) {
    frameEnd = std::max(frameEnd, frameOf(f) + 1);
  }
  const std::size_t expected = frameEnd * count * bitsAllocated / 8;
  std::vector<std::vector<float>> out;
  const Uint32 mask = bitsStored >= 32 ? 0xffffffffU : ((1U << bitsStored) - 1U);
  const Uint32 signBit = 1U << (bitsStored - 1);
  // The element's values as 8- or 16-bit words (DCMTK swaps big-endian data to host order).
  auto convertAll = [&](auto* data) {
    if (status.bad() || data == nullptr || element->getLength() < expected) {
      throw core::InputError(info.file,
                             "pixel data is truncated or unreadable (" +
                                 std::to_string(element->getLength()) + " of " +
                                 std::to_string(expected) + " bytes)");
    }
    for (const auto* f : frames) {
      const auto convert = [&](Uint32 raw) {
        raw &= mask;
        double v = raw;
        if (pixelRepresentation == 1 && (raw & signBit) != 0) {
          v = static_cast<double>(raw) - static_cast<double>(mask) - 1.0;
        }
        return static_cast<float>(v * f->rescaleSlope + f->rescaleIntercept);
      };
      auto& pixels = out.emplace_back(count);
      const auto* first = data + frameOf(f) * count;
      std::transform(first, first + count, pixels.begin(), convert);
    }
  };
  if (bitsAllocated == 8) {
    Uint8* data = nullptr;
    status = element->getUint8Array(data);
    convertAll(data);
  } else {
    Uint16* data = nullptr;
    status = element->getUint16Array(data);
    convertAll(data);
  }
  return out;
}

std::vector<float> decodeSlice(const DicomFileInfo& info) {
  if (auto native = decodeNativeFrames({&info})) {
    return std::move(native->front());
  }
  using ImageType = itk::Image<float, 2>;
  auto reader = itk::ImageFileReader<ImageType>::New();
  auto gdcm = itk::GDCMImageIO::New();
  reader->SetImageIO(gdcm);
  reader->SetFileName(info.file.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    std::string what = e.GetDescription();
    std::replace(what.begin(), what.end(), '\n', ' ');
    throw core::InputError(info.file,
                           "cannot decode pixel data (transfer syntax " + info.transferSyntax +
                               "): " + what);
  } catch (const std::bad_alloc&) {
    throw core::InputError(info.file, "cannot decode pixel data: out of memory");
  }
  const auto size = reader->GetOutput()->GetBufferedRegion().GetSize();
  if (size[0] != static_cast<std::size_t>(info.columns) ||
      size[1] != static_cast<std::size_t>(info.rows)) {
    throw core::InputError(info.file,
                           "decoded image is " + std::to_string(size[0]) + "x" +
                               std::to_string(size[1]) + ", header says " +
                               std::to_string(info.columns) + "x" + std::to_string(info.rows));
  }
  const float* p = reader->GetOutput()->GetBufferPointer();
  return {p, p + size[0] * size[1]};
}

void decodeAll(std::vector<Slice>& slices, unsigned threads) {
  // The frames of an enhanced image: one read of the file for all of them (enhanced images are
  // uncompressed here, see decodeNativeFrames).
  std::map<fs::path, std::vector<Slice*>> framesByFile;
  for (auto& slice : slices) {
    if (slice.info->frame >= 0) {
      framesByFile[slice.info->file].push_back(&slice);
    }
  }
  for (auto& [file, members] : framesByFile) {
    std::vector<const DicomFileInfo*> infos;
    for (const auto* slice : members) {
      infos.push_back(slice->info);
    }
    auto pixels = decodeNativeFrames(infos);
    for (std::size_t i = 0; pixels && i < members.size(); ++i) {
      members[i]->pixels = std::move((*pixels)[i]);
      measure(*members[i]);
    }
  }
  // The first other decode runs alone: it initialises GDCM's dictionaries.
  std::size_t first = 0;
  while (first < slices.size() && !slices[first].pixels.empty()) {
    ++first;
  }
  if (first == slices.size()) {
    return;
  }
  slices[first].pixels = decodeSlice(*slices[first].info);
  measure(slices[first]);
  std::atomic<std::size_t> next{first + 1};
  std::exception_ptr failure;
  std::mutex failureMutex;
  auto worker = [&] {
    for (std::size_t i = next++; i < slices.size(); i = next++) {
      if (!slices[i].pixels.empty()) {
        continue; // a frame decoded above
      }
      try {
        slices[i].pixels = decodeSlice(*slices[i].info);
        measure(slices[i]);
      } catch (...) {
        const std::lock_guard lock(failureMutex);
        if (!failure) {
          failure = std::current_exception();
        }
        next = slices.size();
      }
    }
  };
  threads = threads ? threads : std::thread::hardware_concurrency();
  threads = std::clamp<unsigned>(threads, 1, 16);
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads && t < slices.size(); ++t) {
    pool.emplace_back(worker);
  }
  worker();
  for (auto& t : pool) {
    t.join();
  }
  if (failure) {
    std::rethrow_exception(failure);
  }
}

// Bilinear sample of a slice at continuous pixel coordinates (x, y); `outside` beyond the edge.
float sample(const std::vector<float>& px, int w, int h, double x, double y, float outside) {
  if (x < -0.5 || y < -0.5 || x > w - 0.5 || y > h - 0.5) {
    return outside;
  }
  const double cx = std::clamp(x, 0.0, static_cast<double>(w - 1));
  const double cy = std::clamp(y, 0.0, static_cast<double>(h - 1));
  const int x0 = static_cast<int>(std::floor(cx));
  const int y0 = static_cast<int>(std::floor(cy));
  const int x1 = std::min(x0 + 1, w - 1);
  const int y1 = std::min(y0 + 1, h - 1);
  const double fx = cx - x0;
  const double fy = cy - y0;
  auto at = [&](int xx, int yy) {
    return static_cast<double>(px[static_cast<std::size_t>(yy * w + xx)]);
  };
  const double v = (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x1, y0)) +
                   fy * ((1 - fx) * at(x0, y1) + fx * at(x1, y1));
  return static_cast<float>(v);
}

} // namespace

LoadedSeries loadDicomSeries(const DicomSeries& series, const DicomLoadOptions& options) {
  detail::quietDcmtk();
  if (series.files.empty()) {
    throw core::InputError("series " + series.id + " has no files");
  }
  LoadedSeries out;
  out.warnings = series.warnings;
  const DicomFileInfo& first = series.files.front();
  for (const auto& f : series.files) {
    if (f.frames > 1) { // enhanced images with per-frame positions come as one entry per frame
      throw core::InputError(f.file,
                             "is a multi-frame image with " + std::to_string(f.frames) +
                                 " frames but no plane position per frame; Densa reads such "
                                 "images only as enhanced images (functional groups) — "
                                 "convert it to single-frame files first");
    }
    if (f.rows != first.rows || f.columns != first.columns) {
      throw core::InputError(f.file, "matrix size differs from the rest of series " + series.id);
    }
  }
  if (!first.hasPixelSpacing) {
    out.warnings.push_back("no PixelSpacing: assuming 1 mm");
  }

  // Slice axes.
  core::Vec3 row{1, 0, 0};
  core::Vec3 col{0, 1, 0};
  if (first.orientation) {
    const auto& o = *first.orientation;
    row = {o[0], o[1], o[2]};
    col = {o[3], o[4], o[5]};
  } else if (series.files.size() > 1) {
    throw core::InputError(first.file,
                           "has no ImageOrientationPatient; cannot order the " +
                               std::to_string(series.files.size()) + " slices of series " +
                               series.id);
  } else {
    out.warnings.push_back("no ImageOrientationPatient: assuming axial (identity)");
  }
  core::Vec3 normal = core::cross(row, col);
  const double nn = core::norm(normal);
  if (nn < 0.5) {
    throw core::InputError(first.file, "ImageOrientationPatient row and column are parallel");
  }
  for (auto& v : normal) {
    v /= nn;
  }

  std::vector<Slice> slices;
  slices.reserve(series.files.size());
  for (const auto& f : series.files) {
    if (!f.position && series.files.size() > 1) {
      throw core::InputError(f.file,
                             "has no ImagePositionPatient; cannot order the slices of "
                             "series " +
                                 series.id);
    }
    slices.push_back({&f, f.position ? core::dot(*f.position, normal) : 0.0, {}});
  }
  std::stable_sort(
      slices.begin(), slices.end(), [](const Slice& a, const Slice& b) { return a.z < b.z; });
  // Two files at one position with the same pixels are one image stored twice (re-encoded copies
  // given new SOPInstanceUIDs): one is kept, with a warning. Other pixels at one position stay an
  // error.
  std::size_t copies = 0;
  for (std::size_t k = 0; k + 1 < slices.size();) {
    if (slices[k + 1].z - slices[k].z >= 1e-3) {
      ++k;
      continue;
    }
    if (decodeSlice(*slices[k].info) != decodeSlice(*slices[k + 1].info)) {
      throw core::InputError(slices[k + 1].info->file,
                             "has the same slice position as " + slices[k].info->file.string() +
                                 ": duplicate slices, or several acquisitions in one series");
    }
    if (copies++ == 0) {
      out.warnings.push_back(slices[k + 1].info->file.string() + " holds the same image as " +
                             slices[k].info->file.string() +
                             " (same position and pixels): one copy kept");
    }
    slices.erase(slices.begin() + static_cast<std::ptrdiff_t>(k + 1));
  }
  if (copies > 1) {
    out.warnings.push_back(std::to_string(copies) + " copies of images in this series ignored");
  }

  const std::size_t n = slices.size();
  const double sx = first.pixelSpacing[0];
  const double sy = first.pixelSpacing[1];
  double dz = first.sliceThickness > 0 ? first.sliceThickness : 1.0;
  bool irregular = false;
  double medianStep = dz;
  if (n > 1) {
    std::vector<double> steps;
    for (std::size_t k = 0; k + 1 < n; ++k) {
      const double step = slices[k + 1].z - slices[k].z;
      if (step < 1e-3) {
        throw core::InputError(slices[k + 1].info->file,
                               "has the same slice position as " + slices[k].info->file.string() +
                                   ": duplicate slices, or several acquisitions in one series");
      }
      steps.push_back(step);
    }
    std::vector<double> sorted = steps;
    std::nth_element(
        sorted.begin(), sorted.begin() + static_cast<long>(sorted.size() / 2), sorted.end());
    medianStep = sorted[sorted.size() / 2];
    const double tolerance = std::max(options.spacingTolerance * medianStep, 1e-3);
    double maxDeviation = 0;
    for (std::size_t k = 0; k < steps.size(); ++k) {
      const double deviation = std::abs(steps[k] - medianStep);
      maxDeviation = std::max(maxDeviation, deviation);
      if (deviation <= tolerance) {
        continue;
      }
      irregular = true;
      if (options.resampleIrregular) {
        continue;
      }
      const double ratio = steps[k] / medianStep;
      const auto missing = std::lround(ratio) - 1;
      if (missing >= 1 && std::abs(ratio - std::round(ratio)) * medianStep <= tolerance) {
        throw core::InputError(slices[k + 1].info->file,
                               std::to_string(missing) + " slice(s) missing between " +
                                   slices[k].info->file.filename().string() +
                                   " and this file (gap " + mm(steps[k]) + ", slice step " +
                                   mm(medianStep) + "); use --resample-irregular to interpolate");
      }
      throw core::InputError(slices[k + 1].info->file,
                             "non-uniform slice spacing in series " + series.id + ": step " +
                                 mm(steps[k]) + " from " +
                                 slices[k].info->file.filename().string() + ", elsewhere " +
                                 mm(medianStep) + "; use --resample-irregular to interpolate");
    }
    if (!irregular && maxDeviation > 1e-3 * medianStep) {
      out.warnings.push_back("slice steps vary by up to " + mm(maxDeviation) +
                             " (within tolerance)");
    }
    dz = (slices.back().z - slices.front().z) / static_cast<double>(n - 1);
  }

  // Gantry tilt: the step between slices leaves the slice normal.
  const core::Vec3 origin = first.position ? *slices.front().info->position : core::Vec3{0, 0, 0};
  std::vector<core::Vec3> inPlane(n, core::Vec3{0, 0, 0});
  bool tilted = false;
  if (n > 1) {
    const core::Vec3 total = [&] {
      core::Vec3 t{};
      for (std::size_t d = 0; d < 3; ++d) {
        t[d] = (*slices.back().info->position)[d] - origin[d];
      }
      return t;
    }();
    const double along = core::dot(total, normal);
    core::Vec3 across{};
    for (std::size_t d = 0; d < 3; ++d) {
      across[d] = total[d] - along * normal[d];
    }
    out.tiltDegrees = std::atan2(core::norm(across), std::abs(along)) * 180.0 / std::numbers::pi;
    tilted = out.tiltDegrees > 0.05;
    if (tilted) {
      if (!options.correctGantryTilt) {
        throw core::InputError(first.file,
                               "series " + series.id + " is tilted by " +
                                   std::to_string(out.tiltDegrees) +
                                   " degrees (gantry tilt); it is not a rectilinear "
                                   "grid. Allow tilt correction to resample it");
      }
      for (std::size_t k = 0; k < n; ++k) {
        core::Vec3 d{};
        for (std::size_t c = 0; c < 3; ++c) {
          d[c] = (*slices[k].info->position)[c] - origin[c];
        }
        const double a = core::dot(d, normal);
        for (std::size_t c = 0; c < 3; ++c) {
          inPlane[k][c] = d[c] - a * normal[c];
        }
      }
      std::ostringstream msg;
      msg.precision(3);
      msg << "gantry tilt of " << out.tiltDegrees << " degrees (GantryDetectorTilt "
          << first.gantryTilt << ") corrected by resampling slices onto a rectilinear grid";
      out.warnings.push_back(msg.str());
    }
  }

  decodeAll(slices, options.threads);

  // Output grid along the normal.
  std::vector<double> targetZ;
  if (irregular && options.resampleIrregular) {
    const double extent = slices.back().z - slices.front().z;
    const auto count = static_cast<std::size_t>(std::llround(extent / medianStep)) + 1;
    dz = count > 1 ? extent / static_cast<double>(count - 1) : medianStep;
    for (std::size_t k = 0; k < count; ++k) {
      targetZ.push_back(slices.front().z + dz * static_cast<double>(k));
    }
    out.warnings.push_back("irregular slice spacing resampled to " + mm(dz) + " (" +
                           std::to_string(n) + " slices -> " + std::to_string(count) + ")");
  }

  const int w = first.columns;
  const int h = first.rows;
  const std::size_t plane = static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
  float lowest = std::numeric_limits<float>::max();
  float highest = std::numeric_limits<float>::lowest();
  bool integral = true;
  for (const auto& s : slices) {
    lowest = std::min(lowest, s.lowest);
    highest = std::max(highest, s.highest);
    integral = integral && s.integral;
  }
  // Interpolation (tilt, irregular spacing) never leaves [lowest, highest].
  const bool fitsInt16 = integral && lowest >= std::numeric_limits<std::int16_t>::min() &&
                         highest <= std::numeric_limits<std::int16_t>::max();
  // Tilt: shift each slice in-plane so that it sits on the grid of the first slice.
  if (tilted) {
    for (std::size_t k = 1; k < n; ++k) {
      const double ux = core::dot(inPlane[k], row) / sx;
      const double uy = core::dot(inPlane[k], col) / sy;
      std::vector<float> shifted(plane);
      for (int j = 0; j < h; ++j) {
        for (int i = 0; i < w; ++i) {
          shifted[static_cast<std::size_t>(j * w + i)] =
              sample(slices[k].pixels, w, h, i - ux, j - uy, lowest);
        }
      }
      slices[k].pixels = std::move(shifted);
    }
  }

  const std::size_t depth = targetZ.empty() ? n : targetZ.size();
  // Slice k of the output as a function filling `dst` (plane values), so that int16 output is
  // written directly without a float copy of the whole volume.
  auto outputSlice = [&](std::size_t k, auto* dst, auto convert) {
    if (targetZ.empty()) {
      std::transform(slices[k].pixels.begin(), slices[k].pixels.end(), dst, convert);
      return;
    }
    const double z = targetZ[k];
    const auto above = std::upper_bound(
        slices.begin(), slices.end(), z, [](double v, const Slice& s) { return v < s.z; });
    const std::size_t lo =
        std::clamp<std::size_t>(static_cast<std::size_t>(above - slices.begin()), 1, n - 1) - 1;
    const double span = slices[lo + 1].z - slices[lo].z;
    const double t = std::clamp((z - slices[lo].z) / span, 0.0, 1.0);
    for (std::size_t p = 0; p < plane; ++p) {
      dst[p] = convert(
          static_cast<float>((1 - t) * slices[lo].pixels[p] + t * slices[lo + 1].pixels[p]));
    }
  };
  unsigned threads = options.threads ? options.threads : std::thread::hardware_concurrency();
  threads = std::clamp<unsigned>(threads, 1, 16);
  core::Geometry geometry;
  geometry.spacing = {sx, sy, dz};
  geometry.origin = origin;
  for (std::size_t r = 0; r < 3; ++r) {
    geometry.direction[3 * r + 0] = row[r];
    geometry.direction[3 * r + 1] = col[r];
    geometry.direction[3 * r + 2] = normal[r];
  }
  const core::Size3 size{static_cast<std::size_t>(w), static_cast<std::size_t>(h), depth};

  if (fitsInt16) {
    std::vector<std::int16_t> v16(plane * depth);
    const bool exact = !tilted && targetZ.empty(); // integral values, no interpolation
    parallelFor(depth, threads, [&](std::size_t k) {
      if (exact) {
        outputSlice(
            k, v16.data() + k * plane, [](float v) { return static_cast<std::int16_t>(v); });
      } else {
        outputSlice(k, v16.data() + k * plane, [](float v) {
          return static_cast<std::int16_t>(v >= 0 ? v + 0.5F : v - 0.5F);
        });
      }
    });
    out.volume = core::Volume<std::int16_t>(size, geometry, std::move(v16));
  } else {
    std::vector<float> voxels(plane * depth);
    parallelFor(depth, threads, [&](std::size_t k) {
      outputSlice(k, voxels.data() + k * plane, [](float v) { return v; });
    });
    out.volume = core::Volume<float>(size, geometry, std::move(voxels));
  }

  auto& prov = out.provenance;
  prov.seriesId = series.id;
  prov.seriesInstanceUid = series.seriesInstanceUid;
  prov.studyInstanceUid = series.studyInstanceUid;
  prov.frameOfReferenceUid = series.frameOfReferenceUid;
  prov.sopClassUid = first.sopClassUid;
  prov.modality = series.modality;
  prov.description = series.description;
  std::set<std::string> syntaxes;
  for (const auto& s : slices) {
    prov.files.push_back(s.info->file);
    prov.sopInstanceUids.push_back(s.info->sopInstanceUid);
    syntaxes.insert(s.info->transferSyntax);
  }
  prov.transferSyntaxes.assign(syntaxes.begin(), syntaxes.end());
  return out;
}

} // namespace densa::io
