// SPDX-License-Identifier: Apache-2.0
#include "densa/models/model_info.hpp"

#include "densa/models/error.hpp"

#include <cmath>
#include <string>
#include <utility>
#include <variant>

namespace densa::models {
namespace {

constexpr std::int64_t kSlice = 512;
constexpr std::int64_t kWindow = 8;

// Walks the DenseUNet topology over spatial sizes, accumulating parameters and MACs; mirrors
// DenseUNetImpl's constructor and forward (tests check the parameters against the real module).
class Walker {
public:
  Walker(int dim, std::vector<std::int64_t> sizes)
      : m_dim(dim)
      , m_sizes(std::move(sizes)) {}

  [[nodiscard]] std::int64_t voxels() const {
    std::int64_t n = 1;
    for (auto s : m_sizes) {
      n *= s;
    }
    return n;
  }

  [[nodiscard]] std::int64_t kernel(int k) const {
    std::int64_t v = 1;
    for (int i = 0; i < m_dim; ++i) {
      v *= k;
    }
    return v;
  }

  void conv(std::int64_t in, std::int64_t out, int k, bool bias) {
    const std::int64_t weights = in * out * kernel(k);
    cost.parameters += weights + (bias ? out : 0);
    cost.macs += static_cast<double>(weights) * static_cast<double>(voxels());
  }

  void norm(std::int64_t c) { cost.parameters += 2 * c; }

  // Output size of a strided window op: floor((s + 2p - k) / stride) + 1 on the chosen axes.
  void window(int k, int stride, int pad, bool depthToo) {
    for (std::size_t i = 0; i < m_sizes.size(); ++i) {
      if (m_dim == 3 && i == 0 && !depthToo) {
        continue;
      }
      m_sizes[i] = (m_sizes[i] + 2 * pad - k) / stride + 1;
    }
  }

  void scale(std::int64_t depthScale) {
    for (std::size_t i = 0; i < m_sizes.size(); ++i) {
      m_sizes[i] *= (m_dim == 3 && i == 0) ? depthScale : 2;
    }
  }

  CostEstimate cost;

private:
  int m_dim;
  std::vector<std::int64_t> m_sizes;
};

CostEstimate walk(const DenseUNetOptions& o,
                  int dim,
                  const std::vector<std::int64_t>& spatial,
                  bool withClassifier) {
  validate(o);
  if (dim != 2 && dim != 3) {
    throw ModelError("denseUNetCost: dim must be 2 or 3");
  }
  if (spatial.size() != static_cast<std::size_t>(dim)) {
    throw ModelError("denseUNetCost: one size per spatial axis expected");
  }
  Walker w(dim, spatial);
  const std::int64_t k = o.growthRate;
  const std::int64_t bottleneck = std::int64_t{o.bottleneckFactor} * k;
  w.window(7, 2, 3, true);
  w.conv(o.inChannels, o.initFeatures, 7, false);
  w.norm(o.initFeatures);
  w.window(3, 2, 1, true);
  std::int64_t c = o.initFeatures;
  std::vector<std::int64_t> encoder{c};
  for (std::size_t b = 0; b < 4; ++b) {
    for (int l = 0; l < o.blockLayers[b]; ++l) {
      w.norm(c);
      w.conv(c, bottleneck, 1, false);
      w.norm(bottleneck);
      w.conv(bottleneck, k, 3, false);
      c += k;
    }
    encoder.push_back(c);
    if (b < 3) {
      const auto reduced =
          static_cast<std::int64_t>(std::floor(o.compression * static_cast<double>(c)));
      w.norm(c);
      w.conv(c, reduced, 1, false);
      w.window(2, 2, 0, false);
      c = reduced;
    }
  }
  w.norm(c);
  for (std::size_t i = 0; i < 5; ++i) {
    w.scale((dim == 3 && i < 3) ? 1 : 2);
    if (o.skips && i < 4 && encoder[3 - i] != c) {
      w.conv(encoder[3 - i], c, 1, true);
    }
    const std::int64_t out = o.decoderChannels[i];
    w.conv(c, out, 3, true);
    w.norm(out);
    c = out;
  }
  if (withClassifier) {
    w.conv(c, o.numClasses, 1, true);
  }
  return w.cost;
}

// ---- GEMINI ----------------------------------------------------------------------------------

// Shape walk of GeminiNet: convolutions with bias, GroupNorm affine parameters; max-pool halves
// and up-sampling doubles every axis.
class GeminiWalker {
public:
  GeminiWalker(int dims, std::vector<std::int64_t> sizes)
      : m_dims(dims)
      , m_sizes(std::move(sizes)) {}

