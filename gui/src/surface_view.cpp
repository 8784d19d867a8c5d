// SPDX-License-Identifier: Apache-2.0
#include "densa/gui/surface_view.hpp"

#include <vtkActor.h>
#include <vtkCamera.h>
#include <vtkFlyingEdges3D.h>
#include <vtkGenericOpenGLRenderWindow.h>
#include <vtkImageData.h>
#include <vtkLineSource.h>
#include <vtkMatrix4x4.h>
#include <vtkNew.h>
#include <vtkPointData.h>
#include <vtkPolyData.h>
#include <vtkPolyDataMapper.h>
#include <vtkPolyDataNormals.h>
#include <vtkProperty.h>
#include <vtkRenderer.h>
#include <vtkSmartPointer.h>
#include <vtkUnsignedCharArray.h>
#include <vtkWindowedSincPolyDataFilter.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>

namespace densa::gui {

namespace {

/// A binary mask on a grid pooled by `factor` in-plane (a block is set when any voxel is), padded
/// by one empty voxel on every side so that surfaces close at the volume's edges.
vtkSmartPointer<vtkImageData> pooledMask(const core::Size3& size,
                                         const core::Vec3& spacing,
                                         std::size_t factor,
                                         const std::function<bool(std::size_t)>& inside) {
  const std::size_t nx = (size[0] + factor - 1) / factor;
  const std::size_t ny = (size[1] + factor - 1) / factor;
  const std::size_t nz = size[2];
  auto image = vtkSmartPointer<vtkImageData>::New();
  image->SetDimensions(
      static_cast<int>(nx + 2), static_cast<int>(ny + 2), static_cast<int>(nz + 2));
  const double f = static_cast<double>(factor);
  image->SetSpacing(spacing[0] * f, spacing[1] * f, spacing[2]);
  // Block (bx, by) covers voxels bx*f .. bx*f+f-1: its centre is at index bx*f + (f-1)/2.
  image->SetOrigin(spacing[0] * ((f - 1) / 2 - f), spacing[1] * ((f - 1) / 2 - f), -spacing[2]);
  auto scalars = vtkSmartPointer<vtkUnsignedCharArray>::New();
  scalars->SetNumberOfTuples(static_cast<vtkIdType>((nx + 2) * (ny + 2) * (nz + 2)));
  scalars->FillValue(0);
  auto* out = scalars->GetPointer(0);
  for (std::size_t k = 0; k < nz; ++k) {
    for (std::size_t j = 0; j < size[1]; ++j) {
      for (std::size_t i = 0; i < size[0]; ++i) {
        if (inside(i + size[0] * (j + size[1] * k))) {
          out[(i / factor + 1) + (nx + 2) * ((j / factor + 1) + (ny + 2) * (k + 1))] = 1;
        }
      }
    }
  }
  image->GetPointData()->SetScalars(scalars);
  return image;
}

vtkSmartPointer<vtkPolyData> smoothSurface(vtkImageData* mask, int iterations) {
  vtkNew<vtkFlyingEdges3D> iso;
  iso->SetInputData(mask);
  iso->SetValue(0, 0.5);
  iso->ComputeNormalsOff();
  iso->ComputeScalarsOff();
  iso->Update();
  auto out = vtkSmartPointer<vtkPolyData>::New();
  if (iso->GetOutput()->GetNumberOfPolys() == 0) {
    return out; // empty mask: nothing to smooth
  }
  vtkNew<vtkWindowedSincPolyDataFilter> smooth;
  smooth->SetInputConnection(iso->GetOutputPort());
  smooth->SetNumberOfIterations(iterations);
  smooth->SetPassBand(0.05);
  smooth->BoundarySmoothingOff();
  smooth->NonManifoldSmoothingOn();
  smooth->NormalizeCoordinatesOn();
  vtkNew<vtkPolyDataNormals> normals;
  normals->SetInputConnection(smooth->GetOutputPort());
  normals->SetFeatureAngle(80);
  normals->Update();
  out->ShallowCopy(normals->GetOutput());
  return out;
}

} // namespace

struct SurfaceView::Impl {
  vtkNew<vtkRenderer> renderer;
  vtkNew<vtkMatrix4x4> toPatient; // grid (index × spacing) → LPS
  vtkNew<vtkActor> body;
  vtkNew<vtkActor> liver;
  vtkNew<vtkActor> tumour;
  std::array<vtkNew<vtkLineSource>, 3> lines;
  std::array<vtkNew<vtkActor>, 3> lineActors;
  std::size_t triangles = 0;
  bool bodyVisible = true;
};

SurfaceView::SurfaceView(ViewState* state, QWidget* parent)
    : VtkGLWidget(parent)
    , m(std::make_unique<Impl>())
    , m_state(state) {
  setObjectName("surfaceView");
  m->renderer->GradientBackgroundOn();
  m->renderer->SetUseDepthPeeling(1); // correct order of the translucent liver and body
  m->renderer->SetMaximumNumberOfPeels(8);
  m->renderer->SetBackground(0.05, 0.06, 0.09);
  m->renderer->SetBackground2(0.22, 0.24, 0.30);
  renderWindow()->AddRenderer(m->renderer);
  for (vtkActor* a : {m->body.GetPointer(), m->liver.GetPointer(), m->tumour.GetPointer()}) {
    a->SetUserMatrix(m->toPatient);
    a->VisibilityOff();
    m->renderer->AddActor(a);
  }
  m->body->GetProperty()->SetColor(0.85, 0.78, 0.70);
  m->body->GetProperty()->SetOpacity(0.12);
  m->body->GetProperty()->BackfaceCullingOn();
  for (vtkActor* a : {m->liver.GetPointer(), m->tumour.GetPointer()}) {
    a->GetProperty()->SetSpecular(0.25);
    a->GetProperty()->SetSpecularPower(20);
  }
  std::array<std::array<double, 3>, 3> colours{{{1, 0.3, 0.3}, {0.3, 1, 0.3}, {0.4, 0.5, 1}}};
  for (std::size_t a = 0; a < 3; ++a) {
    vtkNew<vtkPolyDataMapper> mapper;
    mapper->SetInputConnection(m->lines[a]->GetOutputPort());
    m->lineActors[a]->SetMapper(mapper);
    m->lineActors[a]->SetUserMatrix(m->toPatient);
    m->lineActors[a]->GetProperty()->SetColor(colours[a].data());
    m->lineActors[a]->GetProperty()->SetLineWidth(1.5);
    m->lineActors[a]->VisibilityOff();
    m->renderer->AddActor(m->lineActors[a]);
  }
  connect(state, &ViewState::documentChanged, this, [this] {
    rebuildBody();
    rebuildSurfaces();
    updateCursor();
    resetCamera();
  });
  connect(state, &ViewState::labelsChanged, this, [this] {
    rebuildSurfaces();
    resetCamera();
  });
  connect(state, &ViewState::cursorChanged, this, [this] {
    updateCursor();
    update();
  });
  connect(state, &ViewState::overlayChanged, this, [this] {
    updateAppearance();
    update();
  });
  updateAppearance();
}

SurfaceView::~SurfaceView() = default;

std::size_t SurfaceView::surfaceTriangles() const {
  return m->triangles;
}

void SurfaceView::setBodyVisible(bool visible) {
  m->bodyVisible = visible;
  m->body->SetVisibility(visible && m->body->GetMapper() != nullptr ? 1 : 0);
  update();
}

void SurfaceView::rebuildBody() {
  const auto& doc = m_state->document();
  m->body->VisibilityOff();
  if (doc.empty()) {
    return;
  }
  // The patient matrix: LPS = origin + direction · (index × spacing).
  const auto& g = doc.ct.geometry();
  m->toPatient->Identity();
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      m->toPatient->SetElement(r, c, g.direction[static_cast<std::size_t>(3 * r + c)]);
    }
    m->toPatient->SetElement(r, 3, g.origin[static_cast<std::size_t>(r)]);
  }
  m->toPatient->Modified();
  // The body outline (air/tissue boundary at −500 HU) on a coarse grid: context, not measurement.
  const auto& size = doc.ct.size();
  const std::size_t factor = std::max<std::size_t>(1, std::max(size[0], size[1]) / 128);
  const std::int16_t* ct = doc.ct.data();
  auto mask = pooledMask(size, g.spacing, factor, [ct](std::size_t o) { return ct[o] > -500; });
  vtkNew<vtkPolyDataMapper> mapper;
  mapper->SetInputData(smoothSurface(mask, 10));
  mapper->ScalarVisibilityOff();
  m->body->SetMapper(mapper);
  m->body->SetVisibility(m->bodyVisible ? 1 : 0);
}

