// SPDX-License-Identifier: Apache-2.0
#include "blocks/onednn_conv.hpp"

#include "densa/models/torch/inference.hpp"

#include <torch/autograd.h>

#include <algorithm>
#include <atomic>

#if DENSA_WITH_ONEDNN
#  include <ATen/Parallel.h>
#  include <oneapi/dnnl/dnnl.hpp>

#  include <algorithm>
#  include <cstdint>
#  include <cstring>
#  if defined(__x86_64__)
#    include <xmmintrin.h>
#  endif
#  include <functional>
#  include <limits>
#  include <list>
#  include <map>
#  include <memory>
#  include <mutex>
#  include <string>
#  include <string_view>
#  include <tuple>
#  include <unordered_map>
#  include <vector>
#endif

namespace densa::models::detail {
namespace {

std::atomic<bool> gWinograd{true};
std::atomic<bool> gDirect{true};
std::atomic<std::int64_t> gBuilt{0};
std::atomic<std::int64_t> gCalls{0};
std::atomic<std::int64_t> gWinogradCalls{0};
std::atomic<std::int64_t> gDepthWinogradCalls{0};
std::atomic<std::int64_t> gDepthFoldCalls{0};
std::atomic<std::int64_t> gDepthBandBytes{std::int64_t{32} << 20};
// Bytes of all live weight packs (re-laid-out weights plus the source storages they pin).
std::atomic<std::int64_t> gPackBytes{0};

} // namespace

void setDirectOneDnn(bool on) {
  gDirect = on;
}

void setDirectWinograd(bool on) {
  gWinograd = on;
}

void setDepthWinogradBandBytes(std::int64_t bytes) {
  gDepthBandBytes = std::max<std::int64_t>(1, bytes);
}

DirectConvolutionStats directConvolutionStats() {
  return {gBuilt.load(),
          gCalls.load(),
          gWinogradCalls.load(),
          gPackBytes.load(),
          gDepthWinogradCalls.load(),
          gDepthFoldCalls.load()};
}

#if !DENSA_WITH_ONEDNN

bool directOneDnn() {
  return false;
}

torch::Tensor directConvolution(const torch::Tensor& /*x*/,
                                const torch::Tensor& /*weight*/,
                                const torch::Tensor& /*bias*/,
                                c10::IntArrayRef /*stride*/,
                                c10::IntArrayRef /*padding*/,
                                c10::IntArrayRef /*dilation*/,
                                std::int64_t /*groups*/,
                                bool /*relu*/) {
  return {};
}

torch::Tensor directConvolutionPadded(const torch::Tensor& /*x*/,
                                      const torch::Tensor& /*weight*/,
                                      const torch::Tensor& /*bias*/,
                                      c10::IntArrayRef /*stride*/,
                                      c10::IntArrayRef /*paddingBegin*/,
                                      c10::IntArrayRef /*paddingEnd*/,
                                      bool /*relu*/) {
  return {};
}

torch::Tensor directPooling(const torch::Tensor& /*x*/,
                            Pooling /*kind*/,
                            c10::IntArrayRef /*kernel*/,
                            c10::IntArrayRef /*stride*/,
                            c10::IntArrayRef /*padding*/) {
  return {};
}

#else

namespace {

using dnnl::memory;

memory::dims dimsOf(c10::IntArrayRef a) {
  return {a.begin(), a.end()};
}

memory::data_type dataType(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 ? memory::data_type::bf16 : memory::data_type::f32;
}

// Float, or bfloat16 (`densa segment --precision bf16`: AMX / AVX512-BF16 kernels).
bool supportedType(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kBFloat16;
}

memory::desc describe(const torch::Tensor& t) {
  return {dimsOf(t.sizes()), dataType(t), dimsOf(t.strides())};
}

bool channelsLast(const torch::Tensor& x) {
  if (x.size(1) > 1 && x.stride(1) != 1) {
    return false;
  }
  // Pixels ordered as in a channels-last tensor (W fastest, then H, then D, then N), channels
  // contiguous within a pixel; the pixel stride may exceed C (a channel slice of a wider buffer).
  std::int64_t expected = x.size(1);
  for (std::int64_t d = x.dim() - 1; d >= 2; --d) {
    if (x.size(d) > 1 && x.stride(d) < expected) {
      return false;
    }
    expected = x.stride(d) * x.size(d);
  }
  return x.size(0) == 1 || x.stride(0) >= expected;
}

// A weight in one kernel layout, shared by the entries of every input shape that wants it.
struct WeightPack {
  memory::desc desc;
  memory packed;
  std::vector<c10::Storage> held; // the source weight cannot be freed and its address reused
  std::int64_t bytes = 0;

  WeightPack() = default;
  WeightPack(const WeightPack&) = delete;
  WeightPack& operator=(const WeightPack&) = delete;

