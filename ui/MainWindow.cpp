#include "MainWindow.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QShowEvent>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableView>
#include <QUndoStack>

#include "JobRunner.h"
#include "JobsDock.h"
#include "ActivationView.h"
#include "CalibrationDock.h"
#include "LayerView.h"
#include "LayerCompareView.h"
#include "LogDock.h"
#include "ModelExport.h"
#include "ModelDock.h"
#include "ModelSession.h"
#include "PlanDock.h"
#include "PlanModel.h"
#include "ProjectSession.h"
#include "RunsModel.h"
#include "RunsView.h"
#include "quant/Pipeline.h"
#include <nlohmann/json.hpp>
#include "Settings.h"
#include "StartPage.h"
#include "report/ReportDialog.h"
#include "common/Version.h"
#include "export/ProjectH5.h"
#include "io/FormatRegistry.h"
#include "model/ActivationObserver.h"
#include "model/Model.h"

// Resources compiled into the static qs_ui library must be registered by hand.
static void initResources() { Q_INIT_RESOURCE(resources); }

namespace qs::ui {

MainWindow::MainWindow(QWidget *parent)
    : QMainWindow(parent),
      m_runner(new JobRunner(this, std::max(1, QThread::idealThreadCount()))),
      m_session(new ModelSession(m_runner, this)),
      m_undoStack(new QUndoStack(this)),
      m_settings(new Settings)
{
    initResources();
    setObjectName(QStringLiteral("MainWindow"));
    setAcceptDrops(true);
    setDockNestingEnabled(true);

    m_plotTabs = new QTabWidget(this);
    m_plotTabs->setObjectName(QStringLiteral("plotTabs"));
    m_plotTabs->setDocumentMode(true);
    auto *start = new StartPage(this);
    m_plotTabs->addTab(start, tr("Start"));
    connect(start, &StartPage::openRequested, this, &MainWindow::showOpenDialog);
    connect(start, &StartPage::demoRequested, this, &MainWindow::openDemoModel);
    m_layerView = new LayerView(m_session, this);
    m_plotTabs->addTab(m_layerView, tr("Layer"));
    m_activationView = new ActivationView(m_session, this);
    m_plotTabs->addTab(m_activationView, tr("Activations"));
    m_runs = new RunsModel(m_session, this);
    m_runsView = new RunsView(m_session, m_runs, this);
    m_plotTabs->addTab(m_runsView, tr("Runs"));
    connect(m_runs, &RunsModel::message, this, [this](const QString &t) { m_logDock->append(LogLevel::Warning, t); });
    connect(m_runs, &RunsModel::runFinished, this, [this](int id) {
        const auto run = m_runs->run(id);
        if (!run)
            return;
        if (run->state == RunsModel::State::Done && run->result) {
            QString summary = tr("%1 done: %2 bits/weight").arg(run->name).arg(run->result->bitsPerWeight, 0, 'f', 3);
            if (run->result->evaluation)
                summary += tr(", perplexity %1 (original %2), KLD %3")
                               .arg(run->result->evaluation->perplexity, 0, 'f', 4)
                               .arg(run->result->evaluation->originalPerplexity, 0, 'f', 4)
                               .arg(run->result->evaluation->kldMean, 0, 'g', 4);
            m_logDock->append(LogLevel::Info, summary);
            for (const std::string &w : run->result->warnings)
                m_logDock->append(LogLevel::Warning, QString::fromStdString(w));
        }
    });
    setCentralWidget(m_plotTabs);
    m_session->setOutlierSigma(m_settings->outlierSigma());
    m_session->setHistogramBins(m_settings->histogramBins());
    connect(m_session, &ModelSession::outlierSigmaChanged, this, [this](double k) { m_settings->setOutlierSigma(k); });

    createDocks();
    // The Compare tab writes into the plan, so it comes after the plan dock.
    m_compareView = new LayerCompareView(m_session, m_settings, static_cast<PlanDock *>(m_planDock)->planModel(), this);
    m_plotTabs->insertTab(m_plotTabs->indexOf(m_layerView) + 1, m_compareView, tr("Compare"));
    connect(m_compareView, &LayerCompareView::message, this, [this](const QString &t) { m_logDock->append(LogLevel::Info, t); });
    connect(m_compareView, &LayerCompareView::calibrationTextNeeded, this, [this] {
        m_calibrationDock->show();
        m_calibrationDock->raise();
    });
    // After the docks: its modelOpened handler must run after the plan dock and the runs model reset.
    m_project = new ProjectSession({m_session, static_cast<PlanDock *>(m_planDock)->planModel(), m_runs, m_calibrationDock,
                                    m_settings, m_undoStack},
                                   this);
    m_project->setUiStateHandlers([this] { return captureUiState(); },
                                  [this](const nlohmann::json &state) { restoreUiState(state); });
    connect(m_project, &ProjectSession::modifiedChanged, this, [this] { updateTitle(); });
    connect(m_project, &ProjectSession::pathChanged, this, [this] { updateTitle(); });
    connect(m_project, &ProjectSession::message, this, [this](const QString &t) { m_logDock->append(LogLevel::Info, t); });
    connect(m_project, &ProjectSession::warning, this, [this](const QString &t) { m_logDock->append(LogLevel::Warning, t); });
    connect(m_project, &ProjectSession::saved, this, [this](const QString &path) {
        m_settings->addRecentFile(path);
        updateRecentMenu();
        m_logDock->append(LogLevel::Info, tr("Saved project %1").arg(path));
        statusBar()->showMessage(tr("Saved %1").arg(path), 5000);
        if (m_closeAfterSave)
            close();
    });
    connect(m_project, &ProjectSession::saveFailed, this, [this](const QString &, const QString &error) {
        m_closeAfterSave = false;
        m_logDock->append(LogLevel::Error, error);
        QMessageBox::warning(this, tr("Could not save project"), error);
    });
    connect(m_project, &ProjectSession::opened, this, [this](const QString &path) {
        m_settings->addRecentFile(path);
        updateRecentMenu();
        m_logDock->append(LogLevel::Info, tr("Opened project %1").arg(path));
        statusBar()->showMessage(tr("Opened project %1").arg(path), 5000);
    });
    connect(m_project, &ProjectSession::openFailed, this, [this](const QString &, const QString &error) {
        m_logDock->append(LogLevel::Error, error);
        QMessageBox::warning(this, tr("Could not open project"), error);
    });
    createMenus();

    m_statusModel = new QLabel(tr("No model"), this);
    statusBar()->addPermanentWidget(m_statusModel);
    statusBar()->showMessage(tr("Ready"), 3000);

    connect(m_session, &ModelSession::modelOpened, this, [this](const QString &path) {
        m_settings->addRecentFile(path);
        updateRecentMenu();
        updateTitle();
        statusBar()->showMessage(tr("Opened %1").arg(path), 5000);
    });
    connect(m_session, &ModelSession::openFailed, this, [this](const QString &path, const QString &error) {
        m_logDock->append(LogLevel::Error, error);
        statusBar()->showMessage(tr("Could not open %1").arg(QFileInfo(path).fileName()), 8000);
        QMessageBox::warning(this, tr("Could not open model"), error);
    });
    connect(m_session, &ModelSession::message, this,
            [this](const QString &t) { m_logDock->append(LogLevel::Info, t); });
    connect(m_session, &ModelSession::warning, this,
            [this](const QString &t) { m_logDock->append(LogLevel::Warning, t); });
    connect(m_runner, &JobRunner::failed, this,
            [this](JobId id, const QString &e) { m_logDock->append(LogLevel::Error, e); Q_UNUSED(id); });

    resize(1280, 800);
    restoreGeometry(m_settings->windowGeometry());
    m_layoutRestored = restoreState(m_settings->windowState());
    updateTitle();
}

MainWindow::~MainWindow()
{
    // Jobs capture the session and the window: stop them before anything they point to goes away.
    delete m_runner;
    m_runner = nullptr;
    // It listens to the undo stack, which announces its last clean state while being destroyed, after the
    // session it reads from is gone.
    delete m_project;
    m_project = nullptr;
    delete m_settings;
}

void MainWindow::createDocks()
{
    auto *modelDock = new ModelDock(m_session, this);
    m_modelDock = modelDock;
    connect(modelDock, &ModelDock::tensorSelected, this, [this](int tensor) {
        m_layerView->showTensor(tensor);
        m_activationView->showTensor(tensor);
        if (m_compareView)
            m_compareView->showTensor(tensor);
        if (m_plotTabs->currentWidget() != m_activationView && m_plotTabs->currentWidget() != m_compareView)
            m_plotTabs->setCurrentWidget(m_layerView);
    });
    connect(modelDock, &ModelDock::compareMethodsRequested, this, &MainWindow::compareMethods);
    connect(m_layerView, &LayerView::compareMethodsRequested, this, &MainWindow::compareMethods);
    addDockWidget(Qt::LeftDockWidgetArea, m_modelDock);

    auto *planDock = new PlanDock(m_session, m_undoStack, this);
    m_planDock = planDock;
    connect(planDock, &PlanDock::message, this, [this](const QString &t) { m_logDock->append(LogLevel::Info, t); });
    connect(planDock, &PlanDock::quantizeRequested, this, &MainWindow::startQuantization);
    connect(planDock, &PlanDock::layerSelected, this, [modelDock](int tensor) { modelDock->selectTensor(tensor); });
    addDockWidget(Qt::RightDockWidgetArea, m_planDock);
    m_calibrationDock = new CalibrationDock(m_session, m_settings, this);
    addDockWidget(Qt::RightDockWidgetArea, m_calibrationDock);
    tabifyDockWidget(m_planDock, m_calibrationDock);
    m_planDock->raise();
    connect(m_calibrationDock, &CalibrationDock::activationInputSelected, this, [this, modelDock](int block, int input) {
        // Show the first layer that reads this input.
        const auto model = m_session->model();
        if (!model)
            return;
        for (size_t i = 0; i < model->tensors.size(); ++i) {
            const core::Tensor &t = model->tensors[i];
            if (!core::isLinearRole(t.role) || int(core::linearInputOf(t.role)) != input)
                continue;
            if ((t.role == core::TensorRole::LmHead ? -1 : t.block) != block)
                continue;
            m_plotTabs->setCurrentWidget(m_activationView);
            modelDock->selectTensor(int(i));
            return;
        }
    });

    m_jobsDock = new JobsDock(m_runner, this);
    addDockWidget(Qt::BottomDockWidgetArea, m_jobsDock);
    m_logDock = new LogDock(this);
    addDockWidget(Qt::BottomDockWidgetArea, m_logDock);
    tabifyDockWidget(m_jobsDock, m_logDock);
    m_jobsDock->raise();

}

void MainWindow::createMenus()
{
    QMenu *file = menuBar()->addMenu(tr("&File"));
    QAction *open = file->addAction(tr("&Open model\u2026"), this, &MainWindow::showOpenDialog);
    open->setShortcut(QKeySequence::Open);
    m_recentMenu = file->addMenu(tr("Open &recent"));
    QAction *demo = file->addAction(tr("Open &demo model"), this, &MainWindow::openDemoModel);
    demo->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_D));
    file->addSeparator();
    QAction *openProject = file->addAction(tr("Open &project\u2026"), this, &MainWindow::showOpenProjectDialog);
    openProject->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
    m_saveProject = file->addAction(tr("&Save project"), this, [this] { saveProject(); });
    m_saveProject->setShortcut(QKeySequence::Save);
    m_saveProject->setToolTip(tr("Save the model reference, plan, statistics and runs as an HDF5 project"));
    m_saveProjectAs = file->addAction(tr("Save project &as\u2026"), this, [this] { saveProjectAs(); });
    m_saveProjectAs->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_S));
    QAction *exportAction = file->addAction(tr("&Export\u2026"), this, &MainWindow::showExportDialog);
    exportAction->setObjectName(QStringLiteral("exportAction"));
    exportAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
    exportAction->setToolTip(tr("Export the selected run (or the model) as GGUF, a GPTQ checkpoint or an HDF5 project"));
    // Reports compare runs (docs/reports.md); separate from model export above.
    QAction *exportReportAction = file->addAction(tr("Export &report\u2026"), this,
                                                  [this] { exportReport(this, m_runner, m_session, m_runs, m_settings); });
    exportReportAction->setObjectName(QStringLiteral("exportReportAction"));
    exportReportAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_E));
    file->addSeparator();
    QAction *quit = file->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setShortcut(QKeySequence::Quit);

    QMenu *edit = menuBar()->addMenu(tr("&Edit"));
    QAction *undo = m_undoStack->createUndoAction(this, tr("&Undo"));
    undo->setShortcut(QKeySequence::Undo);
    QAction *redo = m_undoStack->createRedoAction(this, tr("&Redo"));
    redo->setShortcut(QKeySequence::Redo);
    edit->addAction(undo);
    edit->addAction(redo);
    edit->addSeparator();
    QAction *cancelJobs = edit->addAction(tr("Cancel all jobs"), this, [this] { m_runner->cancelAll(); });
    cancelJobs->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Period));

    m_viewMenu = menuBar()->addMenu(tr("&View"));
    for (QDockWidget *dock : {m_modelDock, m_planDock, static_cast<QDockWidget *>(m_calibrationDock), static_cast<QDockWidget *>(m_jobsDock),
                              static_cast<QDockWidget *>(m_logDock)})
        m_viewMenu->addAction(dock->toggleViewAction());

    QMenu *run = menuBar()->addMenu(tr("&Run"));
    QAction *quantize = run->addAction(tr("&Quantize with plan"), this, &MainWindow::startQuantization);
    quantize->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_R));
    run->addAction(tr("Run &calibration"), this, [this] { m_calibrationDock->startCalibration(); });
    run->addAction(tr("&Evaluate perplexity"), this, [this] { m_calibrationDock->startEvaluation(); });
    QAction *compare = run->addAction(tr("Compare &methods on this layer\u2026"), this,
                                      [this] { compareMethods(m_layerView->tensorIndex()); });
    compare->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_M));
    compare->setToolTip(tr("Quantize the selected layer with several methods side by side"));
    run->addSeparator();
    QAction *rule = run->addAction(tr("Plan &rule\u2026"), this, [this] { static_cast<PlanDock *>(m_planDock)->showRuleDialog(); });
    rule->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_R));

    QMenu *help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&About QuantScope"), this, &MainWindow::showAbout);
    help->addAction(tr("About &Qt"), qApp, &QApplication::aboutQt);

    updateRecentMenu();
}

