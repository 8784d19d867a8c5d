// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <stdexcept>
#include <string>

namespace densa::models {

/// A model, checkpoint or tensor-shape problem. models/ builds without core/, so it has its own
/// root; app/ maps it to the exit code of an input error (bad checkpoint) or internal error.
class ModelError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

} // namespace densa::models