  ~WeightPack() { gPackBytes -= bytes; }
};

// Depth-split Winograd for wide 3x3x3 layers (stride 1, padding 1): out[d] = sum over kd of
// conv2d(in[d + kd - 1], W[kd]). The three kernel planes are stacked as 3*O output channels of one
// 2D Winograd convolution over a sample's D slices; a summing pass then adds, for every output
// slice, its three planes (from slices d - 1, d, d + 1), the bias and the ReLU, writing
// channels-last. Rows are done in bands (with a one-row halo) so that the stacked planes, 3x the
// output, stay near 32 MiB (measured: no slower than 128 MiB bands, less memory).
struct DepthBand {
  std::int64_t row0 = 0;   // first output row
  std::int64_t rows = 0;   // output rows
  std::int64_t inRow0 = 0; // first input row read (the halo row above, inside the image)
  std::size_t kernel = 0;  // index into DepthWinograd::kernels
};

struct DepthKernel {
  dnnl::convolution_forward conv;
  memory::desc slices;     // the band's input rows of one sample: a batch of D NHWC images
  memory::desc blockedSrc; // Winograd's layouts
  memory::desc blockedDst; // [D, 3*O, rows, W] nChw16c
  dnnl::reorder toBlocked;
  memory::desc scratchpad;
  memory::desc toBlockedScratchpad;
  std::shared_ptr<WeightPack> weights; // Winograd weight layouts depend on the problem
};

struct DepthWinograd {
  std::vector<DepthBand> bands;
  std::vector<DepthKernel> kernels;
  torch::Tensor bias; // float, O values (zeros without a bias)
  bool relu = false;
};

struct Entry {
  std::shared_ptr<DepthWinograd> depthWinograd; // set: this path instead of `conv`
  bool usable = true; // false: oneDNN has no optimised kernel; LibTorch computes it
  dnnl::convolution_forward conv;
  memory::desc src; // user layout (compact channels-last)
  memory::desc dst; // user layout (compact channels-last)
  std::shared_ptr<WeightPack> weights;
  memory bias;
  torch::Tensor biasHeld;         // holds the bias storage too
  std::vector<c10::Storage> held; // failure markers: the weight's address cannot be reused
  std::vector<std::int64_t> outSizes;
  torch::MemoryFormat format = torch::MemoryFormat::ChannelsLast;
  memory::desc scratchpad;
  // Winograd: the kernel works on blocked tensors, so the input and the output are re-laid-out.
  bool winograd = false;
  memory::desc blockedSrc;
  memory::desc blockedDst;
  dnnl::reorder toBlocked;
  dnnl::reorder fromBlocked;
  memory::desc toBlockedScratchpad;
  memory::desc fromBlockedScratchpad;
  // Depth folded into channels (see depthFoldPays): `src` describes the folded input, `dst` the
  // output as [N * od, O, oh, ow] channels-last (the same bytes as the 5D channels-last output).
  bool depthFold = false;
  std::int64_t foldKernel = 0;
  std::int64_t foldStride = 0;
  std::int64_t foldPad = 0;
};

struct PoolEntry {
  bool usable = true; // false: no optimised kernel; LibTorch computes it
  dnnl::pooling_forward pool;
  memory::desc src;
  memory::desc dst;
  memory::desc scratchpad;
  std::vector<std::int64_t> outSizes;
  torch::MemoryFormat format = torch::MemoryFormat::ChannelsLast;
};

dnnl::stream& threadStream(dnnl::engine& engine) {
  thread_local dnnl::stream stream(engine);
  return stream;
}

class Cache {
public:
  static Cache& instance() {
    static auto* cache = new Cache(); // never destroyed: no oneDNN teardown order at exit
    return *cache;
  }

  dnnl::engine& engine() { return m_engine; }

  std::shared_ptr<Entry> find(const std::string& key) {
    const std::lock_guard<std::mutex> lock(m_mutex);
    const auto it = m_index.find(key);
    if (it == m_index.end()) {
      return nullptr;
    }
    m_lru.splice(m_lru.begin(), m_lru, it->second);
    return it->second->second;
  }

  // Poolings hold no weights: a plain map (a few shapes per net).
  std::shared_ptr<PoolEntry> findPool(const std::string& key) {
    const std::lock_guard<std::mutex> lock(m_mutex);
    const auto it = m_pools.find(key);
    return it == m_pools.end() ? nullptr : it->second;
  }

  void insertPool(const std::string& key, std::shared_ptr<PoolEntry> entry) {
    const std::lock_guard<std::mutex> lock(m_mutex);
    if (m_pools.size() > 4096) {
      m_pools.clear();
    }
    m_pools.emplace(key, std::move(entry));
  }

  void insert(const std::string& key, std::shared_ptr<Entry> entry) {
    const std::lock_guard<std::mutex> lock(m_mutex);
    if (m_index.contains(key)) {
      return;
    }
    m_lru.emplace_front(key, std::move(entry));
    m_index[key] = m_lru.begin();
    // Bounded in count and in weight bytes (the paper net's weights take ~0.5 GB, re-laid-out
    // plus pinned sources): the least recently used go first, e.g. those of a released model.
    constexpr std::size_t kCapacity = 4096;
    constexpr std::int64_t kBytes = std::int64_t{2} << 30;
    while (m_lru.size() > 1 && (m_lru.size() > kCapacity || gPackBytes > kBytes)) {
      m_index.erase(m_lru.back().first);
      m_lru.pop_back();
    }
  }

  // The pack of `weightKey` in layout `desc`, or a new one from `make`: one per weight and kernel
  // layout, whatever the input shapes that use it.
  std::shared_ptr<WeightPack> pack(const std::string& weightKey,
                                   const memory::desc& desc,
                                   const std::function<std::shared_ptr<WeightPack>()>& make) {
    {
      const std::lock_guard<std::mutex> lock(m_mutex);
      auto& packs = m_packs[weightKey];
      std::erase_if(packs, [](const auto& p) { return p.expired(); });
      for (const auto& weak : packs) {
        if (auto p = weak.lock(); p && p->desc == desc) {
          return p;
        }
      }
    }
    auto p = make();
    const std::lock_guard<std::mutex> lock(m_mutex);
    m_packs[weightKey].push_back(p);
    if (m_packs.size() > 4 * 4096) {
      std::erase_if(m_packs, [](const auto& item) {
        return std::all_of(
            item.second.begin(), item.second.end(), [](const auto& w) { return w.expired(); });
      });
    }
    return p;
  }

private:
  Cache()
      : m_engine(dnnl::engine::kind::cpu, 0) {}

