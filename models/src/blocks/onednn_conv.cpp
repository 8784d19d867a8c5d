// SPDX-License-Identifier: Apache-2.0
#include "blocks/onednn_conv.hpp"

#include "densa/models/torch/inference.hpp"

#include <torch/autograd.h>

#include <atomic>

#if DENSA_WITH_ONEDNN
#  include <oneapi/dnnl/dnnl.hpp>

#  include <algorithm>
#  include <cstring>
#  include <functional>
#  include <list>
#  include <memory>
#  include <mutex>
#  include <string>
#  include <string_view>
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
// Bytes of all live weight packs (re-laid-out weights plus the source storages they pin).
std::atomic<std::int64_t> gPackBytes{0};

} // namespace

void setDirectOneDnn(bool on) {
  gDirect = on;
}

void setDirectWinograd(bool on) {
  gWinograd = on;
}

DirectConvolutionStats directConvolutionStats() {
  return {gBuilt.load(), gCalls.load(), gWinogradCalls.load(), gPackBytes.load()};
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

struct Entry {
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

std::shared_ptr<Entry> build(const std::string& weightKey,
                             const torch::Tensor& x,
                             const torch::Tensor& weight,
                             const torch::Tensor& bias,
                             c10::IntArrayRef stride,
                             c10::IntArrayRef padding,
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
  for (std::int64_t d = 0; d < spatial; ++d) {
    const auto k = weight.size(2 + d);
    const auto s = stride[static_cast<std::size_t>(d)];
    const auto dil = dilation[static_cast<std::size_t>(d)];
    const auto p = padding[static_cast<std::size_t>(d)];
    const auto out = (x.size(2 + d) + 2 * p - dil * (k - 1) - 1) / s + 1;
    if (out < 1) {
      return nullptr;
    }
    entry->outSizes.push_back(out);
    strides.push_back(s);
    dilates.push_back(dil - 1);
    pad.push_back(p);
  }
  const auto probe = torch::empty(entry->outSizes, x.options().memory_format(entry->format));
  entry->src = describe(x);
  entry->dst = describe(probe);
  const memory::desc anyWeights(dimsOf(weight.sizes()), dataType(weight), memory::format_tag::any);
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
                                                                pad)
                              : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                                algorithm,
                                                                src,
                                                                anyWeights,
                                                                dst,
                                                                strides,
                                                                dilates,
                                                                pad,
                                                                pad);
        return dnnl::convolution_forward::primitive_desc(desc, attr, engine, true);
      };
  dnnl::convolution_forward::primitive_desc pd;
  const bool wino = gWinograd && x.scalar_type() == torch::kFloat && spatial == 2 &&
                    weight.size(2) == 3 && weight.size(3) == 3 && stride[0] == 1 &&
                    stride[1] == 1 && dilation[0] == 1 && dilation[1] == 1 &&
                    weight.size(0) % 16 == 0 && weight.size(1) % 16 == 0 && winogradPays(x, weight);
  try {
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
    entry->weights = Cache::instance().pack(weightKey, pd.weights_desc(), [&] {
      auto pack = std::make_shared<WeightPack>();
      pack->desc = pd.weights_desc();
      // From plain OIHW / OIDHW: oneDNN's re-layout into the Winograd format takes no other.
      const auto w = weight.contiguous();
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

torch::Tensor directConvolution(const torch::Tensor& input,
                                const torch::Tensor& weight,
                                const torch::Tensor& bias,
                                c10::IntArrayRef stride,
                                c10::IntArrayRef padding,
                                c10::IntArrayRef dilation,
                                std::int64_t groups,
                                bool relu) {
  if (!directOneDnn() || groups != 1 || torch::GradMode::is_enabled() || !input.device().is_cpu() ||
      !supportedType(input) || weight.scalar_type() != input.scalar_type() ||
      (bias.defined() && !supportedType(bias)) || (input.dim() != 4 && input.dim() != 5) ||
      weight.dim() != input.dim() || weight.size(1) != input.size(1) || input.numel() == 0 ||
      input.storage_offset() < 0 || !channelsLast(input)) {
    return {};
  }
  const auto spatial = static_cast<std::size_t>(input.dim() - 2);
  if (stride.size() != spatial || padding.size() != spatial || dilation.size() != spatial ||
      (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0)))) {
    return {};
  }
  for (std::size_t d = 0; d < spatial; ++d) {
    if (stride[d] < 1 || dilation[d] < 1 || padding[d] < 0) {
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
  appendInts(key, dilation);
  const char flags[2] = {static_cast<char>(relu), static_cast<char>(gWinograd.load())};
  appendBytes(key, flags, sizeof flags);

  auto& cache = Cache::instance();
  auto entry = cache.find(key);
  if (!entry) {
    try {
      entry = build(weightKey, x, weight, bias, stride, padding, dilation, relu);
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
  const auto buffer = [&x](const memory::desc& desc) {
    return torch::empty({static_cast<std::int64_t>(desc.get_size()) + 1},
                        x.options().dtype(torch::kByte));
  };
  try {
    const auto scratch = buffer(entry->scratchpad);
    memory scratchpad(entry->scratchpad, engine, scratch.data_ptr());
    memory src(entry->src, engine, const_cast<void*>(x.data_ptr()));
    memory dst(entry->dst, engine, out.data_ptr());
    std::unordered_map<int, memory> args{{DNNL_ARG_WEIGHTS, entry->weights->packed},
                                         {DNNL_ARG_SCRATCHPAD, scratchpad}};
    if (bias.defined()) {
      args.emplace(DNNL_ARG_BIAS, entry->bias);
    }
    if (entry->winograd) {
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
    }
    stream.wait();
  } catch (const dnnl::error&) {
    return {}; // LibTorch computes it
  }
  ++gCalls;
  return out;
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
