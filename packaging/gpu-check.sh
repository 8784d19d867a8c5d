#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds models/ alone (DENSA_MODELS_ONLY) against the CUDA LibTorch of the PyTorch wheel on a GPU
# machine, runs the models tests (unit + gpu labels) and the models benchmarks with --device=cuda.
# Header-only / static test dependencies the GPU image lacks (GoogleTest, Google Benchmark,
# nlohmann-json) travel from this machine in a sysroot, SYSROOT (default .devcarry/usr):
#   packaging/gpu-check.sh --stage-sysroot          # here (Debian 12), once
#   packaging/gpu-check.sh [LOG_DIR]                # there, in the repository root
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sysroot=${SYSROOT:-$root/.devcarry/usr}

if [[ ${1:-} == --stage-sysroot ]]; then
  lib=/usr/lib/x86_64-linux-gnu
  mkdir -p "$sysroot/include" "$sysroot/lib/x86_64-linux-gnu/cmake" "$sysroot/share/cmake"
  cp -r /usr/include/{gtest,gmock,nlohmann,benchmark} "$sysroot/include/"
  cp -a $lib/libgtest*.a $lib/libgmock*.a $lib/libbenchmark.so* $lib/libbenchmark_main.a \
    "$sysroot/lib/x86_64-linux-gnu/"
  cp -r $lib/cmake/GTest $lib/cmake/benchmark "$sysroot/lib/x86_64-linux-gnu/cmake/"
  cp -r /usr/share/cmake/nlohmann_json "$sysroot/share/cmake/"
  du -sh "$sysroot"
  exit 0
fi

logs=${1:-${OUT:-/tmp/densa-gpu-check}}
build=${BUILD_DIR:-/tmp/densa-gpu-build}
mkdir -p "$logs"
status=0
step() { # step NAME TIMEOUT_S COMMAND...: logs to $logs/NAME.log, never stops the script
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$logs/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
  tail -n 25 "$logs/$name.log"
  ((rc == 0)) || status=1
  return $rc
}

nvidia-smi -L || true
torch_prefix=${TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' || true
step configure 300 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDENSA_MODELS_ONLY=ON -DDENSA_WARNINGS_AS_ERRORS=OFF \
  "-DCMAKE_PREFIX_PATH=$torch_prefix;$sysroot" || exit 1
step build 900 cmake --build "$build" -- -k 0 || exit 1
echo "== build warnings: $(grep -c 'warning:' "$logs/build.log")"
grep -m 20 'warning:' "$logs/build.log"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
step tests 600 ctest --test-dir "$build" -L 'unit|gpu' -j 4 --output-on-failure --timeout 300
grep -E "tests passed|Skipped|Failed|\*\*\*" "$logs/tests.log" | tail -n 20
step bench 600 "$build/tests/bench/models_bench" --device=cuda \
  "--benchmark_filter=${BENCH_FILTER:-forward_fast|forward_libtorch|train/}" \
  --benchmark_out="$logs/models_bench.json" --benchmark_out_format=json
exit $status
