// SPDX-License-Identifier: Apache-2.0
#pragma once
// `densa train` for architecture "gemini-unet" (private to app/; runTrain dispatches here).

#include "densa/app/train.hpp"

#include <filesystem>
#include <iosfwd>

namespace densa::app {

/// Trains the GEMINI transfer model in `run` (created, config.yaml written): 3D crops on the
/// isotropic grid, the GEMINI-Semi loss (§2.6), Adam; `init_from` a `densa pretrain gemini`
/// checkpoint copies its backbone and preprocessing. Same run folder, metrics, validation,
/// checkpoints, exact resume and data parallelism as H-DenseUNet training.
int runTrainGeminiUNet(const TrainCommand& command,
                       TrainConfig config,
                       const std::filesystem::path& run,
                       std::ostream& out,
                       std::ostream& err);

} // namespace densa::app
