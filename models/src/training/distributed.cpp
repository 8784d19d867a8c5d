// SPDX-License-Identifier: Apache-2.0
#include "densa/models/torch/distributed.hpp"

#include "densa/models/error.hpp"

#include <torch/version.h>

// The backends are used only where their headers exist too: LibTorch from a PyTorch 2.x wheel
// defines USE_C10D_GLOO/USE_C10D_NCCL but ships neither gloo/ nor nccl.h.
#if defined(USE_C10D_GLOO) && __has_include(<gloo/algorithm.h>)
#  define DENSA_HAVE_GLOO 1
#  include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#  define DENSA_HAVE_NCCL 1
#  include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if TORCH_VERSION_MAJOR >= 2
#  include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#  include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <map>
#include <string>
#include <utility>

namespace densa::models {
namespace {

// LibTorch 2.x moved the collectives from ProcessGroup to the per-device Backend classes that
// ProcessGroupGloo/ProcessGroupNCCL now derive from; 1.13's derive from ProcessGroup.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = ::c10d::Backend;
#else
using Collectives = ::c10d::ProcessGroup;
#endif

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name); // NOLINT(concurrency-mt-unsafe): read at start-up
  if (value == nullptr || *value == '\0') {
    return std::nullopt;
  }
  return std::string(value);
}

int parseInt(const std::string& text, const char* name, int lowest, int highest) {
  std::size_t used = 0;
  long value = 0;
  try {
    value = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < lowest || value > highest) {
    throw ModelError(std::string("distributed training: ") + name + "='" + text +
                     "' is not an integer in [" + std::to_string(lowest) + ", " +
                     std::to_string(highest) + "]");
  }
  return static_cast<int>(value);
}

bool isLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string describe(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) {
    return c10->what_without_backtrace();
  }
  return e.what();
}

} // namespace

std::optional<DistributedSettings> distributedSettingsFromEnvironment() {
  auto worldSize = environment("WORLD_SIZE");
  auto rank = environment("RANK");
  if (!worldSize) {
    worldSize = environment("SLURM_NTASKS");
    if (!rank) {
      rank = environment("SLURM_PROCID");
    }
  }
  if (!worldSize) {
    return std::nullopt;
  }
  DistributedSettings settings;
  settings.worldSize = parseInt(*worldSize, "WORLD_SIZE", 1, 1 << 20);
  if (!rank) {
    throw ModelError("distributed training: WORLD_SIZE is set but RANK is not");
  }
  settings.rank = parseInt(*rank, "RANK", 0, settings.worldSize - 1);
  const auto address = environment("MASTER_ADDR");
  const auto port = environment("MASTER_PORT");
  if (!address || !port) {
    throw ModelError("distributed training: WORLD_SIZE is set but MASTER_ADDR or MASTER_PORT is "
                     "not");
  }
  settings.masterAddress = *address;
  settings.masterPort = parseInt(*port, "MASTER_PORT", 1, 65535);
  settings.networkInterface = environment("GLOO_SOCKET_IFNAME").value_or("");
  return settings;
}

struct DistributedContext::Impl {
  DistributedSettings settings;
  torch::Device device{torch::kCPU};
  bool nccl = false;
  c10::intrusive_ptr<::c10d::Store> store;
  c10::intrusive_ptr<Collectives> group;

