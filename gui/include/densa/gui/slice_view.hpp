// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/gui/view_state.hpp"

#include <QImage>
#include <QPointF>
#include <QWidget>

#include <array>
#include <cstdint>
#include <optional>

namespace densa::gui {

enum class Plane { Axial, Coronal, Sagittal };
[[nodiscard]] const char* planeName(Plane plane);

/// A 2D view of one plane of the display grid (pure Qt: the slice is windowed into a QImage and
/// drawn with the correct aspect from the voxel spacing; radiological convention: the patient's
/// right on the screen's left). Left button: crosshair; wheel or Up/Down/PgUp/PgDn: slices;
/// Ctrl+wheel or +/-: zoom; middle button or Shift+left: pan; right button: window/level;
/// R: reset zoom and pan.
class SliceView : public QWidget {
  Q_OBJECT
public:
  SliceView(Plane plane, ViewState* state, QWidget* parent = nullptr);

  [[nodiscard]] Plane plane() const noexcept { return m_plane; }

  /// Index of the shown slice along this plane's normal axis.
  [[nodiscard]] std::size_t sliceIndex() const;
  [[nodiscard]] std::size_t sliceCount() const;
  void setSliceIndex(std::ptrdiff_t index);
  void stepSlice(std::ptrdiff_t delta);
  /// The windowed slice with its overlay, one pixel per voxel (before aspect and zoom).
  [[nodiscard]] QImage sliceImage();
  /// Where the slice image is drawn, in widget coordinates.
  [[nodiscard]] QRectF imageRect() const;
  void resetView();

  [[nodiscard]] double zoom() const noexcept { return m_zoom; }

  /// The display voxel under a widget position, if any.
  [[nodiscard]] std::optional<core::Size3> voxelAt(const QPointF& widgetPos) const;

  [[nodiscard]] QSize sizeHint() const override { return {360, 360}; }

  [[nodiscard]] QSize minimumSizeHint() const override { return {120, 120}; }

signals:
  /// HU, voxel and patient position under the mouse, for the status bar.
  void hoverInfo(const QString& text);

protected:
  void paintEvent(QPaintEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;
  void keyPressEvent(QKeyEvent* event) override;
  void leaveEvent(QEvent* event) override;

private:
  [[nodiscard]] int normalAxis() const;
  /// Image size (u, v) in voxels and the voxel size along u and v (mm).
  [[nodiscard]] std::array<std::size_t, 2> imageSize() const;
  [[nodiscard]] std::array<double, 2> pixelSpacing() const;
  /// Display voxel of image pixel (u, v) on the current slice.
  [[nodiscard]] core::Size3 voxelOf(std::size_t u, std::size_t v) const;
  /// Image pixel (u, v) of a display voxel.
  [[nodiscard]] std::array<std::size_t, 2> pixelOf(const core::Size3& voxel) const;
  void rebuildImage();
  void rebuildLut();
  void updateHover(const QPointF& pos);

  Plane m_plane;
  ViewState* m_state;
  QImage m_image;
  bool m_dirty = true;
  std::array<std::uint8_t, 65536> m_lut{};
  double m_zoom = 1.0;
  QPointF m_pan{0, 0};
  enum class Drag { None, Cursor, Pan, WindowLevel } m_drag = Drag::None;
  QPointF m_dragStart;
  QPointF m_panStart;
  double m_windowStart = 0;
  double m_levelStart = 0;
  double m_wheel = 0;
};

} // namespace densa::gui
