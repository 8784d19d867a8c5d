// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>

namespace densa::io {

/// Writes an 8-bit RGB image (`rgb` holds width × height × 3 bytes, rows top to bottom) as PNG,
/// atomically. Throws core::InvalidArgument for a wrong buffer size, core::InputError when the
/// file cannot be written.
void writePngRgb(const std::filesystem::path& file,
                 std::size_t width,
                 std::size_t height,
                 std::span<const std::uint8_t> rgb);

} // namespace densa::io