  dnnl::engine m_engine;
  std::mutex m_mutex;
  std::list<std::pair<std::string, std::shared_ptr<Entry>>> m_lru;
  std::unordered_map<std::string,
                     std::list<std::pair<std::string, std::shared_ptr<Entry>>>::iterator>
      m_index;
  std::unordered_map<std::string, std::shared_ptr<PoolEntry>> m_pools;
  std::unordered_map<std::string, std::vector<std::weak_ptr<WeightPack>>> m_packs;
};

void appendBytes(std::string& key, const void* p, std::size_t n) {
  key.append(static_cast<const char*>(p), n);
}

void appendInts(std::string& key, c10::IntArrayRef values) {
  const auto n = static_cast<std::int64_t>(values.size());
  appendBytes(key, &n, sizeof n);
  appendBytes(key, values.data(), values.size() * sizeof(std::int64_t));
}

void appendTensor(std::string& key, const torch::Tensor& t) {
  const void* p = t.defined() ? t.data_ptr() : nullptr;
  // Inference tensors (c10::InferenceMode) have no version counter, and cannot change.
  const std::int64_t version = !t.defined() ? -1 : t.is_inference() ? 0 : t._version();
  appendBytes(key, static_cast<const void*>(&p), sizeof p);
  appendBytes(key, &version, sizeof version);
  if (t.defined()) {
    appendInts(key, t.sizes());
    appendInts(key, t.strides());
  }
}

// Winograd pays off where the multiply saving outweighs re-laying-out input and output: wide 3x3
// layers (measured on this net's shapes: 192->48 channels at 56x56 2.3x faster in the kernel,
// 2208->768 at 14x14 1.6x; 32->32 channels or 7x7 maps not faster).
bool winogradPays(const torch::Tensor& x, const torch::Tensor& weight) {
  const auto ic = static_cast<double>(weight.size(1));
  const auto oc = static_cast<double>(weight.size(0));
  const auto pixels = static_cast<double>(x.size(2) * x.size(3));
  const double reuse = ic * oc / (ic + oc); // multiplies saved per value re-laid-out
  return (reuse >= 128.0 && pixels >= 14.0 * 14.0) || (reuse >= 32.0 && pixels >= 48.0 * 48.0);
}

// A weight re-laid-out into `desc` from `source` (plain OIHW / OIDHW: oneDNN's re-layout into
// the Winograd format takes no other), pinning `weight`'s storage; one per weight and layout.
std::shared_ptr<WeightPack> packWeights(const std::string& weightKey,
                                        const memory::desc& desc,
                                        const torch::Tensor& weight,
                                        const std::function<torch::Tensor()>& source) {
  return Cache::instance().pack(weightKey, desc, [&] {
    auto& engine = Cache::instance().engine();
    auto pack = std::make_shared<WeightPack>();
    pack->desc = desc;
    const auto w = source().contiguous();
    memory user(describe(w), engine, w.data_ptr());
    pack->packed = memory(pack->desc, engine);
    dnnl::stream stream(engine);
    dnnl::reorder(user, pack->packed).execute(stream, user, pack->packed);
    stream.wait();
    pack->held.push_back(weight.storage());
    pack->bytes = static_cast<std::int64_t>(pack->desc.get_size() + weight.storage().nbytes());
    gPackBytes += pack->bytes;
    return pack;
  });
}

// Wide 3x3x3 layers on large slices: at least 32 input and output channels in blocks of 16, 4 or
// more slices of 64x64 or more. Measured here against oneDNN's direct 3D kernel (channels-last,
// with the re-layout and the summing pass): 32->32 channels on 8x512x512 about 1.25x faster,
// 64->64 on 4x128x128 1.5x.
bool depthWinogradPays(const torch::Tensor& x,
                       const torch::Tensor& weight,
                       c10::IntArrayRef stride,
                       c10::IntArrayRef padding,
                       c10::IntArrayRef dilation) {
  if (!gWinograd || x.scalar_type() != torch::kFloat || x.dim() != 5) {
    return false;
  }
  for (std::size_t d = 0; d < 3; ++d) {
    if (weight.size(static_cast<std::int64_t>(2 + d)) != 3 || stride[d] != 1 || padding[d] != 1 ||
        dilation[d] != 1) {
      return false;
    }
  }
  const auto oc = weight.size(0);
  const auto ic = weight.size(1);
  return oc % 16 == 0 && ic % 16 == 0 && oc >= 32 && ic >= 32 && x.size(2) >= 4 &&
         x.size(3) >= 16 && x.size(4) >= 16 && x.size(3) * x.size(4) >= 64 * 64;
}

// The depth-split Winograd plan for x (one sample's shape), or nullptr where oneDNN offers no
// such kernel.
std::shared_ptr<DepthWinograd> buildDepthWinograd(const std::string& weightKey,
                                                  const torch::Tensor& x,
                                                  const torch::Tensor& weight,
                                                  const torch::Tensor& bias,
                                                  bool relu) {
  auto& engine = Cache::instance().engine();
  const auto oc = weight.size(0);
  const auto ic = weight.size(1);
  const auto depth = x.size(2);
  const auto height = x.size(3);
  const auto width = x.size(4);
  // Bands of a multiple of 4 rows (Winograd's output tile), stacked planes near gDepthBandBytes
  // each.
  const std::int64_t kBandBytes = gDepthBandBytes;
  const std::int64_t rowBytes = depth * 3 * oc * width * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t maxRows = std::max<std::int64_t>(4, kBandBytes / rowBytes / 4 * 4);
  const std::int64_t count = (height + maxRows - 1) / maxRows;
  const std::int64_t bandRows = ((height + count - 1) / count + 3) / 4 * 4;
  auto plan = std::make_shared<DepthWinograd>();
  std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t>, std::size_t> kinds;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user); // per call, thread-safe
  const memory::dims weightDims{3 * oc, ic, 3, 3};
  for (std::int64_t row0 = 0; row0 < height; row0 += bandRows) {
    const std::int64_t rows = std::min(bandRows, height - row0);
    const std::int64_t padTop = row0 == 0 ? 1 : 0;
    const std::int64_t padBottom = row0 + rows == height ? 1 : 0;
    const std::int64_t inRow0 = row0 - (1 - padTop);
    const std::int64_t inRows = row0 + rows + (1 - padBottom) - inRow0;
    const auto kind = std::make_tuple(padTop, padBottom, rows);
    if (!kinds.contains(kind)) {
      DepthKernel k;
      const memory::dims srcDims{depth, ic, inRows, width};
      const memory::dims dstDims{depth, 3 * oc, rows, width};
      const dnnl::convolution_forward::desc desc(
          dnnl::prop_kind::forward_inference,
          dnnl::algorithm::convolution_winograd,
          memory::desc(srcDims, memory::data_type::f32, memory::format_tag::any),
          memory::desc(weightDims, memory::data_type::f32, memory::format_tag::any),
          memory::desc(dstDims, memory::data_type::f32, memory::format_tag::any),
          {1, 1},
          {padTop, 1},
          {padBottom, 1});
      const dnnl::convolution_forward::primitive_desc pd(desc, attr, engine, true);
      // The summing pass reads 16-channel blocks.
      if (!pd || pd.dst_desc() !=
                     memory::desc(dstDims, memory::data_type::f32, memory::format_tag::nChw16c)) {
        return nullptr;
      }
      k.conv = dnnl::convolution_forward(pd);
      k.scratchpad = pd.scratchpad_desc();
      k.blockedSrc = pd.src_desc();
      k.blockedDst = pd.dst_desc();
      k.slices = memory::desc(
          srcDims, memory::data_type::f32, memory::dims{height * width * ic, 1, width * ic, ic});
      dnnl::primitive_attr reorderAttr;
      reorderAttr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const dnnl::reorder::primitive_desc to(engine, k.slices, engine, k.blockedSrc, reorderAttr);
      k.toBlocked = dnnl::reorder(to);
      k.toBlockedScratchpad = to.scratchpad_desc();
      // [O, C, kd, kh, kw] -> [kd * O + o, C, kh, kw]
      k.weights = packWeights(weightKey, pd.weights_desc(), weight, [&] {
        return weight.permute({2, 0, 1, 3, 4}).reshape(weightDims);
      });
      kinds.emplace(kind, plan->kernels.size());
      plan->kernels.push_back(std::move(k));
    }
    plan->bands.push_back({row0, rows, inRow0, kinds.at(kind)});
  }
  plan->bias = bias.defined() ? bias.to(torch::kFloat).contiguous()
                              : torch::zeros({oc}, x.options().dtype(torch::kFloat));
  plan->relu = relu;
  return plan;
}

// 4 floats (GCC/Clang vector extension): one SSE register, the x86-64 baseline.
using Quad = float __attribute__((vector_size(16)));

Quad loadQuad(const float* p) {
  Quad v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// One band of output rows (`out` at the band's first row of slice 0, slices `outSlice` floats
// apart, compact channels-last rows of O channels) from its stacked planes y ([D, 3*O, rows, W],
// nChw16c): out[d] = y[d - 1] (kd = 0) + y[d] (kd = 1) + y[d + 1] (kd = 2) + bias, then ReLU.
void sumDepthPlanes(const float* y,
                    float* out,
                    std::int64_t outSlice,
                    const float* bias,
                    bool relu,
                    std::int64_t depth,
                    std::int64_t rows,
                    std::int64_t width,
                    std::int64_t outChannels) {
  constexpr std::int64_t kBlock = 16;
  const std::int64_t blocks = outChannels / kBlock;
  const std::int64_t plane = rows * width * kBlock; // one 16-channel block of one slice
  const std::int64_t slice = 3 * blocks * plane;
  const float lowest = relu ? 0.0F : -std::numeric_limits<float>::infinity();
  const Quad floor = {lowest, lowest, lowest, lowest}; // NaN stays NaN, as relu
  const Quad zero = {0.0F, 0.0F, 0.0F, 0.0F};
  // Pixel by pixel, each 16-channel block (one 64-byte line) written whole: with non-temporal
  // stores where the lines are aligned (the output is read by the next layer, much later), so
  // they are not read first.
  const bool streaming = reinterpret_cast<std::uintptr_t>(out) % 64 == 0 && outSlice % kBlock == 0;
  at::parallel_for(0, depth * rows, 1, [&](std::int64_t begin, std::int64_t end) {
    for (auto item = begin; item < end; ++item) {
      const std::int64_t d = item / rows;
      const std::int64_t row = item % rows;
      const std::int64_t rowOffset = row * width * kBlock;
      // Zero padding in depth: an edge slice lacks one neighbour (read the centre, add nothing).
      const bool hasAbove = d > 0;
      const bool hasBelow = d + 1 < depth;
      float* o = out + d * outSlice + row * width * outChannels;
      const float* centre = y + d * slice + blocks * plane + rowOffset;
      const float* above = hasAbove ? y + (d - 1) * slice + rowOffset : centre;
      const float* below = hasBelow ? y + (d + 1) * slice + 2 * blocks * plane + rowOffset : centre;
      for (std::int64_t w = 0; w < width; ++w) {
        for (std::int64_t cb = 0; cb < blocks; ++cb) {
          const auto at = cb * plane + w * kBlock;
          float* line = o + w * outChannels + cb * kBlock;
          for (std::int64_t q = 0; q < kBlock; q += 4) {
            Quad acc = loadQuad(centre + at + q) + loadQuad(bias + cb * kBlock + q);
            acc += hasAbove ? loadQuad(above + at + q) : zero;
            acc += hasBelow ? loadQuad(below + at + q) : zero;
            acc = acc < floor ? floor : acc;
#  if defined(__x86_64__)
            if (streaming) {
              _mm_stream_ps(line + q, acc);
              continue;
            }
#  endif
            std::memcpy(line + q, &acc, sizeof acc);
          }
        }
      }
    }
#  if defined(__x86_64__)
    _mm_sfence(); // the streamed lines are visible before the task ends
#  endif
  });
}

// Narrow-input 3D layers in bfloat16 (the 3D stem: 4 channels, 7x7x7 kernel, stride 2): oneDNN's
// 3D kernels use AMX poorly with so few channels. Folding the kernel's depth into channels makes
// them one 2D convolution over the output slices, each reading its kd input slices side by side
// as kd*C channels (zeros outside the volume). Measured here, 4->32 channels, 7x7x7 stride 2 on
// 8x512x512, bfloat16: 13-34 ms for the 2D convolution against 43-139 ms for the 3D one (this
// VM's AMX speed varies 3x between runs), plus 25-38 ms for the fold; in float the 2D
// convolution is no faster, so float keeps the 3D kernel.
bool depthFoldPays(const torch::Tensor& x, const torch::Tensor& weight, c10::IntArrayRef dilation) {
  return x.dim() == 5 && x.scalar_type() == torch::kBFloat16 && weight.size(2) > 1 &&
         dilation[0] == 1 && weight.size(1) < 16 && weight.size(1) * weight.size(2) <= 64;
}

// [O, C, kd, kh, kw] -> [O, kd * C, kh, kw]: folded channel k * C + c is input slice k's channel c.
torch::Tensor foldWeight(const torch::Tensor& weight) {
  return weight.permute({0, 2, 1, 3, 4})
      .reshape({weight.size(0), weight.size(2) * weight.size(1), weight.size(3), weight.size(4)})
      .contiguous();
}

// x (compact channels-last 3D) into `dst`, [N * od, H, W, kd * C]: output slice o of sample n
// gets input slices o * stride - pad + k, k < kd, side by side in each pixel.
void foldDepth(const torch::Tensor& x,
               std::int64_t kernel,
               std::int64_t stride,
               std::int64_t pad,
               std::int64_t outDepth,
               void* dst) {
  const std::int64_t depth = x.size(2);
  const std::int64_t height = x.size(3);
  const std::int64_t width = x.size(4);
  const auto pixelIn = static_cast<std::size_t>(x.size(1) * x.element_size());
  const auto pixelOut = static_cast<std::size_t>(kernel) * pixelIn;
  const auto* in = static_cast<const char*>(x.data_ptr());
  auto* out = static_cast<char*>(dst);
  at::parallel_for(0, x.size(0) * outDepth * height, 1, [&](std::int64_t begin, std::int64_t end) {
    for (auto item = begin; item < end; ++item) {
      const std::int64_t row = item % height;
      const std::int64_t o = (item / height) % outDepth;
      const std::int64_t n = item / (height * outDepth);
      char* outRow = out + static_cast<std::size_t>(item * width) * pixelOut;
      for (std::int64_t k = 0; k < kernel; ++k) {
        const std::int64_t z = o * stride - pad + k;
        char* to = outRow + static_cast<std::size_t>(k) * pixelIn;
        if (z < 0 || z >= depth) {
          for (std::int64_t w = 0; w < width; ++w) {
            std::memset(to + static_cast<std::size_t>(w) * pixelOut, 0, pixelIn);
          }
          continue;
        }
        const char* from =
            in + static_cast<std::size_t>(((n * depth + z) * height + row) * width) * pixelIn;
        for (std::int64_t w = 0; w < width; ++w) {
          std::memcpy(to + static_cast<std::size_t>(w) * pixelOut,
                      from + static_cast<std::size_t>(w) * pixelIn,
                      pixelIn);
        }
      }
    }
  });
}

std::shared_ptr<Entry> build(const std::string& weightKey,
                             const torch::Tensor& x,
                             const torch::Tensor& weight,
                             const torch::Tensor& bias,
                             c10::IntArrayRef stride,
                             c10::IntArrayRef padding,
                             c10::IntArrayRef paddingEnd,
                             c10::IntArrayRef dilation,
                             bool relu) {
  auto& engine = Cache::instance().engine();
  const auto spatial = x.dim() - 2;
  auto entry = std::make_shared<Entry>();
  entry->format =
      spatial == 2 ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::ChannelsLast3d;
  entry->outSizes = {x.size(0), weight.size(0)};
  memory::dims strides;
  memory::dims dilates; // oneDNN counts dilation from 0
  memory::dims pad;
  memory::dims padEnd;
  bool symmetric = true;
  for (std::int64_t d = 0; d < spatial; ++d) {
    const auto k = weight.size(2 + d);
    const auto s = stride[static_cast<std::size_t>(d)];
    const auto dil = dilation[static_cast<std::size_t>(d)];
    const auto p = padding[static_cast<std::size_t>(d)];
    const auto pe = paddingEnd[static_cast<std::size_t>(d)];
    const auto out = (x.size(2 + d) + p + pe - dil * (k - 1) - 1) / s + 1;
    if (out < 1) {
      return nullptr;
    }
    entry->outSizes.push_back(out);
    strides.push_back(s);
    dilates.push_back(dil - 1);
    pad.push_back(p);
    padEnd.push_back(pe);
    symmetric = symmetric && p == pe;
  }
  const auto probe = torch::empty(entry->outSizes, x.options().memory_format(entry->format));
  entry->src = describe(x);
  entry->dst = describe(probe);
  memory::desc anyWeights(dimsOf(weight.sizes()), dataType(weight), memory::format_tag::any);
  if (spatial == 3 && depthFoldPays(x, weight, dilation)) {
    // One 2D problem over the N * od output slices (depthFoldPays).
    entry->depthFold = true;
    entry->foldKernel = weight.size(2);
    entry->foldStride = stride[0];
    entry->foldPad = padding[0];
    const auto slices = x.size(0) * entry->outSizes[2];
    const auto folded = weight.size(1) * weight.size(2);
    entry->src =
        memory::desc({slices, folded, x.size(3), x.size(4)}, dataType(x), memory::format_tag::nhwc);
    entry->dst = memory::desc({slices, weight.size(0), entry->outSizes[3], entry->outSizes[4]},
                              dataType(x),
                              memory::format_tag::nhwc);
    anyWeights = memory::desc({weight.size(0), folded, weight.size(3), weight.size(4)},
                              dataType(weight),
                              memory::format_tag::any);
    strides.erase(strides.begin());
    dilates.erase(dilates.begin());
    pad.erase(pad.begin());
    padEnd.erase(padEnd.begin());
  }
  const memory::desc biasDesc({weight.size(0)},
                              bias.defined() ? dataType(bias) : memory::data_type::f32,
                              memory::format_tag::a);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user); // per call, thread-safe
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0F, dnnl::algorithm::eltwise_relu, 0.0F, 0.0F);
    attr.set_post_ops(ops);
  }
  const auto makePd =
      [&](dnnl::algorithm algorithm, const memory::desc& src, const memory::desc& dst) {
        const auto desc = bias.defined()
                              ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                                algorithm,
                                                                src,
                                                                anyWeights,
                                                                biasDesc,
                                                                dst,
                                                                strides,
                                                                dilates,
                                                                pad,
                                                                padEnd)
                              : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                                algorithm,
                                                                src,
                                                                anyWeights,
                                                                dst,
                                                                strides,
                                                                dilates,
                                                                pad,
                                                                padEnd);
        return dnnl::convolution_forward::primitive_desc(desc, attr, engine, true);
      };
  dnnl::convolution_forward::primitive_desc pd;
  const bool wino = gWinograd && x.scalar_type() == torch::kFloat && spatial == 2 &&
                    weight.size(2) == 3 && weight.size(3) == 3 && stride[0] == 1 &&
                    stride[1] == 1 && dilation[0] == 1 && dilation[1] == 1 &&
                    weight.size(0) % 16 == 0 && weight.size(1) % 16 == 0 && symmetric &&
                    winogradPays(x, weight);
  try {
    if (symmetric && depthWinogradPays(x, weight, stride, padding, dilation)) {
      entry->depthWinograd = buildDepthWinograd(weightKey, x, weight, bias, relu);
      if (entry->depthWinograd) {
        ++gBuilt;
        return entry;
      }
    }
    if (wino) {
      const memory::desc anySrc(entry->src.dims(), memory::data_type::f32, memory::format_tag::any);
      const memory::desc anyDst(entry->dst.dims(), memory::data_type::f32, memory::format_tag::any);
      pd = makePd(dnnl::algorithm::convolution_winograd, anySrc, anyDst);
      if (pd) {
        entry->winograd = true;
        entry->blockedSrc = pd.src_desc();
        entry->blockedDst = pd.dst_desc();
        dnnl::primitive_attr reorderAttr;
        reorderAttr.set_scratchpad_mode(dnnl::scratchpad_mode::user); // per call, thread-safe
        const dnnl::reorder::primitive_desc to(
            engine, entry->src, engine, entry->blockedSrc, reorderAttr);
        const dnnl::reorder::primitive_desc from(
            engine, entry->blockedDst, engine, entry->dst, reorderAttr);
        entry->toBlocked = dnnl::reorder(to);
        entry->fromBlocked = dnnl::reorder(from);
        entry->toBlockedScratchpad = to.scratchpad_desc();
        entry->fromBlockedScratchpad = from.scratchpad_desc();
      }
    }
    if (!entry->winograd) {
      pd = makePd(dnnl::algorithm::convolution_direct, entry->src, entry->dst);
    }
    // Only optimised kernels: oneDNN's reference ones are far slower than LibTorch's own path.
    if (!pd || std::string_view(pd.impl_info_str()).starts_with("ref")) {
      return nullptr;
    }
    entry->conv = dnnl::convolution_forward(pd);
    entry->scratchpad = pd.scratchpad_desc();
    // The weights, once per kernel layout, shared by every input shape that wants that layout.
    entry->weights = packWeights(weightKey, pd.weights_desc(), weight, [&] {
      return entry->depthFold ? foldWeight(weight) : weight;
    });
    if (bias.defined()) {
      entry->biasHeld = bias.contiguous();
      entry->bias = memory(biasDesc, engine, entry->biasHeld.data_ptr());
    }
  } catch (const dnnl::error&) {
    return nullptr;
  }
  ++gBuilt;
  return entry;
}

} // namespace

