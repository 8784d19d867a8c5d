// SPDX-License-Identifier: Apache-2.0
#pragma once

namespace densa::app {

/// Exit codes of the `densa` CLI (documented in README "Exit codes").
enum ExitCode : int {
  kExitOk = 0,         ///< success
  kExitUsage = 1,      ///< bad command line or config
  kExitBadInput = 2,   ///< the input is missing, unreadable, malformed or unsupported
  kExitSomeFailed = 3, ///< a batch finished but some cases failed
  kExitInternal = 4,   ///< a bug or an unexpected library failure
};

} // namespace densa::app
