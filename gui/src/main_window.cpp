// SPDX-License-Identifier: Apache-2.0
#include "densa/gui/main_window.hpp"

#include "densa/app/case_io.hpp"
#include "densa/app/cases.hpp"
#include "densa/app/hdenseunet_segmenter.hpp"
#include "densa/app/segmenters.hpp"
#include "densa/core/error.hpp"
#include "densa/core/resample.hpp"
#include "densa/gui/about.hpp"
#include "densa/io/atomic_file.hpp"
#include "densa/io/dicom_scan.hpp"
#include "densa/io/dicom_seg.hpp"
#include "densa/io/image_file.hpp"

#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QCloseEvent>
#include <QColorDialog>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QElapsedTimer>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGridLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QOpenGLWidget>
#include <QProgressBar>
#include <QPushButton>
#include <QScreen>
#include <QSettings>
#include <QSlider>
#include <QSpinBox>
#include <QSplitter>
#include <QStatusBar>
#include <QTableWidget>
#include <QThread>
#include <QToolBar>
#include <QVBoxLayout>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>

namespace densa::gui {

namespace fs = std::filesystem;

/// A piece of work for a background thread, and what to do with its result on the GUI thread.
struct MainWindow::Task {
  QString title;
  std::function<void(const std::function<void(double)>& progress)> work; // worker thread
  std::function<void()> done;                                            // GUI thread, on success
  QString error;
  bool cancelled = false;
};

namespace {

fs::path toPath(const QString& s) {
  return fs::path(s.toStdString());
}

QString fromUtf8(const std::string& s) {
  return QString::fromStdString(s);
}

/// Asks which series to open; the rule-based choice is preselected.
std::optional<std::size_t> chooseSeries(const io::DicomScan& scan,
                                        std::size_t preselected,
                                        QWidget* parent) {
  QDialog dialog(parent);
  dialog.setWindowTitle(QObject::tr("Choose a series"));
  auto* layout = new QVBoxLayout(&dialog);
  layout->addWidget(new QLabel(
      QObject::tr("This folder holds %1 image series. Which one?").arg(scan.series.size())));
  auto* table = new QTableWidget(static_cast<int>(scan.series.size()), 6);
  table->setHorizontalHeaderLabels({QObject::tr("Description"),
                                    QObject::tr("Modality"),
                                    QObject::tr("Size"),
                                    QObject::tr("Spacing (mm)"),
                                    QObject::tr("Image type"),
                                    QObject::tr("Series")});
  table->setSelectionBehavior(QAbstractItemView::SelectRows);
  table->setSelectionMode(QAbstractItemView::SingleSelection);
  table->setEditTriggers(QAbstractItemView::NoEditTriggers);
  for (std::size_t r = 0; r < scan.series.size(); ++r) {
    const auto& s = scan.series[r];
    const int row = static_cast<int>(r);
    table->setItem(row, 0, new QTableWidgetItem(fromUtf8(s.description)));
    table->setItem(row, 1, new QTableWidgetItem(fromUtf8(s.modality)));
    table->setItem(
        row,
        2,
        new QTableWidgetItem(QString("%1×%2×%3").arg(s.columns).arg(s.rows).arg(s.sliceCount())));
    table->setItem(row,
                   3,
                   new QTableWidgetItem(QString("%1 × %2, %3 thick")
                                            .arg(s.pixelSpacing[0], 0, 'g', 4)
                                            .arg(s.pixelSpacing[1], 0, 'g', 4)
                                            .arg(s.sliceThickness, 0, 'g', 3)));
    table->setItem(row, 4, new QTableWidgetItem(fromUtf8(s.imageType)));
    table->setItem(row, 5, new QTableWidgetItem(fromUtf8(s.id)));
  }
  table->resizeColumnsToContents();
  table->selectRow(static_cast<int>(preselected));
  layout->addWidget(table);
  auto* buttons = new QDialogButtonBox(QDialogButtonBox::Open | QDialogButtonBox::Cancel);
  QObject::connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
  QObject::connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
  QObject::connect(table, &QTableWidget::cellDoubleClicked, &dialog, &QDialog::accept);
  layout->addWidget(buttons);
  dialog.resize(760, 320);
  if (dialog.exec() != QDialog::Accepted || table->currentRow() < 0) {
    return std::nullopt;
  }
  return static_cast<std::size_t>(table->currentRow());
}

/// Writes a QImage as PNG atomically.
void writePng(const QImage& image, const fs::path& file) {
  io::writeAtomically(file, [&](const fs::path& temp) {
    if (!image.save(QString::fromStdString(temp.string()), "PNG")) {
      throw core::InputError(file, "could not be written as PNG");
    }
  });
}

} // namespace

MainWindow::MainWindow(ViewerOptions options, QWidget* parent)
    : QMainWindow(parent)
    , m_options(std::move(options))
    , m_state(new ViewState(this)) {
  setWindowTitle(tr("Densa Viewer"));
  setAcceptDrops(true);
  buildUi();
  buildMenus();
  QSettings settings;
  if (m_options.model.isEmpty()) {
    m_options.model = settings.value("model").toString();
  }
  m_similarIndex = settings.value("similarIndex").toString();
  m_similarIndexLabel->setText(m_similarIndex.isEmpty() ? tr("No index chosen") : m_similarIndex);
  if (m_options.rememberLayout) {
    restoreGeometry(settings.value("geometry").toByteArray());
  }
  restoreState(settings.value("windowState").toByteArray());
  m_state->setOverlayOpacity(settings.value("overlayOpacity", 0.45).toDouble());
  m_opacity->setValue(static_cast<int>(m_state->overlayOpacity() * 100));
  m_minLesion->setValue(m_options.minLesionMl >= 0 ? m_options.minLesionMl
                                                   : settings.value("minLesionMl", 0.0).toDouble());
  connect(m_state, &ViewState::labelsChanged, this, [this] {
    updateResults();
    updateActions();
  });
  connect(m_state, &ViewState::documentChanged, this, [this] { updateActions(); });
  updateActions();
}

MainWindow::~MainWindow() {
  if (m_thread != nullptr) {
    m_cancel->store(true);
    m_thread->wait();
    delete m_thread;
  }
}

void MainWindow::buildUi() {
  auto* central = new QWidget(this);
  auto* grid = new QGridLayout(central);
  grid->setContentsMargins(2, 2, 2, 2);
  grid->setSpacing(2);
  m_axial = new SliceView(Plane::Axial, m_state, central);
  m_coronal = new SliceView(Plane::Coronal, m_state, central);
  m_sagittal = new SliceView(Plane::Sagittal, m_state, central);
  m_surface = new SurfaceView(m_state, central);
  grid->addWidget(m_axial, 0, 0);
  grid->addWidget(m_surface, 0, 1);
  grid->addWidget(m_coronal, 1, 0);
  grid->addWidget(m_sagittal, 1, 1);
  setCentralWidget(central);

  // Results panel: volumes and the lesion table.
  auto* results = new QDockWidget(tr("Results"), this);
  results->setObjectName("resultsDock");
  auto* panel = new QWidget(results);
  auto* layout = new QVBoxLayout(panel);
  m_summary = new QLabel(tr("No segmentation yet. Press Segment (Ctrl+G)."), panel);
  m_summary->setWordWrap(true);
  m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
  layout->addWidget(m_summary);
  m_lesions = new QTableWidget(0, 4, panel);
  m_lesions->setObjectName("lesionTable");
  m_lesions->setHorizontalHeaderLabels(
      {tr("#"), tr("Volume (mL)"), tr("Longest axial ⌀ (mm)"), tr("Centroid LPS (mm)")});
  m_lesions->verticalHeader()->hide();
  m_lesions->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_lesions->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_lesions->horizontalHeader()->setStretchLastSection(true);
  m_lesions->setToolTip(tr("Click a lesion to centre every view on it"));
  connect(m_lesions, &QTableWidget::cellClicked, this, [this](int row, int) {
    const auto& stats = m_state->document().stats;
    if (stats && row >= 0 && static_cast<std::size_t>(row) < stats->lesions.size()) {
      m_state->setCursorPhysical(stats->lesions[static_cast<std::size_t>(row)].centroidMm);
    }
  });
  layout->addWidget(m_lesions, 1);

  // Overlay appearance.
  auto* overlay = new QFormLayout();
  m_opacity = new QSlider(Qt::Horizontal, panel);
  m_opacity->setRange(0, 100);
  connect(m_opacity, &QSlider::valueChanged, this, [this](int v) {
    m_state->setOverlayOpacity(v / 100.0);
  });
  overlay->addRow(tr("Overlay opacity"), m_opacity);
  for (int label = 1; label <= 2; ++label) {
    auto* row = new QWidget(panel);
    auto* h = new QHBoxLayout(row);
    h->setContentsMargins(0, 0, 0, 0);
    auto* show = new QCheckBox(label == 1 ? tr("Liver") : tr("Tumour"), row);
    show->setChecked(true);
    connect(show, &QCheckBox::toggled, this, [this, label](bool on) {
      m_state->setLabelVisible(label, on);
    });
    auto* colour = new QPushButton(row);
    colour->setFixedWidth(40);
    auto paint = [colour, this, label] {
      colour->setStyleSheet(QString("background-color: %1").arg(m_state->labelColor(label).name()));
    };
    paint();
    connect(colour, &QPushButton::clicked, this, [this, label, paint] {
      const QColor c = QColorDialog::getColor(m_state->labelColor(label), this);
      m_state->setLabelColor(label, c);
      paint();
    });
    h->addWidget(show);
    h->addWidget(colour);
    h->addStretch();
    overlay->addRow(row);
  }
  m_minLesion = new QDoubleSpinBox(panel);
  m_minLesion->setRange(0, 100);
  m_minLesion->setDecimals(2);
  m_minLesion->setSingleStep(0.05);
  m_minLesion->setSuffix(" mL");
  m_minLesion->setToolTip(tr("Segmentation reports only lesions of at least this volume; smaller "
                             "ones count as liver. 0 keeps every lesion (as the LiTS scorer)."));
  overlay->addRow(tr("Smallest lesion"), m_minLesion);
  layout->addLayout(overlay);
  results->setWidget(panel);
  results->setMinimumWidth(430);
  addDockWidget(Qt::RightDockWidgetArea, results);

  // Similar cases: ADSL retrieval over a case index.
  m_similarDock = new QDockWidget(tr("Similar cases"), this);
  m_similarDock->setObjectName("similarDock");
  m_similarDock->setWidget(buildSimilarPanel(m_similarDock));
  addDockWidget(Qt::RightDockWidgetArea, m_similarDock);
  tabifyDockWidget(results, m_similarDock);
  results->raise();

  // Status bar: what is under the mouse, task progress and cancel.
  m_hover = new QLabel(this);
  statusBar()->addWidget(m_hover, 1);
  m_progress = new QProgressBar(this);
  m_progress->setRange(0, 1000);
  m_progress->setMaximumWidth(220);
  m_progress->hide();
  m_cancelButton = new QPushButton(tr("Cancel"), this);
  m_cancelButton->hide();
  connect(m_cancelButton, &QPushButton::clicked, this, &MainWindow::cancel);
  statusBar()->addPermanentWidget(m_progress);
  statusBar()->addPermanentWidget(m_cancelButton);
  for (SliceView* v : {m_axial, m_coronal, m_sagittal}) {
    connect(v, &SliceView::hoverInfo, m_hover, &QLabel::setText);
  }
}

void MainWindow::buildMenus() {
  auto* file = menuBar()->addMenu(tr("&File"));
  auto* openFile = file->addAction(tr("&Open Image File…"), this, &MainWindow::chooseAndOpenFile);
  openFile->setShortcut(QKeySequence::Open);
  auto* openDicom =
      file->addAction(tr("Open &DICOM Folder…"), this, &MainWindow::chooseAndOpenFolder);
  openDicom->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
  m_recentMenu = file->addMenu(tr("Open &Recent"));
  rebuildRecentMenu();
  auto* openOverlay =
      file->addAction(tr("Open &Label Overlay…"), this, &MainWindow::chooseAndOpenOverlay);
  m_needDocument << openOverlay;
  file->addSeparator();
  auto* exportLabels =
      file->addAction(tr("Export Label &Map (NIfTI)…"), this, [this] { exportWithDialog(0); });
  exportLabels->setShortcut(QKeySequence::Save);
  m_exportSegAction =
      file->addAction(tr("Export DICOM &SEG…"), this, [this] { exportWithDialog(1); });
  auto* exportReport =
      file->addAction(tr("Export &Report (JSON)…"), this, [this] { exportWithDialog(2); });
  m_needLabels << exportLabels << m_exportSegAction << exportReport;
  auto* shots = file->addMenu(tr("Save Screens&hot"));
  auto* shotWindow =
      shots->addAction(tr("Whole Window…"), this, [this] { screenshotWithDialog(nullptr); });
  shotWindow->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_P));
  shots->addAction(tr("Axial View…"), this, [this] { screenshotWithDialog(m_axial); });
  shots->addAction(tr("Coronal View…"), this, [this] { screenshotWithDialog(m_coronal); });
  shots->addAction(tr("Sagittal View…"), this, [this] { screenshotWithDialog(m_sagittal); });
  shots->addAction(tr("3D View…"), this, [this] { screenshotWithDialog(m_surface); });
  m_needDocument << shots->menuAction();
  file->addSeparator();
  auto* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
  quit->setShortcut(QKeySequence::Quit);

  auto* view = menuBar()->addMenu(tr("&View"));
  for (int i = 0; i < static_cast<int>(kWindowPresets.size()); ++i) {
    const auto& p = kWindowPresets[static_cast<std::size_t>(i)];
    auto* a =
        view->addAction(tr("%1 window (W %2, L %3)").arg(tr(p.name)).arg(p.width).arg(p.level),
                        this,
                        [this, i] { applyWindowPreset(i); });
    a->setShortcut(QKeySequence(Qt::Key_1 + i));
  }
  view->addSeparator();
  auto* reset = view->addAction(tr("Reset &Views"), this, [this] {
    for (SliceView* v : {m_axial, m_coronal, m_sagittal}) {
      v->resetView();
    }
    m_surface->resetCamera();
  });
  reset->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_R));
  auto* centre = view->addAction(tr("&Centre on Findings"), this, &MainWindow::centreOnFindings);
  centre->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_F));
  auto* body = view->addAction(tr("Body Outline in 3D"));
  body->setCheckable(true);
  body->setChecked(true);
  connect(body, &QAction::toggled, m_surface, &SurfaceView::setBodyVisible);

  auto* seg = menuBar()->addMenu(tr("&Segmentation"));
  m_segmentAction = seg->addAction(tr("&Segment Liver and Tumours"), this, [this] { segment(); });
  m_segmentAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_G));
  m_cancelAction = seg->addAction(tr("&Cancel"), this, &MainWindow::cancel);
  m_cancelAction->setShortcut(QKeySequence(Qt::Key_Escape));
  seg->addAction(tr("Choose &Model…"), this, &MainWindow::chooseModel);

  auto* similar = menuBar()->addMenu(tr("S&imilar Cases"));
  similar->addAction(tr("Choose Case &Index…"), this, &MainWindow::chooseSimilarIndex);
  m_similarCaseAction =
      similar->addAction(tr("Similar to This &Case"), this, [this] { findSimilarCases(); });
  m_similarCaseAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_K));
  m_similarPointAction = similar->addAction(
      tr("Similar to the Selected Lesion or &Crosshair"), this, [this] { findSimilarAtPoint(); });
  m_similarPointAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_K));
  similar->addSeparator();
  similar->addAction(m_similarDock->toggleViewAction());

  auto* help = menuBar()->addMenu(tr("&Help"));
  help->addAction(tr("&Keyboard and Mouse"), this, &MainWindow::showShortcuts)
      ->setShortcut(QKeySequence::HelpContents);
  help->addAction(tr("&About Densa"), this, &MainWindow::showAbout);

  auto* tools = addToolBar(tr("Main"));
  tools->setObjectName("mainToolBar");
  tools->addAction(openFile);
  tools->addAction(openDicom);
  tools->addSeparator();
  tools->addAction(m_segmentAction);
  tools->addSeparator();
  tools->addWidget(new QLabel(tr(" Window: "), tools));
  m_presets = new QComboBox(tools);
  for (const auto& p : kWindowPresets) {
    m_presets->addItem(tr(p.name));
  }
  connect(m_presets, &QComboBox::activated, this, &MainWindow::applyWindowPreset);
  tools->addWidget(m_presets);
  tools->addSeparator();
  tools->addAction(shotWindow);
  m_needDocument << m_segmentAction << centre << reset;
}

