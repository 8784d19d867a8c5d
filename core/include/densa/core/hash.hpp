// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace densa::core {

/// 64-bit FNV-1a of `text`: stable across runs, machines and compilers (unlike std::hash), for
/// short ids in file names, series ids and model ids. Not cryptographic.
[[nodiscard]] std::uint64_t stableHash(std::string_view text) noexcept;

/// The first `digits` (1..16) hex digits of stableHash(text).
[[nodiscard]] std::string stableHashHex(std::string_view text, int digits = 16);

} // namespace densa::core