void SurfaceView::rebuildSurfaces() {
  const auto& doc = m_state->document();
  m->triangles = 0;
  m->liver->VisibilityOff();
  m->tumour->VisibilityOff();
  m->liver->SetMapper(nullptr);
  m->tumour->SetMapper(nullptr);
  if (doc.empty() || !doc.labels) {
    return;
  }
  const auto& size = doc.ct.size();
  // Pool large grids in-plane (a block is inside when any voxel is, so small lesions survive).
  const std::size_t factor = std::max<std::size_t>(1, (std::max(size[0], size[1]) + 255) / 256);
  const std::uint8_t* labels = doc.labels->data();
  const auto& spacing = doc.ct.geometry().spacing;
  auto build = [&](vtkActor* actor, const std::function<bool(std::size_t)>& inside) {
    auto mask = pooledMask(size, spacing, factor, inside);
    auto surface = smoothSurface(mask, 20);
    if (surface->GetNumberOfPolys() == 0) {
      return;
    }
    m->triangles += static_cast<std::size_t>(surface->GetNumberOfPolys());
    vtkNew<vtkPolyDataMapper> mapper;
    mapper->SetInputData(surface);
    mapper->ScalarVisibilityOff();
    actor->SetMapper(mapper);
  };
  build(m->liver, [labels](std::size_t o) { return labels[o] >= 1; });
  build(m->tumour, [labels](std::size_t o) { return labels[o] == 2; });
  updateAppearance();
}