SliceView* MainWindow::sliceView(Plane plane) const {
  switch (plane) {
  case Plane::Axial:
    return m_axial;
  case Plane::Coronal:
    return m_coronal;
  case Plane::Sagittal:
    return m_sagittal;
  }
  return m_axial;
}

void MainWindow::applyWindowPreset(int index) {
  if (index < 0 || index >= static_cast<int>(kWindowPresets.size())) {
    return;
  }
  const auto& p = kWindowPresets[static_cast<std::size_t>(index)];
  m_state->setWindowLevel(p.width, p.level);
  m_presets->setCurrentIndex(index);
}

void MainWindow::updateActions() {
  const bool doc = !m_state->document().empty();
  const bool labels = doc && m_state->document().labels.has_value();
  for (QAction* a : m_needDocument) {
    a->setEnabled(doc && !busy());
  }
  for (QAction* a : m_needLabels) {
    a->setEnabled(labels && !busy());
  }
  m_exportSegAction->setEnabled(labels && !busy() && m_state->document().dicom.has_value());
  m_cancelAction->setEnabled(busy());
  const bool canSearch = doc && !busy() && !m_similarIndex.isEmpty();
  for (QWidget* w :
       {static_cast<QWidget*>(m_similarCaseButton), static_cast<QWidget*>(m_similarPointButton)}) {
    w->setEnabled(canSearch);
  }
  m_similarCaseAction->setEnabled(canSearch);
  m_similarPointAction->setEnabled(canSearch);
  m_similarOpenButton->setEnabled(m_similarTable->currentRow() >= 0);
}

