// SPDX-License-Identifier: Apache-2.0
#include "densa/gui/viewer.hpp"

#include "densa/gui/about.hpp"
#include "densa/gui/main_window.hpp"
#include "densa/gui/vtk_gl_widget.hpp"
#include "densa/models/runtime.hpp"

#include <QApplication>
#include <QCommandLineParser>
#include <QElapsedTimer>
#include <QSurfaceFormat>
#include <QThread>

#include <cstdio>
#include <cstdlib>

namespace densa::gui {

namespace {

void settle(int ms) {
  QElapsedTimer t;
  t.start();
  while (t.elapsed() < ms) {
    QApplication::processEvents(QEventLoop::AllEvents, 20);
    QThread::msleep(5);
  }
}

} // namespace

int runViewer(int argc, char** argv) {
  // VTK's GLEW on Debian is GLX-only: keep Qt on xcb + GLX (../shared/docs/qt6-vtk.md).
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) {
    qputenv("QT_QPA_PLATFORM", "xcb");
  }
  if (qEnvironmentVariableIsEmpty("QT_XCB_GL_INTEGRATION")) {
    qputenv("QT_XCB_GL_INTEGRATION", "xcb_glx");
  }
  bool wantsHelp = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    wantsHelp = wantsHelp || a == "-h" || a == "--help" || a == "--version" || a == "-v";
  }
  if (!wantsHelp && qEnvironmentVariableIsEmpty("DISPLAY")) {
    std::fprintf(stderr,
                 "densa-viewer: no X display (DISPLAY is not set). Run it on a desktop, "
                 "or headless under Xvfb: xvfb-run -a densa-viewer ...\n");
    return 2;
  }
  QSurfaceFormat::setDefaultFormat(VtkGLWidget::defaultFormat());
  QApplication::setOrganizationName("Densa");
  QApplication::setApplicationName("densa-viewer");
  QApplication::setApplicationVersion(QString::fromStdString(toolkitVersions()));
  QApplication app(argc, argv);

  QCommandLineParser parser;
  parser.setApplicationDescription(
      "Densa Viewer: read a CT in three planes and 3D, segment liver and tumours with one click, "
      "read volumes and the lesion table, export label maps, DICOM SEG and reports.\n\n"
      "Examples:\n"
      "  densa-viewer /data/ct/case01            open a DICOM folder (asks which series)\n"
      "  densa-viewer ct.nii.gz --overlay l.nii.gz   CT with an existing label map\n"
      "  xvfb-run -a densa-viewer --segment --screenshot shot.png ct.nii.gz\n"
      "                                          segment headless and save the window as PNG");
  parser.addHelpOption();
  parser.addVersionOption();
  parser.addPositionalArgument("INPUT", "A DICOM folder or file, or a NIfTI/NRRD/MHA image.");
  const QCommandLineOption segmentOpt("segment", "Segment liver and tumours after opening.");
  const QCommandLineOption modelOpt("model",
                                    "Segmentation model (.densa); default: the bundled "
                                    "model.",
                                    "FILE");
  const QCommandLineOption deviceOpt(
      "device", "cpu, cuda or cuda:N (default cpu).", "DEVICE", "cpu");
  const QCommandLineOption threadsOpt("threads",
                                      "CPU threads for the network (default: all "
                                      "cores).",
                                      "N",
                                      "0");
  const QCommandLineOption overlayOpt("overlay", "Show a label map (0/1/2) as overlay.", "LABELS");
  const QCommandLineOption mapOpt("overlay-map",
                                  "Rename overlay values first, e.g. 5:1 for a TotalSegmentator "
                                  "liver; other values become background.",
                                  "MAP");
  const QCommandLineOption minLesionOpt(
      "min-lesion-ml", "Report only lesions of at least this volume (mL); default 0: all.", "ML");
  const QCommandLineOption windowOpt(
      "window", "Window preset: abdomen, liver, bone or lung.", "PRESET", "abdomen");
  const QCommandLineOption screenshotOpt(
      "screenshot", "Render the window into OUT.png and exit (no dialogs).", "OUT.png");
  const QCommandLineOption sizeOpt(
      "size", "Window size for --screenshot, in pixels.", "WxH", "1400x900");
  parser.addOptions({segmentOpt,
                     modelOpt,
                     deviceOpt,
                     threadsOpt,
                     overlayOpt,
                     mapOpt,
                     minLesionOpt,
                     windowOpt,
                     screenshotOpt,
                     sizeOpt});
  parser.process(app);

  models::installHostTensorCache();
  const int threads = models::setThreads(parser.value(threadsOpt).toInt());
  (void)threads;
  const bool scripted = parser.isSet(screenshotOpt);
  ViewerOptions options;
  options.model = parser.value(modelOpt);
  options.device = parser.value(deviceOpt);
  options.interactive = !scripted;
  if (parser.isSet(minLesionOpt)) {
    bool ok = false;
    options.minLesionMl = parser.value(minLesionOpt).toDouble(&ok);
    if (!ok || options.minLesionMl < 0) {
      std::fprintf(stderr, "densa-viewer: --min-lesion-ml needs a volume in mL (>= 0)\n");
      return 1;
    }
  } else if (scripted) {
    options.minLesionMl = 0; // scripted runs do not depend on remembered settings
  }
  MainWindow window(options);
  int preset = 0;
  for (std::size_t i = 0; i < kWindowPresets.size(); ++i) {
    if (parser.value(windowOpt).compare(kWindowPresets[i].name, Qt::CaseInsensitive) == 0) {
      preset = static_cast<int>(i);
    }
  }
  window.applyWindowPreset(preset);
  if (scripted) {
    const QStringList wh = parser.value(sizeOpt).split('x');
    const int w = wh.size() == 2 ? wh[0].toInt() : 1400;
    const int h = wh.size() == 2 ? wh[1].toInt() : 900;
    window.resize(std::max(w, 400), std::max(h, 300));
  }
  window.show();

  const QStringList inputs = parser.positionalArguments();
  if (scripted && inputs.isEmpty()) {
    std::fprintf(stderr, "densa-viewer: --screenshot needs an INPUT to open\n");
    return 2;
  }
  if (!inputs.isEmpty()) {
    if (!window.open(inputs.front()) || !window.waitForTask()) {
      if (scripted) {
        return 2; // the error was printed
      }
    } else {
      if (parser.isSet(overlayOpt) &&
          !window.openOverlay(parser.value(overlayOpt), parser.value(mapOpt)) && scripted) {
        return 2;
      }
      if (parser.isSet(segmentOpt)) {
        if (!window.segment() || (scripted && !window.waitForTask())) {
          if (scripted) {
            return 1;
          }
        }
      }
      if (parser.isSet(overlayOpt)) {
        window.centreOnFindings();
      }
    }
  }
  if (scripted) {
    settle(500);
    if (!window.saveScreenshot(parser.value(screenshotOpt))) {
      return 1;
    }
    std::printf("densa-viewer: screenshot written to %s\n",
                parser.value(screenshotOpt).toLocal8Bit().constData());
    return 0;
  }
  return QApplication::exec();
}

} // namespace densa::gui
