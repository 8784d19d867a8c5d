// SPDX-License-Identifier: Apache-2.0
#include "adsl_embed.hpp"

#include "densa/models/error.hpp"

#include <torch/torch.h>

#include <sstream>

namespace densa::app {

AdslEmbedding embedBatches(models::AdslNet& net,
                           const torch::Tensor& images,
                           const torch::Device& device,
                           int batch) {
  const bool wasTraining = net->is_training();
  net->eval();
  torch::NoGradGuard noGrad;
  std::vector<torch::Tensor> e, p, a;
  for (std::int64_t i = 0; i < images.size(0); i += batch) {
    const torch::Tensor x =
        evalTransform(images.slice(0, i, std::min<std::int64_t>(images.size(0), i + batch)))
            .to(device);
    const models::AdslOutput o = net->forward(x);
    e.push_back(o.embedding.to(torch::kCPU));
    p.push_back(o.penultimate.to(torch::kCPU));
    a.push_back(o.attention.to(torch::kCPU));
  }
  net->train(wasTraining);
  if (e.empty()) {
    return {};
  }
  return {torch::cat(e).contiguous(), torch::cat(p).contiguous(), torch::cat(a).contiguous()};
}

void setAdslContract(models::ModelCard& card, const AdslPatchSpec& spec) {
  card.preprocessing.huMin = spec.huMin;
  card.preprocessing.huMax = spec.huMax;
  card.preprocessing.intensityOffset = 0;
  std::ostringstream policy;
  policy << "adsl patch " << spec.patchMm << " mm at " << spec.pixels
         << " px; HU window scaled to [0, 1]";
  card.preprocessing.spacingPolicy = policy.str();
}

AdslPatchSpec adslContract(const models::ModelCard& card, const std::filesystem::path& file) {
  std::istringstream in(card.preprocessing.spacingPolicy);
  std::string adsl, patch, mm, at, px;
  AdslPatchSpec spec;
  if (!(in >> adsl >> patch >> spec.patchMm >> mm >> at >> spec.pixels >> px) || adsl != "adsl" ||
      patch != "patch" || spec.patchMm <= 0 || spec.pixels < 1) {
    throw models::ModelError(file.string() +
                             ": not an ADSL checkpoint with a patch contract "
                             "(spacing policy '" +
                             card.preprocessing.spacingPolicy + "')");
  }
  spec.huMin = card.preprocessing.huMin;
  spec.huMax = card.preprocessing.huMax;
  return spec;
}

} // namespace densa::app
