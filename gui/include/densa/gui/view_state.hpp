// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/app/case_io.hpp"
#include "densa/app/segmenter.hpp"
#include "densa/core/lesions.hpp"
#include "densa/core/orient.hpp"
#include "densa/core/volume.hpp"

#include <QColor>
#include <QObject>
#include <QString>

#include <array>
#include <cstdint>
#include <optional>

namespace densa::gui {

/// What the viewer shows: the CT re-indexed exactly (no interpolation) to the canonical axial
/// orientation, so that i runs to the patient's left, j posterior and k superior, and every view
/// can draw index planes. Exports map labels back onto the input grid.
struct Document {
  core::Volume<std::int16_t> ct;        ///< display grid (canonical axial)
  core::AxisPermutation inputToDisplay; ///< how the input grid became the display grid
  core::Geometry inputGeometry;         ///< geometry of the input grid
  core::Size3 inputSize{0, 0, 0};
  std::optional<io::DicomProvenance> dicom; ///< DICOM inputs
  std::vector<std::string> warnings;
  QString source;                       ///< the path that was opened
  QString description;                  ///< series description or file name
  std::optional<core::LabelMap> labels; ///< display grid; 0 background, 1 liver, 2 tumour
  std::optional<core::LiverTumourStats> stats;
  std::optional<app::ModelIdentity> model; ///< set when the labels came from a segmentation
  std::map<std::string, double> segmentSeconds;

  [[nodiscard]] bool empty() const noexcept { return ct.empty(); }

  /// Builds a document from a case read on its own grid.
  [[nodiscard]] static Document fromCase(app::LoadedCase loaded,
                                         QString source,
                                         QString description);
  /// `labels` (on the input grid) as the overlay; measures them.
  void setInputLabels(const core::LabelMap& inputLabels);
  /// The overlay mapped back onto the input grid (for exports).
  [[nodiscard]] core::LabelMap labelsOnInputGrid() const;
  /// The CT on the input grid (for reports).
  [[nodiscard]] core::Volume<std::int16_t> ctOnInputGrid() const;
};

/// Window/level presets (HU).
struct WindowPreset {
  const char* name;
  double width;
  double level;
};

inline constexpr std::array<WindowPreset, 4> kWindowPresets{
    {{"Abdomen", 400, 40}, {"Liver", 150, 70}, {"Bone", 1800, 400}, {"Lung", 1500, -600}}};

/// State shared by every view: the crosshair (display voxel index), window/level and overlay
/// appearance. Views listen to its signals; changes from any view reach all of them.
class ViewState : public QObject {
  Q_OBJECT
public:
  explicit ViewState(QObject* parent = nullptr);

  [[nodiscard]] const Document& document() const noexcept { return m_document; }

  void setDocument(Document document);
  /// Replaces the overlay (display grid) and re-measures it.
  void setLabels(std::optional<core::LabelMap> labels,
                 std::optional<app::ModelIdentity> model,
                 std::map<std::string, double> seconds = {});

  [[nodiscard]] const core::Size3& cursor() const noexcept { return m_cursor; }

  void setCursor(const core::Size3& index);
  /// Moves the crosshair to the voxel nearest to an LPS point (mm).
  void setCursorPhysical(const core::Vec3& lpsMm);

  [[nodiscard]] double window() const noexcept { return m_window; }

  [[nodiscard]] double level() const noexcept { return m_level; }

  void setWindowLevel(double window, double level);

  [[nodiscard]] double overlayOpacity() const noexcept { return m_opacity; }

  void setOverlayOpacity(double opacity);
  [[nodiscard]] bool labelVisible(int label) const;
  void setLabelVisible(int label, bool visible);
  [[nodiscard]] QColor labelColor(int label) const;
  void setLabelColor(int label, const QColor& color);

signals:
  void documentChanged();
  void labelsChanged();
  void cursorChanged();
  void windowLevelChanged();
  void overlayChanged();

private:
  Document m_document;
  core::Size3 m_cursor{0, 0, 0};
  double m_window = 400;
  double m_level = 40;
  double m_opacity = 0.45;
  std::array<bool, 3> m_visible{false, true, true};
  std::array<QColor, 3> m_colors{QColor(0, 0, 0), QColor(230, 120, 40), QColor(60, 200, 255)};
};

} // namespace densa::gui
