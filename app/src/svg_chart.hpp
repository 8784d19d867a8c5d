// SPDX-License-Identifier: Apache-2.0
#pragma once
// A small SVG line chart for the HTML reports of training runs (private to app/).

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace densa::app {

/// One or two series of (step, value) points as an inline SVG figure with a caption.
[[nodiscard]] std::string svgChart(const std::string& title,
                                   const std::vector<std::pair<double, double>>& a,
                                   const std::string& aName,
                                   const std::vector<std::pair<double, double>>& b = {},
                                   const std::string& bName = "");

/// The start of a report page (doctype, title, the reports' shared style, <body>).
[[nodiscard]] std::string reportHead(const std::string& title);

/// An <h2> and <img> of the newest validation-*.png in `run`, or "" when there is none.
[[nodiscard]] std::string latestValidationPictureHtml(const std::filesystem::path& run);

} // namespace densa::app