void MainWindow::reportError(const QString& title, const QString& message) {
  m_lastError = message;
  std::fprintf(stderr,
               "densa-viewer: %s: %s\n",
               title.toLocal8Bit().constData(),
               message.toLocal8Bit().constData());
  statusBar()->showMessage(title + ": " + message, 10000);
  if (m_options.interactive) {
    QMessageBox::warning(this, title, message);
  }
}

void MainWindow::startTask(const QString& title, std::unique_ptr<Task> task) {
  m_task = std::move(task);
  m_task->title = title;
  m_cancel = std::make_shared<std::atomic<bool>>(false);
  m_progress->setValue(0);
  m_progress->setFormat(title + " %p%");
  m_progress->show();
  m_cancelButton->show();
  statusBar()->showMessage(title + "…");
  QApplication::setOverrideCursor(Qt::BusyCursor);
  updateActions();
  Task* t = m_task.get();
  auto cancel = m_cancel;
  QProgressBar* bar = m_progress;
  m_thread = QThread::create([t, cancel, bar] {
    const auto progress = [cancel, bar](double f) {
      if (cancel->load()) {
        throw core::Cancelled();
      }
      QMetaObject::invokeMethod(
          bar, [bar, f] { bar->setValue(static_cast<int>(f * 1000)); }, Qt::QueuedConnection);
    };
    try {
      t->work(progress);
      if (cancel->load()) {
        t->cancelled = true;
      }
    } catch (const core::Cancelled&) {
      t->cancelled = true;
    } catch (const std::exception& e) {
      t->error = QString::fromStdString(e.what());
    } catch (...) {
      t->error = QObject::tr("unexpected error");
    }
  });
  connect(m_thread, &QThread::finished, this, &MainWindow::finishTask, Qt::QueuedConnection);
  m_thread->start();
}

void MainWindow::finishTask() {
  if (m_thread == nullptr) {
    return;
  }
  m_thread->wait();
  delete m_thread;
  m_thread = nullptr;
  std::unique_ptr<Task> task = std::move(m_task);
  QApplication::restoreOverrideCursor();
  m_progress->hide();
  m_cancelButton->hide();
  bool ok = false;
  if (task->cancelled) {
    m_lastError = tr("cancelled");
    statusBar()->showMessage(task->title + tr(": cancelled"), 5000);
  } else if (!task->error.isEmpty()) {
    reportError(task->title, task->error);
  } else {
    try {
      task->done();
      ok = true;
      m_lastError.clear();
    } catch (const std::exception& e) {
      reportError(task->title, QString::fromStdString(e.what()));
    }
  }
  m_lastOk = ok;
  updateActions();
  emit taskFinished(ok);
}

