// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/core/volume.hpp"

#include <filesystem>
#include <optional>
#include <string_view>

namespace densa::io {

/// Image file formats Densa reads and writes (through ITK).
enum class ImageFormat { Nifti, Nrrd, MetaImage };

/// The format implied by a file name: .nii, .nii.gz (NIfTI), .nrrd, .nhdr (NRRD), .mha, .mhd
/// (MetaImage); case-insensitive. std::nullopt for anything else.
[[nodiscard]] std::optional<ImageFormat> imageFormatFromPath(const std::filesystem::path& path);

[[nodiscard]] std::string_view toString(ImageFormat format) noexcept;

/// Reads a NIfTI/NRRD/MetaImage file with its geometry converted to LPS exactly as ITK reports it
/// (NIfTI's RAS qform/sform is mapped by ITK). Pixel types: uint8 stays uint8; other integer
/// types whose values fit int16 become int16; everything else becomes float32. Throws
/// core::InputError naming the file on a missing, truncated, non-3-D or unreadable file.
[[nodiscard]] core::AnyVolume readImage(const std::filesystem::path& path);

/// Writes `volume` atomically (see writeAtomically) in the format implied by `path`, keeping
/// spacing, origin and direction exactly. Label maps (uint8) are written as uint8. .nii.gz and
/// .nrrd are compressed. Throws core::InputError for an unsupported extension or a failed write.
void writeImage(const core::AnyVolume& volume, const std::filesystem::path& path);

} // namespace densa::io
