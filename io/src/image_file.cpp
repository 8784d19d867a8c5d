// SPDX-License-Identifier: Apache-2.0
#include "densa/io/image_file.hpp"

#include "densa/core/error.hpp"
#include "densa/core/itk_bridge.hpp"
#include "densa/io/atomic_file.hpp"

#include "dcmtk_setup.hpp"

#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageIOBase.h>
#include <itkImageIOFactory.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>

namespace densa::io {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool endsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Refuse images whose decoded size is absurd before ITK tries to allocate them.
constexpr std::uint64_t kMaxVoxels = std::uint64_t{4} << 30;

template <typename T>
core::Volume<T> readAs(const fs::path& path) {
  using ImageType = itk::Image<T, 3>;
  auto reader = itk::ImageFileReader<ImageType>::New();
  reader->SetFileName(path.string());
  reader->Update();
  return core::fromItk<T>(*reader->GetOutput());
}

core::AnyVolume narrowFloat(core::Volume<float> volume) {
  // Integer-valued data that fits int16 (CT in HU stored as int32, say) becomes int16 exactly.
  const auto voxels = volume.voxels();
  const bool fits = std::all_of(voxels.begin(), voxels.end(), [](float v) {
    return v >= std::numeric_limits<std::int16_t>::min() &&
           v <= std::numeric_limits<std::int16_t>::max() && std::nearbyint(v) == v;
  });
  if (!fits) {
    return volume;
  }
  std::vector<std::int16_t> out(voxels.size());
  std::transform(voxels.begin(), voxels.end(), out.begin(), [](float v) {
    return static_cast<std::int16_t>(v);
  });
  return core::Volume<std::int16_t>(volume.size(), volume.geometry(), std::move(out));
}

// Total decompressed length of a gzip file, or nullopt when the stream is truncated or corrupt.
std::optional<std::uint64_t> gzipLength(const fs::path& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    return std::nullopt;
  }
  std::vector<char> buffer(1 << 20);
  std::uint64_t total = 0;
  int n = 0;
  while ((n = gzread(f, buffer.data(), static_cast<unsigned>(buffer.size()))) > 0) {
    total += static_cast<std::uint64_t>(n);
  }
  int code = Z_OK;
  (void)gzerror(f, &code);
  const bool clean = n == 0 && code == Z_OK;
  gzclose(f);
  return clean ? std::optional(total) : std::nullopt;
}

// ITK's NIfTI reader silently zero-fills a truncated file: check the length ourselves.
void checkNiftiComplete(const fs::path& path, std::uint64_t dataBytes) {
  const std::string name = lower(path.filename().string());
  if (endsWith(name, ".nii")) {
    std::ifstream in(path, std::ios::binary);
    std::array<char, 112> header{};
    in.read(header.data(), header.size());
    float voxOffset = 352;
    std::memcpy(&voxOffset, header.data() + 108, sizeof voxOffset);
    const auto need = static_cast<std::uint64_t>(std::max(voxOffset, 348.0F)) + dataBytes;
    if (fs::file_size(path) < need) {
      throw core::InputError(path,
                             "truncated: " + std::to_string(fs::file_size(path)) +
                                 " bytes, the header needs " + std::to_string(need));
    }
    return;
  }
  if (!endsWith(name, ".nii.gz")) {
    return;
  }
  // Cheap check first: a gzip trailer holds the decompressed length modulo 2^32.
  float voxOffset = 352;
  if (gzFile f = gzopen(path.c_str(), "rb")) {
    std::array<char, 112> header{};
    if (gzread(f, header.data(), static_cast<unsigned>(header.size())) ==
        static_cast<int>(header.size())) {
      std::memcpy(&voxOffset, header.data() + 108, sizeof voxOffset);
    }
    gzclose(f);
  }
  const std::uint64_t expected =
      static_cast<std::uint64_t>(std::max(voxOffset, 348.0F)) + dataBytes;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const auto size = static_cast<std::uint64_t>(in.tellg());
  std::uint32_t isize = 0;
  if (size >= 18) {
    in.seekg(-4, std::ios::end);
    in.read(reinterpret_cast<char*>(&isize), sizeof isize);
  }
  if (isize == static_cast<std::uint32_t>(expected & 0xffffffffU)) {
    return;
  }
  // Multi-member gzip or a real problem: decompress to be sure.
  const auto length = gzipLength(path);
  if (!length || *length < expected) {
    throw core::InputError(path,
                           "truncated or corrupt gzip data (the header needs " +
                               std::to_string(expected) + " bytes)");
  }
}

// MetaIO prints "data not read completely" but does not fail: check the sizes ourselves.
void checkMetaImageComplete(const fs::path& path, std::uint64_t dataBytes) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  bool compressed = false;
  std::optional<std::uint64_t> compressedSize;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) {
      continue;
    }
    std::string key = line.substr(0, eq);
    std::string value = line.substr(eq + 1);
    key.erase(key.find_last_not_of(" \t\r") + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t\r") + 1);
    if (key == "CompressedData") {
      compressed = lower(value) == "true";
    } else if (key == "CompressedDataSize") {
      compressedSize = std::strtoull(value.c_str(), nullptr, 10);
    } else if (key == "ElementDataFile") {
      std::uint64_t available = 0;
      fs::path dataFile;
      if (value == "LOCAL") {
        available = fs::file_size(path) - static_cast<std::uint64_t>(in.tellg());
        dataFile = path;
      } else {
        dataFile = path.parent_path() / value;
        std::error_code ec;
        available = fs::file_size(dataFile, ec);
        if (ec) {
          return; // a file list or pattern: leave it to ITK
        }
      }
      const std::uint64_t need = compressed ? compressedSize.value_or(0) : dataBytes;
      if (available < need) {
        throw core::InputError(dataFile,
                               "truncated: " + std::to_string(available) +
                                   " bytes of image data, the header needs " +
                                   std::to_string(need));
      }
      return;
    }
  }
}

} // namespace

