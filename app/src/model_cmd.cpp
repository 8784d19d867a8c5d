// SPDX-License-Identifier: Apache-2.0
#include "model_cmd.hpp"

#include "densa/app/exit_codes.hpp"

#include <ostream>

namespace densa::app {

int runModelInfo(const ModelInfoOptions& options, std::ostream& /*out*/, std::ostream& err) {
  err << "densa: error: no model architecture named '" << options.name << "' is available yet\n";
  return kExitUsage;
}

} // namespace densa::app
