// SPDX-License-Identifier: Apache-2.0
#include "densa/gui/view_state.hpp"

#include <algorithm>
#include <cmath>

namespace densa::gui {

Document Document::fromCase(app::LoadedCase loaded, QString source, QString description) {
  Document d;
  d.inputGeometry = loaded.ct.geometry();
  d.inputSize = loaded.ct.size();
  d.inputToDisplay = core::permutationToAxial(loaded.ct.geometry().direction);
  d.ct = d.inputToDisplay.isIdentity() ? std::move(loaded.ct)
                                       : core::permuteAxes(loaded.ct, d.inputToDisplay);
  d.dicom = std::move(loaded.dicom);
  d.warnings = std::move(loaded.warnings);
  d.source = std::move(source);
  d.description = std::move(description);
  return d;
}

void Document::setInputLabels(const core::LabelMap& inputLabels) {
  labels =
      inputToDisplay.isIdentity() ? inputLabels : core::permuteAxes(inputLabels, inputToDisplay);
  stats = core::measureLiverTumour(*labels); // k slices of the display grid are axial
}

core::LabelMap Document::labelsOnInputGrid() const {
  if (!labels) {
    return {};
  }
  return inputToDisplay.isIdentity() ? *labels
                                     : core::permuteAxes(*labels, core::inverse(inputToDisplay));
}

core::Volume<std::int16_t> Document::ctOnInputGrid() const {
  return inputToDisplay.isIdentity() ? ct : core::permuteAxes(ct, core::inverse(inputToDisplay));
}

ViewState::ViewState(QObject* parent)
    : QObject(parent) {}

void ViewState::setDocument(Document document) {
  m_document = std::move(document);
  const auto& s = m_document.ct.size();
  m_cursor = {s[0] / 2, s[1] / 2, s[2] / 2};
  emit documentChanged();
  emit labelsChanged();
  emit cursorChanged();
}

void ViewState::setLabels(std::optional<core::LabelMap> labels,
                          std::optional<app::ModelIdentity> model,
                          std::map<std::string, double> seconds) {
  m_document.labels = std::move(labels);
  m_document.model = std::move(model);
  m_document.segmentSeconds = std::move(seconds);
  if (m_document.labels) {
    // Lesion measurements (diameters on axial slices) are taken on the display grid, whose k
    // slices are axial; volumes and centroids do not depend on the grid.
    m_document.stats = core::measureLiverTumour(*m_document.labels);
  } else {
    m_document.stats.reset();
  }
  emit labelsChanged();
}

void ViewState::setCursor(const core::Size3& index) {
  if (m_document.empty()) {
    return;
  }
  const auto& s = m_document.ct.size();
  core::Size3 c{
      std::min(index[0], s[0] - 1), std::min(index[1], s[1] - 1), std::min(index[2], s[2] - 1)};
  if (c != m_cursor) {
    m_cursor = c;
    emit cursorChanged();
  }
}

void ViewState::setCursorPhysical(const core::Vec3& lpsMm) {
  if (m_document.empty()) {
    return;
  }
  const core::Vec3 idx = m_document.ct.physicalToIndex(lpsMm);
  core::Size3 c{};
  for (int a = 0; a < 3; ++a) {
    const double v = std::round(idx[a]);
    const double hi = static_cast<double>(m_document.ct.size()[a] - 1);
    c[a] = static_cast<std::size_t>(std::clamp(v, 0.0, hi));
  }
  setCursor(c);
}

void ViewState::setWindowLevel(double window, double level) {
  window = std::clamp(window, 1.0, 10000.0);
  level = std::clamp(level, -3000.0, 5000.0);
  if (window != m_window || level != m_level) {
    m_window = window;
    m_level = level;
    emit windowLevelChanged();
  }
}

void ViewState::setOverlayOpacity(double opacity) {
  m_opacity = std::clamp(opacity, 0.0, 1.0);
  emit overlayChanged();
}

bool ViewState::labelVisible(int label) const {
  return label > 0 && label < 3 && m_visible[static_cast<std::size_t>(label)];
}

void ViewState::setLabelVisible(int label, bool visible) {
  if (label > 0 && label < 3) {
    m_visible[static_cast<std::size_t>(label)] = visible;
    emit overlayChanged();
  }
}

QColor ViewState::labelColor(int label) const {
  return (label > 0 && label < 3) ? m_colors[static_cast<std::size_t>(label)] : QColor();
}

void ViewState::setLabelColor(int label, const QColor& color) {
  if (label > 0 && label < 3 && color.isValid()) {
    m_colors[static_cast<std::size_t>(label)] = color;
    emit overlayChanged();
  }
}

} // namespace densa::gui
