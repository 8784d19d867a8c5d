// SPDX-License-Identifier: Apache-2.0
#include "densa/core/morphology.hpp"

#include "densa/core/error.hpp"
#include "densa/core/itk_bridge.hpp"

#include <itkBinaryDilateImageFilter.h>
#include <itkBinaryFillholeImageFilter.h>
#include <itkConnectedComponentImageFilter.h>
#include <itkFlatStructuringElement.h>
#include <itkImage.h>

#include <algorithm>
#include <array>
#include <deque>

namespace densa::core {

namespace {

using Offset = std::array<int, 3>;

std::vector<Offset> neighbourhood(Connectivity connectivity) {
  std::vector<Offset> out;
  for (int dz = -1; dz <= 1; ++dz) {
    for (int dy = -1; dy <= 1; ++dy) {
      for (int dx = -1; dx <= 1; ++dx) {
        const int order = std::abs(dx) + std::abs(dy) + std::abs(dz);
        if (order == 0) {
          continue;
        }
        if (order == 1 || (order == 2 && connectivity != Connectivity::Faces6) ||
            (order == 3 && connectivity == Connectivity::Full26)) {
          out.push_back({dx, dy, dz});
        }
      }
    }
  }
  return out;
}

LabelMap binarised(const LabelMap& mask) {
  LabelMap out(mask.size(), mask.geometry(), 0);
  std::transform(mask.voxels().begin(),
                 mask.voxels().end(),
                 out.voxels().begin(),
                 [](std::uint8_t v) { return static_cast<std::uint8_t>(v != 0); });
  return out;
}

} // namespace

Components connectedComponents(const LabelMap& mask, Connectivity connectivity) {
  using In = itk::Image<std::uint8_t, 3>;
  using Out = itk::Image<std::uint32_t, 3>;
  auto filter = itk::ConnectedComponentImageFilter<In, Out>::New();
  filter->SetInput(toItk(mask));
  filter->SetFullyConnected(connectivity != Connectivity::Faces6);
  if (connectivity == Connectivity::Edges18) {
    // ITK offers faces (6) or full (26) connectivity only; 18 is done by hand below.
    filter = nullptr;
  }
  Components out;
  out.size = mask.size();
  if (filter) {
    try {
      filter->Update();
    } catch (const itk::ExceptionObject& e) {
      throw InternalError(std::string("connectedComponents: ") + e.GetDescription());
    }
    const auto* p = filter->GetOutput()->GetBufferPointer();
    out.ids.assign(p, p + mask.voxelCount());
    out.count = static_cast<std::uint32_t>(filter->GetObjectCount());
  } else {
    // Breadth-first labelling with the 18-neighbourhood.
    out.ids.assign(mask.voxelCount(), 0);
    const auto offsets = neighbourhood(connectivity);
    const auto [nx, ny, nz] = mask.size();
    std::deque<std::size_t> queue;
    for (std::size_t start = 0; start < mask.voxelCount(); ++start) {
      if (mask.voxels()[start] == 0 || out.ids[start] != 0) {
        continue;
      }
      const std::uint32_t id = ++out.count;
      out.ids[start] = id;
      queue.push_back(start);
      while (!queue.empty()) {
        const std::size_t v = queue.front();
        queue.pop_front();
        const auto x = static_cast<int>(v % nx);
        const auto y = static_cast<int>((v / nx) % ny);
        const auto z = static_cast<int>(v / (nx * ny));
        for (const auto& o : offsets) {
          const int xx = x + o[0];
          const int yy = y + o[1];
          const int zz = z + o[2];
          if (xx < 0 || yy < 0 || zz < 0 || xx >= static_cast<int>(nx) ||
              yy >= static_cast<int>(ny) || zz >= static_cast<int>(nz)) {
            continue;
          }
          const std::size_t w = mask.offset(static_cast<std::size_t>(xx),
                                            static_cast<std::size_t>(yy),
                                            static_cast<std::size_t>(zz));
          if (mask.voxels()[w] != 0 && out.ids[w] == 0) {
            out.ids[w] = id;
            queue.push_back(w);
          }
        }
      }
    }
  }
  out.voxelCounts.assign(out.count + 1, 0);
  for (const auto id : out.ids) {
    ++out.voxelCounts[id];
  }
  out.voxelCounts[0] = 0;
  return out;
}

LabelMap largestComponent(const LabelMap& mask, Connectivity connectivity) {
  const Components c = connectedComponents(mask, connectivity);
  LabelMap out(mask.size(), mask.geometry(), 0);
  if (c.count == 0) {
    return out;
  }
  const auto best = static_cast<std::uint32_t>(
      std::max_element(c.voxelCounts.begin() + 1, c.voxelCounts.end()) - c.voxelCounts.begin());
  for (std::size_t i = 0; i < c.ids.size(); ++i) {
    out.voxels()[i] = c.ids[i] == best ? 1 : 0;
  }
  return out;
}

LabelMap fillHoles(const LabelMap& mask) {
  // Background regions not 6-connected to the border are holes (scipy's binary_fill_holes).
  using Image = itk::Image<std::uint8_t, 3>;
  auto filter = itk::BinaryFillholeImageFilter<Image>::New();
  filter->SetInput(toItk(binarised(mask)));
  filter->SetForegroundValue(1);
  filter->SetFullyConnected(false);
  try {
    filter->Update();
  } catch (const itk::ExceptionObject& e) {
    throw InternalError(std::string("fillHoles: ") + e.GetDescription());
  }
  return fromItk<std::uint8_t>(*filter->GetOutput());
}

LabelMap dilate(const LabelMap& mask, int iterations) {
  // The 6-neighbour cross applied `iterations` times (scipy's binary_dilation, iterations=n).
  using Image = itk::Image<std::uint8_t, 3>;
  using Kernel = itk::FlatStructuringElement<3>;
  Kernel::RadiusType radius;
  radius.Fill(1);
  const Kernel cross = Kernel::Cross(radius);
  LabelMap current = binarised(mask);
  for (int it = 0; it < iterations; ++it) {
    auto filter = itk::BinaryDilateImageFilter<Image, Image, Kernel>::New();
    filter->SetInput(toItk(current));
    filter->SetKernel(cross);
    filter->SetForegroundValue(1);
    filter->SetBackgroundValue(0);
    try {
      filter->Update();
    } catch (const itk::ExceptionObject& e) {
      throw InternalError(std::string("dilate: ") + e.GetDescription());
    }
    current = fromItk<std::uint8_t>(*filter->GetOutput());
  }
  return current;
}

LabelMap equalTo(const LabelMap& labels, std::uint8_t value) {
  LabelMap out(labels.size(), labels.geometry(), 0);
  std::transform(labels.voxels().begin(),
                 labels.voxels().end(),
                 out.voxels().begin(),
                 [&](std::uint8_t v) { return static_cast<std::uint8_t>(v == value); });
  return out;
}

LabelMap atLeast(const LabelMap& labels, std::uint8_t value) {
  LabelMap out(labels.size(), labels.geometry(), 0);
  std::transform(labels.voxels().begin(),
                 labels.voxels().end(),
                 out.voxels().begin(),
                 [&](std::uint8_t v) { return static_cast<std::uint8_t>(v >= value); });
  return out;
}

LabelMap surfaceVoxels(const LabelMap& mask) {
  const auto offsets = neighbourhood(Connectivity::Edges18);
  const auto [nx, ny, nz] = mask.size();
  LabelMap out(mask.size(), mask.geometry(), 0);
  for (std::size_t z = 0; z < nz; ++z) {
    for (std::size_t y = 0; y < ny; ++y) {
      for (std::size_t x = 0; x < nx; ++x) {
        if (mask.at(x, y, z) == 0) {
          continue;
        }
        bool eroded = true; // survives erosion when all 18 neighbours are inside and set
        for (const auto& o : offsets) {
          const auto xx = static_cast<long>(x) + o[0];
          const auto yy = static_cast<long>(y) + o[1];
          const auto zz = static_cast<long>(z) + o[2];
          if (xx < 0 || yy < 0 || zz < 0 || xx >= static_cast<long>(nx) ||
              yy >= static_cast<long>(ny) || zz >= static_cast<long>(nz) ||
              mask.at(static_cast<std::size_t>(xx),
                      static_cast<std::size_t>(yy),
                      static_cast<std::size_t>(zz)) == 0) {
            eroded = false;
            break;
          }
        }
        out.at(x, y, z) = eroded ? 0 : 1;
      }
    }
  }
  return out;
}

} // namespace densa::core
