// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>

namespace densa::io {

/// Versions of the imaging libraries io/ was built against, e.g. "3.6.7".
[[nodiscard]] std::string dcmtkVersion();
[[nodiscard]] std::string itkVersion();
[[nodiscard]] std::string gdcmVersion();

} // namespace densa::io
