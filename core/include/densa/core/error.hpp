// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

/// Densa's exception hierarchy. Every layer translates third-party failures into one of these
/// where they occur; the CLI maps them to exit codes (see README "Exit codes").
namespace densa::core {

/// Root of every error Densa throws on purpose.
class Error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// The user's input is at fault: a missing, unreadable, malformed or unsupported file, or
/// inconsistent data (exit code 2). The message names the file and the problem.
class InputError : public Error {
public:
  explicit InputError(const std::string& message)
      : Error(message) {}

  InputError(const std::filesystem::path& file, const std::string& problem)
      : Error(file.string() + ": " + problem)
      , m_file(file) {}

  /// The offending file or folder, when one is known.
  [[nodiscard]] const std::filesystem::path& file() const noexcept { return m_file; }

private:
  std::filesystem::path m_file;
};

/// A precondition of a public function was violated by its caller (a programming error or a
/// bad option value).
class InvalidArgument : public Error {
public:
  using Error::Error;
};

/// Something that should not happen did (exit code 4): a bug, or a failure of a library we
/// cannot attribute to the input.
class InternalError : public Error {
public:
  using Error::Error;
};

/// Work was cancelled on request.
class Cancelled : public Error {
public:
  Cancelled()
      : Error("cancelled") {}
};

} // namespace densa::core