void MainWindow::updateRecentMenu()
{
    m_recentMenu->clear();
    const QStringList recent = m_settings->recentFiles();
    for (int i = 0; i < recent.size(); ++i) {
        const QString path = recent.at(i);
        QAction *a = m_recentMenu->addAction(QStringLiteral("&%1 %2").arg((i + 1) % 10).arg(path));
        connect(a, &QAction::triggered, this, [this, path] { openPath(path); });
    }
    if (!recent.isEmpty()) {
        m_recentMenu->addSeparator();
        m_recentMenu->addAction(tr("Clear list"), this, [this] {
            m_settings->clearRecentFiles();
            updateRecentMenu();
        });
    }
    m_recentMenu->setEnabled(!recent.isEmpty());
}

void MainWindow::showOpenDialog()
{
    QStringList patterns;
    for (const core::ModelFormat &f : core::modelFormats())
        for (const std::string &p : f.filePatterns)
            patterns << QString::fromStdString(p);
    const QString filter = tr("Models (%1);;All files (*)").arg(patterns.join(QLatin1Char(' ')));
    const QString path = QFileDialog::getOpenFileName(this, tr("Open model (pick a .gguf, a llama2.c .bin, or a Hugging Face folder's config.json)"),
                                                      m_settings->lastOpenDirectory(), filter);
    if (path.isEmpty())
        return;
    m_settings->setLastOpenDirectory(QFileInfo(path).absolutePath());
    // A Hugging Face model is its folder: open the folder when the user picked a file inside it.
    const QFileInfo info(path);
    if (info.fileName() == QLatin1String("config.json") || info.suffix() == QLatin1String("safetensors")
        || info.fileName() == QLatin1String("model.safetensors.index.json"))
        openPath(info.absolutePath());
    else
        openPath(path);
}

