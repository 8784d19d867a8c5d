// SPDX-License-Identifier: Apache-2.0
#pragma once

namespace densa::app {

/// Runs the `densa` command line; returns the process exit code (see exit_codes.hpp). Never throws.
int runCli(int argc, char** argv);

} // namespace densa::app
