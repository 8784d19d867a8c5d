// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <string>

namespace densa::app {

/// A one-line progress bar with ETA on a terminal (stderr); silent when stderr is not a terminal.
class Progress {
public:
  Progress(std::string label, std::ostream& out);
  void update(std::size_t done, std::size_t total);
  /// Fractional progress (e.g. 2.4 of 10 cases).
  void update(double done, double total);
  void finish();

  /// True when drawing a bar (stderr is a terminal).
  [[nodiscard]] bool interactive() const noexcept { return m_tty; }

private:
  std::string m_label;
  std::ostream& m_out;
  bool m_tty;
  bool m_shown = false;
  std::chrono::steady_clock::time_point m_start;
  std::chrono::steady_clock::time_point m_last;
};

} // namespace densa::app
