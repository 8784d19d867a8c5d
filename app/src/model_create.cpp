// SPDX-License-Identifier: Apache-2.0
#include "densa/app/exit_codes.hpp"
#include "densa/build_info.hpp"
#include "densa/models/model_card.hpp"
#include "densa/models/torch/checkpoint.hpp"

#include "model_cmd.hpp"

#include <torch/utils.h>

#include <ostream>

namespace densa::app {

int runModelCreate(const ModelCreateOptions& options, std::ostream& out, std::ostream& /*err*/) {
  models::ModelCard card = models::makeModelCard(options.name, options.preset);
  card.provenance.densaVersion = build::kVersion;
  card.provenance.gitSha = build::kGitHash;
  card.provenance.trainingStage = "untrained";
  card.provenance.notes = "randomly initialised with seed " + std::to_string(options.seed);
  if (options.name == "gemini" || options.name == "gemini-unet") {
    // GEMINI models work on an isotropic grid with the HU window scaled to [0, 1]: the defaults
    // of densa pretrain gemini, so that densa segment / register can run the file.
    card.preprocessing.huMin = -200;
    card.preprocessing.huMax = 300;
    card.preprocessing.intensityOffset = 0;
    card.preprocessing.spacingPolicy = "isotropic 2 mm; HU window scaled to [0, 1]";
  }
  torch::manual_seed(options.seed);
  const models::AnyNet net = models::makeNet(card.options);
  models::saveCheckpoint(net, card, options.output);
  out << "wrote " << options.output.string() << ": untrained " << options.name << " ("
      << options.preset << "), seed " << options.seed << "\n";
  return kExitOk;
}

} // namespace densa::app
