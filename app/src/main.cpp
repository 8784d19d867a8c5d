// SPDX-License-Identifier: Apache-2.0
#include "densa/app/cli.hpp"

int main(int argc, char** argv) {
  return densa::app::runCli(argc, argv);
}
