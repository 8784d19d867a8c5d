// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <string_view>

namespace densa::io::detail {

/// Makes a string from a DICOM tag safe to print, log or put in JSON: printable ASCII kept,
/// every other byte becomes '?', surrounding spaces trimmed, cut to `maxLength` characters.
[[nodiscard]] std::string sanitize(std::string_view raw, std::size_t maxLength = 256);

/// 64-bit FNV-1a of `text` as 16 hex digits: a stable short id.
[[nodiscard]] std::string stableHash(std::string_view text);

} // namespace densa::io::detail
