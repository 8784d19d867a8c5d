// SPDX-License-Identifier: Apache-2.0
#pragma once

// Data-parallel training (issue 5 item 7): a c10d process group (Gloo on CPU, NCCL for CUDA
// devices when LibTorch was built with it) over a TCP rendezvous. The c10d headers stay in the
// .cpp; this header pulls in only tensor types.

#include <torch/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace densa::models {

/// Where and how a process joins its group (the variables torchrun and Slurm jobs set).
struct DistributedSettings {
  std::string masterAddress = "127.0.0.1"; ///< MASTER_ADDR: host of rank 0's TCP store
  int masterPort = 29500;                  ///< MASTER_PORT
  int rank = 0;                            ///< RANK (or SLURM_PROCID)
  int worldSize = 1;                       ///< WORLD_SIZE (or SLURM_NTASKS)
  std::chrono::milliseconds timeout{std::chrono::minutes(10)}; ///< rendezvous and collectives
  /// Gloo's network interface (GLOO_SOCKET_IFNAME); empty: the loopback device when the master is
  /// a loopback address, else the interface the host name resolves to.
  std::string networkInterface;
};

/// Reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE (RANK and WORLD_SIZE fall back to Slurm's
/// SLURM_PROCID and SLURM_NTASKS) and GLOO_SOCKET_IFNAME. std::nullopt when WORLD_SIZE (and
/// SLURM_NTASKS) is absent: a single-process run. Throws ModelError when the variables are present
/// but incomplete or invalid. (Meant for app/, which owns the environment; models/ itself never
/// calls it.)
[[nodiscard]] std::optional<DistributedSettings> distributedSettingsFromEnvironment();

/// One process's membership of a data-parallel group. Construction blocks until every rank has
/// joined (rank 0 hosts the TCP store). Collectives are synchronous.
class DistributedContext {
public:
  /// Gloo for CPU devices; NCCL for CUDA devices when LibTorch has it (USE_C10D_NCCL), Gloo on
  /// CPU copies otherwise. Throws ModelError when the rendezvous fails.
  DistributedContext(const DistributedSettings& settings, const torch::Device& device);
  ~DistributedContext();
  DistributedContext(const DistributedContext&) = delete;
  DistributedContext& operator=(const DistributedContext&) = delete;

  /// A context from distributedSettingsFromEnvironment(); nullptr for a single-process run.
  [[nodiscard]] static std::shared_ptr<DistributedContext> fromEnvironment(
      const torch::Device& device);

  /// Whether this LibTorch can form a group for `device` (Gloo, or NCCL for CUDA).
  [[nodiscard]] static bool supported(const torch::Device& device);

  [[nodiscard]] int rank() const;
  [[nodiscard]] int worldSize() const;
  /// "gloo" or "nccl".
  [[nodiscard]] std::string backend() const;

  /// In place: every tensor becomes the mean of its values over the ranks (floating point).
  void allReduceMean(const std::vector<torch::Tensor>& tensors);
  /// In place: every tensor takes rank `root`'s values.
  void broadcast(const std::vector<torch::Tensor>& tensors, int root = 0);
  /// Returns when every rank has called it.
  void barrier();

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

} // namespace densa::models
