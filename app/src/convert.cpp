// SPDX-License-Identifier: Apache-2.0
#include "densa/app/commands.hpp"
#include "densa/app/exit_codes.hpp"
#include "densa/core/error.hpp"
#include "densa/io/image_file.hpp"
#include "densa/io/load.hpp"

#include <charconv>
#include <ostream>

namespace densa::app {

int runConvert(const ConvertOptions& options, std::ostream& out, std::ostream& err) {
  if (!io::imageFormatFromPath(options.output)) {
    throw core::InvalidArgument(
        "output " + options.output.string() +
        ": unsupported format (use .nii, .nii.gz, .nrrd, .nhdr, .mha or .mhd)");
  }
  io::LoadOptions load;
  load.dicom.resampleIrregular = options.resampleIrregular;
  load.dicom.correctGantryTilt = options.correctTilt;
  if (options.series) {
    std::size_t index = 0;
    const auto& s = *options.series;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), index);
    if (ec == std::errc() && ptr == s.data() + s.size()) {
      load.selection.index = index;
    } else {
      load.selection.id = s;
    }
  }
  const io::LoadedVolume loaded = io::loadVolume(options.input, load);
  for (const auto& w : loaded.warnings) {
    err << "densa: warning: " << w << "\n";
  }
  io::writeImage(loaded.volume, options.output);
  const auto& size = core::sizeOf(loaded.volume);
  const auto& g = core::geometryOf(loaded.volume);
  out << "wrote " << options.output.string() << "  " << size[0] << "x" << size[1] << "x" << size[2]
      << "  spacing " << g.spacing[0] << " x " << g.spacing[1] << " x " << g.spacing[2] << " mm  "
      << core::orientationCode(g.direction) << "  "
      << core::toString(core::pixelType(loaded.volume));
  if (loaded.dicom) {
    out << "  (series " << loaded.dicom->seriesId << ", " << loaded.dicom->files.size()
        << " files)";
  }
  out << "\n";
  return kExitOk;
}

} // namespace densa::app
