// SPDX-License-Identifier: Apache-2.0
#include "progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>

namespace densa::app {

Progress::Progress(std::string label, std::ostream& out)
    : m_label(std::move(label))
    , m_out(out)
    , m_tty(::isatty(STDERR_FILENO) != 0)
    , m_start(std::chrono::steady_clock::now())
    , m_last(m_start) {}

void Progress::update(std::size_t done, std::size_t total) {
  update(static_cast<double>(done), static_cast<double>(total));
}

void Progress::update(double done, double total) {
  if (!m_tty || total <= 0) {
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (done < total && now - m_last < std::chrono::milliseconds(100)) {
    return;
  }
  m_last = now;
  const double fraction = std::clamp(done / total, 0.0, 1.0);
  const double elapsed = std::chrono::duration<double>(now - m_start).count();
  const double eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(fraction * kWidth);
  char line[160];
  std::snprintf(line,
                sizeof line,
                "\r%s [%-*s] %.0f/%.0f  ETA %.0fs ",
                m_label.c_str(),
                kWidth,
                std::string(static_cast<std::size_t>(filled), '#').c_str(),
                std::floor(done),
                total,
                eta);
  m_out << line << std::flush;
  m_shown = true;
}

void Progress::finish() {
  if (m_shown) {
    m_out << "\n" << std::flush;
    m_shown = false;
  }
}

} // namespace densa::app
