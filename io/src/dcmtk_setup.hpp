// SPDX-License-Identifier: Apache-2.0
#pragma once

namespace densa::io::detail {

/// Silences DCMTK's and GDCM's own console logging (we report problems ourselves), once.
void quietDcmtk();

/// Registers the ITK image IO factories Densa uses (NIfTI, NRRD, MetaImage, GDCM), once.
void registerItkIo();

} // namespace densa::io::detail
