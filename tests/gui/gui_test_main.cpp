// SPDX-License-Identifier: Apache-2.0
// Test main for the viewer: without a display it starts its own Xvfb (Qt's offscreen platform
// cannot host an OpenGL widget), isolates QSettings in a temporary folder, then runs the tests
// inside one QApplication.
#include "densa/gui/vtk_gl_widget.hpp"

#include <QApplication>
#include <QSurfaceFormat>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

pid_t g_xvfb = 0;

void stopXvfb() {
  if (g_xvfb > 0) {
    kill(g_xvfb, SIGTERM);
    waitpid(g_xvfb, nullptr, 0);
    g_xvfb = 0;
  }
}

/// Starts Xvfb on a free display (it reports the number through -displayfd).
bool startXvfb() {
  int fds[2];
  if (pipe(fds) != 0) {
    return false;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const std::string fd = std::to_string(fds[1]);
    execlp("Xvfb",
           "Xvfb",
           "-displayfd",
           fd.c_str(),
           "-screen",
           "0",
           "1600x1000x24",
           "-nolisten",
           "tcp",
           static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    return false;
  }
  std::string number;
  char c = 0;
  while (read(fds[0], &c, 1) == 1 && c != '\n') {
    number += c;
  }
  close(fds[0]);
  if (number.empty()) {
    waitpid(pid, nullptr, 0);
    return false;
  }
  g_xvfb = pid;
  std::atexit(stopXvfb);
  setenv("DISPLAY", (":" + number).c_str(), 1);
  return true;
}

} // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const bool listing = ::testing::GTEST_FLAG(list_tests);
  if (listing) {
    return RUN_ALL_TESTS();
  }
  if (std::getenv("DISPLAY") == nullptr || std::string(std::getenv("DISPLAY")).empty()) {
    if (!startXvfb()) {
      std::fprintf(stderr,
                   "gui tests: no DISPLAY and Xvfb could not be started "
                   "(install xvfb: packaging/install-deps.sh)\n");
      return 1;
    }
  }
  const auto settings =
      std::filesystem::temp_directory_path() / ("densa-gui-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(settings / "runtime");
  std::filesystem::permissions(settings / "runtime", std::filesystem::perms::owner_all);
  setenv("XDG_CONFIG_HOME", settings.c_str(), 1);
  setenv("XDG_RUNTIME_DIR", (settings / "runtime").c_str(), 1);
  setenv("QT_QPA_PLATFORM", "xcb", 1);
  setenv("QT_XCB_GL_INTEGRATION", "xcb_glx", 1);
  QSurfaceFormat::setDefaultFormat(densa::gui::VtkGLWidget::defaultFormat());
  QApplication::setOrganizationName("DensaTest");
  QApplication::setApplicationName("densa-viewer-test");
  int code = 0;
  {
    QApplication app(argc, argv);
    code = RUN_ALL_TESTS();
  }
  std::error_code ec;
  std::filesystem::remove_all(settings, ec);
  stopXvfb();
  return code;
}
