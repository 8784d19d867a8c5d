// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "densa/app/similar_cases.hpp"
#include "densa/gui/slice_view.hpp"
#include "densa/gui/surface_view.hpp"
#include "densa/gui/view_state.hpp"

#include <QList>
#include <QMainWindow>
#include <QPointer>
#include <QString>

#include <atomic>
#include <memory>

class QLabel;
class QMenu;
class QProgressBar;
class QPushButton;
class QTableWidget;
class QComboBox;
class QDoubleSpinBox;
class QSlider;
class QSpinBox;
class QAction;
class QThread;
class QDockWidget;

namespace densa::app {
class Segmenter;
} // namespace densa::app

namespace densa::gui {

struct ViewerOptions {
  QString model; ///< a .densa checkpoint; empty: the bundled default model
  QString device = "cpu";
  bool interactive = true; ///< false: errors go to stderr and lastError(), never to a dialog
  /// Lesions smaller than this (mL) become liver; negative: the remembered setting (default 0,
  /// every lesion kept, as `densa segment`).
  double minLesionMl = -1;
  /// false: closing the window does not remember its geometry and docks (second windows).
  bool rememberLayout = true;
};

/// The viewer's main window: axial, coronal and sagittal views and the 3D view in a 2×2 grid, a
/// results panel (volumes and the lesion table), overlay controls, a "Similar cases" panel (ADSL
/// retrieval over a case index, densa/app/similar_cases.hpp), and background tasks (loading,
/// segmenting, searching) with progress and cancel.
class MainWindow : public QMainWindow {
  Q_OBJECT
public:
  explicit MainWindow(ViewerOptions options = {}, QWidget* parent = nullptr);
  ~MainWindow() override;
  MainWindow(const MainWindow&) = delete;
  MainWindow& operator=(const MainWindow&) = delete;

  /// Opens a NIfTI/NRRD/MetaImage file or a DICOM file or folder tree (asking which series when
  /// it holds several and the window is interactive) in the background. False when it could not
  /// start (busy, or no series); the outcome arrives with taskFinished.
  bool open(const QString& path);
  /// Loads a label map (0/1/2; `map` renames values, e.g. "5:1") as the overlay, resampled
  /// (nearest neighbour) onto the CT's grid when its grid differs. Synchronous.
  bool openOverlay(const QString& path, const QString& map = {});
  /// Segments the open CT with the model in the background, as `densa segment` does.
  bool segment();
  void cancel();

  [[nodiscard]] bool busy() const noexcept { return m_task != nullptr; }

  /// Runs the event loop until no task is running (or `timeoutMs` passed); returns the last
  /// task's success.
  bool waitForTask(int timeoutMs = 600000);

  [[nodiscard]] QString lastError() const { return m_lastError; }

  bool exportLabels(const QString& file);
  bool exportDicomSeg(const QString& file);
  bool exportReport(const QString& file);
  /// PNG of `widget` (the whole window when null), written atomically.
  bool saveScreenshot(const QString& file, QWidget* widget = nullptr);
  /// Centres every view on the largest lesion, else on the liver's centre, else keeps the cursor.
  void centreOnFindings();

  [[nodiscard]] ViewState* state() const noexcept { return m_state; }

  [[nodiscard]] SliceView* sliceView(Plane plane) const;

  [[nodiscard]] SurfaceView* surfaceView() const noexcept { return m_surface; }

  [[nodiscard]] QTableWidget* lesionTable() const noexcept { return m_lesions; }

  void applyWindowPreset(int index);

  /// The case index folder (`densa index add`) the "Similar cases" panel searches; the model it
  /// records is used. Remembered (QSettings "similarIndex") when the window is interactive. False
  /// (error reported) when `dir` holds no index.
  bool setSimilarIndex(const QString& dir);

  [[nodiscard]] QString similarIndex() const { return m_similarIndex; }

