// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <string_view>

namespace densa::io::detail {

/// Makes a string from a DICOM tag safe to print, log or put in JSON: printable ASCII kept,
/// every other byte becomes '?', surrounding spaces trimmed, cut to `maxLength` characters.
[[nodiscard]] std::string sanitize(std::string_view raw, std::size_t maxLength = 256);

} // namespace densa::io::detail