bool directOneDnn() {
  return gDirect && inferenceFastPaths();
}

namespace {

torch::Tensor convolveDirect(const torch::Tensor& input,
                             const torch::Tensor& weight,
                             const torch::Tensor& bias,
                             c10::IntArrayRef stride,
                             c10::IntArrayRef padding,
                             c10::IntArrayRef paddingEnd,
                             c10::IntArrayRef dilation,
                             bool relu) {
  if (!directOneDnn() || torch::GradMode::is_enabled() || !input.device().is_cpu() ||
      !supportedType(input) || weight.scalar_type() != input.scalar_type() ||
      (bias.defined() && !supportedType(bias)) || (input.dim() != 4 && input.dim() != 5) ||
      weight.dim() != input.dim() || weight.size(1) != input.size(1) || input.numel() == 0 ||
      input.storage_offset() < 0 || !channelsLast(input)) {
    return {};
  }
  const auto spatial = static_cast<std::size_t>(input.dim() - 2);
  if (stride.size() != spatial || padding.size() != spatial || paddingEnd.size() != spatial ||
      dilation.size() != spatial ||
      (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0)))) {
    return {};
  }
  for (std::size_t d = 0; d < spatial; ++d) {
    if (stride[d] < 1 || dilation[d] < 1 || padding[d] < 0 || paddingEnd[d] < 0) {
      return {};
    }
  }
  // oneDNN's optimised kernels take compact channels-last tensors only (a channel slice of a
  // wider buffer goes to its reference kernel): compact it, as LibTorch would.
  const auto x = input.contiguous(input.dim() == 4 ? torch::MemoryFormat::ChannelsLast
                                                   : torch::MemoryFormat::ChannelsLast3d);
  std::string weightKey;
  appendTensor(weightKey, weight);
  std::string key;
  key.reserve(256);
  key.push_back(static_cast<char>(x.scalar_type()));
  key += weightKey;
  appendTensor(key, bias);
  appendInts(key, x.sizes());
  appendInts(key, x.strides());
  appendInts(key, stride);
  appendInts(key, padding);
  appendInts(key, paddingEnd);
  appendInts(key, dilation);
  const char flags[2] = {static_cast<char>(relu), static_cast<char>(gWinograd.load())};
  appendBytes(key, flags, sizeof flags);

  auto& cache = Cache::instance();
  auto entry = cache.find(key);
  if (!entry) {
    try {
      entry = build(weightKey, x, weight, bias, stride, padding, paddingEnd, dilation, relu);
    } catch (const dnnl::error&) {
      entry = nullptr;
    }
    if (!entry) {
      entry = std::make_shared<Entry>();
      entry->usable = false;
      entry->held.push_back(weight.storage());
    }
    cache.insert(key, entry);
  }
  if (!entry->usable) {
    return {};
  }
  auto out = torch::empty(entry->outSizes, x.options().memory_format(entry->format));
  auto& engine = cache.engine();
  auto& stream = threadStream(engine);
  // Scratchpads per call (user mode): the primitives are shared by every thread.
  const auto bytes = [&x](std::size_t n) {
    return torch::empty({static_cast<std::int64_t>(n) + 1}, x.options().dtype(torch::kByte));
  };
  const auto buffer = [&bytes](const memory::desc& desc) {
    return bytes(desc.get_size());
  };
  try {
    const auto scratch = buffer(entry->scratchpad);
    memory scratchpad(entry->scratchpad, engine, scratch.data_ptr());
    torch::Tensor folded; // the depth-folded input (Entry::depthFold)
    if (entry->depthFold) {
      folded = buffer(entry->src);
      foldDepth(
          x, entry->foldKernel, entry->foldStride, entry->foldPad, out.size(2), folded.data_ptr());
    }
    memory src(
        entry->src, engine, entry->depthFold ? folded.data_ptr() : const_cast<void*>(x.data_ptr()));
    memory dst(entry->dst, engine, out.data_ptr());
    std::unordered_map<int, memory> args{{DNNL_ARG_SCRATCHPAD, scratchpad}};
    if (entry->weights) { // the depth-split plan holds its own
      args.emplace(DNNL_ARG_WEIGHTS, entry->weights->packed);
    }
    if (bias.defined()) {
      args.emplace(DNNL_ARG_BIAS, entry->bias);
    }
    if (const auto& plan = entry->depthWinograd) {
      std::size_t srcBytes = 0;
      std::size_t dstBytes = 0;
      std::size_t scratchBytes = 0;
      std::size_t reorderBytes = 0;
      for (const auto& k : plan->kernels) {
        srcBytes = std::max(srcBytes, k.blockedSrc.get_size());
        dstBytes = std::max(dstBytes, k.blockedDst.get_size());
        scratchBytes = std::max(scratchBytes, k.scratchpad.get_size());
        reorderBytes = std::max(reorderBytes, k.toBlockedScratchpad.get_size());
      }
      const auto blockedIn = bytes(srcBytes);
      const auto blockedOut = bytes(dstBytes);
      const auto convScratch = bytes(scratchBytes);
      const auto reorderScratch = bytes(reorderBytes);
      const auto* in = x.data_ptr<float>();
      auto* result = out.data_ptr<float>();
      const std::int64_t width = x.size(4);
      const std::int64_t inChannels = x.size(1);
      const std::int64_t outChannels = out.size(1);
      for (std::int64_t n = 0; n < x.size(0); ++n) {
        for (const auto& band : plan->bands) {
          const auto& k = plan->kernels[band.kernel];
          memory slices(
              k.slices,
              engine,
              const_cast<float*>(in + n * x.stride(0) + band.inRow0 * width * inChannels));
          memory bSrc(k.blockedSrc, engine, blockedIn.data_ptr());
          memory bDst(k.blockedDst, engine, blockedOut.data_ptr());
          k.toBlocked.execute(stream,
                              {{DNNL_ARG_FROM, slices},
                               {DNNL_ARG_TO, bSrc},
                               {DNNL_ARG_SCRATCHPAD,
                                memory(k.toBlockedScratchpad, engine, reorderScratch.data_ptr())}});
          k.conv.execute(
              stream,
              {{DNNL_ARG_SRC, bSrc},
               {DNNL_ARG_WEIGHTS, k.weights->packed},
               {DNNL_ARG_DST, bDst},
               {DNNL_ARG_SCRATCHPAD, memory(k.scratchpad, engine, convScratch.data_ptr())}});
          stream.wait();
          sumDepthPlanes(static_cast<const float*>(blockedOut.data_ptr()),
                         result + n * out.stride(0) + band.row0 * width * outChannels,
                         out.stride(2),
                         plan->bias.data_ptr<float>(),
                         plan->relu,
                         out.size(2),
                         band.rows,
                         width,
                         outChannels);
        }
      }
      ++gDepthWinogradCalls;
    } else if (entry->winograd) {
      const auto blockedIn = buffer(entry->blockedSrc);
      const auto blockedOut = buffer(entry->blockedDst);
      const auto toScratch = buffer(entry->toBlockedScratchpad);
      const auto fromScratch = buffer(entry->fromBlockedScratchpad);
      memory bSrc(entry->blockedSrc, engine, blockedIn.data_ptr());
      memory bDst(entry->blockedDst, engine, blockedOut.data_ptr());
      entry->toBlocked.execute(
          stream,
          {{DNNL_ARG_FROM, src},
           {DNNL_ARG_TO, bSrc},
           {DNNL_ARG_SCRATCHPAD,
            memory(entry->toBlockedScratchpad, engine, toScratch.data_ptr())}});
      args.emplace(DNNL_ARG_SRC, bSrc);
      args.emplace(DNNL_ARG_DST, bDst);
      entry->conv.execute(stream, args);
      entry->fromBlocked.execute(
          stream,
          {{DNNL_ARG_FROM, bDst},
           {DNNL_ARG_TO, dst},
           {DNNL_ARG_SCRATCHPAD,
            memory(entry->fromBlockedScratchpad, engine, fromScratch.data_ptr())}});
      ++gWinogradCalls;
    } else {
      args.emplace(DNNL_ARG_SRC, src);
      args.emplace(DNNL_ARG_DST, dst);
      entry->conv.execute(stream, args);
      if (entry->depthFold) {
        ++gDepthFoldCalls;
      }
    }
    stream.wait();
  } catch (const dnnl::error&) {
    return {}; // LibTorch computes it
  }
  ++gCalls;
  return out;
}

} // namespace

