// SPDX-License-Identifier: Apache-2.0
#include "densa/io/atomic_file.hpp"

#include "densa/core/error.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

namespace densa::io {

namespace fs = std::filesystem;

namespace {

fs::path makeTempDir(const fs::path& parent, const std::string& stem) {
  static std::atomic<unsigned> counter{0};
  const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  for (int attempt = 0; attempt < 100; ++attempt) {
    const fs::path dir = parent / (".densa-tmp-" + stem + "-" + std::to_string(::getpid()) + "-" +
                                   std::to_string(stamp) + "-" + std::to_string(counter++));
    std::error_code ec;
    if (fs::create_directory(dir, ec)) {
      return dir;
    }
    if (ec && ec != std::errc::file_exists) {
      throw core::InputError(parent, "cannot create a temporary folder: " + ec.message());
    }
  }
  throw core::InputError(parent, "cannot create a temporary folder");
}

} // namespace

void writeAtomically(const fs::path& target, const std::function<void(const fs::path&)>& write) {
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    throw core::InputError(parent, "cannot create output folder: " + ec.message());
  }
  const fs::path tempDir = makeTempDir(parent, target.filename().string());
  const fs::path tempPath = tempDir / target.filename();
  try {
    write(tempPath);
    if (!fs::exists(tempPath)) {
      throw core::InternalError("writeAtomically: writer produced no file for " + target.string());
    }
    // Data files of detached formats first, the file users open last.
    std::vector<fs::path> others;
    for (const auto& entry : fs::directory_iterator(tempDir)) {
      if (entry.path().filename() != target.filename()) {
        others.push_back(entry.path());
      }
    }
    for (const auto& other : others) {
      fs::rename(other, parent / other.filename());
    }
    fs::rename(tempPath, target);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tempDir, ec);
    throw core::InputError(target, std::string("cannot write: ") + e.code().message());
  } catch (...) {
    fs::remove_all(tempDir, ec);
    throw;
  }
  fs::remove_all(tempDir, ec);
}

void writeTextAtomically(const fs::path& target, std::string_view text) {
  writeAtomically(target, [&](const fs::path& temp) {
    std::ofstream out(temp, std::ios::binary);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) {
      throw core::InputError(target, "write failed (disk full?)");
    }
  });
}

} // namespace densa::io
