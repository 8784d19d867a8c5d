// SPDX-License-Identifier: Apache-2.0
#include "densa/gui/slice_view.hpp"

#include <QKeyEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QWheelEvent>

#include <algorithm>
#include <cmath>

namespace densa::gui {

const char* planeName(Plane plane) {
  switch (plane) {
  case Plane::Axial:
    return "Axial";
  case Plane::Coronal:
    return "Coronal";
  case Plane::Sagittal:
    return "Sagittal";
  }
  return "?";
}

SliceView::SliceView(Plane plane, ViewState* state, QWidget* parent)
    : QWidget(parent)
    , m_plane(plane)
    , m_state(state) {
  setFocusPolicy(Qt::StrongFocus);
  setMouseTracking(true);
  setAttribute(Qt::WA_OpaquePaintEvent);
  setObjectName(QString(planeName(plane)).toLower() + "View");
  rebuildLut();
  auto dirty = [this] {
    m_dirty = true;
    update();
  };
  connect(state, &ViewState::documentChanged, this, [this, dirty] {
    resetView();
    dirty();
  });
  connect(state, &ViewState::labelsChanged, this, dirty);
  connect(state, &ViewState::cursorChanged, this, dirty);
  connect(state, &ViewState::overlayChanged, this, dirty);
  connect(state, &ViewState::windowLevelChanged, this, [this, dirty] {
    rebuildLut();
    dirty();
  });
}

int SliceView::normalAxis() const {
  switch (m_plane) {
  case Plane::Axial:
    return 2;
  case Plane::Coronal:
    return 1;
  case Plane::Sagittal:
    return 0;
  }
  return 2;
}

std::size_t SliceView::sliceIndex() const {
  return m_state->cursor()[static_cast<std::size_t>(normalAxis())];
}

std::size_t SliceView::sliceCount() const {
  const auto& doc = m_state->document();
  return doc.empty() ? 0 : doc.ct.size()[static_cast<std::size_t>(normalAxis())];
}

void SliceView::setSliceIndex(std::ptrdiff_t index) {
  if (sliceCount() == 0) {
    return;
  }
  const auto n = static_cast<std::ptrdiff_t>(sliceCount());
  core::Size3 c = m_state->cursor();
  c[static_cast<std::size_t>(normalAxis())] =
      static_cast<std::size_t>(std::clamp<std::ptrdiff_t>(index, 0, n - 1));
  m_state->setCursor(c);
}

void SliceView::stepSlice(std::ptrdiff_t delta) {
  setSliceIndex(static_cast<std::ptrdiff_t>(sliceIndex()) + delta);
}

std::array<std::size_t, 2> SliceView::imageSize() const {
  const auto& s = m_state->document().ct.size();
  switch (m_plane) {
  case Plane::Axial:
    return {s[0], s[1]};
  case Plane::Coronal:
    return {s[0], s[2]};
  case Plane::Sagittal:
    return {s[1], s[2]};
  }
  return {0, 0};
}

std::array<double, 2> SliceView::pixelSpacing() const {
  const auto& sp = m_state->document().ct.geometry().spacing;
  switch (m_plane) {
  case Plane::Axial:
    return {sp[0], sp[1]};
  case Plane::Coronal:
    return {sp[0], sp[2]};
  case Plane::Sagittal:
    return {sp[1], sp[2]};
  }
  return {1, 1};
}

// Axial: u = i (patient right → left), v = j (anterior → posterior). Coronal: u = i, v runs from
// superior (k = n-1) down. Sagittal: u = j (anterior → posterior), v from superior down.
core::Size3 SliceView::voxelOf(std::size_t u, std::size_t v) const {
  const auto& s = m_state->document().ct.size();
  const auto& c = m_state->cursor();
  switch (m_plane) {
  case Plane::Axial:
    return {u, v, c[2]};
  case Plane::Coronal:
    return {u, c[1], s[2] - 1 - v};
  case Plane::Sagittal:
    return {c[0], u, s[2] - 1 - v};
  }
  return c;
}

std::array<std::size_t, 2> SliceView::pixelOf(const core::Size3& x) const {
  const auto& s = m_state->document().ct.size();
  switch (m_plane) {
  case Plane::Axial:
    return {x[0], x[1]};
  case Plane::Coronal:
    return {x[0], s[2] - 1 - x[2]};
  case Plane::Sagittal:
    return {x[1], s[2] - 1 - x[2]};
  }
  return {0, 0};
}

void SliceView::rebuildLut() {
  const double w = m_state->window();
  const double lo = m_state->level() - w / 2;
  for (int v = -32768; v <= 32767; ++v) {
    const double g = std::clamp((static_cast<double>(v) - lo) / w * 255.0, 0.0, 255.0);
    m_lut[static_cast<std::size_t>(v + 32768)] = static_cast<std::uint8_t>(std::lround(g));
  }
}

void SliceView::rebuildImage() {
  m_dirty = false;
  const auto& doc = m_state->document();
  if (doc.empty()) {
    m_image = QImage();
    return;
  }
  const auto [w, h] = imageSize();
  if (m_image.width() != static_cast<int>(w) || m_image.height() != static_cast<int>(h)) {
    m_image = QImage(static_cast<int>(w), static_cast<int>(h), QImage::Format_RGB32);
  }
  const auto* labels = doc.labels ? &*doc.labels : nullptr;
  const double alpha = m_state->overlayOpacity();
  std::array<QColor, 3> colors{};
  std::array<bool, 3> visible{};
  for (int l = 1; l < 3; ++l) {
    colors[static_cast<std::size_t>(l)] = m_state->labelColor(l);
    visible[static_cast<std::size_t>(l)] = m_state->labelVisible(l);
  }
  for (std::size_t v = 0; v < h; ++v) {
    auto* line = reinterpret_cast<QRgb*>(m_image.scanLine(static_cast<int>(v)));
    for (std::size_t u = 0; u < w; ++u) {
      const core::Size3 x = voxelOf(u, v);
      const std::size_t off = doc.ct.offset(x[0], x[1], x[2]);
      const int g = m_lut[static_cast<std::size_t>(doc.ct.data()[off] + 32768)];
      int r = g;
      int gg = g;
      int b = g;
      if (labels != nullptr) {
        const auto l = static_cast<std::size_t>(labels->data()[off]);
        if (l > 0 && l < 3 && visible[l]) {
          const QColor& c = colors[l];
          r = static_cast<int>(std::lround((1 - alpha) * g + alpha * c.red()));
          gg = static_cast<int>(std::lround((1 - alpha) * g + alpha * c.green()));
          b = static_cast<int>(std::lround((1 - alpha) * g + alpha * c.blue()));
        }
      }
      line[u] = qRgb(r, gg, b);
    }
  }
}

QImage SliceView::sliceImage() {
  if (m_dirty) {
    rebuildImage();
  }
  return m_image;
}

QRectF SliceView::imageRect() const {
  if (m_state->document().empty()) {
    return {};
  }
  const auto [w, h] = imageSize();
  const auto [su, sv] = pixelSpacing();
  const double physW = static_cast<double>(w) * su;
  const double physH = static_cast<double>(h) * sv;
  const double fit = std::min(width() / physW, height() / physH);
  const double scale = fit * m_zoom;
  const double rw = physW * scale;
  const double rh = physH * scale;
  return {(width() - rw) / 2 + m_pan.x(), (height() - rh) / 2 + m_pan.y(), rw, rh};
}

void SliceView::resetView() {
  m_zoom = 1.0;
  m_pan = {0, 0};
  update();
}

std::optional<core::Size3> SliceView::voxelAt(const QPointF& pos) const {
  const QRectF r = imageRect();
  if (r.isEmpty() || !r.contains(pos)) {
    return std::nullopt;
  }
  const auto [w, h] = imageSize();
  const auto u = static_cast<std::size_t>(std::clamp(
      (pos.x() - r.left()) / r.width() * static_cast<double>(w), 0.0, static_cast<double>(w) - 1));
  const auto v = static_cast<std::size_t>(std::clamp(
      (pos.y() - r.top()) / r.height() * static_cast<double>(h), 0.0, static_cast<double>(h) - 1));
  return voxelOf(u, v);
}

void SliceView::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), Qt::black);
  const auto& doc = m_state->document();
  if (doc.empty()) {
    p.setPen(QColor(150, 150, 150));
    p.drawText(rect(),
               Qt::AlignCenter,
               tr("%1\n\nOpen a CT: File ▸ Open, or drop a DICOM folder or NIfTI file here")
                   .arg(planeName(m_plane)));
    return;
  }
  if (m_dirty) {
    rebuildImage();
  }
  const QRectF r = imageRect();
  p.setRenderHint(QPainter::SmoothPixmapTransform, m_zoom < 4);
  p.drawImage(r, m_image);

  // Crosshair through the centre of the cursor voxel.
  const auto [w, h] = imageSize();
  const auto px = pixelOf(m_state->cursor());
  const double cx =
      r.left() + (static_cast<double>(px[0]) + 0.5) * r.width() / static_cast<double>(w);
  const double cy =
      r.top() + (static_cast<double>(px[1]) + 0.5) * r.height() / static_cast<double>(h);
  p.setRenderHint(QPainter::Antialiasing, false);
  p.setPen(QPen(QColor(255, 220, 0, 150), 1, Qt::DashLine));
  p.drawLine(QPointF(r.left(), cy), QPointF(r.right(), cy));
  p.drawLine(QPointF(cx, r.top()), QPointF(cx, r.bottom()));

  // Orientation letters (radiological convention) and annotations.
  static constexpr std::array<std::array<const char*, 4>, 3> kLetters{{
      {"R", "L", "A", "P"}, // axial: left, right, top, bottom
      {"R", "L", "S", "I"}, // coronal
      {"A", "P", "S", "I"}, // sagittal
  }};
  const auto& letters = kLetters[static_cast<std::size_t>(m_plane)];
  QFont f = font();
  f.setBold(true);
  p.setFont(f);
  p.setPen(QColor(255, 200, 80));
  const QFontMetrics fm(f);
  const int pad = 6;
  p.drawText(QPointF(pad, height() / 2.0 + fm.ascent() / 2.0), letters[0]);
  p.drawText(
      QPointF(width() - pad - fm.horizontalAdvance(letters[1]), height() / 2.0 + fm.ascent() / 2.0),
      letters[1]);
  p.drawText(QPointF(width() / 2.0 - fm.horizontalAdvance(letters[2]) / 2.0, pad + fm.ascent()),
             letters[2]);
  p.drawText(QPointF(width() / 2.0 - fm.horizontalAdvance(letters[3]) / 2.0, height() - pad),
             letters[3]);
  p.setFont(font());
  p.setPen(QColor(220, 220, 220));
  p.drawText(QPointF(pad, pad + fm.ascent()),
             tr("%1  %2/%3").arg(planeName(m_plane)).arg(sliceIndex() + 1).arg(sliceCount()));
  p.drawText(QPointF(pad, height() - pad),
             tr("W %1  L %2").arg(m_state->window(), 0, 'f', 0).arg(m_state->level(), 0, 'f', 0));
}

