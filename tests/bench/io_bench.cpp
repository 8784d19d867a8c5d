// SPDX-License-Identifier: Apache-2.0
// DICOM I/O throughput: header scan rate (files/s) and series load throughput (MB/s of decoded
// voxels) for densa::io, next to what a user would write with ITK alone (ImageSeriesReader +
// GDCMImageIO + GDCMSeriesFileNames), measured in one run.
//   DENSA_DATA_DIR=../shared/data build/ci/tests/bench/io_bench
#include "densa/io/dicom_scan.hpp"
#include "densa/io/dicom_series.hpp"
#include "densa/io/dicom_writer.hpp"

#include <benchmark/benchmark.h>
#include <itkGDCMImageIO.h>
#include <itkGDCMSeriesFileNames.h>
#include <itkImage.h>
#include <itkImageSeriesReader.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace {

namespace fs = std::filesystem;
using namespace densa;

fs::path dataDir() {
  const char* env = std::getenv("DENSA_DATA_DIR");
  return env ? fs::path(env) : fs::path("../shared/data");
}

fs::path series(const char* name) {
  return dataDir() / "totalseg_abdomen_ct" / name;
}

// A tree of many small single-slice files, written once.
const fs::path& syntheticTree() {
  static const fs::path dir = [] {
    const fs::path d =
        fs::temp_directory_path() / ("densa-bench-tree-" + std::to_string(::getpid()));
    core::Volume<std::int16_t> v({64, 64, 500}, {}, 40);
    for (int s = 0; s < 4; ++s) {
      io::DicomWriteOptions o;
      o.filePrefix = "s" + std::to_string(s);
      (void)io::writeDicomSeries(v, d / ("series" + std::to_string(s)), o);
    }
    return d;
  }();
  return dir;
}

void BM_DensaHeaderScan_2000Files(benchmark::State& state) {
  const auto& dir = syntheticTree();
  std::size_t files = 0;
  for (auto _ : state) {
    const auto scan = io::scanDicom(dir);
    files += scan.filesSeen;
    benchmark::DoNotOptimize(scan.series.size());
  }
  state.counters["files/s"] =
      benchmark::Counter(static_cast<double>(files), benchmark::Counter::kIsRate);
}

void BM_ItkSeriesFileNames_2000Files(benchmark::State& state) {
  const auto& dir = syntheticTree();
  std::size_t files = 0;
  for (auto _ : state) {
    // What a user would write: GDCM's series discovery over each folder.
    for (const auto& sub : fs::directory_iterator(dir)) {
      auto names = itk::GDCMSeriesFileNames::New();
      names->SetUseSeriesDetails(true);
      names->SetDirectory(sub.path().string());
      for (const auto& uid : names->GetSeriesUIDs()) {
        files += names->GetFileNames(uid).size();
      }
    }
  }
  state.counters["files/s"] =
      benchmark::Counter(static_cast<double>(files), benchmark::Counter::kIsRate);
}

void densaLoad(benchmark::State& state, const char* name) {
  const fs::path dir = series(name);
  if (!fs::exists(dir)) {
    state.SkipWithError("test data not found (set DENSA_DATA_DIR)");
    return;
  }
  const auto scan = io::scanDicom(dir);
  std::size_t bytes = 0;
  for (auto _ : state) {
    const auto loaded = io::loadDicomSeries(scan.series.front());
    bytes += std::visit([](const auto& v) { return v.voxelCount() * sizeof(std::int16_t); },
                        loaded.volume);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

void itkLoad(benchmark::State& state, const char* name) {
  const fs::path dir = series(name);
  if (!fs::exists(dir)) {
    state.SkipWithError("test data not found (set DENSA_DATA_DIR)");
    return;
  }
  std::size_t bytes = 0;
  for (auto _ : state) {
    using Image = itk::Image<std::int16_t, 3>;
    auto names = itk::GDCMSeriesFileNames::New();
    names->SetUseSeriesDetails(true);
    names->SetDirectory(dir.string());
    auto reader = itk::ImageSeriesReader<Image>::New();
    reader->SetImageIO(itk::GDCMImageIO::New());
    reader->SetFileNames(names->GetFileNames(names->GetSeriesUIDs().front()));
    reader->Update();
    bytes += reader->GetOutput()->GetBufferedRegion().GetNumberOfPixels() * sizeof(std::int16_t);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

void BM_DensaLoad_Uncompressed(benchmark::State& s) {
  densaLoad(s, "dicom_uncompressed");
}

void BM_ItkLoad_Uncompressed(benchmark::State& s) {
  itkLoad(s, "dicom_uncompressed");
}

void BM_DensaLoad_Jpeg2000(benchmark::State& s) {
  densaLoad(s, "dicom_j2k");
}

void BM_ItkLoad_Jpeg2000(benchmark::State& s) {
  itkLoad(s, "dicom_j2k");
}

BENCHMARK(BM_DensaHeaderScan_2000Files)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ItkSeriesFileNames_2000Files)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DensaLoad_Uncompressed)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ItkLoad_Uncompressed)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DensaLoad_Jpeg2000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ItkLoad_Jpeg2000)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  std::error_code ec;
  fs::remove_all(fs::temp_directory_path() / ("densa-bench-tree-" + std::to_string(::getpid())),
                 ec);
  return 0;
}