  // Runs `collective` on one flat buffer per dtype (one collective call each instead of one per
  // tensor) and copies the results back.
  template <class Collective>
  void flattened(const std::vector<torch::Tensor>& tensors, Collective collective) {
    torch::NoGradGuard noGrad;
    std::map<int, std::vector<torch::Tensor>> byType;
    for (const auto& t : tensors) {
      if (t.defined() && t.numel() > 0) {
        byType[static_cast<int>(t.scalar_type())].push_back(t);
      }
    }
    for (auto& [type, members] : byType) {
      std::vector<torch::Tensor> flat;
      flat.reserve(members.size());
      for (const auto& t : members) {
        flat.push_back(t.reshape({-1}));
      }
      auto buffer = torch::cat(flat);
      const bool staged = !nccl && buffer.device().is_cuda(); // Gloo here: CPU copies
      if (staged) {
        buffer = buffer.to(torch::kCPU);
      }
      collective(buffer);
      if (staged) {
        buffer = buffer.to(members.front().device());
      }
      std::int64_t offset = 0;
      for (auto& t : members) {
        t.copy_(buffer.narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
  }

  void wait(const c10::intrusive_ptr<::c10d::Work>& work, const char* what) const {
    try {
      work->wait(settings.timeout);
    } catch (const std::exception& e) {
      throw ModelError(std::string("distributed ") + what + " failed on rank " +
                       std::to_string(settings.rank) + ": " + describe(e));
    }
  }
};

DistributedContext::DistributedContext(const DistributedSettings& settings,
                                       const torch::Device& device)
    : m_impl(std::make_unique<Impl>()) {
  if (settings.worldSize < 1 || settings.rank < 0 || settings.rank >= settings.worldSize) {
    throw ModelError("distributed training: rank " + std::to_string(settings.rank) +
                     " is outside a world of size " + std::to_string(settings.worldSize));
  }
  if (settings.masterPort < 1 || settings.masterPort > 65535) {
    throw ModelError("distributed training: invalid master port " +
                     std::to_string(settings.masterPort));
  }
  m_impl->settings = settings;
  m_impl->device = device;
  const std::string where = settings.masterAddress + ":" + std::to_string(settings.masterPort);
  try {
    ::c10d::TCPStoreOptions storeOptions;
    storeOptions.port = static_cast<std::uint16_t>(settings.masterPort);
    storeOptions.isServer = settings.rank == 0;
    storeOptions.numWorkers = static_cast<std::size_t>(settings.worldSize);
    storeOptions.waitWorkers = true;
    storeOptions.timeout = settings.timeout;
    m_impl->store = c10::make_intrusive<::c10d::TCPStore>(settings.masterAddress, storeOptions);
  } catch (const std::exception& e) {
    throw ModelError("distributed training: rank " + std::to_string(settings.rank) +
                     " cannot join the TCP store at " + where + ": " + describe(e));
  }
  try {
#ifdef DENSA_HAVE_NCCL
    if (device.is_cuda()) {
      m_impl->nccl = true;
      m_impl->group = c10::make_intrusive<::c10d::ProcessGroupNCCL>(
          m_impl->store,
          settings.rank,
          settings.worldSize,
          ::c10d::ProcessGroupNCCL::Options::create());
    }
#endif
#ifdef DENSA_HAVE_GLOO
    if (!m_impl->nccl) {
      auto options = ::c10d::ProcessGroupGloo::Options::create(settings.timeout);
      if (!settings.networkInterface.empty()) {
        options->devices.push_back(
            ::c10d::ProcessGroupGloo::createDeviceForInterface(settings.networkInterface));
      } else if (isLoopback(settings.masterAddress)) {
        options->devices.push_back(
            ::c10d::ProcessGroupGloo::createDeviceForHostname(settings.masterAddress));
      } else {
        options->devices.push_back(::c10d::ProcessGroupGloo::createDefaultDevice());
      }
      m_impl->group = c10::make_intrusive<::c10d::ProcessGroupGloo>(
          m_impl->store, settings.rank, settings.worldSize, options);
    }
#endif
    if (!m_impl->group) {
      throw ModelError("this LibTorch has no Gloo (nor NCCL for a CUDA device)");
    }
  } catch (const ModelError& e) {
    throw ModelError("distributed training: " + std::string(e.what()));
  } catch (const std::exception& e) {
    throw ModelError("distributed training: rank " + std::to_string(settings.rank) +
                     " cannot create the " + backend() + " process group via " + where + ": " +
                     describe(e));
  }
}

DistributedContext::~DistributedContext() = default;

std::shared_ptr<DistributedContext> DistributedContext::fromEnvironment(
    const torch::Device& device) {
  const auto settings = distributedSettingsFromEnvironment();
  if (!settings) {
    return nullptr;
  }
  return std::make_shared<DistributedContext>(*settings, device);
}

int DistributedContext::rank() const {
  return m_impl->settings.rank;
}

int DistributedContext::worldSize() const {
  return m_impl->settings.worldSize;
}

bool DistributedContext::supported(const torch::Device& device) {
#ifdef DENSA_HAVE_NCCL
  if (device.is_cuda()) {
    return true;
  }
#endif
#ifdef DENSA_HAVE_GLOO
  (void)device;
  return true;
#else
  (void)device;
  return false;
#endif
}

std::string DistributedContext::backend() const {
  return m_impl->nccl ? "nccl" : "gloo";
}

void DistributedContext::allReduceMean(const std::vector<torch::Tensor>& tensors) {
  for (const auto& t : tensors) {
    if (t.defined() && !t.is_floating_point()) {
      throw ModelError("allReduceMean: tensors must be floating point");
    }
  }
  const double scale = 1.0 / static_cast<double>(worldSize());
  m_impl->flattened(tensors, [this, scale](torch::Tensor& buffer) {
    std::vector<torch::Tensor> io{buffer};
    m_impl->wait(m_impl->group->allreduce(io), "all-reduce");
    buffer.mul_(scale);
  });
}

void DistributedContext::broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  if (root < 0 || root >= worldSize()) {
    throw ModelError("broadcast: root " + std::to_string(root) + " is not a rank");
  }
  m_impl->flattened(tensors, [this, root](torch::Tensor& buffer) {
    std::vector<torch::Tensor> io{buffer};
    ::c10d::BroadcastOptions options;
    options.rootRank = root;
    m_impl->wait(m_impl->group->broadcast(io, options), "broadcast");
  });
}

void DistributedContext::barrier() {
  m_impl->wait(m_impl->group->barrier(), "barrier");
}

} // namespace densa::models