void SliceView::mousePressEvent(QMouseEvent* event) {
  setFocus();
  m_dragStart = event->position();
  if (event->button() == Qt::MiddleButton ||
      (event->button() == Qt::LeftButton && (event->modifiers() & Qt::ShiftModifier))) {
    m_drag = Drag::Pan;
    m_panStart = m_pan;
  } else if (event->button() == Qt::RightButton) {
    m_drag = Drag::WindowLevel;
    m_windowStart = m_state->window();
    m_levelStart = m_state->level();
  } else if (event->button() == Qt::LeftButton) {
    m_drag = Drag::Cursor;
    if (auto v = voxelAt(event->position())) {
      m_state->setCursor(*v);
    }
  }
}

void SliceView::mouseMoveEvent(QMouseEvent* event) {
  const QPointF d = event->position() - m_dragStart;
  switch (m_drag) {
  case Drag::Cursor:
    if (auto v = voxelAt(event->position())) {
      m_state->setCursor(*v);
    }
    break;
  case Drag::Pan:
    m_pan = m_panStart + d;
    update();
    break;
  case Drag::WindowLevel:
    // Right/left widens/narrows the window, down/up lowers/raises the level.
    m_state->setWindowLevel(m_windowStart * std::exp(d.x() * 0.005),
                            m_levelStart - d.y() * m_windowStart / 400.0);
    break;
  case Drag::None:
    break;
  }
  updateHover(event->position());
}