  void padTo(std::int64_t multiple) {
    for (auto& s : m_sizes) {
      s = (s + multiple - 1) / multiple * multiple;
    }
  }

  void half() {
    for (auto& s : m_sizes) {
      s /= 2;
    }
  }

  void twice() {
    for (auto& s : m_sizes) {
      s *= 2;
    }
  }

  void conv(std::int64_t in, std::int64_t out, int k, CostEstimate& cost) const {
    std::int64_t kernel = 1;
    std::int64_t voxels = 1;
    for (int i = 0; i < m_dims; ++i) {
      kernel *= k;
    }
    for (auto s : m_sizes) {
      voxels *= s;
    }
    cost.parameters += in * out * kernel + out;
    cost.macs += static_cast<double>(in * out * kernel) * static_cast<double>(voxels);
  }

  static void norm(std::int64_t c, CostEstimate& cost) { cost.parameters += 2 * c; }

private:
  int m_dims;
  std::vector<std::int64_t> m_sizes;
};

void checkSpatial(int dims, const std::vector<std::int64_t>& spatial) {
  if (spatial.size() != static_cast<std::size_t>(dims)) {
    throw ModelError("geminiCost: one size per spatial axis expected");
  }
  for (auto s : spatial) {
    if (s <= 0) {
      throw ModelError("geminiCost: sizes must be positive");
    }
  }
}

CostEstimate geminiBackbone(const GeminiBackboneOptions& o,
                            const std::vector<std::int64_t>& spatial) {
  GeminiWalker w(o.dims, spatial);
  w.padTo(16);
  CostEstimate cost;
  const auto& c = o.channels;
  const auto doubleConv = [&](std::int64_t in, std::int64_t out) {
    w.conv(in, out, 3, cost);
    GeminiWalker::norm(out, cost);
    w.conv(out, out, 3, cost);
    GeminiWalker::norm(out, cost);
  };
  doubleConv(o.inChannels, c[0]);
  for (std::size_t i = 1; i <= 4; ++i) {
    w.half();
    doubleConv(c[i - 1], c[i]);
  }
  std::int64_t below = c[4];
  for (std::size_t i = 5; i <= 8; ++i) {
    w.twice();
    doubleConv(c[8 - i] + below, c[i]); // concat [skip, up]
    below = c[i];
  }
  return cost;
}

CostEstimate geminiHead(const GeminiBackboneOptions& b,
                        const GeminiHeadOptions& h,
                        int classes,
                        const std::vector<std::int64_t>& spatial) {
  CostEstimate cost;
  if (classes <= 0) {
    return cost;
  }
  GeminiWalker w(b.dims, spatial);
  w.conv(b.channels.back(), h.hiddenChannels, 3, cost);
  GeminiWalker::norm(h.hiddenChannels, cost);
  w.conv(h.hiddenChannels, classes, 1, cost);
  return cost;
}

// ---- ADSL ------------------------------------------------------------------------------------

// 2D shape walk of AdslNet: convolutions without bias in the backbone, BN affine parameters.
struct AdslWalker {
  std::int64_t h;
  std::int64_t w;

  void window(int k, int stride, int pad) {
    h = (h + 2 * pad - k) / stride + 1;
    w = (w + 2 * pad - k) / stride + 1;
  }

  void conv(std::int64_t in, std::int64_t out, int k, bool bias, CostEstimate& cost) const {
    const std::int64_t weights = in * out * k * k;
    cost.parameters += weights + (bias ? out : 0);
    cost.macs += static_cast<double>(weights) * static_cast<double>(h * w);
  }

