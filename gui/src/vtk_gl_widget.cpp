// SPDX-License-Identifier: Apache-2.0
// The VTK↔Qt glue. Follows the sequence recorded in ../shared/docs/qt6-vtk.md (what VTK's own
// QVTKRenderWindowAdapter does), written for Qt6 without VTK's Qt5 module.
#include "densa/gui/vtk_gl_widget.hpp"

#include <QEnterEvent>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QOpenGLContext>
#include <QOpenGLExtraFunctions>
#include <QScreen>
#include <QWheelEvent>
#include <vtkCallbackCommand.h>
#include <vtkCommand.h>
#include <vtkGenericOpenGLRenderWindow.h>
#include <vtkGenericRenderWindowInteractor.h>
#include <vtkInteractorStyleTrackballCamera.h>
#include <vtkNew.h>
#include <vtkOpenGLFramebufferObject.h>
#include <vtkOpenGLState.h>

#include <cmath>

namespace densa::gui {

namespace {
constexpr unsigned kGlColorBufferBit = 0x00004000;
constexpr unsigned kGlLinear = 0x2601;
constexpr unsigned kGlDrawFramebuffer = 0x8CA9;
constexpr unsigned kGlColorAttachment0 = 0x8CE0;
constexpr unsigned kGlLequal = 0x0203;
constexpr unsigned kGlScissorTest = 0x0C11;
} // namespace

struct VtkGLWidget::Impl {
  vtkNew<vtkGenericOpenGLRenderWindow> window;
  vtkNew<vtkGenericRenderWindowInteractor> interactor;
  vtkNew<vtkInteractorStyleTrackballCamera> style;
  bool inPaint = false;
  bool available = false;
  double wheelAccumulator = 0;
};

VtkGLWidget::VtkGLWidget(QWidget* parent)
    : QOpenGLWidget(parent)
    , m(std::make_unique<Impl>()) {
  setFocusPolicy(Qt::StrongFocus);
  setMouseTracking(true);
  setUpdateBehavior(QOpenGLWidget::NoPartialUpdate);
  m->window->SetReadyForRendering(false);
  m->window->SetFrameBlitModeToNoBlit();
  m->window->SetMultiSamples(0);
  m->interactor->SetRenderWindow(m->window);
  m->interactor->SetInteractorStyle(m->style);
  m->interactor->EnableRenderOff();

  auto onRender = vtkSmartPointer<vtkCallbackCommand>::New();
  onRender->SetClientData(this);
  onRender->SetCallback([](vtkObject*, unsigned long, void* self, void*) {
    static_cast<VtkGLWidget*>(self)->update();
  });
  m->interactor->AddObserver(vtkCommand::RenderEvent, onRender);

  auto onMakeCurrent = vtkSmartPointer<vtkCallbackCommand>::New();
  onMakeCurrent->SetClientData(this);
  onMakeCurrent->SetCallback([](vtkObject*, unsigned long, void* self, void*) {
    auto* w = static_cast<VtkGLWidget*>(self);
    // Never QOpenGLWidget::makeCurrent() here: it rebinds Qt's FBO behind vtkOpenGLState's back.
    if (w->context() != nullptr && QOpenGLContext::currentContext() != w->context()) {
      w->context()->makeCurrent(w->context()->surface());
    }
  });
  m->window->AddObserver(vtkCommand::WindowMakeCurrentEvent, onMakeCurrent);

  auto onIsCurrent = vtkSmartPointer<vtkCallbackCommand>::New();
  onIsCurrent->SetClientData(this);
  onIsCurrent->SetCallback([](vtkObject*, unsigned long, void* self, void* callData) {
    auto* w = static_cast<VtkGLWidget*>(self);
    *static_cast<bool*>(callData) =
        w->context() != nullptr && QOpenGLContext::currentContext() == w->context();
  });
  m->window->AddObserver(vtkCommand::WindowIsCurrentEvent, onIsCurrent);

  auto onFrame = vtkSmartPointer<vtkCallbackCommand>::New();
  onFrame->SetClientData(this);
  onFrame->SetCallback([](vtkObject*, unsigned long, void* self, void*) {
    auto* w = static_cast<VtkGLWidget*>(self);
    if (!w->m->inPaint) {
      w->update();
    }
  });
  m->window->AddObserver(vtkCommand::WindowFrameEvent, onFrame);

  m->interactor->Initialize();
}

VtkGLWidget::~VtkGLWidget() {
  if (context() != nullptr) {
    // QOpenGLWidget destroys the context after this destructor: detach first, then release the
    // VTK resources while the context is still alive.
    disconnect(context(), &QOpenGLContext::aboutToBeDestroyed, this, nullptr);
    makeCurrent();
    cleanup();
    doneCurrent();
  }
}

vtkGenericOpenGLRenderWindow* VtkGLWidget::renderWindow() const {
  return m->window;
}

vtkRenderWindowInteractor* VtkGLWidget::interactor() const {
  return m->interactor;
}

bool VtkGLWidget::renderingAvailable() const {
  return m->available;
}

QSurfaceFormat VtkGLWidget::defaultFormat() {
  QSurfaceFormat f;
  f.setRenderableType(QSurfaceFormat::OpenGL);
  f.setVersion(3, 2);
  f.setProfile(QSurfaceFormat::CoreProfile);
  f.setSwapBehavior(QSurfaceFormat::DoubleBuffer);
  f.setRedBufferSize(8);
  f.setGreenBufferSize(8);
  f.setBlueBufferSize(8);
  f.setAlphaBufferSize(8);
  f.setDepthBufferSize(24);
  f.setStencilBufferSize(8);
  f.setSamples(0);
  return f;
}

void VtkGLWidget::initializeGL() {
  vtkOpenGLState* state = m->window->GetState();
  state->Reset();
  state->vtkglDepthFunc(kGlLequal);
  m->window->SetOwnContext(0);
  m->window->SetForceMaximumHardwareLineWidth(1);
  m->window->SetReadyForRendering(true);

  bool failed = false;
  auto onError = vtkSmartPointer<vtkCallbackCommand>::New();
  onError->SetClientData(&failed);
  onError->SetCallback(
      [](vtkObject*, unsigned long, void* flag, void*) { *static_cast<bool*>(flag) = true; });
  const unsigned long tag = m->window->AddObserver(vtkCommand::ErrorEvent, onError);
  m->window->OpenGLInitContext();
  m->window->RemoveObserver(tag);
  const QSurfaceFormat f = context()->format();
  if (failed || f.majorVersion() < 3 || (f.majorVersion() == 3 && f.minorVersion() < 2)) {
    m->window->SetReadyForRendering(false);
    m->available = false;
  } else {
    m->available = true;
  }
  connect(
      context(),
      &QOpenGLContext::aboutToBeDestroyed,
      this,
      [this] { cleanup(); },
      Qt::DirectConnection);
}

void VtkGLWidget::resizeGL(int w, int h) {
  const double dpr = devicePixelRatioF();
  const int pw = static_cast<int>(std::lround(w * dpr));
  const int ph = static_cast<int>(std::lround(h * dpr));
  m->interactor->UpdateSize(pw, ph);
  if (screen() != nullptr) {
    const QSize s = screen()->size() * dpr;
    m->window->SetScreenSize(s.width(), s.height());
  }
  m->window->SetDPI(static_cast<int>(72 * dpr));
}

void VtkGLWidget::paintGL() {
  QOpenGLExtraFunctions* f = context()->extraFunctions();
  if (!m->available) {
    f->glClearColor(0.15F, 0.15F, 0.18F, 1.0F);
    f->glClear(kGlColorBufferBit);
    return;
  }
  m->inPaint = true;
  vtkOpenGLState* state = m->window->GetState();
  state->Reset();
  state->Push();
  state->vtkglDepthFunc(kGlLequal);
  m->window->Render();
  if (QOpenGLContext::currentContext() != context()) {
    makeCurrent();
  }
  state->ResetFramebufferBindings();
  state->vtkglBindFramebuffer(kGlDrawFramebuffer, defaultFramebufferObject());
  const unsigned buffers[1] = {kGlColorAttachment0};
  f->glDrawBuffers(1, buffers);
  const bool scissor = state->GetEnumState(kGlScissorTest);
  if (scissor) {
    state->vtkglDisable(kGlScissorTest);
  }
  const int* rb = m->window->GetRenderFramebuffer()->GetLastSize();
  const double dpr = devicePixelRatioF();
  m->window->BlitDisplayFramebuffer(0,
                                    0,
                                    0,
                                    rb[0],
                                    rb[1],
                                    0,
                                    0,
                                    static_cast<int>(std::lround(width() * dpr)),
                                    static_cast<int>(std::lround(height() * dpr)),
                                    kGlColorBufferBit,
                                    kGlLinear);
  // Mesa: force an opaque alpha channel so that the composed window shows what VTK drew.
  GLboolean mask[4];
  f->glGetBooleanv(0x0C23 /* GL_COLOR_WRITEMASK */, mask);
  state->vtkglColorMask(false, false, false, true);
  state->vtkglClearColor(0, 0, 0, 1);
  state->vtkglClear(kGlColorBufferBit);
  state->vtkglColorMask(mask[0], mask[1], mask[2], mask[3]);
  if (scissor) {
    state->vtkglEnable(kGlScissorTest);
  }
  state->Pop();
  m->inPaint = false;
}

void VtkGLWidget::cleanup() {
  if (m && m->window->GetReadyForRendering()) {
    m->window->Finalize();
    m->window->SetReadyForRendering(false);
  }
}

namespace {

void setEventInfo(vtkRenderWindowInteractor* iren,
                  const QPointF& pos,
                  Qt::KeyboardModifiers mods,
                  double dpr,
                  int repeat) {
  iren->SetEventInformationFlipY(static_cast<int>(std::lround(pos.x() * dpr)),
                                 static_cast<int>(std::lround(pos.y() * dpr)),
                                 (mods & Qt::ControlModifier) ? 1 : 0,
                                 (mods & Qt::ShiftModifier) ? 1 : 0,
                                 0,
                                 repeat);
  iren->SetAltKey((mods & Qt::AltModifier) ? 1 : 0);
}

unsigned long pressEvent(Qt::MouseButton b) {
  switch (b) {
  case Qt::LeftButton:
    return vtkCommand::LeftButtonPressEvent;
  case Qt::MiddleButton:
    return vtkCommand::MiddleButtonPressEvent;
  case Qt::RightButton:
    return vtkCommand::RightButtonPressEvent;
  default:
    return vtkCommand::NoEvent;
  }
}

unsigned long releaseEvent(Qt::MouseButton b) {
  switch (b) {
  case Qt::LeftButton:
    return vtkCommand::LeftButtonReleaseEvent;
  case Qt::MiddleButton:
    return vtkCommand::MiddleButtonReleaseEvent;
  case Qt::RightButton:
    return vtkCommand::RightButtonReleaseEvent;
  default:
    return vtkCommand::NoEvent;
  }
}

} // namespace

void VtkGLWidget::mousePressEvent(QMouseEvent* event) {
  setEventInfo(m->interactor, event->position(), event->modifiers(), devicePixelRatioF(), 0);
  if (const auto id = pressEvent(event->button()); id != vtkCommand::NoEvent) {
    m->interactor->InvokeEvent(id);
  }
}

void VtkGLWidget::mouseDoubleClickEvent(QMouseEvent* event) {
  setEventInfo(m->interactor, event->position(), event->modifiers(), devicePixelRatioF(), 1);
  if (const auto id = pressEvent(event->button()); id != vtkCommand::NoEvent) {
    m->interactor->InvokeEvent(id);
  }
}

void VtkGLWidget::mouseReleaseEvent(QMouseEvent* event) {
  setEventInfo(m->interactor, event->position(), event->modifiers(), devicePixelRatioF(), 0);
  if (const auto id = releaseEvent(event->button()); id != vtkCommand::NoEvent) {
    m->interactor->InvokeEvent(id);
  }
}

void VtkGLWidget::mouseMoveEvent(QMouseEvent* event) {
  setEventInfo(m->interactor, event->position(), event->modifiers(), devicePixelRatioF(), 0);
  m->interactor->InvokeEvent(vtkCommand::MouseMoveEvent);
}

void VtkGLWidget::wheelEvent(QWheelEvent* event) {
  setEventInfo(m->interactor, event->position(), event->modifiers(), devicePixelRatioF(), 0);
  m->wheelAccumulator += event->angleDelta().y();
  while (m->wheelAccumulator >= 120) {
    m->interactor->InvokeEvent(vtkCommand::MouseWheelForwardEvent);
    m->wheelAccumulator -= 120;
  }
  while (m->wheelAccumulator <= -120) {
    m->interactor->InvokeEvent(vtkCommand::MouseWheelBackwardEvent);
    m->wheelAccumulator += 120;
  }
  event->accept();
}

void VtkGLWidget::keyPressEvent(QKeyEvent* event) {
  // The trackball style's own keys would quit (e/q), animate unseen (f), switch to stereo (3) or
  // to wireframe (w/s): leave those to the application.
  const QString text = event->text();
  const char ch = text.isEmpty() ? '\0' : text.at(0).toLatin1();
  if (QString("eEqQfF3wWsS").contains(QChar(ch)) && ch != '\0') {
    QOpenGLWidget::keyPressEvent(event);
    return;
  }
  m->interactor->SetKeyEventInformation((event->modifiers() & Qt::ControlModifier) ? 1 : 0,
                                        (event->modifiers() & Qt::ShiftModifier) ? 1 : 0,
                                        ch,
                                        event->isAutoRepeat() ? 1 : 0,
                                        nullptr);
  m->interactor->InvokeEvent(vtkCommand::KeyPressEvent);
  m->interactor->InvokeEvent(vtkCommand::CharEvent);
  QOpenGLWidget::keyPressEvent(event);
}

void VtkGLWidget::enterEvent(QEnterEvent* event) {
  m->interactor->InvokeEvent(vtkCommand::EnterEvent);
  QOpenGLWidget::enterEvent(event);
}

void VtkGLWidget::leaveEvent(QEvent* event) {
  m->interactor->InvokeEvent(vtkCommand::LeaveEvent);
  QOpenGLWidget::leaveEvent(event);
}

} // namespace densa::gui
