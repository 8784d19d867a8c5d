// SPDX-License-Identifier: Apache-2.0
#pragma once

namespace densa::gui {

/// `densa-viewer [options] [INPUT]`: the viewer's entry point (see --help). With --screenshot it
/// opens INPUT, optionally segments it, renders the window into a PNG and exits (for tests, docs
/// and QA). Returns the process exit code.
int runViewer(int argc, char** argv);

} // namespace densa::gui