void MainWindow::openPath(const QString &path)
{
    if (ProjectSession::isProjectPath(path)) {
        m_logDock->append(LogLevel::Info, tr("Opening project %1").arg(path));
        m_project->open(path);
        return;
    }
    m_logDock->append(LogLevel::Info, tr("Opening %1").arg(path));
    m_session->openModel(path);
}

bool MainWindow::saveProject()
{
    if (!m_project->hasSession())
        return false;
    if (m_project->path().isEmpty())
        return saveProjectAs();
    m_project->save(m_project->path());
    return true;
}

bool MainWindow::saveProjectAs()
{
    if (!m_project->hasSession())
        return false;
    QString suggestion = m_project->path();
    if (suggestion.isEmpty())
        suggestion = QDir(m_settings->lastOpenDirectory()).filePath(QFileInfo(m_session->modelPath()).fileName()
                                                                     + QString::fromLatin1(core::kProjectExtension));
    QString path = QFileDialog::getSaveFileName(this, tr("Save project"), suggestion, ProjectSession::fileFilter());
    if (path.isEmpty())
        return false;
    path = ProjectSession::withExtension(path);
    m_settings->setLastOpenDirectory(QFileInfo(path).absolutePath());
    m_project->save(path);
    return true;
}

void MainWindow::showOpenProjectDialog()
{
    const QString path = QFileDialog::getOpenFileName(this, tr("Open project"), m_settings->lastOpenDirectory(),
                                                      ProjectSession::fileFilter());
    if (path.isEmpty())
        return;
    m_settings->setLastOpenDirectory(QFileInfo(path).absolutePath());
    m_logDock->append(LogLevel::Info, tr("Opening project %1").arg(path));
    m_project->open(path);
}

