// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/gemini_ops.hpp"

#include "densa/models/error.hpp"

#include <torch/utils.h>

#include <cmath>
#include <string>

namespace densa::models {
namespace {

void checkField(const torch::Tensor& flow, const char* what) {
  if (!flow.defined() || (flow.dim() != 4 && flow.dim() != 5) || flow.size(1) != flow.dim() - 2) {
    throw ModelError(std::string(what) +
                     ": expected a displacement field [N, 2, H, W] or [N, 3, D, H, W]");
  }
  if (!flow.is_floating_point()) {
    throw ModelError(std::string(what) + ": the field must be floating point");
  }
}

// Shape [1, ..., S_axis, ..., 1] (rank 1 + dims) holding 0 ... S-1 along `axis`: broadcasts
// against a field component [N, ...S].
torch::Tensor axisRamp(const torch::Tensor& like, std::int64_t dims, std::int64_t axis) {
  std::vector<std::int64_t> shape(static_cast<std::size_t>(dims + 1), 1);
  const auto size = like.size(axis + 1);
  shape[static_cast<std::size_t>(axis + 1)] = size;
  return torch::arange(size, like.options()).view(shape);
}

// d(component)/d(axis) by central differences, one-sided on the first and last voxel.
torch::Tensor derivative(const torch::Tensor& component, std::int64_t axis) {
  const std::int64_t dim = axis + 1; // component is [N, ...S]
  const auto size = component.size(dim);
  if (size < 2) {
    return torch::zeros_like(component);
  }
  const auto first = component.narrow(dim, 1, 1) - component.narrow(dim, 0, 1);
  const auto last = component.narrow(dim, size - 1, 1) - component.narrow(dim, size - 2, 1);
  if (size == 2) {
    return torch::cat({first, last}, dim);
  }
  const auto inner =
      (component.narrow(dim, 2, size - 2) - component.narrow(dim, 0, size - 2)) * 0.5;
  return torch::cat({first, inner, last}, dim);
}

} // namespace

torch::Tensor warp(const torch::Tensor& image, const torch::Tensor& flow, Interp interp) {
  checkField(flow, "warp");
  const std::int64_t dims = flow.size(1);
  if (!image.defined() || image.dim() != dims + 2 ||
      image.sizes().slice(2) != flow.sizes().slice(2)) {
    throw ModelError("warp: the image must be [N, C, ...] with the field's spatial size");
  }
  if (flow.size(0) != image.size(0) && flow.size(0) != 1) {
    throw ModelError("warp: the field's batch must be 1 or the image's");
  }
  if (!image.is_floating_point() || image.scalar_type() != flow.scalar_type() ||
      image.device() != flow.device()) {
    throw ModelError("warp: image and field must be floating point of one dtype on one device");
  }
  const std::int64_t n = image.size(0);
  const std::int64_t channels = image.size(1);
  const std::vector<std::int64_t> sizes(image.sizes().begin() + 2, image.sizes().end());
  std::int64_t voxels = 1;
  std::vector<std::int64_t> strides(static_cast<std::size_t>(dims));
  for (std::int64_t a = dims - 1; a >= 0; --a) {
    strides[static_cast<std::size_t>(a)] = voxels;
    voxels *= sizes[static_cast<std::size_t>(a)];
  }
  std::vector<std::int64_t> expanded{n};
  expanded.insert(expanded.end(), sizes.begin(), sizes.end());
  // Rows of C values, one per voxel of every batch item: [N * V, C].
  const auto rows =
      image.reshape({n, channels, voxels}).transpose(1, 2).reshape({n * voxels, channels});
  std::vector<std::int64_t> batchShape(static_cast<std::size_t>(dims + 1), 1);
  batchShape[0] = n;
  const auto batchOffset =
      (torch::arange(n, flow.options().dtype(torch::kLong)) * voxels).view(batchShape);

  // Per axis: the sample position q = p + φ(p) ([N, ...S]), then for each of the two neighbours
  // used along the axis its flat offset (clamped into the grid) and its weight (zero outside the
  // grid: zero padding).
  struct Axis {
    torch::Tensor offset[2];
    torch::Tensor weight[2];
  };

  std::vector<Axis> axes(static_cast<std::size_t>(dims));
  const int neighbours = interp == Interp::Nearest ? 1 : 2;
  for (std::int64_t a = 0; a < dims; ++a) {
    auto& axis = axes[static_cast<std::size_t>(a)];
    const auto size = sizes[static_cast<std::size_t>(a)];
    const auto stride = strides[static_cast<std::size_t>(a)];
    const auto component = flow.select(1, a);
    const auto q = (component + axisRamp(component, dims, a)).expand(expanded);
    // Nearest rounds half to even, as grid_sample; linear starts at the floor. Far or non-finite
    // positions are clamped to -2 or S, where both neighbours are outside the grid.
    const auto base =
        interp == Interp::Nearest ? torch::round(q.detach()) : torch::floor(q.detach());
    const auto index = torch::nan_to_num(base, -2.0, -2.0, -2.0)
                           .clamp(-2.0, static_cast<double>(size))
                           .to(torch::kLong);
    const auto fraction =
        interp == Interp::Nearest ? torch::Tensor() : q - base; // differentiable in φ
    for (int k = 0; k < neighbours; ++k) {
      const auto i = k == 0 ? index : index + 1;
      const auto inside = (i >= 0).logical_and(i < size).to(flow.scalar_type());
      axis.offset[k] = i.clamp(0, size - 1) * stride;
      if (interp == Interp::Nearest) {
        axis.weight[k] = inside;
      } else {
        axis.weight[k] = (k == 0 ? 1.0 - fraction : fraction) * inside;
      }
    }
  }
  torch::Tensor out;
  for (std::int64_t corner = 0; corner < (std::int64_t{1} << (dims * (neighbours - 1))); ++corner) {
    torch::Tensor offset = batchOffset;
    torch::Tensor weight;
    for (std::int64_t a = 0; a < dims; ++a) {
      const int k = static_cast<int>((corner >> a) & 1);
      const auto& axis = axes[static_cast<std::size_t>(a)];
      offset = offset + axis.offset[k];
      weight = weight.defined() ? weight * axis.weight[k] : axis.weight[k];
    }
    const auto term = rows.index_select(0, offset.expand(expanded).reshape({-1})) *
                      weight.expand(expanded).reshape({-1, 1});
    out = out.defined() ? out + term : term;
  }
  std::vector<std::int64_t> shape{n, channels};
  shape.insert(shape.end(), sizes.begin(), sizes.end());
  return out.view({n, voxels, channels}).transpose(1, 2).reshape(shape);
}

torch::Tensor integrateVelocity(const torch::Tensor& velocity, int steps) {
  checkField(velocity, "integrateVelocity");
  if (steps < 0) {
    throw ModelError("integrateVelocity: steps must not be negative");
  }
  auto phi = velocity / std::ldexp(1.0, steps);
  for (int i = 0; i < steps; ++i) {
    phi = phi + warp(phi, phi, Interp::Linear);
  }
  return phi;
}

torch::Tensor jacobianDeterminant(const torch::Tensor& flow) {
  checkField(flow, "jacobianDeterminant");
  const std::int64_t dims = flow.size(1);
  // J[i][j] = δij + dφ_i/dx_j.
  std::vector<std::vector<torch::Tensor>> j(static_cast<std::size_t>(dims));
  for (std::int64_t i = 0; i < dims; ++i) {
    const auto component = flow.select(1, i);
    for (std::int64_t k = 0; k < dims; ++k) {
      auto d = derivative(component, k);
      j[static_cast<std::size_t>(i)].push_back(i == k ? d + 1.0 : d);
    }
  }
  if (dims == 2) {
    return j[0][0] * j[1][1] - j[0][1] * j[1][0];
  }
  return j[0][0] * (j[1][1] * j[2][2] - j[1][2] * j[2][1]) -
         j[0][1] * (j[1][0] * j[2][2] - j[1][2] * j[2][0]) +
         j[0][2] * (j[1][0] * j[2][1] - j[1][1] * j[2][0]);
}

JacobianStats jacobianStats(const torch::Tensor& flow) {
  torch::NoGradGuard noGrad;
  const auto det = jacobianDeterminant(flow.detach()).to(torch::kDouble);
  JacobianStats stats;
  stats.voxels = det.numel();
  if (stats.voxels == 0) {
    return stats;
  }
  stats.foldingFraction = (det <= 0.0).to(torch::kDouble).mean().item<double>();
  stats.min = det.min().item<double>();
  stats.max = det.max().item<double>();
  stats.mean = det.mean().item<double>();
  return stats;
}

torch::Tensor affineField(const std::vector<std::int64_t>& spatial,
                          const std::vector<double>& matrix,
                          const torch::TensorOptions& options) {
  const auto dims = static_cast<std::int64_t>(spatial.size());
  if ((dims != 2 && dims != 3) || matrix.size() != static_cast<std::size_t>(dims * dims)) {
    throw ModelError("affineField: 2 or 3 sizes and an n_dim x n_dim matrix expected");
  }
  for (auto s : spatial) {
    if (s <= 0) {
      throw ModelError("affineField: sizes must be positive");
    }
  }
  const auto d = torch::TensorOptions().dtype(torch::kDouble);
  std::vector<torch::Tensor> centred; // p - c per axis, broadcastable [...S]
  for (std::int64_t a = 0; a < dims; ++a) {
    std::vector<std::int64_t> shape(static_cast<std::size_t>(dims), 1);
    shape[static_cast<std::size_t>(a)] = spatial[static_cast<std::size_t>(a)];
    const double c = static_cast<double>(spatial[static_cast<std::size_t>(a)] - 1) / 2.0;
    centred.push_back((torch::arange(spatial[static_cast<std::size_t>(a)], d) - c).view(shape));
  }
  std::vector<torch::Tensor> components;
  for (std::int64_t a = 0; a < dims; ++a) {
    auto value = -centred[static_cast<std::size_t>(a)]; // + c - p, with p - c = centred
    for (std::int64_t b = 0; b < dims; ++b) {
      value = value +
              matrix[static_cast<std::size_t>(a * dims + b)] * centred[static_cast<std::size_t>(b)];
    }
    components.push_back(value.expand(spatial));
  }
  auto target = options.has_dtype() ? options : options.dtype(torch::kFloat);
  return torch::stack(components, 0).unsqueeze(0).to(target);
}

double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11U) * 0x1.0p-53;
}

