// SPDX-License-Identifier: Apache-2.0
#include "densa/gui/viewer.hpp"

int main(int argc, char** argv) {
  return densa::gui::runViewer(argc, argv);
}
