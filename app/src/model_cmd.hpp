// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>

namespace densa::app {

/// Options of `densa model info NAME [--preset P] [--json]`.
struct ModelInfoOptions {
  std::string name;                  ///< architecture, e.g. "hdenseunet"
  std::optional<std::string> preset; ///< e.g. "paper", "small", "tiny"; all presets when unset
  bool json = false;
};

/// Prints the preset table (parameter counts per sub-network, GFLOPs). Returns an exit code.
int runModelInfo(const ModelInfoOptions& options, std::ostream& out, std::ostream& err);

/// Options of `densa model create NAME --preset P -o FILE [--seed S]`.
struct ModelCreateOptions {
  std::string name;
  std::string preset = "tiny";
  std::filesystem::path output;
  std::uint64_t seed = 0;
};

/// Writes a freshly initialised (untrained) checkpoint with its model card. Returns an exit code.
int runModelCreate(const ModelCreateOptions& options, std::ostream& out, std::ostream& err);

} // namespace densa::app
