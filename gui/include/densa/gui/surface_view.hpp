// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/gui/view_state.hpp"
#include "densa/gui/vtk_gl_widget.hpp"

#include <memory>

namespace densa::gui {

/// The 3D view: smooth liver and tumour surfaces (flying edges + windowed-sinc smoothing of the
/// overlay) inside a faint body outline, in patient space (LPS), seen from the front, with the
/// crosshair as three lines. Rotate with the left button, zoom with the wheel or right button,
/// pan with the middle button.
class SurfaceView : public VtkGLWidget {
  Q_OBJECT
public:
  explicit SurfaceView(ViewState* state, QWidget* parent = nullptr);
  ~SurfaceView() override;
  SurfaceView(const SurfaceView&) = delete;
  SurfaceView& operator=(const SurfaceView&) = delete;

  /// Front view, whole body in sight.
  void resetCamera();
  /// Number of triangles of the liver and tumour surfaces (0 without overlay).
  [[nodiscard]] std::size_t surfaceTriangles() const;
  void setBodyVisible(bool visible);

  [[nodiscard]] QSize sizeHint() const override { return {360, 360}; }

private:
  void rebuildBody();
  void rebuildSurfaces();
  void updateCursor();
  void updateAppearance();
  struct Impl;
  std::unique_ptr<Impl> m;
  ViewState* m_state;
};

} // namespace densa::gui
