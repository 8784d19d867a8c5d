// SPDX-License-Identifier: Apache-2.0
#include "svg_chart.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <vector>

namespace densa::app {

std::string svgChart(const std::string& title,
                     const std::vector<std::pair<double, double>>& a,
                     const std::string& aName,
                     const std::vector<std::pair<double, double>>& b,
                     const std::string& bName) {
  constexpr double kW = 560;
  constexpr double kH = 240;
  constexpr double kPad = 40;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto* s : {&a, &b}) {
    for (const auto& [x, y] : *s) {
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
  }
  if (x0 > x1) {
    return "<p>" + title + ": no data yet</p>";
  }
  if (x1 == x0) {
    x1 = x0 + 1;
  }
  if (y1 == y0) {
    y1 = y0 + 1;
  }
  auto px = [&](double x) {
    return kPad + (x - x0) / (x1 - x0) * (kW - 2 * kPad);
  };
  auto py = [&](double y) {
    return kH - kPad - (y - y0) / (y1 - y0) * (kH - 2 * kPad);
  };
  std::ostringstream s;
  s << std::setprecision(4) << "<figure><figcaption>" << title << "</figcaption><svg width='" << kW
    << "' height='" << kH << "' style='background:#fff;border:1px solid #ccc'>";
  s << "<text x='" << kPad << "' y='15' font-size='11'>" << y1 << "</text><text x='" << kPad
    << "' y='" << kH - 25 << "' font-size='11'>" << y0 << "</text><text x='" << kW - kPad - 40
    << "' y='" << kH - 8 << "' font-size='11'>step " << x1 << "</text>";
  const std::pair<const std::vector<std::pair<double, double>>*, std::string> series[] = {
      {&a, "#1f77b4"}, {&b, "#d62728"}};
  for (const auto& [data, colour] : series) {
    if (data->empty()) {
      continue;
    }
    s << "<polyline fill='none' stroke='" << colour << "' stroke-width='1.5' points='";
    for (const auto& [x, y] : *data) {
      s << px(x) << "," << py(y) << " ";
    }
    s << "'/>";
  }
  s << "<text x='" << kW - 200 << "' y='15' font-size='11' fill='#1f77b4'>" << aName << "</text>";
  if (!b.empty()) {
    s << "<text x='" << kW - 200 << "' y='30' font-size='11' fill='#d62728'>" << bName << "</text>";
  }
  s << "</svg></figure>";
  return s.str();
}

std::string reportHead(const std::string& title) {
  return "<!doctype html><html><head><meta charset='utf-8'><title>" + title +
         "</title><style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
         "pre{background:#f4f4f4;padding:1em}figure{display:inline-block;margin:1em}</style>"
         "</head><body>";
}

std::string latestValidationPictureHtml(const std::filesystem::path& run) {
  std::vector<std::string> previews;
  for (const auto& e : std::filesystem::directory_iterator(run)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("validation-") && e.path().extension() == ".png") {
      previews.push_back(name);
    }
  }
  if (previews.empty()) {
    return "";
  }
  const std::string& last = *std::max_element(previews.begin(), previews.end());
  return "<h2>Validation prediction (" + last + ")</h2><img src='" + last +
         "' style='max-width:100%'>";
}

} // namespace densa::app
