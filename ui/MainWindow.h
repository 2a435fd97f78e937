#pragma once
// Composes the docks and routes actions; it does not load, compute or lay out data itself.

#include <QMainWindow>

#include <nlohmann/json_fwd.hpp>

#include "ModelExport.h"

class QMenu;
class QTabWidget;
class QUndoStack;
class QLabel;

namespace qs::ui {

class JobRunner;
class ActivationView;
class CalibrationDock;
class JobsDock;
class RunsModel;
class RunsView;
class LayerView;
class LayerCompareView;
class LogDock;
class ModelSession;
class ProjectSession;
class Settings;

class MainWindow : public QMainWindow
{
    Q_OBJECT
public:
    explicit MainWindow(QWidget *parent = nullptr);
    ~MainWindow() override;

    // Opens a model, or a project (ProjectSession::isProjectPath: .qsproj.h5, .h5, ...).
    void openPath(const QString &path);
    // File › Save project: writes to the current project file, or asks for one (returns false when the
    // user cancelled the dialog or nothing can be saved); File › Save project as…; File › Open project…
    bool saveProject();
    bool saveProjectAs();
    void showOpenProjectDialog();
    ProjectSession *project() const { return m_project; }
    void openDemoModel();
    void startQuantization();
    // Shows the Compare tab for a layer (model tensor index) and runs the comparison when the layer has
    // none yet.
    // File › Export…: the dialog, then exportModel(). exportModel() starts the export job directly (tests):
    // runId 0 exports the open model; returns the job id or 0.
    void showExportDialog();
    JobId exportModel(int runId, const ModelExportRequest &request);
    void compareMethods(int tensorIndex);
    LayerCompareView *compareView() const { return m_compareView; }
    RunsModel *runsModel() const { return m_runs; }
    RunsView *runsView() const { return m_runsView; }

    JobRunner *jobRunner() const { return m_runner; }
    ModelSession *session() const { return m_session; }
    QUndoStack *undoStack() const { return m_undoStack; }
    LogDock *logDock() const { return m_logDock; }
    LayerView *layerView() const { return m_layerView; }
    ActivationView *activationView() const { return m_activationView; }
    CalibrationDock *calibrationDock() const { return m_calibrationDock; }
    QTabWidget *plotTabs() const { return m_plotTabs; }
    QDockWidget *modelDock() const { return m_modelDock; }

protected:
    void closeEvent(QCloseEvent *event) override;
    void showEvent(QShowEvent *event) override;
    void dragEnterEvent(QDragEnterEvent *event) override;
    void dropEvent(QDropEvent *event) override;

private:
    void createDocks();
    void createMenus();
    void updateRecentMenu();
    void showOpenDialog();
    void showAbout();
    void updateTitle();
    nlohmann::json captureUiState() const;
    void restoreUiState(const nlohmann::json &state);

    JobRunner *m_runner;
    ModelSession *m_session;
    QUndoStack *m_undoStack;
    Settings *m_settings;

    QTabWidget *m_plotTabs = nullptr;
    LayerView *m_layerView = nullptr;
    LayerCompareView *m_compareView = nullptr;
    ActivationView *m_activationView = nullptr;
    CalibrationDock *m_calibrationDock = nullptr;
    RunsModel *m_runs = nullptr;
    RunsView *m_runsView = nullptr;
    JobsDock *m_jobsDock = nullptr;
    LogDock *m_logDock = nullptr;
    QDockWidget *m_modelDock = nullptr;
    QDockWidget *m_planDock = nullptr;
    QMenu *m_recentMenu = nullptr;
    QMenu *m_viewMenu = nullptr;
    QLabel *m_statusModel = nullptr;
    ProjectSession *m_project = nullptr;
    QAction *m_saveProject = nullptr;
    QAction *m_saveProjectAs = nullptr;
    bool m_closeAfterSave = false;
    bool m_layoutRestored = false;
    bool m_shown = false;
};

} // namespace qs::ui
