// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <filesystem>
#include <functional>
#include <string_view>

namespace densa::io {

/// Writes `target` atomically: `write` is called with a path inside a fresh temporary folder next
/// to `target` (same file name, same file system); when it returns, every file it created there
/// is renamed into place — detached data files (.raw, .zraw, .gz payloads) first, `target` last —
/// and the temporary folder is removed. If `write` throws, nothing is left behind and the previous
/// `target`, if any, is untouched. Throws core::InputError when the folder cannot be written.
void writeAtomically(const std::filesystem::path& target,
                     const std::function<void(const std::filesystem::path& tempPath)>& write);

/// Writes a text file atomically.
void writeTextAtomically(const std::filesystem::path& target, std::string_view text);

} // namespace densa::io