nlohmann::json MainWindow::captureUiState() const
{
    nlohmann::json state = nlohmann::json::object();
    state["selected_tensor"] = m_layerView->tensorIndex();
    if (const auto model = m_session->model(); model && m_layerView->tensorIndex() >= 0
                                                && size_t(m_layerView->tensorIndex()) < model->tensors.size())
        state["selected_layer"] = model->tensors[size_t(m_layerView->tensorIndex())].name;
    state["tab"] = m_plotTabs->tabText(m_plotTabs->currentIndex()).toStdString();
    const QModelIndex run = m_runsView->table()->currentIndex();
    state["selected_run"] = run.isValid() ? run.row() : -1;
    return state;
}

void MainWindow::restoreUiState(const nlohmann::json &state)
{
    if (!state.is_object())
        return;
    const auto model = m_session->model();
    int tensor = -1;
    if (model && state.contains("selected_layer") && state["selected_layer"].is_string())
        for (size_t i = 0; i < model->tensors.size(); ++i)
            if (model->tensors[i].name == state["selected_layer"].get<std::string>())
                tensor = int(i);
    if (tensor >= 0)
        static_cast<ModelDock *>(m_modelDock)->selectTensor(tensor);
    const int run = state.value("selected_run", -1);
    if (run >= 0 && run < m_runs->rowCount())
        m_runsView->selectRun(m_runs->runs().at(run)->id);
    if (state.contains("tab") && state["tab"].is_string()) {
        const QString tab = QString::fromStdString(state["tab"].get<std::string>());
        for (int i = 0; i < m_plotTabs->count(); ++i)
            if (m_plotTabs->tabText(i) == tab)
                m_plotTabs->setCurrentIndex(i);
    }
}

