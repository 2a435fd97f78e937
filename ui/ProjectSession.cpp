#include "ProjectSession.h"

#include <QDir>
#include <QFileInfo>
#include <QUndoStack>

#include <filesystem>

#include "CalibrationDock.h"
#include "ModelSession.h"
#include "PlanModel.h"
#include "RunsModel.h"
#include "Settings.h"
#include "common/Error.h"
#include "eval/CalibrationRun.h"
#include "export/ProjectH5.h"
#include "model/Model.h"
#include "quant/Plan.h"
#include "quant/RunDir.h"
#include "stats/WeightStats.h"

namespace qs::ui {

namespace {

// What Save takes from the session on the GUI thread: copies of small things, shared pointers to big ones.
struct Capture
{
    std::string modelPath;
    std::string modelFormat;
    int64_t parameters = 0;
    nlohmann::json plan;
    core::ProjectCalibration calibration;
    std::shared_ptr<const StatsList> stats;
    struct Run
    {
        std::string name;
        std::string runDir;
        std::shared_ptr<const core::QuantRun> result;
    };
    std::vector<Run> runs;
    nlohmann::json ui;
};

} // namespace

struct ProjectSession::Loaded
{
    core::Project project; // runs' contents moved into `runs`
    struct Run
    {
        QString name;
        QString runDir;
        bool missing = false;
        std::shared_ptr<const core::QuantRun> result;
    };
    std::vector<Run> runs;
    std::shared_ptr<const StatsList> stats;
    QString modelPath;
    QStringList warnings;
};

ProjectSession::ProjectSession(const Parts &parts, QObject *parent)
    : QObject(parent), m_parts(parts), m_runner(parts.session->runner())
{
    connect(m_parts.undo, &QUndoStack::cleanChanged, this, [this] { Q_EMIT modifiedChanged(isModified()); });
    connect(m_parts.runs, &RunsModel::runFinished, this, [this](int id) {
        const auto run = m_parts.runs->run(id);
        if (!m_restoring && run && run->state == RunsModel::State::Done)
            setRunsDirty(true);
    });
    connect(m_parts.session, &ModelSession::modelOpened, this, [this] {
        if (m_pending) {
            const std::shared_ptr<const Loaded> loaded = std::move(m_pending);
            m_pending.reset();
            if (m_parts.session->modelPath() == loaded->modelPath) {
                restore(loaded);
                return;
            }
            // Another model was opened while the project's was loading: that one wins.
            m_busy = false;
            Q_EMIT warning(tr("%1: not restored, another model was opened meanwhile").arg(m_pendingPath));
        }
        // A model opened on its own starts a new, unsaved session.
        if (!m_path.isEmpty()) {
            m_path.clear();
            Q_EMIT pathChanged(m_path);
        }
        setRunsDirty(false);
        Q_EMIT modifiedChanged(isModified());
    });
    connect(m_runner, &JobRunner::cancelled, this, [this](JobId id) {
        if (id != m_job || !m_busy)
            return;
        m_busy = false;
        if (m_saving)
            Q_EMIT saveFailed(m_jobPath, tr("%1: saving was cancelled; nothing was written").arg(m_jobPath));
        else
            Q_EMIT openFailed(m_jobPath, tr("%1: opening was cancelled").arg(m_jobPath));
    });
    connect(m_parts.session, &ModelSession::openFailed, this, [this](const QString &, const QString &error) {
        if (!m_pending)
            return;
        m_pending.reset();
        m_busy = false;
        // ModelSession reports the model's own error; this says which project it belonged to.
        Q_EMIT warning(tr("%1: the project's model could not be opened: %2").arg(m_pendingPath, error));
    });
}

void ProjectSession::setUiStateHandlers(std::function<nlohmann::json()> capture,
                                        std::function<void(const nlohmann::json &)> restore)
{
    m_captureUi = std::move(capture);
    m_restoreUi = std::move(restore);
}

bool ProjectSession::hasSession() const { return m_parts.session->model() != nullptr; }

bool ProjectSession::isModified() const { return hasSession() && (!m_parts.undo->isClean() || m_runsDirty); }

void ProjectSession::setRunsDirty(bool dirty)
{
    if (m_runsDirty == dirty)
        return;
    m_runsDirty = dirty;
    Q_EMIT modifiedChanged(isModified());
}

QString ProjectSession::fileFilter()
{
    return tr("QuantScope projects (*.qsproj.h5 *.qsproj *.h5);;All files (*)");
}

bool ProjectSession::isProjectPath(const QString &path) { return core::looksLikeProjectPath(path.toStdString()); }

QString ProjectSession::withExtension(const QString &path)
{
    return isProjectPath(path) ? path : path + QString::fromLatin1(core::kProjectExtension);
}

void ProjectSession::save(const QString &path)
{
    const std::shared_ptr<const core::Model> model = m_parts.session->model();
    if (!model || m_busy)
        return;
    auto capture = std::make_shared<Capture>();
    capture->modelPath = m_parts.session->modelPath().toStdString();
    capture->modelFormat = model->format;
    capture->parameters = model->parameterCount();
    if (m_parts.plan->rowCount() > 0)
        capture->plan = m_parts.plan->toPlanJson();
    const Settings &s = *m_parts.settings;
    capture->calibration.settings = {{"text", s.calibrationText().toStdString()},
                                     {"samples", s.calibrationSamples()},
                                     {"seq_len", s.calibrationSeqLen()},
                                     {"seed", s.calibrationSeed()},
                                     {"eval_text", s.evalText().toStdString()},
                                     {"eval_ctx", s.evalContext()},
                                     {"eval_protocol", s.evalProtocol().toStdString()},
                                     {"eval_max_chunks", s.evalMaxChunks()}};
    if (const auto calibration = m_parts.session->calibration())
        capture->calibration.provenance = calibration->calibration.toJson();
    capture->stats = m_parts.session->stats();
    for (const auto &run : m_parts.runs->runs())
        if (run->state == RunsModel::State::Done && run->result)
            capture->runs.push_back({run->name.toStdString(), run->runDir.toStdString(), run->result});
    capture->ui = m_captureUi ? m_captureUi() : nlohmann::json::object();

    const int undoIndex = m_parts.undo->index();
    const int runCount = int(capture->runs.size());
    const std::string target = path.toStdString();
    m_busy = true;
    m_saving = true;
    m_jobPath = path;
    m_job = m_runner->run<bool>(
        tr("Save project %1").arg(QFileInfo(path).fileName()), QStringLiteral("project"),
        [capture, target](core::Progress &progress) {
            core::Project p;
            progress.message("hashing the model files");
            p.model = core::describeModel(capture->modelPath, capture->modelFormat, &progress);
            p.model.parameters = capture->parameters;
            p.plan = capture->plan;
            p.calibration = capture->calibration;
            if (capture->stats)
                p.weightStats = *capture->stats;
            // A run with a RUN_DIR is referenced (its tensors live there); a run kept only in the session
            // stores its tensors, the only copy there is.
            for (const Capture::Run &r : capture->runs)
                p.runs.push_back(core::projectRunFrom(*r.result, r.name, r.runDir, r.runDir.empty()));
            p.uiState = capture->ui;
            core::writeProject(p, target, progress);
            return true;
        },
        [this, path, undoIndex, runCount](std::shared_ptr<const bool>) {
            m_busy = false;
            if (m_parts.undo->index() == undoIndex)
                m_parts.undo->setClean();
            int done = 0;
            for (const auto &run : m_parts.runs->runs())
                done += run->state == RunsModel::State::Done ? 1 : 0;
            if (done == runCount)
                setRunsDirty(false);
            if (m_path != path) {
                m_path = path;
                Q_EMIT pathChanged(m_path);
            }
            Q_EMIT modifiedChanged(isModified());
            Q_EMIT saved(path);
        },
        [this, path](const QString &error) {
            m_busy = false;
            Q_EMIT saveFailed(path, error);
        });
}

void ProjectSession::open(const QString &path)
{
    if (m_busy)
        return;
    const std::string source = path.toStdString();
    m_busy = true;
    m_pendingPath = path;
    m_jobPath = path;
    m_saving = false;
    m_job = m_runner->run<Loaded>(
        tr("Open project %1").arg(QFileInfo(path).fileName()), QStringLiteral("project"),
        [source](core::Progress &progress) {
            namespace fs = std::filesystem;
            Loaded loaded;
            progress.message("reading " + source);
            loaded.project = core::readProject(source);
            core::Project &p = loaded.project;

            // The model: as recorded, else its absolute path; warn when its files changed since saving.
            std::error_code ec;
            std::string modelPath = p.model.path;
            if (!fs::exists(modelPath, ec) && !p.model.absolutePath.empty() && fs::exists(p.model.absolutePath, ec))
                modelPath = p.model.absolutePath;
            loaded.modelPath = QString::fromStdString(modelPath);
            if (fs::exists(modelPath, ec) && !p.model.sha256.empty()) {
                progress.message("checking the model's SHA-256");
                core::RunProvenance now;
                core::hashModelFiles(modelPath, now, &progress);
                if (now.modelSha256 != p.model.sha256)
                    loaded.warnings << QStringLiteral("%1: the model %2 has changed since the project was saved (SHA-256 %3, "
                                                      "the project recorded %4)")
                                           .arg(QString::fromStdString(source), loaded.modelPath,
                                                QString::fromStdString(now.modelSha256),
                                                QString::fromStdString(p.model.sha256));
            }

            // Runs: re-read from their RUN_DIR when it is there, else the project's copy.
            for (core::ProjectRun &run : p.runs) {
                progress.throwIfCancelled();
                Loaded::Run r;
                r.name = QString::fromStdString(run.name);
                r.runDir = QString::fromStdString(run.runDir);
                core::ProjectRun use = std::move(run);
                if (!use.runDir.empty()) {
                    if (core::isRunDir(use.runDir)) {
                        progress.message("reading run " + use.runDir);
                        use = core::projectRunFrom(core::readRunDir(use.runDir), use.name, true);
                    } else {
                        r.missing = true;
                        loaded.warnings << QStringLiteral("%1: run '%2': its run directory %3 is missing; showing the "
                                                          "metrics stored in the project")
                                               .arg(QString::fromStdString(source), r.name, r.runDir);
                    }
                }
                try {
                    r.result = std::make_shared<const core::QuantRun>(core::quantRunFrom(use));
                } catch (const core::Error &e) {
                    core::fail(source, "run '" + use.name + "': " + e.what());
                }
                loaded.runs.push_back(std::move(r));
            }
            p.runs.clear();
            loaded.stats = std::make_shared<const StatsList>(std::move(p.weightStats));
            p.weightStats.clear();
            return loaded;
        },
        [this, path](std::shared_ptr<const Loaded> loaded) {
            for (const QString &w : loaded->warnings)
                Q_EMIT warning(w);
            m_pending = loaded;
            m_pendingPath = path;
            Q_EMIT message(tr("Opening the project's model %1").arg(loaded->modelPath));
            m_parts.session->openModel(loaded->modelPath, loaded->stats);
        },
        [this, path](const QString &error) {
            m_busy = false;
            Q_EMIT openFailed(path, error);
        });
}

void ProjectSession::restore(const std::shared_ptr<const Loaded> &loaded)
{
    m_restoring = true;
    const core::Project &p = loaded->project;
    const std::shared_ptr<const core::Model> model = m_parts.session->model();

    // Plan: the stored plan resolved against the opened model (names and shapes only: cheap), applied as
    // rows; the undo stack starts empty, as after opening a model.
    if (model && !p.plan.is_null()) {
        try {
            const std::vector<core::PlannedLayer> planned = core::Plan::fromJson(p.plan).resolve(*model);
            std::vector<PlanModel::Row> rows = m_parts.plan->rows();
            for (PlanModel::Row &r : rows)
                for (const core::PlannedLayer &l : planned)
                    if (l.name == r.name) {
                        r.quantize = l.quantize;
                        if (l.quantize)
                            r.config = l.config;
                    }
            m_parts.plan->setRows(rows, tr("Open project"));
        } catch (const core::Error &e) {
            Q_EMIT warning(tr("%1: the stored plan does not fit the model: %2").arg(m_pendingPath, QString::fromUtf8(e.what())));
        }
    }
    m_parts.undo->clear();

    // Calibration and evaluation settings (the dock writes them through to Settings).
    const nlohmann::json &c = p.calibration.settings;
    auto str = [&c](const char *a, const char *b = nullptr) -> QString {
        for (const char *k : {a, b})
            if (k && c.contains(k) && c[k].is_string())
                return QString::fromStdString(c[k].get<std::string>());
        return {};
    };
    auto num = [&c](const char *k, int fallback) { return c.contains(k) && c[k].is_number_integer() ? c[k].get<int>() : fallback; };
    if (CalibrationDock *dock = m_parts.calibration) {
        const Settings &s = *m_parts.settings;
        if (const QString t = str("text", "text_path"); !t.isEmpty())
            dock->setCalibrationText(t);
        dock->setCalibrationSize(num("samples", s.calibrationSamples()), num("seq_len", s.calibrationSeqLen()));
        dock->setCalibrationSeed(num("seed", s.calibrationSeed()));
        if (const QString t = str("eval_text"); !t.isEmpty())
            dock->setEvaluationText(t);
        dock->setEvaluationContext(num("eval_ctx", s.evalContext()), num("eval_max_chunks", s.evalMaxChunks()));
        if (const QString t = str("eval_protocol"); !t.isEmpty())
            dock->setEvaluationProtocol(t);
    }

    for (const Loaded::Run &r : loaded->runs)
        m_parts.runs->addFinishedRun(r.name, r.result, r.runDir, r.missing);

    if (m_restoreUi)
        m_restoreUi(p.uiState);

    m_restoring = false;
    m_busy = false;
    m_runsDirty = false;
    m_path = m_pendingPath;
    Q_EMIT pathChanged(m_path);
    Q_EMIT modifiedChanged(isModified());
    Q_EMIT opened(m_path);
}

} // namespace qs::ui
