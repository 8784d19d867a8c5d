// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <QOpenGLWidget>
#include <QSurfaceFormat>

#include <memory>

class vtkGenericOpenGLRenderWindow;
class vtkRenderWindowInteractor;

namespace densa::gui {

/// The one VTK↔Qt adapter: a Qt6 QOpenGLWidget that drives a vtkGenericOpenGLRenderWindow and a
/// generic interactor (Debian's VTK Qt widget is built on Qt5 and cannot be used in a Qt6
/// process; see ../shared/docs/qt6-vtk.md). VTK renders only inside paintGL into its own
/// framebuffers, which are blitted into this widget's framebuffer. Request frames with update().
class VtkGLWidget : public QOpenGLWidget {
  Q_OBJECT
public:
  explicit VtkGLWidget(QWidget* parent = nullptr);
  ~VtkGLWidget() override;
  VtkGLWidget(const VtkGLWidget&) = delete;
  VtkGLWidget& operator=(const VtkGLWidget&) = delete;

  [[nodiscard]] vtkGenericOpenGLRenderWindow* renderWindow() const;
  [[nodiscard]] vtkRenderWindowInteractor* interactor() const;
  /// False when the OpenGL context is unusable for VTK (older than 3.2); the view then shows a
  /// placeholder instead of crashing.
  [[nodiscard]] bool renderingAvailable() const;

  /// OpenGL 3.2 core, double-buffered RGBA8, depth 24, stencil 8: set it as the default format
  /// before QApplication is constructed.
  [[nodiscard]] static QSurfaceFormat defaultFormat();

protected:
  void initializeGL() override;
  void resizeGL(int w, int h) override;
  void paintGL() override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void mouseDoubleClickEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;
  void keyPressEvent(QKeyEvent* event) override;
  void enterEvent(QEnterEvent* event) override;
  void leaveEvent(QEvent* event) override;

private:
  void cleanup();
  struct Impl;
  std::unique_ptr<Impl> m;
};

} // namespace densa::gui