  /// Searches the index for cases like the open CT (a whole-case query) in the background; the
  /// outcome arrives with taskFinished and fills similarTable().
  bool findSimilarCases();
  /// As findSimilarCases() for a patch query centred on the lesion selected in the lesion table,
  /// else on the crosshair.
  bool findSimilarAtPoint();

  /// Opens hit `row` of the similar-case results in a second viewer window placed next to this
  /// one (centred on the matched patch for patch queries); null (error reported) when it cannot.
  MainWindow* openSimilarHit(int row);

  [[nodiscard]] QTableWidget* similarTable() const noexcept { return m_similarTable; }

  /// The last similar-case search's result (empty hits before any).
  [[nodiscard]] const app::SimilarResult& similarResult() const noexcept { return m_similarResult; }

signals:
  void taskFinished(bool ok);

protected:
  void closeEvent(QCloseEvent* event) override;
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;

private:
  struct Task;
  void buildUi();
  void buildMenus();
  void startTask(const QString& title, std::unique_ptr<Task> task);
  void finishTask();
  void reportError(const QString& title, const QString& message);
  void updateResults();
  void updateActions();
  void addRecent(const QString& path);
  void rebuildRecentMenu();
  void chooseAndOpenFile();
  void chooseAndOpenFolder();
  void chooseAndOpenOverlay();
  void chooseModel();
  void exportWithDialog(int what);
  void screenshotWithDialog(QWidget* widget);
  void showShortcuts();
  void showAbout();
  QWidget* buildSimilarPanel(QWidget* parent);
  void chooseSimilarIndex();
  bool startSimilarSearch(bool atPoint);
  void showSimilarResult();

  ViewerOptions m_options;
  ViewState* m_state = nullptr;
  SliceView* m_axial = nullptr;
  SliceView* m_coronal = nullptr;
  SliceView* m_sagittal = nullptr;
  SurfaceView* m_surface = nullptr;
  QLabel* m_summary = nullptr;
  QTableWidget* m_lesions = nullptr;
  QLabel* m_hover = nullptr;
  QProgressBar* m_progress = nullptr;
  QPushButton* m_cancelButton = nullptr;
  QComboBox* m_presets = nullptr;
  QSlider* m_opacity = nullptr;
  QMenu* m_recentMenu = nullptr;
  QAction* m_segmentAction = nullptr;
  QAction* m_cancelAction = nullptr;
  QList<QAction*> m_needDocument;
  QList<QAction*> m_needLabels;
  QAction* m_exportSegAction = nullptr;
  std::unique_ptr<Task> m_task;
  QThread* m_thread = nullptr;
  std::shared_ptr<std::atomic<bool>> m_cancel;
  std::shared_ptr<app::Segmenter> m_segmenter;
  QString m_segmenterFile;
  double m_segmenterMinLesion = 0;
  QDoubleSpinBox* m_minLesion = nullptr;
  QString m_lastError;
  bool m_lastOk = true;
  // Similar cases.
  QDockWidget* m_similarDock = nullptr;
  QLabel* m_similarIndexLabel = nullptr;
  QLabel* m_similarQuery = nullptr;
  QLabel* m_similarCaption = nullptr;
  QTableWidget* m_similarTable = nullptr;
  QProgressBar* m_similarBusy = nullptr;
  QSpinBox* m_similarK = nullptr;
  QPushButton* m_similarCaseButton = nullptr;
  QPushButton* m_similarPointButton = nullptr;
  QPushButton* m_similarOpenButton = nullptr;
  QAction* m_similarCaseAction = nullptr;
  QAction* m_similarPointAction = nullptr;
  QString m_similarIndex;
  std::shared_ptr<app::SimilarCaseSearch> m_similar; ///< loaded for m_similarLoadedIndex
  QString m_similarLoadedIndex;
  app::SimilarResult m_similarResult;
  QList<QPointer<MainWindow>> m_sideWindows;
};

} // namespace densa::gui