bool MainWindow::waitForTask(int timeoutMs) {
  QElapsedTimer timer;
  timer.start();
  while (busy() && timer.elapsed() < timeoutMs) {
    QApplication::processEvents(QEventLoop::AllEvents, 50);
    QThread::msleep(5);
  }
  QApplication::processEvents();
  return !busy() && m_lastOk;
}

void MainWindow::cancel() {
  if (m_cancel) {
    m_cancel->store(true);
    statusBar()->showMessage(tr("Cancelling…"));
  }
}

bool MainWindow::open(const QString& path) {
  if (busy()) {
    reportError(tr("Open"), tr("wait for the current task to finish, or cancel it"));
    return false;
  }
  const fs::path p = toPath(path);
  app::CaseInput input;
  input.path = p;
  input.description = QFileInfo(path).fileName().toStdString();
  try {
    if (!fs::exists(p)) {
      throw core::InputError(p, "does not exist");
    }
    if (fs::is_directory(p) || !io::imageFormatFromPath(p)) {
      QApplication::setOverrideCursor(Qt::WaitCursor);
      statusBar()->showMessage(tr("Scanning %1 for DICOM series…").arg(path));
      QApplication::processEvents();
      io::DicomScan scan;
      try {
        scan = io::scanDicom(p);
      } catch (...) {
        QApplication::restoreOverrideCursor();
        throw;
      }
      QApplication::restoreOverrideCursor();
      if (scan.series.empty()) {
        std::string why = "holds no DICOM image series";
        if (!scan.skipped.empty()) {
          why += " (" + std::to_string(scan.skipped.size()) +
                 " file(s) skipped; first: " + scan.skipped.front().file.filename().string() +
                 ": " + scan.skipped.front().reason + ")";
        }
        throw core::InputError(p, why);
      }
      const io::DicomSeries& preferred = io::selectSeries(scan);
      std::size_t index = static_cast<std::size_t>(&preferred - scan.series.data());
      if (scan.series.size() > 1 && m_options.interactive) {
        const auto chosen = chooseSeries(scan, index, this);
        if (!chosen) {
          return false;
        }
        index = *chosen;
      }
      input.series = scan.series[index];
      input.description =
          input.series->description.empty() ? input.series->id : input.series->description;
    }
  } catch (const std::exception& e) {
    reportError(tr("Open"), QString::fromStdString(e.what()));
    return false;
  }
  auto document = std::make_shared<Document>();
  auto task = std::make_unique<Task>();
  task->work = [input, document, path](const std::function<void(double)>&) {
    *document =
        Document::fromCase(app::loadCase(input), path, QString::fromStdString(input.description));
  };
  task->done = [this, document, path] {
    m_state->setDocument(std::move(*document));
    const auto& doc = m_state->document();
    const auto& s = doc.ct.size();
    const auto& sp = doc.ct.geometry().spacing;
    setWindowTitle(tr("%1 — Densa Viewer").arg(doc.description));
    QString msg = tr("Opened %1: %2×%3×%4 voxels, %5×%6×%7 mm")
                      .arg(doc.description)
                      .arg(s[0])
                      .arg(s[1])
                      .arg(s[2])
                      .arg(sp[0], 0, 'g', 4)
                      .arg(sp[1], 0, 'g', 4)
                      .arg(sp[2], 0, 'g', 4);
    if (!doc.warnings.empty()) {
      msg += tr(" — warning: %1").arg(QString::fromStdString(doc.warnings.front()));
    }
    statusBar()->showMessage(msg, 15000);
    addRecent(path);
    updateResults();
  };
  startTask(tr("Loading"), std::move(task));
  return true;
}

bool MainWindow::openOverlay(const QString& path, const QString& map) {
  if (m_state->document().empty()) {
    reportError(tr("Open overlay"), tr("open a CT first"));
    return false;
  }
  if (busy()) {
    reportError(tr("Open overlay"), tr("wait for the current task to finish, or cancel it"));
    return false;
  }
  try {
    core::LabelMap labels = app::loadLabelMap(toPath(path), map.toStdString());
    const auto& doc = m_state->document();
    const core::Grid inputGrid{doc.inputSize, doc.inputGeometry};
    if (labels.size() != inputGrid.size || !labels.geometry().approxEqual(inputGrid.geometry)) {
      labels = core::resampleOnto(labels, inputGrid, core::Interpolation::Nearest);
    }
    Document updated = doc; // keeps the CT; replaces the overlay
    updated.setInputLabels(labels);
    m_state->setLabels(std::move(updated.labels), std::nullopt);
    statusBar()->showMessage(tr("Overlay %1 loaded").arg(QFileInfo(path).fileName()), 10000);
    return true;
  } catch (const std::exception& e) {
    reportError(tr("Open overlay"), QString::fromStdString(e.what()));
    return false;
  }
}

bool MainWindow::segment() {
  if (m_state->document().empty()) {
    reportError(tr("Segment"), tr("open a CT first"));
    return false;
  }
  if (busy()) {
    reportError(tr("Segment"), tr("a task is already running"));
    return false;
  }
  auto result = std::make_shared<app::SegmentationResult>();
  auto segmenter = std::make_shared<std::shared_ptr<app::Segmenter>>(m_segmenter);
  const QString model = m_options.model;
  const double minLesion = m_minLesion->value();
  const bool reuse = m_segmenter && m_segmenterFile == model && m_segmenterMinLesion == minLesion;
  const std::string device = m_options.device.toStdString();
  const core::Volume<std::int16_t>* ct = &m_state->document().ct; // unchanged while busy
  auto task = std::make_unique<Task>();
  task->work = [result, segmenter, model, reuse, device, ct, minLesion](
                   const std::function<void(double)>& progress) {
    if (!reuse) {
      const fs::path file = model.isEmpty() ? app::defaultModelPath() : toPath(model);
      app::SegmenterOptions options;
      options.device = device;
      options.minLesionMl = minLesion;
      *segmenter = app::loadSegmenter(file, options);
    }
    progress(0);
    *result = (*segmenter)->segment(*ct, progress);
  };
  task->done = [this, result, segmenter, model, minLesion] {
    m_segmenter = *segmenter;
    m_segmenterFile = model;
    m_segmenterMinLesion = minLesion;
    m_state->setLabels(std::move(result->labels), m_segmenter->identity(), result->seconds);
    centreOnFindings();
    const auto& stats = m_state->document().stats;
    statusBar()->showMessage(tr("Segmented: liver %1 mL, %2 lesion(s)")
                                 .arg(stats->liverVolumeMl, 0, 'f', 1)
                                 .arg(stats->lesions.size()),
                             15000);
  };
  startTask(tr("Segmenting"), std::move(task));
  return true;
}