  static void norm(std::int64_t c, CostEstimate& cost) { cost.parameters += 2 * c; }
};

double gflops(const CostEstimate& c, double times = 1.0) {
  return 2.0 * c.macs * times / 1e9;
}

SubnetworkInfo subnet(std::string name, const CostEstimate& c, double perSlice, double perWindow) {
  return {std::move(name), c.parameters, gflops(c, perSlice), gflops(c, perWindow)};
}

PresetInfo describe(std::string_view architecture, std::string_view preset) {
  PresetInfo info;
  info.architecture = std::string(architecture);
  info.preset = std::string(preset);
  const auto options = modelPreset(architecture, preset);
  if (const auto* h = std::get_if<HDenseUNetOptions>(&options)) {
    const auto cost = hDenseUNetCost(*h, kWindow, kSlice, kSlice);
    const double perSlice = 1.0 / static_cast<double>(kWindow);
    info.subnetworks = {subnet("net2d", cost.net2d, perSlice, 1.0),
                        subnet("net3d", cost.net3d, perSlice, 1.0),
                        subnet("fusion", cost.fusion, perSlice, 1.0)};
  } else if (const auto* d2 = std::get_if<DenseUNet2dOptions>(&options)) {
    info.subnetworks = {subnet(
        "net2d", denseUNetCost(*d2, 2, {kSlice, kSlice}), 1.0, static_cast<double>(kWindow))};
  } else if (const auto* d3 = std::get_if<DenseUNet3dOptions>(&options)) {
    info.subnetworks = {subnet("net3d",
                               denseUNetCost(*d3, 3, {kWindow, kSlice, kSlice}),
                               1.0 / static_cast<double>(kWindow),
                               1.0)};
  } else if (std::holds_alternative<GeminiOptions>(options) ||
             std::holds_alternative<GeminiUNetOptions>(options)) {
    const auto* g = std::get_if<GeminiOptions>(&options);
    const auto* u = std::get_if<GeminiUNetOptions>(&options);
    const int dims = g != nullptr ? g->backbone.dims : u->backbone.dims;
    const bool threeD = dims == 3;
    const std::vector<std::int64_t> spatial =
        threeD ? std::vector<std::int64_t>{kWindow, kSlice, kSlice}
               : std::vector<std::int64_t>{kSlice, kSlice};
    const auto cost = g != nullptr ? geminiCost(*g, spatial) : geminiUNetCost(*u, spatial);
    const double perSlice = threeD ? 1.0 / static_cast<double>(kWindow) : 1.0;
    const double perWindow = threeD ? 1.0 : static_cast<double>(kWindow);
    info.subnetworks = {subnet("backbone", cost.backbone, perSlice, perWindow)};
    if (g != nullptr) {
      info.subnetworks.push_back(subnet("deformer", cost.deformer, perSlice, perWindow));
      if (g->restorationHead) {
        info.subnetworks.push_back(subnet("res_head", cost.restorationHead, perSlice, perWindow));
      }
    }
    if (cost.segmentationHead.parameters > 0) {
      info.subnetworks.push_back(subnet("seg_head", cost.segmentationHead, perSlice, perWindow));
    }
  } else if (const auto* a = std::get_if<AdslOptions>(&options)) {
    const auto cost = adslCost(*a, a->inputSize, a->inputSize);
    const auto perWindow = static_cast<double>(kWindow);
    info.subnetworks = {subnet("backbone", cost.backbone, 1.0, perWindow),
                        subnet("attention", cost.attention, 1.0, perWindow),
                        subnet("embedding", cost.embedding, 1.0, perWindow)};
  } else {
    const auto& coarse = std::get<CoarseLiverOptions>(options);
    const std::int64_t s = kSlice / coarse.downsample;
    info.subnetworks = {
        subnet("net", denseUNetCost(coarse.net, 2, {s, s}), 1.0, static_cast<double>(kWindow))};
  }
  for (const auto& s : info.subnetworks) {
    info.parameters += s.parameters;
    info.gflopsPerSlice += s.gflopsPerSlice;
    info.gflopsPerWindow += s.gflopsPerWindow;
  }
  return info;
}

} // namespace

CostEstimate denseUNetCost(const DenseUNetOptions& options,
                           int dim,
                           const std::vector<std::int64_t>& spatial) {
  return walk(options, dim, spatial, true);
}

HDenseUNetCost hDenseUNetCost(const HDenseUNetOptions& options,
                              std::int64_t depth,
                              std::int64_t height,
                              std::int64_t width) {
  validate(options);
  HDenseUNetCost cost;
  cost.net2d = walk(options.net2d, 2, {height, width}, true);
  cost.net2d.macs *= static_cast<double>(depth);
  cost.net3d = walk(options.net3d, 3, {depth, height, width}, false);
  const std::int64_t f = options.net3d.decoderChannels.back();
  const std::int64_t fusionWeights = f * f * 27 + f * options.numClasses;
  cost.fusion.parameters = fusionWeights + f + 2 * f + options.numClasses;
  cost.fusion.macs =
      static_cast<double>(fusionWeights) * static_cast<double>(depth * height * width);
  return cost;
}

GeminiCost geminiCost(const GeminiOptions& options, const std::vector<std::int64_t>& spatial) {
  validate(options);
  checkSpatial(options.backbone.dims, spatial);
  GeminiCost cost;
  cost.backbone = geminiBackbone(options.backbone, spatial);
  GeminiWalker w(options.backbone.dims, spatial);
  w.padTo(4);
  const auto& d = options.deformerChannels;
  const auto oneConv = [&](std::int64_t in, std::int64_t out) {
    w.conv(in, out, 3, cost.deformer);
    GeminiWalker::norm(out, cost.deformer);
  };
  oneConv(2 * std::int64_t{options.backbone.channels.back()}, d[0]);
  w.half();
  oneConv(d[0], d[1]);
  w.half();
  oneConv(d[1], d[2]);
  w.twice();
  oneConv(d[2] + d[1], d[3]); // concat [up, c2]
  w.twice();
  oneConv(d[3] + d[0], d[4]); // concat [up, c1]
  w.conv(d[4], options.backbone.dims, 3, cost.deformer);
  cost.restorationHead =
      geminiHead(options.backbone, options.head, options.restorationHead ? 1 : 0, spatial);
  cost.segmentationHead =
      geminiHead(options.backbone, options.head, options.segmentationClasses, spatial);
  return cost;
}

GeminiCost geminiUNetCost(const GeminiUNetOptions& options,
                          const std::vector<std::int64_t>& spatial) {
  validate(options);
  checkSpatial(options.backbone.dims, spatial);
  GeminiCost cost;
  cost.backbone = geminiBackbone(options.backbone, spatial);
  cost.segmentationHead = geminiHead(options.backbone, options.head, options.numClasses, spatial);
  return cost;
}

AdslCost adslCost(const AdslOptions& options, std::int64_t height, std::int64_t width) {
  validate(options);
  if (height <= 0 || width <= 0) {
    throw ModelError("adslCost: sizes must be positive");
  }
  AdslCost cost;
  AdslWalker walker{height, width};
  auto& b = cost.backbone;
  walker.window(7, 2, 3);
  walker.conv(options.inChannels, options.stemChannels, 7, false, b);
  AdslWalker::norm(options.stemChannels, b);
  walker.window(3, 2, 1); // max-pool
  std::int64_t inplanes = options.stemChannels;
  for (std::size_t layer = 0; layer < options.blocks.size(); ++layer) {
    const std::int64_t width1 = options.widths[layer];
    const std::int64_t out = 4 * width1;
    for (int block = 0; block < options.blocks[layer]; ++block) {
      const int stride = (block == 0 && layer > 0) ? 2 : 1;
      walker.conv(inplanes, width1, 1, false, b); // conv1 at the input size
      AdslWalker::norm(width1, b);
      walker.window(3, stride, 1); // conv2 carries the stride
      walker.conv(width1, width1, 3, false, b);
      AdslWalker::norm(width1, b);
      walker.conv(width1, out, 1, false, b);
      AdslWalker::norm(out, b);
      if (block == 0 && (stride != 1 || inplanes != out)) {
        walker.conv(inplanes, out, 1, false, b); // downsample (1x1, stride), at the output size
        AdslWalker::norm(out, b);
      }
      inplanes = out;
    }
  }
  const std::int64_t a0 = options.attentionChannels[0];
  const std::int64_t a1 = options.attentionChannels[1];
  walker.conv(inplanes, a0, 3, true, cost.attention);
  walker.conv(a0, a1, 3, true, cost.attention);
  walker.conv(a1, 1, 3, true, cost.attention);
  const std::int64_t e = options.embeddingDim;
  cost.embedding.parameters = inplanes * e + e;
  cost.embedding.macs = static_cast<double>(inplanes * e);
  return cost;
}

std::vector<std::string> modelInfoArchitectures() {
  return {std::string(HDenseUNetOptions::kId),
          std::string(DenseUNet2dOptions::kId),
          std::string(DenseUNet3dOptions::kId),
          std::string(CoarseLiverOptions::kId),
          std::string(GeminiOptions::kId),
          std::string(GeminiUNetOptions::kId),
          std::string(AdslOptions::kId)};
}

std::vector<PresetInfo> describeModel(std::string_view architecture,
                                      std::optional<std::string_view> preset) {
  if (architecture == "h-dense-unet") {
    architecture = HDenseUNetOptions::kId;
  }
  bool known = false;
  for (const auto& a : modelInfoArchitectures()) {
    known = known || a == architecture;
  }
  if (!known) {
    throw ModelError("no model architecture named '" + std::string(architecture) +
                     "' (known: hdenseunet, dense-unet-2d, dense-unet-3d, coarse-liver, gemini, "
                     "gemini-unet, adsl)");
  }
  std::vector<PresetInfo> out;
  for (const auto& p : presetNames()) {
    if (!preset || *preset == p) {
      out.push_back(describe(architecture, p));
    }
  }
  if (out.empty()) {
    throw ModelError("unknown preset '" + std::string(*preset) +
                     "' (expected paper, small or tiny)");
  }
  return out;
}

} // namespace densa::models
