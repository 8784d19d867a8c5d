// SPDX-License-Identifier: Apache-2.0
#include "dcmtk_setup.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/oflog/oflog.h>
#include <gdcmTrace.h>
#include <itkGDCMImageIOFactory.h>
#include <itkMetaImageIOFactory.h>
#include <itkNiftiImageIOFactory.h>
#include <itkNrrdImageIOFactory.h>
#include <itkObject.h>

#include <mutex>

namespace densa::io::detail {

void quietDcmtk() {
  static std::once_flag once;
  std::call_once(once, [] {
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
    gdcm::Trace::WarningOff();
    gdcm::Trace::DebugOff();
    gdcm::Trace::ErrorOff();
    itk::Object::GlobalWarningDisplayOff();
  });
}

void registerItkIo() {
  static std::once_flag once;
  std::call_once(once, [] {
    itk::NiftiImageIOFactory::RegisterOneFactory();
    itk::NrrdImageIOFactory::RegisterOneFactory();
    itk::MetaImageIOFactory::RegisterOneFactory();
    itk::GDCMImageIOFactory::RegisterOneFactory();
  });
}

} // namespace densa::io::detail