void SurfaceView::updateAppearance() {
  auto apply = [this](vtkActor* actor, int label, double opacity) {
    const QColor c = m_state->labelColor(label);
    actor->GetProperty()->SetColor(c.redF(), c.greenF(), c.blueF());
    actor->GetProperty()->SetOpacity(opacity);
    actor->SetVisibility(actor->GetMapper() != nullptr && m_state->labelVisible(label) ? 1 : 0);
  };
  const bool tumours = m->tumour->GetMapper() != nullptr && m_state->labelVisible(2);
  apply(m->liver, 1, tumours ? 0.3 : 1.0); // see-through liver when there are tumours inside
  apply(m->tumour, 2, 1.0);
}

void SurfaceView::updateCursor() {
  const auto& doc = m_state->document();
  if (doc.empty()) {
    for (auto& a : m->lineActors) {
      a->VisibilityOff();
    }
    return;
  }
  const auto& s = doc.ct.size();
  const auto& sp = doc.ct.geometry().spacing;
  const auto& c = m_state->cursor();
  std::array<double, 3> p{};
  std::array<double, 3> hi{};
  for (std::size_t a = 0; a < 3; ++a) {
    p[a] = static_cast<double>(c[a]) * sp[a];
    hi[a] = static_cast<double>(s[a] - 1) * sp[a];
  }
  for (std::size_t a = 0; a < 3; ++a) {
    std::array<double, 3> p0 = p;
    std::array<double, 3> p1 = p;
    p0[a] = 0;
    p1[a] = hi[a];
    m->lines[a]->SetPoint1(p0.data());
    m->lines[a]->SetPoint2(p1.data());
    m->lineActors[a]->VisibilityOn();
  }
}

void SurfaceView::resetCamera() {
  vtkCamera* camera = m->renderer->GetActiveCamera();
  // Seen from the front (anterior), head up: the patient's left appears on the screen's right,
  // as in the radiological 2D views.
  camera->SetFocalPoint(0, 0, 0);
  camera->SetPosition(0, -1, 0);
  camera->SetViewUp(0, 0, 1);
  if (m->liver->GetMapper() != nullptr) {
    // Frame the liver (its bounds in patient space) rather than the whole body.
    double b[6];
    m->liver->GetBounds(b);
    m->renderer->ResetCamera(b);
    camera->Zoom(1.2);
  } else {
    m->renderer->ResetCamera();
    camera->Zoom(1.3);
  }
  m->renderer->ResetCameraClippingRange();
  update();
}

} // namespace densa::gui