void MainWindow::centreOnFindings() {
  const auto& doc = m_state->document();
  if (!doc.stats || !doc.labels) {
    return;
  }
  if (!doc.stats->lesions.empty()) {
    m_state->setCursorPhysical(doc.stats->lesions.front().centroidMm);
    return;
  }
  // Liver centroid.
  const auto& l = *doc.labels;
  double si = 0;
  double sj = 0;
  double sk = 0;
  double n = 0;
  for (std::size_t k = 0; k < l.size()[2]; ++k) {
    for (std::size_t j = 0; j < l.size()[1]; ++j) {
      for (std::size_t i = 0; i < l.size()[0]; ++i) {
        if (l.at(i, j, k) != 0) {
          si += static_cast<double>(i);
          sj += static_cast<double>(j);
          sk += static_cast<double>(k);
          n += 1;
        }
      }
    }
  }
  if (n > 0) {
    m_state->setCursor({static_cast<std::size_t>(si / n + 0.5),
                        static_cast<std::size_t>(sj / n + 0.5),
                        static_cast<std::size_t>(sk / n + 0.5)});
  }
}

void MainWindow::updateResults() {
  const auto& doc = m_state->document();
  m_lesions->setRowCount(0);
  if (!doc.stats) {
    m_summary->setText(doc.empty() ? tr("Open a CT to begin.")
                                   : tr("No segmentation yet. Press Segment (Ctrl+G)."));
    return;
  }
  const auto& s = *doc.stats;
  QString text = tr("<b>Liver</b> %1 mL<br><b>Tumour</b> %2 mL (burden %3 %)<br><b>Lesions</b> %4")
                     .arg(s.liverVolumeMl, 0, 'f', 1)
                     .arg(s.tumourVolumeMl, 0, 'f', 2)
                     .arg(s.tumourBurdenPercent, 0, 'f', 2)
                     .arg(s.lesions.size());
  if (doc.model) {
    text += tr("<br><small>Model %1 · research use, not for clinical decisions</small>")
                .arg(QString::fromStdString(doc.model->id).toHtmlEscaped());
  } else {
    text += tr("<br><small>Overlay loaded from file</small>");
  }
  m_summary->setText(text);
  m_lesions->setRowCount(static_cast<int>(s.lesions.size()));
  for (std::size_t r = 0; r < s.lesions.size(); ++r) {
    const auto& l = s.lesions[r];
    const int row = static_cast<int>(r);
    auto number = [](double v, int decimals) {
      auto* item = new QTableWidgetItem(QString::number(v, 'f', decimals));
      item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
      return item;
    };
    m_lesions->setItem(row, 0, number(l.id, 0));
    m_lesions->setItem(row, 1, number(l.volumeMl, 2));
    m_lesions->setItem(row, 2, number(l.longestDiameterMm, 1));
    m_lesions->setItem(row,
                       3,
                       new QTableWidgetItem(QString("%1, %2, %3")
                                                .arg(l.centroidMm[0], 0, 'f', 1)
                                                .arg(l.centroidMm[1], 0, 'f', 1)
                                                .arg(l.centroidMm[2], 0, 'f', 1)));
  }
  m_lesions->resizeColumnsToContents();
}

bool MainWindow::exportLabels(const QString& file) {
  try {
    const auto& doc = m_state->document();
    if (!doc.labels) {
      throw core::InvalidArgument("there is no label map to export: segment first");
    }
    io::writeImage(doc.labelsOnInputGrid(), toPath(file));
    statusBar()->showMessage(tr("Label map written to %1").arg(file), 10000);
    return true;
  } catch (const std::exception& e) {
    reportError(tr("Export label map"), QString::fromStdString(e.what()));
    return false;
  }
}

bool MainWindow::exportDicomSeg(const QString& file) {
  try {
    const auto& doc = m_state->document();
    if (!doc.labels) {
      throw core::InvalidArgument("there is no label map to export: segment first");
    }
    if (!doc.dicom) {
      throw core::InvalidArgument("a DICOM SEG needs a CT opened from DICOM");
    }
    io::writeDicomSeg(doc.labelsOnInputGrid(), *doc.dicom, toPath(file));
    statusBar()->showMessage(tr("DICOM SEG written to %1").arg(file), 10000);
    return true;
  } catch (const std::exception& e) {
    reportError(tr("Export DICOM SEG"), QString::fromStdString(e.what()));
    return false;
  }
}

bool MainWindow::exportReport(const QString& file) {
  try {
    const auto& doc = m_state->document();
    if (!doc.labels || !doc.stats) {
      throw core::InvalidArgument("there is nothing to report: segment first");
    }
    app::LoadedCase loaded;
    loaded.ct = doc.ctOnInputGrid();
    loaded.dicom = doc.dicom;
    loaded.warnings = doc.warnings;
    app::CaseReportInput r;
    r.caseId = app::sanitizeFileName(doc.description.toStdString());
    r.source = toPath(doc.source);
    r.description = doc.description.toStdString();
    r.loaded = &loaded;
    r.stats = &*doc.stats;
    if (doc.model) {
      r.model = *doc.model;
    } else {
      r.model.id = "overlay loaded from file";
    }
    r.seconds = doc.segmentSeconds;
    io::writeTextAtomically(toPath(file), app::caseReportJson(r));
    statusBar()->showMessage(tr("Report written to %1").arg(file), 10000);
    return true;
  } catch (const std::exception& e) {
    reportError(tr("Export report"), QString::fromStdString(e.what()));
    return false;
  }
}

bool MainWindow::saveScreenshot(const QString& file, QWidget* widget) {
  try {
    QApplication::processEvents();
    QImage image;
    if (auto* gl = qobject_cast<QOpenGLWidget*>(widget)) {
      image = gl->grabFramebuffer();
    } else {
      image = (widget != nullptr ? widget : this)->grab().toImage();
    }
    if (image.isNull()) {
      throw core::InternalError("the view could not be captured");
    }
    writePng(image, toPath(file));
    statusBar()->showMessage(tr("Screenshot written to %1").arg(file), 10000);
    return true;
  } catch (const std::exception& e) {
    reportError(tr("Screenshot"), QString::fromStdString(e.what()));
    return false;
  }
}

void MainWindow::addRecent(const QString& path) {
  if (!m_options.interactive) {
    return; // scripted runs leave the user's recent files alone
  }
  QSettings settings;
  QStringList recent = settings.value("recent").toStringList();
  recent.removeAll(path);
  recent.prepend(path);
  while (recent.size() > 10) {
    recent.removeLast();
  }
  settings.setValue("recent", recent);
  rebuildRecentMenu();
}

void MainWindow::rebuildRecentMenu() {
  m_recentMenu->clear();
  const QStringList recent = QSettings().value("recent").toStringList();
  for (const QString& path : recent) {
    m_recentMenu->addAction(path, this, [this, path] { open(path); });
  }
  m_recentMenu->setEnabled(!recent.isEmpty());
}