void SliceView::mouseReleaseEvent(QMouseEvent*) {
  m_drag = Drag::None;
}

void SliceView::wheelEvent(QWheelEvent* event) {
  m_wheel += event->angleDelta().y();
  const int notches = static_cast<int>(m_wheel / 120);
  m_wheel -= notches * 120;
  if (notches != 0) {
    if (event->modifiers() & Qt::ControlModifier) {
      m_zoom = std::clamp(m_zoom * std::pow(1.15, notches), 0.25, 32.0);
      update();
    } else {
      stepSlice(notches);
    }
  }
  updateHover(event->position());
  event->accept();
}

void SliceView::keyPressEvent(QKeyEvent* event) {
  switch (event->key()) {
  case Qt::Key_Up:
    stepSlice(1);
    break;
  case Qt::Key_Down:
    stepSlice(-1);
    break;
  case Qt::Key_PageUp:
    stepSlice(10);
    break;
  case Qt::Key_PageDown:
    stepSlice(-10);
    break;
  case Qt::Key_Home:
    setSliceIndex(0);
    break;
  case Qt::Key_End:
    setSliceIndex(static_cast<std::ptrdiff_t>(sliceCount()) - 1);
    break;
  case Qt::Key_Plus:
  case Qt::Key_Equal:
    m_zoom = std::min(m_zoom * 1.25, 32.0);
    update();
    break;
  case Qt::Key_Minus:
    m_zoom = std::max(m_zoom / 1.25, 0.25);
    update();
    break;
  case Qt::Key_R:
    resetView();
    break;
  default:
    QWidget::keyPressEvent(event);
  }
}

void SliceView::leaveEvent(QEvent*) {
  emit hoverInfo(QString());
}

void SliceView::updateHover(const QPointF& pos) {
  const auto v = voxelAt(pos);
  if (!v) {
    emit hoverInfo(QString());
    return;
  }
  const auto& doc = m_state->document();
  const auto& x = *v;
  const core::Vec3 p = doc.ct.indexToPhysical(
      {static_cast<double>(x[0]), static_cast<double>(x[1]), static_cast<double>(x[2])});
  QString text = tr("%1 HU   voxel (%2, %3, %4)   LPS (%5, %6, %7) mm")
                     .arg(doc.ct.at(x[0], x[1], x[2]))
                     .arg(x[0])
                     .arg(x[1])
                     .arg(x[2])
                     .arg(p[0], 0, 'f', 1)
                     .arg(p[1], 0, 'f', 1)
                     .arg(p[2], 0, 'f', 1);
  if (doc.labels) {
    static constexpr std::array<const char*, 3> kNames{"background", "liver", "tumour"};
    const auto l = doc.labels->at(x[0], x[1], x[2]);
    text += tr("   label: %1").arg(l < 3 ? kNames[l] : "?");
  }
  emit hoverInfo(text);
}

} // namespace densa::gui