std::optional<ImageFormat> imageFormatFromPath(const fs::path& path) {
  const std::string name = lower(path.filename().string());
  if (endsWith(name, ".nii") || endsWith(name, ".nii.gz")) {
    return ImageFormat::Nifti;
  }
  if (endsWith(name, ".nrrd") || endsWith(name, ".nhdr")) {
    return ImageFormat::Nrrd;
  }
  if (endsWith(name, ".mha") || endsWith(name, ".mhd")) {
    return ImageFormat::MetaImage;
  }
  return std::nullopt;
}

std::string_view toString(ImageFormat format) noexcept {
  switch (format) {
  case ImageFormat::Nifti:
    return "NIfTI";
  case ImageFormat::Nrrd:
    return "NRRD";
  case ImageFormat::MetaImage:
    return "MetaImage";
  }
  return "?";
}

core::AnyVolume readImage(const fs::path& path) {
  detail::registerItkIo();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw core::InputError(path, fs::exists(path, ec) ? "not a regular file" : "no such file");
  }
  if (!imageFormatFromPath(path)) {
    throw core::InputError(path,
                           "unsupported image format (expected .nii, .nii.gz, .nrrd, .nhdr, .mha, "
                           ".mhd, or a DICOM file or folder)");
  }
  try {
    auto imageIO = itk::ImageIOFactory::CreateImageIO(
        path.string().c_str(), itk::ImageIOFactory::IOFileModeEnum::ReadMode);
    if (!imageIO) {
      throw core::InputError(path, "not a readable NIfTI/NRRD/MetaImage file");
    }
    imageIO->SetFileName(path.string());
    imageIO->ReadImageInformation();
    const unsigned dims = imageIO->GetNumberOfDimensions();
    if (dims < 2 || dims > 4) {
      throw core::InputError(path, "has " + std::to_string(dims) + " dimensions; expected 3");
    }
    if (dims == 4 && imageIO->GetDimensions(3) != 1) {
      throw core::InputError(path,
                             "is a 4-D series with " + std::to_string(imageIO->GetDimensions(3)) +
                                 " volumes; expected one 3-D volume");
    }
    if (imageIO->GetNumberOfComponents() != 1) {
      throw core::InputError(path,
                             "has " + std::to_string(imageIO->GetNumberOfComponents()) +
                                 " components per voxel; expected a scalar image");
    }
    std::uint64_t voxels = 1;
    for (unsigned d = 0; d < std::min(dims, 3U); ++d) {
      const auto n = imageIO->GetDimensions(d);
      if (n == 0) {
        throw core::InputError(path, "has an empty dimension");
      }
      voxels *= n;
    }
    if (voxels > kMaxVoxels) {
      throw core::InputError(path,
                             "declares " + std::to_string(voxels) +
                                 " voxels, more than Densa accepts (" + std::to_string(kMaxVoxels) +
                                 ")");
    }
    if (imageFormatFromPath(path) == ImageFormat::Nifti) {
      checkNiftiComplete(path, imageIO->GetImageSizeInBytes());
    } else if (imageFormatFromPath(path) == ImageFormat::MetaImage) {
      checkMetaImageComplete(path, imageIO->GetImageSizeInBytes());
    }
    using C = itk::IOComponentEnum;
    switch (imageIO->GetComponentType()) {
    case C::UCHAR:
      return readAs<std::uint8_t>(path);
    case C::CHAR:
    case C::SHORT:
      return readAs<std::int16_t>(path);
    case C::FLOAT:
    case C::DOUBLE:
      return readAs<float>(path);
    default:
      return narrowFloat(readAs<float>(path));
    }
  } catch (const itk::ExceptionObject& e) {
    throw core::InputError(path, std::string("cannot read image: ") + e.GetDescription());
  } catch (const std::bad_alloc&) {
    throw core::InputError(path, "out of memory while reading");
  }
}

void writeImage(const core::AnyVolume& volume, const fs::path& path) {
  detail::registerItkIo();
  const auto format = imageFormatFromPath(path);
  if (!format) {
    throw core::InputError(
        path, "unsupported output format (use .nii, .nii.gz, .nrrd, .nhdr, .mha or .mhd)");
  }
  writeAtomically(path, [&](const fs::path& temp) {
    std::visit(
        [&](const auto& v) {
          using T = typename std::decay_t<decltype(v)>::value_type;
          using ImageType = itk::Image<T, 3>;
          auto writer = itk::ImageFileWriter<ImageType>::New();
          writer->SetFileName(temp.string());
          writer->SetInput(core::toItk(v));
          writer->SetUseCompression(lower(path.string()).ends_with(".gz") ||
                                    *format != ImageFormat::Nifti);
          try {
            writer->Update();
          } catch (const itk::ExceptionObject& e) {
            throw core::InputError(path, std::string("cannot write image: ") + e.GetDescription());
          }
        },
        volume);
  });
}

} // namespace densa::io