void MainWindow::chooseAndOpenFile() {
  QSettings settings;
  const QString file = QFileDialog::getOpenFileName(
      this,
      tr("Open CT image"),
      settings.value("lastDir").toString(),
      tr("CT images (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd);;DICOM files (*)"));
  if (!file.isEmpty()) {
    settings.setValue("lastDir", QFileInfo(file).absolutePath());
    open(file);
  }
}

void MainWindow::chooseAndOpenFolder() {
  QSettings settings;
  const QString dir = QFileDialog::getExistingDirectory(
      this, tr("Open DICOM folder"), settings.value("lastDir").toString());
  if (!dir.isEmpty()) {
    settings.setValue("lastDir", dir);
    open(dir);
  }
}

void MainWindow::chooseAndOpenOverlay() {
  QSettings settings;
  const QString file =
      QFileDialog::getOpenFileName(this,
                                   tr("Open label map"),
                                   settings.value("lastDir").toString(),
                                   tr("Label maps (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd)"));
  if (file.isEmpty()) {
    return;
  }
  QString map;
  try {
    (void)app::loadLabelMap(toPath(file));
  } catch (const core::InputError&) {
    // Values other than 0/1/2: ask how to read them (e.g. TotalSegmentator's liver is 5).
    bool ok = false;
    map = QInputDialog::getText(this,
                                tr("Map label values"),
                                tr("This label map holds values other than 0, 1, 2.\n"
                                   "Map them to liver (1) and tumour (2), e.g. 5:1 for a "
                                   "TotalSegmentator liver; other values become background."),
                                QLineEdit::Normal,
                                "5:1",
                                &ok);
    if (!ok) {
      return;
    }
  } catch (const std::exception&) {
    // reported by openOverlay below
  }
  openOverlay(file, map);
}

void MainWindow::chooseModel() {
  const QString file = QFileDialog::getOpenFileName(
      this, tr("Choose a segmentation model"), QString(), tr("Densa models (*.densa)"));
  if (!file.isEmpty()) {
    m_options.model = file;
    m_segmenter.reset();
    QSettings().setValue("model", file);
    statusBar()->showMessage(tr("Model: %1").arg(file), 10000);
  }
}

void MainWindow::exportWithDialog(int what) {
  static const std::array<QString, 3> titles{
      tr("Export label map"), tr("Export DICOM SEG"), tr("Export report")};
  static const std::array<QString, 3> filters{
      tr("NIfTI (*.nii.gz *.nii)"), tr("DICOM (*.dcm)"), tr("JSON (*.json)")};
  static const std::array<QString, 3> suffixes{"label.nii.gz", "seg.dcm", "report.json"};
  const auto i = static_cast<std::size_t>(what);
  QSettings settings;
  const QString base =
      QString::fromStdString(app::sanitizeFileName(m_state->document().description.toStdString()));
  const QString suggestion =
      QDir(settings.value("lastDir").toString()).filePath(base + "-" + suffixes[i]);
  const QString file = QFileDialog::getSaveFileName(this, titles[i], suggestion, filters[i]);
  if (file.isEmpty()) {
    return;
  }
  settings.setValue("lastDir", QFileInfo(file).absolutePath());
  if (what == 0) {
    exportLabels(file);
  } else if (what == 1) {
    exportDicomSeg(file);
  } else {
    exportReport(file);
  }
}

void MainWindow::screenshotWithDialog(QWidget* widget) {
  QSettings settings;
  const QString file = QFileDialog::getSaveFileName(
      this,
      tr("Save screenshot"),
      QDir(settings.value("lastDir").toString()).filePath("densa-screenshot.png"),
      tr("PNG images (*.png)"));
  if (!file.isEmpty()) {
    saveScreenshot(file, widget);
  }
}

void MainWindow::showShortcuts() {
  QMessageBox::information(
      this,
      tr("Keyboard and mouse"),
      tr("<table>"
         "<tr><td><b>Left button</b></td><td>place the crosshair (all views follow)</td></tr>"
         "<tr><td><b>Wheel, ↑/↓, PgUp/PgDn</b></td><td>next/previous slice (×10)</td></tr>"
         "<tr><td><b>Ctrl+wheel, +/−</b></td><td>zoom</td></tr>"
         "<tr><td><b>Middle button, Shift+left</b></td><td>pan</td></tr>"
         "<tr><td><b>Right button drag</b></td><td>window (←→) and level (↑↓)</td></tr>"
         "<tr><td><b>1 2 3 4</b></td><td>abdomen, liver, bone, lung window</td></tr>"
         "<tr><td><b>R</b>, Ctrl+R</td><td>reset this view, all views</td></tr>"
         "<tr><td><b>Ctrl+G</b>, Esc</td><td>segment, cancel</td></tr>"
         "<tr><td><b>Ctrl+F</b></td><td>centre on the largest lesion or the liver</td></tr>"
         "<tr><td><b>Ctrl+K</b>, Ctrl+Shift+K</td><td>similar cases to this case, to the "
         "selected lesion or crosshair</td></tr>"
         "<tr><td><b>3D view</b></td><td>left: rotate, wheel/right: zoom, middle: pan</td></tr>"
         "</table>"));
}

void MainWindow::showAbout() {
  QMessageBox::about(this,
                     tr("About Densa"),
                     tr("<b>Densa Viewer</b><br>Liver and liver-tumour segmentation of CT, "
                        "running natively and offline.<br><br>%1<br><br>Research use only; "
                        "not for clinical decisions.")
                         .arg(QString::fromStdString(toolkitVersions()).toHtmlEscaped()));
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (busy()) {
    cancel();
    waitForTask(60000);
  }
  QSettings settings;
  if (m_options.rememberLayout) {
    settings.setValue("geometry", saveGeometry());
    settings.setValue("windowState", saveState());
  }
  settings.setValue("overlayOpacity", m_state->overlayOpacity());
  if (m_options.interactive) {
    settings.setValue("minLesionMl", m_minLesion->value());
  }
  event->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
  if (event->mimeData()->hasUrls()) {
    event->acceptProposedAction();
  }
}

void MainWindow::dropEvent(QDropEvent* event) {
  const auto urls = event->mimeData()->urls();
  if (!urls.isEmpty() && urls.front().isLocalFile()) {
    open(urls.front().toLocalFile());
    event->acceptProposedAction();
  }
}

// ---------------------------------------------------------------------------------------------
// Similar cases

namespace {

QImage toImage(const app::RgbPicture& picture) {
  if (picture.empty()) {
    return {};
  }
  return QImage(picture.rgb.data(),
                static_cast<int>(picture.width),
                static_cast<int>(picture.height),
                static_cast<qsizetype>(picture.width * 3),
                QImage::Format_RGB888)
      .copy(); // own the pixels
}

} // namespace