void MainWindow::openDemoModel()
{
    m_logDock->append(LogLevel::Info, tr("Opening the synthetic demo model (%1)").arg(ModelSession::demoModelPath()));
    m_session->openDemoModel();
}

void MainWindow::startQuantization()
{
    auto *planDock = static_cast<PlanDock *>(m_planDock);
    if (!m_session->model() || planDock->planModel()->rowCount() == 0)
        return;
    if (m_settings->calibrationText().isEmpty()) {
        m_calibrationDock->show();
        m_calibrationDock->raise();
        QMessageBox::information(this, tr("Calibration text needed"),
                                 tr("Choose a calibration text in the Calibration & evaluation dock first; "
                                    "the same settings (samples, tokens, seed) are used for quantization."));
        return;
    }
    core::PipelineOptions options;
    options.calibrationText = m_settings->calibrationText().toStdString();
    options.samples = m_settings->calibrationSamples();
    options.seqLen = m_settings->calibrationSeqLen();
    options.seed = uint64_t(m_settings->calibrationSeed());
    options.evalText = m_settings->evalText().toStdString();
    options.eval.ctx = m_settings->evalContext();
    options.eval.maxChunks = m_settings->evalMaxChunks();
    options.eval.protocol = core::parseEvalProtocol(m_settings->evalProtocol().toStdString());
    const nlohmann::json plan = planDock->planModel()->toPlanJson();
    const QString name = tr("Run %1: %2 %3-bit").arg(m_runs->runs().size() + 1)
                             .arg(QString::fromStdString(plan["default"].value("method", std::string("?"))))
                             .arg(plan["default"].value("bits", 0));
    if (m_runs->startRun(plan, options, name) > 0)
        m_plotTabs->setCurrentWidget(m_runsView);
}

