#pragma once
// File › Save/Open project (docs/hdf5-project.md): captures the session as plain data on the GUI thread
// (cheap copies and shared pointers: model path, plan rows as JSON, calibration settings, the weight
// statistics already computed, finished runs, UI state), writes it in a job, and restores a project read
// in a job: re-opens the model through ModelSession (with the stored statistics, so they are not
// recomputed), restores the plan (undo stack cleared), the calibration settings, the runs (re-read from
// their RUN_DIRs when present, else the project's copy marked "missing run dir") and the UI state.
//
// "Modified" means the plan or the runs changed since the project was last saved or opened: the undo
// stack is not clean, or a run finished since.

#include <QObject>
#include <QString>

#include <functional>
#include <memory>

#include <nlohmann/json.hpp>

#include "JobRunner.h"

class QUndoStack;

namespace qs::ui {

class CalibrationDock;
class ModelSession;
class PlanModel;
class RunsModel;
class Settings;

class ProjectSession : public QObject
{
    Q_OBJECT
public:
    struct Parts
    {
        ModelSession *session = nullptr;
        PlanModel *plan = nullptr;
        RunsModel *runs = nullptr;
        CalibrationDock *calibration = nullptr;
        Settings *settings = nullptr;
        QUndoStack *undo = nullptr;
    };
    ProjectSession(const Parts &parts, QObject *parent = nullptr);

    // The front end's own state (selected layer, tab, run) as JSON, and how to put it back.
    void setUiStateHandlers(std::function<nlohmann::json()> capture, std::function<void(const nlohmann::json &)> restore);

    QString path() const { return m_path; } // empty until saved or opened
    bool isModified() const;
    bool isBusy() const { return m_busy; }
    bool hasSession() const; // a model is open

    // Starts writing the session to path (a job). Emits saved or saveFailed.
    void save(const QString &path);
    // Starts reading a project (a job), then restores it. Emits opened or openFailed.
    void open(const QString &path);

    static QString fileFilter(); // for file dialogs
    static bool isProjectPath(const QString &path);
    static QString withExtension(const QString &path); // appends ".qsproj.h5" unless it ends in .h5/.hdf5/.qsproj*

Q_SIGNALS:
    void modifiedChanged(bool modified);
    void pathChanged(const QString &path);
    void saved(const QString &path);
    void saveFailed(const QString &path, const QString &error);
    void opened(const QString &path);
    void openFailed(const QString &path, const QString &error);
    void message(const QString &text);
    void warning(const QString &text);

private:
    struct Loaded;
    void restore(const std::shared_ptr<const Loaded> &loaded);
    void setRunsDirty(bool dirty);

    Parts m_parts;
    JobRunner *m_runner;
    std::function<nlohmann::json()> m_captureUi;
    std::function<void(const nlohmann::json &)> m_restoreUi;
    QString m_path;
    bool m_runsDirty = false;
    bool m_busy = false;
    bool m_saving = false;
    JobId m_job = 0;
    QString m_jobPath;
    bool m_restoring = false;
    std::shared_ptr<const Loaded> m_pending; // read, waiting for its model to open
    QString m_pendingPath;
};

} // namespace qs::ui