QWidget* MainWindow::buildSimilarPanel(QWidget* parent) {
  auto* panel = new QWidget(parent);
  auto* layout = new QVBoxLayout(panel);
  auto* indexRow = new QHBoxLayout();
  m_similarIndexLabel = new QLabel(tr("No index chosen"), panel);
  m_similarIndexLabel->setObjectName("similarIndexLabel");
  m_similarIndexLabel->setWordWrap(true);
  m_similarIndexLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
  m_similarIndexLabel->setToolTip(
      tr("A case index made with `densa index add`; the model it records is used"));
  auto* choose = new QPushButton(tr("Index…"), panel);
  choose->setToolTip(tr("Choose the case index folder"));
  connect(choose, &QPushButton::clicked, this, &MainWindow::chooseSimilarIndex);
  indexRow->addWidget(m_similarIndexLabel, 1);
  indexRow->addWidget(choose);
  layout->addLayout(indexRow);

  auto* buttons = new QHBoxLayout();
  m_similarCaseButton = new QPushButton(tr("Similar to this case"), panel);
  m_similarCaseButton->setObjectName("similarCaseButton");
  m_similarCaseButton->setToolTip(tr("Search with the whole CT (Ctrl+K)"));
  connect(m_similarCaseButton, &QPushButton::clicked, this, [this] { findSimilarCases(); });
  m_similarPointButton = new QPushButton(tr("Similar to lesion / crosshair"), panel);
  m_similarPointButton->setObjectName("similarPointButton");
  m_similarPointButton->setToolTip(tr("Search with a patch centred on the lesion selected in the "
                                      "Results table, else on the crosshair (Ctrl+Shift+K)"));
  connect(m_similarPointButton, &QPushButton::clicked, this, [this] { findSimilarAtPoint(); });
  buttons->addWidget(m_similarCaseButton);
  buttons->addWidget(m_similarPointButton);
  layout->addLayout(buttons);

  auto* options = new QHBoxLayout();
  options->addWidget(new QLabel(tr("Cases to show"), panel));
  m_similarK = new QSpinBox(panel);
  m_similarK->setRange(1, 100);
  m_similarK->setValue(10);
  options->addWidget(m_similarK);
  options->addStretch();
  m_similarBusy = new QProgressBar(panel);
  m_similarBusy->setRange(0, 0); // busy indicator
  m_similarBusy->setMaximumWidth(120);
  m_similarBusy->setTextVisible(false);
  m_similarBusy->hide();
  options->addWidget(m_similarBusy);
  layout->addLayout(options);

  m_similarQuery = new QLabel(panel);
  m_similarQuery->setObjectName("similarQuery");
  m_similarQuery->setWordWrap(true);
  m_similarQuery->setAlignment(Qt::AlignLeft | Qt::AlignTop);
  m_similarCaption = new QLabel(tr("Open a CT, choose an index, then search."), panel);
  m_similarCaption->setObjectName("similarCaption");
  m_similarCaption->setWordWrap(true);
  layout->addWidget(m_similarCaption);
  layout->addWidget(m_similarQuery);

  m_similarTable = new QTableWidget(0, 4, panel);
  m_similarTable->setObjectName("similarTable");
  m_similarTable->setHorizontalHeaderLabels({tr("Patch"), tr("#"), tr("Case"), tr("Score")});
  m_similarTable->verticalHeader()->hide();
  m_similarTable->verticalHeader()->setDefaultSectionSize(54);
  m_similarTable->setIconSize(QSize(100, 50));
  m_similarTable->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_similarTable->setSelectionMode(QAbstractItemView::SingleSelection);
  m_similarTable->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_similarTable->horizontalHeader()->setSectionResizeMode(2, QHeaderView::Stretch);
  m_similarTable->setToolTip(tr("Double-click a case to open it side by side"));
  connect(m_similarTable, &QTableWidget::cellDoubleClicked, this, [this](int row, int) {
    openSimilarHit(row);
  });
  connect(m_similarTable, &QTableWidget::currentCellChanged, this, [this] { updateActions(); });
  layout->addWidget(m_similarTable, 1);

  m_similarOpenButton = new QPushButton(tr("Open side by side"), panel);
  m_similarOpenButton->setObjectName("similarOpenButton");
  connect(m_similarOpenButton, &QPushButton::clicked, this, [this] {
    openSimilarHit(m_similarTable->currentRow());
  });
  layout->addWidget(m_similarOpenButton);
  return panel;
}

bool MainWindow::setSimilarIndex(const QString& dir) {
  const fs::path p = toPath(dir);
  if (dir.isEmpty() || !fs::is_directory(p)) {
    reportError(tr("Similar cases"), tr("%1: no such folder").arg(dir));
    return false;
  }
  if (!fs::exists(p / "catalog.sqlite")) {
    reportError(
        tr("Similar cases"),
        tr("%1 holds no case index (catalog.sqlite); make one with `densa index add`").arg(dir));
    return false;
  }
  m_similarIndex = QFileInfo(dir).absoluteFilePath();
  m_similarIndexLabel->setText(m_similarIndex);
  m_similar.reset(); // re-read the index and its model at the next search
  if (m_options.interactive) {
    QSettings().setValue("similarIndex", m_similarIndex);
  }
  updateActions();
  return true;
}

void MainWindow::chooseSimilarIndex() {
  const QString dir = QFileDialog::getExistingDirectory(
      this,
      tr("Choose a case index folder"),
      m_similarIndex.isEmpty() ? QSettings().value("lastDir").toString() : m_similarIndex);
  if (!dir.isEmpty()) {
    setSimilarIndex(dir);
  }
}

bool MainWindow::findSimilarCases() {
  return startSimilarSearch(false);
}

bool MainWindow::findSimilarAtPoint() {
  return startSimilarSearch(true);
}

