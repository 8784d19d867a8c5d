// SPDX-License-Identifier: Apache-2.0
#pragma once

// Staged H-DenseUNet training (methods-spec §1.9, §1.10): one optimiser step at a time on batches
// the caller builds (sampling and augmentation live in app/), learning-rate schedules, stage-wise
// freezing, exact resume and data-parallel gradient averaging.

#include "densa/models/model_card.hpp"
#include "densa/models/torch/checkpoint.hpp"
#include "densa/models/torch/distributed.hpp"
#include "densa/models/torch/losses.hpp"

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace densa::models {

/// How a Trainer trains. Defaults are the reference's (§1.10): SGD, lr 1e-3, Nesterov momentum
/// 0.9, no weight decay, constant learning rate, weighted cross-entropy (§1.9).
struct TrainerOptions {
  /// "coarse" (CoarseLiverNet), "2d" (the 2D net of an HDenseUNet, or a DenseUNet2d), "3dpart"
  /// (HDenseUNet, 2D branch frozen) or "end2end" (HDenseUNet, reference BN freezing).
  std::string stage;
  std::string optimizer = "sgd";     ///< "sgd" or "adam"
  double learningRate = 1e-3;        ///< peak learning rate
  double momentum = 0.9;             ///< SGD momentum; Adam's beta1
  bool nesterov = true;              ///< SGD only
  double weightDecay = 0.0;          ///< L2 (coupled, as torch.optim)
  std::string schedule = "constant"; ///< "constant", "poly" (power 0.9) or "cosine" (to 0)
  std::int64_t totalSteps = 1000;    ///< length of the poly/cosine decay (warm-up included)
  std::int64_t warmupSteps = 0;      ///< linear warm-up: lr * (s + 1) / warmupSteps
  /// The loss; the hybrid stages set excludeEdgeSlices themselves. For the 2-class coarse net the
  /// 3-class default weights are replaced by (1, 1); other weights must match the class count.
  SegmentationLossOptions loss;
  /// Every BatchNorm in inference mode (running statistics, not updated; affine still trains):
  /// batch-size independent steps, e.g. per-device batches of 1 or data-parallel runs that must
  /// equal one process on the combined batch.
  bool batchNormInference = false;
};

/// Learning rate of step `step` (0-based: the step about to be taken) under the options' schedule.
[[nodiscard]] double scheduledLearningRate(const TrainerOptions& options, std::int64_t step);

/// What one step did.
struct StepResult {
  double loss = 0.0;         ///< the batch loss before the update (mean over ranks)
  double learningRate = 0.0; ///< the learning rate the update used
  std::int64_t step = 0;     ///< steps taken so far, this one included
};

/// Which parameters and buffers Trainer::setInitialWeightsFrom() copied.
struct WeightTransfer {
  std::vector<std::string> loaded;        ///< trainer names filled from the checkpoint
  std::vector<std::string> shapeMismatch; ///< present in both, shapes differ: left as they were
  std::vector<std::string> notFound;      ///< absent from the checkpoint: left as they were
};

/// Trains one network for one stage.
///
/// Inputs and targets per stage (float input, int64 class-index target):
///   "2d", "coarse": [B, sliceContext, H, W] -> target [B, H, W] (the centre slice's labels;
///                   0/1 for "coarse");
///   "3dpart", "end2end": [N, 1, D, H, W] -> target [N, D, H, W]; the loss drops depth slices 0
///                   and D - 1 (§1.9).
/// Freezing (§1.10): "2d" optimises only the 2D net; "3dpart" freezes the 2D branch (freeze2d:
/// no gradients, BN in inference mode); "end2end" trains everything except the BNs of the 2D net,
/// of the 3D dense layers (norm1, norm2) and of the 3D transitions, which run in inference mode
/// with frozen statistics and frozen affine parameters (3D stem/final BN, 3D decoder BNs and the
/// fusion BN train).
/// With a DistributedContext, rank 0's weights and buffers are broadcast at construction,
/// gradients are averaged over the ranks before every update, BN buffers follow rank 0 before
/// every forward pass (as PyTorch DDP), and only rank 0 exports checkpoints.
class Trainer {
public:
  /// Moves the network to `device`. `card` describes it (exportCheckpoint() without a card uses
  /// it). Throws ModelError for an unknown stage/optimiser/schedule or a network that does not fit
  /// the stage.
  Trainer(AnyNet net,
          ModelCard card,
          TrainerOptions options,
          torch::Device device = torch::kCPU,
          std::shared_ptr<DistributedContext> distributed = nullptr);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  Trainer(Trainer&&) noexcept;
  Trainer& operator=(Trainer&&) noexcept;

  /// One optimiser step on one batch (moved to the trainer's device): scheduled learning rate,
  /// forward in training mode, loss, backward, [gradient all-reduce], update.
  StepResult step(const torch::Tensor& input, const torch::Tensor& target);

  /// Softmax class probabilities [.., C, ..] of the stage's network for the stage's input shape,
  /// in eval mode without gradients, on the trainer's device.
  [[nodiscard]] torch::Tensor predictProbabilities(const torch::Tensor& input);

  /// Everything an exact resume needs, in one file written atomically (temporary sibling +
  /// rename): weights and buffers, optimiser state, the step counter (which is the scheduler's
  /// position) and the global CPU (and, on a CUDA device, CUDA) generator state. In a distributed
  /// run each rank holds its own generator streams: save and load one file per rank.
  void saveState(const std::filesystem::path& path) const;
  /// Restores saveState()'s file into a trainer built with the same network, stage and optimiser.
  /// Throws ModelError for a foreign file or a mismatch.
  void loadState(const std::filesystem::path& path);

  /// Initialises the weights from a Densa checkpoint of a previous stage (any registry
  /// architecture): names are matched as they are, and with the "net2d." prefix added or removed
  /// (DenseUNet2d <-> HDenseUNet.net2d). Same-named tensors of another shape are skipped. Throws
  /// ModelError when nothing matched.
  WeightTransfer setInitialWeightsFrom(const std::filesystem::path& checkpoint);

  /// saveCheckpoint() of the current weights with `card` (an empty or "untrained"
  /// provenance.trainingStage becomes the stage). Only rank 0 writes in a distributed run; the
  /// others return at once.
  void exportCheckpoint(const std::filesystem::path& path, ModelCard card) const;
  /// As above with the card given at construction.
  void exportCheckpoint(const std::filesystem::path& path) const;

  [[nodiscard]] const AnyNet& net() const;
  [[nodiscard]] const TrainerOptions& options() const;
  [[nodiscard]] const torch::Device& device() const;
  /// Steps taken so far.
  [[nodiscard]] std::int64_t stepCount() const;
  /// The parameters the optimiser updates, by state-dict name.
  [[nodiscard]] std::vector<std::string> trainableParameterNames() const;
  /// True on rank 0 and in single-process runs.
  [[nodiscard]] bool isMainRank() const;

private:
  struct State;
  std::unique_ptr<State> m_state;
};

} // namespace densa::models
