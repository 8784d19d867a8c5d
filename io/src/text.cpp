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

std::string stableHash(std::string_view text) {
  std::uint64_t h = 1469598103934665603ULL;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

} // namespace densa::io::detail