void MainWindow::showExportDialog()
{
    const auto model = m_session->model();
    if (!model) {
        statusBar()->showMessage(tr("Open a model first"), 5000);
        return;
    }
    int runId = m_runsView->selectedRun();
    const auto run = m_runs->run(runId);
    if (!run || run->state != RunsModel::State::Done)
        runId = 0;
    const QString modelName = QFileInfo(QString::fromStdString(model->path)).completeBaseName();
    const QString source = runId ? tr("%1 (quantized run of %2)").arg(run->name, modelName) : tr("%1 (as opened)").arg(modelName);
    QString base = QFileInfo(QString::fromStdString(model->path)).absolutePath() + QLatin1Char('/') + modelName;
    if (runId)
        base += QStringLiteral("-run%1").arg(runId);
    ModelExportDialog dialog(source, runId != 0, base, this);
    if (dialog.exec() != QDialog::Accepted)
        return;
    exportModel(runId, dialog.request());
}

JobId MainWindow::exportModel(int runId, const ModelExportRequest &request)
{
    return startModelExport(m_runner, m_session, m_runs, runId, request, [this](int level, const QString &text) {
        m_logDock->append(level == 0 ? LogLevel::Info : level == 1 ? LogLevel::Warning : LogLevel::Error, text);
        if (level != 1)
            statusBar()->showMessage(text, 8000);
    });
}

void MainWindow::compareMethods(int tensorIndex)
{
    const auto model = m_session->model();
    if (!model || tensorIndex < 0 || size_t(tensorIndex) >= model->tensors.size()) {
        statusBar()->showMessage(tr("Select a layer in the model tree first"), 5000);
        return;
    }
    static_cast<ModelDock *>(m_modelDock)->selectTensor(tensorIndex); // keeps the tree and the views in step
    m_compareView->showTensor(tensorIndex);
    m_plotTabs->setCurrentWidget(m_compareView);
    if (m_compareView->canCompare() && !m_compareView->hasResult()
        && m_compareView->runningLayer() != m_compareView->layerName())
        m_compareView->run();
}