bool MainWindow::startSimilarSearch(bool atPoint) {
  const QString title = tr("Similar cases");
  const Document& doc = m_state->document();
  if (doc.empty()) {
    reportError(title, tr("open a CT first"));
    return false;
  }
  if (busy()) {
    reportError(title, tr("a task is already running"));
    return false;
  }
  if (m_similarIndex.isEmpty()) {
    reportError(title, tr("choose a case index folder first (Similar Cases → Choose Case Index)"));
    return false;
  }
  app::SimilarQuery query;
  query.k = m_similarK->value();
  if (atPoint) {
    const int row = m_lesions->currentRow();
    const auto& stats = doc.stats;
    if (stats && row >= 0 && static_cast<std::size_t>(row) < stats->lesions.size() &&
        !m_lesions->selectedItems().isEmpty()) {
      query.pointMm = stats->lesions[static_cast<std::size_t>(row)].centroidMm;
    } else {
      const auto& c = m_state->cursor();
      query.pointMm = doc.ct.indexToPhysical(
          {static_cast<double>(c[0]), static_cast<double>(c[1]), static_cast<double>(c[2])});
    }
  }
  const bool reuse = m_similar && m_similarLoadedIndex == m_similarIndex;
  auto searcher = std::make_shared<std::shared_ptr<app::SimilarCaseSearch>>(m_similar);
  auto result = std::make_shared<app::SimilarResult>();
  const fs::path index = toPath(m_similarIndex);
  const std::string device = m_options.device.toStdString();
  const core::Volume<std::int16_t>* ct = &doc.ct; // unchanged while busy
  auto task = std::make_unique<Task>();
  task->work = [searcher, result, index, device, reuse, ct, query](
                   const std::function<void(double)>& progress) mutable {
    if (!reuse) {
      *searcher = std::make_shared<app::SimilarCaseSearch>(index, std::nullopt, device);
    }
    query.sliceStepMm = (*searcher)->indexSliceStepMm().value_or(query.sliceStepMm);
    *result = (*searcher)->search(*ct, query, progress);
  };
  const QString indexDir = m_similarIndex;
  task->done = [this, searcher, result, indexDir] {
    m_similar = *searcher;
    m_similarLoadedIndex = indexDir;
    m_similarResult = std::move(*result);
    showSimilarResult();
    for (const auto& w : m_similarResult.warnings) {
      std::fprintf(stderr, "densa-viewer: similar cases: %s\n", w.c_str());
    }
    QString message = tr("Similar cases: %1 found").arg(m_similarResult.hits.size());
    if (!m_similarResult.warnings.empty()) {
      message += tr(" — warning: %1").arg(fromUtf8(m_similarResult.warnings.front()));
    }
    statusBar()->showMessage(message, 15000);
  };
  m_similarBusy->show();
  m_similarDock->show();
  m_similarDock->raise();
  connect(
      this,
      &MainWindow::taskFinished,
      m_similarBusy,
      [this] { m_similarBusy->hide(); },
      Qt::SingleShotConnection);
  startTask(atPoint ? tr("Searching similar patches") : tr("Searching similar cases"),
            std::move(task));
  return true;
}

void MainWindow::showSimilarResult() {
  const app::SimilarResult& r = m_similarResult;
  const QImage query = toImage(r.queryPicture);
  const bool patch = r.queryKind == "patch";
  QString caption = patch ? tr("Patch query at (%1, %2, %3) mm")
                                .arg(r.queryCentreMm[0], 0, 'f', 1)
                                .arg(r.queryCentreMm[1], 0, 'f', 1)
                                .arg(r.queryCentreMm[2], 0, 'f', 1)
                          : tr("Whole-case query (%1 tiles)").arg(r.queryTiles);
  caption += tr("; model %1").arg(QString::fromStdString(r.modelVersion));
  if (!query.isNull()) {
    m_similarQuery->setPixmap(
        QPixmap::fromImage(query.scaled(256, 128, Qt::KeepAspectRatio, Qt::SmoothTransformation)));
  } else {
    m_similarQuery->clear();
  }
  m_similarQuery->setToolTip(caption + tr("\nLeft: the patch; right: the model's attention"));
  m_similarCaption->setText(caption);
  m_similarTable->setRowCount(0);
  m_similarTable->setRowCount(static_cast<int>(r.hits.size()));
  for (std::size_t n = 0; n < r.hits.size(); ++n) {
    const auto& h = r.hits[n];
    const int row = static_cast<int>(n);
    const QImage picture = h.picture.empty() ? query : toImage(h.picture);
    auto* thumb = new QTableWidgetItem();
    if (!picture.isNull()) {
      thumb->setIcon(QIcon(QPixmap::fromImage(
          picture.scaled(100, 50, Qt::KeepAspectRatio, Qt::SmoothTransformation))));
    }
    thumb->setToolTip(h.picture.empty() ? tr("The query's patch (whole-case query)")
                                        : tr("The matched patch and its attention"));
    m_similarTable->setItem(row, 0, thumb);
    auto* rank = new QTableWidgetItem(QString::number(h.rank));
    rank->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    m_similarTable->setItem(row, 1, rank);
    auto* id = new QTableWidgetItem(QString::fromStdString(h.caseId));
    QString tip = QString::fromStdString(h.sourcePath);
    if (h.matchMm) {
      tip += tr("\nmatch at (%1, %2, %3) mm")
                 .arg((*h.matchMm)[0], 0, 'f', 1)
                 .arg((*h.matchMm)[1], 0, 'f', 1)
                 .arg((*h.matchMm)[2], 0, 'f', 1);
    }
    tip += tr("\ndistance %1").arg(h.distance, 0, 'f', 4);
    id->setToolTip(tip);
    m_similarTable->setItem(row, 2, id);
    auto* score = new QTableWidgetItem(QString::number(h.score, 'f', 3));
    score->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    m_similarTable->setItem(row, 3, score);
  }
  m_similarTable->resizeColumnToContents(1);
  m_similarTable->resizeColumnToContents(3);
  updateActions();
}

MainWindow* MainWindow::openSimilarHit(int row) {
  const QString title = tr("Open similar case");
  if (row < 0 || static_cast<std::size_t>(row) >= m_similarResult.hits.size()) {
    reportError(title, tr("choose a case in the Similar cases list first"));
    return nullptr;
  }
  const app::SimilarHit hit = m_similarResult.hits[static_cast<std::size_t>(row)];
  const QString source = QString::fromStdString(hit.sourcePath);
  if (!fs::exists(toPath(source))) {
    reportError(title,
                tr("%1: does not exist (moved or deleted since it was indexed?)").arg(source));
    return nullptr;
  }
  ViewerOptions options = m_options;
  options.rememberLayout = false;
  auto* other = new MainWindow(options);
  other->setAttribute(Qt::WA_DeleteOnClose);
  m_sideWindows.removeIf([](const QPointer<MainWindow>& w) { return w.isNull(); });
  m_sideWindows << other;
  // Side by side: to the right of this window when that fits on the screen, else the two share
  // the screen's width.
  const QRect frame = frameGeometry();
  const QRect available = screen() != nullptr ? screen()->availableGeometry() : QRect();
  const int margin = frame.width() - width();
  if (available.isNull() || frame.right() + frame.width() <= available.right()) {
    other->resize(size());
    other->move(frame.right() + 1, frame.top());
  } else {
    const int half = available.width() / 2;
    const int h = std::min(frame.height(), available.height()) - (frame.height() - height());
    setGeometry(available.left() + margin / 2,
                geometry().top(),
                std::max(400, half - margin),
                std::max(300, h));
    other->setGeometry(available.left() + half + margin / 2,
                       geometry().top(),
                       std::max(400, half - margin),
                       std::max(300, h));
  }
  other->applyWindowPreset(m_presets->currentIndex());
  other->show();
  if (hit.matchMm) {
    const core::Vec3 match = *hit.matchMm;
    QPointer<MainWindow> guard(other);
    connect(
        other,
        &MainWindow::taskFinished,
        other,
        [guard, match](bool ok) {
          if (ok && guard) {
            guard->state()->setCursorPhysical(match);
          }
        },
        Qt::SingleShotConnection);
  }
  if (!other->open(source)) {
    m_lastError = other->lastError();
    other->close();
    return nullptr;
  }
  statusBar()->showMessage(tr("Opening %1 side by side").arg(QString::fromStdString(hit.caseId)),
                           10000);
  return other;
}

} // namespace densa::gui