std::vector<double> randomAffineMatrix(int dims,
                                       std::mt19937_64& rng,
                                       const RandomAffineOptions& options) {
  if (dims != 2 && dims != 3) {
    throw ModelError("randomAffineMatrix: dims must be 2 or 3");
  }
  const auto draw = [&rng](double lo, double hi) {
    return lo + (hi - lo) * uniform01(rng);
  };
  const auto n = static_cast<std::size_t>(dims);
  std::vector<double> angles;
  for (int a = 0; a < (dims == 3 ? 3 : 1); ++a) {
    angles.push_back(draw(-options.maxRotation, options.maxRotation));
  }
  std::vector<double> scales;
  if (options.isotropicScale) {
    scales.assign(n, draw(options.minScale, options.maxScale));
  } else {
    for (std::size_t a = 0; a < n; ++a) {
      scales.push_back(draw(options.minScale, options.maxScale));
    }
  }
  using Matrix = std::vector<double>;
  const auto multiply = [n](const Matrix& a, const Matrix& b) {
    Matrix c(n * n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) {
        for (std::size_t k = 0; k < n; ++k) {
          c[i * n + j] += a[i * n + k] * b[k * n + j];
        }
      }
    }
    return c;
  };
  // Rotation in the plane of axes (u, v), i.e. about the remaining axis.
  const auto rotation = [n](std::size_t u, std::size_t v, double angle) {
    Matrix r(n * n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      r[i * n + i] = 1.0;
    }
    r[u * n + u] = std::cos(angle);
    r[u * n + v] = -std::sin(angle);
    r[v * n + u] = std::sin(angle);
    r[v * n + v] = std::cos(angle);
    return r;
  };
  Matrix a;
  if (dims == 2) {
    a = rotation(0, 1, angles[0]);
  } else {
    // Scale · Rz · Ry · Rx; Rx about axis 0 (plane 1-2), Ry about axis 1, Rz about axis 2.
    a = multiply(rotation(0, 1, angles[2]),
                 multiply(rotation(2, 0, angles[1]), rotation(1, 2, angles[0])));
  }
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      a[i * n + j] *= scales[i];
    }
  }
  return a;
}

torch::Tensor randomAffineField(const std::vector<std::int64_t>& spatial,
                                std::mt19937_64& rng,
                                const RandomAffineOptions& options,
                                const torch::TensorOptions& tensorOptions) {
  const auto matrix = randomAffineMatrix(static_cast<int>(spatial.size()), rng, options);
  return affineField(spatial, matrix, tensorOptions);
}

} // namespace densa::models
