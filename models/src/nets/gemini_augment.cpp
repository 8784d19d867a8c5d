// SPDX-License-Identifier: Apache-2.0
// Models-Genesis appearance corruption of GEMINI-MIP (methods-spec §2.7), on CPU float volumes.
#include "densa/models/error.hpp"
#include "densa/models/torch/gemini_ops.hpp"

#include <algorithm>
#include <array>
#include <numeric>
#include <string>

namespace densa::models {
namespace {

// A batch item's geometry: up to three spatial axes (2D volumes get depth 1).
struct Geometry {
  std::int64_t batch = 0;
  std::int64_t channels = 0;
  std::array<std::int64_t, 3> size{1, 1, 1}; // d, h, w
  int dims = 0;

  [[nodiscard]] std::int64_t voxels() const { return size[0] * size[1] * size[2]; }
};

Geometry prepare(const torch::Tensor& image, const char* what, torch::Tensor& out) {
  if (!image.defined() || (image.dim() != 4 && image.dim() != 5)) {
    throw ModelError(std::string(what) + ": expected an image [N, C, H, W] or [N, C, D, H, W]");
  }
  if (image.scalar_type() != torch::kFloat || !image.device().is_cpu()) {
    throw ModelError(std::string(what) + ": expected a float CPU tensor");
  }
  Geometry g;
  g.batch = image.size(0);
  g.channels = image.size(1);
  g.dims = static_cast<int>(image.dim()) - 2;
  for (int a = 0; a < g.dims; ++a) {
    g.size[static_cast<std::size_t>(3 - g.dims + a)] = image.size(2 + a);
  }
  out = image.detach().contiguous().clone();
  return g;
}

// Integer in [lo, hi) (lo when the range is empty).
std::int64_t uniformInt(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {
  if (hi <= lo) {
    return lo;
  }
  return lo + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(hi - lo));
}

// The spatial axes that exist (2D: h, w; 3D: d, h, w), as indices into Geometry::size.
int firstAxis(const Geometry& g) {
  return 3 - g.dims;
}

void shuffleItem(float* item,
                 const float* source,
                 const Geometry& g,
                 std::mt19937_64& rng,
                 const AppearanceCorruptionOptions& o) {
  std::array<std::int64_t, 3> block{1, 1, 1};
  for (int a = firstAxis(g); a < 3; ++a) {
    block[static_cast<std::size_t>(a)] =
        g.size[static_cast<std::size_t>(a)] / std::max(1, o.shuffleBlockDivisor);
    if (block[static_cast<std::size_t>(a)] == 0) {
      return; // the reference's S // 20 block is empty: nothing to shuffle
    }
  }
  const std::int64_t blockVoxels = block[0] * block[1] * block[2];
  std::vector<std::int64_t> permutation(static_cast<std::size_t>(blockVoxels));
  std::iota(permutation.begin(), permutation.end(), 0);
  for (std::int64_t i = blockVoxels - 1; i > 0; --i) { // Fisher-Yates
    std::swap(permutation[static_cast<std::size_t>(i)],
              permutation[static_cast<std::size_t>(uniformInt(rng, 0, i + 1))]);
  }
  const std::int64_t hw = g.size[1] * g.size[2];
  std::vector<std::int64_t> offsets; // voxel offsets of a block, row-major
  offsets.reserve(static_cast<std::size_t>(blockVoxels));
  for (std::int64_t z = 0; z < block[0]; ++z) {
    for (std::int64_t y = 0; y < block[1]; ++y) {
      for (std::int64_t x = 0; x < block[2]; ++x) {
        offsets.push_back(z * hw + y * g.size[2] + x);
      }
    }
  }
  std::vector<float> values(static_cast<std::size_t>(blockVoxels));
  for (int b = 0; b < o.shuffleBlocks; ++b) {
    std::array<std::int64_t, 3> start{0, 0, 0};
    for (int a = firstAxis(g); a < 3; ++a) {
      const auto i = static_cast<std::size_t>(a);
      start[i] = uniformInt(rng, 0, std::max<std::int64_t>(1, g.size[i] - block[i]));
    }
    const std::int64_t base = start[0] * hw + start[1] * g.size[2] + start[2];
    for (std::int64_t c = 0; c < g.channels; ++c) {
      const float* in = source + c * g.voxels() + base;
      float* out = item + c * g.voxels() + base;
      for (std::int64_t k = 0; k < blockVoxels; ++k) {
        values[static_cast<std::size_t>(k)] = in[offsets[static_cast<std::size_t>(k)]];
      }
      for (std::int64_t k = 0; k < blockVoxels; ++k) {
        out[offsets[static_cast<std::size_t>(k)]] =
            values[static_cast<std::size_t>(permutation[static_cast<std::size_t>(k)])];
      }
    }
  }
}

void bezierItem(float* item,
                const Geometry& g,
                std::mt19937_64& rng,
                const AppearanceCorruptionOptions& o) {
  const double x1 = uniform01(rng);
  const double y1 = uniform01(rng);
  const double x2 = uniform01(rng);
  const double y2 = uniform01(rng);
  const auto samples = static_cast<std::size_t>(std::max(2, o.bezierSamples));
  std::vector<double> xs(samples);
  std::vector<double> ys(samples);
  for (std::size_t i = 0; i < samples; ++i) {
    const double t = static_cast<double>(i) / static_cast<double>(samples - 1);
    const double s = 1.0 - t;
    // Bernstein weights of (0,0), (x1,y1), (x2,y2), (1,1).
    const double b1 = 3.0 * s * s * t;
    const double b2 = 3.0 * s * t * t;
    const double b3 = t * t * t;
    xs[i] = b1 * x1 + b2 * x2 + b3;
    ys[i] = b1 * y1 + b2 * y2 + b3;
  }
  std::sort(xs.begin(), xs.end());
  std::sort(ys.begin(), ys.end());
  const std::int64_t count = g.channels * g.voxels();
  for (std::int64_t v = 0; v < count; ++v) {
    const double x = item[v];
    double y = 0.0;
    if (!(x > xs.front())) {
      y = ys.front();
    } else if (!(x < xs.back())) {
      y = ys.back();
    } else {
      const auto hi =
          static_cast<std::size_t>(std::upper_bound(xs.begin(), xs.end(), x) - xs.begin());
      const std::size_t lo = hi - 1;
      const double span = xs[hi] - xs[lo];
      y = span > 0.0 ? ys[lo] + (ys[hi] - ys[lo]) * (x - xs[lo]) / span : ys[lo];
    }
    item[v] = static_cast<float>(y);
  }
}

void inPaintItem(float* item,
                 const Geometry& g,
                 std::mt19937_64& rng,
                 const AppearanceCorruptionOptions& o) {
  const std::int64_t hw = g.size[1] * g.size[2];
  for (int left = o.inPaintingMaxCuboids; left > 0 && uniform01(rng) < o.inPaintingContinue;
       --left) {
    std::array<std::int64_t, 3> side{1, 1, 1};
    std::array<std::int64_t, 3> start{0, 0, 0};
    for (int a = firstAxis(g); a < 3; ++a) {
      const auto i = static_cast<std::size_t>(a);
      const std::int64_t s = g.size[i];
      side[i] = std::clamp<std::int64_t>(uniformInt(rng, s / 10, s / 5), 1, s);
    }
    for (int a = firstAxis(g); a < 3; ++a) {
      const auto i = static_cast<std::size_t>(a);
      const std::int64_t room = g.size[i] - side[i];
      start[i] = room - 2 * o.inPaintingMargin > 0
                     ? uniformInt(rng, o.inPaintingMargin, room - o.inPaintingMargin)
                     : uniformInt(rng, 0, room + 1);
    }
    for (std::int64_t z = 0; z < side[0]; ++z) {
      for (std::int64_t y = 0; y < side[1]; ++y) {
        for (std::int64_t x = 0; x < side[2]; ++x) {
          const auto noise = static_cast<float>(uniform01(rng));
          const std::int64_t offset =
              (start[0] + z) * hw + (start[1] + y) * g.size[2] + (start[2] + x);
          for (std::int64_t c = 0; c < g.channels; ++c) {
            item[c * g.voxels() + offset] = noise; // one noise volume for every channel
          }
        }
      }
    }
  }
}

} // namespace

torch::Tensor localPixelShuffle(const torch::Tensor& image,
                                std::mt19937_64& rng,
                                double probability,
                                const AppearanceCorruptionOptions& options) {
  torch::Tensor out;
  const auto g = prepare(image, "localPixelShuffle", out);
  const auto source = out.clone(); // blocks are read from the input, not from earlier writes
  const std::int64_t itemSize = g.channels * g.voxels();
  for (std::int64_t n = 0; n < g.batch; ++n) {
    if (uniform01(rng) >= probability) {
      continue;
    }
    shuffleItem(out.data_ptr<float>() + n * itemSize,
                source.data_ptr<float>() + n * itemSize,
                g,
                rng,
                options);
  }
  return out;
}

torch::Tensor bezierIntensityMap(const torch::Tensor& image,
                                 std::mt19937_64& rng,
                                 double probability,
                                 const AppearanceCorruptionOptions& options) {
  torch::Tensor out;
  const auto g = prepare(image, "bezierIntensityMap", out);
  const std::int64_t itemSize = g.channels * g.voxels();
  for (std::int64_t n = 0; n < g.batch; ++n) {
    if (uniform01(rng) >= probability) {
      continue;
    }
    bezierItem(out.data_ptr<float>() + n * itemSize, g, rng, options);
  }
  return out;
}

torch::Tensor inPaint(const torch::Tensor& image,
                      std::mt19937_64& rng,
                      const AppearanceCorruptionOptions& options) {
  torch::Tensor out;
  const auto g = prepare(image, "inPaint", out);
  const std::int64_t itemSize = g.channels * g.voxels();
  for (std::int64_t n = 0; n < g.batch; ++n) {
    inPaintItem(out.data_ptr<float>() + n * itemSize, g, rng, options);
  }
  return out;
}

torch::Tensor corruptAppearance(const torch::Tensor& image,
                                std::mt19937_64& rng,
                                const AppearanceCorruptionOptions& options) {
  auto out = localPixelShuffle(image, rng, options.shuffleProbability, options);
  out = bezierIntensityMap(out, rng, options.bezierProbability, options);
  if (options.inPainting) {
    out = inPaint(out, rng, options);
  }
  return out;
}

} // namespace densa::models
