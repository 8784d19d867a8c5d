// SPDX-License-Identifier: Apache-2.0
#include "model_cmd.hpp"

#include "densa/app/exit_codes.hpp"
#include "densa/models/error.hpp"
#include "densa/models/model_info.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

namespace densa::app {
namespace {

std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

// 12345678 -> "12,345,678"
std::string grouped(std::int64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  const auto n = digits.size();
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[i];
    if ((n - i - 1) % 3 == 0 && i + 1 < n) {
      out += ',';
    }
  }
  return out;
}

std::string pad(const std::string& s, std::size_t width, bool right) {
  if (s.size() >= width) {
    return s;
  }
  const std::string fill(width - s.size(), ' ');
  return right ? fill + s : s + fill;
}

void printTable(const std::vector<models::PresetInfo>& presets, std::ostream& out) {
  const std::string& arch = presets.front().architecture;
  out << arch << ": trainable parameters and convolution GFLOPs (2 x multiply-accumulates)\n"
      << (arch == "adsl" ? "per input image (the preset's input size, 224² for paper, 96² small, "
                           "64² tiny) and per 8 images\n\n"
                         : "per 512x512 slice (3D parts: an 8-slice window / 8) and per 8-slice "
                           "512x512 window\n\n");
  out << pad("preset", 8, false) << pad("sub-network", 13, false) << pad("parameters", 14, true)
      << pad("GFLOP/slice", 14, true) << pad("GFLOP/window", 15, true) << "\n";
  const auto row = [&out](const std::string& preset,
                          const std::string& name,
                          std::int64_t params,
                          double slice,
                          double window) {
    out << pad(preset, 8, false) << pad(name, 13, false) << pad(grouped(params), 14, true)
        << pad(fixed(slice, 2), 14, true) << pad(fixed(window, 2), 15, true) << "\n";
  };
  for (const auto& p : presets) {
    bool first = true;
    for (const auto& s : p.subnetworks) {
      row(first ? p.preset : "", s.name, s.parameters, s.gflopsPerSlice, s.gflopsPerWindow);
      first = false;
    }
    if (p.subnetworks.size() > 1) {
      row("", "total", p.parameters, p.gflopsPerSlice, p.gflopsPerWindow);
    }
  }
}

void printJson(const std::vector<models::PresetInfo>& presets, std::ostream& out) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& p : presets) {
    nlohmann::json subnets = nlohmann::json::array();
    for (const auto& s : p.subnetworks) {
      subnets.push_back({{"name", s.name},
                         {"parameters", s.parameters},
                         {"gflopsPerSlice", s.gflopsPerSlice},
                         {"gflopsPerWindow", s.gflopsPerWindow}});
    }
    list.push_back({{"preset", p.preset},
                    {"parameters", p.parameters},
                    {"gflopsPerSlice", p.gflopsPerSlice},
                    {"gflopsPerWindow", p.gflopsPerWindow},
                    {"subnetworks", subnets}});
  }
  const nlohmann::json doc{{"architecture", presets.front().architecture},
                           {"flops", "2 x multiply-accumulates of convolutions"},
                           {"slice", {512, 512}},
                           {"window", {8, 512, 512}},
                           {"presets", list}};
  out << doc.dump(2) << "\n";
}

} // namespace

int runModelInfo(const ModelInfoOptions& options, std::ostream& out, std::ostream& err) {
  std::vector<models::PresetInfo> presets;
  try {
    presets = models::describeModel(options.name, options.preset);
  } catch (const models::ModelError& e) {
    err << "densa: error: " << e.what() << "\n";
    return kExitUsage;
  }
  if (options.json) {
    printJson(presets, out);
  } else {
    printTable(presets, out);
  }
  return kExitOk;
}

} // namespace densa::app
