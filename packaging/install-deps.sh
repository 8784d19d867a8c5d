#!/usr/bin/env bash
# Installs every Debian 12 package Densa needs to build, test and run.
# Idempotent: packages already present are skipped; safe to run repeatedly.
# Usage (as root): packaging/install-deps.sh [--gui] [--quiet]
set -euo pipefail

PKGS=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git file
  # LibTorch (CPU) and a threaded BLAS (without it matmul falls back to reference BLAS, ~30x slower)
  libtorch-dev libopenblas0-pthread libgloo-dev
  # the oneDNN that LibTorch links, called directly for inference convolutions (models/)
  libdnnl-dev
  # imaging
  libinsighttoolkit5-dev libdcmtk-dev dcmtk libgdcm-dev
  # viewer
  libvtk9-dev qt6-base-dev libqt6opengl6-dev libgl-dev xvfb xauth
  # support libraries
  nlohmann-json3-dev libcli11-dev libspdlog-dev libyaml-cpp-dev libsqlite3-dev zlib1g-dev
  libfaiss-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
)

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PKGS[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
