// SPDX-License-Identifier: Apache-2.0
#include "text.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace densa::io::detail {

std::string sanitize(std::string_view raw, std::size_t maxLength) {
  std::string out;
  out.reserve(std::min(raw.size(), maxLength));
  for (const char c : raw) {
    if (out.size() >= maxLength) {
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
  }
  const auto first = out.find_first_not_of(' ');
  if (first == std::string::npos) {
    return {};
  }
  const auto last = out.find_last_not_of(' ');
  return out.substr(first, last - first + 1);
}

} // namespace densa::io::detail