void MainWindow::showAbout()
{
    QMessageBox::about(this, tr("About QuantScope"),
                       tr("<h3>QuantScope %1</h3><p>A workbench for quantizing large language models: "
                          "inspect weights and activations, plan per-layer quantization, run, evaluate and export.</p>"
                          "<p>Qt %2 (built with %3)<br>Eigen %4<br>HDF5 %5<br>%6</p>")
                           .arg(QString::fromStdString(core::quantscopeVersion()), QString::fromLatin1(qVersion()),
                                QStringLiteral(QT_VERSION_STR), QString::fromStdString(core::eigenVersion()),
                                QString::fromStdString(core::hdf5Version()),
                                QString::fromStdString(core::compilerVersion()).toHtmlEscaped()));
}

void MainWindow::updateTitle()
{
    const QString path = m_session->modelPath();
    const bool haveModel = !path.isEmpty() && m_session->model();
    if (m_saveProject) {
        m_saveProject->setEnabled(haveModel);
        m_saveProjectAs->setEnabled(haveModel);
    }
    if (path.isEmpty()) {
        setWindowTitle(tr("QuantScope"));
        m_statusModel->setText(tr("No model"));
    } else {
        const bool synthetic = m_session->model() && m_session->model()->hparams.synthetic;
        // "project.qsproj.h5* (model) — QuantScope": the project, '*' when the plan or runs changed since
        // it was saved, and the model; without a project the model alone.
        const QString modified = m_project && m_project->isModified() ? QStringLiteral("*") : QString();
        const QString model = QFileInfo(path).fileName() + (synthetic ? tr(" [synthetic]") : QString());
        const QString project = m_project ? m_project->path() : QString();
        setWindowTitle(project.isEmpty() ? tr("%1%2 \u2014 QuantScope").arg(model, modified)
                                         : tr("%1%2 (%3) \u2014 QuantScope").arg(QFileInfo(project).fileName(), modified, model));
        m_statusModel->setText(synthetic ? tr("%1 \u2014 SYNTHETIC demo model").arg(path) : path);
    }
}

void MainWindow::showEvent(QShowEvent *event)
{
    QMainWindow::showEvent(event);
    if (m_shown || m_layoutRestored)
        return;
    m_shown = true;
    // First start: give the model tree room for its columns and keep the bottom docks short.
    resizeDocks({m_modelDock, m_planDock}, {width() * 3 / 10, width() / 5}, Qt::Horizontal);
    resizeDocks({m_jobsDock}, {height() / 5}, Qt::Vertical);
}

void MainWindow::closeEvent(QCloseEvent *event)
{
    if (m_project->isBusy() && m_closeAfterSave) {
        event->ignore(); // a save started from this dialog is still running; it closes the window when done
        return;
    }
    if (m_project->isModified() && !m_closeAfterSave) {
        const QString name = m_project->path().isEmpty() ? tr("this session") : QFileInfo(m_project->path()).fileName();
        const auto answer = QMessageBox::question(this, tr("Unsaved changes"),
                                                  tr("The plan or the runs of %1 changed since it was saved. Save the project?").arg(name),
                                                  QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel, QMessageBox::Save);
        if (answer == QMessageBox::Cancel) {
            event->ignore();
            return;
        }
        if (answer == QMessageBox::Save) {
            event->ignore();
            m_closeAfterSave = saveProject(); // the save job closes the window when it finishes
            return;
        }
    }
    m_settings->setWindowGeometry(saveGeometry());
    m_settings->setWindowState(saveState());
    m_runner->cancelAll();
    event->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent *event)
{
    if (event->mimeData()->hasUrls() && event->mimeData()->urls().size() == 1
        && event->mimeData()->urls().first().isLocalFile())
        event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent *event)
{
    const QList<QUrl> urls = event->mimeData()->urls();
    if (urls.size() != 1 || !urls.first().isLocalFile())
        return;
    QString path = urls.first().toLocalFile();
    const QFileInfo info(path);
    if (info.isFile() && (info.fileName() == QLatin1String("config.json") || info.suffix() == QLatin1String("safetensors")))
        path = info.absolutePath();
    event->acceptProposedAction();
    openPath(path);
}

} // namespace qs::ui