torch::Tensor directConvolution(const torch::Tensor& input,
                                const torch::Tensor& weight,
                                const torch::Tensor& bias,
                                c10::IntArrayRef stride,
                                c10::IntArrayRef padding,
                                c10::IntArrayRef dilation,
                                std::int64_t groups,
                                bool relu) {
  if (groups != 1) {
    return {};
  }
  return convolveDirect(input, weight, bias, stride, padding, padding, dilation, relu);
}

torch::Tensor directConvolutionPadded(const torch::Tensor& input,
                                      const torch::Tensor& weight,
                                      const torch::Tensor& bias,
                                      c10::IntArrayRef stride,
                                      c10::IntArrayRef paddingBegin,
                                      c10::IntArrayRef paddingEnd,
                                      bool relu) {
  const std::vector<std::int64_t> dilation(stride.size(), 1);
  return convolveDirect(input, weight, bias, stride, paddingBegin, paddingEnd, dilation, relu);
}

torch::Tensor directPooling(const torch::Tensor& input,
                            Pooling kind,
                            c10::IntArrayRef kernel,
                            c10::IntArrayRef stride,
                            c10::IntArrayRef padding) {
  const auto spatial = input.dim() - 2;
  if (!directOneDnn() || torch::GradMode::is_enabled() || !input.device().is_cpu() ||
      !supportedType(input) || (input.dim() != 4 && input.dim() != 5) || input.numel() == 0 ||
      !channelsLast(input) || static_cast<std::int64_t>(kernel.size()) != spatial ||
      static_cast<std::int64_t>(stride.size()) != spatial ||
      static_cast<std::int64_t>(padding.size()) != spatial) {
    return {};
  }
  bool padded = false;
  for (std::size_t i = 0; i < padding.size(); ++i) {
    if (kernel[i] < 1 || stride[i] < 1 || padding[i] < 0 || padding[i] * 2 > kernel[i]) {
      return {};
    }
    padded = padded || padding[i] != 0;
  }
  if (kind == Pooling::Average && padded) {
    return {}; // LibTorch's default counts the padding; not needed by these nets
  }
  const auto x = input.contiguous(input.dim() == 4 ? torch::MemoryFormat::ChannelsLast
                                                   : torch::MemoryFormat::ChannelsLast3d);
  std::string key;
  key.reserve(160);
  key.push_back(kind == Pooling::Max ? 'M' : 'A');
  key.push_back(static_cast<char>(x.scalar_type()));
  appendInts(key, x.sizes());
  appendInts(key, x.strides());
  appendInts(key, kernel);
  appendInts(key, stride);
  appendInts(key, padding);
  auto& cache = Cache::instance();
  auto& engine = cache.engine();
  auto entry = cache.findPool(key);
  if (!entry) {
    entry = std::make_shared<PoolEntry>();
    entry->format =
        spatial == 2 ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::ChannelsLast3d;
    entry->outSizes = {x.size(0), x.size(1)};
    for (std::int64_t d = 0; d < spatial; ++d) {
      const auto i = static_cast<std::size_t>(d);
      const auto out = (x.size(2 + d) + 2 * padding[i] - kernel[i]) / stride[i] + 1;
      if (out < 1) {
        return {};
      }
      entry->outSizes.push_back(out);
    }
    const auto probe = torch::empty(entry->outSizes, x.options().memory_format(entry->format));
    try {
      entry->src = describe(x);
      entry->dst = describe(probe);
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_inference,
                                             kind == Pooling::Max
                                                 ? dnnl::algorithm::pooling_max
                                                 : dnnl::algorithm::pooling_avg_exclude_padding,
                                             entry->src,
                                             entry->dst,
                                             dimsOf(stride),
                                             dimsOf(kernel),
                                             dimsOf(padding),
                                             dimsOf(padding));
      const dnnl::pooling_forward::primitive_desc pd(desc, attr, engine, true);
      if (!pd || std::string_view(pd.impl_info_str()).starts_with("ref")) {
        entry->usable = false; // remembered: not tried again for this shape
      } else {
        entry->pool = dnnl::pooling_forward(pd);
        entry->scratchpad = pd.scratchpad_desc();
      }
    } catch (const dnnl::error&) {
      entry->usable = false;
    }
    cache.insertPool(key, entry);
  }
  if (!entry->usable) {
    return {};
  }
  auto out = torch::empty(entry->outSizes, x.options().memory_format(entry->format));
  auto& stream = threadStream(engine);
  const auto scratch = torch::empty({static_cast<std::int64_t>(entry->scratchpad.get_size()) + 1},
                                    x.options().dtype(torch::kByte));
  try {
    memory src(entry->src, engine, const_cast<void*>(x.data_ptr()));
    memory dst(entry->dst, engine, out.data_ptr());
    memory scratchpad(entry->scratchpad, engine, scratch.data_ptr());
    entry->pool.execute(
        stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
    stream.wait();
  } catch (const dnnl::error&) {
    return {}; // LibTorch computes it
  }
  return out;
}

#endif

} // namespace densa::models::detail
