// SPDX-License-Identifier: Apache-2.0
#include "densa/core/hash.hpp"

#include <algorithm>
#include <cstdio>

namespace densa::core {

std::uint64_t stableHash(std::string_view text) noexcept {
  std::uint64_t h = 1469598103934665603ULL;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

std::string stableHashHex(std::string_view text, int digits) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(stableHash(text)));
  return std::string(buf, static_cast<std::size_t>(std::clamp(digits, 1, 16)));
}

} // namespace densa::core
